"""Webhook delivery: a background thread POSTs the outbox's due events, signed, with retries.

The path of an event::

    Scoring.publish(type, call_id, data, route, segment)      which endpoints: WebhookRoutes (policy file)
      -> WebhookEvent on the call-log writer's queue          written with the call records, one transaction
      -> webhook_deliveries rows (pending), one per endpoint   durable: a restart resumes them
      -> WebhookDeliverer thread: due rows, claim, POST (httpx), delivered | retry later | failed

Retries: after a failed attempt a row is due again ``first_retry_seconds`` later, doubling up to
``retry_max_seconds``; after ``max_attempts`` it is ``failed`` (kept, listed by
``GET /v1/webhooks/deliveries?status=failed``, sent again by ``callintent webhooks retry``).
Any answer but 2xx is a failure (a redirect too: it is not followed). While an endpoint fails,
the deliverer pauses *that endpoint* with the same backoff, so a dead CRM costs one attempt per
pause rather than one per queued event, and never delays the other endpoints.

At-least-once: a receiver that answers after the timeout, or a worker that dies between the
POST and recording it, means the same delivery again; the receiver dedupes by the
``Idempotency-Key`` header (``<event id>:<endpoint>``). Signing: :mod:`serving.webhook_signing`.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from serving.calllog.outbox import Delivery, Outbox
from serving.calllog.records import utc_now
from serving.webhook_signing import delivery_headers

if TYPE_CHECKING:
    import httpx

    from serving.calllog.store import CallLogStore
    from serving.config import WebhookConfig
    from serving.metrics import ServiceMetrics
    from serving.webhook_policy import WebhookRoutes

logger = logging.getLogger(__name__)

#: A claim outlives the attempt's timeout by this much before another worker may take the row.
LEASE_MARGIN_SECONDS = 30.0


@dataclass(frozen=True)
class Endpoint:
    """A receiver, ready to sign for. Attributes: name, url, secrets (the first signs; all are sent)."""

    name: str
    url: str
    secrets: tuple[bytes, ...]

    def __repr__(self) -> str:  # never the secrets
        return f"Endpoint({self.name!r}, {self.url!r})"


@dataclass(frozen=True)
class AttemptResult:
    """What one POST did. Attributes: ok, status_code (None: no answer), error ("" when ok), reason (metric label)."""

    ok: bool
    status_code: int | None
    error: str
    reason: str


def resolve_endpoints(config: WebhookConfig, environ: Mapping[str, str] | None = None) -> dict[str, Endpoint]:
    """The configured endpoints with their secrets read (from the environment or files) now.

    Raises:
        ConfigError: a secret variable is unset, a secret file unreadable, or a secret too short.
    """
    return {e.name: Endpoint(e.name, e.url, e.secrets(environ)) for e in config.endpoints}


def backoff_seconds(failures: int, config: WebhookConfig) -> float:
    """Wait after the ``failures``-th failed attempt in a row: first_retry × 2^(failures−1), capped."""
    return min(config.first_retry_seconds * 2.0 ** max(0, failures - 1), config.retry_max_seconds)


class WebhookDeliverer:
    """Delivers the outbox's due events to the configured endpoints.

    :meth:`deliver_due` runs one round (tests call it directly); :meth:`start` runs rounds on a
    daemon thread until :meth:`close`.

    Args:
        outbox: The outbox (call-log database).
        endpoints: By name; rows of an endpoint not configured here stay pending.
        config: Timeouts and retry policy.
        metrics: The service metrics to update (optional).
        client: The HTTP client (default: a new ``httpx.Client``, closed by :meth:`close`).
        now: Naive-UTC clock for the outbox's times.
    """

    def __init__(self, outbox: Outbox, endpoints: Mapping[str, Endpoint], config: WebhookConfig, *,
                 metrics: ServiceMetrics | None = None, client: httpx.Client | None = None,
                 now: Callable[[], dt.datetime] = utc_now) -> None:
        import httpx

        self.outbox = outbox
        self.endpoints = dict(endpoints)
        self.config = config
        self.metrics = metrics
        self._own_client = client is None
        self.client = client or httpx.Client(timeout=config.timeout_seconds, follow_redirects=False)
        self._now = now
        self._failures: dict[str, int] = {}          # consecutive failed attempts per endpoint
        self._paused_until: dict[str, dt.datetime] = {}
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one round -------------------------------------------------------------------------------

    def deliver_due(self) -> int:
        """Attempt every due delivery of the endpoints that are not paused (at most ``batch_size``).

        Returns:
            Attempts made (successful or not).
        """
        now = self._now()
        ready = [name for name in self.endpoints if self._paused_until.get(name, now) <= now]
        attempts = 0
        for candidate in self.outbox.due(now, self.config.batch_size, endpoints=ready):
            if self._closing.is_set():
                break
            now = self._now()
            if self._paused_until.get(candidate.endpoint, now) > now:
                continue  # its endpoint failed earlier in this round
            delivery = self.outbox.claim(candidate, now, self.config.timeout_seconds + LEASE_MARGIN_SECONDS)
            if delivery is None:
                continue  # another worker has it
            attempts += 1
            self._deliver(self.endpoints[delivery.endpoint], delivery)
        self._observe_backlog()
        return attempts

    def _deliver(self, endpoint: Endpoint, delivery: Delivery) -> None:
        result = self.attempt(endpoint, delivery)
        now = self._now()
        if result.ok:
            self.outbox.delivered(delivery, now, result.status_code or 200)
            self._failures.pop(endpoint.name, None)
            self._paused_until.pop(endpoint.name, None)
            if self.metrics is not None:
                self.metrics.webhook_delivered.labels(endpoint=endpoint.name, event=delivery.event_type).inc()
                self.metrics.webhook_lag.observe(max(0.0, (now - delivery.created_at).total_seconds()))
            logger.info("webhook %s -> %s delivered (attempt %d)", delivery.event_type, endpoint.name,
                        delivery.attempts, extra={"call_id": delivery.call_id})
            return
        failures = self._failures.get(endpoint.name, 0) + 1
        self._failures[endpoint.name] = failures
        self._paused_until[endpoint.name] = now + dt.timedelta(seconds=backoff_seconds(failures, self.config))
        give_up = delivery.attempts >= self.config.max_attempts
        retry_at = None if give_up else now + dt.timedelta(seconds=backoff_seconds(delivery.attempts, self.config))
        self.outbox.attempt_failed(delivery, error=result.error, status_code=result.status_code, retry_at=retry_at)
        if self.metrics is not None:
            self.metrics.webhook_failures.labels(endpoint=endpoint.name, reason=result.reason).inc()
            if give_up:
                self.metrics.webhook_gave_up.labels(endpoint=endpoint.name).inc()
        if give_up:
            logger.error("webhook %s -> %s failed %d times (%s); marked failed: `callintent webhooks retry` sends it "
                         "again", delivery.event_type, endpoint.name, delivery.attempts, result.error,
                         extra={"call_id": delivery.call_id})
        else:
            logger.warning("webhook %s -> %s attempt %d failed (%s); retrying in %.1f s", delivery.event_type,
                           endpoint.name, delivery.attempts, result.error, (retry_at - now).total_seconds(),
                           extra={"call_id": delivery.call_id})

    def attempt(self, endpoint: Endpoint, delivery: Delivery) -> AttemptResult:
        """POST one delivery, signed now; never raises for the receiver's or the network's failures."""
        import httpx

        body = delivery.body.encode("utf-8")
        headers = delivery_headers(endpoint.secrets, int(time.time()), body, idempotency_key=delivery.idempotency_key,
                                   event_type=delivery.event_type, attempt=delivery.attempts)
        try:
            response = self.client.post(endpoint.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return AttemptResult(False, None, f"timeout after {self.config.timeout_seconds:g} s", "timeout")
        except httpx.ConnectError as e:
            return AttemptResult(False, None, f"connect error: {e}", "connect")
        except httpx.HTTPError as e:
            return AttemptResult(False, None, f"{type(e).__name__}: {e}", "error")
        if 200 <= response.status_code < 300:
            return AttemptResult(True, response.status_code, "", "")
        return AttemptResult(False, response.status_code, f"HTTP {response.status_code}",
                             f"http_{response.status_code // 100}xx")

    def _observe_backlog(self) -> None:
        if self.metrics is None:
            return
        backlog = self.outbox.backlog(self._now())
        self.metrics.webhook_pending.set(backlog.pending)
        self.metrics.webhook_oldest_pending.set(backlog.oldest_seconds)

    # -- the thread ------------------------------------------------------------------------------

    def start(self) -> WebhookDeliverer:
        """Deliver on a daemon thread (every ``poll_seconds`` when idle, at once while there is more)."""
        self._thread = threading.Thread(target=self._run, name="webhook-deliverer", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float | None = None) -> None:
        """Stop after the attempt in flight (pending rows stay for the next start). Idempotent."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self.config.timeout_seconds + 2.0)
        if self._own_client:
            self.client.close()

    def _run(self) -> None:
        from serving.calllog.writer import is_transient

        while not self._closing.is_set():
            try:
                busy = self.deliver_due() >= self.config.batch_size
            except Exception as e:  # noqa: BLE001 - the thread must outlive a database outage or a bad row
                if is_transient(e):
                    logger.warning("webhook outbox unavailable (%s); retrying in %g s", e, self.config.poll_seconds)
                else:
                    logger.exception("webhook delivery round failed; retrying in %g s", self.config.poll_seconds)
                busy = False
            if not busy:
                self._closing.wait(self.config.poll_seconds)


