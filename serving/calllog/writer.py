"""Write-behind for the decision log: scoring hands records to a bounded queue, a thread writes them.

Scoring must never wait for the database, and a slow or unavailable database must never stop
scoring. So :meth:`CallLogWriter.submit` only puts the record on a bounded queue (microseconds;
when the queue is full the record is *dropped and counted*, never waited for), and one background
thread takes batches off the queue and writes each in one transaction:

* it gathers a batch for up to ``flush_seconds`` after the first record (fewer transactions);
* when the database is unavailable (connection refused, locked, timed out) it keeps the batch and
  retries with backoff (0.1 s doubling up to ``retry_max_seconds``); meanwhile the queue fills,
  and what does not fit is dropped and counted — memory stays bounded;
* a batch the database rejects for its content (not transient) is retried row by row, and only
  the rows that still fail are dropped (counted, logged with the call id);
* :meth:`CallLogWriter.close` (graceful shutdown) writes everything still queued, for at most
  ``drain_seconds``; what cannot be written by then is counted as dropped and logged.

Counters (also exported as Prometheus metrics by the service, see ``serving.metrics``):
written, dropped, errors (failed write attempts), queued (gauge).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from serving.calllog.records import CallRecord
    from serving.config import CallLogConfig

logger = logging.getLogger(__name__)

#: First retry delay after a failed write; doubles up to ``retry_max_seconds``.
FIRST_BACKOFF_SECONDS = 0.1
#: How often the idle thread looks whether it should stop.
_POLL_SECONDS = 0.25
#: Drops are logged at most this often (each one is counted).
_DROP_LOG_SECONDS = 10.0


class CallSink(Protocol):
    """What the writer needs from a store (``CallLogStore`` is one)."""

    def migrate(self) -> str:
        ...

    def write_calls(self, records: Sequence[CallRecord]) -> int:
        ...


@dataclass(frozen=True)
class WriterMetrics:
    """Prometheus objects the writer updates (any objects with ``inc(n)`` / ``set(v)``).

    Attributes:
        written: Records written.
        dropped: Records dropped (queue full, rejected rows, undrained at shutdown).
        errors: Failed write attempts (each retry counts).
        queued: Records waiting (gauge).
    """

    written: Any
    dropped: Any
    errors: Any
    queued: Any


@dataclass(frozen=True)
class WriterStats:
    """Counters since start. Attributes: written, dropped, errors, queued."""

    written: int
    dropped: int
    errors: int
    queued: int


class CallLogWriter:
    """The write-behind queue and its thread (started by the constructor).

    Args:
        store: Where records go.
        queue_size: Records waiting at most.
        batch_size: Records per transaction at most.
        flush_seconds: Batch gathering time after the first record.
        retry_max_seconds: Longest backoff between retries.
        metrics: Prometheus objects to update as well (optional).
        migrated: The store's schema is known to be at head; else the thread migrates first
            (with the same retries: a database that is down at start is waited for).
    """

    def __init__(self, store: CallSink, *, queue_size: int = 10000, batch_size: int = 200,
                 flush_seconds: float = 0.2, retry_max_seconds: float = 10.0, metrics: WriterMetrics | None = None,
                 migrated: bool = True) -> None:
        self.store = store
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.retry_max_seconds = retry_max_seconds
        self.metrics = metrics
        self._queue: queue.Queue[CallRecord] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._written = self._dropped = self._errors = 0
        self._migrated = migrated
        self._closing = threading.Event()
        self._deadline = float("inf")
        self._last_drop_log = 0.0
        self._thread = threading.Thread(target=self._run, name="call-log-writer", daemon=True)
        self._thread.start()

    # -- the scoring side ------------------------------------------------------------------------

    def submit(self, record: CallRecord) -> bool:
        """Queue a record for writing; never blocks.

        Returns:
            False when it was dropped (queue full, or the writer is closed).
        """
        if self._closing.is_set() and not self._thread.is_alive():
            self._drop(1, f"call {record.call_id}: the call log writer is closed")
            return False
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._drop(1, f"call {record.call_id}: the call log queue is full ({self._queue.maxsize} records "
                          "waiting; is the database slow or down?)")
            return False
        self._gauge()
        return True

    def stats(self) -> WriterStats:
        with self._lock:
            return WriterStats(self._written, self._dropped, self._errors, self._queue.qsize())

    def close(self, timeout: float = 15.0) -> WriterStats:
        """Write what is queued (for at most ``timeout`` seconds), then stop the thread. Idempotent.

        Returns:
            The final counters.
        """
        if not self._closing.is_set():
            self._deadline = time.monotonic() + timeout
            self._closing.set()
        self._thread.join(timeout + 2.0)
        stats = self.stats()
        logger.info("call log writer closed: %d written, %d dropped, %d failed writes", stats.written,
                    stats.dropped, stats.errors)
        return stats

    # -- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = FIRST_BACKOFF_SECONDS
        batch: list[CallRecord] = []
        while True:
            if not batch:
                batch = self._take()
                if not batch:
                    if self._closing.is_set():
                        return
                    continue
            try:
                if not self._migrated:
                    self.store.migrate()
                    self._migrated = True
                self._write(batch)
                batch = []
                backoff = FIRST_BACKOFF_SECONDS
            except Exception as e:  # noqa: BLE001 - classified below; the thread must outlive any one failure
                if not is_transient(e):  # e.g. a failed migration: a bug or a broken database, not a blip
                    logger.exception("call log write failed; %d records dropped", len(batch))
                    self._count_dropped(len(batch))
                    batch = []
                    continue
                with self._lock:
                    self._errors += 1
                if self.metrics is not None:
                    self.metrics.errors.inc()
                if self._closing.is_set() and time.monotonic() + backoff > self._deadline:
                    lost = len(batch) + self._discard_queue()
                    logger.error("shutdown: the call log database is still unavailable (%s); %d records not "
                                 "written", _reason(e), lost)
                    self._count_dropped(lost)
                    return
                logger.warning("call log write of %d records failed (%s); retrying in %.1f s", len(batch),
                               _reason(e), backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2.0, self.retry_max_seconds)

    def _take(self) -> list[CallRecord]:
        """The next batch: wait briefly for a first record, then gather for ``flush_seconds``."""
        closing = self._closing.is_set()
        try:
            first = self._queue.get(timeout=_POLL_SECONDS) if not closing else self._queue.get_nowait()
        except queue.Empty:
            return []
        batch = [first]
        end = time.monotonic() + (0.0 if closing else self.flush_seconds)
        while len(batch) < self.batch_size:
            remaining = end - time.monotonic()
            try:
                # Wait in short slices so a shutdown is noticed at once, not after flush_seconds.
                batch.append(self._queue.get(timeout=min(remaining, _POLL_SECONDS))
                             if remaining > 0 and not self._closing.is_set() else self._queue.get_nowait())
            except queue.Empty:
                if remaining <= 0 or self._closing.is_set():
                    break
        self._gauge()
        return batch

    def _write(self, batch: list[CallRecord]) -> None:
        try:
            self.store.write_calls(batch)
        except Exception as e:  # noqa: BLE001
            if is_transient(e) or len(batch) == 1:
                if is_transient(e):
                    raise
                self._reject(batch[0], e)
                return
            # Something in the batch is unwritable: write row by row so one bad record loses only itself.
            for record in batch:
                try:
                    self.store.write_calls([record])
                except Exception as row_error:  # noqa: BLE001
                    if is_transient(row_error):
                        raise
                    self._reject(record, row_error)
                else:
                    self._count_written(1)
            return
        self._count_written(len(batch))

    def _reject(self, record: CallRecord, error: Exception) -> None:
        logger.error("call %s could not be logged and is dropped: %s", record.call_id, _reason(error))
        self._count_dropped(1)

    # -- counters --------------------------------------------------------------------------------

    def _discard_queue(self) -> int:
        n = 0
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return n
            n += 1

    def _drop(self, n: int, message: str) -> None:
        self._count_dropped(n)
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_SECONDS:
            self._last_drop_log = now
            logger.warning("%s; dropped %d records so far (callintent_call_log_dropped_total)", message,
                           self.stats().dropped)

    def _count_dropped(self, n: int) -> None:
        with self._lock:
            self._dropped += n
        if self.metrics is not None and n:
            self.metrics.dropped.inc(n)
        self._gauge()

    def _count_written(self, n: int) -> None:
        with self._lock:
            self._written += n
        if self.metrics is not None:
            self.metrics.written.inc(n)

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.queued.set(self._queue.qsize())


def is_transient(error: Exception) -> bool:
    """A failure worth retrying: the database is unreachable, restarting, locked or slow."""
    import sqlalchemy.exc as sa_exc

    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
                              ConnectionError, TimeoutError))


def _reason(error: Exception) -> str:
    orig = getattr(error, "orig", None)
    return str(orig or error).strip().splitlines()[0] if str(orig or error).strip() else type(error).__name__


def start_call_log(config: CallLogConfig, url: str, metrics: WriterMetrics | None = None) -> CallLogWriter | None:
    """Open the configured log, migrate it and start the writer; None when ``enabled`` is false.

    A database that cannot be reached at start does not stop the service: the writer migrates it
    when it comes back (records queue meanwhile, within ``queue_size``).

    Args:
        config: ``ServeConfig.call_log``.
        url: The database URL (``ServeConfig.call_log_url()``: ``call_log.url``, else the
            default SQLite file in the registry root).
        metrics: Prometheus objects for the writer.

    Raises:
        CallLogError: a malformed URL or a missing driver (a configuration error: fail at start).
    """
    if not config.enabled:
        logger.info("call log disabled (call_log.enabled: false)")
        return None
    import sqlalchemy.exc as sa_exc

    from serving.calllog.store import CallLogStore, display_url

    store = CallLogStore(url)
    migrated = True
    try:
        store.migrate()
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as e:
        migrated = False
        logger.warning("call log %s is not reachable (%s); scoring goes on, records queue until it is",
                       display_url(url), _reason(e))
    logger.info("call log: %s (transcript %s, queue %d)", display_url(url), config.transcript, config.queue_size)
    return CallLogWriter(store, queue_size=config.queue_size, batch_size=config.batch_size,
                         flush_seconds=config.flush_seconds, retry_max_seconds=config.retry_max_seconds,
                         metrics=metrics, migrated=migrated)
