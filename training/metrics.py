"""Metrics of a model's predictions on a labeled split (training, calibration and export share them).

Plain numbers in a flat mapping (``macro_f1``, ``f1.buying``, ``signal_f1.price_inquiry`` …) so
they can go into ``metrics.json``, ``artifact.json`` and the registry without conversion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from models.labels import BUYING, CLASS_INDEX, CLASS_NAMES, SIGNAL_NAMES
from training.calibrate import expected_calibration_error, negative_log_likelihood

if TYPE_CHECKING:
    import numpy as np


def classification_metrics(
    class_probs: np.ndarray,
    labels: np.ndarray,
    signal_probs: np.ndarray,
    signal_labels: np.ndarray,
    signal_mask: np.ndarray,
    *,
    signal_thresholds: Mapping[str, float] | None = None,
    buying_threshold: float = 0.5,
) -> dict[str, float]:
    """Class, buying-intent and signal metrics of one split.

    Args:
        class_probs: ``[n, n_classes]`` (calibrated) class probabilities.
        labels: ``[n]`` true class indices.
        signal_probs: ``[n, n_signals]`` signal probabilities.
        signal_labels: ``[n, n_signals]`` multi-hot truth.
        signal_mask: ``[n]`` 1 where the row's signals are labeled (others are not scored).
        signal_thresholds: Presence threshold per signal (0.5 for any missing).
        buying_threshold: Threshold on P(buying) for the buying-vs-rest metrics.

    Returns:
        ``n``, ``accuracy``, ``macro_f1``, ``f1.<class>``, ``ece``, ``nll``, ``buying_precision``,
        ``buying_recall``, ``buying_f1``, ``signal_micro_f1`` and ``signal_f1.<signal>`` (the
        signal metrics only when some rows have labeled signals; ``signal_f1.<signal>`` only for
        signals that occur or are predicted).
    """
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    labels = np.asarray(labels).astype(int)
    n = len(labels)
    if n == 0:
        return {"n": 0}
    predicted = class_probs.argmax(axis=1)
    classes = list(range(len(CLASS_NAMES)))
    per_class = f1_score(labels, predicted, labels=classes, average=None, zero_division=0)
    out: dict[str, float] = {
        "n": n,
        "accuracy": float(accuracy_score(labels, predicted)),
        # Macro over the classes present in truth or prediction: a class absent from a small split
        # should not count as F1 = 0.
        "macro_f1": float(f1_score(labels, predicted, average="macro", zero_division=0)),
        **{f"f1.{name}": float(per_class[i]) for i, name in enumerate(CLASS_NAMES)},
        "ece": expected_calibration_error(class_probs, labels),
        "nll": negative_log_likelihood(class_probs, labels),
    }
    buying = CLASS_INDEX[BUYING]
    p, r, f, _ = precision_recall_fscore_support(labels == buying, class_probs[:, buying] >= buying_threshold,
                                                 average="binary", zero_division=0)
    out.update({"buying_precision": float(p), "buying_recall": float(r), "buying_f1": float(f)})

    labeled = np.asarray(signal_mask) > 0.5
    if labeled.any():
        thresholds = np.array([(signal_thresholds or {}).get(s, 0.5) for s in SIGNAL_NAMES])
        truth = np.asarray(signal_labels)[labeled] > 0.5
        present = np.asarray(signal_probs)[labeled] >= thresholds
        out["signal_micro_f1"] = float(f1_score(truth, present, average="micro", zero_division=0))
        per_signal = f1_score(truth, present, average=None, zero_division=0)
        # F1 of a signal that neither occurs nor is predicted is undefined, not 0: leave it out.
        out.update({f"signal_f1.{name}": float(per_signal[j]) for j, name in enumerate(SIGNAL_NAMES)
                    if truth[:, j].any() or present[:, j].any()})
    return out
