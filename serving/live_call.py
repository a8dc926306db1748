"""Live scoring of one call: audio in, partial transcripts, scores and one routing decision out.

:class:`LiveCall` is a transport-free state machine (the WebSocket and Twilio endpoints only adapt
to it, and the tests drive it with a fake ASR and an injectable clock)::

    call = LiveCall(call_id, metadata, asr=recognizer, scorer=predictor, policy=policy, config=cfg)
    send(call.start())
    for chunk, arrived_at in audio:             # float32 16 kHz mono
        call.insert(chunk, arrived_at=arrived_at)
        if call.ready():
            for event in call.step():          # blocking: run it in a worker thread
                send(event.to_json())
    for event in call.finish():                # stop message or disconnect
        send(event.to_json())

How it listens
--------------
* The buffer holds the opening ``window_seconds`` (30 s, one Whisper window). Every time at
  least ``decode_interval_seconds`` of new audio has arrived, :meth:`LiveCall.step` re-decodes
  the whole buffer from 0 — Whisper is most accurate with all the context, and the Transcriber
  conditions on no earlier text, so one bad early guess can never poison later ones.
* **Stable prefix** (LocalAgreement-n, as in ufal/whisper_streaming): a word becomes *stable*
  once the last ``stable_agreement`` hypotheses agree on it (after the words already stable).
  Stable words never change again; the rest of the newest hypothesis is the *unstable* tail.
  The classifier scores ``stable + unstable`` (the best current guess of the whole opening).
* **Sliding decode window**: once the audio a decode would re-read outgrows
  ``decode_window_seconds``, decodes stop re-reading the stable words (they never change) and
  start at the end of the last stable word, keeping at least half a window of context. A decode
  then costs about the same at 25 s into the call as at 5 s (Whisper's cost grows with the
  audio and the words it re-reads). And as soon as a decode leaves no unstable word (a pause:
  every word heard is stable), the next decodes start after the stable words, keeping only
  ``stable_context_seconds`` of audio before that decode's end: re-reading a finished sentence
  would only generate the same tokens again.
* **VAD gate**: a step whose new audio is silence (``speech.audio.is_silent``) decodes nothing —
  except that pending unstable words get one decode over the pause, which hears the last word
  whole. No speech has come since that decode, so the next silent step commits its unstable
  words as they are instead of decoding the same speech again to confirm them.
* **Hallucination guards** (Whisper's known failures on live audio): the VAD gate above (silence
  is never decoded), Silero VAD in the ASR (a clip with no speech is not decoded), no
  conditioning on earlier text, a token cap per second of audio, and ``speech.asr.guard_words``:
  a phrase looped back to back is cut to one copy and "."/"♪" tokens (music, noise) are dropped
  (``dropped_words`` in the events).
* **Lag bound**: when a step starts more than ``max_lag_seconds`` after the oldest audio it has
  not looked at arrived (the ASR cannot keep up), it skips ahead: the previous hypothesis' words
  before ``skip_overlap_seconds`` from the end of the last decode are committed as they are, and
  from then on only the audio after that point is decoded (``lagging: true`` in the event,
  ``skipped_seconds`` says how much of the buffer a decode no longer re-reads).
* **Decision**: after each decode the policy may decide early
  (:meth:`DecisionPolicy.early_decision`); at ``decision_deadline_seconds`` of audio, at the end
  of the window, or at :meth:`LiveCall.finish` it decides regardless. At most one ``decision``
  event per call.
* When the buffer is full the last decode commits every word (``window_complete: true``); later
  audio is counted but not transcribed.
* **Two channels** (``speakers=("caller", "agent")``, e.g. stereo PCM or Twilio's inbound and
  outbound tracks): each speaker has its own buffer, decodes and stable prefix, so the speakers
  never mix in one decode; every word carries its speaker, and the events add each speaker's
  transcript. What is scored depends on the model: one trained on speaker-tagged text
  (``ArtifactMeta.speaker_tags``; the scorer's ``speaker_tags``) gets both speakers' words in time
  order, written ``agent: … caller: …`` (:mod:`speech.speakers`), so it learns whose words carry
  intent; its evidence spans then carry a ``speaker`` and index that speaker's transcript. Any
  other model gets the caller's words only (a greeting and sales talk say nothing of the
  caller's intent, and the model has no way to tell them apart).
* All text leaving this module (transcripts, evidence, reasons) is PII-redacted
  (:mod:`serving.redact`) unless ``StreamConfig.redact_pii`` is false.

Wire format (``StreamEvent.to_json()``; one JSON object per WebSocket text message)
-------------------------------------------------------------------------------
Every event has::

    type            "started" | "partial" | "decision" | "final" | "error"
    call_id         the caller's call id (Twilio: the callSid)
    seq             0, 1, 2 … per call, in send order (started is 0)
    model           "<name>/<version>" of the scoring model ("" before the first score when unknown)
    audio_seconds   call audio (seconds from the start of the call) the event is based on

``started`` adds::

    metadata        the call metadata (source, campaign, …) used to pick the policy segment
    config          {"sample_rate", "window_seconds", "decode_interval_seconds", "decode_window_seconds",
                     "stable_agreement", "decision_deadline_seconds", "redact_pii",
                     "speakers": [] for one channel, or the channel order ["caller", "agent"],
                     "scored": "all" (one channel), "caller" or "caller+agent" (tagged)}

``partial`` (after each decode) adds::

    transcript      {"stable": str, "unstable": str, "text": stable + " " + unstable}
                    (two channels: the caller's, plus "speakers": {"caller"|"agent":
                    {"stable", "unstable", "text"}})
                    (stable/unstable/text stay the caller's when both speakers are scored)
                    stable words never change once sent; unstable may be rewritten by the next
                    partial. Redaction tags are the one exception: a digit run at the end of the
                    text shows as "[NUMBER]" while it may still grow, then as "[PHONE]"/"[CARD]"/…
                    or (a short number) as itself once the next words close it
    label           most probable class
    probabilities   {"buying": p, "service": p, "informational": p, "noise": p} (calibrated)
    buying_intent   probabilities["buying"]
    signals         present signals only: [{"name", "probability",
                     "evidence": [{"text", "start", "end", "score", "speaker"?}]}]
                    evidence offsets index transcript.text (of this event); with "speaker"
                    (both speakers scored) they index transcript.speakers[speaker].text
    latency_ms      now − arrival of the newest audio in this decode (what a listener waits)
    decode_ms       ASR time of this step;  score_ms  classifier time of this step
    lagging         true when this step skipped ahead because decoding fell behind
    lag_seconds     how far behind real time the step started
    skipped_seconds seconds at the start of the buffer that decodes no longer re-read
    dropped_words   words the ASR's hallucination guards removed in this decode (a phrase looped
                    back to back, "." or "♪" tokens on music; speech.asr.guard_words)
    window_complete true on the last decode of the opening window

``decision`` (exactly once per call) adds::

    decision        {"route": "priority_sales"|"standard"|"screen"|"undetermined", "label",
                     "buying_intent", "confidence", "reasons": [str], "segment",
                     "audio_seconds", "early": bool}
    transcript, label, probabilities, buying_intent, signals   the scores it was made on
    window_complete true when made at the end of the opening window

``final`` (last event of a call) adds::

    transcript      {"text": str, "words": [{"text", "start", "end", "probability", "speaker"?}]}
                    (two channels: text is the caller's, words are both speakers' in time
                    order, plus "speakers": {"caller"|"agent": {"text"}})
                    (word times in call seconds; a redacted item is one word "[PHONE]")
    label, probabilities, buying_intent, signals, decision   as above
    totals          {"audio_seconds" received, "opening_seconds" transcribed window,
                     "ignored_seconds" after the window, "decodes", "vad_skips", "lag_skips",
                     "latency_ms_mean", "latency_ms_p95", "decision_audio_seconds", "dropped_words"}

``error`` adds ``{"error": {"code": str, "message": str}}``; the transport decides whether the
call goes on.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from callintent.errors import UserError
from speech.audio import SAMPLE_RATE, is_silent
from speech.speakers import SPEAKERS, TaggedText, interleave
from speech.transcript import OpeningTranscript, Word
from models.scores import Evidence, IntentScores
from serving.policy import Decision, DecisionPolicy
from serving.redact import Redaction, map_scores, map_tagged_scores, redact, redact_words

logger = logging.getLogger(__name__)

EVENT_TYPES = ("started", "partial", "decision", "final", "error")

#: Whisper's window: the ASR cannot decode more than this in one pass.
MAX_WINDOW_SECONDS = 30.0

#: Word timings jitter between decodes: a word starting within this of the last stable word's
#: start is that word again (and a repeated n-gram at the seam is removed too).
_SEAM_TOLERANCE_SECONDS = 0.1
#: Longest repeated word sequence removed at the seam between stable words and a new hypothesis.
_MAX_SEAM_NGRAM = 5


class Transcriber(Protocol):
    """What the stream needs from an ASR (``speech.asr.SpeechRecognizer`` is one)."""

    def transcribe(self, audio: np.ndarray, *, cut_seconds: float = 30.0, offset: float = 0.0) -> OpeningTranscript:
        ...


class Scorer(Protocol):
    """What the stream needs from a classifier (e.g. an adapter over ``IntentPredictor.predict``).

    A scorer may also have ``speaker_tags = True`` (its model reads speaker-tagged text): a
    two-channel call then scores both speakers, tagged. Without the attribute it is False.
    """

    def score(self, texts: Sequence[str]) -> list[IntentScores]:
        ...


class PredictorScorer:
    """The :class:`Scorer` view of a predictor (``models.predictor.IntentPredictor``): what the
    service's live sessions and the evaluation replay (``evaluation/timecuts.py``) both score with.

    Args:
        predictor: Has ``predict(texts)`` (and ``predict(texts, evidence=False)`` when
            ``evidence`` is off) and may have ``meta.speaker_tags`` (the model reads
            speaker-tagged text).
        evidence: Ask for the evidence spans of present signals. The service shows them; a
            replay that only needs probabilities and the decision skips their cost.
    """

    def __init__(self, predictor: Any, *, evidence: bool = True) -> None:
        self.predictor = predictor
        self.evidence = evidence
        self.speaker_tags = bool(getattr(getattr(predictor, "meta", None), "speaker_tags", False))

    def score(self, texts: Sequence[str]) -> list[IntentScores]:
        # Evidence is the predictor's default: the keyword is passed only to turn it off.
        return self.predictor.predict(texts) if self.evidence else self.predictor.predict(texts, evidence=False)


class StreamInputError(UserError):
    """Audio that cannot go into a live call (wrong shape or type, not finite)."""


class StreamStateError(RuntimeError):
    """The caller broke the call protocol (step() re-entered, insert() after finish()): a bug."""


@dataclass(frozen=True)
class StreamConfig:
    """How a live call is decoded and when it decides.

    Attributes:
        sample_rate: Rate of the audio given to :meth:`LiveCall.insert`; must be 16000 (the
            transports convert μ-law 8 kHz / PCM first, see ``speech.audio``).
        decode_interval_seconds: Decode again once at least this much new audio arrived.
        decode_window_seconds: Most audio a decode re-reads before it slides past the stable
            words (see the module docstring); ``window_seconds`` = always re-read everything.
        window_seconds: Length of the opening that is transcribed and scored (≤ 30 s).
        vad_gate: Skip decodes whose new audio is silence.
        vad_threshold_dbfs: Loudest 50 ms window below this level counts as silence.
        stable_agreement: n of LocalAgreement-n: words become stable when the last n
            hypotheses agree on them (1 = every word is stable at once).
        max_lag_seconds: When a step starts this long after the oldest unseen audio arrived,
            skip ahead (decode only recent audio). Must exceed ``decode_interval_seconds``.
        skip_overlap_seconds: On a skip, re-decode this much audio before the end of the last
            decode, so a word cut by the previous decode is heard whole.
        stable_context_seconds: When a decode leaves no unstable word (every word it heard is
            stable: a pause, or agreement caught up), the next decodes start after the stable
            words, re-reading only this much audio before the end of that decode (from the end
            of a stable word). None = decodes slide only past ``decode_window_seconds``.
        decision_deadline_seconds: Decide by this much audio even when not confident (≤ window).
        redact_pii: Redact card/phone/email/SSN in every text the events carry.
    """

    sample_rate: int = SAMPLE_RATE
    decode_interval_seconds: float = 1.0
    decode_window_seconds: float = 8.0
    window_seconds: float = MAX_WINDOW_SECONDS
    vad_gate: bool = True
    vad_threshold_dbfs: float = -50.0
    stable_agreement: int = 2
    max_lag_seconds: float = 3.0
    skip_overlap_seconds: float = 1.0
    stable_context_seconds: float | None = 2.0
    decision_deadline_seconds: float = MAX_WINDOW_SECONDS
    redact_pii: bool = True

    def shown(self, *, speakers: Sequence[str], scored: str) -> dict[str, Any]:
        """The settings a ``started`` event shows the client (with the call's channels and what is scored)."""
        return {
            "sample_rate": self.sample_rate, "window_seconds": self.window_seconds,
            "decode_interval_seconds": self.decode_interval_seconds,
            "decode_window_seconds": self.decode_window_seconds, "stable_agreement": self.stable_agreement,
            "decision_deadline_seconds": self.decision_deadline_seconds, "redact_pii": self.redact_pii,
            "speakers": list(speakers), "scored": scored,
        }

    def __post_init__(self) -> None:
        if self.sample_rate != SAMPLE_RATE:
            raise ValueError(f"sample_rate must be {SAMPLE_RATE} (convert audio before insert), "
                             f"got {self.sample_rate!r}")
        if not self.decode_interval_seconds > 0:
            raise ValueError(f"decode_interval_seconds must be > 0, got {self.decode_interval_seconds!r}")
        if not 0 < self.window_seconds <= MAX_WINDOW_SECONDS:
            raise ValueError(f"window_seconds must be in (0, {MAX_WINDOW_SECONDS}], got {self.window_seconds!r}")
        if self.decode_interval_seconds > self.window_seconds:
            raise ValueError(f"decode_interval_seconds must be <= window_seconds, "
                             f"got {self.decode_interval_seconds!r}")
        if not self.decode_interval_seconds < self.decode_window_seconds:
            raise ValueError(f"decode_window_seconds must be > decode_interval_seconds "
                             f"({self.decode_interval_seconds}), got {self.decode_window_seconds!r}")
        if not self.vad_threshold_dbfs < 0:
            raise ValueError(f"vad_threshold_dbfs must be < 0 dBFS, got {self.vad_threshold_dbfs!r}")
        if isinstance(self.stable_agreement, bool) or not isinstance(self.stable_agreement, int) \
                or self.stable_agreement < 1:
            raise ValueError(f"stable_agreement must be an integer >= 1, got {self.stable_agreement!r}")
        if not self.max_lag_seconds > self.decode_interval_seconds:
            raise ValueError(f"max_lag_seconds must be > decode_interval_seconds ({self.decode_interval_seconds}), "
                             f"got {self.max_lag_seconds!r}")
        if self.stable_context_seconds is not None and not 0 <= self.stable_context_seconds < self.decode_window_seconds:
            raise ValueError(f"stable_context_seconds must be null or in [0, decode_window_seconds "
                             f"({self.decode_window_seconds})), got {self.stable_context_seconds!r}")
        if self.skip_overlap_seconds < 0:
            raise ValueError(f"skip_overlap_seconds must be >= 0, got {self.skip_overlap_seconds!r}")
        if not 0 < self.decision_deadline_seconds <= self.window_seconds:
            raise ValueError(f"decision_deadline_seconds must be in (0, window_seconds], "
                             f"got {self.decision_deadline_seconds!r}")


@dataclass(frozen=True)
class CallTotals:
    """Per-call counters reported in the ``final`` event.

    Attributes:
        audio_seconds: All audio received (including after the window).
        opening_seconds: Audio inside the transcribed window.
        ignored_seconds: Audio received after the window was complete.
        decodes: ASR passes run.
        vad_skips: Steps skipped because the new audio was silent.
        lag_skips: Times decoding skipped ahead because it fell behind.
        latency_ms_mean: Mean of the partial events' ``latency_ms`` (None without a decode).
        latency_ms_p95: 95th percentile of the same.
        decision_audio_seconds: Audio heard when the decision was made.
        dropped_words: Words the ASR's hallucination guards removed over the call
            (``speech.asr.guard_words``: looped phrases, punctuation-only tokens).
    """

    audio_seconds: float
    opening_seconds: float
    ignored_seconds: float
    decodes: int
    vad_skips: int
    lag_skips: int
    latency_ms_mean: float | None
    latency_ms_p95: float | None
    decision_audio_seconds: float | None
    dropped_words: int = 0

    def to_json(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def of(cls, channels: Sequence[_Channel], latencies_ms: Sequence[float], decision: Decision | None) -> CallTotals:
        """A call's counters from its channels (the longer channel's audio; decodes of both)."""
        lat = np.asarray(latencies_ms, dtype=np.float64)
        return cls(
            audio_seconds=max(ch.received for ch in channels) / SAMPLE_RATE,
            opening_seconds=max(ch.n for ch in channels) / SAMPLE_RATE,
            ignored_seconds=max(ch.ignored for ch in channels) / SAMPLE_RATE,
            decodes=sum(ch.decodes for ch in channels), vad_skips=sum(ch.vad_skips for ch in channels),
            lag_skips=sum(ch.lag_skips for ch in channels),
            latency_ms_mean=float(lat.mean()) if lat.size else None,
            latency_ms_p95=float(np.percentile(lat, 95)) if lat.size else None,
            decision_audio_seconds=decision.audio_seconds if decision else None,
            dropped_words=sum(ch.dropped_words for ch in channels),
        )


@dataclass(frozen=True)
class StreamEvent:
    """One message to the client; fields not used by a ``type`` keep their defaults.

    All texts are already redacted (when the config says so). See the module docstring for the
    wire format :meth:`to_json` produces.

    Attributes:
        type: ``started`` | ``partial`` | ``decision`` | ``final`` | ``error``.
        call_id: The call.
        seq: Position of the event in the call (0 = started).
        model: Scoring model version.
        audio_seconds: Call audio the event is based on.
        stable: Stable transcript (partial, decision); of the caller in a two-channel call.
        unstable: Unstable tail (partial, decision).
        speaker_text: Two-channel calls: each speaker's (stable, unstable) text (partial, decision).
        words: The opening's words with times (final); with their speakers in a two-channel
            call, all speakers merged in time order.
        scores: Scores with evidence mapped onto ``stable + " " + unstable`` (or the final text).
        decision: The routing decision (decision, final).
        latency_ms: Partial: now − arrival of the newest decoded audio.
        decode_ms: Partial: ASR time.
        score_ms: Partial: classifier time.
        lagging: Partial: this step skipped ahead.
        lag_seconds: Partial: how far behind real time the step started.
        skipped_seconds: Partial: buffer seconds that decodes no longer re-read.
        dropped_words: Partial: words this decode's hallucination guards removed.
        window_complete: Partial/decision: the opening window is complete.
        totals: Final: per-call counters.
        metadata: Started: the call metadata.
        config: Started: the stream settings a client may want to show.
        error_code: Error: machine-readable code.
        message: Error: human-readable message.
    """

    type: str
    call_id: str
    seq: int
    model: str = ""
    audio_seconds: float = 0.0
    stable: str = ""
    unstable: str = ""
    speaker_text: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    words: tuple[Word, ...] = ()
    scores: IntentScores | None = None
    decision: Decision | None = None
    latency_ms: float | None = None
    decode_ms: float | None = None
    score_ms: float | None = None
    lagging: bool = False
    lag_seconds: float = 0.0
    skipped_seconds: float = 0.0
    dropped_words: int = 0
    window_complete: bool = False
    totals: CallTotals | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    error_code: str = ""
    message: str = ""

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"type must be one of {EVENT_TYPES}, got {self.type!r}")

    @property
    def text(self) -> str:
        """The scored transcript this event shows (partial/decision: stable + unstable; final: the
        words, the caller's only in a two-channel call). Evidence offsets index it."""
        if self.type == "final":
            return " ".join(w.text for w in self.words if w.speaker in (None, SCORED_SPEAKER))
        return _join(self.stable, self.unstable)

    def to_json(self) -> dict:
        """The wire format (a JSON-serialisable dict; documented in the module docstring)."""
        out: dict[str, Any] = {"type": self.type, "call_id": self.call_id, "seq": self.seq, "model": self.model,
                               "audio_seconds": round(self.audio_seconds, 3)}
        if self.type == "started":
            out["metadata"] = dict(self.metadata)
            out["config"] = dict(self.config)
        elif self.type == "error":
            out["error"] = {"code": self.error_code, "message": self.message}
        elif self.type == "final":
            out["transcript"] = {"text": self.text, "words": [_word_json(w) for w in self.words]}
            speakers = sorted({w.speaker for w in self.words if w.speaker is not None})
            if speakers:
                out["transcript"]["speakers"] = {
                    s: {"text": " ".join(w.text for w in self.words if w.speaker == s)} for s in speakers}
        else:
            out["transcript"] = {"stable": self.stable, "unstable": self.unstable, "text": self.text}
            if self.speaker_text:
                out["transcript"]["speakers"] = {s: {"stable": st, "unstable": un, "text": _join(st, un)}
                                                 for s, (st, un) in self.speaker_text.items()}
        if self.scores is not None:
            out.update(_scores_json(self.scores))
        if self.decision is not None:
            out["decision"] = self.decision.to_json()
        if self.type == "partial":
            out.update({
                "latency_ms": _ms(self.latency_ms), "decode_ms": _ms(self.decode_ms), "score_ms": _ms(self.score_ms),
                "lagging": self.lagging, "lag_seconds": round(self.lag_seconds, 3),
                "skipped_seconds": round(self.skipped_seconds, 3), "dropped_words": self.dropped_words,
                "window_complete": self.window_complete,
            })
        elif self.type == "decision":
            out["window_complete"] = self.window_complete
        if self.totals is not None:
            out["totals"] = self.totals.to_json()
        return out


class StablePrefix:
    """LocalAgreement-n over full-buffer hypotheses: which words are final.

    Each hypothesis covers the audio from the start of the decode, so it repeats the stable
    words; :meth:`update` first finds where the stable words end in it (an exact word match,
    else by time with a repeated n-gram removed at the seam, because Whisper may re-spell a word
    it already committed), then commits the words the last ``agreement`` hypotheses share.

    Args:
        agreement: How many consecutive hypotheses must agree (≥ 1).
    """

    def __init__(self, agreement: int) -> None:
        if agreement < 1:
            raise ValueError(f"agreement must be >= 1, got {agreement!r}")
        self.agreement = agreement
        self.committed: list[Word] = []
        self.tail: list[Word] = []
        self._recent: list[list[Word]] = []  # the previous agreement-1 tails, after the committed words

    def update(self, words: Sequence[Word]) -> tuple[Word, ...]:
        """Take a new hypothesis; return the words that became stable with it."""
        tail = self._after_committed(words)
        if self.agreement == 1:
            self.committed.extend(tail)
            self.tail = []
            return tuple(tail)
        history = [*self._recent, tail]
        agreed = _common_prefix_length(history[-self.agreement:]) if len(history) >= self.agreement else 0
        new = tail[:agreed]
        self.committed.extend(new)
        self._recent = [h[agreed:] for h in history][-(self.agreement - 1):]
        self.tail = tail[agreed:]
        return tuple(new)

    def commit_until(self, seconds: float) -> float:
        """Commit the unstable words that end by ``seconds`` as they are (lag skip-ahead).

        Returns:
            Where decoding may resume: ``seconds``, or earlier when an unstable word straddles
            it (that word is decoded again rather than cut in half).
        """
        keep = 0
        while keep < len(self.tail) and self.tail[keep].end <= seconds:
            keep += 1
        self.committed.extend(self.tail[:keep])
        self.tail = self.tail[keep:]
        self._recent = []  # agreement restarts on the new, shorter decodes
        return min(seconds, self.tail[0].start) if self.tail else seconds

    def flush(self) -> tuple[Word, ...]:
        """No more hypotheses will come: the unstable tail becomes stable."""
        flushed = tuple(self.tail)
        self.committed.extend(self.tail)
        self.tail = []
        self._recent = []
        return flushed

    def stable_end_before(self, seconds: float) -> float:
        """End (call seconds) of the last stable word that ends by ``seconds``; 0 if none."""
        for word in reversed(self.committed):
            if word.end <= seconds:
                return word.end
        return 0.0

    @property
    def stable_text(self) -> str:
        return " ".join(w.text for w in self.committed)

    @property
    def unstable_text(self) -> str:
        return " ".join(w.text for w in self.tail)

    def _after_committed(self, words: Sequence[Word]) -> list[Word]:
        committed = self.committed
        if not committed:
            return list(words)
        k = len(committed)
        if len(words) >= k and all(_norm(a.text) == _norm(b.text) for a, b in zip(words, committed)):
            return list(words[k:])
        # The hypothesis re-spelled a stable word: align by time instead.
        # By start times: Whisper stretches the end of a word before a pause (up to the next word),
        # so the last stable word's end may lie past the start of the word after it.
        candidates = [w for w in words if w.start > committed[-1].start + _SEAM_TOLERANCE_SECONDS]
        for n in range(1, min(_MAX_SEAM_NGRAM, len(committed), len(candidates)) + 1):
            if [_norm(w.text) for w in committed[-n:]] == [_norm(w.text) for w in candidates[:n]]:
                return candidates[n:]
        return candidates


#: In a two-channel call the caller's words are always scored (the agent's too when the model
#: reads speaker-tagged text); the events' ``transcript.text`` is theirs.
SCORED_SPEAKER = "caller"


class _Channel:
    """One channel of a call: its opening buffer, what decodes have read of it, its stable prefix,
    and how it is listened to (VAD gate, lag skip, sliding decode window)."""

    def __init__(self, speaker: str | None, config: StreamConfig, *, asr: Transcriber, clock: Callable[[], float],
                 call_id: str) -> None:
        self.speaker = speaker
        self.config = config
        self.asr = asr
        self.clock = clock
        self.call_id = call_id
        self.window = round(config.window_seconds * SAMPLE_RATE)
        self.interval = round(config.decode_interval_seconds * SAMPLE_RATE)
        self.buffer = np.zeros(self.window, dtype=np.float32)
        self.n = 0  # samples in the buffer
        self.block_ends: list[int] = []  # buffer end after each insert …
        self.block_arrivals: list[float] = []  # … and when that block arrived
        self.consumed = 0  # samples a step has looked at (decoded, or skipped as silence)
        self.decoded_end = 0  # samples covered by the latest decode
        self.decode_from = 0  # first sample decodes read (moves forward on a lag skip or a slide)
        self.prefix = StablePrefix(config.stable_agreement)
        self.heard_pause = False  # a decode has read silence after the latest speech
        self.complete = False  # the full window has been looked at
        self.received = 0
        self.ignored = 0
        self.decodes = 0
        self.vad_skips = 0
        self.lag_skips = 0
        self.dropped_words = 0

    def insert(self, samples: np.ndarray, arrived: float) -> None:
        self.received += samples.size
        take = min(self.window - self.n, samples.size)
        if take > 0:
            self.buffer[self.n:self.n + take] = samples[:take]
            self.block_ends.append(self.n + take)
            self.block_arrivals.append(arrived)
            self.n += take  # published last: a concurrent step never sees unwritten samples
        self.ignored += samples.size - take

    def ready(self) -> bool:
        return not self.complete and (self.n >= self.window or self.n - self.consumed >= self.interval)

    def arrival_of(self, sample: int) -> float:
        """Arrival time of the block holding buffer sample ``sample``."""
        i = bisect.bisect_right(self.block_ends, sample)
        return self.block_arrivals[min(i, len(self.block_arrivals) - 1)]

    def advance(self, upto: int, *, last: bool) -> _Decoded | None:
        """Look at the audio up to sample ``upto``: decode it unless the VAD gate says skip."""
        now = self.clock()
        lag = now - self.arrival_of(self.consumed) if self.consumed < upto else 0.0
        if self.config.vad_gate and self._gate_closed(self.buffer[self.consumed:upto]):
            self.consumed = upto
            self.vad_skips += 1
            logger.debug("call %s: new audio up to %.2f s is silent, no decode", self.call_id, upto / SAMPLE_RATE)
            if last:
                self.prefix.flush()
            elif self.prefix.tail:
                # The last decode already heard the pause after these words, and no speech came
                # since: another decode would read the same speech again. Its words are final.
                self.prefix.flush()
                self._slide_after_stable(upto)
            return None
        return self._decode(upto, lag=lag, last=last)

    def _gate_closed(self, new_audio: np.ndarray) -> bool:
        if not is_silent(new_audio, self.config.vad_threshold_dbfs):
            self.heard_pause = False
            return False
        # Silence after speech: one decode over the pause hears the last word whole (it was cut
        # off before); after that, silence costs nothing.
        if self.prefix.tail and not self.heard_pause:
            self.heard_pause = True
            return False
        return True

    def _decode(self, upto: int, *, lag: float, last: bool) -> _Decoded:
        cfg = self.config
        lagging = lag > cfg.max_lag_seconds and self.decoded_end > 0
        if lagging:
            resume = max(self.decode_from / SAMPLE_RATE, self.decoded_end / SAMPLE_RATE - cfg.skip_overlap_seconds)
            resume = self.prefix.commit_until(resume)
            self.decode_from = max(self.decode_from, min(round(resume * SAMPLE_RATE), upto - 1))
            self.lag_skips += 1
            logger.warning("call %s: decoding is %.1f s behind, skipping ahead to %.2f s", self.call_id, lag,
                           self.decode_from / SAMPLE_RATE)
        elif (upto - self.decode_from) / SAMPLE_RATE > cfg.decode_window_seconds:
            self._slide_window(upto, keep_seconds=cfg.decode_window_seconds / 2)
        offset = self.decode_from / SAMPLE_RATE
        started = self.clock()
        hypothesis = self.asr.transcribe(self.buffer[self.decode_from:upto], cut_seconds=cfg.window_seconds - offset,
                                         offset=offset)
        decoded = self.clock()
        words = [w for w in hypothesis.words if w.start < cfg.window_seconds]
        if self.speaker is not None:
            words = [dataclasses.replace(w, speaker=self.speaker) for w in words]
        self.prefix.update(words)
        if last:
            self.prefix.flush()
        elif not self.prefix.tail:
            self._slide_after_stable(upto)
        self.consumed = self.decoded_end = upto
        self.decodes += 1
        self.dropped_words += hypothesis.dropped_words
        return _Decoded(channel=self, upto=upto, last=last, lag=lag, lagging=lagging, offset=offset,
                        decode_seconds=decoded - started, dropped_words=hypothesis.dropped_words)

    def _slide_after_stable(self, upto: int) -> None:
        # Every word heard is stable (a pause, or agreement caught up): re-reading them again
        # would only generate the same tokens, so the next decodes start after them.
        if self.config.stable_context_seconds is not None and self.prefix.committed:
            self._slide_window(upto, keep_seconds=self.config.stable_context_seconds)

    def _slide_window(self, upto: int, *, keep_seconds: float) -> None:
        """Start decodes after a stable word, re-reading at least ``keep_seconds`` before ``upto``."""
        keep_from = upto / SAMPLE_RATE - keep_seconds
        # At a word boundary: a decode that starts inside a word hears a fragment of it.
        resume = round(self.prefix.stable_end_before(keep_from) * SAMPLE_RATE)
        if resume > self.decode_from:
            logger.debug("call %s: decode window slides to %.2f s", self.call_id, resume / SAMPLE_RATE)
            self.decode_from = resume


@dataclass(frozen=True)
class _Decoded:
    """What one channel's decode in a step did (for the step's ``partial`` event)."""

    channel: _Channel
    upto: int
    last: bool
    lag: float
    lagging: bool
    offset: float
    decode_seconds: float
    dropped_words: int


class _CallText:
    """What the model reads of a call and what the client may see of it: the scored text, its
    scores (computed once per distinct text) and their redacted view.

    Args:
        channels: The call's channels, by speaker (None: one channel).
        scored: The channel whose words are scored (the caller's, or the one channel).
        scorer: The classifier.
        tagged: Both speakers are scored as speaker-tagged text.
        redact_pii: Redact what the client sees.
        model: Model version shown before the first score.
    """

    def __init__(self, channels: Mapping[str | None, _Channel], scored: _Channel, *, scorer: Scorer, tagged: bool,
                 redact_pii: bool, model: str) -> None:
        self.channels = channels
        self.scored = scored
        self.scorer = scorer
        self.tagged = tagged
        self.redact_pii = redact_pii
        self.model = model
        self.speakers = tuple(s for s in channels if s is not None)
        self.text: str | None = None
        self.tagged_text: TaggedText | None = None
        self.raw_scores: IntentScores | None = None  # scores of text (evidence on the original)

    def scoring_text(self) -> tuple[str, TaggedText | None]:
        """What the model reads now: the caller's (or the one channel's) stable + unstable words, or
        both speakers' words in time order, speaker-tagged."""
        if not self.tagged:
            return _join(self.scored.prefix.stable_text, self.scored.prefix.unstable_text), None
        tagged = interleave({s: (*self.channels[s].prefix.committed, *self.channels[s].prefix.tail) for s in SPEAKERS})
        return tagged.text, tagged

    def ensure(self) -> bool:
        """Score the current transcript unless it was already scored; True when it ran."""
        text, tagged = self.scoring_text()
        if text == self.text and self.raw_scores is not None:
            return False
        (scores,) = self.scorer.score([text])
        self.text = text
        self.tagged_text = tagged
        self.raw_scores = scores
        self.model = scores.model or self.model
        return True

    def view(self, *, closed: bool) -> tuple[str, str, IntentScores]:
        """What the client may see of the scored text: (stable, unstable, scores), redacted.

        The joined text is redacted (not each part) so a number read across the stable/unstable
        boundary is still caught; an item straddling the boundary goes to the unstable side.
        While the call is open (``closed`` False) a digit run at the very end is held back as
        ``[NUMBER]``: it may be the start of a phone or card number still being read out.
        """
        prefix = self.scored.prefix
        scores = self.raw_scores
        assert scores is not None and self.text == self.scoring_text()[0], "view before scoring"
        stable, unstable, redaction = self._redacted(prefix, closed=closed)
        if self.tagged_text is not None:
            # Evidence moves to offsets in its speaker's transcript, then through that speaker's redaction.
            texts = {s: _join(self.channels[s].prefix.stable_text, self.channels[s].prefix.unstable_text)
                     for s in SPEAKERS}
            # The caller's channel is the scored one: its redaction was just made above.
            redactions = {s: redaction if self.channels[s] is self.scored
                          else self._redacted(self.channels[s].prefix, closed=closed)[2] for s in SPEAKERS}
            return stable, unstable, map_tagged_scores(scores, self.tagged_text, texts, redactions)
        return stable, unstable, scores if redaction is None else map_scores(redaction, scores)

    def _redacted(self, prefix: StablePrefix, *, closed: bool) -> tuple[str, str, Redaction | None]:
        stable, unstable = prefix.stable_text, prefix.unstable_text
        if not self.redact_pii:
            return stable, unstable, None
        redaction = redact(_join(stable, unstable), open_ended=not closed)
        boundary = redaction.map_offset(min(len(stable), redaction.original_length))
        return redaction.text[:boundary].rstrip(), redaction.text[boundary:].lstrip(), redaction

    def speaker_view(self, *, closed: bool) -> dict[str, tuple[str, str]]:
        """Two-channel calls: each speaker's (stable, unstable) text, redacted; ``{}`` for one channel."""
        return {s: self._redacted(self.channels[s].prefix, closed=closed)[:2] for s in self.speakers}


class LiveCall:
    """The state of one live call (see the module docstring; two channels: "How it listens").

    :meth:`insert` may run on the event loop while :meth:`step` runs in a worker thread (the
    buffers are append-only); :meth:`step` and :meth:`finish` must be serialised by the caller,
    and re-entering them raises :class:`StreamStateError`.

    Args:
        call_id: The caller's id for the call (shown in every event and log line).
        metadata: Call metadata (``source``, ``campaign``…) that selects the policy segment.
        asr: Speech recognizer.
        scorer: Intent classifier.
        policy: Routing policy.
        config: Stream settings.
        clock: Seconds, monotonic; injectable so tests control time (arrival times given to
            :meth:`insert` must come from the same clock).
        model: Scoring model version shown before the first score (later: from the scores).
        speakers: ``()`` for one mixed channel, or the speakers of a two-channel call (both
            of :data:`SPEAKERS`, in channel order).
    """

    def __init__(self, call_id: str, metadata: Mapping[str, str], *, asr: Transcriber, scorer: Scorer,
                 policy: DecisionPolicy, config: StreamConfig = StreamConfig(),
                 clock: Callable[[], float] = time.monotonic, model: str = "",
                 speakers: Sequence[str] = ()) -> None:
        speakers = tuple(speakers)
        if speakers and sorted(speakers) != sorted(SPEAKERS):
            raise StreamInputError(f"speakers must be () for one channel or both of {list(SPEAKERS)}, "
                                   f"got {list(speakers)}")
        self.call_id = call_id
        self.metadata = {str(k): str(v) for k, v in metadata.items()}
        self.config = config
        self.speakers = speakers
        self._policy = policy
        self._clock = clock
        self._channels: dict[str | None, _Channel] = (
            {s: _Channel(s, config, asr=asr, clock=clock, call_id=call_id) for s in (speakers or (None,))})
        self._scored = self._channels[SCORED_SPEAKER if speakers else None]
        #: Both speakers are scored as tagged text (a two-channel call and a model that reads tags).
        self.tagged = bool(speakers) and bool(getattr(scorer, "speaker_tags", False))
        self._seq = 0
        self._started = False
        self._finished = False
        self._decision: Decision | None = None
        self._text = _CallText(self._channels, self._scored, scorer=scorer, tagged=self.tagged,
                               redact_pii=config.redact_pii, model=model)
        self._latencies_ms: list[float] = []
        self._busy = threading.Lock()

    # -- public API ------------------------------------------------------------------------

    @property
    def decision(self) -> Decision | None:
        return self._decision

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def window_complete(self) -> bool:
        """Every channel's opening window has been looked at (no audio is decoded after this)."""
        return all(ch.complete for ch in self._channels.values())

    @property
    def transcript(self) -> str:
        """The caller's words so far (of the whole call with one channel), as heard: not redacted
        (the events carry the redacted text) and without speaker tags."""
        prefix = self._scored.prefix
        return _join(prefix.stable_text, prefix.unstable_text)

    @property
    def audio_seconds(self) -> float:
        """Audio in the opening buffer so far (the longer channel)."""
        return max(ch.n for ch in self._channels.values()) / SAMPLE_RATE

    def start(self) -> StreamEvent:
        """The ``started`` event (seq 0); send it before any other."""
        if self._started:
            raise StreamStateError(f"call {self.call_id}: start() called twice")
        self._started = True
        # Keys only: metadata values may come from a telephony platform and hold caller details.
        logger.info("call %s started (metadata keys %s, %s)", self.call_id, sorted(self.metadata),
                    "channels " + "+".join(self.speakers) if self.speakers else "one channel")
        scored = "caller+agent" if self.tagged else (SCORED_SPEAKER if self.speakers else "all")
        return self._event("started", metadata=dict(self.metadata),
                           config=self.config.shown(speakers=self.speakers, scored=scored))

    def error(self, message: str, *, code: str = "bad_request") -> StreamEvent:
        """An ``error`` event with this call's id and next seq (for the transport to send)."""
        return self._event("error", error_code=code, message=message, audio_seconds=self.audio_seconds)

    def insert(self, audio: np.ndarray, *, arrived_at: float | None = None, speaker: str | None = None) -> None:
        """Append audio (float32 16 kHz mono, any length) to the call, or to one speaker's channel.

        Args:
            audio: Samples in [-1, 1].
            arrived_at: When the audio arrived (``clock`` seconds); default now.
            speaker: Whose channel (two-channel calls; must be None for one channel).

        Raises:
            StreamInputError: not a 1-D float array, NaN/inf samples, or a speaker this call
                does not have.
            StreamStateError: the call is finished.
        """
        if self._finished:
            raise StreamStateError(f"call {self.call_id}: insert() after finish()")
        channel = self._channels.get(speaker)
        if channel is None:
            raise StreamInputError(
                f"speaker {speaker!r} is not a channel of this call (channels: "
                f"{list(self.speakers) if self.speakers else 'one, speaker None'})")
        samples = _as_samples(audio)
        if samples.size:
            channel.insert(samples, self._clock() if arrived_at is None else float(arrived_at))

    def ready(self) -> bool:
        """True when :meth:`step` has work: enough new audio, or a full window not yet decoded."""
        return not self._finished and any(ch.ready() for ch in self._channels.values())

    def step(self) -> list[StreamEvent]:
        """Decode, score and maybe decide (blocking; returns ``[]`` when not :meth:`ready`).

        Returns:
            A ``partial`` event when a decode ran, followed by the ``decision`` event when the
            call was decided in this step.

        Raises:
            StreamStateError: re-entered while another step/finish runs, or after finish.
        """
        with _exclusive(self._busy, f"call {self.call_id}: step()"):
            if self._finished:
                raise StreamStateError(f"call {self.call_id}: step() after finish()")
            if not self.ready():
                return []
            was_complete = self._scored.complete
            decoded = []
            for channel in self._channels.values():
                if channel.ready():
                    upto = channel.n  # insert() may append while we decode; this step covers what is here now
                    last = upto >= channel.window
                    result = channel.advance(upto, last=last)
                    channel.complete = last
                    if result is not None:
                        decoded.append(result)
            events = self._partial(decoded) if decoded else []
            if self._scored.complete:
                events += self._decide_if_needed(early=False)
                if not was_complete:
                    logger.info("call %s: opening window complete (%.1f s)", self.call_id,
                                self._scored.n / SAMPLE_RATE)
            elif self._scored.n / SAMPLE_RATE >= self.config.decision_deadline_seconds:
                events += self._decide_if_needed(early=True)  # deadline: decide even if not confident
            return events

    def finish(self) -> list[StreamEvent]:
        """End the call (client stop or disconnect).

        Decodes audio no step has looked at yet, decides if not decided, and ends with the
        ``final`` event. A second call returns ``[]``.

        Raises:
            StreamStateError: called while a step runs.
        """
        with _exclusive(self._busy, f"call {self.call_id}: finish()"):
            if self._finished:
                return []
            decoded = []
            for channel in self._channels.values():
                if not channel.complete and channel.consumed < channel.n:
                    result = channel.advance(channel.n, last=True)
                    if result is not None:
                        decoded.append(result)
            events = self._partial(decoded, closed=True) if decoded else []
            for channel in self._channels.values():
                channel.prefix.flush()
            self._finished = True
            self._text.ensure()
            events += self._decide_if_needed(early=False)
            events.append(self._final_event())
            totals = events[-1].totals
            logger.info("call %s finished: %.1f s audio, %d decodes, decision %s", self.call_id,
                        totals.audio_seconds, totals.decodes, self._decision.route if self._decision else None)
            return events

    # -- internals -------------------------------------------------------------------------

    def _partial(self, decoded: Sequence[_Decoded], *, closed: bool = False) -> list[StreamEvent]:
        """Score after a step's decodes: the ``partial`` event, and an early decision if due."""
        closed = closed or any(d.last for d in decoded if d.channel is self._scored)
        started = self._clock()
        scored = self._text.ensure()
        done = self._clock()
        latencies = [(done - d.channel.arrival_of(d.upto - 1)) * 1000.0 for d in decoded]
        self._latencies_ms.extend(latencies)
        audio_seconds = max(d.upto for d in decoded) / SAMPLE_RATE
        stable, unstable, scores = self._text.view(closed=closed)
        events = [self._event(
            "partial", audio_seconds=audio_seconds, stable=stable, unstable=unstable, scores=scores,
            speaker_text=self._text.speaker_view(closed=closed), latency_ms=max(latencies),
            decode_ms=sum(d.decode_seconds for d in decoded) * 1000.0,
            score_ms=(done - started) * 1000.0 if scored else 0.0, lagging=any(d.lagging for d in decoded),
            lag_seconds=max(max(d.lag, 0.0) for d in decoded), skipped_seconds=self._scored.decode_from / SAMPLE_RATE,
            dropped_words=sum(d.dropped_words for d in decoded),
            window_complete=any(d.last and d.upto >= d.channel.window for d in decoded if d.channel is self._scored),
        )]
        logger.debug("call %s: partial at %.2f s, latency %.0f ms, %d stable words", self.call_id, audio_seconds,
                     max(latencies), len(self._scored.prefix.committed))
        if self._decision is None and not closed:
            decision = self._policy.early_decision(scores, self.metadata, audio_seconds)
            if decision is not None:
                events.append(self._decision_event(decision, closed=False))
        return events

    def _decide_if_needed(self, *, early: bool) -> list[StreamEvent]:
        """Decide now unless decided (window end, stop, deadline); ``early`` marks a deadline."""
        if self._decision is not None:
            return []
        self._text.ensure()
        _, _, scores = self._text.view(closed=not early)
        decision = self._policy.decide(scores, self.metadata, audio_seconds=self._scored.consumed / SAMPLE_RATE,
                                       early=early)
        return [self._decision_event(decision, closed=not early)]

    def _decision_event(self, decision: Decision, *, closed: bool) -> StreamEvent:
        self._decision = decision
        logger.info("call %s: decision %s (%s %.2f) at %.1f s, segment %s", self.call_id, decision.route,
                    decision.label, decision.confidence, decision.audio_seconds or 0.0, decision.segment)
        stable, unstable, scores = self._text.view(closed=closed)
        return self._event("decision", audio_seconds=decision.audio_seconds or 0.0, stable=stable, unstable=unstable,
                           scores=scores, speaker_text=self._text.speaker_view(closed=closed), decision=decision,
                           window_complete=self.window_complete)

    def _final_event(self) -> StreamEvent:
        _, _, scores = self._text.view(closed=True)  # evidence indexes the caller's words (or its speaker's)
        per_channel = [tuple(ch.prefix.committed) for ch in self._channels.values()]
        if self.config.redact_pii:
            per_channel = [redact_words(words) for words in per_channel]
        words = tuple(sorted((w for ws in per_channel for w in ws), key=lambda w: (w.start, w.end)))
        totals = CallTotals.of(list(self._channels.values()), self._latencies_ms, self._decision)
        return self._event("final", audio_seconds=self.audio_seconds, words=words, scores=scores,
                           decision=self._decision, totals=totals)

    def _event(self, type_: str, **fields: Any) -> StreamEvent:
        event = StreamEvent(type=type_, call_id=self.call_id, seq=self._seq, model=self._text.model, **fields)
        self._seq += 1
        return event


@contextlib.contextmanager
def _exclusive(busy: threading.Lock, what: str) -> Iterator[None]:
    # One decode in flight per call: a second concurrent step is a transport bug, and queueing it
    # silently would double the ASR load exactly when the server is slow.
    if not busy.acquire(blocking=False):
        raise StreamStateError(f"{what} re-entered while another step is running")
    try:
        yield
    finally:
        busy.release()


def _common_prefix_length(hypotheses: Sequence[Sequence[Word]]) -> int:
    n = 0
    for column in zip(*hypotheses):
        if len({_norm(w.text) for w in column}) != 1:
            break
        n += 1
    return n


_NON_WORD = re.compile(r"[^\w']+")


def _norm(text: str) -> str:
    """Compare words as a listener would: case and punctuation ("Hi," == "hi") do not count."""
    return _NON_WORD.sub("", text.lower())


def _join(a: str, b: str) -> str:
    return f"{a} {b}" if a and b else a or b


def _as_samples(audio: np.ndarray) -> np.ndarray:
    if not isinstance(audio, np.ndarray):
        raise StreamInputError(f"audio must be a numpy array of float32 samples, got {type(audio).__name__}")
    if audio.ndim != 1:
        raise StreamInputError(f"audio must be 1-D (mono) float32 at {SAMPLE_RATE} Hz, got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise StreamInputError(f"audio must be float samples in [-1, 1], got dtype {audio.dtype} "
                               f"(decode pcm16/mulaw with speech.audio first)")
    samples = audio.astype(np.float32, copy=False)
    if not np.isfinite(samples).all():
        raise StreamInputError("audio contains NaN or infinite samples")
    return samples


def _word_json(w: Word) -> dict:
    out = {"text": w.text, "start": round(w.start, 3), "end": round(w.end, 3), "probability": round(w.probability, 4)}
    if w.speaker is not None:
        out["speaker"] = w.speaker
    return out


def _scores_json(scores: IntentScores) -> dict:
    return {
        "label": scores.label,
        "probabilities": {k: round(float(v), 4) for k, v in scores.probabilities.items()},
        "buying_intent": round(float(scores.buying_intent), 4),
        "signals": [
            {"name": s.name, "probability": round(float(s.probability), 4),
             "evidence": [_evidence_json(e) for e in s.evidence]}
            for s in scores.present_signals
        ],
    }


def _evidence_json(e: Evidence) -> dict:
    out = {"text": e.text, "start": e.start, "end": e.end, "score": round(float(e.score), 4)}
    if e.speaker is not None:
        out["speaker"] = e.speaker
    return out


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


__all__ = [
    "CallTotals", "EVENT_TYPES", "LiveCall", "PredictorScorer", "Scorer", "StablePrefix", "StreamConfig", "StreamEvent",
    "StreamInputError", "StreamStateError", "Transcriber",
]
