"""How right the model is 5, 10, 20, 30 seconds into the call, and when the live service would decide.

Every call with word timings (ASR words from ``callintent data render-asr`` / ``data transcribe``,
or the built-in corpus's simulated timings) is replayed through the service's own live-call core,
:class:`serving.live_call.LiveCall`, with the service's scorer adapter
(:class:`serving.live_call.PredictorScorer`) and decision policy
(:class:`serving.policy.DecisionPolicy`), so evaluation and serving cannot disagree on when a
decision is made:

* the call's audio is fed in 20 ms frames (Twilio's, and ``callintent stream``'s default) with an
  injected clock that stands at the end of the audio fed so far; the decode schedule, the stable
  prefix, the sliding decode window, the early decision, the deadline and the end-of-window or
  end-of-call decision are LiveCall's;
* the ASR is scripted (:class:`ScriptedTranscriber`): a decode of the buffer from ``offset`` hears
  exactly the labeled words that *started* inside the audio it is given (a word cut by the end
  of the buffer counts as heard, as in :func:`speech.asr.cut_words`). It is instantaneous, so
  the replay never lags behind real time (no lag skip-ahead);
* the samples are zeros, and the replay runs the service's stream settings with the VAD gate
  off (:func:`replay_stream_config`): the gate would call that audio silence and skip every
  decode, while here the script, not the audio, says what was said. With the gate off every
  second is decoded, as every second of speech is live. The one thing this can move: over a
  pause, once its unstable words have settled, a live stream skips decodes, and a skipped
  decode re-checks no early decision, so an early decision that becomes due by time alone
  (``min_audio_seconds`` passing during the pause) comes at the live stream's next decode,
  while the replay makes it at once. (A two-channel call's caller and agent channels are filled
  with two different inaudible constants, :data:`SPEAKER_LEVELS`: the scripted ASR cannot hear
  a voice, so the level says whose words a decode reads.)

From the events of each replay this module computes, at every step (each second): macro-F1, buying
precision/recall and ECE of what the stream showed by then — the scores of the latest ``partial``
event, the ``final`` one once the call's audio has ended, or the empty transcript before the first
decode — and each call's one ``decision`` event: early (``DecisionPolicy.early_decision`` after a
decode, or the stream's deadline) or at the end of the call's audio or the window
(``DecisionPolicy.decide``, which abstains — ``undetermined``, with the reason — when the top
class is below the segment's ``abstain_below`` or the top two are closer than the abstention
margin). Abstentions are counted apart from wrong decisions.

What the replay does not model is the ASR itself: a real decoder mishears, and hears a word cut
by the end of the buffer only in part; the figures are those of a perfect listener.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from callintent.config import is_int, is_number
from speech.transcript import OPENING_SECONDS
from models.labels import BUYING, CLASS_NAMES
from models.metrics import ECE_BINS

if TYPE_CHECKING:
    import numpy as np

    from evaluation.evalset import CallTiming, EvalSet
    from models.scores import IntentScores
    from serving.live_call import Scorer as LiveScorer
    from serving.live_call import StreamConfig, Transcriber
    from serving.policy import Decision, DecisionPolicy
    from speech.transcript import OpeningTranscript, Word

logger = logging.getLogger(__name__)

#: The cut-offs the report tabulates (seconds into the call).
DEFAULT_CUTOFFS: tuple[float, ...] = (5.0, 10.0, 15.0, 20.0, 30.0)

UNDETERMINED = "undetermined"

#: Audio per ``LiveCall.insert`` in the replay: Twilio's media frames and ``callintent stream``'s
#: default frame (20 ms).
REPLAY_FRAME_SECONDS = 0.02

#: The constant sample value of each channel of a two-channel replay (both far below the VAD
#: threshold, and the replay's VAD gate is off anyway): the scripted ASR cannot hear a voice, so
#: the level tells it whose channel a decode reads.
SPEAKER_LEVELS: dict[str, float] = {"caller": 0.0, "agent": 2.0 ** -12}


class Scorer(Protocol):
    """What the replay needs of a model (``models.predictor.IntentPredictor`` is one); the replay
    scores through the service's adapter, :class:`serving.live_call.PredictorScorer`."""

    def predict(self, texts: Sequence[str], *, evidence: bool = True) -> list[IntentScores]: ...


