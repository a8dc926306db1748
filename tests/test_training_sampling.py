"""Source-aware sampling (training/sampling.py): counts per source and class, caps, errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from callintent.config import ConfigError, load_config
from training.config import TrainConfig
from training.sampling import SourceMix, draw_training_rows


def _rows(group: str, counts: dict[str, int]) -> tuple[list[dict], list[str]]:
    rows = [{"call_id": f"{group}-{label}-{i}", "label": label} for label, n in counts.items() for i in range(n)]
    return rows, [group] * len(rows)


def _cells(rows: list[dict]) -> Counter:
    return Counter((r["call_id"].split("-")[0], r["label"]) for r in rows)


def _three_sources() -> tuple[list[dict], list[str]]:
    # A corpus with every class, a real set with only buying/service (mostly buying), one without noise.
    a, ga = _rows("corpus", {"buying": 400, "service": 300, "informational": 150, "noise": 150})
    b, gb = _rows("sgd", {"buying": 900, "service": 60})
    c, gc = _rows("clinc", {"buying": 300, "service": 300, "informational": 300})
    return a + b + c, ga + gb + gc


def test_every_class_gets_its_share_and_files_split_it_by_weight() -> None:
    rows, groups = _three_sources()
    mix = SourceMix(weights=(1.0, 0.5, 1.0), rows=2000, max_repeat=4)
    drawn, report = draw_training_rows(rows, groups, mix, {"corpus": 1.0, "sgd": 0.5, "clinc": 1.0}, seed=0)
    cells = _cells(drawn)
    by_class = Counter(label for _, label in cells.elements())
    assert len(drawn) == 2000
    # Uniform class shares, whatever the files hold: 500 each (noise comes from the corpus alone).
    assert by_class == {"buying": 500, "service": 500, "informational": 500, "noise": 500}
    assert cells[("corpus", "noise")] == 500
    # Inside buying, 1 : 0.5 : 1 -> 200 / 100 / 200.
    assert (cells[("corpus", "buying")], cells[("sgd", "buying")], cells[("clinc", "buying")]) == (200, 100, 200)
    # Informational: corpus and clinc only, 250 each.
    assert cells[("corpus", "informational")] == cells[("clinc", "informational")] == 250
    assert report.drawn["sgd/buying"] == 100 and report.loaded["sgd/buying"] == 900
    assert report.class_shares == {"buying": 0.25, "service": 0.25, "informational": 0.25, "noise": 0.25}


def test_a_small_cell_is_repeated_at_most_max_repeat_times_and_the_rest_goes_to_other_files() -> None:
    rows, groups = _three_sources()
    # sgd has 60 service rows; its weight asks for a third of 1000 service rows = 333.
    mix = SourceMix(weights=(1.0, 1.0, 1.0), rows=4000, max_repeat=2.0)
    drawn, _ = draw_training_rows(rows, groups, mix, {"corpus": 1.0, "sgd": 1.0, "clinc": 1.0}, seed=0)
    cells = _cells(drawn)
    assert cells[("sgd", "service")] == 120  # 60 rows x 2
    assert sum(n for (_, label), n in cells.items() if label == "service") == 1000  # the class keeps its share
    assert cells[("corpus", "service")] + cells[("clinc", "service")] == 880
    per_row = Counter(r["call_id"] for r in drawn if r["call_id"].startswith("sgd-service"))
    assert set(per_row.values()) == {2}


def test_a_class_every_file_caps_is_short_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    rows, groups = _three_sources()
    mix = SourceMix(weights=(1.0, 1.0, 1.0), rows=2000, max_repeat=2.0)
    drawn, report = draw_training_rows(rows, groups, mix, {"corpus": 1.0, "sgd": 1.0, "clinc": 1.0}, seed=0)
    assert report.drawn["corpus/noise"] == 300  # 150 rows x 2, not the 500 asked for
    assert len(drawn) == 1800
    assert "noise: 300 of 500 rows" in caplog.text


def test_repeats_are_spread_evenly_and_the_draw_is_seeded() -> None:
    rows, groups = _three_sources()
    mix = SourceMix(weights=(1.0, 0.5, 1.0), rows=2000, max_repeat=4)
    weights = {"corpus": 1.0, "sgd": 0.5, "clinc": 1.0}
    first, _ = draw_training_rows(rows, groups, mix, weights, seed=3)
    again, _ = draw_training_rows(rows, groups, mix, weights, seed=3)
    other, _ = draw_training_rows(rows, groups, mix, weights, seed=4)
    assert [r["call_id"] for r in first] == [r["call_id"] for r in again]
    assert [r["call_id"] for r in first] != [r["call_id"] for r in other]
    noise = Counter(r["call_id"] for r in first if r["label"] == "noise")
    assert len(noise) == 150 and set(noise.values()) <= {3, 4}  # 500 over 150 rows: 3 or 4 copies each


def test_explicit_class_shares_and_a_class_no_weighted_file_has() -> None:
    rows, groups = _three_sources()
    mix = SourceMix(weights=(1.0, 1.0, 1.0), class_shares=(0.4, 0.3, 0.2, 0.1), rows=1000)
    drawn, _ = draw_training_rows(rows, groups, mix, {"corpus": 1.0, "sgd": 1.0, "clinc": 1.0}, seed=0)
    assert Counter(r["label"] for r in drawn) == {"buying": 400, "service": 300, "informational": 200, "noise": 100}
    # The corpus (the only file with noise) weighted 0 while noise keeps a share: refused, naming the class.
    with pytest.raises(ValueError, match="'noise'"):
        draw_training_rows(rows, groups, mix, {"corpus": 0.0, "sgd": 1.0, "clinc": 1.0}, seed=0)
    # Uniform shares only cover the classes the weighted files have.
    drawn, report = draw_training_rows(rows, groups, SourceMix(weights=(0.0, 1.0, 1.0), rows=900),
                                       {"corpus": 0.0, "sgd": 1.0, "clinc": 1.0}, seed=0)
    assert set(report.class_shares) == {"buying", "service", "informational"}
    assert Counter(r["label"] for r in drawn) == {"buying": 300, "service": 300, "informational": 300}


@pytest.mark.parametrize("mix, match", [
    ({"weights": [1, -1]}, "mix.weights"),
    ({"weights": [0, 0]}, "at least one weight"),
    ({"weights": [1, 1], "class_shares": "balanced"}, "class_shares"),
    ({"weights": [1, 1], "class_shares": [1, 1]}, "class_shares"),
    ({"weights": [1, 1], "max_repeat": 0.5}, "max_repeat"),
    ({"weights": [1, 1, 1]}, "3 weights but train_files has 2 files"),
])
def test_config_rejects_bad_mix_naming_the_key(mix: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(None, TrainConfig, {"train_files": ["a.jsonl", "b.jsonl"], "mix": mix})


def test_train_draws_the_mix_from_the_files(tmp_path: Path) -> None:
    """``mix_training_rows`` groups rows by the file they came from (not their ``source`` column)."""
    from data.dataset import load_labeled
    from training.train import mix_training_rows

    def write(name: str, counts: dict[str, int], source: str) -> str:
        path = tmp_path / f"{name}.jsonl"
        with path.open("w") as f:
            for label, n in counts.items():
                for i in range(n):
                    f.write(json.dumps({"call_id": f"{name}-{label}-{i}", "transcript": f"{name} {label} call number {i}",
                                        "label": label, "signals": None, "source": source, "split": "train"}) + "\n")
        return str(path)

    files = [write("corpus", {"buying": 40, "noise": 20}, "google_ads"),
             write("real", {"buying": 100, "service": 30}, "google_ads")]
    config = load_config(None, TrainConfig, {"train_files": files, "mix": {"weights": [1, 1], "rows": 300,
                                                                           "max_repeat": 5}})
    train_rows = load_labeled(files)["train"]
    drawn, report = mix_training_rows(config, train_rows)
    assert len(drawn) == 300
    assert report["drawn"] == {"corpus/buying": 50, "corpus/noise": 100, "real/buying": 50, "real/service": 100}
    assert drawn.features == train_rows.features
    off = load_config(None, TrainConfig, {"train_files": files})
    same, none = mix_training_rows(off, train_rows)
    assert none is None and len(same) == len(train_rows)
