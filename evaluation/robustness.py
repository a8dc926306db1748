"""The audio-to-text gap: the same labeled calls scored from clean text, one-shot ASR and a live stream.

A sample of the evaluation set is rendered as phone calls by :mod:`data.render` with its default
:class:`data.render.RenderConfig` (the voices and the telephone channel of :mod:`data.channel`,
drawn per call from the seed: codec, band, noise and SNR, level, clipping, packet loss), so a
new voice catalog or channel model shows up here without a change. Each call is then heard twice
by the serving ASR (bundled tiny.en):

* **one-shot**: the whole opening transcribed in one decode (:meth:`data.render.TelephoneEar.hear`,
  what ``callintent data render-asr`` gives training; cached in the ASR cache);
* **live-streamed**: the same audio fed in 20 ms frames through the service's own live-call core,
  :class:`serving.live_call.LiveCall` with a real :class:`speech.asr.SpeechRecognizer` (the
  service's ASR settings, ``ServeConfig().asr``), its VAD gate, sliding decode window, stable
  prefix and decision policy (:func:`evaluation.timecuts.stream_call`, the loop the time cut-off
  replay also runs). Frames go in as fast as the CPU decodes them; the call's clock stands at
  the end of the audio fed, so the stream behaves as on a server that keeps up with real time.

The report puts side by side, on exactly the same calls:

* macro-F1, accuracy and ECE on the clean text, the one-shot text and the live-streamed text
  (the streamed column scores the ``final`` view of the stream, as the service shows it);
* the word error rate of both ASR texts against the labeled text, overall and by condition
  (codec, SNR bucket, packet loss, voice: the call's render parameters, :func:`conditions_of`);
* time to decision on buying calls: seconds of call audio until the stream's decision event,
  how many buying calls got an early one, and where they were routed.

The streamed column is not cached (its decisions depend on the model), and it is the slow part: the
stream re-decodes every second of audio (200 calls, 5-30 s long, took 38 min on 2 shared cores).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from callintent.config import is_int, is_number
from models.labels import BUYING, CLASS_NAMES
from speech.transcript import OPENING_SECONDS

if TYPE_CHECKING:
    from data.render import RenderConfig, TelephoneEar, Turn
    from evaluation.evalset import EvalSet
    from evaluation.timecuts import CallDecision, CallReplay, DecisionSummary
    from models.predictor import IntentPredictor
    from models.scores import IntentScores
    from serving.live_call import StreamConfig, Transcriber
    from serving.policy import DecisionPolicy
    from speech.asr import AsrConfig

logger = logging.getLogger(__name__)

#: The three ways a call is scored, in report order.
COLUMNS: tuple[str, ...] = ("clean", "oneshot", "streamed")
#: How the report names them.
COLUMN_TITLES: dict[str, str] = {"clean": "clean text", "oneshot": "one-shot ASR", "streamed": "live-streamed ASR"}
#: The render parameters the word error rate is sliced by, in report order.
CONDITION_FACTORS: tuple[str, ...] = ("codec", "snr", "packet_loss", "voice")
#: SNR buckets (dB, lower edges) of :func:`conditions_of`; the channel model draws 5-25 dB.
SNR_EDGES: tuple[float, ...] = (5.0, 10.0, 15.0, 20.0)
#: Packet-loss rates at or above this are "heavy" (the channel model draws 1-8 %).
HEAVY_LOSS = 0.04


@dataclass(frozen=True)
class RobustnessConfig:
    """How the robustness sample is drawn, rendered and streamed.

    Attributes:
        n: Calls in the sample (at most the evaluation set's size).
        seed: Seeds the sample (class-balanced: classes take turns) and each call's voices and
            telephone channel (``RenderConfig.seed``).
        cache_dir: ASR cache of the one-shot transcripts (shared with ``callintent data render-asr``).
        cut_seconds: Opening rendered, transcribed and streamed (as in the product).
        frame_seconds: Audio per ``LiveCall.insert`` (20 ms: Twilio's media frames).
        voices: Voices the calls are spoken in (:func:`data.voices.resolve_voices`): ``natural``
            (the installed natural voices, espeak-ng when none is), ``espeak``, or names. The
            default is ``render-asr``'s: robot voices overstate what the ASR gets wrong.
    """

    n: int = 30
    seed: int = 0
    cache_dir: str = ".cache/asr"
    cut_seconds: float = OPENING_SECONDS
    frame_seconds: float = 0.02
    voices: tuple[str, ...] = ("natural",)

    def __post_init__(self) -> None:
        if not is_int(self.n) or self.n < 1:
            raise ValueError(f"n must be an integer >= 1, got {self.n!r}")
        if not is_int(self.seed):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not is_number(self.cut_seconds) or not 0 < self.cut_seconds <= OPENING_SECONDS:
            raise ValueError(f"cut_seconds must be in (0, {OPENING_SECONDS:g}], got {self.cut_seconds!r}")
        if not is_number(self.frame_seconds) or not 0.005 <= self.frame_seconds <= 1.0:
            raise ValueError(f"frame_seconds must be between 0.005 and 1, got {self.frame_seconds!r}")
        if isinstance(self.voices, str) or not self.voices or not all(isinstance(v, str) and v for v in self.voices):
            raise ValueError(f"voices must be a non-empty list of voice names, got {self.voices!r}")


@dataclass(frozen=True)
class ColumnScores:
    """The model on one column's texts.

    Attributes:
        name: ``clean``, ``oneshot`` or ``streamed`` (:data:`COLUMNS`).
        accuracy: Share of calls predicted right.
        macro_f1: Mean per-class F1 (``models.metrics.classification_metrics``).
        ece: Expected calibration error of the top-class probability.
        f1: Per-class F1 in ``CLASS_NAMES`` order (None where undefined).
    """

    name: str
    accuracy: float
    macro_f1: float
    ece: float
    f1: tuple[float | None, ...]

    @property
    def title(self) -> str:
        return COLUMN_TITLES[self.name]


@dataclass(frozen=True)
class RobustnessClassRow:
    """One class over the three columns.

    Attributes:
        name: Class name.
        support: Sampled calls of this class.
        f1_clean, f1_oneshot, f1_streamed: F1 on each column (None when undefined).
    """

    name: str
    support: int
    f1_clean: float | None
    f1_oneshot: float | None
    f1_streamed: float | None

    @property
    def drop(self) -> float | None:
        """``f1_clean - f1_streamed`` (positive = worse on a live call)."""
        if self.f1_clean is None or self.f1_streamed is None:
            return None
        return self.f1_clean - self.f1_streamed


@dataclass(frozen=True)
class ConditionWer:
    """Word error rates of the calls rendered under one condition.

    Attributes:
        factor: ``codec``, ``snr``, ``packet_loss`` or ``voice`` (:data:`CONDITION_FACTORS`).
        value: The condition (``gsm``, ``10-15 dB``, ``none``, ``en-us+f3``…).
        calls: Calls rendered under it.
        wer_oneshot, wer_streamed: Corpus WER of the one-shot and the streamed text of those calls
            (None when their labeled text has no word).
    """

    factor: str
    value: str
    calls: int
    wer_oneshot: float | None
    wer_streamed: float | None


@dataclass(frozen=True)
class RobustnessCall:
    """One sampled call as text, as heard once, and as heard live.

    Attributes:
        call_id, label: The call.
        clean_text, oneshot_text, streamed_text: The labeled transcript and the two ASR texts.
        clean_prediction, oneshot_prediction, streamed_prediction: The model's class for each.
        conditions: ``(factor, value)`` of each of :data:`CONDITION_FACTORS` (:func:`conditions_of`).
        audio_seconds: Length of the rendered opening.
        decision: The live stream's decision (route, class, seconds of audio, early or not).
        decodes: Decodes the stream ran.
        cached: The one-shot transcript came from the ASR cache.
    """

    call_id: str
    label: str
    clean_text: str
    oneshot_text: str
    streamed_text: str
    clean_prediction: str
    oneshot_prediction: str
    streamed_prediction: str
    conditions: tuple[tuple[str, str], ...]
    audio_seconds: float
    decision: CallDecision
    decodes: int
    cached: bool

    def condition(self, factor: str) -> str:
        return dict(self.conditions)[factor]


@dataclass(frozen=True)
class RobustnessResult:
    """Clean text vs one-shot ASR vs live-streamed ASR of one model on a rendered sample.

    Attributes:
        model_id: The model.
        asr_model: ASR model id (``tiny.en@…``).
        n: Calls scored (rendered without error).
        failed: Sampled calls that could not be rendered (left out; see the log).
        columns: The three columns, :data:`COLUMNS` order.
        rows: Per-class F1 on each column, schema order.
        wer_oneshot, wer_streamed: Corpus WER of each ASR text against the labeled text.
        conditions: WER by condition, :data:`CONDITION_FACTORS` order, values sorted.
        decisions: The stream's decisions summarised (``evaluation.timecuts.summarize``).
        calls: Every scored call.
        cached: Calls whose one-shot transcript came from the cache.
        seconds: Wall time of the check.
        stream_seconds: Wall time spent streaming (decoding and scoring live).
    """

    model_id: str
    asr_model: str
    n: int
    failed: int
    columns: tuple[ColumnScores, ...]
    rows: tuple[RobustnessClassRow, ...]
    wer_oneshot: float | None
    wer_streamed: float | None
    conditions: tuple[ConditionWer, ...]
    decisions: DecisionSummary
    calls: tuple[RobustnessCall, ...]
    cached: int
    seconds: float
    stream_seconds: float

    def column(self, name: str) -> ColumnScores:
        """The column called ``name`` (:data:`COLUMNS`)."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"no column {name!r} (columns: {list(COLUMNS)})")

    @property
    def streaming_wer_ratio(self) -> float | None:
        """Streamed WER over one-shot WER of the same audio (the target is at most 1.10)."""
        if self.wer_oneshot is None or self.wer_streamed is None or self.wer_oneshot == 0:
            return None
        return self.wer_streamed / self.wer_oneshot

    @property
    def buying_early_seconds(self) -> tuple[float, ...]:
        """Seconds of call audio until the early decision, on each buying call that got one."""
        return tuple(c.decision.seconds for c in self.calls if c.label == BUYING and c.decision.early)

    @property
    def median_buying_early_seconds(self) -> float | None:
        import numpy as np

        seconds = self.buying_early_seconds
        return float(np.median(seconds)) if seconds else None

    @property
    def changed(self) -> int:
        """Calls whose predicted class on the live stream differs from the one on clean text."""
        return sum(1 for c in self.calls if c.clean_prediction != c.streamed_prediction)

    def to_json(self) -> dict[str, Any]:
        r = _round
        return {
            "model": self.model_id, "asr_model": self.asr_model, "n": self.n, "failed": self.failed,
            "columns": {c.name: {"accuracy": r(c.accuracy), "macro_f1": r(c.macro_f1), "ece": r(c.ece)}
                        for c in self.columns},
            "per_class": {row.name: {"support": row.support, "f1_clean": r(row.f1_clean),
                                     "f1_oneshot": r(row.f1_oneshot), "f1_streamed": r(row.f1_streamed),
                                     "drop": r(row.drop)} for row in self.rows},
            "wer": {"oneshot": r(self.wer_oneshot), "streamed": r(self.wer_streamed),
                    "streamed_over_oneshot": r(self.streaming_wer_ratio)},
            "wer_by_condition": {factor: {c.value: {"calls": c.calls, "oneshot": r(c.wer_oneshot),
                                                    "streamed": r(c.wer_streamed)}
                                          for c in self.conditions if c.factor == factor}
                                 for factor in CONDITION_FACTORS},
            "decisions": {**self.decisions.to_json(),
                          "buying_early_median_seconds": r(self.median_buying_early_seconds)},
            "changed_predictions": self.changed, "oneshot_cached": self.cached,
            "seconds": r(self.seconds), "stream_seconds": r(self.stream_seconds),
        }


def sample_indices(labels: Sequence[int], n: int, seed: int = 0) -> list[int]:
    """A seeded, class-balanced sample of row indices (classes take turns until ``n`` or exhausted).

    Args:
        labels: Class index per row.
        n: Sample size.
        seed: Shuffle seed.

    Returns:
        Row indices, sorted.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    rank: dict[int, int] = {}
    seen: dict[int, int] = {}
    for i in order:
        c = int(labels[i])
        rank[int(i)] = seen.get(c, 0)
        seen[c] = rank[int(i)] + 1
    # Rank within class first, then the shuffled order: round-robin over classes.
    position = {int(i): p for p, i in enumerate(order)}
    chosen = sorted(rank, key=lambda i: (rank[i], position[i]))[:n]
    return sorted(chosen)


def conditions_of(render: Mapping[str, Any], voice: str) -> tuple[tuple[str, str], ...]:
    """The conditions a call was rendered under, from its render parameters (a rendered row's ``render``).

    Args:
        render: ``RenderPlan.to_json()`` (``channel`` is the telephone channel, None on the
            μ-law-only line).
        voice: The voice that spoke the caller's words.

    Returns:
        ``(factor, value)`` for each of :data:`CONDITION_FACTORS`: the codec (``mulaw`` on the
        μ-law-only line); the SNR bucket (``quiet`` without noise, else ``5-10 dB``… by
        :data:`SNR_EDGES`); packet loss (``none``, ``light`` below :data:`HEAVY_LOSS`, ``heavy``);
        the voice.
    """
    channel = render.get("channel") or {}
    snr = channel.get("snr_db")
    if snr is None:
        snr_bucket = "quiet"
    else:
        lower = max([e for e in SNR_EDGES if e <= snr] or [SNR_EDGES[0]])
        upper = next((e for e in SNR_EDGES if e > lower), None)
        snr_bucket = f"{lower:g}-{upper:g} dB" if upper is not None else f"{lower:g}+ dB"
    loss = float(channel.get("loss_rate") or 0.0)
    loss_bucket = "none" if loss <= 0 else "heavy" if loss >= HEAVY_LOSS else "light"
    return (("codec", str(channel.get("codec", "mulaw"))), ("snr", snr_bucket), ("packet_loss", loss_bucket),
            ("voice", voice))


def wer_by_condition(references: Sequence[str], oneshot: Sequence[str], streamed: Sequence[str],
                     conditions: Sequence[Sequence[tuple[str, str]]]) -> tuple[ConditionWer, ...]:
    """Corpus WER of the one-shot and the streamed texts, per value of each condition factor.

    Args:
        references: Labeled texts.
        oneshot, streamed: The ASR texts, same order.
        conditions: Per call, its ``(factor, value)`` pairs (:func:`conditions_of`).

    Returns:
        One entry per (factor, value) present, factors in :data:`CONDITION_FACTORS` order (then any
        other factor), values sorted.
    """
    from evaluation.metrics import word_error_rate

    groups: dict[tuple[str, str], list[int]] = {}
    for i, pairs in enumerate(conditions):
        for factor, value in pairs:
            groups.setdefault((factor, value), []).append(i)
    order = {f: k for k, f in enumerate(CONDITION_FACTORS)}
    out = []
    for (factor, value), members in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0])):
        refs = [references[i] for i in members]
        out.append(ConditionWer(factor, value, len(members), word_error_rate(refs, [oneshot[i] for i in members]),
                                word_error_rate(refs, [streamed[i] for i in members])))
    return tuple(out)


def score_column(name: str, labels: Sequence[int], scores: Sequence[IntentScores]) -> ColumnScores:
    """Accuracy, macro-F1, ECE and per-class F1 of one column's scores.

    Args:
        name: The column (:data:`COLUMNS`).
        labels: Labeled class indices.
        scores: The model's scores of that column's texts, same order.

    Returns:
        The column.
    """
    import numpy as np

    from models.metrics import classification_metrics, expected_calibration_error

    probs = np.asarray([[s.probabilities.get(c, 0.0) for c in CLASS_NAMES] for s in scores], dtype=np.float64)
    metrics = classification_metrics(np.asarray(labels), probs.argmax(axis=1))
    return ColumnScores(name=name, accuracy=metrics.accuracy, macro_f1=metrics.macro_f1,
                        ece=expected_calibration_error(labels, probs),
                        f1=tuple(metrics.of(c).f1 for c in CLASS_NAMES))


def live_asr_config() -> AsrConfig:
    """The ASR settings a live call is decoded with by the service (``ServeConfig().asr``)."""
    from serving.config import ServeConfig

    return ServeConfig().asr


def robustness_check(
    predictor: IntentPredictor,
    eval_set: EvalSet,
    policy: DecisionPolicy,
    config: RobustnessConfig = RobustnessConfig(),
    *,
    ear: TelephoneEar | None = None,
    live_asr: Transcriber | None = None,
    stream: StreamConfig | None = None,
    render: RenderConfig | None = None,
    turns: Mapping[str, Sequence[Turn]] | None = None,
    progress: bool = True,
) -> RobustnessResult:
    """Render a sample of ``eval_set`` as phone calls; score clean text, one-shot ASR and a live stream.

    Args:
        predictor: The model.
        eval_set: Labeled calls to sample from.
        policy: The serving decision policy the live stream decides with.
        config: Sample size, seed, cache, cut.
        ear: Renders and transcribes one-shot (default: :class:`data.render.TelephoneEar` with
            the bundled tiny.en and ``config.cache_dir``).
        live_asr: The live stream's transcriber (default: a :class:`speech.asr.SpeechRecognizer`
            with :func:`live_asr_config`).
        stream: The live-call settings (default ``StreamConfig()``, what ``serve.yaml`` ships),
            with the window cut to ``config.cut_seconds``.
        render: Voices and channel (default ``RenderConfig(seed=config.seed)``: the render step's
            own defaults).
        turns: Speaker turns per call id (default: read from the eval set's files, so a
            two-speaker call is spoken in two voices; a call whose turns do not spell out its
            transcript is spoken as one turn).
        progress: Show a progress bar (tqdm, on a terminal only).

    Returns:
        The three columns, WER overall and by condition, and the stream's decisions.

    Raises:
        UserError: no sampled call could be rendered.
    """
    import dataclasses

    from tqdm import tqdm

    from callintent.errors import UserError
    from data.render import RenderConfig, RenderError, TelephoneEar, plan_for
    from evaluation.metrics import word_error_rate
    from evaluation.timecuts import quiet_live_calls, call_decision, stream_call, summarize
    from models.labels import CLASS_INDEX
    from serving.live_call import PredictorScorer, StreamConfig
    from speech.audio import SAMPLE_RATE, AudioError

    started = time.perf_counter()
    if render is None:
        from data.render import DEFAULT_VOICES
        from data.voices import resolve_voices

        render = RenderConfig(seed=config.seed, cache_dir=config.cache_dir, cut_seconds=config.cut_seconds,
                              voices=resolve_voices(config.voices, DEFAULT_VOICES))
    ear = ear or TelephoneEar(cache_dir=config.cache_dir, cut_seconds=config.cut_seconds)
    if live_asr is None:
        from speech.asr import SpeechRecognizer

        live_asr = SpeechRecognizer(live_asr_config())
    base = stream or StreamConfig()
    stream = dataclasses.replace(base, window_seconds=min(base.window_seconds, config.cut_seconds),
                                 decision_deadline_seconds=min(base.decision_deadline_seconds, config.cut_seconds))
    scorer = PredictorScorer(predictor, evidence=False)
    sample = sampled_calls(eval_set, config.n, config.seed, turns)

    heard: list[_Heard] = []
    failed = 0
    stream_seconds = 0.0
    logger.info("robustness: rendering %d calls as phone calls, transcribing each once and streaming it live",
                len(sample))
    with quiet_live_calls(), tqdm(sample, desc="robustness", unit="call", disable=None if progress else True) as bar:
        for sampled in bar:
            i, call_id, row_turns = sampled.index, sampled.call_id, sampled.turns
            plan = plan_for(call_id, render)
            try:
                tracks = ear.render(row_turns, plan)
                oneshot, hit = ear.hear(row_turns, plan, audio=tracks)
            except (RenderError, AudioError) as e:
                logger.warning("robustness: %s left out: %s", call_id, e)
                failed += 1
                continue
            metadata = {k: v for k, v in (("source", eval_set.source[i]), ("campaign", eval_set.campaign[i]),
                                          ("industry", eval_set.industry[i])) if v}
            t0 = time.perf_counter()
            replay = stream_call(call_id, tracks, metadata, asr=live_asr, scorer=scorer, policy=policy,
                                 stream=stream, model=predictor.model_id, frame_seconds=config.frame_seconds)
            stream_seconds += time.perf_counter() - t0
            caller = any(t.speaker == "caller" for t in row_turns)
            voice = plan.voice_for("caller" if caller else None).name
            seconds = max(len(t) for t in tracks.values()) / SAMPLE_RATE
            heard.append(_Heard(i, oneshot.text, replay, hit, conditions_of(plan.to_json(), voice), seconds))
            bar.set_postfix(cached=sum(h.cached for h in heard), failed=failed, refresh=False)
    if not heard:
        raise UserError(f"robustness: none of the {len(sample)} sampled calls could be rendered (see the log)")

    rows_i = [h.index for h in heard]
    labels = [int(eval_set.label_ids[i]) for i in rows_i]
    clean_texts = [eval_set.transcripts[i] for i in rows_i]
    oneshot_texts = [h.oneshot_text for h in heard]
    replays = [h.replay for h in heard]
    clean_scores = predictor.predict(clean_texts, evidence=False)
    oneshot_scores = predictor.predict(oneshot_texts, evidence=False)
    streamed_scores = [r.final.scores for r in replays]
    columns = (score_column("clean", labels, clean_scores), score_column("oneshot", labels, oneshot_scores),
               score_column("streamed", labels, streamed_scores))
    support = [sum(1 for y in labels if y == CLASS_INDEX[c]) for c in CLASS_NAMES]
    rows = tuple(RobustnessClassRow(c, support[k], columns[0].f1[k], columns[1].f1[k], columns[2].f1[k])
                 for k, c in enumerate(CLASS_NAMES))
    streamed_texts = [r.transcript for r in replays]
    conditions = [h.conditions for h in heard]
    calls = tuple(
        RobustnessCall(
            call_id=eval_set.call_ids[i], label=eval_set.labels[i], clean_text=clean_texts[k],
            oneshot_text=oneshot_texts[k], streamed_text=streamed_texts[k], clean_prediction=clean_scores[k].label,
            oneshot_prediction=oneshot_scores[k].label, streamed_prediction=streamed_scores[k].label,
            conditions=conditions[k], audio_seconds=heard[k].audio_seconds,
            decision=call_decision(replays[k], eval_set.labels[i]), decodes=replays[k].decodes, cached=heard[k].cached)
        for k, i in enumerate(rows_i))
    result = RobustnessResult(
        model_id=predictor.model_id, asr_model=ear.model_id, n=len(calls), failed=failed, columns=columns,
        rows=rows, wer_oneshot=word_error_rate(clean_texts, oneshot_texts),
        wer_streamed=word_error_rate(clean_texts, streamed_texts),
        conditions=wer_by_condition(clean_texts, oneshot_texts, streamed_texts, conditions),
        decisions=summarize([c.decision for c in calls]), calls=calls, cached=sum(c.cached for c in calls),
        seconds=round(time.perf_counter() - started, 2), stream_seconds=round(stream_seconds, 2))
    logger.info("robustness on %d calls: macro-F1 %.3f clean, %.3f one-shot ASR, %.3f live-streamed ASR; WER %s "
                "one-shot, %s streamed (%.1f s)", result.n, columns[0].macro_f1, columns[1].macro_f1,
                columns[2].macro_f1, _fmt(result.wer_oneshot), _fmt(result.wer_streamed), result.seconds)
    return result


def summary_lines(result: RobustnessResult) -> list[str]:
    """The robustness result for a terminal: the three columns, WER, and time to decision."""
    lines = [f"robustness ({result.n} calls rendered as phone calls, {result.asr_model}"
             + (f", {result.failed} could not be rendered" if result.failed else "") + "):"]
    lines.append(f"  {'':<20}{'macro-F1':>9}{'accuracy':>10}{'ECE':>7}")
    for c in result.columns:
        lines.append(f"  {c.title:<20}{c.macro_f1:>9.3f}{c.accuracy:>10.3f}{c.ece:>7.3f}")
    ratio = result.streaming_wer_ratio
    lines.append(f"  WER one-shot {_fmt(result.wer_oneshot)}, streamed {_fmt(result.wer_streamed)}"
                 + (f" ({ratio:.2f}x)" if ratio is not None else ""))
    for factor in CONDITION_FACTORS:
        parts = [f"{c.value} {_fmt(c.wer_streamed)} ({c.calls})" for c in result.conditions if c.factor == factor]
        if parts:
            lines.append(f"  streamed WER by {factor}: " + ", ".join(parts))
    d = result.decisions
    median = result.median_buying_early_seconds
    lines.append(f"  buying calls: {d.buying_early} of {d.buying_calls} decided early"
                 + (f" (median {median:.1f} s of audio)" if median is not None else "")
                 + f", {d.buying_priority} routed priority_sales")
    return lines


@dataclass(frozen=True)
class SampledCall:
    """One call of a check's sample: its row in the eval set, its labeled text and the turns it is spoken in."""

    index: int
    call_id: str
    text: str
    label_id: int
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class _Heard:
    """One rendered call before scoring: its row, the one-shot text, the live replay, its conditions."""

    index: int
    oneshot_text: str
    replay: CallReplay
    cached: bool
    conditions: tuple[tuple[str, str], ...]
    audio_seconds: float


def sampled_calls(eval_set: EvalSet, n: int, seed: int = 0,
                  turns: Mapping[str, Sequence[Turn]] | None = None) -> list[SampledCall]:
    """The calls a check renders: a seeded class-balanced sample (:func:`sample_indices`) with their speaker turns.

    Args:
        eval_set: Labeled calls to sample from.
        n: Sample size.
        seed: Sample seed.
        turns: Speaker turns per call id (default: read from the eval set's files, so a two-speaker
            call is spoken in two voices; a call whose turns do not spell out its transcript, or
            whose files cannot be read again, is spoken as one turn).

    Returns:
        The sampled calls, in row order.
    """
    from data.render import turns_of

    indices = sample_indices(eval_set.label_ids, n, seed)
    turns = turns if turns is not None else _turns_of_files(eval_set, indices)
    calls = []
    for i in indices:
        call_id, text = eval_set.call_ids[i], eval_set.transcripts[i]
        spoken = turns_of({"transcript": text, "turns": [{"speaker": t.speaker, "text": t.text}
                                                         for t in turns.get(call_id, ())]})
        calls.append(SampledCall(i, call_id, text, int(eval_set.label_ids[i]), spoken))
    return calls


def _turns_of_files(eval_set: EvalSet, indices: Sequence[int]) -> dict[str, tuple[Turn, ...]]:
    """Speaker turns of the sampled calls, from the eval set's files (empty when they cannot be read again)."""
    from callintent.errors import UserError
    from data.render import labeled_rows, turns_of

    wanted = {eval_set.call_ids[i] for i in indices}
    try:
        rows = labeled_rows(eval_set.files, split="all")
    except (UserError, OSError, ValueError) as e:
        logger.info("robustness: no speaker turns (%s); each call is spoken as one turn", e)
        return {}
    return {str(r["call_id"]): turns_of(r) for r in rows if r["call_id"] in wanted}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


__all__ = ["COLUMNS", "COLUMN_TITLES", "CONDITION_FACTORS", "ColumnScores", "ConditionWer", "RobustnessCall",
           "RobustnessClassRow", "RobustnessConfig", "RobustnessResult", "SampledCall", "conditions_of", "live_asr_config",
           "robustness_check", "sample_indices", "sampled_calls", "score_column", "summary_lines", "wer_by_condition"]
