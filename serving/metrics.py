"""Prometheus metrics of the service, served by BentoML's ``/metrics`` with its own.

BentoML runs workers with ``PROMETHEUS_MULTIPROC_DIR`` set *after* the service module is
imported, and ``prometheus_client`` picks single- or multi-process storage when it is first
imported; so the metrics are created by :func:`service_metrics` from the service's ``__init__``
(never at import), and gauges use the ``livesum`` multiprocess mode.

Names (all prefixed ``callintent_``):

* ``live_sessions_active`` (gauge), ``live_sessions_started_total``,
  ``live_sessions_refused_total{reason}`` (capacity, unauthorized, bad_start)
* ``live_sessions_ended_total{reason}`` (stop, idle, disconnect, shutdown, limit, error)
* ``decode_seconds`` (histogram): one live decode + score step
* ``asr_batch_size`` (histogram): live calls decoded together in one ASR batch
* ``score_batch_size`` (histogram): transcripts scored together in one model run (``/score``,
  ``/score_audio``; adaptive batching, :mod:`serving.batching`)
* ``update_latency_seconds`` (histogram): frame arrival → partial event sent
* ``time_to_decision_seconds`` (histogram): call audio time when the decision was made
* ``decisions_total{route,source}`` (source: score, score_audio, stream, twilio)
* ``requests_total{endpoint,status}``: every scoring request, errors included
* ``call_log_written_total``, ``call_log_dropped_total`` (queue full, unwritable, undrained at
  shutdown), ``call_log_errors_total`` (failed write attempts, retried), ``call_log_queued`` (gauge)
* ``webhook_deliveries_total{endpoint,event}``: webhook events delivered (2xx)
* ``webhook_failures_total{endpoint,reason}``: failed attempts (reason: ``http_4xx``, ``http_5xx``,
  ``http_3xx``, ``timeout``, ``connect``, ``error``); each is retried
* ``webhook_gave_up_total{endpoint}``: deliveries marked ``failed`` after ``max_attempts``
* ``webhook_lag_seconds`` (histogram): event created → delivered
* ``webhook_pending`` and ``webhook_oldest_pending_seconds`` (gauges): the outbox backlog now
* ``model_info{model,version}`` (gauge): 1 for the model version serving new calls and batches,
  0 for one it replaced (``serving.scoring.Scoring.swap``)
* ``model_swaps_total``: hot swaps to a new version of the watched alias (``serving.model_watch``)
* ``model_swap_failures_total``: versions refused because they failed to load (the old one kept serving)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 32)
_DECISION_BUCKETS = (1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 25.0, 30.0, 60.0)
_WEBHOOK_LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


@dataclass(frozen=True)
class ServiceMetrics:
    """The service's metric objects (``prometheus_client`` types)."""

    sessions_active: Any
    sessions_started: Any
    sessions_refused: Any
    sessions_ended: Any
    decode_seconds: Any
    asr_batch_size: Any
    score_batch_size: Any
    update_latency: Any
    time_to_decision: Any
    decisions: Any
    requests: Any
    call_log_written: Any
    call_log_dropped: Any
    call_log_errors: Any
    call_log_queued: Any
    webhook_delivered: Any
    webhook_failures: Any
    webhook_gave_up: Any
    webhook_lag: Any
    webhook_pending: Any
    webhook_oldest_pending: Any
    model_info: Any
    model_swaps: Any
    model_swap_failures: Any


@lru_cache(maxsize=1)
def service_metrics() -> ServiceMetrics:
    """Create (once per process) and return the metrics."""
    from prometheus_client import Counter, Gauge, Histogram

    return ServiceMetrics(
        sessions_active=Gauge("callintent_live_sessions_active", "Live calls being processed",
                              multiprocess_mode="livesum"),
        sessions_started=Counter("callintent_live_sessions_started", "Live calls admitted"),
        sessions_refused=Counter("callintent_live_sessions_refused", "Live calls refused at start",
                                 ["reason"]),
        sessions_ended=Counter("callintent_live_sessions_ended", "Live calls ended", ["reason"]),
        decode_seconds=Histogram("callintent_decode_seconds", "One live decode + score step",
                                 buckets=_LATENCY_BUCKETS),
        asr_batch_size=Histogram("callintent_asr_batch_size", "Live calls decoded together in one ASR batch",
                                 buckets=_BATCH_BUCKETS),
        score_batch_size=Histogram("callintent_score_batch_size",
                                   "Transcripts scored together in one model run (adaptive batching)",
                                   buckets=_BATCH_BUCKETS),
        update_latency=Histogram("callintent_update_latency_seconds",
                                 "Audio frame arrival to the partial event that includes it",
                                 buckets=_LATENCY_BUCKETS),
        time_to_decision=Histogram("callintent_time_to_decision_seconds",
                                   "Call audio seconds heard before the decision", buckets=_DECISION_BUCKETS),
        decisions=Counter("callintent_decisions", "Decisions made", ["route", "source"]),
        requests=Counter("callintent_requests", "Scoring requests by outcome", ["endpoint", "status"]),
        call_log_written=Counter("callintent_call_log_written", "Scored calls written to the call log"),
        call_log_dropped=Counter("callintent_call_log_dropped", "Scored calls the call log dropped "
                                                                "(queue full, unwritable, not drained at shutdown)"),
        call_log_errors=Counter("callintent_call_log_errors", "Failed call log writes (retried)"),
        call_log_queued=Gauge("callintent_call_log_queued", "Scored calls waiting to be written",
                              multiprocess_mode="livesum"),
        webhook_delivered=Counter("callintent_webhook_deliveries", "Webhook events delivered (2xx)",
                                  ["endpoint", "event"]),
        webhook_failures=Counter("callintent_webhook_failures", "Failed webhook attempts (retried)",
                                 ["endpoint", "reason"]),
        webhook_gave_up=Counter("callintent_webhook_gave_up", "Webhook deliveries marked failed after max_attempts",
                                ["endpoint"]),
        webhook_lag=Histogram("callintent_webhook_lag_seconds", "Webhook event created to delivered",
                              buckets=_WEBHOOK_LAG_BUCKETS),
        # Every worker reads the same outbox: the largest reading is the backlog, not their sum.
        webhook_pending=Gauge("callintent_webhook_pending", "Webhook deliveries waiting in the outbox",
                              multiprocess_mode="livemax"),
        webhook_oldest_pending=Gauge("callintent_webhook_oldest_pending_seconds",
                                     "Age of the oldest pending webhook delivery", multiprocess_mode="livemax"),
        # With several workers, a version is serving while any worker serves it (livemax, not livesum).
        model_info=Gauge("callintent_model_info", "1 for the model version serving new calls, 0 for a replaced one",
                         ["model", "version"], multiprocess_mode="livemax"),
        model_swaps=Counter("callintent_model_swaps", "Hot swaps to a new model version"),
        model_swap_failures=Counter("callintent_model_swap_failures",
                                    "Model versions refused because they failed to load (the old one kept serving)"),
    )


class RequestMetricsMiddleware:
    """Counts scoring requests by endpoint and status (``callintent_requests_total``).

    Args:
        app: The wrapped ASGI app.
        endpoints: The paths counted.
    """

    def __init__(self, app: Any, endpoints: Iterable[str]) -> None:
        self.app = app
        self.endpoints = frozenset(endpoints)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in self.endpoints:
            await self.app(scope, receive, send)
            return
        status = 500

        async def record(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            service_metrics().requests.labels(endpoint=scope["path"], status=str(status)).inc()
