"""The flat metrics record of a model on a labeled split (training, calibration and export write it).

Plain numbers in a flat mapping (``macro_f1``, ``f1.buying``, ``signal_f1.price_inquiry`` …) so
they can go into ``metrics.json``, ``artifact.json`` and the registry without conversion. The
numbers themselves come from :mod:`models.metrics`, the definitions the QA report uses, so a
model's training figures and its evaluation figures on the same rows agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from models.labels import BUYING, CLASS_INDEX, SIGNAL_NAMES
from models.metrics import (
    binary_prf, classification_metrics, expected_calibration_error, negative_log_likelihood, signal_metrics,
)

if TYPE_CHECKING:
    import numpy as np


def split_metrics(
    labels: np.ndarray,
    class_probs: np.ndarray,
    signal_probs: np.ndarray,
    signal_labels: np.ndarray,
    signal_mask: np.ndarray,
    *,
    signal_thresholds: Mapping[str, float] | None = None,
    buying_threshold: float = 0.5,
) -> dict[str, float]:
    """Class, buying-intent and signal metrics of one split, as a flat record of floats.

    Args:
        labels: ``[n]`` true class indices.
        class_probs: ``[n, n_classes]`` (calibrated) class probabilities.
        signal_probs: ``[n, n_signals]`` signal probabilities.
        signal_labels: ``[n, n_signals]`` multi-hot truth.
        signal_mask: ``[n]`` 1 where the row's signals are labeled (others are not scored).
        signal_thresholds: Presence threshold per signal (0.5 for any missing).
        buying_threshold: Threshold on P(buying) for the buying-vs-rest metrics.

    Returns:
        ``n``, ``accuracy``, ``macro_f1``, ``f1.<class>``, ``ece``, ``nll``, ``buying_precision``,
        ``buying_recall``, ``buying_f1``, ``signal_micro_f1`` and ``signal_f1.<signal>`` (the
        signal metrics only when some rows have labeled signals; ``signal_f1.<signal>`` only for
        signals that occur or are predicted). A per-class or buying figure that is undefined on
        the split (a class that neither occurs nor is predicted, no buying call flagged) is 0.0,
        so every value stays a float; only ``{"n": 0}`` for an empty split.
    """
    import numpy as np

    labels = np.asarray(labels).astype(int)
    n = len(labels)
    if n == 0:
        return {"n": 0}
    class_probs = np.asarray(class_probs)
    classes = classification_metrics(labels, class_probs.argmax(axis=1))
    out: dict[str, float] = {
        "n": n,
        "accuracy": classes.accuracy,
        "macro_f1": classes.macro_f1,
        **{f"f1.{c.name}": _float(c.f1) for c in classes.per_class},
        "ece": expected_calibration_error(labels, class_probs),
        "nll": negative_log_likelihood(labels, class_probs),
    }
    buying = CLASS_INDEX[BUYING]
    p, r, f = binary_prf(labels == buying, class_probs[:, buying] >= buying_threshold)
    out.update({"buying_precision": _float(p), "buying_recall": _float(r), "buying_f1": _float(f)})

    labeled = np.asarray(signal_mask) > 0.5
    if labeled.any():
        thresholds = [(signal_thresholds or {}).get(s, 0.5) for s in SIGNAL_NAMES]
        signals = signal_metrics(np.asarray(signal_labels)[labeled], np.asarray(signal_probs)[labeled], thresholds)
        out["signal_micro_f1"] = _float(signals.micro_f1)
        # F1 of a signal that neither occurs nor is predicted is undefined, not 0: leave it out.
        out.update({f"signal_f1.{s.name}": s.f1 for s in signals.per_signal if s.f1 is not None})
    return out


def _float(value: float | None) -> float:
    """The record's value of a figure: 0.0 where it is undefined (the record holds floats only)."""
    return 0.0 if value is None else float(value)
