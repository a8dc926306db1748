"""Metric values of a model's predictions: one definition for training, calibration and evaluation.

Pure functions from label/probability arrays to typed results, in numpy only (serving imports
``models``, so no scikit-learn here). Training's ``metrics.json`` (:mod:`training.metrics`), the
calibration fit (:mod:`training.calibrate`) and the QA report (:mod:`evaluation.metrics`) all take
their accuracy, F1, ECE and NLL from this module, so a model's training figures and its
evaluation figures on the same rows are the same numbers.

Conventions:
    * Every function takes the truth first, then the predictions or probabilities
      (``f(y_true, probs)``, as scikit-learn does).
    * Classes are indices into ``models.labels.CLASS_NAMES``; every per-class table lists all classes.
    * A value that is undefined on the data (recall of a class with no calls, precision of a
      class never predicted) is ``None`` (NaN in the array helpers), never a silent 0.
    * F1 is ``2·TP / (2·TP + FP + FN)``: defined whenever the class occurs in the labels or the
      predictions (0 when it occurs but is never right).
    * Macro-F1 averages the classes that occur in the labels or the predictions, so evaluating on
      data without, say, ``noise`` calls does not count a class nobody could get right as F1 = 0.
    * The expected calibration error is top-label ECE over :data:`ECE_BINS` equal-width bins on
      [0, 1], right edge inclusive (the first bin also holds 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.labels import CLASS_NAMES, SIGNAL_NAMES

if TYPE_CHECKING:
    import numpy as np

#: Equal-width confidence bins of the expected calibration error and the reliability diagram.
ECE_BINS = 10


@dataclass(frozen=True)
class Interval:
    """A bootstrap confidence interval.

    Attributes:
        low: Lower bound.
        high: Upper bound.
    """

    low: float
    high: float

    def to_json(self) -> list[float]:
        return [round(self.low, 6), round(self.high, 6)]


@dataclass(frozen=True)
class ClassMetrics:
    """Precision, recall and F1 of one class (one-vs-rest), with bootstrap intervals.

    Attributes:
        name: Class name.
        precision: Share of the calls predicted as this class that are this class (None: never predicted).
        recall: Share of this class's calls predicted as it (None: no such calls).
        f1: Harmonic mean of precision and recall (None when the class neither occurs nor is predicted).
        support: Calls of this class in the data.
        predicted: Calls the model put in this class.
        precision_ci, recall_ci, f1_ci: Bootstrap intervals (None without bootstrap or when undefined).
    """

    name: str
    precision: float | None
    recall: float | None
    f1: float | None
    support: int
    predicted: int
    precision_ci: Interval | None = None
    recall_ci: Interval | None = None
    f1_ci: Interval | None = None


@dataclass(frozen=True)
class ClassificationMetrics:
    """Intent-class metrics of one model on one data set.

    Attributes:
        n: Calls evaluated.
        accuracy: Share of calls whose predicted class is the labeled one.
        macro_f1: Mean per-class F1 over the classes present in labels or predictions.
        accuracy_ci, macro_f1_ci: Bootstrap intervals (None without bootstrap).
        per_class: One entry per ``CLASS_NAMES`` class, schema order.
        confusion: ``confusion[i][j]`` = calls of class i predicted as class j.
        classes: Class names of the rows/columns of ``confusion``.
    """

    n: int
    accuracy: float
    macro_f1: float
    accuracy_ci: Interval | None
    macro_f1_ci: Interval | None
    per_class: tuple[ClassMetrics, ...]
    confusion: tuple[tuple[int, ...], ...]
    classes: tuple[str, ...] = CLASS_NAMES

    def of(self, name: str) -> ClassMetrics:
        """The per-class entry of ``name``."""
        return self.per_class[self.classes.index(name)]


@dataclass(frozen=True)
class ReliabilityBin:
    """One confidence bin of the reliability diagram.

    Attributes:
        low, high: Bin edges of the top-class probability.
        count: Calls whose top-class probability falls in the bin.
        confidence: Their mean top-class probability (None when empty).
        accuracy: Share of them predicted correctly (None when empty).
    """

    low: float
    high: float
    count: int
    confidence: float | None
    accuracy: float | None


@dataclass(frozen=True)
class Reliability:
    """How well the stated probabilities match observed accuracy.

    Attributes:
        ece: Expected calibration error: the count-weighted mean of ``|accuracy - confidence|``
            over the bins (0 = perfectly calibrated).
        bins: The equal-width bins on [0, 1].
    """

    ece: float
    bins: tuple[ReliabilityBin, ...]


@dataclass(frozen=True)
class SignalMetrics:
    """Detection quality of one buying-intent signal.

    Attributes:
        name: Signal name.
        precision, recall, f1: As for classes (None when undefined).
        support: Labeled calls that have the signal.
        predicted: Calls where the model reports it.
    """

    name: str
    precision: float | None
    recall: float | None
    f1: float | None
    support: int
    predicted: int


@dataclass(frozen=True)
class SignalSummary:
    """Per-signal metrics over the calls whose signals are labeled.

    Attributes:
        rows: Calls with labeled signals (the others are not counted).
        per_signal: One entry per ``SIGNAL_NAMES`` signal, schema order.
        macro_f1: Mean F1 over signals that occur in labels or predictions (None: no such signal).
        micro_f1: F1 over all (call, signal) decisions pooled (None: no signal occurs or is predicted).
    """

    rows: int
    per_signal: tuple[SignalMetrics, ...]
    macro_f1: float | None
    micro_f1: float | None


# --------------------------------------------------------------------------------------------
# Classes


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    *,
    bootstrap_samples: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> ClassificationMetrics:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix.

    Args:
        y_true: Labeled class indices (``CLASS_NAMES`` order).
        y_pred: Predicted class indices.
        bootstrap_samples: Resamples of the calls for percentile intervals (0 = none).
        confidence: Interval level.
        seed: Bootstrap seed (same seed, same intervals).

    Returns:
        The metrics.

    Raises:
        ValueError: empty input, arrays of different length, or a class index outside ``CLASS_NAMES``.
    """
    y_true, y_pred = check_pair(y_true, y_pred)
    confusion = confusion_matrix(y_true, y_pred)
    precision, recall, f1 = per_class_prf(confusion)
    support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)

    intervals: dict[str, Any] = {}
    if bootstrap_samples > 0:
        intervals = _bootstrap_class_intervals(y_true, y_pred, bootstrap_samples, confidence, seed)
    none = [None] * len(CLASS_NAMES)
    per_class = tuple(
        ClassMetrics(
            name=name, precision=_value(precision[i]), recall=_value(recall[i]), f1=_value(f1[i]),
            support=int(support[i]), predicted=int(predicted[i]),
            precision_ci=intervals.get("precision", none)[i], recall_ci=intervals.get("recall", none)[i],
            f1_ci=intervals.get("f1", none)[i],
        )
        for i, name in enumerate(CLASS_NAMES)
    )
    return ClassificationMetrics(
        n=int(len(y_true)), accuracy=_accuracy(confusion), macro_f1=_macro_f1(f1),
        accuracy_ci=intervals.get("accuracy"), macro_f1_ci=intervals.get("macro_f1"),
        per_class=per_class, confusion=tuple(tuple(int(v) for v in row) for row in confusion),
    )


