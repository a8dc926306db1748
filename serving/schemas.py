"""The HTTP boundary: pydantic request/response models and the conversion from internal dataclasses.

Pydantic lives only here (STYLE.md): inside the service the values are dataclasses
(:class:`~serving.scoring.ScoredCall`, :class:`~speech.transcript.OpeningTranscript`);
:func:`score_response` and :func:`audio_score_response` turn them into the one response shape
of ``/score`` and ``/score_audio``, which FastAPI checks against these models on the way out
(so the OpenAPI schema at ``/docs.json`` is what clients get).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from fastapi import Response
from pydantic import (
    BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StringConstraints, field_validator,
)

from callintent.errors import UserError
from serving.limits import check_text
from serving.live_floor import FloorCall
from serving.scoring import ScoreItem, ScoredCall
from serving.screen_pop import headline
from models.scores import SignalScore
from speech.transcript import OpeningTranscript

#: What a client-chosen call id may look like (it ends up in logs and metrics labels' neighbours).
CALL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"
_CALL_ID = re.compile(CALL_ID_PATTERN)
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 256

# Constrained here (not only in clean_metadata) so the OpenAPI schema documents what is accepted;
# strict numbers, else a too-long string of digits would slip through as an int.
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_METADATA_KEY)]
MetadataValue = (Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE)] | StrictInt | StrictFloat
                 | StrictBool | None)


class InvalidRequest(UserError):
    """A request field is missing or invalid (HTTP 422); ``fields`` names the fields."""

    def __init__(self, message: str, fields: Sequence[str]) -> None:
        super().__init__(message)
        self.fields = list(fields)


def new_call_id() -> str:
    """A fresh call id for requests that bring none."""
    return f"call-{uuid.uuid4().hex[:16]}"


def valid_call_id(value: str) -> bool:
    return bool(_CALL_ID.match(value))


def clean_metadata(metadata: Mapping[str, Any], max_items: int) -> dict[str, str]:
    """Validate call metadata and make every value a string (the policy matches strings).

    Args:
        metadata: ``{source, campaign, industry, …}`` as sent by the client.
        max_items: ``limits.max_metadata_items``.

    Returns:
        ``{key: str(value)}`` without null values.

    Raises:
        ValueError: too many keys, a key/value too long, or a nested value (the message names it).
    """
    if len(metadata) > max_items:
        raise ValueError(f"metadata has {len(metadata)} keys; at most {max_items} are allowed")
    out: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or len(key) > MAX_METADATA_KEY:
            raise ValueError(f"metadata key {key!r} must be a string of 1..{MAX_METADATA_KEY} characters")
        if value is None:
            continue
        if isinstance(value, (dict, list, tuple)):
            raise ValueError(f"metadata.{key} must be a string, number or boolean, not {type(value).__name__}")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if len(text) > MAX_METADATA_VALUE:
            raise ValueError(f"metadata.{key} is longer than {MAX_METADATA_VALUE} characters")
        out[key] = text
    return out


def request_metadata(metadata: Mapping[str, Any], max_items: int) -> dict[str, str]:
    """:func:`clean_metadata` for an HTTP request: a problem is a 422 naming ``metadata``."""
    try:
        return clean_metadata(metadata, max_items)
    except ValueError as e:
        raise InvalidRequest(f"metadata: {e}", ["metadata"]) from None


#: Most speaker turns one ``/score`` request may carry (an opening has a handful).
MAX_TURNS = 200


class TurnIn(BaseModel):
    """One speaker turn of a ``/score`` request."""

    model_config = ConfigDict(extra="forbid")

    speaker: Literal["caller", "agent"]
    text: str = Field(description="What the speaker said in this turn.")


class ScoreRequest(BaseModel):
    """``POST /score``: one opening (a transcript, or speaker turns) and what is known about the call."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "transcript": "hi I saw your ad for water heaters, what would a 50 gallon install cost",
        "call_id": "call-123", "metadata": {"source": "google_ads", "campaign": "spring-hvac"}}]})

    transcript: str | None = Field(default=None, min_length=1,
                                   description="The opening ~30 s of the call as text (give this or turns).")
    turns: list[TurnIn] | None = Field(
        default=None, min_length=1, max_length=MAX_TURNS,
        description="The opening as speaker turns in order, when caller and agent are known (give this or "
                    "transcript). A model trained with speaker_tags scores them tagged (agent: … caller: …); "
                    "any other model scores the caller's turns. The response's transcript is the text scored.")
    call_id: str | None = Field(default=None, pattern=CALL_ID_PATTERN,
                                description="Your id for the call (generated when absent).")
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict, description="source, campaign, industry, … (the decision policy keys on them).")

    @field_validator("transcript")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("transcript must contain text, not only whitespace")
        return value

    def input_problem(self) -> tuple[str, list[str]] | None:
        """Why the request has no one text to score (``(message, fields)``), or None when it has.

        Checked by the route rather than as a model validator, so the error names the field.
        """
        if self.transcript is None and self.turns is None:
            return "transcript: field required (or give turns: the opening as speaker turns)", ["transcript"]
        if self.transcript is not None and self.turns is not None:
            return "give either transcript or turns, not both", ["transcript", "turns"]
        if self.turns is not None and not any(t.text.strip() for t in self.turns):
            return "turns must contain text, not only whitespace", ["turns"]
        return None

    def text_for(self, speaker_tags: bool) -> str:
        """The text to score: the transcript, or the turns tagged (a model that reads speaker tags)
        or the caller's turns joined (any other model; "" when the caller said nothing)."""
        if self.turns is None:
            assert self.transcript is not None
            return self.transcript
        if speaker_tags:
            from speech.speakers import tag

            return tag((t.speaker, t.text, 0) for t in self.turns).text
        return " ".join(t.text.strip() for t in self.turns if t.speaker == "caller" and t.text.strip())

    def to_item(self, *, speaker_tags: bool, max_text_chars: int, max_metadata_items: int) -> ScoreItem:
        """What ``POST /score`` scores, or the 4xx that says why there is nothing to score.

        Args:
            speaker_tags: The model reads speaker-tagged turns (its artifact says so).
            max_text_chars: ``limits.max_text_chars``.
            max_metadata_items: ``limits.max_metadata_items``.

        Raises:
            InvalidRequest: neither or both of transcript and turns, or no caller words (422).
            LimitExceeded: the text is over ``max_text_chars`` (413).
        """
        problem = self.input_problem()
        if problem is not None:
            raise InvalidRequest(*problem)
        text = self.text_for(speaker_tags)
        if not text:
            raise InvalidRequest("turns have no caller words to score (this model reads the caller's turns only; "
                                 "it was not trained with speaker_tags)", fields=["turns"])
        check_text(text, max_text_chars)
        return ScoreItem(transcript=text, call_id=self.call_id or new_call_id(),
                         metadata=request_metadata(self.metadata, max_metadata_items), channel="score")


