"""The review loop: export misclassified calls, correct a label, feed it back as corrections."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from model_fixtures import build_tiny_artifact

from callintent.cli import main
from data.dataset import load_labeled, load_labeled_with_report
from evaluation.config import EvalConfig
from evaluation.evalset import load_eval_set
from evaluation.evaluate import evaluate_model, resolve_model
from evaluation.review import (
    ERROR_COLUMNS, ReviewFileError, corrections_from_review, export_errors, write_corrections,
)

ROWS = [
    ("r1", "hi I saw your ad, how much does a new roof cost", "buying"),
    ("r2", "checking on my order", "buying"),                  # mislabeled: really service
    ("r3", "what are your hours on saturday", "informational"),
    ("r4", "press one, this is a robot", "service"),           # mislabeled: really noise
    ("r5", "my bill is wrong, please cancel", "service"),
    ("r6", "I need a quote for a furnace install", "buying"),
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("review")
    artifact = build_tiny_artifact(tmp / "artifact")
    data = tmp / "base.jsonl"
    data.write_text("".join(json.dumps({"call_id": c, "transcript": t, "label": lab, "signals": None,
                                        "source": "direct"}) + "\n" for c, t, lab in ROWS))
    evaluation = evaluate_model(resolve_model(artifact), load_eval_set([data], split="all"),
                                EvalConfig(bootstrap_samples=0, latency_iterations=0))
    return tmp, data, evaluation


def test_export_lists_exactly_the_misclassified_calls(setup):
    tmp, _, evaluation = setup
    path = export_errors(evaluation, tmp / "errors.csv")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == ERROR_COLUMNS
    assert sorted(r["call_id"] for r in rows) == ["r2", "r4"]
    r2 = next(r for r in rows if r["call_id"] == "r2")
    assert (r2["label"], r2["predicted"], r2["corrected_label"]) == ("buying", "service", "")
    assert float(r2["p_service"]) == pytest.approx(float(r2["confidence"]))
    assert json.loads(r2["predicted_signals"]) == ["existing_customer"]
    assert r2["signals"] == ""  # unlabeled signals stay empty (not "[]")

    jsonl = export_errors(evaluation, tmp / "errors.jsonl")
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["call_id"] for r in lines] == [r["call_id"] for r in rows]
    assert set(lines[0]["probabilities"]) == {"buying", "service", "informational", "noise"}
    with pytest.raises(ReviewFileError, match=r"\.csv or \.jsonl"):
        export_errors(evaluation, tmp / "errors.xlsx")


def _review_csv(path: Path, edits: dict[str, dict[str, str]]) -> Path:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row.update(edits.get(row["call_id"], {}))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(ERROR_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_round_trip_changes_the_training_data(setup, tmp_path, capsys):
    _, data, evaluation = setup
    reviewed = _review_csv(export_errors(evaluation, tmp_path / "errors.csv"),
                           {"r2": {"corrected_label": "service", "note": "customer asks about an order"}})
    assert corrections_from_review(reviewed) == [{"call_id": "r2", "label": "service"}]

    # the CLI path QA uses
    out = tmp_path / "corrections.jsonl"
    assert main(["evaluate", "review-import", str(reviewed), "--out", str(out)]) == 0
    assert "wrote 1 corrections" in capsys.readouterr().out
    assert [json.loads(line) for line in out.read_text().splitlines()] == [{"call_id": "r2", "label": "service"}]

    before = load_labeled([data])
    after, report = load_labeled_with_report([data], corrections=[out])
    assert report.corrections_applied == 1

    def rows(dsd):
        return {r["call_id"]: r for split in dsd for r in dsd[split].to_list()}

    old, new = rows(before), rows(after)
    assert old["r2"]["label"] == "buying" and new["r2"]["label"] == "service"
    assert new["r2"]["transcript"] == old["r2"]["transcript"]  # only the label was corrected
    assert new["r2"]["source"] == "direct"
    assert {k: v["label"] for k, v in new.items() if k != "r2"} == {k: v["label"] for k, v in old.items() if k != "r2"}

    # evaluating with the correction applied: the call is no longer an error
    corrected_set = load_eval_set([data], split="all", corrections=[out])
    assert corrected_set.corrections_applied == 1
    assert corrected_set.labels[corrected_set.call_ids.index("r2")] == "service"


def test_jsonl_review_with_signals(setup, tmp_path):
    _, data, evaluation = setup
    path = export_errors(evaluation, tmp_path / "errors.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        if row["call_id"] == "r4":
            row["corrected_label"] = "noise"
            row["corrected_signals"] = []
        if row["call_id"] == "r2":
            row["corrected_signals"] = "existing_customer; urgency"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    corrections = corrections_from_review(path)
    assert sorted(corrections, key=lambda c: c["call_id"]) == [
        {"call_id": "r2", "signals": ["urgency", "existing_customer"]},
        {"call_id": "r4", "label": "noise", "signals": []},
    ]
    out = write_corrections(corrections, tmp_path / "c.jsonl")
    dsd, report = load_labeled_with_report([data], corrections=[out])
    assert report.corrections_applied == 2
    rows_by_id = {r["call_id"]: r for split in dsd for r in dsd[split].to_list()}
    assert rows_by_id["r4"]["label"] == "noise" and rows_by_id["r4"]["signals_labeled"]
    assert rows_by_id["r2"]["label"] == "buying" and rows_by_id["r2"]["signals"] == ["urgency", "existing_customer"]


def test_review_problems_are_named_by_line(tmp_path):
    path = tmp_path / "errors.csv"
    header = ",".join(ERROR_COLUMNS)
    blank = {c: "" for c in ERROR_COLUMNS}

    def line(**kw):
        return ",".join({**blank, **kw}[c] for c in ERROR_COLUMNS)

    path.write_text("\n".join([header, line(call_id="a", label="buying", corrected_label="sales"),
                               line(call_id="b", label="buying", corrected_label="buying"),
                               line(call_id="c", label="buying", corrected_signals="price"),
                               line(call_id="", label="buying", corrected_label="noise")]) + "\n")
    with pytest.raises(ReviewFileError) as e:
        corrections_from_review(path)
    message = str(e.value)
    assert f"{path}:2: corrected_label 'sales' is not a class" in message
    assert f"{path}:4: corrected_signals has unknown signal 'price'" in message
    assert f"{path}:5: corrected row without call_id" in message
    assert ":3:" not in message  # repeating the original label is skipped, not an error
    (tmp_path / "plain.csv").write_text("call_id,label\nx,buying\n")
    with pytest.raises(ReviewFileError, match="no corrected_label column"):
        corrections_from_review(tmp_path / "plain.csv")
