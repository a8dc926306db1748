"""Missed calls, voicemails and callback attempts: the values and their reads and writes.

A call nobody answered is logged as a :class:`MissedCall` — by ``POST /calls/missed`` (caller,
time, source; no audio) or by ``POST /score_audio`` with ``kind=voicemail``, whose recording is
scored by the one scoring path (``serving.scoring.Scoring``) and gives the missed call its intent
and signals. The policy's ``callbacks:`` section (:mod:`serving.callbacks`) gives it a priority,
an SLA and a deadline (``due_at = missed_at + sla``).

Each callback is a :class:`CallbackAttempt` (``POST /calls/{call_id}/callbacks``): when it was
attempted, whether it *connected*, the agent and the outcome. Attempted and connected are kept
apart everywhere — an attempt that reached voicemail is not a recovered call.

:func:`callback_due_event` is the event a CRM gets when a callback is owed; :meth:`CallbackLog.due`
lists the callbacks past their deadline with no attempt yet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from serving.callbacks import UNKNOWN, CallbackTerms
from serving.calllog.records import Outcome, _iso, as_utc, utc_now

if TYPE_CHECKING:
    from models.scores import IntentScores
    from serving.calllog.store import CallLogStore
    from serving.policy import Decision

#: How a missed call reached the log: ``missed`` (no audio) or ``voicemail`` (a scored recording).
KINDS = ("missed", "voicemail")


@dataclass(frozen=True)
class MissedCall:
    """A call nobody answered, with the callback terms the policy gave it.

    Attributes:
        call_id: The call (the same id space as scored calls and outcomes).
        missed_at: When the call was missed (naive UTC).
        kind: ``missed`` or ``voicemail``.
        caller: The caller's number as the telephony platform gave it (needed to call back).
        source: ``metadata["source"]`` ("" when absent).
        campaign: ``metadata["campaign"]`` ("" when absent).
        metadata: All call metadata (strings).
        intent: Intent segment: the voicemail's decided class, or ``unknown`` (no voicemail, an
            empty one, or the model abstained).
        buying_intent: The voicemail's P(buying); None without one.
        signals: Signals present in the voicemail.
        priority: Callback priority (1 = first); None = no callback owed.
        sla_seconds: The SLA; None = none.
        due_at: Deadline, ``missed_at + sla`` (naive UTC); None = none.
        owner: Who owns the callback (from the request; "" = unassigned).
        queue: The queue it belongs to (the request's, else the policy's for the intent).
        logged_at: When the service logged it.
    """

    call_id: str
    missed_at: dt.datetime
    kind: str
    caller: str
    source: str
    campaign: str
    metadata: Mapping[str, str]
    intent: str
    buying_intent: float | None
    signals: tuple[str, ...]
    priority: int | None
    sla_seconds: float | None
    due_at: dt.datetime | None
    owner: str
    queue: str
    logged_at: dt.datetime = field(default_factory=utc_now)

    def to_json(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "missed_at": _iso(self.missed_at), "kind": self.kind, "caller": self.caller,
                "source": self.source, "campaign": self.campaign, "metadata": dict(self.metadata),
                "intent": self.intent, "buying_intent": self.buying_intent, "signals": list(self.signals),
                "priority": self.priority, "sla_seconds": self.sla_seconds,
                "due_at": None if self.due_at is None else _iso(self.due_at), "owner": self.owner,
                "queue": self.queue, "logged_at": _iso(self.logged_at)}


@dataclass(frozen=True)
class CallbackAttempt:
    """One attempt to call a missed caller back.

    Attributes:
        call_id: The missed call.
        attempted_at: When the agent dialled (naive UTC).
        connected: The caller was reached (a conversation, not a ring-out or their voicemail).
        agent: Who called.
        outcome: What came of it, free text (``booked``, ``no_answer``, ``left_voicemail``…);
            conversion itself is the call's outcome (``POST /calls/{call_id}/outcome``).
        received_at: When the service received the report.
    """

    call_id: str
    attempted_at: dt.datetime
    connected: bool
    agent: str = ""
    outcome: str = ""
    received_at: dt.datetime = field(default_factory=utc_now)

    def same_report(self, other: CallbackAttempt) -> bool:
        return (self.connected, self.outcome) == (other.connected, other.outcome)

    def to_json(self) -> dict[str, Any]:
        return {"attempted_at": _iso(self.attempted_at), "connected": self.connected, "agent": self.agent,
                "outcome": self.outcome, "received_at": _iso(self.received_at)}


@dataclass(frozen=True)
class MissedCallEntry:
    """A missed call with its callback attempts (oldest first) and the call's outcome, if reported."""

    missed: MissedCall
    attempts: tuple[CallbackAttempt, ...] = ()
    outcome: Outcome | None = None

    @property
    def first_attempt(self) -> CallbackAttempt | None:
        return self.attempts[0] if self.attempts else None

    @property
    def first_connect(self) -> CallbackAttempt | None:
        return next((a for a in self.attempts if a.connected), None)

    def to_json(self) -> dict[str, Any]:
        return {"missed": self.missed.to_json(), "callbacks": [a.to_json() for a in self.attempts]}