@dataclass(frozen=True)
class TimecutConfig:
    """How the time cut-offs and the decision replay are computed.

    Attributes:
        cutoffs: Seconds into the call tabulated in the report (each must be a multiple of
            ``step_seconds`` within the window).
        step_seconds: The curve samples what the stream showed every this many seconds (the live
            stream decodes once a second: ``StreamConfig.decode_interval_seconds``).
        window_seconds: The opening the product scores (the replayed stream's window, at most
            LiveCall's 30 s); the policy decides at its end at the latest.
        ece_bins: Bins of the calibration error at each cut-off.
    """

    cutoffs: tuple[float, ...] = DEFAULT_CUTOFFS
    step_seconds: float = 1.0
    window_seconds: float = OPENING_SECONDS
    ece_bins: int = ECE_BINS

    def __post_init__(self) -> None:
        if not is_number(self.step_seconds) or not 0.0 < self.step_seconds <= 10.0:
            raise ValueError(f"step_seconds must be in (0, 10], got {self.step_seconds!r}")
        # LiveCall transcribes at most one Whisper window (serving.live_call.MAX_WINDOW_SECONDS).
        if not is_number(self.window_seconds) or not self.step_seconds <= self.window_seconds <= OPENING_SECONDS:
            raise ValueError(f"window_seconds must be between step_seconds and {OPENING_SECONDS:g}, "
                             f"got {self.window_seconds!r}")
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
        """Every time the curve is sampled: ``step, 2·step, …, window``."""
        n = int(math.floor(self.window_seconds / self.step_seconds + 1e-9))
        return tuple(round(k * self.step_seconds, 6) for k in range(1, n + 1))


@dataclass(frozen=True)
class CutoffMetrics:
    """The model on every call's prefix at one time into the call.

    Attributes:
        seconds: The cut-off.
        n: Calls scored.
        with_words: Calls the stream had heard at least one word of by the cut-off.
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
        early: Made before the end of the call's audio / the window (``Decision.early``: the
            policy's ``early_decision`` after a decode, or the stream's deadline).
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
        abstained: ``undetermined`` decisions (at the end, or at the stream's deadline; never
            counted as wrong).
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
        curve: Metrics at every step (for the chart).
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


class ScriptedTranscriber:
    """A :class:`serving.live_call.Transcriber` that hears exactly a call's labeled words.

    A decode of ``audio`` (the buffer from ``offset`` seconds into the call) returns the words
    that started inside it: from ``offset`` (or earlier when the word still sounds at
    ``offset``) to the end of the audio, and before ``offset + cut_seconds``. A word cut by the
    end of the buffer is heard whole, as :func:`speech.asr.cut_words` keeps it.

    Args:
        channels: Each channel's words in time order, keyed by the constant sample value the
            replay fills that channel's audio with (one channel: ``{0.0: words}``; two:
            :data:`SPEAKER_LEVELS`).
    """

    def __init__(self, channels: Mapping[float, Sequence[Word]]) -> None:
        self.channels = {float(level): tuple(words) for level, words in channels.items()}
        self.decodes: list[tuple[float, float]] = []  # (offset, seconds) of every decode, for tests

    def transcribe(self, audio: np.ndarray, *, cut_seconds: float = 30.0, offset: float = 0.0) -> OpeningTranscript:
        from speech.asr import cut_words
        from speech.audio import SAMPLE_RATE
        from speech.transcript import OpeningTranscript

        seconds = audio.size / SAMPLE_RATE
        level = float(audio[0]) if audio.size else 0.0
        try:
            words = self.channels[level]
        except KeyError:
            raise ValueError(f"no channel of this script is filled with {level!r} "
                             f"(channels: {sorted(self.channels)})") from None
        self.decodes.append((offset, seconds))
        heard = tuple(w for w in cut_words(words, offset + min(seconds, cut_seconds))
                      if w.start >= offset or w.end > offset)
        return OpeningTranscript(words=heard, audio_seconds=seconds, cut_seconds=cut_seconds)


@dataclass(frozen=True)
class LiveView:
    """What a replayed stream showed after one decode (a ``partial`` event) or at its end (``final``).

    Attributes:
        seconds: Call audio the view is based on.
        scores: Its scores (as the event carries them).
        heard: At least one word had been heard.
    """

    seconds: float
    scores: IntentScores
    heard: bool


@dataclass(frozen=True)
class CallReplay:
    """One call replayed through :class:`serving.live_call.LiveCall`.

    Attributes:
        call_id: The call.
        partials: The view after each decode, in order.
        final: The view of the ``final`` event (everything heard; ``seconds`` = audio fed).
        decision: The call's one decision.
        decodes: Decodes the stream ran.
        transcript: What the stream heard by its end (the caller's words on two channels; not
            redacted, as the model read it).
    """

    call_id: str
    partials: tuple[LiveView, ...]
    final: LiveView
    decision: Decision
    decodes: int
    transcript: str = ""

    def at(self, seconds: float) -> LiveView | None:
        """What the stream showed ``seconds`` into the call: the latest partial by then, the final
        view once the call's audio has ended; None before the first decode."""
        if seconds >= self.final.seconds - 1e-9:
            return self.final
        shown = None
        for view in self.partials:
            if view.seconds > seconds + 1e-9:
                break
            shown = view
        return shown