class OutcomeRequest(BaseModel):
    """``POST /calls/{call_id}/outcome``: what happened to the call, from a CRM or agent desktop."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "converted": True, "revenue": 420.0, "disposition": "sold", "agent": "a.lee", "queue": "sales",
        "occurred_at": "2026-11-27T15:04:05Z"}]})

    converted: StrictBool = Field(description="Did the call convert (sale, booking…)?")
    revenue: float | None = Field(default=None, ge=0, allow_inf_nan=False, description="Value, when known.")
    disposition: str = Field(default="", max_length=64, description="The CRM's disposition code.")
    agent: str = Field(default="", max_length=256, description="Agent who handled the call.")
    queue: str = Field(default="", max_length=256, description="Queue or team the call reached.")
    occurred_at: datetime | None = Field(
        default=None, description="When it happened (ISO 8601; no zone = UTC). Default: when received.")


class OutcomeCorrection(OutcomeRequest):
    """``PUT /calls/{call_id}/outcome``: the outcome as it should be, replacing the recorded one."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "converted": False, "disposition": "cancelled", "reason": "customer cancelled the order on 2026-11-30"}]})

    reason: str = Field(min_length=1, max_length=256, description="Why the recorded outcome is changed (kept).")

    @field_validator("reason")
    @classmethod
    def _reason_has_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("reason must say why, not be only whitespace")
        return value.strip()


#: Times a missed call or a callback may carry (anything else is a client bug, not a call).
EARLIEST_TIME, LATEST_TIME = datetime(2000, 1, 1), datetime(2100, 1, 1)


