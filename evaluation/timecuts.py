"""How right the model is 5, 10, 20, 30 seconds into the call, and when the live policy would decide.

A live call is scored on the words heard so far, not on the finished opening. For every call with
word timings (ASR words from ``callintent data render-asr`` / ``data transcribe``, or the built-in
corpus's simulated timings) this module

* scores the transcript prefix available at each second — the words that *started* before ``t``
  (:func:`speech.asr.cut_words`) — and computes macro-F1, buying precision/recall and ECE per
  cut-off (an empty prefix is scored too: that is what the model says before anyone spoke);
* replays the serving decision policy (:class:`serving.policy.DecisionPolicy`, imported read-only:
  it is pure Python) over those prefixes: at each step ``DecisionPolicy.early_decision``; with no
  early decision by the end of the call's audio (at most the 30 s window),
  ``DecisionPolicy.decide`` — which abstains (``undetermined``, with the reason) when the top class
  is below the segment's ``abstain_below`` or the top two are closer than the abstention margin.
  Abstentions are counted apart from wrong decisions.

The replay reveals the words of one decode of the whole opening by their start times; a live
stream re-decodes a growing buffer, so its words at a given second can differ a little (the
stable-prefix rule of ``serving/live_call.py`` holds back the last ones).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from callintent.config import is_int, is_number
from speech.transcript import OPENING_SECONDS
from models.labels import BUYING, CLASS_NAMES
from models.metrics import ECE_BINS

if TYPE_CHECKING:
    from evaluation.evalset import CallTiming, EvalSet
    from models.scores import IntentScores
    from serving.policy import DecisionPolicy

logger = logging.getLogger(__name__)

#: The cut-offs the report tabulates (seconds into the call).
DEFAULT_CUTOFFS: tuple[float, ...] = (5.0, 10.0, 15.0, 20.0, 30.0)

UNDETERMINED = "undetermined"


class Scorer(Protocol):
    """What the replay needs of a model (``models.predictor.IntentPredictor`` is one)."""

    def predict(self, texts: Sequence[str], *, evidence: bool = True) -> list[IntentScores]: ...


@dataclass(frozen=True)
class TimecutConfig:
    """How the time cut-offs and the decision replay are computed.

    Attributes:
        cutoffs: Seconds into the call tabulated in the report (each must be a multiple of
            ``step_seconds`` within the window).
        step_seconds: The replay scores the prefix every this many seconds (the live stream
            decodes about once a second).
        window_seconds: The opening the product scores; the policy decides at its end at the latest.
        ece_bins: Bins of the calibration error at each cut-off.
    """

    cutoffs: tuple[float, ...] = DEFAULT_CUTOFFS
    step_seconds: float = 1.0
    window_seconds: float = OPENING_SECONDS
    ece_bins: int = ECE_BINS

    def __post_init__(self) -> None:
        if not is_number(self.step_seconds) or not 0.0 < self.step_seconds <= 10.0:
            raise ValueError(f"step_seconds must be in (0, 10], got {self.step_seconds!r}")
        if not is_number(self.window_seconds) or not self.step_seconds <= self.window_seconds <= 600.0:
            raise ValueError(f"window_seconds must be between step_seconds and 600, got {self.window_seconds!r}")
        if isinstance(self.cutoffs, (str, int, float)) or not self.cutoffs:
            raise ValueError(f"cutoffs must be a non-empty list of seconds, got {self.cutoffs!r}")
        for c in self.cutoffs:
            on_grid = is_number(c) and abs(c / self.step_seconds - round(c / self.step_seconds)) < 1e-9
            if not on_grid or not 0.0 < c <= self.window_seconds:
                raise ValueError(f"cutoffs must be multiples of step_seconds ({self.step_seconds:g}) in "
                                 f"(0, window_seconds], got {c!r}")
        if not is_int(self.ece_bins) or self.ece_bins < 1:
            raise ValueError(f"ece_bins must be an integer >= 1, got {self.ece_bins!r}")

    @property
    def steps(self) -> tuple[float, ...]:
        """Every replay time: ``step, 2·step, …, window``."""
        n = int(math.floor(self.window_seconds / self.step_seconds + 1e-9))
        return tuple(round(k * self.step_seconds, 6) for k in range(1, n + 1))


@dataclass(frozen=True)
class CutoffMetrics:
    """The model on every call's prefix at one time into the call.

    Attributes:
        seconds: The cut-off.
        n: Calls scored.
        with_words: Calls with at least one word before the cut-off.
        accuracy: Share of calls whose predicted class is the labeled one.
        macro_f1: Mean per-class F1 (scikit-learn's label set: classes in labels or predictions).
        buying_precision: Share of calls predicted buying that are buying (None: none predicted).
        buying_recall: Share of buying calls predicted buying (None: no buying calls).
        ece: Expected calibration error of the top-class probability.
    """

    seconds: float
    n: int
    with_words: int
    accuracy: float
    macro_f1: float
    buying_precision: float | None
    buying_recall: float | None
    ece: float

    def to_json(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "n": self.n, "with_words": self.with_words, "accuracy": _r(self.accuracy),
                "macro_f1": _r(self.macro_f1), "buying_precision": _r(self.buying_precision),
                "buying_recall": _r(self.buying_recall), "ece": _r(self.ece)}


@dataclass(frozen=True)
class CallDecision:
    """The replayed serving decision of one call.

    Attributes:
        call_id: The call.
        label: Labeled class.
        route: ``priority_sales`` / ``standard`` / ``screen`` / ``undetermined``.
        decided: The class the decision is based on (for ``undetermined``, the top class it would not bet on).
        seconds: Seconds into the call when it was made.
        early: Made by ``early_decision`` before the end of the call's audio / the window.
        confidence: Calibrated probability of ``decided`` then.
        reasons: The policy's reasons (the abstention reason for ``undetermined``).
    """

    call_id: str
    label: str
    route: str
    decided: str
    seconds: float
    early: bool
    confidence: float
    reasons: tuple[str, ...]

    @property
    def abstained(self) -> bool:
        """The policy said ``undetermined`` rather than guess."""
        return self.route == UNDETERMINED

    @property
    def correct(self) -> bool | None:
        """Whether the decided class is the labeled one (None when abstained: not a right or wrong answer)."""
        return None if self.abstained else self.decided == self.label


@dataclass(frozen=True)
class DecisionSummary:
    """The decision timeline over all replayed calls.

    Attributes:
        n: Calls replayed.
        early: Decisions made early.
        early_wrong: Early decisions whose class is not the labeled one.
        at_end: Decisions made at the end of the call's audio or the window (not early).
        at_end_wrong: Of those, wrong ones (abstentions excluded).
        abstained: ``undetermined`` decisions (all at the end; never counted as wrong).
        buying_calls: Labeled buying calls replayed.
        buying_seconds: Decision time of each buying call (seconds into the call).
        buying_early: Buying calls decided early.
        buying_priority: Buying calls routed ``priority_sales`` (at any time).
    """

    n: int
    early: int
    early_wrong: int
    at_end: int
    at_end_wrong: int
    abstained: int
    buying_calls: int
    buying_seconds: tuple[float, ...]
    buying_early: int
    buying_priority: int

    @property
    def early_wrong_rate(self) -> float | None:
        """Share of early decisions that were wrong (None: no early decision)."""
        return self.early_wrong / self.early if self.early else None

    @property
    def decided_wrong_rate(self) -> float | None:
        """Share of all non-abstained decisions that were wrong."""
        decided = self.n - self.abstained
        return (self.early_wrong + self.at_end_wrong) / decided if decided else None

    @property
    def median_buying_seconds(self) -> float | None:
        """Median time-to-decision on buying calls (None: no buying calls)."""
        import numpy as np

        return float(np.median(self.buying_seconds)) if self.buying_seconds else None

    def to_json(self) -> dict[str, Any]:
        import numpy as np

        quantiles = ({f"p{q}": _r(float(np.percentile(self.buying_seconds, q))) for q in (25, 50, 75, 90)}
                     if self.buying_seconds else {})
        return {
            "n": self.n, "early": self.early, "early_wrong": self.early_wrong,
            "early_wrong_rate": _r(self.early_wrong_rate), "at_end": self.at_end, "at_end_wrong": self.at_end_wrong,
            "abstained": self.abstained, "abstained_rate": _r(self.abstained / self.n if self.n else None),
            "decided_wrong_rate": _r(self.decided_wrong_rate),
            "buying": {"calls": self.buying_calls, "median_seconds_to_decision": _r(self.median_buying_seconds),
                       "seconds_to_decision": quantiles, "decided_early": self.buying_early,
                       "routed_priority_sales": self.buying_priority},
        }


@dataclass(frozen=True)
class TimecutResult:
    """Accuracy over time and the decision replay of one model on one set of timed calls.

    Attributes:
        model_id: The model.
        n: Calls with word timings (the others are left out of this section).
        skipped: Calls without word timings.
        timing_source: ``asr`` (every call's words came from an ASR), ``simulated`` (none did) or ``mixed``.
        asr_models: The ASR models behind the words.
        curve: Metrics at every replay step (for the chart).
        decisions: The replayed decision of every call.
        summary: Counts and times over ``decisions``.
        config: The settings used.
        seconds: Wall time of the replay.
    """

    model_id: str
    n: int
    skipped: int
    timing_source: str
    asr_models: tuple[str, ...]
    curve: tuple[CutoffMetrics, ...]
    decisions: tuple[CallDecision, ...]
    summary: DecisionSummary
    config: TimecutConfig
    seconds: float

    def at(self, seconds: float) -> CutoffMetrics:
        """The metrics at a replay time (a cut-off)."""
        for point in self.curve:
            if abs(point.seconds - seconds) < 1e-6:
                return point
        raise KeyError(f"no cut-off at {seconds} s")

    @property
    def cutoffs(self) -> tuple[CutoffMetrics, ...]:
        """The tabulated cut-offs (``config.cutoffs``)."""
        return tuple(self.at(c) for c in self.config.cutoffs)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model_id, "n": self.n, "skipped_without_timings": self.skipped,
            "timing_source": self.timing_source, "asr_models": list(self.asr_models),
            "cutoffs": {f"{c.seconds:g}": c.to_json() for c in self.cutoffs},
            "curve": [c.to_json() for c in self.curve],
            "decisions": self.summary.to_json(),
            "settings": {"step_seconds": self.config.step_seconds, "window_seconds": self.config.window_seconds,
                         "ece_bins": self.config.ece_bins},
        }


def prefix_text(timing: CallTiming, seconds: float) -> str:
    """The transcript available ``seconds`` into the call: words that started before it, joined
    (speaker-tagged when the call is scored tagged)."""
    from speech.asr import cut_words
    from speech.speakers import tag_words

    words = cut_words(timing.words, seconds)
    return tag_words(words).text if timing.tagged else " ".join(w.text for w in words)


def metrics_at(seconds: float, labels: Sequence[int], probs: Any, with_words: int,
               ece_bins: int = ECE_BINS) -> CutoffMetrics:
    """Macro-F1, accuracy, buying precision/recall and ECE of one cut-off.

    Args:
        seconds: The cut-off.
        labels: Labeled class indices.
        probs: ``[n, n_classes]`` calibrated probabilities of the prefixes.
        with_words: Calls with any word before the cut-off.
        ece_bins: Calibration bins.

    Returns:
        The metrics.
    """
    import numpy as np

    from models.metrics import classification_metrics, expected_calibration_error

    probs = np.asarray(probs, dtype=np.float64)
    pred = probs.argmax(axis=1)
    classes = classification_metrics(np.asarray(labels), pred)
    buying = classes.of(BUYING)
    return CutoffMetrics(seconds=float(seconds), n=len(labels), with_words=int(with_words),
                         accuracy=classes.accuracy, macro_f1=classes.macro_f1, buying_precision=buying.precision,
                         buying_recall=buying.recall, ece=expected_calibration_error(labels, probs, ece_bins))


def replay_decision(
    call_id: str,
    label: str,
    timeline: Sequence[tuple[float, IntentScores]],
    end_seconds: float,
    end_scores: IntentScores,
    policy: DecisionPolicy,
    metadata: Mapping[str, str],
) -> CallDecision:
    """The decision the live policy makes on one call.

    Args:
        call_id, label: The call.
        timeline: ``(seconds, scores of the prefix then)`` at each replay step before the end, in order.
        end_seconds: When the call's audio (or the window) ends.
        end_scores: Scores of everything heard by then.
        policy: The serving decision policy.
        metadata: Call metadata that selects the policy segment (``source``, ``campaign``…).

    Returns:
        The first early decision, else the end-of-call decision (possibly ``undetermined``).
    """
    for seconds, scores in timeline:
        decision = policy.early_decision(scores, metadata, seconds)
        if decision is not None:
            return CallDecision(call_id, label, decision.route, decision.label, seconds, True, decision.confidence,
                                decision.reasons)
    decision = policy.decide(end_scores, metadata, audio_seconds=end_seconds)
    return CallDecision(call_id, label, decision.route, decision.label, end_seconds, False, decision.confidence,
                        decision.reasons)


def summarize(decisions: Sequence[CallDecision]) -> DecisionSummary:
    """Counts and times over replayed decisions."""
    early = [d for d in decisions if d.early]
    end = [d for d in decisions if not d.early]
    buying = [d for d in decisions if d.label == BUYING]
    return DecisionSummary(
        n=len(decisions), early=len(early), early_wrong=sum(1 for d in early if d.correct is False),
        at_end=len(end), at_end_wrong=sum(1 for d in end if d.correct is False),
        abstained=sum(1 for d in decisions if d.abstained), buying_calls=len(buying),
        buying_seconds=tuple(d.seconds for d in buying), buying_early=sum(1 for d in buying if d.early),
        buying_priority=sum(1 for d in buying if d.route == "priority_sales"),
    )


def evaluate_timecuts(
    scorer: Scorer,
    eval_set: EvalSet,
    policy: DecisionPolicy,
    config: TimecutConfig = TimecutConfig(),
    *,
    model_id: str = "",
) -> TimecutResult:
    """Score every timed call's prefix at each second and replay the serving decision.

    Args:
        scorer: The model (``IntentPredictor``), scored without evidence.
        eval_set: Labeled calls; those without word timings are skipped (counted).
        policy: The serving decision policy.
        config: Cut-offs, step, window, bins.
        model_id: Shown in the report (default: the scorer's ``model_id`` when it has one).

    Returns:
        The result.

    Raises:
        ValueError: no call has word timings.
    """
    import numpy as np

    started = time.perf_counter()
    timed = [i for i, t in enumerate(eval_set.timings) if t is not None] if eval_set.timings else []
    if not timed:
        raise ValueError("no call has word timings (a 'words' list with start/end seconds); render the data "
                         "with 'callintent data render-asr' or transcribe audio with 'callintent data transcribe'")
    steps = config.steps
    # Every prefix text any step needs, scored once (consecutive seconds often share a prefix).
    ends: dict[int, float] = {}
    needed: dict[str, None] = {}
    for i in timed:
        timing = eval_set.timings[i]
        assert timing is not None
        ends[i] = min(config.window_seconds, timing.audio_seconds)
        for t in (*steps, ends[i]):
            needed.setdefault(prefix_text(timing, min(t, ends[i])), None)
    texts = list(needed)
    logger.info("time cut-offs: scoring %d distinct prefixes of %d calls", len(texts), len(timed))
    scored = dict(zip(texts, scorer.predict(texts, evidence=False)))

    labels = [int(eval_set.label_ids[i]) for i in timed]
    curve = []
    for t in steps:
        prefixes = [prefix_text(eval_set.timings[i], min(t, ends[i])) for i in timed]  # type: ignore[arg-type]
        probs = np.asarray([[scored[p].probabilities.get(c, 0.0) for c in CLASS_NAMES] for p in prefixes])
        curve.append(metrics_at(t, labels, probs, sum(1 for p in prefixes if p), config.ece_bins))

    decisions = []
    for i in timed:
        timing = eval_set.timings[i]
        metadata = {k: v for k, v in (("source", eval_set.source[i]), ("campaign", eval_set.campaign[i]),
                                      ("industry", eval_set.industry[i])) if v}
        timeline = [(t, scored[prefix_text(timing, t)]) for t in steps if t < ends[i]]  # type: ignore[arg-type]
        end_scores = scored[prefix_text(timing, ends[i])]  # type: ignore[arg-type]
        decisions.append(replay_decision(eval_set.call_ids[i], eval_set.labels[i], timeline, ends[i], end_scores,
                                         policy, metadata))
    summary = summarize(decisions)

    models = sorted({t.asr_model for t in eval_set.timings if t is not None and t.asr_model})
    from_asr = sum(1 for i in timed if eval_set.timings[i].asr_model)  # type: ignore[union-attr]
    source = "asr" if from_asr == len(timed) else "simulated" if from_asr == 0 else "mixed"
    result = TimecutResult(
        model_id=model_id or str(getattr(scorer, "model_id", "")), n=len(timed), skipped=len(eval_set) - len(timed),
        timing_source=source, asr_models=tuple(models), curve=tuple(curve), decisions=tuple(decisions),
        summary=summary, config=config, seconds=round(time.perf_counter() - started, 2),
    )
    first = result.cutoffs[0]
    logger.info("time cut-offs on %d calls (%s timings): macro-F1 %.3f at %g s … %.3f at %g s; median buying "
                "decision at %s s; %d early decisions (%d wrong), %d abstained (%.1f s)", result.n, source,
                first.macro_f1, first.seconds, result.cutoffs[-1].macro_f1, result.cutoffs[-1].seconds,
                summary.median_buying_seconds, summary.early, summary.early_wrong, summary.abstained,
                result.seconds)
    return result


def _r(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


__all__ = ["CallDecision", "CutoffMetrics", "DecisionSummary", "Scorer", "TimecutConfig",
           "TimecutResult", "evaluate_timecuts", "metrics_at", "prefix_text", "replay_decision", "summarize"]
