"""Metric values of models/metrics.py: small cases computed by hand, scikit-learn as a reference, and
training and evaluation reading one definition."""

from __future__ import annotations

import numpy as np
import pytest

from models.labels import CLASS_INDEX, CLASS_NAMES, SIGNAL_INDEX, SIGNAL_NAMES
from models.metrics import (
    ECE_BINS, binary_prf, classification_metrics, expected_calibration_error, negative_log_likelihood, reliability,
    signal_metrics,
)

B, S, I, N = (CLASS_INDEX[c] for c in ("buying", "service", "informational", "noise"))

# Six calls: buying x2, service x2, informational, noise.
Y_TRUE = [B, B, S, S, I, N]
Y_PRED = [B, S, S, S, I, B]


def test_accuracy_macro_f1_and_per_class_by_hand():
    m = classification_metrics(Y_TRUE, Y_PRED)
    # correct: 0, 2, 3, 4 -> 4 of 6
    assert m.accuracy == pytest.approx(4 / 6)
    buying, service, info, noise = m.per_class
    # buying: predicted at 0 and 5, right at 0 -> P 1/2; found 1 of 2 -> R 1/2; F1 1/2
    assert (buying.precision, buying.recall, buying.f1) == pytest.approx((0.5, 0.5, 0.5))
    assert (buying.support, buying.predicted) == (2, 2)
    # service: predicted at 1, 2, 3, right at 2, 3 -> P 2/3; R 2/2; F1 = 2*(2/3)/(2/3+1) = 0.8
    assert (service.precision, service.recall, service.f1) == pytest.approx((2 / 3, 1.0, 0.8))
    assert (info.precision, info.recall, info.f1) == pytest.approx((1.0, 1.0, 1.0))
    # noise: never predicted -> precision undefined (None, not 0); recall 0; F1 0
    assert noise.precision is None
    assert noise.recall == 0.0 and noise.f1 == 0.0
    # macro-F1 over the four classes present
    assert m.macro_f1 == pytest.approx((0.5 + 0.8 + 1.0 + 0.0) / 4)
    assert m.confusion == ((1, 1, 0, 0), (0, 2, 0, 0), (0, 0, 1, 0), (1, 0, 0, 0))
    assert m.of("service") is service


def test_macro_f1_ignores_classes_absent_from_labels_and_predictions():
    # Only buying and service occur (like the SGD real-text set): informational/noise must not count as 0.
    m = classification_metrics([B, B, S, S], [B, S, S, S])
    f1_b = 2 * 1.0 * 0.5 / 1.5
    f1_s = 2 * (2 / 3) * 1.0 / (2 / 3 + 1.0)
    assert m.macro_f1 == pytest.approx((f1_b + f1_s) / 2)
    assert m.of("noise").recall is None and m.of("noise").f1 is None and m.of("noise").support == 0


def test_ece_six_examples_by_hand():
    probs = np.array([
        [0.95, 0.05, 0.0, 0.0],   # top 0.95 -> B, true B, right   (bin 0.9-1.0)
        [0.90, 0.10, 0.0, 0.0],   # top 0.90 -> B, true S, wrong   (bin 0.8-0.9, right edge inclusive)
        [0.10, 0.85, 0.05, 0.0],  # top 0.85 -> S, true S, right   (bin 0.8-0.9)
        [0.30, 0.65, 0.05, 0.0],  # top 0.65 -> S, true S, right   (bin 0.6-0.7)
        [0.40, 0.0, 0.60, 0.0],   # top 0.60 -> I, true B, wrong   (bin 0.5-0.6)
        [0.0, 0.0, 0.45, 0.55],   # top 0.55 -> N, true N, right   (bin 0.5-0.6)
    ])
    y = [B, S, S, S, B, N]
    # bin (0.9,1]: conf .95 acc 1 -> |.05| * 1/6
    # bin (0.8,.9]: conf (.90+.85)/2=.875, acc .5 -> .375 * 2/6
    # bin (0.6,.7]: conf .65 acc 1 -> .35 * 1/6
    # bin (0.5,.6]: conf (.60+.55)/2=.575, acc .5 -> .075 * 2/6
    expected = (0.05 * 1 + 0.375 * 2 + 0.35 * 1 + 0.075 * 2) / 6
    cal = reliability(y, probs, n_bins=10)
    assert cal.ece == pytest.approx(expected)
    assert expected_calibration_error(y, probs) == pytest.approx(expected)
    counts = [b.count for b in cal.bins]
    assert counts == [0, 0, 0, 0, 0, 2, 1, 0, 2, 1]
    assert cal.bins[8].confidence == pytest.approx(0.875) and cal.bins[8].accuracy == pytest.approx(0.5)
    assert cal.bins[0].confidence is None


def test_perfectly_calibrated_is_zero_and_overconfident_is_not():
    probs = np.array([[1.0, 0, 0, 0]] * 4)
    assert expected_calibration_error([B] * 4, probs) == pytest.approx(0.0)
    assert expected_calibration_error([B, B, S, S], probs) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="n_bins"):
        reliability([B], probs[:1], n_bins=0)


