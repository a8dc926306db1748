"""Candidate vs baseline (normally production) on the same calls: metric changes and prediction flips."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.labels import CLASS_NAMES, SIGNAL_NAMES

if TYPE_CHECKING:
    from evaluation.evaluate import ModelEvaluation

#: Flip kinds: the candidate fixed a mistake, broke a right answer, or swapped one mistake for another.
FIXED, BROKEN, CHANGED = "fixed", "broken", "changed"


@dataclass(frozen=True)
class MetricDelta:
    """One metric for both models.

    Attributes:
        key: Machine name (``macro_f1``, ``f1.buying``, ``signal_f1.urgency``…).
        name: Plain name for the report.
        baseline: The baseline's value (None when undefined on the data).
        candidate: The candidate's value.
        higher_is_better: False for errors (ECE, latency).
        tolerance: Changes smaller than this count as ``same`` (measurement noise, rounding).
    """

    key: str
    name: str
    baseline: float | None
    candidate: float | None
    higher_is_better: bool = True
    tolerance: float = 5e-4

    @property
    def delta(self) -> float | None:
        """``candidate - baseline`` (None when either is undefined)."""
        if self.baseline is None or self.candidate is None:
            return None
        return self.candidate - self.baseline

    @property
    def verdict(self) -> str:
        """``better``, ``worse`` or ``same`` (changes under ``tolerance`` are ``same``)."""
        delta = self.delta
        if delta is None or abs(delta) < self.tolerance:
            return "same"
        return "better" if (delta > 0) == self.higher_is_better else "worse"


@dataclass(frozen=True)
class Flip:
    """A call whose predicted class differs between the two models.

    Attributes:
        index: Row in the evaluation set.
        call_id: The call.
        transcript: What was scored.
        label: The labeled class.
        baseline_prediction, candidate_prediction: The two predicted classes.
        baseline_confidence, candidate_confidence: Each model's probability of its own prediction.
        kind: :data:`FIXED`, :data:`BROKEN` or :data:`CHANGED`.
    """

    index: int
    call_id: str
    transcript: str
    label: str
    baseline_prediction: str
    candidate_prediction: str
    baseline_confidence: float
    candidate_confidence: float
    kind: str


@dataclass(frozen=True)
class Comparison:
    """Candidate vs baseline on the same calls.

    Attributes:
        candidate: The candidate's evaluation.
        baseline: The baseline's evaluation.
        deltas: Headline metrics, then per-class F1, then per-signal F1.
        flips: Calls whose prediction changed (broken first, then fixed, then changed).
    """

    candidate: ModelEvaluation
    baseline: ModelEvaluation
    deltas: tuple[MetricDelta, ...]
    flips: tuple[Flip, ...]

    def count(self, kind: str) -> int:
        return sum(1 for f in self.flips if f.kind == kind)

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline.model.model_id,
            "candidate": self.candidate.model.model_id,
            "deltas": {d.key: {"baseline": _r(d.baseline), "candidate": _r(d.candidate), "delta": _r(d.delta),
                               "verdict": d.verdict} for d in self.deltas},
            "flips": {"total": len(self.flips), FIXED: self.count(FIXED), BROKEN: self.count(BROKEN),
                      CHANGED: self.count(CHANGED),
                      "calls": [{"call_id": f.call_id, "label": f.label, "baseline": f.baseline_prediction,
                                 "candidate": f.candidate_prediction, "kind": f.kind} for f in self.flips]},
        }


def compare(candidate: ModelEvaluation, baseline: ModelEvaluation) -> Comparison:
    """Compare two evaluations of the same calls.

    Args:
        candidate: The new model's evaluation.
        baseline: The current model's evaluation on the same :class:`EvalSet`.

    Returns:
        The comparison.

    Raises:
        ValueError: the two evaluations are not on the same calls in the same order.
    """
    same_calls = candidate.data.call_ids == baseline.data.call_ids
    if not same_calls or candidate.data.fingerprint != baseline.data.fingerprint:
        raise ValueError("a comparison needs both models evaluated on the same calls in the same order")
    c, b = candidate, baseline
    deltas = [
        MetricDelta("accuracy", "accuracy", b.classes.accuracy, c.classes.accuracy),
        MetricDelta("macro_f1", "macro-F1", b.classes.macro_f1, c.classes.macro_f1),
        MetricDelta("ece", "calibration error (ECE)", b.calibration.ece, c.calibration.ece,
                    higher_is_better=False),
        MetricDelta("buying_average_precision", "buying average precision", b.pr_curve.average_precision,
                    c.pr_curve.average_precision),
        MetricDelta("signal_macro_f1", "signal macro-F1", b.signals.macro_f1, c.signals.macro_f1),
    ]
    for name in CLASS_NAMES:
        bc, cc = b.classes.of(name), c.classes.of(name)
        deltas.append(MetricDelta(f"precision.{name}", f"{name} precision", bc.precision, cc.precision))
        deltas.append(MetricDelta(f"recall.{name}", f"{name} recall", bc.recall, cc.recall))
        deltas.append(MetricDelta(f"f1.{name}", f"{name} F1", bc.f1, cc.f1))
    for j, name in enumerate(SIGNAL_NAMES):
        deltas.append(MetricDelta(f"signal_f1.{name}", f"{name} F1", b.signals.per_signal[j].f1,
                                  c.signals.per_signal[j].f1))
    for bl, cl in zip(b.latency, c.latency):
        if bl.batch_size == cl.batch_size:
            deltas.append(MetricDelta(f"latency_p50_ms.batch_{bl.batch_size}",
                                      f"p50 latency, batch {bl.batch_size} (ms)", bl.p50_ms, cl.p50_ms,
                                      higher_is_better=False,
                                      # Timing noise on a shared machine: under 10 % is no change.
                                      tolerance=max(0.1 * bl.p50_ms, 0.05)))

    flips = []
    truth = c.data.label_ids
    for i in range(len(c.data)):
        old, new = int(b.scored.pred_ids[i]), int(c.scored.pred_ids[i])
        if old == new:
            continue
        kind = FIXED if new == truth[i] else BROKEN if old == truth[i] else CHANGED
        flips.append(Flip(
            index=i, call_id=c.data.call_ids[i], transcript=c.data.transcripts[i], label=c.data.labels[i],
            baseline_prediction=CLASS_NAMES[old], candidate_prediction=CLASS_NAMES[new],
            baseline_confidence=float(b.scored.class_probs[i, old]),
            candidate_confidence=float(c.scored.class_probs[i, new]), kind=kind,
        ))
    order = {BROKEN: 0, FIXED: 1, CHANGED: 2}
    flips.sort(key=lambda f: (order[f.kind], f.index))
    return Comparison(candidate=candidate, baseline=baseline, deltas=tuple(deltas), flips=tuple(flips))


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)
