"""Calibration across sources: per-source temperature weights, the abstention margin, per-source ECE."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.calibration import fit_temperature, softmax, source_weights
from models.metrics import expected_calibration_error
from training.calibrate import Calibration, choose_abstain_margin, fit_calibration


def _logits_for_confidence(labels: np.ndarray, scale: float, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    """4-class logits whose argmax is right on ``accuracy`` of the rows, confidence growing with ``scale``."""
    n = len(labels)
    logits = rng.normal(0.0, 0.3, (n, 4))
    target = labels.copy()
    wrong = rng.random(n) > accuracy
    target[wrong] = (labels[wrong] + 1 + rng.integers(0, 3, wrong.sum())) % 4
    logits[np.arange(n), target] += scale
    return logits


def test_weighted_temperature_follows_the_small_source():
    # A big source that is well calibrated at T=1 and a small one whose logits are overconfident (it
    # needs T ~ 3). Unweighted, the big source holds T near 1; weighting each source equally moves T
    # towards the small source's, and its ECE improves.
    rng = np.random.default_rng(0)
    big_labels = rng.integers(0, 4, 3000)
    big = _logits_for_confidence(big_labels, 2.0, 0.75, rng)
    small_labels = rng.integers(0, 4, 300)
    small = _logits_for_confidence(small_labels, 2.0, 0.75, rng) * 3.0    # same ranking, 3x too sharp
    logits = np.concatenate([big, small])
    labels = np.concatenate([big_labels, small_labels])
    sources = ["corpus"] * 3000 + ["clinc150"] * 300

    plain = fit_temperature(logits, labels)
    weighted = fit_temperature(logits, labels, weights=source_weights(sources))
    small_only = fit_temperature(small, small_labels)
    assert plain < weighted < small_only
    assert weighted - plain > 0.3

    cal = fit_calibration(logits, labels, np.zeros((3300, 7)), np.zeros((3300, 7)), np.ones(3300), sources=sources)
    assert cal.temperature == pytest.approx(weighted, rel=1e-3)
    assert set(cal.sources) == {"corpus", "clinc150"}
    assert cal.sources["clinc150"].rows == 300 and cal.sources["corpus"].rows == 3000
    ece_small_plain = expected_calibration_error(small_labels, softmax(small, plain))
    assert cal.sources["clinc150"].ece_after < ece_small_plain
    assert cal.sources["clinc150"].ece_after == pytest.approx(
        expected_calibration_error(small_labels, softmax(small, cal.temperature)))


def test_abstain_margin_is_the_smallest_reaching_the_target():
    # Ten rows, margins 0.9 … 0.0; wrong at margins 0.4, 0.2, 0.1. Deciding the top 5 (margins >= 0.5)
    # is 5/5 right, top 6 is 5/6 = 0.83, top 7 is 6/7 = 0.857, top 8 7/8 = 0.875, all 10 is 0.7.
    margins = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    correct = np.array([1, 1, 1, 1, 1, 0, 1, 0, 0, 1], dtype=bool)
    # target 0.95: only the top 5 reach it -> threshold halfway between 0.5 and 0.4
    assert choose_abstain_margin(margins, correct, target_accuracy=0.95, max_abstain_share=1.0) == pytest.approx(0.45)
    # target 0.85: the top 7 (6/7 = 0.857) is the most decided at >= 0.85 -> halfway between 0.3 and 0.2
    assert choose_abstain_margin(margins, correct, target_accuracy=0.85, max_abstain_share=1.0) == pytest.approx(0.25)
    # target 0.7: everything reaches it -> never abstain
    assert choose_abstain_margin(margins, correct, target_accuracy=0.7, max_abstain_share=1.0) == 0.0
    # at most 20% abstained and 0.95 unreachable within it -> abstain on exactly 20% (top 8 decided)
    assert choose_abstain_margin(margins, correct, target_accuracy=0.95, max_abstain_share=0.2) == pytest.approx(0.15)
    # target 0 switches the rule off
    assert choose_abstain_margin(margins, correct, target_accuracy=0.0, max_abstain_share=1.0) == 0.0


def test_abstain_margin_never_splits_tied_margins():
    margins = np.array([0.8, 0.5, 0.5, 0.5, 0.1])
    correct = np.array([1, 1, 0, 1, 1], dtype=bool)
    # top 1: 1.0; with the tie at 0.5: 3/4; all: 4/5. Target 0.9 -> only margin 0.8 decided.
    assert choose_abstain_margin(margins, correct, target_accuracy=0.9, max_abstain_share=1.0) == pytest.approx(0.65)


def test_abstain_margin_weighs_sources_equally():
    # Source a (8 rows) is always right; source b (2 rows) is wrong on its low-margin row. Unweighted,
    # deciding everything is 9/10 = 0.9 accurate and reaches a 0.9 target; weighted, b's error costs
    # half of b's weight: (1 + 0.5) / 2 = 0.75, so the margin must abstain on b's weak row.
    margins = np.array([0.9] * 8 + [0.8, 0.1])
    correct = np.array([True] * 9 + [False])
    sources = ["a"] * 8 + ["b"] * 2
    assert choose_abstain_margin(margins, correct, target_accuracy=0.9, max_abstain_share=0.5) == 0.0
    weighted = choose_abstain_margin(margins, correct, target_accuracy=0.9, max_abstain_share=0.5,
                                     weights=source_weights(sources))
    assert weighted == pytest.approx(0.45)


def test_fit_calibration_stores_the_margin_and_its_validation_coverage():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 2000)
    # Mistakes are the less confident rows (as in a useful model): right rows scale 3, wrong rows 1.
    logits = np.where(rng.random(2000)[:, None] < 0.85, _logits_for_confidence(labels, 3.0, 1.0, rng),
                      _logits_for_confidence(labels, 1.0, 0.0, rng))
    cal = fit_calibration(logits, labels, np.zeros((2000, 7)), np.zeros((2000, 7)), np.ones(2000),
                          abstain_target_accuracy=0.95, abstain_max_share=0.5)
    assert 0.0 < cal.abstain_margin < 1.0
    probs = softmax(logits, cal.temperature)
    top2 = np.sort(probs, axis=1)[:, -2:]
    decided = top2[:, 1] - top2[:, 0] >= cal.abstain_margin
    assert cal.abstain_coverage == pytest.approx(decided.mean())
    assert cal.abstain_accuracy == pytest.approx((probs.argmax(1) == labels)[decided].mean())
    assert cal.abstain_accuracy >= 0.95 and 0.5 <= cal.abstain_coverage < 1.0
    assert cal.sources["all"].decided_share == pytest.approx(cal.abstain_coverage)
    # no target: no abstention
    off = fit_calibration(logits, labels, np.zeros((2000, 7)), np.zeros((2000, 7)), np.ones(2000))
    assert off.abstain_margin == 0.0 and off.abstain_coverage == 1.0


def test_calibration_json_round_trip_and_old_files(tmp_path):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 200)
    cal = fit_calibration(_logits_for_confidence(labels, 3.0, 0.9, rng), labels, np.zeros((200, 7)),
                          np.zeros((200, 7)), np.ones(200), sources=["corpus"] * 150 + ["sgd"] * 50,
                          abstain_target_accuracy=0.97)
    cal.save(tmp_path)
    assert Calibration.load(tmp_path) == cal
    # A run from before the abstention rule: no margin (None), no per-source figures.
    raw = json.loads((tmp_path / "calibration.json").read_text())
    for key in ("abstain_margin", "abstain_target_accuracy", "abstain_max_share", "abstain_coverage",
                "abstain_accuracy", "sources"):
        raw.pop(key)
    (tmp_path / "calibration.json").write_text(json.dumps(raw))
    old = Calibration.load(tmp_path)
    assert old.abstain_margin is None and old.sources == {} and old.temperature == cal.temperature


def test_min_temperature_keeps_the_fit_from_sharpening():
    # Under-confident logits on an easy validation set: the fit sharpens (T < 1); min_temperature 1 keeps T = 1,
    # and a fit already above the floor is left alone.
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 1000)
    logits = _logits_for_confidence(labels, 1.5, 0.98, rng)
    empty = (np.zeros((1000, 7)), np.zeros((1000, 7)), np.ones(1000))
    fitted = fit_calibration(logits, labels, *empty)
    assert fitted.temperature < 0.8
    floored = fit_calibration(logits, labels, *empty, min_temperature=1.0)
    assert floored.temperature == 1.0
    assert floored.ece_after == pytest.approx(expected_calibration_error(labels, softmax(logits, 1.0)), abs=1e-6)
    sharp = logits * 4.0  # over-confident: the fit is above 1 and the floor does not touch it
    assert fit_calibration(sharp, labels, *empty, min_temperature=1.0).temperature == pytest.approx(
        fit_calibration(sharp, labels, *empty).temperature)
