"""What QA should label next: uncertain calls first, never two near-duplicates in one batch, and the
batch goes round the review loop (select -> QA fills corrected_label -> review-import -> calls export)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from calllog_fixtures import record

from callintent.cli import main
from callintent.errors import UserError
from data.call_log import CallLogExportError, ExportedCall, read_call_log_export
from models.labels import CLASS_NAMES, SIGNAL_NAMES
from evaluation.labeling import (
    SelectionConfig, choose_diverse, labeling_rows, margin, read_excluded_ids, select_for_labeling, text_vectors,
)
from evaluation.review import ERROR_COLUMNS, corrections_from_review
from models.scores import IntentScores, SignalScore


class FakeScorer:
    """Scores each text with the probabilities given for it (the ``Scorer`` protocol, no model)."""

    model_id = "intent/v9"

    def __init__(self, probabilities: dict[str, Sequence[float]]) -> None:
        self.probabilities = probabilities
        self.seen: list[list[str]] = []

    def predict(self, texts: Sequence[str], *, evidence: bool = True) -> list[IntentScores]:
        self.seen.append(list(texts))
        out = []
        for text in texts:
            probs = dict(zip(CLASS_NAMES, self.probabilities[text]))
            label = max(probs, key=probs.get)
            out.append(IntentScores(label=label, probabilities=probs, buying_intent=probs["buying"],
                                    signals=tuple(SignalScore(s, 0.1, False) for s in SIGNAL_NAMES),
                                    model=self.model_id))
        return out


def call(call_id: str, transcript: str, *, label: str = "buying", label_source: str = "model") -> ExportedCall:
    return ExportedCall(call_id=call_id, transcript=transcript, label=label, label_source=label_source,
                        model="intent/v7", source="google", campaign="spring", industry="hvac",
                        location=f"calls.jsonl:{call_id}")


# (call_id, transcript, probabilities buying/service/informational/noise): margins in the comment.
CALLS = [
    ("sure", "press one now to claim your free cruise", (0.02, 0.02, 0.01, 0.95)),         # 0.93
    ("quote", "I need a quote for a new furnace install", (0.60, 0.30, 0.05, 0.05)),        # 0.30
    ("hours", "what are your hours on saturday, and do you take walk ins", (0.05, 0.40, 0.45, 0.10)),  # 0.05
    ("hours-again", "uh what are your hours on saturday and do you take walk-ins please",
     (0.05, 0.41, 0.44, 0.10)),                                                              # 0.03: near-dup
    ("quote-copy", "I NEED a quote for a new furnace install!", (0.55, 0.35, 0.05, 0.05)),  # 0.20: exact dup
    ("payment", "can you please help me make a payment on my bill", (0.30, 0.42, 0.08, 0.20)),  # 0.12
    ("qa-done", "is this the pharmacy", (0.26, 0.25, 0.25, 0.24)),                          # QA-labeled
    ("sent", "hi is anybody there", (0.25, 0.25, 0.25, 0.25)),                             # excluded
]


def _calls() -> list[ExportedCall]:
    return [call(i, t, label_source="qa" if i == "qa-done" else "model") for i, t, _ in CALLS]


def _scorer() -> FakeScorer:
    return FakeScorer({t: p for _, t, p in CALLS})


def test_margin_is_the_gap_between_the_two_most_probable_classes():
    assert margin([0.05, 0.40, 0.45, 0.10]) == pytest.approx(0.05)
    assert margin([0.25, 0.25, 0.25, 0.25]) == 0.0
    assert margin([1.0, 0.0, 0.0, 0.0]) == 1.0


def test_uncertain_first_qa_labeled_and_excluded_skipped_duplicates_kept_apart():
    scorer = _scorer()
    selection = select_for_labeling(_calls(), scorer, SelectionConfig(n=10, diversity_weight=0.0),
                                    exclude={"sent"}, progress=False)
    assert [c.call.call_id for c in selection.chosen] == ["hours-again", "payment", "quote-copy", "sure"]
    assert [round(c.margin, 2) for c in selection.chosen] == [0.03, 0.12, 0.20, 0.93]
    assert (selection.calls, selection.qa_labeled, selection.excluded, selection.candidates,
            selection.near_duplicates) == (8, 1, 1, 6, 2)
    # Of each (near-)duplicate pair only the more uncertain one is chosen ("hours" 0.05, "quote" 0.30 left out).
    scored = [t for batch in scorer.seen for t in batch]
    assert "is this the pharmacy" not in scored and "hi is anybody there" not in scored  # never rescored


def test_the_most_uncertain_of_two_near_identical_calls_is_the_one_chosen():
    texts = ["hello I would like to book an appointment for a cleaning next week",
             "hello I'd like to book an appointment for a cleaning next week please",
             "my card was declined at the store"]
    vectors = text_vectors(texts)
    similarity = (vectors @ vectors.T).toarray()
    assert similarity[0, 1] > 0.7 > similarity[0, 2]  # what the default threshold separates
    chosen, passed_over = choose_diverse([0.8, 0.9, 0.5], texts, n=3, max_similarity=0.7, diversity_weight=0.0)
    assert (chosen, passed_over) == ([1, 2], 1)
    # Above their similarity both may go in (no other rule keeps them apart); exact duplicates never do.
    assert choose_diverse([0.8, 0.9, 0.5], texts, n=3, max_similarity=1.0, diversity_weight=0.0)[0] == [1, 0, 2]
    assert choose_diverse([0.8, 0.9], ["Hi there.", "hi there"], n=2, max_similarity=1.0,
                          diversity_weight=0.0) == ([1], 1)
    # A copy of a call QA already labeled is passed over, however uncertain.
    assert choose_diverse([0.8, 0.9, 0.5], texts, n=3, max_similarity=0.7, diversity_weight=0.0,
                          known=["Hello, I would like to book an appointment for a cleaning next week!"]) == ([2], 2)


def test_diversity_weight_prefers_an_unlike_call_over_a_slightly_more_uncertain_similar_one():
    texts = ["can I get a quote to replace my water heater",
             "can I get a quote to fix my garage door",
             "do you deliver to the north side of town"]
    vectors = text_vectors(texts)
    similarity = (vectors @ vectors.T).toarray()
    assert 0.2 < similarity[0, 1] < 0.7 and similarity[0, 2] < 0.1
    uncertainty = [0.9, 0.85, 0.8]
    assert choose_diverse(uncertainty, texts, n=3, max_similarity=0.7, diversity_weight=0.0)[0] == [0, 1, 2]
    # 0.85 - 0.3 * sim(0, 1) < 0.8 - 0.3 * sim(0, 2): the different request goes second.
    assert choose_diverse(uncertainty, texts, n=3, max_similarity=0.7, diversity_weight=0.3)[0] == [0, 2, 1]


def test_batch_size_caps_the_batch_and_rows_are_in_review_format():
    selection = select_for_labeling(_calls(), _scorer(), SelectionConfig(n=2, diversity_weight=0.0),
                                    exclude={"sent"}, progress=False)
    rows = labeling_rows(selection)
    assert [r["call_id"] for r in rows] == ["hours-again", "payment"]
    first = rows[0]
    assert set(first) == (set(ERROR_COLUMNS) - {f"p_{c}" for c in CLASS_NAMES}) | {"probabilities"}
    assert (first["label"], first["predicted"], first["confidence"], first["model"]) == (
        "", "informational", 0.44, "intent/v9")
    assert first["probabilities"] == {"buying": 0.05, "service": 0.41, "informational": 0.44, "noise": 0.1}
    assert first["note"] == "#1: margin 0.030; logged as buying by intent/v7"
    assert (first["source"], first["campaign"], first["industry"], first["signals"]) == (
        "google", "spring", "hvac", None)


def test_nothing_to_select_is_a_clear_error():
    with pytest.raises(UserError, match="holds no calls"):
        select_for_labeling([], _scorer())
    only_labeled = [call("a", "is this the pharmacy", label_source="qa"), call("b", "hi is anybody there")]
    with pytest.raises(UserError, match="nothing left to label: of 2 calls, 1 have a QA label and 1 are excluded"):
        select_for_labeling(only_labeled, _scorer(), exclude={"b"})
    with pytest.raises(ValueError, match="n must be a positive integer"):
        SelectionConfig(n=0)
    with pytest.raises(ValueError, match="max_similarity"):
        SelectionConfig(max_similarity=1.5)


def test_export_reader_names_the_malformed_row_and_keeps_the_newest_row_of_a_call(tmp_path):
    good = {"call_id": "c1", "transcript": "hi", "label": "buying", "label_source": "model", "model": "intent/v7"}
    old, new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    old.write_text(json.dumps(good) + "\n")
    new.write_text(json.dumps({**good, "label": "service", "label_source": "qa"}) + "\n")
    calls = read_call_log_export([old, new])
    assert [(c.call_id, c.label, c.qa_labeled, c.location) for c in calls] == [("c1", "service", True, f"{new}:1")]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(good) + "\n" + "{not json\n"
                   + json.dumps({"call_id": "c3", "transcript": "hi", "label": "buying"}) + "\n")
    with pytest.raises(CallLogExportError, match=rf"^{bad}:2: not valid JSON .*\(and 1 more malformed rows\)$"):
        read_call_log_export([bad])
    plain = tmp_path / "corpus.jsonl"
    plain.write_text(json.dumps({"call_id": "c4", "transcript": "hi", "label": "buying"}) + "\n")
    with pytest.raises(CallLogExportError, match=rf"{plain}:1: label_source: None .*callintent calls export"):
        read_call_log_export([plain])


def test_excluded_ids_come_from_corrections_and_earlier_batches(tmp_path):
    corrections = tmp_path / "corrections.jsonl"
    corrections.write_text('{"call_id": "a", "label": "noise"}\n{"call_id": "b", "label": "buying"}\n')
    batch = tmp_path / "to_label.csv"
    batch.write_text("call_id,transcript,corrected_label\nc,hello,\n")
    assert read_excluded_ids([corrections, batch]) == {"a", "b", "c"}
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"label": "noise"}\n')
    with pytest.raises(UserError, match=rf"{broken}:1: --exclude rows need a call_id"):
        read_excluded_ids([broken])


# ----------------------------------------------------------------------------------------------
# The command, with the tiny keyword model and a real call-log export

# Tiny-model margins (fp32): near-uniform without keywords, ~1.0 with one class's keywords.
LOGGED = [
    ("roof", "hi I saw your ad, how much does a new roof cost", "buying"),        # 1.000
    ("order", "checking on my order", "service"),                                 # 0.994
    ("robot", "press one, this is a robot", "noise"),                             # 1.000
    ("store", "is this the right number for the store", "buying"),                # 0.001
    ("store-please", "hello, is this the right number for the store please", "buying"),  # 0.014, near-dup
    ("bill-hours", "my bill is wrong, what are your hours", "service"),           # 0.037
    ("hello", "Hello there, how are you?", "noise"),                              # 0.116
    ("hello-copy", "hello there how are you", "buying"),                          # 0.151, exact dup
    ("qa-done", "hmm okay", "noise"),                                             # QA-labeled below
]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    from model_fixtures import build_tiny_artifact

    return build_tiny_artifact(tmp_path_factory.mktemp("labeling") / "artifact")


def _export(tmp_path: Path, corrections: Path | None = None) -> Path:
    from serving.calllog.store import open_store

    db = tmp_path / "calls.db"
    url = f"sqlite:///{db}"
    if not db.exists():  # the same log, exported again after QA's corrections
        store = open_store(url)
        store.write_calls([record(c, label, transcript=t, minute=k, source="google")
                           for k, (c, t, label) in enumerate(LOGGED)])
        store.close()
    out = tmp_path / "calls.jsonl"
    fixes = ["--corrections", str(corrections)] if corrections else []
    assert main(["calls", "export", "--db", url, "--out", str(out), *fixes]) == 0
    return out


def _select(export: Path, artifact: Path, out: Path, *extra: str) -> int:
    return main(["evaluate", "select-for-labeling", str(export), "--model", str(artifact), "--variant", "fp32",
                 "--n", "3", "--diversity-weight", "0", "--out", str(out), *extra])


def test_select_review_import_export_round_trip(tmp_path, artifact, capsys):
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"call_id": "qa-done", "label": "noise"}) + "\n")
    export = _export(tmp_path, qa)
    batch = tmp_path / "to_label.csv"
    assert _select(export, artifact, batch) == 0
    printed = capsys.readouterr().out
    assert ("chose 3 of 8 unlabeled calls for labeling, scored by intent/unregistered (1 already QA-labeled, "
            "0 excluded, 2 passed over as near-duplicates of a chosen or labeled call)") in printed

    with batch.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == ERROR_COLUMNS
    # The logged probabilities (0.9 on the logged label) are stale: the order is the rescored margins'.
    assert [r["call_id"] for r in rows] == ["store", "bill-hours", "hello"]
    margins = [margin([float(r[f"p_{c}"]) for c in CLASS_NAMES]) for r in rows]
    assert margins == sorted(margins) and margins[0] < 0.01 and margins[2] < 0.2
    assert all(r["label"] == "" and r["corrected_label"] == "" for r in rows)
    assert rows[1]["note"].startswith("#2: margin ") and rows[1]["note"].endswith("logged as service by intent/v7")

    # QA labels every row, confirming the model on one: each becomes a correction, confirmation included.
    labels = {"store": "informational", "bill-hours": rows[1]["predicted"], "hello": "noise"}
    for row in rows:
        row["corrected_label"] = labels[row["call_id"]]
    with batch.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(ERROR_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    assert [c["label"] for c in corrections_from_review(batch)] == list(labels.values())
    corrections = tmp_path / "corrections.jsonl"
    assert main(["evaluate", "review-import", str(batch), "--out", str(corrections)]) == 0
    qa.write_text(qa.read_text() + corrections.read_text())

    again = _export(tmp_path, qa)
    exported = {r["call_id"]: r for r in map(json.loads, again.read_text().splitlines())}
    assert {c for c, r in exported.items() if r["label_source"] == "qa"} == {"qa-done", *labels}
    assert exported["store"]["label"] == "informational"

    # The next batch: the labeled calls' copies ("store-please", "hello-copy") are not offered again.
    capsys.readouterr()
    assert _select(again, artifact, tmp_path / "next.csv") == 0
    assert "chose 3 of 5 unlabeled calls" in capsys.readouterr().out
    with (tmp_path / "next.csv").open(newline="") as f:
        ids = [r["call_id"] for r in csv.DictReader(f)]
    assert ids[0] == "order" and sorted(ids[1:]) == ["robot", "roof"]  # the last two both at margin ~1.0
    # With that batch still at QA (--exclude) only the copies of labeled calls are left: nothing to offer.
    assert _select(again, artifact, tmp_path / "third.csv", "--exclude", str(tmp_path / "next.csv")) == 2
    assert ("nothing left to label: of 9 calls, 4 have a QA label, 3 are excluded and the other 2 are "
            "near-duplicates of labeled calls") in capsys.readouterr().err
    assert not (tmp_path / "third.csv").exists()


@pytest.mark.parametrize("case, expected", [
    ("empty", "the export holds no calls"),
    ("malformed", "calls.jsonl:2: transcript: call 'b' has no transcript text"),
    ("unknown-model", "v99"),
    ("no-model", "needs the model to score with"),
    ("bad-suffix", "written as .csv or .jsonl"),
])
def test_command_errors_are_one_line_and_exit_nonzero(tmp_path, artifact, capsys, case, expected):
    export = tmp_path / "calls.jsonl"
    row = {"call_id": "a", "transcript": "checking on my order", "label": "service", "label_source": "model"}
    if case == "empty":
        export.write_text("")
    elif case == "malformed":
        export.write_text(json.dumps(row) + "\n" + json.dumps({**row, "call_id": "b", "transcript": " "}) + "\n")
    else:
        export.write_text(json.dumps(row) + "\n")
    model = {"unknown-model": ["--model", "v99", "--registry", str(tmp_path / "registry")],
             "no-model": []}.get(case, ["--model", str(artifact)])
    out = "to_label.xlsx" if case == "bad-suffix" else "to_label.csv"
    code = main(["evaluate", "select-for-labeling", str(export), *model, "--out", str(tmp_path / out)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "to_label.csv").exists()
