"""Metric values against small cases computed by hand (evaluation/metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest

from models.labels import CLASS_INDEX, SIGNAL_INDEX, SIGNAL_NAMES
from evaluation.metrics import (
    buying_pr_curve, calibration, classification_metrics, expected_calibration_error, risk_coverage_curve,
    signal_metrics, slice_metrics,
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
    cal = calibration(y, probs, n_bins=10)
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
        calibration([B], probs[:1], n_bins=0)


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


def test_pr_curve_operating_point_by_hand():
    y = [B, B, B, S, I, N]
    p_buying = [0.9, 0.6, 0.3, 0.7, 0.2, 0.1]
    curve = buying_pr_curve(y, p_buying, threshold=0.5)
    # >= 0.5 flags calls 0, 1, 3: 2 of 3 are buying; 2 of 3 buying found
    assert curve.operating_precision == pytest.approx(2 / 3)
    assert curve.operating_recall == pytest.approx(2 / 3)
    assert curve.positives == 3
    # AP = sum over recall steps of precision: ranks .9(B) .7(S) .6(B) .3(B): 1/3*1 + 1/3*2/3 + 1/3*3/4
    assert curve.average_precision == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    empty = buying_pr_curve([S, N], [0.2, 0.8], threshold=0.5)
    assert empty.positives == 0 and empty.average_precision is None and empty.operating_recall is None


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


def test_slices_flag_small_groups_and_skip_empty_fields():
    y = [B, B, S, S, B, N]
    pred = [B, S, S, S, B, N]
    slices = slice_metrics(y, pred, {"source": ["ads", "ads", "ads", "direct", "ads", "direct"],
                                     "campaign": [""] * 6}, small=3)
    assert [(s.field, s.value, s.n, s.small) for s in slices] == [("source", "ads", 4, False),
                                                                  ("source", "direct", 2, True)]
    ads = slices[0]
    assert ads.accuracy == pytest.approx(3 / 4)
    assert ads.buying_recall == pytest.approx(2 / 3)
    assert slices[1].buying_recall is None


def test_slices_carry_their_own_ece():
    y = np.array([B, B, S, S, B, N])
    probs = np.array([[0.9, 0.1, 0, 0], [0.4, 0.6, 0, 0], [0.2, 0.8, 0, 0], [0.3, 0.7, 0, 0],
                      [0.6, 0.4, 0, 0], [0.1, 0, 0, 0.9]])
    source = np.array(["ads", "ads", "ads", "direct", "ads", "direct"])
    slices = slice_metrics(y, probs.argmax(1), {"source": list(source)}, probs=probs, n_bins=5)
    for s in slices:
        rows = source == s.value
        assert s.ece == pytest.approx(calibration(y[rows], probs[rows], 5).ece)
    assert slices[0].ece != slices[1].ece
    assert slice_metrics(y, probs.argmax(1), {"source": list(source)})[0].ece is None


def _risk_case():
    """Eight calls with known margins (top1 - top2) and correctness."""
    #            margin  correct
    rows = [(0.9, True), (0.7, True), (0.7, False), (0.5, True), (0.3, False), (0.2, True), (0.1, False),
            (0.0, False)]
    y, probs = [], []
    for margin, right in rows:
        top, second = (1 + margin) / 2, (1 - margin) / 2  # buying vs service
        probs.append([top, second, 0.0, 0.0])
        y.append(B if right else S)
    return np.array(y), np.array(probs)


def test_risk_coverage_is_monotone_in_coverage_with_the_right_end_points():
    y, probs = _risk_case()
    curve = risk_coverage_curve(y, probs)
    assert list(curve.coverage) == sorted(curve.coverage) and len(set(curve.coverage)) == len(curve.coverage)
    assert list(curve.thresholds) == sorted(curve.thresholds, reverse=True)
    # coverage 1.0 -> the overall accuracy (4 of 8 right)
    assert curve.coverage[-1] == 1.0 and curve.accuracy[-1] == pytest.approx(0.5)
    # the smallest coverage -> the most confident call alone (margin 0.9, right)
    assert curve.coverage[0] == pytest.approx(1 / 8) and curve.accuracy[0] == 1.0
    # the tie at margin 0.7 (one right, one wrong) is decided together: no point at coverage 2/8
    assert curve.coverage[1] == pytest.approx(3 / 8) and curve.accuracy[1] == pytest.approx(2 / 3)
    assert curve.accuracy_at_coverage(0.5) == pytest.approx(3 / 4)     # top 4 of 8: 3 right
    # no artifact margin: everything decided
    assert curve.threshold is None and curve.operating_coverage == 1.0 and curve.operating_accuracy == 0.5


def test_risk_coverage_operating_point_is_the_artifact_margin():
    y, probs = _risk_case()
    curve = risk_coverage_curve(y, probs, threshold=0.4)        # decides margins 0.9, 0.7, 0.7, 0.5
    assert curve.threshold == 0.4
    assert curve.operating_coverage == pytest.approx(0.5) and curve.operating_accuracy == pytest.approx(0.75)
    assert risk_coverage_curve(y, probs, threshold=0.95).operating_accuracy is None   # decides nothing
    with pytest.raises(ValueError):
        risk_coverage_curve([], np.zeros((0, 4)))


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="no calls"):
        classification_metrics([], [])
    with pytest.raises(ValueError, match="y_pred has 1"):
        classification_metrics([B, S], [B])
