"""callintent live scoring service (BentoML 1.4): ``bentoml serve serving.service:CallIntentService``.

HTTP surface (JSON; every error is ``{"error": {"code", "message"[, "fields"]}}``)::

    POST /score          {"transcript", "call_id"?, "metadata"?: {source, campaign, industry, …}}
                         -> {call_id, intent, probabilities, buying_intent, signals[{name, probability,
                             present, evidence[{start, end, text, score}]}], decision{route, label,
                             buying_intent, confidence, reasons, segment, audio_seconds, early},
                             transcript (PII redacted), model, timings_ms}
                         adaptively batched: concurrent requests share one model run (score_batch)
    POST /score_audio    multipart/form-data: file=<wav|flac|mp3|ogg…> [encoding=mulaw|pcm16,
                         sample_rate=8000, call_id, metadata=<JSON object>]; or a raw body
                         (Content-Type audio/* or application/octet-stream) with the same fields as
                         query parameters -> the /score result + words[{text, start, end, probability}],
                         audio_seconds, cut_seconds (the opening 30 s); kind=voicemail [caller,
                         missed_at, owner, queue]: also logged as a missed call -> + missed_call{…}
    WS   /v1/stream      {"type":"start","call_id","encoding":"pcm16"|"mulaw","sample_rate",
                         "metadata"} -> started; binary audio frames -> partial… decision; {"type":"stop"}
                         -> final, close 1000 (event format: serving/live_call.py; protocol: serving/sessions.py)
    WS   /v1/twilio      Twilio Media Streams (connected/start/media/stop, base64 μ-law 8 kHz,
                         customParameters = metadata, callSid = call_id); events are sent back as
                         JSON text (Twilio ignores them) and logged
    POST /calls/{call_id}/outcome   {"converted", "revenue"?, "disposition"?, "agent"?, "queue"?,
                         "occurred_at"?} -> 201 recorded | 200 same again | 202 call not logged (yet) |
                         409 a different outcome is recorded (serving/calllog/routes.py)
    GET  /calls/{call_id}  the logged call (scores, decision, transcript per call_log.transcript) + outcome
                         (+ missed, callbacks for a missed call)
    POST /calls/missed   {"caller", "missed_at"?, "call_id"?, "metadata"?, "owner"?, "queue"?} -> 201 the
                         missed call with its callback priority, SLA and due_at (serving/calllog/routes.py)
    POST /calls/{call_id}/callbacks  {"attempted_at", "connected", "agent"?, "outcome"?} -> 201 | 200 same
                         again | 202 call not logged as missed | 409 a different report for that time and agent
    GET  /v1/calls/live  the live floor: calls open now [?route=…&source=…] -> {calls: [LiveCallOut]}
    GET  /v1/calls/live/events            SSE: "floor" (the open calls), then "call" on every change and
                         "ended" when a call ends (each a LiveCallOut)
    GET  /v1/calls/{call_id}/events       SSE of one call: "call" (LiveCallOut, after every change), the
                         call's own events "started"/"partial"/"decision"/"final" (the /v1/stream
                         format, redacted), "waiting" until a call of that id starts; ends after the call
    POST /v1/calls/{call_id}/view-token   {"ttl_seconds"?} -> {token, scope, expires_at, url}: a signed,
    POST /v1/calls/live/view-token        short-lived read-only token for one call's feed and page (or the
                         floor's), so a browser never holds an API key (serving/view_tokens.py)
    GET  /live  /live/calls/{call_id}     the wallboard and the agent screen-pop (serving/live_pages.py)
    GET  /v1/webhooks/deliveries?status=pending|delivered|failed&endpoint=&call_id=&limit=
                         the webhook delivery log (serving/webhook_routes.py); events are POSTed to the
                         endpoints of serve.yaml ``webhooks`` as the policy's ``webhooks:`` says (serving/webhooks.py)
    GET  /livez /readyz /metrics /docs.json    BentoML: liveness, readiness, Prometheus, OpenAPI
                         (/docs.json includes /score and /score_audio; WebSockets are documented here);
                         /readyz is 200 once a model is loaded and until a shutdown drains, with
                         ``X-Callintent-Model: intent/v3`` (the version serving); /metrics has
                         ``callintent_model_info{model,version}``

Authentication (when API keys are configured, see serving/auth.py): ``Authorization: Bearer <key>``
on the scoring routes and WebSocket handshakes, or ``?token=<key>`` on WebSockets (and the
``token`` custom parameter on Twilio). The live feeds also take ``?token=<view token>``; the
pages need no credentials (they hold no data and pass their own ``?token=`` on to the feeds). Limits: serving/limits.py and ``ServeConfig.limits``.

This class is the HTTP contract: each route is one of its methods (BentoML class views on the
FastAPI app of :mod:`serving.app`), and the batching of ``/score`` is declared on
:meth:`CallIntentService.score_batch`. It loads once per worker what the routes share: the ONNX
predictor and the decision policy inside one :class:`serving.scoring.Scoring` (REST and live
calls score, decide, count and log through it), the speech recognizer, and the
:class:`serving.sessions.LiveContext` the live sessions get instead of the service. When
``model`` names a registry alias, :class:`serving.model_watch.ModelWatch` follows it and swaps
new versions into that scoring object while the service runs.
Errors: :mod:`serving.http_errors`; uploads: :mod:`serving.uploads`; logs: :mod:`serving.logs`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import os
import time
from datetime import datetime, timezone
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Literal

import bentoml
from fastapi import Depends, Request, Response, WebSocket
from fastapi.sse import EventSourceResponse, ServerSentEvent

from serving.app import ServingModelHeader, create_app
from serving.auth import ApiKeys
from serving.batching import batched
from serving.calllog.records import utc_now
from serving.config import ServeConfig, load_serve_config
from serving.http_errors import ERROR_RESPONSES, JsonErrorPages
from serving.limits import BodyLimitMiddleware
from serving.logs import configure_logging
from serving.live_floor import OVERFLOW
from serving.policy import ROUTES
from serving.schemas import (
    AudioScoreResponse, LiveFloorOut, ScoreRequest, ScoreResponse, ViewTokenOut, ViewTokenRequest,
    InvalidRequest, audio_score_response, json_response, live_call_out, score_response, valid_call_id,
)
from serving.scoring import ScoredCall, ScoreItem, ScoringFailed
from serving.sessions import GenericSession, LiveContext, LiveSettings, TwilioSession, install_drain
from serving.uploads import AUDIO_REQUEST_BODY, hear_upload, read_audio_upload
from serving.view_tokens import FLOOR_SCOPE, call_scope
from speech.asr import AsrConfig

if TYPE_CHECKING:
    from pathlib import Path

    from models.registry import Registry
    from serving.calllog.writer import CallLogWriter
    from serving.live_call import Transcriber
    from serving.scoring import Predictor
    from speech.asr import SpeechRecognizer

logger = logging.getLogger(__name__)

#: Resolved at import: BentoML reads batching and worker settings from the decorators.
CONFIG = load_serve_config()

#: The app the routes below are declared on (its middlewares and error contract: serving.app).
app = create_app(CONFIG, api_keys=lambda: bentoml.get_current_service().api_keys)


#: How long a browser's EventSource waits before reconnecting to a feed.
_RETRY_MS = 2000


def _check_view(request: Request, scope: str) -> None:
    """A feed request without an API key (the middleware deferred it) needs a view token for ``scope``."""
    if request.scope.get("state", {}).get("auth_deferred"):
        bentoml.get_current_service().view_tokens.check(request.query_params.get("token"), scope)


async def _floor_viewer(request: Request) -> None:
    _check_view(request, FLOOR_SCOPE)


async def _call_viewer(request: Request, call_id: str) -> None:
    _check_view(request, call_scope(call_id))


@bentoml.asgi_app(app, path="/")
@bentoml.service(
    name="callintent",
    workers=CONFIG.workers,
    traffic={"timeout": CONFIG.timeout_seconds},
    logging={"access": {"enabled": True, "skip_paths": ["/livez", "/readyz", "/healthz", "/metrics"]}},
)
class CallIntentService:
    """The live scoring service: loads the models once per worker and answers every route."""

    def __init__(self) -> None:
        from serving.calllog.writer import WriterMetrics, start_call_log
        from serving.metrics import service_metrics
        from speech.asr import SpeechRecognizer

        started = time.perf_counter()
        configure_logging(CONFIG)
        registry = CONFIG.open_registry()
        model_dir = registry.resolve(CONFIG.model)
        predictor = load_predictor(CONFIG, model_dir)
        metrics = service_metrics()
        # The decision log (None when call_log.enabled is false): scoring only queues records.
        call_log = start_call_log(CONFIG.call_log, CONFIG.call_log_url(), WriterMetrics(
            metrics.call_log_written, metrics.call_log_dropped, metrics.call_log_errors, metrics.call_log_queued))
        self.wire(CONFIG, predictor=predictor, asr=SpeechRecognizer(_asr_config(CONFIG)), call_log=call_log,
                  registry=registry)
        if not self.api_keys.enabled:
            logger.warning("no API keys configured: the scoring routes are open (set CALLINTENT_API_KEYS)")
        logger.info("callintent service ready in %.1f s: model %s (%s) from %s, ASR %s, %d API keys",
                    time.perf_counter() - started, predictor.model_id, CONFIG.variant, model_dir,
                    self.asr.model_path, len(self.api_keys))

    def wire(self, config: ServeConfig, *, predictor: Predictor, asr: SpeechRecognizer,
             call_log: CallLogWriter | None = None, live_asr: Transcriber | None = None,
             registry: Registry | None = None) -> None:
        """Build what the routes share from the loaded parts (tests wire fakes in through here).

        Args:
            config: The service config.
            predictor: The intent model.
            asr: The speech recognizer (uploads; live calls through a batcher over it).
            call_log: The call-log writer, or None.
            live_asr: What live calls transcribe with (default: a batcher over ``asr``).
            registry: Where ``predictor`` came from; when ``config.model`` is an alias, it is
                watched there (``model_watch_seconds``) and new versions swapped in. None = no watch.
        """
        from serving.asr_batcher import BatchingTranscriber
        from serving.auth import ApiKeySource
        from serving.limits import SessionSlots
        from serving.live_floor import LiveFloor
        from serving.metrics import service_metrics
        from serving.model_watch import watch_model
        from serving.callbacks import load_callback_policy
        from serving.policy import DecisionPolicy
        from serving.scoring import Scoring
        from serving.screen_pop import load_next_steps
        from serving.view_tokens import load_view_tokens
        from serving.webhook_policy import load_webhook_routes
        from serving.webhooks import start_webhooks

        self.config = config
        self.asr = asr
        self.call_log = call_log
        self.metrics = service_metrics()
        self.key_source = ApiKeySource(config.api_keys_file or None)  # re-reads key files on change
        policy = DecisionPolicy.from_yaml(config.policy or None, model_abstain_margin=predictor.meta.abstain_margin)
        self.next_steps = load_next_steps(config.policy or None)  # the screen-pop's line per route
        self.view_tokens, secret_configured = load_view_tokens()
        if not secret_configured and config.workers > 1:
            logger.warning("no view token secret set ($CALLINTENT_VIEW_TOKEN_SECRET): with %d workers a view token "
                           "opens pages only on the worker that minted it", config.workers)
        # Webhooks: the policy says which events go where, serve.yaml where that is; delivery runs
        # on its own thread from the outbox in the call-log database (serving/webhooks.py).
        webhook_routes = load_webhook_routes(config.policy or None)
        self.webhooks = start_webhooks(config.webhooks, webhook_routes, call_log.store if call_log else None,
                                       metrics=self.metrics)
        self.scoring = Scoring(predictor, policy, redact_pii=config.redact_pii, call_log=call_log,
                               transcript_mode=config.call_log.transcript,
                               callbacks=load_callback_policy(config.policy or None),  # missed calls' SLAs
                               webhooks=webhook_routes if self.webhooks is not None else None)
        # Blocking work of requests and live calls runs on its own bounded pool, so it never starves
        # request handling threads; a live step mostly waits for its ASR batch, so there is a
        # thread for every call that may be open.
        self.decode_pool = concurrent.futures.ThreadPoolExecutor(
            max(config.decode_workers, config.limits.max_live_sessions), thread_name_prefix="decode")
        # Live calls decode through one batcher: their pending clips run as one ASR batch.
        self.live_asr = live_asr or BatchingTranscriber(asr, max_batch=config.live_batch_size,
                                                        workers=config.decode_workers,
                                                        on_batch=self.metrics.asr_batch_size.observe)
        self.live = LiveContext(slots=SessionSlots(config.limits.max_live_sessions), decode_pool=self.decode_pool,
                                asr=self.live_asr, scoring=self.scoring, settings=LiveSettings.of(config),
                                api_keys=self.key_source.current, floor=LiveFloor(events_redacted=config.redact_pii))
        # New versions of the alias `model` names are loaded the way the first one was (load_predictor).
        self.model_watch = None if registry is None else watch_model(
            config.model, config.model_watch_seconds, registry, self.scoring,
            lambda model_dir: load_predictor(config, model_dir))

    @property
    def api_keys(self) -> ApiKeys:
        """The API keys accepted now (``serving.auth.ApiKeySource``: key files are re-read on change)."""
        return self.key_source.current()

    # -- the HTTP contract -------------------------------------------------------------------------

    @app.post("/score", response_model=ScoreResponse, responses=ERROR_RESPONSES)
    async def score(self, body: ScoreRequest) -> Response:
        """Score one opening transcript (adaptively batched with concurrent requests)."""
        started = time.perf_counter()
        limits = self.config.limits
        item = body.to_item(speaker_tags=self.scoring.speaker_tags, max_text_chars=limits.max_text_chars,
                            max_metadata_items=limits.max_metadata_items)
        scored = await self._score(item)
        return json_response(score_response(scored, timings_ms={"total": _ms_since(started)}))

    @app.post("/score_audio", response_model=AudioScoreResponse, responses=ERROR_RESPONSES,
              openapi_extra=AUDIO_REQUEST_BODY)
    async def score_audio(self, request: Request) -> Response:
        """Transcribe the opening 30 s of an audio file and score it."""
        started = time.perf_counter()
        upload = await read_audio_upload(request, self.config)
        voicemail = upload.voicemail
        if voicemail is not None and self.call_log is None:
            raise InvalidRequest("kind: a voicemail is logged as a missed call, and the call log is disabled on "
                                 "this server (call_log.enabled: false)", ["kind"])
        received_at = utc_now()
        heard = await hear_upload(upload, config=self.config, asr=self.asr, pool=self.decode_pool,
                                  speaker_tags=self.scoring.speaker_tags)
        scored = await self._score(ScoreItem(heard.text, upload.call_id, upload.metadata,
                                             channel="score_audio" if voicemail is None else "voicemail",
                                             audio_seconds=round(heard.transcript.audio_seconds, 3)))
        missed = None
        if voicemail is not None:  # the missed call, its intent from this scoring (serving.scoring.Scoring.log_missed)
            try:
                missed, _ = await asyncio.to_thread(
                    self.scoring.log_missed, upload.call_id, kind="voicemail",
                    missed_at=voicemail.missed_at or received_at, caller=voicemail.caller, metadata=upload.metadata,
                    owner=voicemail.owner, queue=voicemail.queue, voicemail=scored)
            except Exception as e:  # noqa: BLE001 - a database outage is a 503 (retry); anything else re-raises
                from serving.calllog.routes import unavailable_response

                return unavailable_response(e)
        return json_response(audio_score_response(scored, heard.transcript, redact_pii=self.config.redact_pii,
                                                  timings_ms={**heard.timings_ms, "total": _ms_since(started)},
                                                  missed_call=None if missed is None else missed.to_json()))

    @app.websocket("/v1/stream")
    async def stream(self, websocket: WebSocket) -> None:
        """A live call in the generic protocol (see :mod:`serving.sessions`)."""
        await GenericSession(self.live, websocket).run()

    @app.websocket("/v1/twilio")
    async def twilio(self, websocket: WebSocket) -> None:
        """A live call from Twilio Media Streams (see :mod:`serving.sessions`)."""
        await TwilioSession(self.live, websocket).run()

    # -- the live floor: subscriber feeds and view tokens (pages: serving/live_pages.py) -------------
    # The floor's routes come before /v1/calls/{call_id}/…: "live" names the floor, not a call.

    @app.get("/v1/calls/live", response_model=LiveFloorOut, responses=ERROR_RESPONSES,
             dependencies=[Depends(_floor_viewer)])
    async def live_calls(self, route: Literal[ROUTES + ("pending",)] | None = None,  # type: ignore[valid-type]
                         source: str | None = None) -> Response:
        """The calls open now, oldest first; ``route`` (``pending`` = not decided yet) and ``source`` filter."""
        calls = [live_call_out(c, self.next_steps) for c in self.live.floor.calls()]
        if route is not None:
            calls = [c for c in calls if (c.decision.route if c.decision else "pending") == route]
        if source is not None:
            calls = [c for c in calls if c.source.lower() == source.lower()]
        return json_response(LiveFloorOut(calls=calls))

    @app.get("/v1/calls/live/events", response_class=EventSourceResponse, responses=ERROR_RESPONSES,
             dependencies=[Depends(_floor_viewer)])
    async def live_floor_events(self) -> AsyncIterator[ServerSentEvent]:
        """SSE: ``floor`` (every open call), then ``call`` on each change and ``ended`` when a call ends."""
        floor = self.live.floor
        with floor.subscribe() as subscription:
            yield ServerSentEvent(event="floor", retry=_RETRY_MS, data=LiveFloorOut(
                calls=[live_call_out(c, self.next_steps) for c in floor.calls()]))
            while (item := await subscription.get()) is not OVERFLOW:
                kind, call = item
                yield ServerSentEvent(event=kind, data=live_call_out(call, self.next_steps))

    @app.post("/v1/calls/live/view-token", response_model=ViewTokenOut, responses=ERROR_RESPONSES)
    async def floor_view_token(self, body: ViewTokenRequest | None = None) -> Response:
        """A read-only token for the wallboard (and every call's screen-pop)."""
        return self._view_token(FLOOR_SCOPE, "/live", body)

    @app.get("/v1/calls/{call_id}/events", response_class=EventSourceResponse, responses=ERROR_RESPONSES,
             dependencies=[Depends(_call_viewer)])
    async def call_events(self, call_id: str) -> AsyncIterator[ServerSentEvent]:
        """SSE of one call: ``call`` summaries, its own events, ``waiting`` until it starts; ends with it."""
        floor = self.live.floor
        with floor.subscribe(call_id) as subscription:
            call = floor.get(call_id)
            if call is None:
                yield ServerSentEvent(event="waiting", retry=_RETRY_MS, data={"call_id": call_id})
            else:
                yield ServerSentEvent(event="call", retry=_RETRY_MS, data=live_call_out(call, self.next_steps))
                if call.ended:
                    return
            while (item := await subscription.get()) is not OVERFLOW:
                kind, payload = item
                if kind == "event":
                    yield ServerSentEvent(event=payload.type, id=str(payload.seq), data=payload.to_json())
                    continue
                yield ServerSentEvent(event="call", data=live_call_out(payload, self.next_steps))
                if kind == "ended":
                    return

    @app.post("/v1/calls/{call_id}/view-token", response_model=ViewTokenOut, responses=ERROR_RESPONSES)
    async def call_view_token(self, call_id: str, body: ViewTokenRequest | None = None) -> Response:
        """A read-only token for one call's screen-pop and feed (the call need not have started)."""
        if not valid_call_id(call_id):
            raise InvalidRequest("call_id must be letters, digits and . _ : - (at most 128 characters)", ["call_id"])
        return self._view_token(call_scope(call_id), f"/live/calls/{call_id}", body)

    def _view_token(self, scope: str, page: str, body: ViewTokenRequest | None) -> Response:
        minted = self.view_tokens.mint(scope, (body or ViewTokenRequest()).ttl_seconds)
        return json_response(ViewTokenOut(token=minted.token, scope=minted.scope, url=f"{page}?token={minted.token}",
                                          expires_at=datetime.fromtimestamp(minted.expires_at, tz=timezone.utc)))

    @batched(max_batch_size=CONFIG.batching.max_batch_size, max_latency_ms=CONFIG.batching.max_latency_ms,
             on_batch=lambda svc, size: svc.metrics.score_batch_size.observe(size))
    def score_batch(self, items: Sequence[ScoreItem]) -> list[ScoredCall | ScoringFailed]:
        """Score many transcripts in one model run; ``await self.score_batch(item)`` joins the next batch."""
        return self.scoring.score_items(items)

    async def _score(self, item: ScoreItem) -> ScoredCall:
        result = await self.score_batch(item)
        if isinstance(result, ScoringFailed):
            raise result
        return result

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __is_ready__(self) -> bool:
        """``/readyz`` (BentoML calls this): ready once a model is loaded (which version:
        ``X-Callintent-Model``), and not ready once a shutdown drains, so a load balancer's health
        check takes the replica out before it stops listening (new calls go elsewhere)."""
        return getattr(self, "scoring", None) is not None and not self.live.slots.draining

    @bentoml.on_startup
    async def drain_on_sigterm(self) -> None:
        """Give open live calls their final event before the server stops (see sessions.install_drain)."""
        install_drain(self.live.slots, self.config.limits.drain_seconds, self.config.limits.unready_seconds)

    @bentoml.on_startup
    async def start_model_watch(self) -> None:
        """Follow the registry alias ``model`` names (serving/model_watch.py), when it names one."""
        if self.model_watch is not None:
            self.model_watch.start()

    @bentoml.on_shutdown
    async def stop_model_watch(self) -> None:
        if self.model_watch is not None:
            await self.model_watch.stop()

    @bentoml.on_shutdown
    def close_pools(self) -> None:
        self.score_batch.close()
        self.decode_pool.shutdown(wait=False, cancel_futures=True)
        close = getattr(self.live_asr, "close", None)
        if close is not None:
            close()

    @bentoml.on_shutdown
    def drain_call_log(self) -> None:
        """Stop webhook delivery (pending rows resume at the next start), then write every queued
        call record and webhook event (live calls got their final event before this runs)."""
        if self.webhooks is not None:
            self.webhooks.close()
        if self.call_log is not None:
            self.call_log.close(self.config.call_log.drain_seconds)


def load_predictor(config: ServeConfig, model_dir: Path) -> Predictor:
    """Load the intent model from an artifact directory as ``config`` says: at start and at every hot swap.

    Raises:
        ArtifactError: an unusable artifact (missing files, a graph ONNX Runtime refuses, other labels).
    """
    from models.predictor import IntentPredictor

    return IntentPredictor.load(model_dir, variant=config.variant, threads=config.model_threads,
                                spinning=config.model_spinning, batch_size=config.batching.max_batch_size)


def _serving_model() -> str | None:
    """The version the current service serves, None before it has loaded one."""
    try:
        service = bentoml.get_current_service()
    except bentoml.exceptions.BentoMLException:  # not instantiated yet (the worker is still loading)
        return None
    scoring = getattr(service, "scoring", None)
    return None if scoring is None else scoring.model_id


def _asr_config(config: ServeConfig) -> AsrConfig:
    """Size the ASR for ``decode_workers`` concurrent decodes that share the CPU cores.

    CTranslate2 runs one decode at a time unless ``num_workers`` allows more, and by default
    gives each decode 4 threads; with several live calls that oversubscribes small machines.
    Unset (0) ``cpu_threads`` becomes cores / ``decode_workers``.
    """
    asr = config.asr
    threads = asr.cpu_threads or max(1, (os.cpu_count() or 1) // config.decode_workers)
    return dataclasses.replace(asr, cpu_threads=threads, num_workers=max(asr.num_workers, config.decode_workers))


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 2)


CallIntentService.add_asgi_middleware(JsonErrorPages)
CallIntentService.add_asgi_middleware(ServingModelHeader, model_id=_serving_model, paths=("/readyz",))
CallIntentService.add_asgi_middleware(BodyLimitMiddleware, max_bytes=CONFIG.limits.max_body_bytes)