def plausible_time(value: datetime, name: str) -> datetime:
    """``value`` as naive UTC, refused (ValueError naming ``name``) outside 2000-2100."""
    from serving.calllog.records import as_utc

    try:
        utc = as_utc(value)
    except OverflowError:
        utc = LATEST_TIME
    if not EARLIEST_TIME <= utc < LATEST_TIME:
        raise ValueError(f"{name} must be a time between 2000 and 2100, got {value.isoformat()}")
    return utc


class MissedCallRequest(BaseModel):
    """``POST /calls/missed``: a call nobody answered and that left no voicemail (no audio)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "call_id": "call-124", "caller": "+15551234567", "missed_at": "2026-11-27T15:04:05Z",
        "metadata": {"source": "google_ads", "campaign": "spring-hvac"}}]})

    call_id: str | None = Field(default=None, pattern=CALL_ID_PATTERN,
                                description="Your id for the call (generated when absent).")
    caller: str = Field(default="", max_length=64, description="The caller's number (to call back).")
    missed_at: datetime | None = Field(
        default=None, description="When the call was missed (ISO 8601; no zone = UTC). Default: when received.")
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict, description="source, campaign, … (the callback report groups by source).")
    owner: str = Field(default="", max_length=256, description="Who owns the callback (agent or account owner).")
    queue: str = Field(default="", max_length=256,
                       description="Queue the callback belongs to (default: the policy's for the intent).")

    @field_validator("missed_at")
    @classmethod
    def _plausible(cls, value: datetime | None) -> datetime | None:
        return None if value is None else plausible_time(value, "missed_at")


class CallbackRequest(BaseModel):
    """``POST /calls/{call_id}/callbacks``: one attempt to call a missed caller back."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "attempted_at": "2026-11-27T15:12:00Z", "connected": True, "agent": "a.lee", "outcome": "booked"}]})

    attempted_at: datetime = Field(description="When the agent dialled (ISO 8601; no zone = UTC).")
    connected: StrictBool = Field(description="The caller was reached (not a ring-out or their voicemail).")
    agent: str = Field(default="", max_length=256, description="Who called.")
    outcome: str = Field(default="", max_length=64,
                         description="What came of it (booked, no_answer, left_voicemail…); the sale itself is the "
                                     "call's outcome (POST /calls/{call_id}/outcome).")

    @field_validator("attempted_at")
    @classmethod
    def _plausible(cls, value: datetime) -> datetime:
        return plausible_time(value, "attempted_at")


class MissedCallOut(BaseModel):
    """A missed call as logged, with its callback terms."""

    model_config = ConfigDict(extra="forbid")  # the documented shape is the whole shape

    call_id: str
    missed_at: str
    kind: str = Field(description="missed | voicemail")
    caller: str
    source: str
    campaign: str
    metadata: dict[str, str]
    intent: str = Field(description="buying | service | informational | noise | unknown (no voicemail, or abstained)")
    buying_intent: float | None
    signals: list[str]
    priority: int | None = Field(description="Callback priority, 1 = first; null = no callback owed.")
    sla_seconds: float | None
    due_at: str | None = Field(description="Deadline: missed_at + SLA (null = none).")
    owner: str
    queue: str
    logged_at: str


class EvidenceOut(BaseModel):
    model_config = ConfigDict(extra="forbid")  # the documented shape is the whole shape

    start: int = Field(description="Character offset in the returned (redacted) transcript.")
    end: int
    text: str
    score: float


class SignalOut(BaseModel):
    model_config = ConfigDict(extra="forbid")  # the documented shape is the whole shape

    name: str
    probability: float
    present: bool
    evidence: list[EvidenceOut] = Field(default_factory=list)


class DecisionOut(BaseModel):
    model_config = ConfigDict(extra="forbid")  # the documented shape is the whole shape

    route: str = Field(description="priority_sales | standard | screen | undetermined")
    label: str
    buying_intent: float
    confidence: float
    reasons: list[str]
    segment: str
    audio_seconds: float | None = None
    early: bool = False