def accuracy_and_macro_f1(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray
                          ) -> tuple[float, float]:
    """Accuracy and macro-F1 alone (as in :func:`classification_metrics`), for slices and resamples.

    Args:
        y_true: Labeled class indices.
        y_pred: Predicted class indices.

    Returns:
        ``(accuracy, macro_f1)``.

    Raises:
        ValueError: as :func:`classification_metrics`.
    """
    confusion = confusion_matrix(*check_pair(y_true, y_pred))
    return _accuracy(confusion), _macro_f1(per_class_prf(confusion)[2])


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """``[n_classes, n_classes]`` counts: row = labeled class, column = predicted class.

    Args:
        y_true: Labeled class indices (checked by :func:`check_pair`).
        y_pred: Predicted class indices.

    Returns:
        The int64 matrix over all ``CLASS_NAMES``.
    """
    import numpy as np

    k = len(CLASS_NAMES)
    return np.bincount(np.asarray(y_true) * k + np.asarray(y_pred), minlength=k * k).reshape(k, k)


def per_class_prf(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-vs-rest precision, recall and F1 of each class of a confusion matrix (NaN where undefined).

    Args:
        confusion: ``[k, k]`` counts, rows labeled, columns predicted.

    Returns:
        ``(precision, recall, f1)``, each ``[k]`` float64.
    """
    import numpy as np

    confusion = np.asarray(confusion)
    tp = np.diag(confusion)
    return prf(tp, confusion.sum(axis=0) - tp, confusion.sum(axis=1) - tp)


def prf(tp: Any, fp: Any, fn: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 from counts (arrays or scalars), NaN where the denominator is 0.

    Args:
        tp: True positives.
        fp: False positives.
        fn: False negatives.

    Returns:
        ``(precision, recall, f1)`` as float64 arrays of the counts' shape.
    """
    import numpy as np

    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    return _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)


