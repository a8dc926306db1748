"""Labeled-data loading, validation and splits (data.dataset, data.realtext, data.dataset_cli)."""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from pathlib import Path

import pytest
from conftest import SHARED_DATA

from callintent.cli import main
from callintent.errors import UserError
from data.dataset import (
    COLUMNS,
    MAX_REPORTED_PROBLEMS,
    DataConfig,
    DataValidationError,
    example_rows,
    fingerprint,
    load_labeled,
    load_labeled_with_report,
    normalise_transcript,
)
from data.realtext import import_real_text
from models.labels import CLASS_NAMES, SIGNAL_NAMES

SGD = SHARED_DATA / "sgd_openings.jsonl"


DEFAULT_TEXT = "hi I saw your ad, how much is a new water heater"


def row(call_id: str, transcript: str = DEFAULT_TEXT, label: str = "buying", **kw) -> dict:
    return {"call_id": call_id, "transcript": transcript, "label": label, **kw}


def jsonl(path: Path, rows: list) -> Path:
    """Write rows (dicts, or raw strings written as-is) one per line."""
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


def good_rows(n: int = 6) -> list[dict]:
    return [row(f"c{i}", f"caller {i} wants a quote for job {i}", CLASS_NAMES[i % 4]) for i in range(n)]


def corpus(counts: dict[str, int] | None = None) -> list[dict]:
    """~600 distinct rows with imbalanced classes (built here: the corpus generator is separate)."""
    counts = counts or {"buying": 300, "service": 150, "informational": 100, "noise": 50}
    rng = random.Random(7)
    verbs = ["need", "want", "would like", "am calling about", "have a question about"]
    things = ["a water heater", "my bill", "your hours", "an extended warranty", "a roof repair", "my order"]
    rows = []
    for label, n in counts.items():
        for i in range(n):
            text = f"hi this is caller {label} {i} and I {rng.choice(verbs)} {rng.choice(things)}"
            signals = rng.choice([None, [], ["price_inquiry"], ["urgency", "specific_need"]])
            source = rng.choice(["ads", "seo"])
            rows.append(row(f"{label}-{i:04d}", text, label, signals=signals, source=source))
    return rows


def problem_of(tmp_path: Path, rows: list, **config) -> str:
    path = jsonl(tmp_path / "data.jsonl", rows)
    with pytest.raises(DataValidationError) as info:
        load_labeled(path, DataConfig(**config))
    return str(info.value)


# ---------------------------------------------------------------------------------------------
# Each rejection, with its file:line


def test_unknown_label_names_file_and_line(tmp_path):
    rows = good_rows(3) + [row("bad", label="sales")]
    msg = problem_of(tmp_path, rows)
    assert msg.startswith(f"{tmp_path / 'data.jsonl'}:4: unknown label 'sales'")
    assert "buying" in msg  # lists the known labels


def test_unknown_signal(tmp_path):
    msg = problem_of(tmp_path, [row("a", signals=["price_inquiry", "discount"]), *good_rows(2)])
    assert msg.startswith(f"{tmp_path / 'data.jsonl'}:1: unknown signal 'discount'")


def test_signals_must_be_list_or_null(tmp_path):
    msg = problem_of(tmp_path, [*good_rows(2), row("a", signals="price_inquiry")])
    assert msg.startswith(f"{tmp_path / 'data.jsonl'}:3: signals must be a list")


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_transcript(tmp_path, text):
    msg = problem_of(tmp_path, [*good_rows(1), row("a", text)])
    assert msg == f"{tmp_path / 'data.jsonl'}:2: empty transcript"


def test_transcript_longer_than_max_words(tmp_path):
    long_text = " ".join(["word"] * 151)
    msg = problem_of(tmp_path, [row("a", long_text), *good_rows(3)])
    assert msg.startswith(f"{tmp_path / 'data.jsonl'}:1: transcript has 151 words, more than max_words=150")
    # Configurable: the same file loads with a higher limit, and a lower one rejects ordinary rows.
    dsd = load_labeled(tmp_path / "data.jsonl", DataConfig(max_words=200))
    assert sum(d.num_rows for d in dsd.values()) == 4
    msg = problem_of(tmp_path, [row("a", "one two three four")], max_words=3)
    assert "4 words, more than max_words=3" in msg


