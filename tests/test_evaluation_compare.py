"""Comparison mode: metric deltas and per-call prediction flips (constructed case and two tiny models)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from model_fixtures import build_tiny_artifact

from models.labels import CLASS_INDEX, CLASS_NAMES, SIGNAL_NAMES
from evaluation.compare import BROKEN, CHANGED, FIXED, MetricDelta, compare
from evaluation.config import EvalConfig
from evaluation.evalset import EvalSet, load_eval_set
from evaluation.evaluate import ModelRef, evaluate_model, evaluation_from_scores, resolve_model
from evaluation.scoring import ScoredSet
from models.artifact import ArtifactMeta
from models.predictor import IntentPredictor
from models.scores import IntentScores, SignalScore

B, S, I, N = (CLASS_INDEX[c] for c in ("buying", "service", "informational", "noise"))
QUICK = EvalConfig(bootstrap_samples=0, latency_iterations=0)


def fake_eval_set(labels: list[int]) -> EvalSet:
    n = len(labels)
    return EvalSet(
        call_ids=tuple(f"call-{i}" for i in range(n)), transcripts=tuple(f"text {i}" for i in range(n)),
        labels=tuple(CLASS_NAMES[c] for c in labels), label_ids=np.asarray(labels),
        signal_labels=np.zeros((n, len(SIGNAL_NAMES)), np.float32), signals_labeled=np.zeros(n, bool),
        signals=((),) * n, source=("",) * n, campaign=("",) * n, industry=("",) * n, split="test",
        files=("fake.jsonl",), fingerprint="f" * 64,
    )


def fake_scored(predictions: list[int], confidence: float = 0.7) -> ScoredSet:
    n, k = len(predictions), len(CLASS_NAMES)
    probs = np.full((n, k), (1 - confidence) / (k - 1))
    probs[np.arange(n), predictions] = confidence
    scores = tuple(IntentScores(label=CLASS_NAMES[p], probabilities=dict(zip(CLASS_NAMES, map(float, row))),
                                buying_intent=float(row[B]),
                                signals=tuple(SignalScore(s, 0.0, False) for s in SIGNAL_NAMES), model="fake")
                   for p, row in zip(predictions, probs))
    return ScoredSet(model_id="fake", variant="fp32", class_probs=probs, signal_probs=np.zeros((n, len(SIGNAL_NAMES))),
                     pred_ids=np.asarray(predictions), scores=scores, signal_thresholds=(0.5,) * len(SIGNAL_NAMES))


def fake_model(model_id: str) -> ModelRef:
    meta = ArtifactMeta(classes=CLASS_NAMES, signals=SIGNAL_NAMES, max_length=16)
    return ModelRef(ref=model_id, model_id=model_id, directory=Path("/nonexistent"), registry_version=model_id,
                    meta=meta)


def test_flips_and_deltas_on_a_constructed_case():
    labels = [B, S, I, N, B, S]
    eval_set = fake_eval_set(labels)
    baseline = evaluation_from_scores(fake_model("intent/v1"), eval_set, fake_scored([B, S, S, N, I, N]), QUICK)
    candidate = evaluation_from_scores(fake_model("intent/v2"), eval_set, fake_scored([B, I, I, N, S, N], 0.9), QUICK)
    comparison = compare(candidate, baseline)
    # call 1: service, right -> wrong (broken); call 2: informational, wrong -> right (fixed);
    # call 4: buying, informational -> service (changed); calls 0, 3, 5 keep their prediction.
    assert [(f.call_id, f.kind, f.baseline_prediction, f.candidate_prediction) for f in comparison.flips] == [
        ("call-1", BROKEN, "service", "informational"),
        ("call-2", FIXED, "service", "informational"),
        ("call-4", CHANGED, "informational", "service"),
    ]
    assert (comparison.count(FIXED), comparison.count(BROKEN), comparison.count(CHANGED)) == (1, 1, 1)
    assert comparison.flips[0].candidate_confidence == pytest.approx(0.9)
    deltas = {d.key: d for d in comparison.deltas}
    # both get 3 of 6 right
    assert deltas["accuracy"].delta == pytest.approx(0.0) and deltas["accuracy"].verdict == "same"
    # service recall: baseline 1/2 (call 1), candidate 0/2 -> worse; informational recall 0 -> 1 -> better
    assert deltas["recall.service"].baseline == pytest.approx(0.5)
    assert deltas["recall.service"].candidate == pytest.approx(0.0)
    assert deltas["recall.service"].verdict == "worse"
    assert deltas["recall.informational"].verdict == "better"
    doc = comparison.to_json()
    assert doc["flips"]["total"] == 3 and doc["flips"][BROKEN] == 1
    assert doc["deltas"]["recall.service"]["delta"] == pytest.approx(-0.5)
    json.dumps(doc)  # JSON-ready


def test_metric_delta_direction_and_tolerance():
    assert MetricDelta("ece", "ECE", 0.05, 0.03, higher_is_better=False).verdict == "better"
    assert MetricDelta("f1", "F1", 0.80, 0.79).verdict == "worse"
    assert MetricDelta("f1", "F1", 0.80, 0.8004).verdict == "same"
    assert MetricDelta("ms", "latency", 10.0, 10.5, higher_is_better=False, tolerance=1.0).verdict == "same"
    assert MetricDelta("f1", "F1", None, 0.5).delta is None


def test_compare_refuses_different_calls():
    a = evaluation_from_scores(fake_model("a"), fake_eval_set([B, S]), fake_scored([B, S]), QUICK)
    b = evaluation_from_scores(fake_model("b"), fake_eval_set([B, S, N]), fake_scored([B, S, N]), QUICK)
    with pytest.raises(ValueError, match="same calls"):
        compare(a, b)


def test_two_tiny_models_with_different_seeds(tmp_path):
    """End to end: the flips are exactly the calls where the two artifacts' argmax differs."""
    a1 = build_tiny_artifact(tmp_path / "a1", seed=0)
    a2 = build_tiny_artifact(tmp_path / "a2", seed=1)
    # Keyword-free openings: the class head sees only the seed-dependent noise, so the seeds disagree on some.
    texts = ["hello is anybody there", "yes hi good morning", "um so I was wondering", "hello there friend",
             "good afternoon how are you", "sorry who is this", "hi I saw your ad, how much does a new roof cost",
             "checking on my order", "well I guess so", "okay thank you bye", "hmm let me think about it",
             "is this the right place", "can you hear me now", "I will call back later"]
    labels = ["buying", "service", "informational", "noise"]
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(json.dumps({"call_id": f"k{i}", "transcript": t, "label": labels[i % 4],
                                        "signals": None, "split": "test"}) + "\n" for i, t in enumerate(texts)))
    eval_set = load_eval_set([path])
    base = evaluate_model(resolve_model(a1), eval_set, QUICK)
    cand = evaluate_model(resolve_model(a2), eval_set, QUICK)
    comparison = compare(cand, base)

    p1, _ = IntentPredictor.load(a1).predict_arrays(list(eval_set.transcripts))
    p2, _ = IntentPredictor.load(a2).predict_arrays(list(eval_set.transcripts))
    expected = {eval_set.call_ids[i] for i in np.flatnonzero(p1.argmax(1) != p2.argmax(1))}
    assert expected, "fixture texts should make the two seeds disagree somewhere"
    assert {f.call_id for f in comparison.flips} == expected
    for f in comparison.flips:
        right_before, right_after = f.baseline_prediction == f.label, f.candidate_prediction == f.label
        assert f.kind == (FIXED if right_after else BROKEN if right_before else CHANGED)
    # the keyword calls are confident and the same for both seeds
    assert not {"k6", "k7"} & {f.call_id for f in comparison.flips}