def binary_prf(truth: Any, predicted: Any) -> tuple[float | None, float | None, float | None]:
    """Precision, recall and F1 of one yes/no decision per call (e.g. ``P(buying) >= threshold``).

    Args:
        truth: ``[n]`` booleans: the call is a positive.
        predicted: ``[n]`` booleans: the call was flagged.

    Returns:
        ``(precision, recall, f1)``, None where undefined (nothing flagged, no positives).
    """
    import numpy as np

    truth = np.asarray(truth, dtype=bool).reshape(-1)
    predicted = np.asarray(predicted, dtype=bool).reshape(-1)
    if len(truth) != len(predicted):
        raise ValueError(f"truth has {len(truth)} rows but predicted has {len(predicted)}")
    tp = int(np.sum(truth & predicted))
    precision, recall, f1 = prf(tp, int(np.sum(~truth & predicted)), int(np.sum(truth & ~predicted)))
    return _value(precision), _value(recall), _value(f1)


def check_pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predictions as int64 vectors of one length, every index a class.

    Raises:
        ValueError: different lengths, no calls, or an index outside ``CLASS_NAMES``.
    """
    import numpy as np

    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("no calls to evaluate")
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        if values.min() < 0 or values.max() >= len(CLASS_NAMES):
            raise ValueError(f"{name} holds class indices outside 0..{len(CLASS_NAMES) - 1}")
    return y_true, y_pred


# --------------------------------------------------------------------------------------------
# Signals


def signal_metrics(truth: np.ndarray, probs: np.ndarray, thresholds: Sequence[float]) -> SignalSummary:
    """Per-signal precision/recall/F1 of ``probs >= thresholds`` against labeled signals.

    Args:
        truth: ``[n, n_signals]`` multi-hot labels of the calls whose signals are labeled
            (pass only those rows).
        probs: ``[n, n_signals]`` signal probabilities of the same calls.
        thresholds: Presence threshold per signal (``SIGNAL_NAMES`` order).

    Returns:
        The summary (``rows == 0`` and None averages when no call is labeled).
    """
    import numpy as np

    n_signals = len(SIGNAL_NAMES)
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, n_signals) >= 0.5
    probs = np.asarray(probs, dtype=np.float64).reshape(-1, n_signals)
    if len(truth) != len(probs):
        raise ValueError(f"truth has {len(truth)} rows but probs has {len(probs)}")
    if len(truth) == 0:
        empty = tuple(SignalMetrics(s, None, None, None, 0, 0) for s in SIGNAL_NAMES)
        return SignalSummary(0, empty, None, None)
    pred = probs >= np.asarray(thresholds, dtype=np.float64)[None, :]
    tp, fp, fn = (truth & pred).sum(axis=0), (~truth & pred).sum(axis=0), (truth & ~pred).sum(axis=0)
    precision, recall, f1 = prf(tp, fp, fn)
    per_signal = tuple(
        SignalMetrics(name, _value(precision[j]), _value(recall[j]), _value(f1[j]), int(truth[:, j].sum()),
                      int(pred[:, j].sum()))
        for j, name in enumerate(SIGNAL_NAMES)
    )
    # A signal that neither occurs nor is predicted has no F1 (NaN): it is left out of both averages.
    active = ~np.isnan(f1)
    macro = float(np.mean(f1[active])) if active.any() else None
    micro = _value(prf(tp.sum(), fp.sum(), fn.sum())[2])
    return SignalSummary(rows=int(len(truth)), per_signal=per_signal, macro_f1=macro, micro_f1=micro)


# --------------------------------------------------------------------------------------------
# Probabilities


def reliability(y_true: Sequence[int] | np.ndarray, probs: np.ndarray, n_bins: int = ECE_BINS) -> Reliability:
    """Reliability bins and the expected calibration error of the top-class probability.

    Each call falls in the bin of its highest class probability (equal-width bins on [0, 1],
    right edge inclusive, the first bin also holds 0). ECE = Σ_bins (count / n) · |accuracy − confidence|.

    Args:
        y_true: Labeled class indices.
        probs: ``[n, n_classes]`` probabilities.
        n_bins: Number of bins.

    Returns:
        The bins and the ECE.

    Raises:
        ValueError: empty input, shape mismatch, or ``n_bins < 1``.
    """
    import numpy as np

    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    y_true, probs = _check_probs(y_true, probs)
    top = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bin i holds (edges[i], edges[i+1]]; clip puts exact 0 into the first bin.
    index = np.clip(np.searchsorted(edges, top, side="left") - 1, 0, n_bins - 1)
    bins = []
    ece = 0.0
    for i in range(n_bins):
        mask = index == i
        count = int(mask.sum())
        if count:
            conf, acc = float(top[mask].mean()), float(correct[mask].mean())
            ece += count / len(top) * abs(acc - conf)
            bins.append(ReliabilityBin(float(edges[i]), float(edges[i + 1]), count, conf, acc))
        else:
            bins.append(ReliabilityBin(float(edges[i]), float(edges[i + 1]), 0, None, None))
    return Reliability(ece=float(ece), bins=tuple(bins))


def expected_calibration_error(y_true: Sequence[int] | np.ndarray, probs: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Top-label expected calibration error (see :func:`reliability`), in ``[0, 1]``.

    Raises:
        ValueError: as :func:`reliability`.
    """
    return reliability(y_true, probs, n_bins).ece


