"""Metric values for a labeled evaluation set: pure functions from label/probability arrays to typed results.

Point values come from scikit-learn (``precision_recall_fscore_support``, ``f1_score``,
``confusion_matrix``, ``precision_recall_curve``, ``average_precision_score``). Two pieces have no
scikit-learn function and are written here in a few lines: the top-label expected calibration
error (ECE) with its reliability bins, and the percentile bootstrap around the sklearn calls.

Conventions:
    * Classes are indices into ``models.labels.CLASS_NAMES``; every per-class table lists all classes.
    * A value that is undefined on the data (recall of a class with no calls, precision of a
      class never predicted) is ``None``, never a silent 0.
    * Macro-F1 averages the classes that occur in the labels or the predictions (scikit-learn's
      default label set), so evaluating on data without, say, ``noise`` calls does not count a
      class nobody could get right as F1 = 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.labels import BUYING, CLASS_INDEX, CLASS_NAMES, SIGNAL_NAMES

if TYPE_CHECKING:
    import numpy as np


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
        f1: Harmonic mean of precision and recall (None when both are undefined).
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
class Calibration:
    """How well the stated probabilities match observed accuracy.

    Attributes:
        ece: Expected calibration error: the count-weighted mean of ``|accuracy - confidence|``
            over the bins (0 = perfectly calibrated).
        bins: The equal-width bins on [0, 1].
    """

    ece: float
    bins: tuple[ReliabilityBin, ...]


@dataclass(frozen=True)
class PrCurve:
    """Buying-intent precision-recall curve and the artifact's operating point on it.

    Attributes:
        precision, recall: Curve points (scikit-learn order: recall decreasing).
        thresholds: ``buying_intent`` threshold of each point (one fewer than the points).
        average_precision: Area under the curve as scikit-learn's average precision (None
            when the data has no buying calls).
        threshold: The operating threshold (the artifact's ``buying_threshold``).
        operating_precision, operating_recall: Precision and recall of ``buying_intent >= threshold``.
        positives: Buying calls in the data.
    """

    precision: tuple[float, ...]
    recall: tuple[float, ...]
    thresholds: tuple[float, ...]
    average_precision: float | None
    threshold: float
    operating_precision: float | None
    operating_recall: float | None
    positives: int

    def precision_at_recall(self, recall: float) -> float | None:
        """The best precision of any threshold whose recall reaches ``recall`` (None without buying calls)."""
        reached = [p for p, r in zip(self.precision, self.recall) if r >= recall]
        return max(reached) if reached else None


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
        macro_f1: Mean F1 over signals that occur in labels or predictions (None: no rows).
        micro_f1: F1 over all (call, signal) decisions pooled (None: no rows).
    """

    rows: int
    per_signal: tuple[SignalMetrics, ...]
    macro_f1: float | None
    micro_f1: float | None


@dataclass(frozen=True)
class SliceMetrics:
    """Metrics of the calls sharing one ``source``, ``campaign`` or ``industry`` value.

    Attributes:
        field: ``source``, ``campaign`` or ``industry``.
        value: The value (``"(none)"`` for calls without one).
        n: Calls in the slice.
        accuracy: Share predicted correctly.
        macro_f1: Macro-F1 inside the slice.
        buying_recall: Recall of ``buying`` inside the slice (None: no buying calls).
        small: Fewer calls than the configured minimum: too few to judge.
        ece: Expected calibration error inside the slice (None when no probabilities were given).
    """

    field: str
    value: str
    n: int
    accuracy: float
    macro_f1: float
    buying_recall: float | None
    small: bool
    ece: float | None = None


@dataclass(frozen=True)
class RiskCoverageCurve:
    """Accuracy of the decided calls against the share decided, most confident first.

    Calls are ranked by the margin ``p(top1) − p(top2)`` of their calibrated probabilities, the
    score the serving policy abstains on (:mod:`models.uncertainty`), so the artifact's operating
    point lies on the curve.

    Attributes:
        coverage: Share of calls decided at each point, increasing, ending at 1.0.
        accuracy: Accuracy of the decided calls at each point (the last is the overall accuracy).
        thresholds: Margin of each point (calls at or above it are decided), decreasing.
        threshold: The artifact's abstention margin (None: the artifact has none).
        operating_coverage: Share of calls the artifact's margin decides (1.0 without one).
        operating_accuracy: Accuracy of those calls (None when it decides none).
        n: Calls.
    """

    coverage: tuple[float, ...]
    accuracy: tuple[float, ...]
    thresholds: tuple[float, ...]
    threshold: float | None
    operating_coverage: float
    operating_accuracy: float | None
    n: int

    def accuracy_at_coverage(self, coverage: float) -> float | None:
        """Accuracy when at least ``coverage`` of the calls are decided (the first point reaching it)."""
        for c, a in zip(self.coverage, self.accuracy):
            if c >= coverage - 1e-12:
                return a
        return None


# --------------------------------------------------------------------------------------------


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
        ValueError: empty input or arrays of different length.
    """
    import numpy as np
    from sklearn.metrics import confusion_matrix

    y_true, y_pred = _check_pair(y_true, y_pred)
    labels = list(range(len(CLASS_NAMES)))
    accuracy, macro_f1, precision, recall, f1 = _class_values(y_true, y_pred)
    support = np.bincount(y_true, minlength=len(labels))
    predicted = np.bincount(y_pred, minlength=len(labels))
    confusion = confusion_matrix(y_true, y_pred, labels=labels)

    intervals: dict[str, Any] = {}
    if bootstrap_samples > 0:
        intervals = _bootstrap_class_intervals(y_true, y_pred, bootstrap_samples, confidence, seed)
    per_class = []
    for i, name in enumerate(CLASS_NAMES):
        per_class.append(ClassMetrics(
            name=name, precision=_value(precision[i]), recall=_value(recall[i]), f1=_value(f1[i]),
            support=int(support[i]), predicted=int(predicted[i]),
            precision_ci=intervals.get("precision", [None] * len(labels))[i],
            recall_ci=intervals.get("recall", [None] * len(labels))[i],
            f1_ci=intervals.get("f1", [None] * len(labels))[i],
        ))
    return ClassificationMetrics(
        n=int(len(y_true)), accuracy=float(accuracy), macro_f1=float(macro_f1),
        accuracy_ci=intervals.get("accuracy"), macro_f1_ci=intervals.get("macro_f1"),
        per_class=tuple(per_class), confusion=tuple(tuple(int(v) for v in row) for row in confusion),
    )


def expected_calibration_error(y_true: Sequence[int] | np.ndarray, probs: np.ndarray, n_bins: int = 10) -> float:
    """Top-label expected calibration error (see :func:`calibration`)."""
    return calibration(y_true, probs, n_bins).ece


def calibration(y_true: Sequence[int] | np.ndarray, probs: np.ndarray, n_bins: int = 10) -> Calibration:
    """Reliability bins and the expected calibration error of the top-class probability.

    Each call falls in the bin of its highest class probability (equal-width bins on [0, 1],
    right edge inclusive, the first bin also holds 0). ECE = Σ_bins (count / n) · |accuracy − confidence|.

    Args:
        y_true: Labeled class indices.
        probs: ``[n, n_classes]`` calibrated probabilities.
        n_bins: Number of bins.

    Returns:
        The calibration summary.

    Raises:
        ValueError: empty input, shape mismatch, or ``n_bins < 1``.
    """
    import numpy as np

    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    probs = np.asarray(probs, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    if probs.ndim != 2 or len(probs) != len(y_true) or len(y_true) == 0:
        raise ValueError(f"probs must be [n, n_classes] with n = len(y_true) > 0, got {probs.shape} "
                         f"for {len(y_true)} labels")
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
    return Calibration(ece=float(ece), bins=tuple(bins))


def risk_coverage_curve(y_true: Sequence[int] | np.ndarray, probs: np.ndarray,
                        threshold: float | None = None) -> RiskCoverageCurve:
    """The risk–coverage curve of deciding calls by their probability margin, and the artifact's point on it.

    Args:
        y_true: Labeled class indices.
        probs: ``[n, n_classes]`` calibrated probabilities.
        threshold: The artifact's abstention margin (``ArtifactMeta.abstain_margin``; None = none:
            every call is decided).

    Returns:
        The curve.

    Raises:
        ValueError: empty input or shape mismatch.
    """
    import numpy as np

    from models.uncertainty import probability_margin, risk_coverage

    probs = np.asarray(probs, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    if probs.ndim != 2 or len(probs) != len(y_true) or len(y_true) == 0:
        raise ValueError(f"probs must be [n, n_classes] with n = len(y_true) > 0, got {probs.shape} "
                         f"for {len(y_true)} labels")
    curve = risk_coverage(probability_margin(probs), probs.argmax(axis=1) == y_true)
    coverage, accuracy = curve.at(threshold if threshold is not None else 0.0)
    return RiskCoverageCurve(coverage=curve.coverage, accuracy=curve.accuracy, thresholds=curve.thresholds,
                             threshold=None if threshold is None else float(threshold),
                             operating_coverage=coverage, operating_accuracy=accuracy, n=int(len(y_true)))


def buying_pr_curve(
    y_true: Sequence[int] | np.ndarray, buying_intent: Sequence[float] | np.ndarray, threshold: float
) -> PrCurve:
    """Precision-recall of ``buying_intent`` as a buying detector, and the point at ``threshold``.

    Args:
        y_true: Labeled class indices.
        buying_intent: P(buying) per call.
        threshold: The operating threshold (the artifact's ``buying_threshold``).

    Returns:
        The curve (empty when the data has no buying calls).
    """
    import numpy as np
    from sklearn.metrics import average_precision_score, precision_recall_curve, precision_score, recall_score

    positive = np.asarray(y_true) == CLASS_INDEX[BUYING]
    scores = np.asarray(buying_intent, dtype=np.float64)
    decided = scores >= threshold
    op_precision = float(precision_score(positive, decided, zero_division=np.nan)) if len(scores) else math.nan
    op_recall = float(recall_score(positive, decided, zero_division=np.nan)) if len(scores) else math.nan
    if not positive.any():
        return PrCurve((), (), (), None, float(threshold), _value(op_precision), None, 0)
    precision, recall, thresholds = precision_recall_curve(positive, scores)
    return PrCurve(
        precision=tuple(float(v) for v in precision), recall=tuple(float(v) for v in recall),
        thresholds=tuple(float(v) for v in thresholds),
        average_precision=float(average_precision_score(positive, scores)), threshold=float(threshold),
        operating_precision=_value(op_precision), operating_recall=_value(op_recall),
        positives=int(positive.sum()),
    )


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
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    n_signals = len(SIGNAL_NAMES)
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, n_signals) >= 0.5
    probs = np.asarray(probs, dtype=np.float64).reshape(-1, n_signals)
    if len(truth) != len(probs):
        raise ValueError(f"truth has {len(truth)} rows but probs has {len(probs)}")
    if len(truth) == 0:
        empty = tuple(SignalMetrics(s, None, None, None, 0, 0) for s in SIGNAL_NAMES)
        return SignalSummary(0, empty, None, None)
    pred = probs >= np.asarray(thresholds, dtype=np.float64)[None, :]
    precision, recall, f1, support = precision_recall_fscore_support(
        truth.astype(int), pred.astype(int), average=None, zero_division=np.nan)
    per_signal = tuple(
        SignalMetrics(name, _value(precision[j]), _value(recall[j]), _value(f1[j]), int(support[j]),
                      int(pred[:, j].sum()))
        for j, name in enumerate(SIGNAL_NAMES)
    )
    active = truth.any(axis=0) | pred.any(axis=0)
    macro = (float(f1_score(truth[:, active].astype(int), pred[:, active].astype(int), average="macro",
                            zero_division=0.0)) if active.any() else None)
    micro = (float(f1_score(truth.astype(int), pred.astype(int), average="micro", zero_division=0.0))
             if active.any() else None)
    return SignalSummary(rows=int(len(truth)), per_signal=per_signal, macro_f1=macro, micro_f1=micro)


def slice_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    fields: Mapping[str, Sequence[str]],
    *,
    small: int = 30,
    probs: np.ndarray | None = None,
    n_bins: int = 10,
) -> tuple[SliceMetrics, ...]:
    """Accuracy, macro-F1, buying recall and (given probabilities) ECE per value of each slicing field.

    A field whose every value is empty (the data does not say) gives no slices.

    Args:
        y_true, y_pred: Class indices.
        fields: Field name -> the field's value per call (``""`` = none).
        small: Slices with fewer calls get ``small=True``.
        probs: ``[n, n_classes]`` calibrated probabilities for the per-slice ECE (None = no ECE).
        n_bins: ECE bins (as for :func:`calibration`).

    Returns:
        Slices ordered by field (as given), then by size (largest first), then value.
    """
    import numpy as np
    from sklearn.metrics import recall_score

    y_true, y_pred = _check_pair(y_true, y_pred)
    out = []
    buying = CLASS_INDEX[BUYING]
    for field_name, values in fields.items():
        values = np.asarray([v or "" for v in values], dtype=object)
        if len(values) != len(y_true):
            raise ValueError(f"{field_name} has {len(values)} values for {len(y_true)} calls")
        if not any(values):
            continue
        groups = sorted(set(values.tolist()), key=lambda v: (-(values == v).sum(), v))
        for value in groups:
            mask = values == value
            t, p = y_true[mask], y_pred[mask]
            accuracy, macro_f1, *_ = _class_values(t, p)
            has_buying = bool((t == buying).any())
            recall = float(recall_score(t == buying, p == buying)) if has_buying else None
            ece = calibration(t, np.asarray(probs)[mask], n_bins).ece if probs is not None else None
            out.append(SliceMetrics(field=field_name, value=value or "(none)", n=int(mask.sum()),
                                    accuracy=float(accuracy), macro_f1=float(macro_f1), buying_recall=recall,
                                    small=bool(mask.sum() < small), ece=ece))
    return tuple(out)


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


# --------------------------------------------------------------------------------------------


def _check_pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("no calls to evaluate")
    return y_true, y_pred


def _class_values(
    y_true: np.ndarray, y_pred: np.ndarray
) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray]:
    """accuracy, macro-F1 and per-class precision/recall/F1 (NaN where undefined) of one sample."""
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    labels = list(range(len(CLASS_NAMES)))
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None,
                                                               zero_division=np.nan)
    present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    macro_f1 = f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0.0)
    return float(accuracy_score(y_true, y_pred)), float(macro_f1), precision, recall, f1


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
        accuracy[s], macro[s], per["precision"][s], per["recall"][s], per["f1"][s] = _class_values(
            y_true[idx], y_pred[idx])
    out: dict[str, Any] = {"accuracy": bootstrap_interval(accuracy, confidence),
                           "macro_f1": bootstrap_interval(macro, confidence)}
    for name, values in per.items():
        out[name] = [bootstrap_interval(values[:, j], confidence) for j in range(k)]
    return out


def _value(x: float) -> float | None:
    """A float, or None for NaN (undefined on this data)."""
    x = float(x)
    return None if math.isnan(x) else x
