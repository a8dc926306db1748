"""The abstention score: the margin between the two most probable classes, and its risk–coverage curve.

One rule for training (the threshold is chosen on validation), evaluation (the QA report's
risk–coverage curve) and serving (the decision policy abstains below the threshold), so the three
cannot drift apart. No torch: serving imports this.

Why the margin ``p(top1) − p(top2)`` and not entropy: the route follows the argmax, and the margin
is exactly how far the calibrated probabilities are from flipping it. Entropy also rises when the
*losing* classes share their mass evenly (0.60 / 0.20 / 0.20 has more entropy than 0.60 / 0.39 /
0.01), which says nothing about whether the top class is right; the second case is the uncertain
one, and the margin ranks it so (0.21 against 0.40). It is also one number a person can read in a
reason: "margin 0.04 (service 0.48, buying 0.44)".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def probability_margin(probs: np.ndarray) -> np.ndarray:
    """``p(top1) − p(top2)`` per row of calibrated class probabilities.

    Args:
        probs: ``[n, n_classes]`` (or one ``[n_classes]`` row) probabilities, ``n_classes >= 2``.

    Returns:
        ``[n]`` margins in ``[0, 1]`` (a 0-d array for one row).
    """
    import numpy as np

    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape[-1] < 2:
        raise ValueError(f"a margin needs at least 2 classes, got shape {probs.shape}")
    top2 = np.sort(probs, axis=-1)[..., -2:]
    return top2[..., 1] - top2[..., 0]


def margin_of(probabilities: Mapping[str, float]) -> float:
    """:func:`probability_margin` of one call's ``{class: probability}`` (``IntentScores.probabilities``)."""
    values = sorted((float(p) for p in probabilities.values()), reverse=True)
    if len(values) < 2:
        raise ValueError(f"a margin needs at least 2 classes, got {len(values)}")
    return values[0] - values[1]


@dataclass(frozen=True)
class RiskCoverage:
    """Accuracy of the decided calls against the share decided, deciding the most confident first.

    Point ``k`` decides every call whose score is ``>= thresholds[k]`` (calls with equal scores are
    decided together, so a point never splits a tie).

    Attributes:
        thresholds: Score of each point, decreasing.
        coverage: Share of calls decided at each point, increasing; the last is 1.0.
        accuracy: Share of the decided calls whose predicted class is right; the last is the
            overall accuracy, the first that of the most confident call(s).
    """

    thresholds: tuple[float, ...]
    coverage: tuple[float, ...]
    accuracy: tuple[float, ...]

    def at(self, threshold: float) -> tuple[float, float | None]:
        """``(coverage, accuracy)`` when calls scoring ``>= threshold`` are decided (accuracy None: none is)."""
        decided = [k for k, t in enumerate(self.thresholds) if t >= threshold]
        if not decided:
            return 0.0, None
        return self.coverage[decided[-1]], self.accuracy[decided[-1]]


def risk_coverage(scores: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray,
                  weights: Sequence[float] | np.ndarray | None = None) -> RiskCoverage:
    """The risk–coverage curve of deciding calls by ``score >= threshold``.

    Args:
        scores: Per call, the confidence the decision rule thresholds (the margin).
        correct: Per call, whether its predicted class is right.
        weights: Per call weight (e.g. ``1 / rows of its data source``); None = every call counts 1.
            Coverage and accuracy are then weighted shares.

    Returns:
        The curve, one point per distinct score.

    Raises:
        ValueError: no calls, different lengths, or negative / all-zero weights.
    """
    import numpy as np

    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    correct = np.asarray(correct, dtype=np.float64).reshape(-1)
    w = np.ones_like(scores) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(scores) == 0 or len(correct) != len(scores) or len(w) != len(scores):
        raise ValueError(f"need the same number (> 0) of scores, correct flags and weights, got "
                         f"{len(scores)}, {len(correct)}, {len(w)}")
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights must be >= 0 and not all 0")
    order = np.argsort(-scores, kind="stable")
    s, c, w = scores[order], correct[order], w[order]
    decided_weight = np.cumsum(w)
    right_weight = np.cumsum(w * c)
    # The last index of each run of equal scores: a threshold decides all of a tie or none of it.
    ends = np.flatnonzero(np.append(s[1:] != s[:-1], True))
    keep = decided_weight[ends] > 0  # a leading run of zero-weight calls has no accuracy yet
    ends = ends[keep]
    return RiskCoverage(
        thresholds=tuple(float(v) for v in s[ends]),
        coverage=tuple(float(v) for v in decided_weight[ends] / decided_weight[-1]),
        accuracy=tuple(float(v) for v in right_weight[ends] / decided_weight[ends]),
    )


__all__ = ["RiskCoverage", "margin_of", "probability_margin", "risk_coverage"]