def replay_stream_config(stream: StreamConfig, window_seconds: float) -> StreamConfig:
    """The service's stream settings as a replay runs them.

    Args:
        stream: The service's live-call settings (``ServeConfig.stream``).
        window_seconds: The replay's window (``TimecutConfig.window_seconds``).

    Returns:
        ``stream`` with that window (the deadline at most the window) and the VAD gate off: the
        replay's audio is zeros, which the gate would skip as silence, while the scripted
        transcriber, not the audio, says what was said (see the module docstring).
    """
    import dataclasses

    return dataclasses.replace(stream, vad_gate=False, window_seconds=window_seconds,
                               decision_deadline_seconds=min(stream.decision_deadline_seconds, window_seconds))


def replay_call(
    call_id: str,
    timing: CallTiming,
    metadata: Mapping[str, str],
    *,
    scorer: LiveScorer,
    policy: DecisionPolicy,
    stream: StreamConfig,
    model: str = "",
    frame_seconds: float = REPLAY_FRAME_SECONDS,
) -> CallReplay:
    """Stream one call's audio (zeros, with its words scripted) through ``LiveCall`` as the service would.

    Args:
        call_id: The call.
        timing: Its words and audio length; a tagged call (``timing.tagged``) is replayed as a
            two-channel call, each speaker's words on their own channel.
        metadata: Call metadata that selects the policy segment.
        scorer: The live scorer (:class:`serving.live_call.PredictorScorer` over the model).
        policy: The serving decision policy.
        stream: Stream settings (:func:`replay_stream_config`).
        model: Model version shown in the events.
        frame_seconds: Audio per insert.

    Returns:
        The views after each decode, the final view and the decision.

    Raises:
        ValueError: a tagged call and a scorer that does not read speaker-tagged text (the
            stream would score the caller's words only, not the tagged text of the eval set).
    """
    import numpy as np

    from speech.audio import SAMPLE_RATE

    speakers = tuple(SPEAKER_LEVELS) if timing.tagged else ()
    if speakers and not getattr(scorer, "speaker_tags", False):
        raise ValueError(f"call {call_id} is scored as speaker-tagged text, but the model does not read tags")
    channels = ({SPEAKER_LEVELS[s]: [w for w in timing.words if w.speaker == s] for s in speakers} if speakers
                else {0.0: timing.words})
    total = round(min(timing.audio_seconds, stream.window_seconds) * SAMPLE_RATE)
    tracks = {s: np.full(total, SPEAKER_LEVELS[s] if s else 0.0, np.float32) for s in speakers or (None,)}
    return stream_call(call_id, tracks, metadata, asr=ScriptedTranscriber(channels), scorer=scorer, policy=policy,
                       stream=stream, model=model, frame_seconds=frame_seconds)


