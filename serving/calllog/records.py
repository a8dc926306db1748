"""What the decision log holds: a scored call, the outcome reported for it, and the two together.

A :class:`CallRecord` is built where a call is scored — :func:`record_from_scores` for both the
REST routes and the live ``final`` event — so the transcript policy (``call_log.transcript``:
off / redacted / full) is applied in one place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.scores import IntentScores
from serving.policy import Decision

#: Channels a call can be scored on (``CallRecord.channel``).
CHANNELS = ("score", "score_audio", "voicemail", "stream", "twilio")


def utc_now() -> dt.datetime:
    """Now, as the naive UTC time the database stores (both backends, one convention)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def as_utc(value: dt.datetime) -> dt.datetime:
    """A datetime as naive UTC (aware values are converted; naive ones are taken as UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


@dataclass(frozen=True)
class SignalValue:
    """One signal as logged. Attributes: name, probability, present."""

    name: str
    probability: float
    present: bool


@dataclass(frozen=True)
class CallRecord:
    """One scored call, as the decision log stores it.

    Attributes:
        call_id: The call's id (the primary key: scoring the same id again replaces the record).
        logged_at: When it was scored (naive UTC).
        channel: ``score`` | ``score_audio`` | ``voicemail`` | ``stream`` | ``twilio``.
        source: ``metadata["source"]`` ("" when absent) — the marketing source the report groups by.
        campaign: ``metadata["campaign"]`` ("" when absent).
        metadata: All call metadata (strings).
        model: ``"<name>/<version>"`` that scored it.
        label: Most probable class.
        probabilities: Calibrated probability per class.
        buying_intent: ``probabilities["buying"]``.
        signals: Every schema signal with its probability and whether it fired.
        route: The decision's route.
        decision_label: The class the decision is based on.
        confidence: Probability of ``decision_label``.
        reasons: The decision's reasons (already PII-redacted by the service).
        segment: The policy segment that applied.
        decision_seconds: Call audio heard when the decision was made (None for text scoring).
        early: The decision came before the window ended.
        audio_seconds: Audio received (None for text scoring).
        transcript: The opening transcript under ``transcript_mode`` (None when ``off``).
        transcript_mode: ``off`` | ``redacted`` | ``full``.
    """

    call_id: str
    logged_at: dt.datetime
    channel: str
    source: str
    campaign: str
    metadata: Mapping[str, str]
    model: str
    label: str
    probabilities: Mapping[str, float]
    buying_intent: float
    signals: tuple[SignalValue, ...]
    route: str
    decision_label: str
    confidence: float
    reasons: tuple[str, ...]
    segment: str
    decision_seconds: float | None
    early: bool
    audio_seconds: float | None
    transcript: str | None
    transcript_mode: str

    @property
    def present_signals(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.signals if s.present)

    def to_json(self) -> dict[str, Any]:
        """The ``GET /calls/{id}`` form (times as ISO 8601 UTC)."""
        return {
            "call_id": self.call_id, "logged_at": _iso(self.logged_at), "channel": self.channel,
            "source": self.source, "campaign": self.campaign, "metadata": dict(self.metadata), "model": self.model,
            "label": self.label, "probabilities": dict(self.probabilities), "buying_intent": self.buying_intent,
            "signals": [{"name": s.name, "probability": s.probability, "present": s.present} for s in self.signals],
            "decision": {"route": self.route, "label": self.decision_label, "confidence": self.confidence,
                         "reasons": list(self.reasons), "segment": self.segment,
                         "audio_seconds": self.decision_seconds, "early": self.early},
            "audio_seconds": self.audio_seconds, "transcript": self.transcript,
            "transcript_mode": self.transcript_mode,
        }


@dataclass(frozen=True)
class Outcome:
    """What happened to a call, as a CRM or agent desktop reports it.

    Attributes:
        call_id: The call.
        converted: Whether the call converted (sale, booking — whatever the business counts).
        revenue: Value of the conversion, when known.
        disposition: The CRM's disposition code (free text, e.g. ``sold``, ``callback``).
        agent: Agent who handled the call.
        queue: Queue or team it was routed to.
        occurred_at: When the outcome happened (naive UTC); None in a report that did not say
            (stored as ``received_at``, and a repeat without it matches any recorded time).
        received_at: When the service received it (naive UTC).
    """

    call_id: str
    converted: bool
    revenue: float | None = None
    disposition: str = ""
    agent: str = ""
    queue: str = ""
    occurred_at: dt.datetime | None = None
    received_at: dt.datetime = field(default_factory=utc_now)

    @property
    def effective_at(self) -> dt.datetime:
        """When it happened: ``occurred_at``, else when it was received."""
        return as_utc(self.occurred_at or self.received_at)

    def same_report(self, other: Outcome) -> bool:
        """True when ``other`` reports the same outcome as this recorded one.

        ``received_at`` is not part of a report; a repeat that gives no ``occurred_at`` matches
        whatever time was recorded (a CRM retry need not remember the first request's clock).
        """
        if (self.call_id, self.converted, self.revenue, self.disposition, self.agent, self.queue) != \
                (other.call_id, other.converted, other.revenue, other.disposition, other.agent, other.queue):
            return False
        return other.occurred_at is None or as_utc(other.occurred_at) == self.effective_at

    def to_json(self) -> dict[str, Any]:
        return {"converted": self.converted, "revenue": self.revenue, "disposition": self.disposition,
                "agent": self.agent, "queue": self.queue, "occurred_at": _iso(self.effective_at),
                "received_at": _iso(self.received_at)}


@dataclass(frozen=True)
class LoggedCall:
    """A call id's log entry and outcome; either may be missing (an orphan outcome has no call).

    Attributes:
        call_id: The call.
        call: The scored call, or None when only an outcome arrived.
        outcome: The reported outcome, or None.
    """

    call_id: str
    call: CallRecord | None
    outcome: Outcome | None

    @property
    def orphan(self) -> bool:
        """An outcome for a call the log has not (yet) seen."""
        return self.call is None and self.outcome is not None

    def to_json(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "call": self.call.to_json() if self.call else None,
                "outcome": self.outcome.to_json() if self.outcome else None, "orphan": self.orphan}


@dataclass(frozen=True)
class WebhookEvent:
    """An event for webhook endpoints, queued with the call records and written to the outbox.

    The body is made once, here, so every attempt to every endpoint sends the same bytes (the
    signature covers them). Build it with :meth:`of`.

    Attributes:
        event_id: ``evt_<32 hex>``, unique.
        type: ``decision``, ``final``, ``callback_due``… (an open set).
        call_id: The call it is about.
        created_at: When it happened (naive UTC).
        body: The JSON sent: ``{"id", "type", "created_at", "call_id", "data"}``.
        endpoints: Where it goes (one outbox row, and one idempotency key, per endpoint).
    """

    event_id: str
    type: str
    call_id: str
    created_at: dt.datetime
    body: str
    endpoints: tuple[str, ...]

    @classmethod
    def of(cls, event_type: str, call_id: str, data: Mapping[str, Any], endpoints: tuple[str, ...], *,
           created_at: dt.datetime | None = None) -> WebhookEvent:
        """A new event with a fresh id; ``data`` must be JSON-serialisable."""
        import json
        import uuid

        event_id = f"evt_{uuid.uuid4().hex}"
        created = as_utc(created_at or utc_now())
        body = json.dumps({"id": event_id, "type": event_type, "created_at": _iso(created), "call_id": call_id,
                           "data": dict(data)}, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return cls(event_id, event_type, call_id, created, body, tuple(endpoints))

    def idempotency_key(self, endpoint: str) -> str:
        """``<event id>:<endpoint>``: the same on every attempt, different per endpoint."""
        return f"{self.event_id}:{endpoint}"


def record_from_scores(
    call_id: str,
    *,
    channel: str,
    metadata: Mapping[str, str],
    scores: IntentScores,
    decision: Decision,
    transcript: str,
    transcript_mode: str,
    redacted: bool,
    audio_seconds: float | None = None,
    decision_seconds: float | None = None,
    logged_at: dt.datetime | None = None,
) -> CallRecord:
    """Build the log record of a scored call, applying the transcript policy.

    Args:
        call_id: The call.
        channel: One of :data:`CHANNELS`.
        metadata: Cleaned call metadata.
        scores: The final scores.
        decision: The routing decision.
        transcript: The transcript as heard (``full`` mode keeps it; ``redacted`` redacts it).
        transcript_mode: ``off`` | ``redacted`` | ``full``.
        redacted: ``transcript`` is already redacted (the service's ``redact_pii``); then
            ``full`` keeps what there is and ``redacted`` skips a second pass.
        audio_seconds: Audio received (audio channels).
        decision_seconds: Audio heard at the decision (default ``decision.audio_seconds``).
        logged_at: Time of the record (default now).

    Returns:
        The record.
    """
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}")
    text: str | None
    if transcript_mode == "off":
        text = None
    elif transcript_mode == "redacted" and not redacted:
        from serving.redact import redact

        text = redact(transcript).text
    else:
        text = transcript
    return CallRecord(
        call_id=call_id, logged_at=logged_at or utc_now(), channel=channel,
        source=metadata.get("source", ""), campaign=metadata.get("campaign", ""), metadata=dict(metadata),
        model=scores.model, label=scores.label,
        probabilities={k: round(float(v), 6) for k, v in scores.probabilities.items()},
        buying_intent=round(float(scores.buying_intent), 6),
        signals=tuple(SignalValue(s.name, round(float(s.probability), 6), bool(s.present)) for s in scores.signals),
        route=decision.route, decision_label=decision.label, confidence=round(float(decision.confidence), 6),
        reasons=tuple(decision.reasons), segment=decision.segment,
        decision_seconds=decision.audio_seconds if decision_seconds is None else decision_seconds,
        early=decision.early, audio_seconds=audio_seconds, transcript=text, transcript_mode=transcript_mode,
    )


def _iso(value: dt.datetime) -> str:
    return as_utc(value).isoformat(timespec="milliseconds") + "Z"