def test_duplicate_call_id_names_both_lines(tmp_path):
    rows = [row("x1", "first call text"), *good_rows(3), row("x1", "another call text")]
    msg = problem_of(tmp_path, rows)
    path = tmp_path / "data.jsonl"
    assert msg == f"{path}:5: duplicate call_id 'x1' (also at {path}:1)"


def test_duplicate_call_id_across_files(tmp_path):
    a = jsonl(tmp_path / "a.jsonl", [row("x1", "first call text")])
    b = jsonl(tmp_path / "b.jsonl", [*good_rows(2), row("x1", "second call text")])
    with pytest.raises(DataValidationError, match=rf"{b}:3: duplicate call_id 'x1' \(also at {a}:1\)"):
        load_labeled([a, b])


def test_missing_call_id_and_invalid_json(tmp_path):
    rows = [*good_rows(2), {"transcript": "no id here", "label": "buying"}, '{"call_id": "z", "transcript": ']
    msg = problem_of(tmp_path, rows)
    path = tmp_path / "data.jsonl"
    assert f"{path}:3: missing call_id" in msg
    assert f"{path}:4: not valid JSON" in msg
    assert msg.startswith("2 problems in 2 rows")


def test_span_offsets_must_match_text(tmp_path):
    text = "hi I saw your ad for water heaters"
    good_span = {"signal": "ad_reference", "start": 5, "end": 16, "text": "saw your ad"}
    assert text[5:16] == "saw your ad"
    wrong_text = {**good_span, "text": "saw the ad!"}
    outside = {"signal": "ad_reference", "start": 20, "end": 99}
    rows = [
        row("ok", text, signals=["ad_reference"], spans=[good_span]),
        row("a", text + " a", signals=["ad_reference"], spans=[wrong_text]),
        row("b", text + " b", signals=["ad_reference"], spans=[outside]),
        row("c", text + " c", signals=["ad_reference"], spans=[{**good_span, "signal": "coupon"}]),
        row("d", text + " d", signals=["price_inquiry"], spans=[good_span]),
    ]
    msg = problem_of(tmp_path, rows)
    path = tmp_path / "data.jsonl"
    assert f"{path}:2: spans[0]: text 'saw the ad!' does not match transcript[5:16] = 'saw your ad'" in msg
    assert f"{path}:3: spans[0]: offsets start=20 end=99 are not inside" in msg
    assert f"{path}:4: spans[0]: unknown signal 'coupon'" in msg
    assert f"{path}:5: spans[0]: span for 'ad_reference', which is not in signals" in msg
    assert f"{path}:1:" not in msg


def test_bad_split_value(tmp_path):
    rows = [row("a", "text one", split="train"), row("b", "text two", split="dev")]
    msg = problem_of(tmp_path, rows)
    assert msg.startswith(f"{tmp_path / 'data.jsonl'}:2: split must be one of train, validation, test")
    assert "'dev'" in msg


def test_leakage_across_given_splits(tmp_path):
    rows = [
        row("a", "Hi, I'd like a QUOTE for a new roof.", split="train"),
        row("b", "some other words", split="validation"),
        row("c", "hi id like a quote for a new roof", split="validation"),
        row("d", "hi  I'd like a quote,  for a new roof!!", split="test"),
    ]
    msg = problem_of(tmp_path, rows)
    path = tmp_path / "data.jsonl"
    leak = f"leakage: same transcript as the 'train' row at {path}:1, but this row is in"
    assert f"{path}:3: {leak} 'validation'" in msg
    assert f"{path}:4: {leak} 'test'" in msg
    assert f"{path}:2:" not in msg and f"{path}:1:" not in msg


