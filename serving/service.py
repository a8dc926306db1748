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
                         audio_seconds, cut_seconds (the opening 30 s)
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
    GET  /livez /readyz /metrics /docs.json    BentoML: liveness, readiness, Prometheus, OpenAPI
                         (/docs.json includes /score and /score_audio; WebSockets are documented here)

Authentication (when API keys are configured, see serving/auth.py): ``Authorization: Bearer <key>``
on the scoring routes and WebSocket handshakes, or ``?token=<key>`` on WebSockets (and the
``token`` custom parameter on Twilio). Limits: serving/limits.py and ``ServeConfig.limits``.

The routes live in :mod:`serving.app` (a FastAPI app mounted here); this class owns what is
loaded once per worker: the ONNX predictor, the speech recognizer and the decision policy.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
import time
from typing import Any

import bentoml

from speech.asr import AsrConfig
from serving import app as api
from serving.auth import ApiKeys
from serving.config import ServeConfig, load_serve_config
from serving.limits import BodyLimitMiddleware
from serving.schemas import BatchItem

logger = logging.getLogger(__name__)

#: Resolved at import: BentoML reads batching and worker settings from the decorators.
CONFIG = load_serve_config()


@bentoml.asgi_app(api.create_app(CONFIG), path="/")
@bentoml.service(
    name="callintent",
    workers=CONFIG.workers,
    threads=1,  # one model run at a time per worker; the batcher fills it
    traffic={"timeout": CONFIG.timeout_seconds},
    # BentoML 1.4.3x's in-process client closes its aiohttp session every max_requests / max_age
    # while other requests are still in flight on it ("Cannot write to closing transport",
    # bentoml/BentoML#5540, #5544); one session for the life of the worker avoids the refresh.
    runner_connection={"max_requests": 2**31 - 1, "max_age": 10.0**9},
    # The in-process /internal/score_batch hop would log (and count) every /score twice.
    logging={"access": {"enabled": True, "skip_paths": ["/livez", "/readyz", "/healthz", "/metrics",
                                                         "/internal/score_batch"]}},
)
class CallIntentService:
    """Loads the models once per worker; the routes in :mod:`serving.app` call into it."""

    def __init__(self) -> None:
        from speech.asr import SpeechRecognizer
        from models.predictor import IntentPredictor
        from models.registry import Registry
        from serving.asr_batcher import BatchingTranscriber
        from serving.auth import ApiKeySource
        from serving.calllog.writer import WriterMetrics, start_call_log
        from serving.limits import SessionSlots
        from serving.metrics import service_metrics
        from serving.policy import DecisionPolicy

        started = time.perf_counter()
        self.config = CONFIG
        api.configure_logging(CONFIG)
        registry = Registry(CONFIG.registry or None)
        model_dir = registry.resolve(CONFIG.model)
        self.predictor = IntentPredictor.load(model_dir, variant=CONFIG.variant, threads=CONFIG.model_threads,
                                              batch_size=CONFIG.batching.max_batch_size)
        self.asr = SpeechRecognizer(_asr_config(CONFIG))
        self.policy = DecisionPolicy.from_yaml(CONFIG.policy or None,
                                               model_abstain_margin=self.predictor.meta.abstain_margin)
        self.key_source = ApiKeySource(CONFIG.api_keys_file or None)  # re-reads key files on change
        self.slots = SessionSlots(CONFIG.limits.max_live_sessions)
        self.metrics = service_metrics()
        # Live calls decode through one batcher: their pending clips run as one ASR batch.
        self.live_asr = BatchingTranscriber(self.asr, max_batch=CONFIG.live_batch_size, workers=CONFIG.decode_workers,
                                            on_batch=self.metrics.asr_batch_size.observe)
        # Live steps get their own bounded pool so they never starve request handling threads; a
        # step mostly waits for its batch, so there is a thread for every call that may be open.
        self.decode_pool = concurrent.futures.ThreadPoolExecutor(
            max(CONFIG.decode_workers, CONFIG.limits.max_live_sessions), thread_name_prefix="decode")
        self.sessions: set[api.LiveSession] = set()
        self.draining = False
        # The decision log (None when call_log.enabled is false): scoring only queues records.
        self.call_log = start_call_log(CONFIG.call_log, CONFIG.call_log_url(), WriterMetrics(
            self.metrics.call_log_written, self.metrics.call_log_dropped, self.metrics.call_log_errors,
            self.metrics.call_log_queued))
        if not self.api_keys.enabled:
            logger.warning("no API keys configured: the scoring routes are open (set CALLINTENT_API_KEYS)")
        logger.info("callintent service ready in %.1f s: model %s (%s) from %s, ASR %s, %d API keys",
                    time.perf_counter() - started, self.predictor.model_id, CONFIG.variant, model_dir,
                    self.asr.model_path, len(self.api_keys))

    @property
    def api_keys(self) -> ApiKeys:
        """The API keys accepted now (``serving.auth.ApiKeySource``: key files are re-read on change)."""
        return self.key_source.current()

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=CONFIG.batching.max_batch_size,
                 max_latency_ms=CONFIG.batching.max_latency_ms, route="/internal/score_batch")
    def score_batch(self, items: list[BatchItem]) -> list[dict[str, Any]]:
        """Score many transcripts in one model run (internal: reached only through ``POST /score``)."""
        return api.score_items(self, items)

    @bentoml.on_startup
    async def drain_on_sigterm(self) -> None:
        """Give open live calls their final event before the server stops (see live.install_drain)."""
        api.install_drain(self)

    @bentoml.on_shutdown
    def close_pools(self) -> None:
        self.decode_pool.shutdown(wait=False, cancel_futures=True)
        self.live_asr.close()

    @bentoml.on_shutdown
    def drain_call_log(self) -> None:
        """Write every queued call record (live calls got their final event before this runs)."""
        if self.call_log is not None:
            self.call_log.close(CONFIG.call_log.drain_seconds)


def _asr_config(config: ServeConfig) -> AsrConfig:
    """Size the ASR for ``decode_workers`` concurrent decodes that share the CPU cores.

    CTranslate2 runs one decode at a time unless ``num_workers`` allows more, and by default
    gives each decode 4 threads; with several live calls that oversubscribes small machines.
    Unset (0) ``cpu_threads`` becomes cores / ``decode_workers``.
    """
    asr = config.asr
    threads = asr.cpu_threads or max(1, (os.cpu_count() or 1) // config.decode_workers)
    return dataclasses.replace(asr, cpu_threads=threads, num_workers=max(asr.num_workers, config.decode_workers))


CallIntentService.add_asgi_middleware(api.JsonErrorPages)
CallIntentService.add_asgi_middleware(BodyLimitMiddleware, max_bytes=CONFIG.limits.max_body_bytes)
CallIntentService.add_asgi_middleware(api.InternalRouteGuard, secret=api.INTERNAL_SECRET)