def stream_call(
    call_id: str,
    tracks: Mapping[str | None, np.ndarray],
    metadata: Mapping[str, str],
    *,
    asr: Transcriber,
    scorer: LiveScorer,
    policy: DecisionPolicy,
    stream: StreamConfig,
    model: str = "",
    frame_seconds: float = REPLAY_FRAME_SECONDS,
) -> CallReplay:
    """Feed a call's audio through ``LiveCall`` frame by frame, as fast as ``asr`` decodes.

    The call's clock stands at the end of the audio fed so far: every decode is timed as if the
    ASR kept up with real time (latency 0, never lagging), whatever it really takes, so the
    decode schedule, the stable prefix and the decision are those of a server with cores to spare.

    Args:
        call_id: The call.
        tracks: 16 kHz float32 samples: ``{None: …}`` for one channel, ``caller`` and ``agent``
            for a two-channel call (cut to the stream's window).
        metadata: Call metadata that selects the policy segment.
        asr: The transcriber (:class:`speech.asr.SpeechRecognizer`, or :class:`ScriptedTranscriber`).
        scorer: The live scorer (:class:`serving.live_call.PredictorScorer` over the model).
        policy: The serving decision policy.
        stream: Stream settings.
        model: Model version shown in the events.
        frame_seconds: Audio per insert.

    Returns:
        The views after each decode, the final view, the decision and the heard transcript.
    """
    from serving.live_call import LiveCall
    from speech.audio import SAMPLE_RATE

    speakers = tuple(s for s in tracks if s is not None)
    frame = max(1, round(frame_seconds * SAMPLE_RATE))
    clock = _ReplayClock()
    call = LiveCall(call_id, metadata, asr=asr, scorer=scorer, policy=policy, config=stream, clock=clock,
                    model=model, speakers=speakers)
    call.start()
    events = []
    total = min(max(t.size for t in tracks.values()), round(stream.window_seconds * SAMPLE_RATE))
    fed = 0
    while fed < total:
        n = min(frame, total - fed)
        clock.now = (fed + n) / SAMPLE_RATE
        for speaker, samples in tracks.items():
            chunk = samples[fed:fed + n]
            if chunk.size:
                call.insert(chunk, arrived_at=clock.now, speaker=speaker)
        fed += n
        if call.ready():
            events += call.step()
    events += call.finish()
    partials = tuple(LiveView(e.audio_seconds, e.scores, _heard(e)) for e in events
                     if e.type == "partial" and e.scores is not None)
    final = events[-1]
    assert final.type == "final" and final.scores is not None and final.totals is not None and call.decision
    return CallReplay(call_id=call_id, partials=partials,
                      final=LiveView(fed / SAMPLE_RATE, final.scores, bool(final.words)),
                      decision=call.decision, decodes=final.totals.decodes, transcript=call.transcript)


