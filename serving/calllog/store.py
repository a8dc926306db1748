"""The decision log's tables and read/write API (SQLAlchemy 2 Core; SQLite or PostgreSQL by URL).

The tables, created and upgraded by the Alembic scripts in ``serving/calllog/migrations``
(:meth:`CallLogStore.migrate` runs ``upgrade head``; the service does it at start):

``calls``                one row per call id (scoring the same id again replaces it: the latest scoring wins)
``outcomes``             one row per call id, written once (see :meth:`CallLogStore.record_outcome`)
``outcome_corrections``  every deliberate change of an outcome
``missed_calls``         a missed call or voicemail with its callback terms (``serving.calllog.callbacks``)
``callback_attempts``    each callback attempt of a call (attempted and connected kept apart)
``webhook_deliveries``   the webhook outbox: one row per (event, endpoint), written with the call
                         records (:meth:`CallLogStore.write_calls`), delivered by ``serving.webhooks``

A missed call counts as logged for its outcome (it is not an orphan).

``outcomes`` has no foreign key on purpose: a CRM may report an outcome before the call's record
is written (or for a call this service never scored). Such an outcome is an *orphan* until a call
with its id is logged; the two are joined when read, so reconciliation needs no extra step and
cannot be missed. Times are stored as naive UTC on both backends.

SQLite runs in WAL mode (readers — the report, ``GET /calls`` — never block the writer) with a
busy timeout, so several worker processes can share one file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from callintent.errors import UserError
from serving.calllog.records import CallRecord, LoggedCall, Outcome, SignalValue, WebhookEvent, as_utc

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Alembic's version table, named so the log can share a PostgreSQL database with other apps.
VERSION_TABLE = "calllog_alembic_version"

metadata = sa.MetaData()

#: Column sizes shared with the migrations (a change here needs a new migration).
CALL_ID_LENGTH = 128
TEXT_LENGTH = 256
IDEMPOTENCY_KEY_LENGTH = 160

calls = sa.Table(
    "calls", metadata,
    sa.Column("call_id", sa.String(CALL_ID_LENGTH), primary_key=True),
    sa.Column("logged_at", sa.DateTime(), nullable=False, index=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("source", sa.String(TEXT_LENGTH), nullable=False, index=True),
    sa.Column("campaign", sa.String(TEXT_LENGTH), nullable=False, index=True),
    sa.Column("call_metadata", sa.JSON(), nullable=False),
    sa.Column("model", sa.String(CALL_ID_LENGTH), nullable=False),
    sa.Column("label", sa.String(32), nullable=False),
    sa.Column("probabilities", sa.JSON(), nullable=False),
    sa.Column("buying_intent", sa.Float(), nullable=False),
    sa.Column("signals", sa.JSON(), nullable=False),
    sa.Column("route", sa.String(32), nullable=False),
    sa.Column("decision_label", sa.String(32), nullable=False),
    sa.Column("confidence", sa.Float(), nullable=False),
    sa.Column("reasons", sa.JSON(), nullable=False),
    sa.Column("segment", sa.String(TEXT_LENGTH), nullable=False),
    sa.Column("decision_seconds", sa.Float(), nullable=True),
    sa.Column("early", sa.Boolean(), nullable=False),
    sa.Column("audio_seconds", sa.Float(), nullable=True),
    sa.Column("transcript", sa.Text(), nullable=True),
    sa.Column("transcript_mode", sa.String(16), nullable=False),
)

outcomes = sa.Table(
    "outcomes", metadata,
    sa.Column("call_id", sa.String(CALL_ID_LENGTH), primary_key=True),
    sa.Column("converted", sa.Boolean(), nullable=False),
    sa.Column("revenue", sa.Float(), nullable=True),
    sa.Column("disposition", sa.String(64), nullable=False),
    sa.Column("agent", sa.String(TEXT_LENGTH), nullable=False),
    sa.Column("queue", sa.String(TEXT_LENGTH), nullable=False),
    sa.Column("occurred_at", sa.DateTime(), nullable=False, index=True),
    sa.Column("received_at", sa.DateTime(), nullable=False),
)

#: Every deliberate change of a recorded outcome (``PUT /calls/{call_id}/outcome``): who asked why, and what it was.
outcome_corrections = sa.Table(
    "outcome_corrections", metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("call_id", sa.String(CALL_ID_LENGTH), nullable=False, index=True),
    sa.Column("corrected_at", sa.DateTime(), nullable=False),
    sa.Column("reason", sa.String(TEXT_LENGTH), nullable=False),
    sa.Column("previous", sa.JSON(), nullable=True),
    sa.Column("current", sa.JSON(), nullable=False),
)

#: Calls nobody answered (``POST /calls/missed``) and voicemails (``POST /score_audio`` kind=voicemail),
#: with the callback terms the policy gave them (``serving.calllog.callbacks``; migration 0004).
missed_calls = sa.Table(
    "missed_calls", metadata,
    sa.Column("call_id", sa.String(CALL_ID_LENGTH), primary_key=True),
    sa.Column("missed_at", sa.DateTime(), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("caller", sa.String(64), nullable=False),
    sa.Column("source", sa.String(TEXT_LENGTH), nullable=False, index=True),
    sa.Column("campaign", sa.String(TEXT_LENGTH), nullable=False),
    sa.Column("call_metadata", sa.JSON(), nullable=False),
    sa.Column("intent", sa.String(32), nullable=False),
    sa.Column("buying_intent", sa.Float(), nullable=True),
    sa.Column("signals", sa.JSON(), nullable=False),
    sa.Column("priority", sa.Integer(), nullable=True),
    sa.Column("sla_seconds", sa.Float(), nullable=True),
    sa.Column("due_at", sa.DateTime(), nullable=True, index=True),
    sa.Column("owner", sa.String(TEXT_LENGTH), nullable=False),
    sa.Column("queue", sa.String(TEXT_LENGTH), nullable=False),
    sa.Column("logged_at", sa.DateTime(), nullable=False),
)

#: Every callback attempt (``POST /calls/{call_id}/callbacks``); one per call, time and agent.
callback_attempts = sa.Table(
    "callback_attempts", metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("call_id", sa.String(CALL_ID_LENGTH), nullable=False, index=True),
    sa.Column("attempted_at", sa.DateTime(), nullable=False),
    sa.Column("connected", sa.Boolean(), nullable=False),
    sa.Column("agent", sa.String(TEXT_LENGTH), nullable=False),
    sa.Column("outcome", sa.String(64), nullable=False),
    sa.Column("received_at", sa.DateTime(), nullable=False),
    sa.UniqueConstraint("call_id", "attempted_at", "agent", name="uq_callback_attempts_call_time_agent"),
)


#: The webhook outbox: one row per (event, endpoint), written with the call records, delivered by
#: ``serving.webhooks`` (``serving/calllog/outbox.py`` reads and updates it). ``body`` is the exact JSON sent.
webhook_deliveries = sa.Table(
    "webhook_deliveries", metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("idempotency_key", sa.String(IDEMPOTENCY_KEY_LENGTH), nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("endpoint", sa.String(64), nullable=False),
    sa.Column("call_id", sa.String(CALL_ID_LENGTH), nullable=False, index=True),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
    sa.Column("last_attempt_at", sa.DateTime(), nullable=True),
    sa.Column("delivered_at", sa.DateTime(), nullable=True),
    sa.Column("last_status_code", sa.Integer(), nullable=True),
    sa.Column("last_error", sa.String(TEXT_LENGTH), nullable=True),
    sa.UniqueConstraint("idempotency_key", name="uq_webhook_deliveries_idempotency_key"),
    sa.Index("ix_webhook_deliveries_status_due", "status", "next_attempt_at"),
)


class CallLogError(UserError):
    """The call log cannot be opened (bad URL, missing driver); the message names the URL (no password)."""


@dataclass(frozen=True)
class OutcomeWrite:
    """What :meth:`CallLogStore.record_outcome` did.

    Attributes:
        status: ``created`` (first report), ``unchanged`` (the same report again: nothing
            changed) or ``conflict`` (a different outcome is already recorded: nothing changed).
        outcome: The outcome now recorded (for a conflict, the earlier one).
        call_logged: The call itself is in the log (False: the outcome is an orphan for now).
    """

    status: str
    outcome: Outcome
    call_logged: bool


def display_url(url: str) -> str:
    """The URL with its password masked (for logs and messages)."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid URL>"


