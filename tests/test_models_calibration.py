"""Temperature-scaling maths of models/calibration.py: softmax, per-source weights, the NLL-optimal temperature."""

from __future__ import annotations

import numpy as np
import pytest

from models.calibration import (
    FLAT_SLOPE, MAX_TEMPERATURE, MIN_TEMPERATURE, fit_temperature, sigmoid, softmax, source_weights,
)
from models.metrics import negative_log_likelihood


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    return negative_log_likelihood(labels, softmax(logits, temperature))


def _slope_in_log_t(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    step = 1e-4
    return (_nll(logits, labels, temperature * np.exp(step)) - _nll(logits, labels, temperature * np.exp(-step))) / (
        2 * step)


def test_softmax_and_sigmoid():
    logits = np.array([[1000.0, 0.0, -1000.0, 0.0], [1.0, 2.0, 3.0, 4.0]])
    p = softmax(logits)
    assert np.isfinite(p).all() and p.sum(axis=1) == pytest.approx([1.0, 1.0])
    assert p[0, 0] == pytest.approx(1.0)
    hot = softmax(logits, 0.5)
    assert (hot.argmax(axis=1) == p.argmax(axis=1)).all()               # temperature never moves the argmax
    assert hot[1].max() > p[1].max() > softmax(logits, 2.0)[1].max()    # T < 1 sharpens, T > 1 softens
    assert softmax(logits[1:] * 2, 2.0) == pytest.approx(softmax(logits[1:]))
    assert sigmoid(np.array([0.0, 50.0, -50.0])) == pytest.approx([0.5, 1.0, 0.0])


def test_source_weights_make_each_source_weigh_the_same():
    w = source_weights(["corpus"] * 6 + ["sgd"] * 2)
    assert w.sum() == pytest.approx(8.0)                      # mean 1
    assert w[:6].sum() == pytest.approx(w[6:].sum())          # each source half of the weight
    assert source_weights(["a", "a", "a"]).tolist() == [1.0, 1.0, 1.0]
    assert source_weights([]).shape == (0,)


def test_fitted_temperature_is_the_nll_minimum():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(2000, 4)) * 2.0
    labels = np.array([rng.choice(4, p=p) for p in softmax(true_logits)])
    overconfident = true_logits * 3.0
    t = fit_temperature(overconfident, labels)
    assert t == pytest.approx(3.0, rel=0.1)
    best = _nll(overconfident, labels, t)
    assert best < _nll(overconfident, labels, t * 1.01) and best < _nll(overconfident, labels, t / 1.01)
    # Weighted: doubling the weight of every row changes nothing; weighting some rows moves T.
    assert fit_temperature(overconfident, labels, weights=np.full(2000, 2.0)) == pytest.approx(t, rel=1e-9)
    weights = np.where(np.arange(2000) < 1000, 1.0, 0.0)
    assert fit_temperature(overconfident, labels, weights=weights) == pytest.approx(
        fit_temperature(overconfident[:1000], labels[:1000]), rel=1e-9)


def test_separable_rows_stop_sharpening_where_the_nll_turns_flat():
    # Every row right by a wide margin: the NLL keeps falling as T -> 0, by ever smaller amounts. The fit
    # stops where it changes by FLAT_SLOPE per e-fold of T (what the LBFGS fit's gradient tolerance did).
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 500)
    logits = np.eye(4)[labels] * 5.0 + rng.normal(size=(500, 4)) * 0.5
    t = fit_temperature(logits, labels)
    assert MIN_TEMPERATURE < t < 1.0
    assert abs(_slope_in_log_t(logits, labels, t)) == pytest.approx(FLAT_SLOPE, rel=0.05)
    assert abs(_slope_in_log_t(logits, labels, t * 1.2)) > FLAT_SLOPE


def test_temperature_edges():
    labels = np.array([0, 1, 2, 3])
    assert fit_temperature(np.zeros((4, 4)), labels) == 1.0                    # nothing to tell T apart by
    assert fit_temperature(np.zeros((0, 4)), labels[:0]) == 1.0                 # nothing to fit on
    # Confidently wrong everywhere: the softest temperature allowed.
    assert fit_temperature(np.eye(4)[(labels + 1) % 4] * 3.0, labels) == MAX_TEMPERATURE
    # Perfectly separable with huge margins: already flat at T = 1, kept there.
    assert fit_temperature(np.eye(4)[labels] * 100.0, labels) == 1.0
    with pytest.raises(ValueError, match="disagree on rows"):
        fit_temperature(np.zeros((3, 4)), labels)