class _ReplayClock:
    """LiveCall's clock in a replay: it stands at the end of the audio fed so far (the scripted
    ASR and the scorer take no time, so latency is 0 and the stream never lags)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _heard(event: Any) -> bool:
    """Whether a partial event shows any word (of either speaker in a two-channel call)."""
    return bool(event.text) or any(st or un for st, un in event.speaker_text.values())


@contextlib.contextmanager
def quiet_live_calls() -> Iterator[None]:
    """LiveCall logs each call's start, decision and end at INFO, which a server wants and a replay
    of hundreds of calls does not (one summary line says it all); warnings still show."""
    from serving import live_call

    live_logger = live_call.logger
    level = live_logger.level
    live_logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        live_logger.setLevel(level)


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
    stream: StreamConfig | None = None,
) -> TimecutResult:
    """Replay every timed call through ``LiveCall``; tabulate what it showed each second and when it decided.

    Args:
        scorer: The model (``IntentPredictor``), scored through the service's adapter without evidence.
        eval_set: Labeled calls; those without word timings are skipped (counted).
        policy: The serving decision policy.
        config: Cut-offs, step, window, bins.
        model_id: Shown in the report (default: the scorer's ``model_id`` when it has one).
        stream: The service's live-call settings (default ``StreamConfig()``, what
            ``serving/configs/serve.yaml`` ships); run as :func:`replay_stream_config` says.

    Returns:
        The result.

    Raises:
        ValueError: no call has word timings.
    """
    import numpy as np

    from serving.live_call import PredictorScorer, StreamConfig

    started = time.perf_counter()
    timed = [i for i, t in enumerate(eval_set.timings) if t is not None] if eval_set.timings else []
    if not timed:
        raise ValueError("no call has word timings (a 'words' list with start/end seconds); render the data "
                         "with 'callintent data render-asr' or transcribe audio with 'callintent data transcribe'")
    live_scorer = PredictorScorer(scorer, evidence=False)
    live_config = replay_stream_config(stream or StreamConfig(), config.window_seconds)
    model = model_id or str(getattr(scorer, "model_id", ""))
    replays = []
    with quiet_live_calls():
        for i in timed:
            metadata = {k: v for k, v in (("source", eval_set.source[i]), ("campaign", eval_set.campaign[i]),
                                          ("industry", eval_set.industry[i])) if v}
            replays.append(replay_call(eval_set.call_ids[i], eval_set.timings[i], metadata,  # type: ignore[arg-type]
                                       scorer=live_scorer, policy=policy, stream=live_config, model=model))
    logger.info("time cut-offs: replayed %d calls through LiveCall (%d decodes)", len(replays),
                sum(r.decodes for r in replays))

    labels = [int(eval_set.label_ids[i]) for i in timed]
    before_first_decode: list[IntentScores] = []  # the empty transcript, scored once if a step needs it
    curve = []
    for t in config.steps:
        views = [r.at(t) for r in replays]
        if any(v is None for v in views) and not before_first_decode:
            before_first_decode.extend(live_scorer.score([""]))
        scores = [v.scores if v is not None else before_first_decode[0] for v in views]
        probs = np.asarray([[s.probabilities.get(c, 0.0) for c in CLASS_NAMES] for s in scores])
        curve.append(metrics_at(t, labels, probs, sum(1 for v in views if v is not None and v.heard),
                                config.ece_bins))

    decisions = [call_decision(r, eval_set.labels[i]) for i, r in zip(timed, replays)]
    summary = summarize(decisions)

    models = sorted({t.asr_model for t in eval_set.timings if t is not None and t.asr_model})
    from_asr = sum(1 for i in timed if eval_set.timings[i].asr_model)  # type: ignore[union-attr]
    source = "asr" if from_asr == len(timed) else "simulated" if from_asr == 0 else "mixed"
    result = TimecutResult(
        model_id=model, n=len(timed), skipped=len(eval_set) - len(timed),
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


def call_decision(replay: CallReplay, label: str) -> CallDecision:
    """The report's record of a replayed call's decision."""
    d = replay.decision
    seconds = replay.final.seconds if d.audio_seconds is None else d.audio_seconds
    return CallDecision(replay.call_id, label, d.route, d.label, seconds, d.early, d.confidence, d.reasons)


def _r(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


__all__ = ["CallDecision", "CallReplay", "CutoffMetrics", "DecisionSummary", "LiveView", "REPLAY_FRAME_SECONDS",
           "SPEAKER_LEVELS", "Scorer", "ScriptedTranscriber", "TimecutConfig", "TimecutResult", "call_decision",
           "evaluate_timecuts", "metrics_at", "quiet_live_calls", "replay_call", "replay_stream_config",
           "stream_call", "summarize"]