class WordOut(BaseModel):
    model_config = ConfigDict(extra="forbid")  # the documented shape is the whole shape

    text: str
    start: float
    end: float
    probability: float = 1.0
    speaker: str | None = Field(default=None, exclude_if=lambda v: v is None,
                                description="caller | agent (a two-channel recording only; absent otherwise)")


class ScoreResponse(BaseModel):
    """The verdict on one call opening."""

    model_config = ConfigDict(extra="forbid")  # the documented shape is the whole shape

    call_id: str
    intent: str = Field(description="Most probable class: buying | service | informational | noise.")
    probabilities: dict[str, float]
    buying_intent: float
    signals: list[SignalOut]
    decision: DecisionOut
    transcript: str = Field(description="The scored text, PII redacted unless the server disables it.")
    model: str = Field(description="Registry name/version of the model.")
    timings_ms: dict[str, float] = Field(default_factory=dict)
    batch_size: int = Field(default=1, description="Transcripts scored in the same model run (adaptive batching).")


class AudioScoreResponse(ScoreResponse):
    """``POST /score_audio``: the verdict plus the timed words of the opening."""

    words: list[WordOut] = Field(default_factory=list)
    audio_seconds: float = Field(description="Seconds of audio decoded (at most the 30 s window).")
    cut_seconds: float
    missed_call: MissedCallOut | None = Field(
        default=None, exclude_if=lambda v: v is None,
        description="kind=voicemail only: the missed call as logged, with its callback terms.")


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")  # the documented shape is the whole shape

    code: str = Field(description="Stable machine-readable code, e.g. unauthorized, body_too_large.")
    message: str
    fields: list[str] | None = Field(default=None, description="Offending request fields (422).")


class ErrorResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")  # the documented shape is the whole shape

    error: ErrorDetail


class LiveCallOut(BaseModel):
    """One call on the live floor (``GET /v1/calls/live``, and the ``call`` events of the feeds)."""

    model_config = ConfigDict(extra="forbid")  # the documented shape is the whole shape

    call_id: str
    channel: str = Field(description="How the call arrived: stream (/v1/stream) | twilio (/v1/twilio).")
    source: str = Field(description="metadata.source ('' when the call sent none).")
    campaign: str = Field(description="metadata.campaign ('' when the call sent none).")
    state: Literal["live", "ended"]
    started_at: datetime
    audio_seconds: float = Field(description="Call audio heard so far.")
    label: str | None = Field(description="Current most probable class (null before the first words).")
    confidence: float | None = Field(description="Its calibrated probability.")
    buying_intent: float | None
    probabilities: dict[str, float]
    series: list[tuple[float, float]] = Field(
        description="[audio_seconds, buying_intent] after each decode: the running buying probability.")
    signals: list[SignalOut] = Field(description="Present signals; evidence offsets index transcript.")
    transcript: str = Field(description="The scored text so far, PII redacted.")
    decision: DecisionOut | None = Field(description="The routing decision once made.")
    headline: str = Field(description='The verdict in plain words, e.g. "Likely buyer — asked for a price, saw '
                                      'your Facebook ad".')
    next_step: str | None = Field(description="The policy's next_steps line for the decided route.")
    model: str


class LiveFloorOut(BaseModel):
    """``GET /v1/calls/live``: the calls open now, oldest first."""

    model_config = ConfigDict(extra="forbid")

    calls: list[LiveCallOut]


class ViewTokenRequest(BaseModel):
    """``POST /v1/calls/{call_id}/view-token`` (and ``/v1/calls/live/view-token``)."""

    model_config = ConfigDict(extra="forbid")

    ttl_seconds: int = Field(default=900, ge=1, le=12 * 3600, description="How long the token opens the page.")


class ViewTokenOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(description="Pass as ?token= to the page or the feed; read-only, one call (or the floor).")
    scope: str = Field(description="call:<call_id> or floor")
    expires_at: datetime
    url: str = Field(description="The page with the token, relative to the server.")