class CallLogStore:
    """Read and write the decision log.

    Thread-safe (an engine with a connection pool); every method is one short transaction.

    Args:
        url: SQLAlchemy URL (``sqlite:///path/calls.db``, ``postgresql+psycopg://user@host/db``).

    Raises:
        CallLogError: the URL is malformed or names a backend whose driver is not installed.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)
        self.dialect = self.engine.dialect.name

    def __repr__(self) -> str:
        return f"CallLogStore({display_url(self.url)!r})"

    def close(self) -> None:
        self.engine.dispose()

    # -- schema ----------------------------------------------------------------------------------

    def migrate(self) -> str:
        """Bring the schema to the newest version (Alembic ``upgrade head``).

        Returns:
            The revision the database is at.
        """
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        with self.engine.connect() as connection:
            revision = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}) \
                .get_current_revision()
        logger.info("call log %s at schema revision %s", display_url(self.url), revision)
        return revision or ""

    # -- writes ----------------------------------------------------------------------------------

    def write_calls(self, records: Sequence[CallRecord | WebhookEvent]) -> int:
        """Insert call records, and the webhook events queued with them, in one transaction.

        A call id already logged is replaced (latest wins). Each event becomes one ``pending``
        outbox row per endpoint; an event already in the outbox is left as it is (its idempotency
        key is unique), so writing a batch twice enqueues nothing twice.

        Args:
            records: Records and events in arrival order (a later record for the same id wins
                within the batch too).

        Returns:
            Call rows written plus events written.
        """
        # one row per id: PostgreSQL refuses to upsert a row twice
        latest = {r.call_id: r for r in records if isinstance(r, CallRecord)}
        events = [r for r in records if isinstance(r, WebhookEvent)]
        if not latest and not events:
            return 0
        with self.engine.begin() as connection:
            if latest:
                statement = self._insert(calls)
                statement = statement.on_conflict_do_update(
                    index_elements=[calls.c.call_id],
                    set_={c.name: statement.excluded[c.name] for c in calls.columns if c.name != "call_id"})
                connection.execute(statement, [_call_row(r) for r in latest.values()])
            outbox_rows = [_delivery_row(event, endpoint) for event in events for endpoint in event.endpoints]
            if outbox_rows:
                connection.execute(self._insert(webhook_deliveries).on_conflict_do_nothing(
                    index_elements=[webhook_deliveries.c.idempotency_key]), outbox_rows)
        return len(latest) + len(events)

    def record_outcome(self, outcome: Outcome) -> OutcomeWrite:
        """Record a call's outcome once; reporting it again is idempotent.

        The first report for a call id is stored. The same report again changes nothing
        (``unchanged``); a *different* report changes nothing either and comes back as
        ``conflict`` with the recorded one, so a CRM retry can never flip a conversion silently.

        Args:
            outcome: The reported outcome (``received_at`` is set by the caller).

        Returns:
            What happened, the recorded outcome and whether the call is logged.
        """
        statement = self._insert(outcomes).values(_outcome_row(outcome)) \
            .on_conflict_do_nothing(index_elements=[outcomes.c.call_id]).returning(outcomes.c.call_id)
        with self.engine.begin() as connection:
            inserted = connection.execute(statement).first() is not None  # RETURNING: a row only when inserted
            stored = _outcome(connection.execute(
                sa.select(outcomes).where(outcomes.c.call_id == outcome.call_id)).mappings().one())
            call_logged = _is_logged(connection, outcome.call_id)
        if inserted:
            status = "created"
        else:
            status = "unchanged" if stored.same_report(outcome) else "conflict"
        return OutcomeWrite(status, stored, call_logged)

    def purge(self, before: dt.datetime, *, dry_run: bool = False) -> tuple[int, int]:
        """Delete what is older than the retention policy allows: calls logged before ``before``,
        their outcomes, missed calls from before it with their callback attempts, orphan outcomes
        (no logged call) received before it, and webhook deliveries (any status) of events created
        before it.

        Args:
            before: Naive UTC cut-off (exclusive).
            dry_run: Count only; delete nothing.

        Returns:
            ``(calls, outcomes)`` deleted (or that would be).
        """
        old_calls = sa.select(calls.c.call_id).where(calls.c.logged_at < before)
        old_missed = sa.select(missed_calls.c.call_id).where(missed_calls.c.missed_at < before)
        doomed_outcomes = sa.or_(
            outcomes.c.call_id.in_(old_calls), outcomes.c.call_id.in_(old_missed),
            sa.and_(outcomes.c.received_at < before, ~sa.exists().where(calls.c.call_id == outcomes.c.call_id),
                    ~sa.exists().where(missed_calls.c.call_id == outcomes.c.call_id)))
        # Callback attempts go with their missed call (it holds the caller's number), or by age when it has none.
        doomed_attempts = sa.or_(
            callback_attempts.c.call_id.in_(old_missed),
            sa.and_(callback_attempts.c.attempted_at < before,
                    ~sa.exists().where(missed_calls.c.call_id == callback_attempts.c.call_id)))
        with self.engine.begin() as connection:
            n_calls = int(connection.execute(sa.select(sa.func.count()).select_from(old_calls.subquery())).scalar_one())
            n_outcomes = int(connection.execute(
                sa.select(sa.func.count()).select_from(outcomes).where(doomed_outcomes)).scalar_one())
            if not dry_run:
                # Corrections and outcomes first: their conditions read the rows that are about to go.
                connection.execute(sa.delete(outcome_corrections).where(
                    outcome_corrections.c.call_id.in_(sa.select(outcomes.c.call_id).where(doomed_outcomes))))
                connection.execute(sa.delete(outcomes).where(doomed_outcomes))
                connection.execute(sa.delete(callback_attempts).where(doomed_attempts))
                connection.execute(sa.delete(missed_calls).where(missed_calls.c.missed_at < before))
                connection.execute(sa.delete(calls).where(calls.c.logged_at < before))
                # Webhook bodies hold the call's record (its transcript too): they go with it.
                connection.execute(sa.delete(webhook_deliveries).where(webhook_deliveries.c.created_at < before))
        logger.info("call log %s: %s %d calls and %d outcomes from before %s", display_url(self.url),
                    "would delete" if dry_run else "deleted", n_calls, n_outcomes, before.isoformat(sep=" "))
        return n_calls, n_outcomes

    def correct_outcome(self, outcome: Outcome, reason: str) -> tuple[Outcome | None, bool]:
        """Replace a call's recorded outcome on purpose (a cancelled sale, a wrong disposition).

        The outcome is written whatever was recorded before, and the change is kept in
        ``outcome_corrections`` (time, reason, previous and new outcome).

        Args:
            outcome: The outcome as it should be (``received_at`` is the correction's time).
            reason: Why (kept with the change).

        Returns:
            ``(previous, call_logged)``: the outcome it replaced (None when there was none) and
            whether the call is in the log.
        """
        row = _outcome_row(outcome)
        with self.engine.begin() as connection:
            found = connection.execute(
                sa.select(outcomes).where(outcomes.c.call_id == outcome.call_id)).mappings().first()
            previous = _outcome(found) if found else None
            if previous is None:
                connection.execute(sa.insert(outcomes).values(row))
            else:
                connection.execute(sa.update(outcomes).where(outcomes.c.call_id == outcome.call_id).values(row))
            connection.execute(sa.insert(outcome_corrections).values(
                call_id=outcome.call_id, corrected_at=outcome.received_at, reason=reason,
                previous=previous.to_json() if previous else None, current=outcome.to_json()))
            call_logged = _is_logged(connection, outcome.call_id)
        return previous, call_logged

    def corrections(self, call_id: str) -> list[dict[str, Any]]:
        """The corrections of a call's outcome, oldest first (``corrected_at``, ``reason``, ``previous``, ``current``)."""
        query = sa.select(outcome_corrections).where(outcome_corrections.c.call_id == call_id) \
            .order_by(outcome_corrections.c.id)
        with self.engine.connect() as connection:
            return [{"corrected_at": r["corrected_at"].isoformat(timespec="seconds") + "Z", "reason": r["reason"],
                     "previous": r["previous"], "current": r["current"]}
                    for r in connection.execute(query).mappings()]

    # -- reads -----------------------------------------------------------------------------------

    def get(self, call_id: str) -> LoggedCall | None:
        """The call and its outcome (either may be None), or None when the id is unknown to both."""
        with self.engine.connect() as connection:
            call = connection.execute(sa.select(calls).where(calls.c.call_id == call_id)).mappings().first()
            outcome = connection.execute(
                sa.select(outcomes).where(outcomes.c.call_id == call_id)).mappings().first()
        if call is None and outcome is None:
            return None
        return LoggedCall(call_id, _call(call) if call else None, _outcome(outcome) if outcome else None)

    def calls(self, since: dt.datetime | None = None, until: dt.datetime | None = None) -> list[LoggedCall]:
        """Logged calls with ``since <= logged_at < until`` and their outcomes, oldest first."""
        return list(self.iter_calls(since, until))

    def iter_calls(self, since: dt.datetime | None = None, until: dt.datetime | None = None,
                   *, with_transcript: bool = False) -> Iterator[LoggedCall]:
        """Like :meth:`calls`, streamed (``with_transcript``: only calls whose transcript was logged)."""
        query = sa.select(calls, *[c.label(f"o_{c.name}") for c in outcomes.columns]).select_from(
            calls.outerjoin(outcomes, outcomes.c.call_id == calls.c.call_id))
        query = _window(query, calls.c.logged_at, since, until).order_by(calls.c.logged_at, calls.c.call_id)
        if with_transcript:
            query = query.where(calls.c.transcript.is_not(None))
        with self.engine.connect() as connection:
            for row in connection.execution_options(yield_per=500).execute(query).mappings():
                outcome = None
                if row["o_call_id"] is not None:
                    outcome = _outcome({c.name: row[f"o_{c.name}"] for c in outcomes.columns})
                yield LoggedCall(row["call_id"], _call(row), outcome)

    def orphan_outcomes(self, since: dt.datetime | None = None,
                        until: dt.datetime | None = None) -> list[Outcome]:
        """Outcomes whose call is not in the log (neither scored nor missed), with ``since <= occurred_at < until``."""
        query = sa.select(outcomes).where(~sa.exists().where(calls.c.call_id == outcomes.c.call_id),
                                          ~sa.exists().where(missed_calls.c.call_id == outcomes.c.call_id))
        query = _window(query, outcomes.c.occurred_at, since, until).order_by(outcomes.c.occurred_at)
        with self.engine.connect() as connection:
            return [_outcome(row) for row in connection.execute(query).mappings()]

    def count_calls(self, call_id_prefix: str = "") -> int:
        """Calls in the log (those whose id starts with ``call_id_prefix``, when given)."""
        query = sa.select(sa.func.count()).select_from(calls)
        if call_id_prefix:
            query = query.where(calls.c.call_id.startswith(call_id_prefix, autoescape=True))
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    # -- internals -------------------------------------------------------------------------------

    def _insert(self, table: sa.Table) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:  # pragma: no cover - _engine refuses other backends
            raise CallLogError(f"unsupported call log backend {self.dialect!r}")
        return insert(table)


def _engine(url: str) -> Engine:
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as e:
        raise CallLogError(f"call_log.url {url!r} is not a database URL ({e}); use sqlite:///path/calls.db "
                           "or postgresql+psycopg://user@host/dbname") from None
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we ship (extra `postgres`)
    try:
        if backend == "sqlite":
            return _sqlite_engine(parsed)
        if backend == "postgresql":
            # pre_ping: a connection the server dropped (restart, failover) is replaced, not failed on.
            return sa.create_engine(parsed, pool_pre_ping=True, pool_size=4, max_overflow=4,
                                    connect_args={"connect_timeout": 5})
    except ImportError as e:
        raise CallLogError(f"call_log.url {display_url(url)}: the database driver is not installed ({e}); "
                           "pip install 'callintent[postgres]'") from None
    raise CallLogError(f"call_log.url {display_url(url)}: only sqlite and postgresql are supported")


def _sqlite_engine(parsed: sa.URL) -> Engine:
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")      # readers never block the writer
        cursor.execute("PRAGMA synchronous=NORMAL")    # durable at checkpoints; safe with WAL
        cursor.execute("PRAGMA busy_timeout=30000")    # several workers may write one file
        cursor.close()

    return engine


def _is_logged(connection: sa.Connection, call_id: str) -> bool:
    """The call is in the log: scored, or logged as missed."""
    return connection.execute(sa.select(sa.literal(1)).where(sa.or_(
        sa.exists().where(calls.c.call_id == call_id),
        sa.exists().where(missed_calls.c.call_id == call_id)))).first() is not None


def _window(query: Any, column: Any, since: dt.datetime | None, until: dt.datetime | None) -> Any:
    if since is not None:
        query = query.where(column >= as_utc(since))
    if until is not None:
        query = query.where(column < as_utc(until))
    return query


def _call_row(record: CallRecord) -> dict[str, Any]:
    row = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    row["call_metadata"] = dict(row.pop("metadata"))
    row["logged_at"] = as_utc(record.logged_at)
    row["probabilities"] = dict(record.probabilities)
    row["signals"] = [[s.name, s.probability, s.present] for s in record.signals]
    row["reasons"] = list(record.reasons)
    return row


def _call(row: Any) -> CallRecord:
    return CallRecord(
        call_id=row["call_id"], logged_at=row["logged_at"], channel=row["channel"], source=row["source"],
        campaign=row["campaign"], metadata=dict(row["call_metadata"]), model=row["model"], label=row["label"],
        probabilities=dict(row["probabilities"]), buying_intent=row["buying_intent"],
        signals=tuple(SignalValue(name, probability, bool(present)) for name, probability, present in row["signals"]),
        route=row["route"], decision_label=row["decision_label"], confidence=row["confidence"],
        reasons=tuple(row["reasons"]), segment=row["segment"], decision_seconds=row["decision_seconds"],
        early=bool(row["early"]), audio_seconds=row["audio_seconds"], transcript=row["transcript"],
        transcript_mode=row["transcript_mode"],
    )


def _delivery_row(event: WebhookEvent, endpoint: str) -> dict[str, Any]:
    return {"idempotency_key": event.idempotency_key(endpoint), "event_id": event.event_id,
            "event_type": event.type, "endpoint": endpoint, "call_id": event.call_id, "body": event.body,
            "status": "pending", "attempts": 0, "created_at": event.created_at, "next_attempt_at": event.created_at,
            "last_attempt_at": None, "delivered_at": None, "last_status_code": None, "last_error": None}


def _outcome_row(outcome: Outcome) -> dict[str, Any]:
    row = dataclasses.asdict(outcome)
    row["occurred_at"] = outcome.effective_at
    row["received_at"] = as_utc(outcome.received_at)
    return row


def _outcome(row: Any) -> Outcome:
    return Outcome(call_id=row["call_id"], converted=bool(row["converted"]), revenue=row["revenue"],
                   disposition=row["disposition"], agent=row["agent"], queue=row["queue"],
                   occurred_at=row["occurred_at"], received_at=row["received_at"])


def open_store(url: str, *, migrate: bool = True) -> CallLogStore:
    """Open the log at ``url`` and (by default) bring its schema to head — what the CLI tools use.

    Raises:
        CallLogError: bad URL or driver, or the database cannot be reached (the message says which).
    """
    store = CallLogStore(url)
    if migrate:
        try:
            store.migrate()
        except sa.exc.OperationalError as e:
            store.close()
            raise CallLogError(f"cannot open the call log {display_url(url)}: {e.orig or e}") from None
    return store


__all__: Iterable[str] = ["CallLogError", "CallLogStore", "OutcomeWrite", "callback_attempts", "calls", "display_url",
                          "metadata", "missed_calls", "open_store", "outcomes", "webhook_deliveries"]