def test_all_problems_reported_with_a_cap(tmp_path):
    rows = [row(f"r{i}", label="nope") for i in range(MAX_REPORTED_PROBLEMS + 7)]
    with pytest.raises(DataValidationError) as info:
        load_labeled(jsonl(tmp_path / "data.jsonl", rows))
    err = info.value
    assert len(err.problems) == MAX_REPORTED_PROBLEMS + 7
    lines = str(err).splitlines()
    n = MAX_REPORTED_PROBLEMS + 7
    assert lines[0] == f"{n} problems in {n} rows of labeled data:"
    assert len(lines) == 1 + MAX_REPORTED_PROBLEMS + 1
    assert lines[-1].strip() == "… and 7 more"
    assert isinstance(err, UserError)


def test_csv_and_parquet_locations(tmp_path):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [row("a", "first line\nsecond line of the same call"), row("b", "ok text"),
            row("c", "x", label="bad")]
    csv_path = tmp_path / "data.csv"
    pd.DataFrame(rows).to_csv(csv_path, index=False)
    # The first row's transcript spans two physical lines, so row "c" starts on line 5.
    with pytest.raises(DataValidationError, match=rf"^{csv_path}:5: unknown label 'bad'"):
        load_labeled(csv_path)
    pq_path = tmp_path / "data.parquet"
    pq.write_table(pa.Table.from_pylist(rows), pq_path)
    with pytest.raises(DataValidationError, match=rf"^{pq_path}:row 3: unknown label 'bad'"):
        load_labeled(pq_path)


def test_unsupported_and_missing_files(tmp_path):
    (tmp_path / "data.txt").write_text("hello")
    with pytest.raises(UserError, match="unsupported labeled-data format '.txt'"):
        load_labeled(tmp_path / "data.txt")
    with pytest.raises(UserError, match="file not found"):
        load_labeled(tmp_path / "missing.jsonl")


# ---------------------------------------------------------------------------------------------
# drop_invalid


def test_drop_invalid_writes_rejects_and_loads_the_rest(tmp_path):
    rows = [*good_rows(10), row("bad1", label="sales"), row("c0", "a duplicate id"), row("bad2", "  ")]
    path = jsonl(tmp_path / "data.jsonl", rows)
    rejects = tmp_path / "out" / "rejects.jsonl"
    dsd, report = load_labeled_with_report(path, DataConfig(drop_invalid=True), rejects_path=rejects)
    assert sum(d.num_rows for d in dsd.values()) == 10
    assert (report.rows_read, report.rows_rejected, report.rows_loaded) == (13, 3, 10)
    rejected = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(r["file"], r["line"]) for r in rejected] == [(str(path), 11), (str(path), 12), (str(path), 13)]
    assert rejected[0]["reason"].startswith("unknown label 'sales'")
    assert rejected[1]["reason"] == f"duplicate call_id 'c0' (also at {path}:1)"
    assert rejected[2]["reason"] == "empty transcript"
    assert rejected[0]["row"] == rows[10]
    loaded_ids = {i for d in dsd.values() for i in d["call_id"]}
    assert loaded_ids == {f"c{i}" for i in range(10)}


def test_drop_invalid_removes_only_the_leaked_copy(tmp_path):
    rows = [row("a", "same words", split="train"), row("b", "Same words!", split="test"),
            row("c", "other", split="test")]
    path = jsonl(tmp_path / "data.jsonl", rows)
    dsd = load_labeled(path, DataConfig(drop_invalid=True, rejects_path=str(tmp_path / "rej.jsonl")))
    assert dsd["train"]["call_id"] == ["a"] and dsd["test"]["call_id"] == ["c"]
    assert json.loads((tmp_path / "rej.jsonl").read_text())["row"]["call_id"] == "b"


def test_drop_invalid_needs_a_rejects_path(tmp_path):
    with pytest.raises(UserError, match="drop_invalid needs a rejects_path"):
        load_labeled(jsonl(tmp_path / "d.jsonl", good_rows()), DataConfig(drop_invalid=True))


# ---------------------------------------------------------------------------------------------
# Formats and fingerprint