def live_call_out(call: FloorCall, next_steps: Mapping[str, str]) -> LiveCallOut:
    """The floor's summary of a call: the one place its JSON shape is made.

    Args:
        call: The call as the floor holds it (texts already redacted).
        next_steps: Route → suggested next step (the policy file's ``next_steps``).
    """
    scores = call.scores
    signals = call.present_signals
    confidence = scores.probabilities[scores.label] if scores is not None else None
    return LiveCallOut.model_validate({
        "call_id": call.call_id, "channel": call.channel, "source": call.source, "campaign": call.campaign,
        "state": "ended" if call.ended else "live",
        "started_at": datetime.fromtimestamp(call.started_at, tz=timezone.utc),
        "audio_seconds": round(call.audio_seconds, 3),
        "label": scores.label if scores is not None else None,
        "confidence": round(confidence, 4) if confidence is not None else None,
        "buying_intent": round(scores.buying_intent, 4) if scores is not None else None,
        "probabilities": {k: round(v, 4) for k, v in scores.probabilities.items()} if scores is not None else {},
        "series": [list(p) for p in call.series],
        "signals": [_signal_fields(s) for s in signals],
        "transcript": call.transcript,
        "decision": call.decision.to_json() if call.decision is not None else None,
        "headline": headline(scores.label if scores else None, confidence or 0.0, signals, call.metadata),
        "next_step": next_steps.get(call.decision.route) if call.decision is not None else None,
        "model": call.model,
    })


def score_response(scored: ScoredCall, *, timings_ms: Mapping[str, float]) -> ScoreResponse:
    """The ``/score`` response: the one place its shape is made.

    Args:
        scored: The verdict; its text is already redacted when redaction is on, and evidence
            offsets index it (see :func:`serving.redact.redact_scores`).
        timings_ms: Per-stage milliseconds (``model`` comes from ``scored``).

    Returns:
        The response model, validated on construction (its models forbid undocumented fields).
    """
    return ScoreResponse.model_validate(_score_fields(scored, timings_ms))


def json_response(body: BaseModel) -> Response:
    """A validated response model as the HTTP response, serialised once by pydantic.

    The route still declares its ``response_model`` (the OpenAPI schema); returning a ``Response``
    spares FastAPI a second dump-validate-serialise pass over a model that was validated when built.
    """
    return Response(body.model_dump_json(), media_type="application/json")


def audio_score_response(scored: ScoredCall, transcript: OpeningTranscript, *, redact_pii: bool,
                         timings_ms: Mapping[str, float], missed_call: Mapping[str, Any] | None = None
                         ) -> AudioScoreResponse:
    """The ``/score_audio`` response: the ``/score`` fields plus the opening's timed words
    (redacted when asked; per speaker, so digits read by the caller and by the agent never join
    into one number), the seconds decoded and the window; for a voicemail, the missed call as
    logged (``MissedCall.to_json()``)."""
    from serving.redact import redact_words

    words = transcript.words
    if redact_pii:
        speakers = list(dict.fromkeys(w.speaker for w in words))
        words = redact_words(words) if len(speakers) <= 1 else tuple(sorted(
            (r for s in speakers for r in redact_words([w for w in words if w.speaker == s])), key=lambda w: w.start))
    return AudioScoreResponse.model_validate({
        **_score_fields(scored, timings_ms),
        "words": [{"text": w.text, "start": w.start, "end": w.end, "probability": w.probability, "speaker": w.speaker}
                  for w in words],
        "audio_seconds": round(transcript.audio_seconds, 3), "cut_seconds": transcript.cut_seconds,
        "missed_call": None if missed_call is None else dict(missed_call)})


def _score_fields(scored: ScoredCall, timings_ms: Mapping[str, float]) -> dict[str, Any]:
    scores = scored.scores
    return {
        "call_id": scored.call_id,
        "intent": scores.label,
        "probabilities": {k: round(v, 6) for k, v in scores.probabilities.items()},
        "buying_intent": round(scores.buying_intent, 6),
        "signals": [_signal_fields(s) for s in scores.signals],
        "decision": scored.decision.to_json(),
        "transcript": scored.text,
        "model": scores.model,
        "timings_ms": {k: round(v, 2) for k, v in {"model": scored.model_ms, **timings_ms}.items()},
        "batch_size": scored.batch_size,
    }


def _signal_fields(signal: SignalScore) -> dict[str, Any]:
    return {"name": signal.name, "probability": round(signal.probability, 6), "present": signal.present,
            "evidence": [{"start": e.start, "end": e.end, "text": e.text, "score": round(e.score, 6)}
                         for e in signal.evidence]}
