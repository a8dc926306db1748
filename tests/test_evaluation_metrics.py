"""The report's curves and slices against small cases computed by hand (evaluation/metrics.py).

Accuracy, F1, ECE and the signal metrics they build on are tested in test_models_metrics.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.metrics import buying_pr_curve, risk_coverage_curve, slice_metrics
from models.labels import CLASS_INDEX
from models.metrics import reliability

B, S, I, N = (CLASS_INDEX[c] for c in ("buying", "service", "informational", "noise"))


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
        assert s.ece == pytest.approx(reliability(y[rows], probs[rows], 5).ece)
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