def format_rows() -> list[dict]:
    text = "hello I saw your ad and need a quote today"
    rows = [
        row("f0", text, signals=["ad_reference", "quote_request"],
            spans=[{"signal": "ad_reference", "start": 8, "end": 19, "text": "saw your ad"}],
            source="google_ads", campaign="spring", industry="hvac", audio="calls/f0.wav"),
        row("f1", "what time do you close on saturday", "informational", signals=[]),
        row("f2", "press one about your warranty", "noise", signals=None, industry="auto"),
        row("f3", "checking on my order number 00123", "service"),
    ]
    rows += [row(f"g{i}", f"another caller {i} asks about a furnace", CLASS_NAMES[i % 4],
                 signals=["specific_need"] if i % 2 else None) for i in range(16)]
    return rows


def test_jsonl_csv_parquet_give_the_same_fingerprint(tmp_path):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = format_rows()
    prints = {}
    prints["jsonl"] = fingerprint(load_labeled(jsonl(tmp_path / "d.jsonl", rows)))
    frame = pd.DataFrame([{**r, "signals": "" if r.get("signals") is None else json.dumps(r["signals"]),
                           "spans": json.dumps(r["spans"]) if "spans" in r else ""} for r in rows])
    frame.to_csv(tmp_path / "d.csv", index=False)
    prints["csv"] = fingerprint(load_labeled(tmp_path / "d.csv"))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    prints["parquet"] = fingerprint(load_labeled(tmp_path / "d.parquet"))
    # Row order within the file does not matter either.
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    prints["jsonl-shuffled"] = fingerprint(load_labeled(jsonl(tmp_path / "s.jsonl", shuffled)))
    assert len(set(prints.values())) == 1, prints
    assert len(prints["jsonl"]) == 64
    # A changed label changes it.
    changed = [dict(r) for r in rows]
    changed[3]["label"] = "noise"
    assert fingerprint(load_labeled(jsonl(tmp_path / "c.jsonl", changed))) != prints["jsonl"]


def test_columns_and_values_follow_the_contract(tmp_path):
    all_train = DataConfig(val_fraction=0, test_fraction=0)
    dsd = load_labeled(jsonl(tmp_path / "d.jsonl", format_rows()), all_train)
    assert list(dsd) == ["train", "validation", "test"]
    assert dsd["validation"].num_rows == 0 and dsd["test"].num_rows == 0
    train = dsd["train"]
    assert tuple(train.column_names) == COLUMNS
    by_id = {r["call_id"]: r for r in train.to_list()}
    f0 = by_id["f0"]
    assert f0["label_id"] == CLASS_NAMES.index("buying")
    assert f0["signals"] == ["ad_reference", "quote_request"]
    assert f0["signal_labels"] == [float(s in ("ad_reference", "quote_request")) for s in SIGNAL_NAMES]
    span = {"signal": "ad_reference", "start": 8, "end": 19, "text": "saw your ad"}
    assert json.loads(f0["spans"]) == [span]
    assert (f0["source"], f0["campaign"], f0["industry"]) == ("google_ads", "spring", "hvac")
    assert json.loads(f0["extra"]) == {"audio": "calls/f0.wav"}
    f3 = by_id["f3"]
    assert (f3["source"], f3["campaign"], f3["spans"], f3["extra"]) == ("", "", "[]", "{}")


def test_signals_null_versus_empty(tmp_path):
    rows = [row("null", "a b c", signals=None), row("missing", "d e f"), row("empty", "g h i", signals=[]),
            row("some", "j k l", signals=["urgency"])]
    dsd = load_labeled(jsonl(tmp_path / "d.jsonl", rows), DataConfig(val_fraction=0, test_fraction=0))
    by_id = {r["call_id"]: r for r in dsd["train"].to_list()}
    assert by_id["null"]["signals_labeled"] is False and by_id["missing"]["signals_labeled"] is False
    assert by_id["empty"]["signals_labeled"] is True
    for cid in ("null", "missing", "empty"):
        assert by_id[cid]["signal_labels"] == [0.0] * len(SIGNAL_NAMES) and by_id[cid]["signals"] == []
    assert by_id["some"]["signal_labels"][SIGNAL_NAMES.index("urgency")] == 1.0
    # Written back, unlabeled stays null and "none present" stays [].
    written = {r["call_id"]: r for r in example_rows(dsd)}
    assert written["null"]["signals"] is None and written["missing"]["signals"] is None
    assert written["empty"]["signals"] == []
    # Spans on an unlabeled row contradict it.
    bad = row("x", "saw your ad", signals=None, spans=[{"signal": "ad_reference", "start": 0, "end": 11}])
    assert "signals is null" in problem_of(tmp_path, [bad])


