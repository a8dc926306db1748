"""The webhook outbox: reading due deliveries, claiming them, recording what each attempt did.

Rows are written with the call records (:meth:`serving.calllog.store.CallLogStore.write_calls`);
this module is the delivery side, used by :class:`serving.webhooks.WebhookDeliverer`, the
``GET /v1/webhooks/deliveries`` route and ``callintent webhooks``.

A row is ``pending`` until an attempt succeeds (``delivered``) or ``max_attempts`` have failed
(``failed``; :meth:`Outbox.retry` makes it ``pending`` again). Several workers (or replicas) may
deliver from one database: an attempt first *claims* its row with one conditional ``UPDATE``
(moving ``next_attempt_at`` past the attempt's lease), so two workers never send the same row
at once; a worker that dies mid-attempt leaves the row due again when the lease ends. The
receiver may therefore see a delivery more than once (also after a timeout it answered late),
never zero times; it dedupes by the ``Idempotency-Key``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from serving.calllog.records import as_utc
from serving.calllog.store import TEXT_LENGTH, webhook_deliveries

if TYPE_CHECKING:
    from serving.calllog.store import CallLogStore

#: Delivery states.
STATUSES = ("pending", "delivered", "failed")

_t = webhook_deliveries


@dataclass(frozen=True)
class Delivery:
    """One (event, endpoint) row of the outbox.

    Attributes:
        id: Row id.
        idempotency_key: ``<event id>:<endpoint>`` (the ``Idempotency-Key`` header).
        event_id: The event.
        event_type: ``decision``, ``final``, ``callback_due``…
        endpoint: The endpoint name.
        call_id: The call the event is about.
        body: The JSON body sent.
        status: ``pending`` | ``delivered`` | ``failed``.
        attempts: Attempts made (claimed) so far.
        created_at: When the event happened (naive UTC).
        next_attempt_at: When it is due next (pending).
        last_attempt_at: When it was last tried.
        delivered_at: When an attempt succeeded.
        last_status_code: The receiver's last HTTP status (None: no answer).
        last_error: Why the last attempt failed (``HTTP 500``, ``timeout``, ``connect error…``).
    """

    id: int
    idempotency_key: str
    event_id: str
    event_type: str
    endpoint: str
    call_id: str
    body: str
    status: str
    attempts: int
    created_at: dt.datetime
    next_attempt_at: dt.datetime
    last_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        """The ``GET /v1/webhooks/deliveries`` form (no body: ``GET /calls/{id}`` has the call)."""
        return {"id": self.id, "idempotency_key": self.idempotency_key, "event_id": self.event_id,
                "event": self.event_type, "endpoint": self.endpoint, "call_id": self.call_id, "status": self.status,
                "attempts": self.attempts, "created_at": _iso(self.created_at),
                "next_attempt_at": _iso(self.next_attempt_at) if self.status == "pending" else None,
                "last_attempt_at": _iso(self.last_attempt_at), "delivered_at": _iso(self.delivered_at),
                "last_status_code": self.last_status_code, "last_error": self.last_error}


@dataclass(frozen=True)
class Backlog:
    """Pending deliveries now. Attributes: pending (rows), oldest_seconds (age of the oldest; 0 when none)."""

    pending: int
    oldest_seconds: float


class Outbox:
    """The delivery side of the outbox over a call-log store (thread-safe: each method is one transaction).

    Args:
        store: The call log (its engine; the schema must be at 0003 or later).
    """

    def __init__(self, store: CallLogStore) -> None:
        self.store = store
        self.engine = store.engine

    def due(self, now: dt.datetime, limit: int, *, endpoints: Iterable[str] | None = None) -> list[Delivery]:
        """Pending deliveries whose time has come, longest-waiting first (not claimed: see :meth:`claim`).

        Args:
            now: The time.
            limit: Rows at most.
            endpoints: Only these endpoints' rows (None: all).
        """
        query = sa.select(_t).where(_t.c.status == "pending", _t.c.next_attempt_at <= now)
        if endpoints is not None:
            query = query.where(_t.c.endpoint.in_(list(endpoints)))
        # Longest-waiting first: a row that just failed goes behind the others (no head-of-line starvation).
        query = query.order_by(_t.c.next_attempt_at, _t.c.id).limit(limit)
        with self.engine.connect() as connection:
            return [_delivery(row) for row in connection.execute(query).mappings()]

    def claim(self, delivery: Delivery, now: dt.datetime, lease_seconds: float) -> Delivery | None:
        """Take a due delivery for one attempt (counted), or None when another worker took it first.

        Args:
            delivery: A row from :meth:`due`.
            now: The attempt's time.
            lease_seconds: How long the claim holds: after it, the row is due again (a worker
                that died mid-attempt). Longer than the attempt's timeout.
        """
        lease_end = now + dt.timedelta(seconds=lease_seconds)
        statement = sa.update(_t).where(
            _t.c.id == delivery.id, _t.c.status == "pending", _t.c.next_attempt_at <= now,
        ).values(attempts=_t.c.attempts + 1, last_attempt_at=now, next_attempt_at=lease_end)
        with self.engine.begin() as connection:
            if connection.execute(statement).rowcount != 1:
                return None
            row = connection.execute(sa.select(_t).where(_t.c.id == delivery.id)).mappings().one()
        return _delivery(row)

    def delivered(self, delivery: Delivery, at: dt.datetime, status_code: int) -> None:
        """Record a successful attempt."""
        with self.engine.begin() as connection:
            connection.execute(sa.update(_t).where(_t.c.id == delivery.id, _t.c.status == "pending").values(
                status="delivered", delivered_at=at, last_status_code=status_code, last_error=None))

    def attempt_failed(self, delivery: Delivery, *, error: str, status_code: int | None,
                       retry_at: dt.datetime | None) -> None:
        """Record a failed attempt: due again at ``retry_at``, or ``failed`` when None (no attempts left)."""
        values: dict[str, Any] = {"last_error": error[:TEXT_LENGTH], "last_status_code": status_code}
        if retry_at is None:
            values["status"] = "failed"
        else:
            values["next_attempt_at"] = retry_at
        with self.engine.begin() as connection:
            connection.execute(sa.update(_t).where(_t.c.id == delivery.id, _t.c.status == "pending").values(**values))

    def deliveries(self, status: str | None = None, *, endpoint: str | None = None, call_id: str | None = None,
                   limit: int = 100) -> list[Delivery]:
        """The delivery log, newest first, filtered by status, endpoint and call."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {list(STATUSES)}, got {status!r}")
        query = sa.select(_t)
        if status is not None:
            query = query.where(_t.c.status == status)
        if endpoint is not None:
            query = query.where(_t.c.endpoint == endpoint)
        if call_id is not None:
            query = query.where(_t.c.call_id == call_id)
        with self.engine.connect() as connection:
            return [_delivery(r) for r in connection.execute(query.order_by(_t.c.id.desc()).limit(limit)).mappings()]

    def retry(self, now: dt.datetime, *, ids: Iterable[int] = (), endpoint: str | None = None,
              since: dt.datetime | None = None) -> int:
        """Make ``failed`` deliveries ``pending`` again, due now, with a fresh attempt budget.

        Args:
            now: Their new due time.
            ids: Only these rows (empty: every failed row that the other filters let through).
            endpoint: Only this endpoint's.
            since: Only events created at or after this time.

        Returns:
            Deliveries queued again.
        """
        statement = sa.update(_t).where(_t.c.status == "failed")
        ids = list(ids)
        if ids:
            statement = statement.where(_t.c.id.in_(ids))
        if endpoint is not None:
            statement = statement.where(_t.c.endpoint == endpoint)
        if since is not None:
            statement = statement.where(_t.c.created_at >= as_utc(since))
        with self.engine.begin() as connection:
            return int(connection.execute(statement.values(status="pending", attempts=0, next_attempt_at=now)).rowcount)

    def backlog(self, now: dt.datetime) -> Backlog:
        """How many deliveries are pending and how old the oldest is (the delivery lag)."""
        query = sa.select(sa.func.count(), sa.func.min(_t.c.created_at)).where(_t.c.status == "pending")
        with self.engine.connect() as connection:
            count, oldest = connection.execute(query).one()
        return Backlog(int(count), max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)


def _delivery(row: Any) -> Delivery:
    return Delivery(**{c.name: row[c.name] for c in _t.columns})


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat(timespec="milliseconds") + "Z"


__all__ = ["STATUSES", "Backlog", "Delivery", "Outbox"]