def negative_log_likelihood(y_true: Sequence[int] | np.ndarray, probs: np.ndarray) -> float:
    """Mean ``-log p(true class)`` (probabilities floored at 1e-12 so a confident mistake stays finite).

    Args:
        y_true: Labeled class indices.
        probs: ``[n, n_classes]`` probabilities.

    Returns:
        The NLL in nats.

    Raises:
        ValueError: empty input or shape mismatch.
    """
    import numpy as np

    y_true, probs = _check_probs(y_true, probs)
    p = np.clip(probs[np.arange(len(y_true)), y_true], 1e-12, 1.0)
    return float(-np.log(p).mean())


# --------------------------------------------------------------------------------------------
# Bootstrap


def bootstrap_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Interval | None:
    """Percentile interval of bootstrap replicate values (NaN replicates ignored; None if all are)."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return None
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return Interval(float(low), float(high))


def _bootstrap_class_intervals(y_true: np.ndarray, y_pred: np.ndarray, samples: int, confidence: float,
                               seed: int) -> dict[str, Any]:
    """Percentile intervals of accuracy, macro-F1 and per-class P/R/F1 over call resamples."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n, k = len(y_true), len(CLASS_NAMES)
    accuracy = np.empty(samples)
    macro = np.empty(samples)
    per = {name: np.empty((samples, k)) for name in ("precision", "recall", "f1")}
    for s in range(samples):
        idx = rng.integers(0, n, n)
        confusion = confusion_matrix(y_true[idx], y_pred[idx])
        per["precision"][s], per["recall"][s], per["f1"][s] = per_class_prf(confusion)
        accuracy[s], macro[s] = _accuracy(confusion), _macro_f1(per["f1"][s])
    out: dict[str, Any] = {"accuracy": bootstrap_interval(accuracy, confidence),
                           "macro_f1": bootstrap_interval(macro, confidence)}
    for name, values in per.items():
        out[name] = [bootstrap_interval(values[:, j], confidence) for j in range(k)]
    return out


# --------------------------------------------------------------------------------------------


def _check_probs(y_true: Any, probs: Any) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    probs = np.asarray(probs, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    if probs.ndim != 2 or len(probs) != len(y_true) or len(y_true) == 0:
        raise ValueError(f"probs must be [n, n_classes] with n = len(y_true) > 0, got {probs.shape} "
                         f"for {len(y_true)} labels")
    return y_true, probs


def _accuracy(confusion: np.ndarray) -> float:
    import numpy as np

    return float(np.trace(confusion) / confusion.sum())


def _macro_f1(f1: np.ndarray) -> float:
    """Mean F1 over the classes present in labels or predictions: exactly those whose F1 is defined."""
    import numpy as np

    present = ~np.isnan(f1)
    return float(np.mean(f1[present])) if present.any() else 0.0


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.divide(numerator, denominator, out=np.full(np.shape(denominator), np.nan),
                     where=np.asarray(denominator) > 0)


def _value(x: Any) -> float | None:
    """A float, or None for NaN (undefined on this data)."""
    x = float(x)
    return None if math.isnan(x) else x