# ---------------------------------------------------------------------------------------------
# Splits


def test_auto_split_is_stratified(tmp_path):
    rows = corpus()
    dsd, report = load_labeled_with_report(jsonl(tmp_path / "d.jsonl", rows))
    assert report.split_origin == "auto"
    assert report.split_counts == {"train": 480, "validation": 60, "test": 60}
    overall = {c: n / len(rows) for c, n in Counter(r["label"] for r in rows).items()}
    for split in ("train", "validation", "test"):
        counts = Counter(dsd[split]["label"])
        for label, share in overall.items():
            assert abs(counts[label] / dsd[split].num_rows - share) <= 0.02, (split, label, counts)
    # Without stratification the small classes drift (the option is honoured).
    loose = load_labeled(tmp_path / "d.jsonl", DataConfig(stratify=False, seed=1))
    assert Counter(loose["test"]["label"]) != Counter(dsd["test"]["label"])


def test_auto_split_keeps_repeated_transcripts_together(tmp_path):
    rows = []
    for i in range(120):
        base = f"hi I would like a quote for job {i}"
        variants = [base, base.upper() + "!!", base.replace("hi", "Hi,") + "."]
        rows += [row(f"r{i}-{k}", v, CLASS_NAMES[i % 4]) for k, v in enumerate(variants)]
    config = DataConfig(val_fraction=0.2, test_fraction=0.2, seed=5)
    dsd = load_labeled(jsonl(tmp_path / "d.jsonl", rows), config)
    where: dict[str, set[str]] = {}
    for split, data in dsd.items():
        assert data.num_rows > 0
        for text in data["transcript"]:
            where.setdefault(normalise_transcript(text), set()).add(split)
    assert len(where) == 120
    assert all(len(splits) == 1 for splits in where.values())
    assert dsd["test"].num_rows == 24 * 3


def test_mixed_given_and_auto_splits(tmp_path):
    rows = corpus({"buying": 40, "service": 40})
    for r in rows[:10]:
        r["split"] = "test"
    # An unsplit copy of a test transcript must follow it into test.
    rows.append(row("copy", rows[0]["transcript"].upper(), rows[0]["label"]))
    dsd, report = load_labeled_with_report(jsonl(tmp_path / "d.jsonl", rows))
    assert report.split_origin == "mixed"
    test_ids = set(dsd["test"]["call_id"])
    assert {r["call_id"] for r in rows[:10]} | {"copy"} <= test_ids


def test_same_seed_same_split_and_order_independent(tmp_path):
    rows = corpus()
    path = jsonl(tmp_path / "d.jsonl", rows)
    a = load_labeled(path, DataConfig(seed=3))
    b = load_labeled(path, DataConfig(seed=3))
    c = load_labeled(path, DataConfig(seed=4))
    assert all(a[s]["call_id"] == b[s]["call_id"] for s in a)
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)
    assert set(a["test"]["call_id"]) != set(c["test"]["call_id"])
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    d = load_labeled(jsonl(tmp_path / "s.jsonl", shuffled), DataConfig(seed=3))
    assert all(set(a[s]["call_id"]) == set(d[s]["call_id"]) for s in a)


def test_given_splits_are_used_and_empty_test_warns(tmp_path, caplog):
    rows = [row(f"t{i}", f"train text {i}", split="train") for i in range(5)]
    rows += [row(f"v{i}", f"validation text {i}", split="validation") for i in range(2)]
    with caplog.at_level(logging.WARNING, logger="data.dataset"):
        dsd, report = load_labeled_with_report(jsonl(tmp_path / "d.jsonl", rows))
    assert report.split_origin == "file"
    assert report.split_counts == {"train": 5, "validation": 2, "test": 0}
    assert "split 'test' is empty" in caplog.text


