"""What the bench scripts write into BENCHMARKS.md: one dated entry shape, appended to its own section."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from bench.benchmarks_file import append_section, table_entry
from bench.line_effects import VARIANTS, EffectRow, markdown
from bench.voices import PeopleResult, people_markdown
from data.channel import ChannelConfig


def test_a_table_entry_is_dated_names_machine_and_command_and_has_one_row_per_result():
    entry = table_entry("title", "python -m bench.x --n 3", ("a", "b"), [("1", "2"), ("3", "4")])
    lines = entry.splitlines()
    assert lines[0] == f"### {dt.date.today().isoformat()} — title"
    assert lines[2].startswith("Machine: ") and lines[2].endswith("Command: `python -m bench.x --n 3`")
    assert lines[4:] == ["| a | b |", "| --- | --- |", "| 1 | 2 |", "| 3 | 4 |"]


def test_entries_land_at_the_end_of_their_own_section(tmp_path: Path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## One\n\nold one\n\n## Two\n\nold two\n", encoding="utf-8")
    append_section("## One", "new one\n", path)
    append_section("## Three", "new three\n", path)
    assert path.read_text(encoding="utf-8") == (
        "# Benchmarks\n\n## One\n\nold one\n\nnew one\n\n## Two\n\nold two\n\n## Three\n\nnew three\n")


def test_people_ratio_is_the_voice_against_the_person_on_the_same_lines():
    person = PeopleResult("person", 7, 0.04, 0.12, 0.12)
    voice = PeopleResult("flite:slt", 7, 0.10, 0.30, 0.12)
    assert person.ratio == 1.0 and round(voice.ratio, 2) == 2.5
    rows = people_markdown([person, voice], command="c", lines=6).splitlines()[-2:]
    assert rows == ["| person | 7 × 6 | 0.040 | **0.120** | 1.00 |", "| flite:slt | 7 × 6 | 0.100 | **0.300** | 2.50 |"]


def test_line_effects_rows_give_the_drop_and_each_variant_removes_only_its_effect():
    row = EffectRow("c.jsonl", "piper:joe", "the line", 40, 0.243, 0.95, 0.8, 0.925, 0.747, 0.16)
    assert round(row.drop, 3) == 0.178
    assert markdown([row], model="intent/v1", command="c").splitlines()[-1] == (
        "| c.jsonl | piper:joe | the line | 40 | 0.243 | 0.950 / 0.800 | 0.925 | 0.747 | **+0.178** | 0.160 |")
    full = ChannelConfig()
    assert VARIANTS["line"][1] == full and VARIANTS["no-channel"][1] is None
    quiet = VARIANTS["no-noise"][1]
    assert quiet is not None and quiet.noise_probability == 0.0
    assert {k: v for k, v in vars(quiet).items() if k != "noise_probability"} == \
        {k: v for k, v in vars(full).items() if k != "noise_probability"}