def test_bootstrap_is_deterministic_by_seed_and_contains_the_point_estimate():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 120)
    pred = np.where(rng.random(120) < 0.7, y, rng.integers(0, 4, 120))
    a = classification_metrics(y, pred, bootstrap_samples=150, seed=7)
    b = classification_metrics(y, pred, bootstrap_samples=150, seed=7)
    c = classification_metrics(y, pred, bootstrap_samples=150, seed=8)
    assert a.accuracy_ci == b.accuracy_ci and a.per_class == b.per_class
    assert a.accuracy_ci != c.accuracy_ci
    assert a.accuracy_ci.low <= a.accuracy <= a.accuracy_ci.high
    assert a.macro_f1_ci.low <= a.macro_f1 <= a.macro_f1_ci.high
    assert a.accuracy_ci.high - a.accuracy_ci.low > 0.05  # 120 calls: a real, not degenerate, interval
    for cm in a.per_class:
        assert cm.f1_ci.low <= cm.f1 <= cm.f1_ci.high
        assert cm.recall_ci.low <= cm.recall <= cm.recall_ci.high
    assert classification_metrics(y, pred).accuracy_ci is None


def test_signal_metrics_by_hand():
    k = len(SIGNAL_NAMES)
    truth = np.zeros((4, k))
    probs = np.full((4, k), 0.1)
    ad, price, urgency = SIGNAL_INDEX["ad_reference"], SIGNAL_INDEX["price_inquiry"], SIGNAL_INDEX["urgency"]
    truth[[0, 1], ad] = 1
    probs[[0, 2], ad] = 0.9          # ad: TP at 0, FN at 1, FP at 2 -> P .5 R .5 F1 .5
    truth[3, price] = 1
    probs[3, price] = 0.6            # price: threshold .7 below -> missed: P None, R 0, F1 0
    probs[1, urgency] = 0.8          # urgency: FP only -> P 0, R None
    thresholds = [0.5] * k
    thresholds[price] = 0.7
    s = signal_metrics(truth, probs, thresholds)
    assert s.rows == 4
    a, p, u = s.per_signal[ad], s.per_signal[price], s.per_signal[urgency]
    assert (a.precision, a.recall, a.f1, a.support, a.predicted) == (0.5, 0.5, 0.5, 2, 2)
    assert p.precision is None and p.recall == 0.0 and p.support == 1 and p.predicted == 0
    assert u.precision == 0.0 and u.recall is None and u.predicted == 1
    # macro over the 3 signals that occur (ad .5, price 0, urgency 0); micro: TP 1, FP 2, FN 2 -> 1/3
    assert s.macro_f1 == pytest.approx(0.5 / 3)
    assert s.micro_f1 == pytest.approx(2 * 1 / (2 * 1 + 2 + 2))
    none = signal_metrics(np.zeros((0, k)), np.zeros((0, k)), [0.5] * k)
    assert none.rows == 0 and none.macro_f1 is None


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="no calls"):
        classification_metrics([], [])
    with pytest.raises(ValueError, match="y_pred has 1"):
        classification_metrics([B, S], [B])


def test_ece_bins_hold_their_right_edge():
    # 0.3 and 0.7 are not exact in binary (0.3 * 10 = 3.0000000000000004): they still belong to the bins
    # they close, (0.2, 0.3] and (0.6, 0.7], as the report says ("right edge inclusive").
    probs = np.array([[0.3, 0.3, 0.2, 0.2], [0.7, 0.1, 0.1, 0.1], [1.0, 0.0, 0.0, 0.0]])
    cal = reliability([B, B, B], probs, n_bins=10)
    assert [b.count for b in cal.bins] == [0, 0, 1, 0, 0, 0, 1, 0, 0, 1]
    assert (cal.bins[2].low, cal.bins[2].high) == pytest.approx((0.2, 0.3))
    assert ECE_BINS == 10 and len(reliability([B], probs[:1]).bins) == ECE_BINS


def test_nll_by_hand_and_bad_input():
    probs = np.array([[0.5, 0.5, 0.0, 0.0], [0.1, 0.0, 0.9, 0.0], [0.0, 1.0, 0.0, 0.0]])
    # -log .5, -log .9, and the confident mistake floored at 1e-12
    expected = (-np.log(0.5) - np.log(0.9) - np.log(1e-12)) / 3
    assert negative_log_likelihood([B, I, B], probs) == pytest.approx(expected)
    with pytest.raises(ValueError, match="probs must be"):
        negative_log_likelihood([], np.zeros((0, 4)))
    with pytest.raises(ValueError, match="probs must be"):
        expected_calibration_error([B, S], probs)            # 2 labels, 3 rows
    with pytest.raises(ValueError, match="probs must be"):
        expected_calibration_error(probs, [B, I, B])         # the arguments the wrong way round