def start_webhooks(config: WebhookConfig, routes: WebhookRoutes, store: CallLogStore | None, *,
                   metrics: ServiceMetrics | None = None,
                   environ: Mapping[str, str] | None = None) -> WebhookDeliverer | None:
    """Check the webhook configuration against the policy's rules and start delivering.

    Args:
        config: ``ServeConfig.webhooks``.
        routes: The policy file's ``webhooks:`` rules.
        store: The call log (None when it is off: then ``config`` must have no endpoints).
        metrics: Service metrics.
        environ: Where ``secret_env`` variables are read (default ``os.environ``).

    Returns:
        The running deliverer, or None when no endpoint is configured.

    Raises:
        ConfigError: a rule names an endpoint that is not configured, or a secret is missing.
    """
    if not config.enabled:
        if routes.rules:
            logger.warning("the policy has webhook rules but serve.yaml configures no webhooks.endpoints: none is sent")
        return None
    if store is None:
        raise ValueError("webhooks need the call log (its database holds the outbox)")
    routes.check_endpoints(e.name for e in config.endpoints)
    endpoints = resolve_endpoints(config, environ)
    unused = sorted(set(endpoints) - routes.endpoint_names)
    if unused:
        logger.warning("webhook endpoints %s get no events: no rule under webhooks: in the policy names them", unused)
    logger.info("webhooks: %s", ", ".join(f"{e.name} -> {e.url}" for e in endpoints.values()))
    return WebhookDeliverer(Outbox(store), endpoints, config, metrics=metrics).start()


__all__: list[Any] = ["AttemptResult", "Endpoint", "WebhookDeliverer", "backoff_seconds", "resolve_endpoints",
                      "start_webhooks"]