def test_split_output_reloads_to_the_same_fingerprint(tmp_path):
    from data.dataset import write_splits

    dsd = load_labeled(jsonl(tmp_path / "d.jsonl", format_rows() + corpus({"buying": 30, "noise": 30})))
    written = write_splits(dsd, tmp_path / "splits")
    assert sorted(p.name for p in written.values()) == ["test.jsonl", "train.jsonl", "validation.jsonl"]
    again = load_labeled(list(written.values()))
    assert fingerprint(again) == fingerprint(dsd)


# ---------------------------------------------------------------------------------------------
# Corrections


def test_corrections_override_by_call_id_and_are_counted(tmp_path):
    rows = [row("a", "my bill is wrong", "buying", signals=None, source="seo"), *good_rows(8)]
    path = jsonl(tmp_path / "d.jsonl", rows)
    fixes = jsonl(tmp_path / "fix.jsonl", [
        {"call_id": "a", "label": "service", "signals": ["existing_customer"]},
        {"call_id": "c1", "label": "noise"},
    ])
    all_train = DataConfig(val_fraction=0, test_fraction=0)
    dsd, report = load_labeled_with_report(path, all_train, corrections=fixes)
    assert report.corrections_applied == 2
    by_id = {r["call_id"]: r for r in dsd["train"].to_list()}
    assert by_id["a"]["label"] == "service" and by_id["a"]["signals"] == ["existing_customer"]
    assert by_id["a"]["source"] == "seo" and by_id["a"]["transcript"] == "my bill is wrong"  # kept
    assert by_id["c1"]["label"] == "noise"
    assert dsd["train"].num_rows == 9