def missed_call_intent(scores: IntentScores | None, decision: Decision | None, transcript: str = "") -> str:
    """The intent segment of a missed call: the voicemail's decided class, else :data:`UNKNOWN`."""
    if scores is None or decision is None or not transcript.strip() or decision.route == "undetermined":
        return UNKNOWN
    return decision.label


def missed_call(call_id: str, *, kind: str, missed_at: dt.datetime, caller: str, metadata: Mapping[str, str],
                terms: CallbackTerms, scores: IntentScores | None = None, owner: str = "",
                queue: str = "") -> MissedCall:
    """Build the log entry of a missed call from its report, its voicemail's scores and its terms.

    Args:
        call_id: The call.
        kind: ``missed`` or ``voicemail``.
        missed_at: When it was missed (aware or naive UTC).
        caller: The caller's number.
        metadata: Cleaned call metadata.
        terms: The policy's terms for the call's intent (``CallbackPolicy.terms``).
        scores: The voicemail's scores (None for a missed call without audio).
        owner: Who owns the callback ("" = unassigned).
        queue: The queue (default: the terms').
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return MissedCall(
        call_id=call_id, missed_at=as_utc(missed_at), kind=kind, caller=caller, source=metadata.get("source", ""),
        campaign=metadata.get("campaign", ""), metadata=dict(metadata), intent=terms.intent,
        buying_intent=None if scores is None else round(float(scores.buying_intent), 6),
        signals=() if scores is None else tuple(s.name for s in scores.signals if s.present),
        priority=terms.priority, sla_seconds=terms.sla_seconds, due_at=terms.due_at, owner=owner,
        queue=queue or terms.queue)


def callback_due_event(missed: MissedCall) -> dict[str, Any] | None:
    """The ``callback_due`` event a CRM gets for a missed call that is owed a callback (None when none is).

    :meth:`serving.scoring.Scoring.log_missed` publishes it as the ``callback_due`` webhook event
    (``Scoring.publish``; the policy's ``webhooks:`` rules say where it goes) for every missed call
    logged with an SLA; :meth:`CallbackLog.due` lists the overdue ones.
    """
    if missed.due_at is None:
        return None
    return {"type": "callback_due", "call_id": missed.call_id, "kind": missed.kind, "caller": missed.caller,
            "missed_at": _iso(missed.missed_at), "due_at": _iso(missed.due_at), "priority": missed.priority,
            "sla_seconds": missed.sla_seconds, "intent": missed.intent, "buying_intent": missed.buying_intent,
            "signals": list(missed.signals), "source": missed.source, "campaign": missed.campaign,
            "owner": missed.owner, "queue": missed.queue}


class CallbackLog:
    """Missed calls and callback attempts in a call log's database (the tables of ``store.py``).

    Args:
        store: The open call log.
    """

    def __init__(self, store: CallLogStore) -> None:
        self.store = store

    # -- writes ----------------------------------------------------------------------------------

    def record_missed(self, missed: MissedCall) -> str:
        """Log a missed call; a second report for the same id replaces the first (a voicemail
        scored after the missed-call report gives it its intent and terms).

        Returns:
            ``created`` or ``replaced``.
        """
        from serving.calllog.store import missed_calls

        row = _missed_row(missed)
        statement = self.store._insert(missed_calls)
        statement = statement.on_conflict_do_update(
            index_elements=[missed_calls.c.call_id],
            set_={c.name: statement.excluded[c.name] for c in missed_calls.columns if c.name != "call_id"})
        with self.store.engine.begin() as connection:
            existed = connection.execute(sa.select(sa.literal(1)).where(
                missed_calls.c.call_id == missed.call_id)).first() is not None
            connection.execute(statement, [row])
        return "replaced" if existed else "created"

    def record_attempt(self, attempt: CallbackAttempt) -> tuple[str, CallbackAttempt, bool]:
        """Record a callback attempt once per (call, time, agent); a retry is idempotent.

        Returns:
            ``(status, recorded, missed_logged)``: status ``created``, ``unchanged`` (the same
            report again) or ``conflict`` (a different report for that call, time and agent is
            recorded: nothing changed); the recorded attempt; whether the call is logged as missed.
        """
        from serving.calllog.store import callback_attempts, missed_calls

        row = {"call_id": attempt.call_id, "attempted_at": as_utc(attempt.attempted_at),
               "connected": attempt.connected, "agent": attempt.agent, "outcome": attempt.outcome,
               "received_at": as_utc(attempt.received_at)}
        key = sa.and_(callback_attempts.c.call_id == attempt.call_id,
                      callback_attempts.c.attempted_at == row["attempted_at"],
                      callback_attempts.c.agent == attempt.agent)
        statement = self.store._insert(callback_attempts).values(row).on_conflict_do_nothing(
            index_elements=[callback_attempts.c.call_id, callback_attempts.c.attempted_at, callback_attempts.c.agent]
        ).returning(callback_attempts.c.id)
        with self.store.engine.begin() as connection:
            inserted = connection.execute(statement).first() is not None
            stored = _attempt(connection.execute(sa.select(callback_attempts).where(key)).mappings().one())
            logged = connection.execute(sa.select(sa.literal(1)).where(
                missed_calls.c.call_id == attempt.call_id)).first() is not None
        if inserted:
            return "created", stored, logged
        return ("unchanged" if stored.same_report(attempt) else "conflict"), stored, logged

    # -- reads -----------------------------------------------------------------------------------

    def get(self, call_id: str) -> MissedCallEntry | None:
        """The missed call with its attempts and outcome, or None when it was not logged as missed."""
        entries = self._entries(lambda q, t: q.where(t.c.call_id == call_id))
        return entries[0] if entries else None

    def attempts(self, call_id: str) -> list[CallbackAttempt]:
        """A call's callback attempts, oldest first (whether or not it is logged as missed)."""
        from serving.calllog.store import callback_attempts

        query = sa.select(callback_attempts).where(callback_attempts.c.call_id == call_id) \
            .order_by(callback_attempts.c.attempted_at, callback_attempts.c.id)
        with self.store.engine.connect() as connection:
            return [_attempt(r) for r in connection.execute(query).mappings()]

    def entries(self, since: dt.datetime | None = None, until: dt.datetime | None = None) -> list[MissedCallEntry]:
        """Missed calls with ``since <= missed_at < until``, oldest first, with attempts and outcomes."""

        def window(query: Any, table: sa.Table) -> Any:
            if since is not None:
                query = query.where(table.c.missed_at >= as_utc(since))
            if until is not None:
                query = query.where(table.c.missed_at < as_utc(until))
            return query

        return self._entries(window)

    def due(self, now: dt.datetime) -> list[MissedCallEntry]:
        """Callbacks past their deadline (``due_at <= now``) with no attempt yet, most urgent first."""
        from serving.calllog.store import callback_attempts

        def overdue(query: Any, table: sa.Table) -> Any:
            return query.where(table.c.due_at.is_not(None), table.c.due_at <= as_utc(now),
                               ~sa.exists().where(callback_attempts.c.call_id == table.c.call_id))

        return sorted(self._entries(overdue), key=lambda e: (e.missed.priority or 0, e.missed.due_at))

    def _entries(self, where: Any) -> list[MissedCallEntry]:
        from serving.calllog.store import _outcome, callback_attempts, missed_calls, outcomes

        query = where(sa.select(missed_calls), missed_calls).order_by(missed_calls.c.missed_at, missed_calls.c.call_id)
        with self.store.engine.connect() as connection:
            missed = [_missed(r) for r in connection.execute(query).mappings()]
            if not missed:
                return []
            ids = [m.call_id for m in missed]
            attempts: dict[str, list[CallbackAttempt]] = {}
            found_outcomes: dict[str, Outcome] = {}
            for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
                for row in connection.execute(sa.select(callback_attempts).where(
                        callback_attempts.c.call_id.in_(chunk)).order_by(callback_attempts.c.attempted_at,
                                                                          callback_attempts.c.id)).mappings():
                    attempts.setdefault(row["call_id"], []).append(_attempt(row))
                for row in connection.execute(sa.select(outcomes).where(outcomes.c.call_id.in_(chunk))).mappings():
                    found_outcomes[row["call_id"]] = _outcome(row)
        return [MissedCallEntry(m, tuple(attempts.get(m.call_id, ())), found_outcomes.get(m.call_id)) for m in missed]


def _missed_row(missed: MissedCall) -> dict[str, Any]:
    return {"call_id": missed.call_id, "missed_at": as_utc(missed.missed_at), "kind": missed.kind,
            "caller": missed.caller, "source": missed.source, "campaign": missed.campaign,
            "call_metadata": dict(missed.metadata), "intent": missed.intent, "buying_intent": missed.buying_intent,
            "signals": list(missed.signals), "priority": missed.priority, "sla_seconds": missed.sla_seconds,
            "due_at": None if missed.due_at is None else as_utc(missed.due_at), "owner": missed.owner,
            "queue": missed.queue, "logged_at": as_utc(missed.logged_at)}


def _missed(row: Any) -> MissedCall:
    return MissedCall(
        call_id=row["call_id"], missed_at=row["missed_at"], kind=row["kind"], caller=row["caller"],
        source=row["source"], campaign=row["campaign"], metadata=dict(row["call_metadata"]), intent=row["intent"],
        buying_intent=row["buying_intent"], signals=tuple(row["signals"]), priority=row["priority"],
        sla_seconds=row["sla_seconds"], due_at=row["due_at"], owner=row["owner"], queue=row["queue"],
        logged_at=row["logged_at"])


def _attempt(row: Any) -> CallbackAttempt:
    return CallbackAttempt(call_id=row["call_id"], attempted_at=row["attempted_at"], connected=bool(row["connected"]),
                           agent=row["agent"], outcome=row["outcome"], received_at=row["received_at"])


__all__: Sequence[str] = ["KINDS", "CallbackAttempt", "CallbackLog", "MissedCall", "MissedCallEntry",
                          "callback_due_event", "missed_call", "missed_call_intent"]