def test_binary_prf_by_hand():
    assert binary_prf([1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx((0.5, 0.5, 0.5))
    assert binary_prf([1, 0], [0, 0]) == (None, 0.0, 0.0)     # nothing flagged: precision undefined
    assert binary_prf([0, 0], [1, 0]) == (0.0, None, 0.0)     # no positives: recall undefined
    assert binary_prf([0, 0], [0, 0]) == (None, None, None)


def test_class_indices_outside_the_schema_are_rejected():
    with pytest.raises(ValueError, match="outside 0..3"):
        classification_metrics([B, len(CLASS_NAMES)], [B, S])


@pytest.mark.parametrize("seed", range(6))
def test_class_and_signal_values_match_scikit_learn(seed):
    """scikit-learn is the reference the numpy definitions replaced (zero_division=NaN where undefined)."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    y = rng.integers(0, [4, 2, 1, 4, 3, 2][seed], n)
    pred = np.where(rng.random(n) < 0.6, y, rng.integers(0, 4, n))
    m = classification_metrics(y, pred)
    labels = list(range(len(CLASS_NAMES)))
    p, r, f, support = precision_recall_fscore_support(y, pred, labels=labels, average=None, zero_division=np.nan)
    for i, c in enumerate(m.per_class):
        for ours, theirs in ((c.precision, p[i]), (c.recall, r[i]), (c.f1, f[i])):
            assert (ours is None and np.isnan(theirs)) or ours == pytest.approx(theirs)
        assert c.support == support[i]
    assert m.macro_f1 == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
    assert np.array_equal(np.asarray(m.confusion), confusion_matrix(y, pred, labels=labels))

    k = len(SIGNAL_NAMES)
    truth = (rng.random((n, k)) < 0.2).astype(float)
    probs = rng.random((n, k))
    s = signal_metrics(truth, probs, [0.7] * k)
    present = probs >= 0.7
    _, _, f_sig, _ = precision_recall_fscore_support(truth, present, average=None, zero_division=np.nan)
    assert [x.f1 for x in s.per_signal] == [None if np.isnan(v) else pytest.approx(v) for v in f_sig]
    if truth.any() or present.any():
        assert s.micro_f1 == pytest.approx(f1_score(truth, present, average="micro", zero_division=0))


def test_training_and_evaluation_report_the_same_numbers():
    """One definition: the training record (metrics.json), the calibration fit and the QA report agree
    on the same rows; a second definition creeping back into either would break this."""
    from pathlib import Path

    from evaluation.config import EvalConfig
    from evaluation.evalset import EvalSet
    from evaluation.evaluate import ModelRef, evaluation_from_scores
    from evaluation.scoring import ScoredSet
    from models.artifact import ArtifactMeta
    from models.calibration import softmax
    from training.calibrate import fit_calibration
    from training.metrics import split_metrics

    rng = np.random.default_rng(4)
    n, k = 300, len(SIGNAL_NAMES)
    labels = rng.integers(0, 3, n)                  # no noise calls: macro-F1 over the classes present
    logits = rng.normal(size=(n, len(CLASS_NAMES))) + 2.5 * np.eye(len(CLASS_NAMES))[labels]
    signal_labels = (rng.random((n, k)) < 0.3).astype(np.float32)
    signal_probs = np.clip(signal_labels * 0.5 + rng.random((n, k)) * 0.6, 0, 1)
    labeled = rng.random(n) < 0.7
    calibration = fit_calibration(logits, labels, signal_probs, signal_labels, labeled.astype(float))
    probs = softmax(logits, calibration.temperature)
    thresholds = calibration.thresholds()
    record = split_metrics(labels, probs, signal_probs, signal_labels, labeled.astype(float),
                           signal_thresholds=thresholds, buying_threshold=calibration.buying_threshold)

    eval_set = EvalSet(
        call_ids=tuple(f"call-{i}" for i in range(n)), transcripts=("text",) * n,
        labels=tuple(CLASS_NAMES[c] for c in labels), label_ids=labels, signal_labels=signal_labels,
        signals_labeled=labeled, signals=((),) * n, source=("",) * n, campaign=("",) * n, industry=("",) * n,
        split="validation", files=("fake.jsonl",), fingerprint="f" * 64)
    scored = ScoredSet(model_id="fake", variant="fp32", class_probs=probs, signal_probs=signal_probs,
                       pred_ids=probs.argmax(axis=1), scores=(),
                       signal_thresholds=tuple(thresholds[s] for s in SIGNAL_NAMES))
    meta = ArtifactMeta(classes=CLASS_NAMES, signals=SIGNAL_NAMES, max_length=16,
                        buying_threshold=calibration.buying_threshold)
    model = ModelRef(ref="fake", model_id="fake", directory=Path("/nonexistent"), registry_version=None, meta=meta)
    report = evaluation_from_scores(model, eval_set, scored, EvalConfig(bootstrap_samples=0, latency_iterations=0))

    assert 0.01 < record["ece"] == report.calibration.ece == calibration.ece_after
    assert record["accuracy"] == report.classes.accuracy
    assert record["macro_f1"] == report.classes.macro_f1
    assert record["f1.buying"] == report.classes.of("buying").f1
    assert (record["buying_precision"], record["buying_recall"]) == (report.pr_curve.operating_precision,
                                                                      report.pr_curve.operating_recall)
    assert record["signal_micro_f1"] == report.signals.micro_f1
    for s in report.signals.per_signal:
        assert record.get(f"signal_f1.{s.name}") == s.f1