def test_bad_corrections_are_reported_at_their_line(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", good_rows(4))
    fixes = jsonl(tmp_path / "fix.jsonl", [{"call_id": "nope", "label": "noise"},
                                          {"call_id": "c2", "label": "x"}])
    with pytest.raises(DataValidationError) as info:
        load_labeled(path, corrections=[fixes])
    msg = str(info.value)
    assert f"{fixes}:1: correction for unknown call_id 'nope'" in msg
    assert f"{fixes}:2: unknown label 'x'" in msg and f"(after correcting {path}:3)" in msg


# ---------------------------------------------------------------------------------------------
# Config


@pytest.mark.parametrize("kw, field", [
    ({"max_words": 0}, "max_words"), ({"val_fraction": 1.5}, "val_fraction"),
    ({"test_fraction": -0.1}, "test_fraction"), ({"val_fraction": 0.6, "test_fraction": 0.6}, "val_fraction"),
    ({"seed": "1"}, "seed"),
])
def test_config_rejects_bad_values(kw, field):
    with pytest.raises(ValueError, match=field):
        DataConfig(**kw)


# ---------------------------------------------------------------------------------------------
# Real text (../shared/data/sgd_openings.jsonl)


def test_sgd_file_has_cross_split_repeats_that_are_reported(tmp_path):
    with pytest.raises(DataValidationError) as info:
        load_labeled(SGD)
    problems = info.value.problems
    assert len(problems) == 25 and all("leakage" in p.reason and "'validation'" in p.reason for p in problems)
    # Its own splits, minus the leaked copies, load with drop_invalid.
    rejects = tmp_path / "r.jsonl"
    dsd, report = load_labeled_with_report(SGD, DataConfig(drop_invalid=True), rejects_path=rejects)
    assert report.split_origin == "file"
    assert report.split_counts == {"train": 1815, "validation": 243 - 25, "test": 0}


def test_import_real_text_keeps_every_row_leak_free(tmp_path):
    dsd, summary = import_real_text(SGD, tmp_path)
    report = summary.report
    assert report.rows_loaded == 2058 and report.rows_rejected == 0
    assert report.split_counts == {"train": 1815 + 25, "validation": 243 - 25, "test": 0}
    labels = Counter(label for d in dsd.values() for label in d["label"])
    assert labels == {"buying": 1809, "service": 249}
    assert len(summary.moves) == 25
    assert {(m.from_split, m.to_split) for m in summary.moves} == {("validation", "train")}
    assert not any(any(d["signals_labeled"]) for d in dsd.values())  # unlabeled, not "no signals"
    out = Path(summary.out_path)
    assert out == tmp_path / "sgd_openings.jsonl"
    first = json.loads(out.read_text().splitlines()[0])
    assert first["signals"] is None and first["split"] == "train"
    again = load_labeled(out)
    assert fingerprint(again) == report.fingerprint
    train = {normalise_transcript(t) for t in again["train"]["transcript"]}
    assert not train & {normalise_transcript(t) for t in again["validation"]["transcript"]}


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_validate_ok(tmp_path, capsys):
    path = jsonl(tmp_path / "d.jsonl", corpus({"buying": 20, "service": 20}))
    assert main(["data", "validate", str(path), "--seed", "2"]) == 0
    out = capsys.readouterr().out
    expected = fingerprint(load_labeled(path, DataConfig(seed=2)))
    assert f"fingerprint: {expected}" in out
    assert "train" in out and "validation" in out and "rows read 40, rejected 0" in out


def test_cli_validate_with_corrections(tmp_path, capsys):
    path = jsonl(tmp_path / "d.jsonl", [*good_rows(3), row("z", label="sales")])
    fix = jsonl(tmp_path / "fix.jsonl", [{"call_id": "z", "label": "service"}])
    assert main(["data", "validate", "--corrections", str(fix), str(path)]) == 0
    assert "corrections applied 1" in capsys.readouterr().out


def test_cli_validate_invalid_exits_2_with_one_line(tmp_path, capsys):
    path = jsonl(tmp_path / "d.jsonl", [*good_rows(2), row("z", label="sales")])
    assert main(["data", "validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = captured.err.strip().splitlines()
    assert len(errors) == 1
    assert errors[0].startswith(f"callintent data: error: {path}:3: unknown label 'sales'")


def test_cli_validate_drop_invalid(tmp_path, capsys):
    path = jsonl(tmp_path / "d.jsonl", [*good_rows(4), row("z", label="sales")])
    assert main(["data", "validate", str(path), "--drop-invalid"]) == 2
    assert "--drop-invalid needs --rejects" in capsys.readouterr().err
    rejects = tmp_path / "rej.jsonl"
    assert main(["data", "validate", str(path), "--drop-invalid", "--rejects", str(rejects)]) == 0
    assert "rejected 1" in capsys.readouterr().out
    assert json.loads(rejects.read_text())["line"] == 5


def test_cli_split_and_import_real(tmp_path, capsys):
    path = jsonl(tmp_path / "d.jsonl", corpus({"buying": 30, "service": 30, "noise": 20}))
    out_dir = tmp_path / "splits"
    assert main(["data", "split", str(path), "--out", str(out_dir), "--seed", "1"]) == 0
    counts = {s: len((out_dir / f"{s}.jsonl").read_text().splitlines())
              for s in ("train", "validation", "test")}
    assert counts == {"train": 64, "validation": 8, "test": 8}
    assert fingerprint(load_labeled(sorted(out_dir.glob("*.jsonl")))) == \
        fingerprint(load_labeled(path, DataConfig(seed=1)))
    capsys.readouterr()

    small = jsonl(tmp_path / "real.jsonl", [
        row("r1", "I need a taxi", split="train", signals=None),
        row("r2", "i need a TAXI.", split="validation", signals=None),
        row("r3", "book a table for two", split="validation", signals=None),
    ])
    assert main(["data", "import-real", str(small), "--out", str(tmp_path / "real")]) == 0
    assert "moved 1 rows" in capsys.readouterr().out
    written = [json.loads(line) for line in (tmp_path / "real" / "real.jsonl").read_text().splitlines()]
    assert [(r["call_id"], r["split"], r["signals"]) for r in written] == [
        ("r1", "train", None), ("r2", "train", None), ("r3", "validation", None)]
