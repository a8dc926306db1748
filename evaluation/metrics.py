"""Evaluation-only metrics: the buying precision-recall curve, per-slice figures, the risk–coverage curve.

Accuracy, F1, the ECE with its reliability bins and the signal metrics are :mod:`models.metrics`
(one definition for training and evaluation); this module builds the report's curves and slices on
them. The precision-recall curve and its average precision come from scikit-learn
(``precision_recall_curve``, ``average_precision_score``).

Conventions (as :mod:`models.metrics`): classes are indices into ``models.labels.CLASS_NAMES``; a
value that is undefined on the data is ``None``, never a silent 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from models.labels import BUYING, CLASS_INDEX
from models.metrics import ECE_BINS, accuracy_and_macro_f1, binary_prf, check_pair, reliability

if TYPE_CHECKING:
    import numpy as np


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
    from sklearn.metrics import average_precision_score, precision_recall_curve

    positive = np.asarray(y_true) == CLASS_INDEX[BUYING]
    scores = np.asarray(buying_intent, dtype=np.float64)
    op_precision, op_recall, _ = binary_prf(positive, scores >= threshold)
    if not positive.any():
        return PrCurve((), (), (), None, float(threshold), op_precision, None, 0)
    precision, recall, thresholds = precision_recall_curve(positive, scores)
    return PrCurve(
        precision=tuple(float(v) for v in precision), recall=tuple(float(v) for v in recall),
        thresholds=tuple(float(v) for v in thresholds),
        average_precision=float(average_precision_score(positive, scores)), threshold=float(threshold),
        operating_precision=op_precision, operating_recall=op_recall,
        positives=int(positive.sum()),
    )


def slice_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    fields: Mapping[str, Sequence[str]],
    *,
    small: int = 30,
    probs: np.ndarray | None = None,
    n_bins: int = ECE_BINS,
) -> tuple[SliceMetrics, ...]:
    """Accuracy, macro-F1, buying recall and (given probabilities) ECE per value of each slicing field.

    A field whose every value is empty (the data does not say) gives no slices.

    Args:
        y_true, y_pred: Class indices.
        fields: Field name -> the field's value per call (``""`` = none).
        small: Slices with fewer calls get ``small=True``.
        probs: ``[n, n_classes]`` calibrated probabilities for the per-slice ECE (None = no ECE).
        n_bins: ECE bins (as for :func:`models.metrics.reliability`).

    Returns:
        Slices ordered by field (as given), then by size (largest first), then value.
    """
    import numpy as np

    y_true, y_pred = check_pair(y_true, y_pred)
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
            accuracy, macro_f1 = accuracy_and_macro_f1(t, p)
            recall = binary_prf(t == buying, p == buying)[1]
            ece = reliability(t, np.asarray(probs)[mask], n_bins).ece if probs is not None else None
            out.append(SliceMetrics(field=field_name, value=value or "(none)", n=int(mask.sum()),
                                    accuracy=float(accuracy), macro_f1=float(macro_f1), buying_recall=recall,
                                    small=bool(mask.sum() < small), ece=ece))
    return tuple(out)


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float | None:
    """Corpus word error rate (jiwer) after lowercasing and removing punctuation on both sides.

    The one WER the project reports (the ASR benchmarks in ``bench/`` and the robustness report):
    word edits over all calls divided by the reference words of all calls, so long calls weigh
    more than short ones.

    Args:
        references: What was said (the labeled text).
        hypotheses: What the ASR heard, same order.

    Returns:
        The WER, or None when the references hold no word.

    Raises:
        ValueError: lists of different length.
        RuntimeError: jiwer is not installed.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"references and hypotheses must have the same length, got {len(references)} "
                         f"and {len(hypotheses)}")
    try:
        import jiwer
    except ImportError as e:
        raise RuntimeError("word error rates require jiwer (pip install 'callintent[eval]')") from e

    norm = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(),
                          jiwer.Strip(), jiwer.ReduceToListOfListOfWords()])
    # jiwer rejects an empty reference; a call with nothing to say adds no reference words anyway.
    pairs = [(r, h) for r, h in zip(references, hypotheses) if r.strip() and any(c.isalnum() for c in r)]
    if not pairs:
        return None
    refs, hyps = zip(*pairs)
    return float(jiwer.wer(list(refs), list(hyps), reference_transform=norm, hypothesis_transform=norm))
