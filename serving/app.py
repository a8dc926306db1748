"""The HTTP and WebSocket routes of the service: a FastAPI app mounted on the BentoML service.

The models live on the service instance (:mod:`serving.service`); this module adapts requests
and sockets to them and owns the wire protocols, the error bodies and the logs.

Errors (every route): ``{"error": {"code": str, "message": str[, "fields": [str]]}}`` with

======================  ======  ==========================================================
code                    status  when
======================  ======  ==========================================================
bad_json                400     the body is not JSON
invalid_request         422     a field is missing or wrong (``fields`` names them)
bad_request             400     other bad input
unauthorized            401     API key missing or wrong
body_too_large          413     more than ``limits.max_body_bytes``
text_too_long           413     transcript over ``limits.max_text_chars``
audio_too_long          413     audio over ``limits.max_audio_seconds``
bad_audio               422     audio that cannot be decoded
not_found / method_not_allowed  404 / 405
overloaded              503     the batcher shed the request (``batching.max_latency_ms``); retry
internal_error          500     a bug (details only in the server log)
======================  ======  ==========================================================

Live protocol, ``/v1/stream`` (event wire format: :mod:`serving.stream`)
------------------------------------------------------------------------
Client → server: one text message ``{"type": "start", "call_id"?: str, "encoding": "pcm16" |
"mulaw" (default pcm16), "sample_rate": int (8000..48000, default 16000), "metadata"?: {…}}``;
then binary messages of raw audio in that encoding (any size; 20 ms frames are typical; pcm16
is little-endian, a frame may split a sample); then ``{"type": "stop"}``.

Server → client: ``started``; ``partial`` events as decodes complete (at most one decode in flight
per call; audio keeps being buffered meanwhile); one ``decision``; ``final``; then close 1000.
Problems are ``error`` events (``{"type": "error", "error": {"code", "message"}}``; before a call
has started they carry ``seq: -1``). The call goes on after:

* ``bad_json``, ``unknown_type``, ``already_started``, ``message_too_large`` (message dropped).

The socket is closed after:

* ``binary_before_start`` (1008), ``unsupported_encoding`` (1003), ``invalid_start`` (1008),
  ``not_started`` on a stop before start (1000), ``unauthorized`` (1008, Twilio token);
* ``capacity``: ``limits.max_live_sessions`` calls are running → close **1013** (try again
  later) with the reason; the calls already running are not affected;
* ``audio_too_long``: more than ``limits.max_audio_seconds`` of audio → ``final``, close 1008;
* idle: nothing received for ``limits.idle_timeout_seconds`` → ``final``, close **1001**
  ``"idle timeout"``; server shutdown → ``final``, close 1001 ``"server shutting down"``;
* ``internal_error``: a bug while decoding → close 1011.

``/v1/twilio`` speaks Twilio Media Streams instead (see :mod:`serving.twilio`): ``connected``,
``start`` (``callSid`` = call id, ``customParameters`` = metadata, optional ``token`` parameter
= API key), ``media`` (base64 μ-law 8 kHz, inbound track transcribed), ``stop``. Point a
unidirectional ``<Start><Stream url="wss://HOST/v1/twilio">`` (with ``<Parameter>``s for source,
campaign, token) at it. The same events go back as JSON text messages (a unidirectional stream
ignores them) and are logged; decisions also reach ``callintent_decisions_total``. Twilio-specific errors:
``invalid_message`` (a malformed message), ``bad_media`` (payload not base64), ``protocol_error``
(out of order, e.g. media before start), ``unexpected_binary`` — all keep the stream going; an
invalid ``start`` closes it (1003).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import json
import logging
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from bentoml.exceptions import ServiceUnavailable as BentoMLServiceUnavailable
from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.websockets import WebSocketDisconnect

from callintent import __version__
from callintent.errors import UserError
from data.audio import RAW_ENCODINGS, SAMPLE_RATE, AudioError, StreamResampler, mulaw_to_float, pcm16_to_float
from data.schema import OPENING_SECONDS
from serving.auth import ApiKeyMiddleware, Unauthorized
from serving.config import ServeConfig
from serving.limits import CLOSE_TRY_AGAIN_LATER, LimitExceeded, check_text, error_body
from serving.schemas import (
    AudioScoreResponse, BatchItem, ErrorResponse, ScoreRequest, ScoreResponse, clean_metadata, new_call_id,
    score_result, transcript_json, valid_call_id,
)

if TYPE_CHECKING:
    from models.scores import IntentScores
    from serving.service import CallIntentService
    from serving.stream import LiveCall, StreamEvent

logger = logging.getLogger(__name__)

#: Per-process secret that the service's own in-process calls to ``/internal/*`` carry.
INTERNAL_SECRET = secrets.token_urlsafe(32)
INTERNAL_HEADER = "x-callintent-internal"

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_INTERNAL_ERROR = 1011

#: Rates a live call may declare (telephony 8 kHz up to studio 48 kHz).
MIN_STREAM_RATE, MAX_STREAM_RATE = 8000, 48000
#: Longest a shutdown waits for open calls to get their final event.
DRAIN_SECONDS = 10.0

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text} for status, text in (
        (400, "Body is not JSON"), (401, "Missing or wrong API key"), (413, "Over a configured limit"),
        (422, "Invalid field (error.fields names it) or undecodable audio"))
}

_call_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("call_id", default=None)


class InvalidRequest(UserError):
    """A request field is missing or invalid (HTTP 422); ``fields`` names the fields."""

    def __init__(self, message: str, fields: Sequence[str]) -> None:
        super().__init__(message)
        self.fields = list(fields)


# ---------------------------------------------------------------------------------------------
# The app


def create_app(config: ServeConfig) -> FastAPI:
    """Build the FastAPI app with the scoring routes, the live WebSockets and the error handlers.

    Args:
        config: The resolved service config (limits, redaction).

    Returns:
        The app; ``serving.service`` mounts it at ``/``.
    """
    app = FastAPI(title="callintent", version=__version__, docs_url=None, redoc_url=None, openapi_url=None,
                  description="Buying intent in the opening 30 seconds of a call.")
    # Added last = outermost: metrics see every outcome, including refused keys.
    app.add_middleware(ApiKeyMiddleware, keys=lambda: _service().api_keys, deferred_paths=("/v1/twilio",))
    app.add_middleware(RequestMetricsMiddleware, endpoints=("/score", "/score_audio"))
    _add_error_handlers(app)
    limits = config.limits

    @app.post("/score", response_model=ScoreResponse, responses=_ERROR_RESPONSES)
    async def score(body: ScoreRequest) -> JSONResponse:
        """Score one opening transcript (adaptively batched with concurrent requests)."""
        started = time.perf_counter()
        check_text(body.transcript, limits.max_text_chars)
        metadata = _metadata(body.metadata, limits.max_metadata_items)
        call_id = body.call_id or new_call_id()
        (result,) = await score_batched(_service(), [BatchItem(transcript=body.transcript, call_id=call_id,
                                                               metadata=metadata, source="score")])
        result["timings_ms"]["total"] = _ms_since(started)
        return JSONResponse(result)

    @app.post("/score_audio", response_model=AudioScoreResponse, responses=_ERROR_RESPONSES,
              openapi_extra=_AUDIO_REQUEST_BODY)
    async def score_audio(request: Request) -> JSONResponse:
        """Transcribe the opening 30 s of an audio file and score it."""
        return JSONResponse(await _score_audio(_service(), request, config))

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket) -> None:
        await LiveSession(_service(), websocket, twilio=False).run()

    @app.websocket("/v1/twilio")
    async def twilio(websocket: WebSocket) -> None:
        await LiveSession(_service(), websocket, twilio=True).run()

    return app


def _service() -> CallIntentService:
    import bentoml

    return bentoml.get_current_service()


_AUDIO_REQUEST_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "wav/flac/mp3/ogg…, or raw audio"},
        "encoding": {"type": "string", "enum": ["mulaw", "pcm16"], "description": "raw (headerless) audio only"},
        "sample_rate": {"type": "integer", "description": "rate of raw audio (default 8000)"},
        "call_id": {"type": "string"},
        "metadata": {"type": "string", "description": "JSON object: source, campaign, industry, …"}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"},
                                 "description": "the audio as the body; fields as query parameters"}}}}


def _add_error_handlers(app: FastAPI) -> None:
    def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse(error_body(code, message, **extra), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        bad_json = [e for e in errors if e.get("type") == "json_invalid"]
        if bad_json:
            detail = (bad_json[0].get("ctx") or {}).get("error", "JSON decode error")
            return error(400, "bad_json", f"request body is not valid JSON: {detail}")
        fields = []
        messages = []
        for e in errors:
            loc = [str(part) for part in e.get("loc", ()) if part != "body"]
            name = ".".join(loc) or "body"
            fields.append(name)
            messages.append(f"{name}: {e.get('msg', 'invalid')}")
        return error(422, "invalid_request", "; ".join(messages), fields=list(dict.fromkeys(fields)))

    @app.exception_handler(InvalidRequest)
    async def invalid_field(_: Request, exc: InvalidRequest) -> JSONResponse:
        return error(422, "invalid_request", str(exc), fields=exc.fields)

    @app.exception_handler(LimitExceeded)
    async def limit(_: Request, exc: LimitExceeded) -> JSONResponse:
        return error(exc.status, exc.code, str(exc))

    @app.exception_handler(Unauthorized)
    async def unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
        return error(401, exc.code, str(exc))

    @app.exception_handler(AudioError)
    async def bad_audio(_: Request, exc: AudioError) -> JSONResponse:
        return error(422, "bad_audio", str(exc))

    @app.exception_handler(UserError)
    async def bad_request(_: Request, exc: UserError) -> JSONResponse:
        return error(400, "bad_request", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
        return error(exc.status_code, codes.get(exc.status_code, f"http_{exc.status_code}"), str(exc.detail))

    @app.exception_handler(BentoMLServiceUnavailable)
    async def overloaded(_: Request, exc: BentoMLServiceUnavailable) -> JSONResponse:
        # The adaptive batcher shed the request: it predicted a miss of batching.max_latency_ms.
        response = error(503, "overloaded", "the server is overloaded; retry shortly")
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error on %s", request.url.path, exc_info=exc)
        return error(500, "internal_error", "internal error; see the server log")


class RequestMetricsMiddleware:
    """Counts scoring requests by endpoint and status (``callintent_requests_total``)."""

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
            from serving.metrics import service_metrics

            service_metrics().requests.labels(endpoint=scope["path"], status=str(status)).inc()


class InternalRouteGuard:
    """BentoML middleware: ``/internal/*`` answers only the service's own in-process calls.

    BentoML exposes every ``@bentoml.api`` method as a route; the batched ``score_batch`` is
    an implementation detail of ``POST /score`` (which checks keys and limits first), so a
    request from outside gets 404 as if it did not exist.
    """

    def __init__(self, app: Any, secret: str) -> None:
        self.app = app
        self.secret = secret.encode("ascii")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/internal/"):
            presented = dict(scope.get("headers", ())).get(INTERNAL_HEADER.encode("ascii"), b"")
            if not secrets.compare_digest(presented, self.secret):
                await JSONResponse(error_body("not_found", "Not Found"), status_code=404)(scope, receive, send)
                return
        await self.app(scope, receive, send)


# ---------------------------------------------------------------------------------------------
# Scoring


async def score_batched(svc: CallIntentService, items: list[BatchItem]) -> list[dict[str, Any]]:
    """Score through BentoML's adaptive batcher: an in-process call of ``score_batch``.

    ``svc.to_async`` is BentoML's in-process client of this very service; its calls go through
    the batching dispatcher, so concurrent ``/score`` requests share model runs.
    """
    client = svc.to_async
    headers = client.default_headers  # shared with BentoML's session factory; read per request
    if headers.get(INTERNAL_HEADER) != INTERNAL_SECRET:
        headers[INTERNAL_HEADER] = INTERNAL_SECRET
    return await client.score_batch(items=items)


def score_items(svc: CallIntentService, items: Sequence[BatchItem]) -> list[dict[str, Any]]:
    """Score a batch (blocking; BentoML runs it in a worker thread).

    The model sees the original text; PII is redacted before the policy writes its reasons and
    before anything leaves the process.

    Args:
        svc: The service (predictor, policy, config).
        items: Transcripts with call id and metadata.

    Returns:
        One ``/score`` result dict per item, in order.
    """
    from serving.metrics import service_metrics
    from serving.redact import redact_scores

    started = time.perf_counter()
    all_scores = svc.predictor.predict([item.transcript for item in items])
    model_ms = _ms_since(started)
    results = []
    for item, scores in zip(items, all_scores):
        text = item.transcript
        if svc.config.redact_pii:
            text, scores = redact_scores(text, scores)
        decision = svc.policy.decide(scores, item.metadata)
        service_metrics().decisions.labels(route=decision.route, source=item.source).inc()
        result = score_result(item.call_id, text, scores, decision, timings_ms={"model": model_ms})
        result["batch_size"] = len(items)
        results.append(result)
        logger.info("scored %s: %s (buying_intent %.2f) -> %s", item.source, scores.label, scores.buying_intent,
                    decision.route, extra={"call_id": item.call_id})
    return results


@dataclass(frozen=True)
class AudioUpload:
    """What ``/score_audio`` received. Attributes: data, encoding (raw audio only), sample_rate,
    call_id, metadata, filename."""

    data: bytes
    encoding: str | None
    sample_rate: int | None
    call_id: str
    metadata: dict[str, str]
    filename: str


async def _score_audio(svc: CallIntentService, request: Request, config: ServeConfig) -> dict[str, Any]:
    started = time.perf_counter()
    upload = await read_audio_upload(request, config)
    loop = asyncio.get_running_loop()
    limit = config.limits.max_audio_seconds
    from data.audio import decode_audio

    if config.store_audio:
        await loop.run_in_executor(svc.decode_pool, _store_upload, config, upload)
    # Decode a little past the limit and no further: a huge upload costs at most that much work.
    audio = await loop.run_in_executor(svc.decode_pool, lambda: decode_audio(
        upload.data, encoding=upload.encoding, sample_rate=upload.sample_rate, max_seconds=limit + 0.5))
    if audio.size > round(limit * SAMPLE_RATE):
        raise LimitExceeded("audio_too_long", f"audio is longer than {limit:g} s, the limit "
                                              f"(limits.max_audio_seconds)")
    decoded = time.perf_counter()
    transcript, asr_seconds = await loop.run_in_executor(
        svc.decode_pool, lambda: svc.asr.transcribe_timed(audio, cut_seconds=OPENING_SECONDS))
    (result,) = await score_batched(svc, [BatchItem(transcript=transcript.text, call_id=upload.call_id,
                                                    metadata=upload.metadata, source="score_audio")])
    result.update(transcript_json(transcript, redact_pii=config.redact_pii))
    result["timings_ms"].update({"decode": round((decoded - started) * 1000.0, 2), "asr": round(asr_seconds * 1000, 2),
                                 "total": _ms_since(started)})
    return result


async def read_audio_upload(request: Request, config: ServeConfig) -> AudioUpload:
    """Parse a ``/score_audio`` request in memory (multipart form, or raw body + query fields).

    Starlette's own form parser spools uploads over 1 MiB to a temporary file; audio must never
    touch the disk unless ``store_audio`` is on, so the (already size-limited) body is parsed here.

    Raises:
        InvalidRequest: no file, or a bad ``encoding`` / ``sample_rate`` / ``call_id`` / ``metadata``.
    """
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    fields: dict[str, str] = {}
    data = b""
    filename = ""
    if content_type.startswith("multipart/form-data"):
        fields, files = _parse_multipart(body, content_type)
        if "file" not in files:
            raise InvalidRequest("file: an audio file is required (multipart field 'file')", ["file"])
        filename, data = files["file"]
    else:
        fields = dict(request.query_params)
        data = body
        filename = fields.get("filename", "")
    if not data:
        raise InvalidRequest("file: the audio is empty", ["file"])
    encoding = fields.get("encoding") or None
    if encoding is not None and encoding.lower() not in RAW_ENCODINGS:
        raise InvalidRequest(f"encoding: must be 'mulaw' or 'pcm16' for raw audio, got {encoding!r} "
                             "(leave it out for wav/flac/mp3/ogg)", ["encoding"])
    sample_rate = None
    if fields.get("sample_rate"):
        try:
            sample_rate = int(fields["sample_rate"])
        except ValueError:
            sample_rate = -1
        if not MIN_STREAM_RATE // 2 <= sample_rate <= 192000:
            raise InvalidRequest(f"sample_rate: must be an integer rate in Hz, got {fields['sample_rate']!r}",
                                 ["sample_rate"])
    call_id = fields.get("call_id") or new_call_id()
    if not valid_call_id(call_id):
        raise InvalidRequest("call_id: letters, digits and . _ : - only, at most 128 characters", ["call_id"])
    metadata: Mapping[str, Any] = {}
    if fields.get("metadata"):
        try:
            metadata = json.loads(fields["metadata"])
        except json.JSONDecodeError as e:
            raise InvalidRequest(f"metadata: not valid JSON: {e}", ["metadata"]) from None
        if not isinstance(metadata, dict):
            raise InvalidRequest("metadata: must be a JSON object", ["metadata"])
    return AudioUpload(data=data, encoding=encoding, sample_rate=sample_rate, call_id=call_id,
                       metadata=_metadata(metadata, config.limits.max_metadata_items), filename=filename)


def _parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import create_form_parser

    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}

    def on_field(field: Any) -> None:
        fields[(field.field_name or b"").decode("utf-8", "replace")] = (field.value or b"").decode("utf-8", "replace")

    def on_file(file: Any) -> None:
        handle = file.file_object
        handle.seek(0)
        files[(file.field_name or b"").decode("utf-8", "replace")] = (
            (file.file_name or b"").decode("utf-8", "replace"), handle.read())

    try:
        parser = create_form_parser({"Content-Type": content_type.encode("latin-1")}, on_field, on_file,
                                    config={"MAX_MEMORY_FILE_SIZE": float("inf")})
        parser.write(body)
        parser.finalize()
    except (FormParserError, ValueError) as e:
        raise UserError(f"malformed multipart/form-data body: {e}") from None
    return fields, files


def _store_upload(config: ServeConfig, upload: AudioUpload) -> None:
    directory = Path(config.audio_dir)
    directory.mkdir(parents=True, exist_ok=True)
    suffix = Path(upload.filename).suffix if upload.filename else f".{upload.encoding or 'audio'}"
    (directory / f"{upload.call_id}{suffix}").write_bytes(upload.data)


def _metadata(metadata: Mapping[str, Any], max_items: int) -> dict[str, str]:
    try:
        return clean_metadata(metadata, max_items)
    except ValueError as e:
        raise InvalidRequest(f"metadata: {e}", ["metadata"]) from None


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 2)


# ---------------------------------------------------------------------------------------------
# Live calls


class _PredictorScorer:
    """The :class:`serving.stream.Scorer` view of an ``IntentPredictor``."""

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor

    def score(self, texts: Sequence[str]) -> list[IntentScores]:
        return self.predictor.predict(texts)


@dataclass(frozen=True)
class _Close:
    """How a session ends: close code and reason, whether the call gets its final event, and
    the label for ``live_sessions_ended_total``."""

    code: int
    reason: str
    ended: str
    finish: bool = True


#: Queue sentinels (identity-compared).
_SHUTDOWN = object()
_FAILED = object()


class LiveSession:
    """One live call on a WebSocket: the generic protocol or Twilio Media Streams.

    A reader task moves incoming messages into a queue, so the session loop can wait for the
    next message, the idle timeout and a shutdown request at once. Audio goes straight into the
    :class:`~serving.stream.LiveCall` (its buffer is append-only and safe to fill while a decode
    runs); decodes run on the service's bounded decode pool, one at a time per call.

    Args:
        svc: The service (models, limits, session slots, metrics).
        websocket: The accepted-to-be socket.
        twilio: Speak Twilio Media Streams instead of the generic protocol.
    """

    def __init__(self, svc: CallIntentService, websocket: WebSocket, *, twilio: bool) -> None:
        self.svc = svc
        self.ws = websocket
        self.twilio = twilio
        self.source = "twilio" if twilio else "stream"
        self.limits = svc.config.limits
        self.call: LiveCall | None = None
        self.call_id = ""
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.decoding: asyncio.Task[None] | None = None
        self.finishing = False
        self.closed = False
        self.done = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._slot = False
        self._encoding = "pcm16"
        self._rate = SAMPLE_RATE
        self._resampler: StreamResampler | None = None
        self._carry = b""  # a pcm16 sample split across two frames
        self._received_seconds = 0.0
        self._stored: list[bytes] | None = [] if svc.config.store_audio else None
        self._twilio_state: Any = None
        if twilio:
            from serving.twilio import TwilioStreamState

            self._twilio_state = TwilioStreamState()

    async def run(self) -> None:
        """Serve the socket until the call ends; never raises for client behaviour."""
        await self.ws.accept()
        self.svc.sessions.add(self)
        reader = asyncio.create_task(self._read())
        close: _Close | None = None
        try:
            close = await self._serve()
            if close is not None:
                await self._end(close)
        except WebSocketDisconnect:
            close = _Close(CLOSE_GOING_AWAY, "client went away", "disconnect")
            await self._end(close)
        finally:
            reader.cancel()
            if self.decoding is not None:
                await asyncio.gather(self.decoding, return_exceptions=True)
            if self._slot:
                self.svc.slots.release()
                self.svc.metrics.sessions_active.dec()
                self.svc.metrics.sessions_ended.labels(reason=close.ended if close else "error").inc()
            self.svc.sessions.discard(self)
            self.done.set()

    def request_shutdown(self) -> None:
        """Ask the session to end now with its final event (server shutdown)."""
        self.inbox.put_nowait(_SHUTDOWN)

    # -- the loop ------------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            while True:
                message = await self.ws.receive()
                self.inbox.put_nowait(message)
                if message["type"] == "websocket.disconnect":
                    return
        except (WebSocketDisconnect, RuntimeError):  # receive after we closed the socket
            self.inbox.put_nowait({"type": "websocket.disconnect", "code": CLOSE_GOING_AWAY})

    async def _serve(self) -> _Close | None:
        while True:
            try:
                item = await asyncio.wait_for(self.inbox.get(), timeout=self.limits.idle_timeout_seconds)
            except TimeoutError:
                logger.info("closing idle call after %.0f s without a message", self.limits.idle_timeout_seconds)
                return _Close(CLOSE_GOING_AWAY, "idle timeout", "idle")
            if item is _SHUTDOWN:
                return _Close(CLOSE_GOING_AWAY, "server shutting down", "shutdown")
            if item is _FAILED:
                await self._error("internal_error", "the call failed on the server; see the server log")
                return _Close(CLOSE_INTERNAL_ERROR, "internal error", "error", finish=False)
            if item["type"] == "websocket.disconnect":
                logger.info("client disconnected (code %s)", item.get("code"))
                return _Close(CLOSE_GOING_AWAY, "client went away", "disconnect")
            data = item.get("bytes")
            text = item.get("text")
            size = len(data) if data is not None else len((text or "").encode("utf-8"))
            if size > self.limits.max_message_bytes:
                await self._error("message_too_large", f"message of {size} bytes dropped; the limit "
                                                       f"(limits.max_message_bytes) is {self.limits.max_message_bytes}")
                continue
            if data is not None:
                close = await (self._on_twilio_binary() if self.twilio else self._on_audio(data))
            else:
                close = await (self._on_twilio_text(text or "") if self.twilio else self._on_text(text or ""))
            if close is not None:
                return close

    # -- generic protocol ------------------------------------------------------------------------

    async def _on_text(self, text: str) -> _Close | None:
        try:
            message = json.loads(text)
        except json.JSONDecodeError as e:
            await self._error("bad_json", f"message is not valid JSON: {e}")
            return None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "start":
            return await self._start_generic(message)
        if kind == "stop":
            if self.call is None:
                await self._error("not_started", "stop before start: no call to end")
                return _Close(CLOSE_NORMAL, "no call", "stop", finish=False)
            return _Close(CLOSE_NORMAL, "stop", "stop")
        await self._error("unknown_type", f"unknown message type {kind!r}: expected 'start' or 'stop' "
                                          "(audio goes in binary messages)")
        return None

    async def _start_generic(self, message: dict[str, Any]) -> _Close | None:
        if self.call is not None:
            await self._error("already_started", f"call {self.call_id} has already started")
            return None
        encoding = message.get("encoding", "pcm16")
        kind = RAW_ENCODINGS.get(encoding.lower()) if isinstance(encoding, str) else None
        if kind is None:
            await self._error("unsupported_encoding", f"encoding {encoding!r} is not supported: use 'pcm16' or 'mulaw'",
                              refused="bad_start")
            return _Close(CLOSE_UNSUPPORTED, "unsupported encoding", "bad_start", finish=False)
        rate = message.get("sample_rate", SAMPLE_RATE)
        problem = None
        if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_STREAM_RATE <= rate <= MAX_STREAM_RATE:
            problem = f"sample_rate must be an integer in {MIN_STREAM_RATE}..{MAX_STREAM_RATE} Hz, got {rate!r}"
        call_id = message.get("call_id") or new_call_id()
        if problem is None and (not isinstance(call_id, str) or not valid_call_id(call_id)):
            problem = "call_id must be letters, digits and . _ : - (at most 128 characters)"
        metadata = message.get("metadata") or {}
        if problem is None and not isinstance(metadata, dict):
            problem = "metadata must be a JSON object"
        if problem is None:
            try:
                metadata = clean_metadata(metadata, self.limits.max_metadata_items)
            except ValueError as e:
                problem = str(e)
        if problem is not None:
            await self._error("invalid_start", problem, refused="bad_start")
            return _Close(CLOSE_POLICY, "invalid start message", "bad_start", finish=False)
        self._encoding, self._rate = kind, rate
        self._resampler = StreamResampler(rate, SAMPLE_RATE)
        return await self._admit(call_id, metadata)

    async def _on_audio(self, data: bytes) -> _Close | None:
        if self.call is None:
            await self._error("binary_before_start", "audio before the start message: send "
                                                     '{"type": "start", "encoding", "sample_rate"} first')
            return _Close(CLOSE_POLICY, "audio before start", "bad_start", finish=False)
        if self._encoding == "mulaw":
            samples = mulaw_to_float(data)
        else:
            data = self._carry + data
            cut = len(data) - len(data) % 2
            self._carry = data[cut:]
            samples = pcm16_to_float(data[:cut])
        assert self._resampler is not None
        return self._insert(self._resampler.push(samples), samples.size / self._rate, data)

    # -- Twilio ----------------------------------------------------------------------------------

    async def _on_twilio_binary(self) -> _Close | None:
        await self._error("unexpected_binary", "Twilio Media Streams sends JSON text messages only; frame dropped")
        return None

    async def _on_twilio_text(self, text: str) -> _Close | None:
        from serving import twilio as tw

        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            await self._error("bad_json", f"message is not valid JSON: {e}")
            return None
        event = raw.get("event") if isinstance(raw, dict) else None
        try:
            message = tw.parse_message(text)
        except tw.TwilioProtocolError as e:
            code = "bad_media" if event == "media" else "invalid_message"
            await self._error(code, str(e), refused="bad_start" if event == "start" else None)
            if event == "start":
                return _Close(CLOSE_UNSUPPORTED, "invalid start message", "bad_start", finish=False)
            return None
        state = self._twilio_state
        try:
            arrival = state.accept(message)
        except tw.TwilioProtocolError as e:
            await self._error("protocol_error", str(e))
            return None
        if not arrival.use:
            return None
        if isinstance(message, tw.StartMessage):
            return await self._start_twilio(message)
        if isinstance(message, tw.MediaMessage):
            if message.track != "inbound":
                return None
            return self._insert(state.audio(message), len(message.payload) / tw.TWILIO_SAMPLE_RATE, message.payload)
        if isinstance(message, tw.StopMessage):
            return _Close(CLOSE_NORMAL, "stop", "stop")
        logger.debug("twilio %s message", message.event)
        return None

    async def _start_twilio(self, message: Any) -> _Close | None:
        params = dict(self._twilio_state.metadata)
        token = params.pop("token", None)  # an API key must never reach metadata, events or logs
        if self.ws.scope.get("state", {}).get("auth_deferred") and not self.svc.api_keys.check(token):
            await self._error("unauthorized", "missing or invalid API key (Authorization header, ?token= or the "
                                              "'token' custom parameter)", refused="unauthorized")
            return _Close(CLOSE_POLICY, "unauthorized", "unauthorized", finish=False)
        try:
            metadata = clean_metadata(params, self.limits.max_metadata_items + 3)  # + call/stream/account sids
        except ValueError as e:
            await self._error("invalid_start", f"customParameters: {e}", refused="bad_start")
            return _Close(CLOSE_POLICY, "invalid start message", "bad_start", finish=False)
        call_id = message.call_sid if valid_call_id(message.call_sid) else new_call_id()
        self._encoding, self._rate = "mulaw", 8000
        return await self._admit(call_id, metadata)

    # -- shared ----------------------------------------------------------------------------------

    async def _admit(self, call_id: str, metadata: dict[str, str]) -> _Close | None:
        from serving.stream import LiveCall

        metrics = self.svc.metrics
        if self.svc.draining:
            await self._error("shutting_down", "the server is shutting down; try again", refused="shutdown")
            return _Close(CLOSE_TRY_AGAIN_LATER, "server shutting down", "refused", finish=False)
        if not self.svc.slots.try_acquire():
            reason = self.svc.slots.refusal_reason()
            logger.warning("refused call %s: %s", call_id, reason)
            await self._error("capacity", reason, refused="capacity")
            return _Close(CLOSE_TRY_AGAIN_LATER, reason, "refused", finish=False)
        self._slot = True
        metrics.sessions_active.inc()
        metrics.sessions_started.inc()
        self.call_id = call_id
        _call_id_var.set(call_id)
        config = dataclasses.replace(self.svc.config.stream, redact_pii=self.svc.config.redact_pii)
        self.call = LiveCall(call_id, metadata, asr=self.svc.asr, scorer=_PredictorScorer(self.svc.predictor),
                             policy=self.svc.policy, config=config, model=self.svc.predictor.model_id)
        await self._send_events([self.call.start()])
        return None

    def _insert(self, samples: np.ndarray, source_seconds: float, raw: bytes) -> _Close | None:
        """Feed converted audio to the call and start a decode when one is due."""
        assert self.call is not None
        self._received_seconds += source_seconds
        if self._received_seconds > self.limits.max_audio_seconds:
            return _Close(CLOSE_POLICY, f"audio limit of {self.limits.max_audio_seconds:g} s reached", "limit")
        if self._stored is not None:
            self._stored.append(raw)
        if samples.size:
            self.call.insert(samples, arrived_at=time.monotonic())
        self._schedule()
        return None

    def _schedule(self) -> None:
        if self.decoding is None and not self.finishing and self.call is not None and self.call.ready():
            self.decoding = asyncio.create_task(self._decode_step())

    async def _decode_step(self) -> None:
        assert self.call is not None
        try:
            events = await self._in_pool(self.call.step)
        except Exception:  # a decode bug must end this call (1011), not the server or other calls
            logger.exception("live decode failed")
            self.decoding = None
            self.inbox.put_nowait(_FAILED)
            return
        self.decoding = None
        await self._send_events(events)
        self._schedule()

    async def _end(self, close: _Close) -> None:
        """Finish the call (final event) when it started, then close the socket."""
        self.finishing = True
        if self.decoding is not None:
            await asyncio.gather(self.decoding, return_exceptions=True)
        if close.ended == "limit":
            await self._error("audio_too_long", f"the call sent more than {self.limits.max_audio_seconds:g} s of "
                                                "audio, the limit (limits.max_audio_seconds)")
        if close.finish and self.call is not None and not self.call.finished:
            tail = self._twilio_state.flush_audio() if self.twilio else (
                self._resampler.flush() if self._resampler is not None else np.zeros(0, np.float32))
            if tail.size and not self.call.window_complete:
                self.call.insert(tail)
            try:
                await self._send_events(await self._in_pool(self.call.finish))
            except Exception:  # same as a failed step: report, close 1011
                logger.exception("live call finish failed")
                await self._error("internal_error", "the call failed on the server; see the server log")
                close = _Close(CLOSE_INTERNAL_ERROR, "internal error", "error", finish=False)
        if self._stored:
            await self._in_pool(self._store_stream_audio)
        logger.info("call ended (%s): %.1f s of audio received", close.ended, self._received_seconds)
        await self._close(close.code, close.reason)

    async def _in_pool(self, fn: Callable[[], Any]) -> Any:
        """Run blocking work on the decode pool, keeping the call id for its log lines."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await loop.run_in_executor(self.svc.decode_pool, context.run, fn)

    async def _send_events(self, events: Iterable[StreamEvent]) -> None:
        metrics = self.svc.metrics
        for event in events:
            if event.type == "partial" and event.latency_ms is not None:
                metrics.update_latency.observe(event.latency_ms / 1000.0)
                metrics.decode_seconds.observe(((event.decode_ms or 0.0) + (event.score_ms or 0.0)) / 1000.0)
            elif event.type == "decision" and event.decision is not None:
                metrics.decisions.labels(route=event.decision.route, source=self.source).inc()
                metrics.time_to_decision.observe(event.audio_seconds)
                logger.info("decision %s at %.1f s of audio: %s", event.decision.route, event.audio_seconds,
                            "; ".join(event.decision.reasons))
            await self._send(event.to_json())

    async def _error(self, code: str, message: str, *, refused: str | None = None) -> None:
        if refused is not None:
            self.svc.metrics.sessions_refused.labels(reason=refused).inc()
        if self.call is not None:
            payload = self.call.error(message, code=code).to_json()
        else:
            payload = {"type": "error", "call_id": self.call_id, "seq": -1, "model": "", "audio_seconds": 0.0,
                       "error": {"code": code, "message": message}}
        logger.info("error event %s: %s", code, message)
        await self._send(payload)

    async def _send(self, payload: dict[str, Any]) -> None:
        if self.closed:
            return
        async with self._send_lock:  # the decode task and the session loop both send
            try:
                await self.ws.send_text(json.dumps(payload))
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.closed = True  # the client is gone; the loop sees the disconnect

    async def _close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self.ws.close(code=code, reason=reason)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # already closed by the client

    def _store_stream_audio(self) -> None:
        directory = Path(self.svc.config.audio_dir)
        directory.mkdir(parents=True, exist_ok=True)
        name = f"{self.call_id}.{self._encoding}.{self._rate}.raw"
        (directory / name).write_bytes(b"".join(self._stored or ()))


# ---------------------------------------------------------------------------------------------
# Shutdown and logs


def install_drain(svc: CallIntentService) -> None:
    """On SIGTERM/SIGINT, end every live call with its final event, then let the server stop.

    uvicorn answers the signal by closing WebSockets with 1012 *before* the ASGI lifespan
    shutdown runs, which would cut calls off without their final event; so the handler uvicorn
    installed is wrapped: first drain (at most :data:`DRAIN_SECONDS`), then hand the signal on.
    """
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue

        def handler(sig: int, frame: Any, previous: Callable[..., Any] = previous) -> None:
            loop.call_soon_threadsafe(_start_drain, svc, previous, sig, frame)

        try:
            signal.signal(signum, handler)
        except ValueError:  # not the main thread (e.g. an in-process test server): no drain
            logger.warning("cannot install the shutdown drain outside the main thread")
            return


def _start_drain(svc: CallIntentService, previous: Callable[..., Any], sig: int, frame: Any) -> None:
    if svc.draining:  # a second signal: stop now
        previous(sig, frame)
        return
    svc.draining = True
    task = asyncio.get_running_loop().create_task(_drain(svc))
    task.add_done_callback(lambda _: previous(sig, frame))


async def _drain(svc: CallIntentService) -> None:
    sessions = list(svc.sessions)
    if not sessions:
        return
    logger.info("shutting down: ending %d live calls", len(sessions))
    for session in sessions:
        session.request_shutdown()
    _, pending = await asyncio.wait([asyncio.create_task(s.done.wait()) for s in sessions], timeout=DRAIN_SECONDS)
    if pending:
        logger.warning("%d live calls did not finish within %.0f s", len(pending), DRAIN_SECONDS)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, call_id, exception.

    Args:
        redact_pii: Redact card/phone/email/SSN from the message (log lines quote metadata,
            transcripts and reasons).
    """

    def __init__(self, redact_pii: bool = True) -> None:
        super().__init__()
        self.redact_pii = redact_pii

    def format(self, record: logging.LogRecord) -> str:
        message = _redacted(record.getMessage(), self.redact_pii)
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": message,
        }
        call_id = getattr(record, "call_id", None)
        if call_id:
            out["call_id"] = call_id
        if record.exc_info:
            out["exception"] = _redacted(self.formatException(record.exc_info), self.redact_pii)
        return json.dumps(out, ensure_ascii=False)


class _RedactingFormatter(logging.Formatter):
    def __init__(self, redact_pii: bool) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(call_id)s] %(message)s")
        self.redact_pii = redact_pii

    def format(self, record: logging.LogRecord) -> str:
        return _redacted(super().format(record), self.redact_pii)


def _redacted(text: str, redact_pii: bool) -> str:
    if not redact_pii:
        return text
    from serving.redact import redact

    return redact(text).text


class _CallIdFilter(logging.Filter):
    """Adds ``record.call_id`` from the live session's context (also inside decode threads)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "call_id", None):
            record.call_id = _call_id_var.get() or ""
        return True


def configure_logging(config: ServeConfig) -> None:
    """Route the project's loggers to stderr as JSON lines (or plain text), PII-redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter(config.redact_pii) if config.log_json
                         else _RedactingFormatter(config.redact_pii))
    handler.addFilter(_CallIdFilter())
    for name in ("serving", "models", "data", "callintent"):
        project_logger = logging.getLogger(name)
        project_logger.handlers[:] = [handler]
        project_logger.setLevel(logging.INFO)
        project_logger.propagate = False


__all__ = ["AudioUpload", "InternalRouteGuard", "InvalidRequest", "JsonLogFormatter", "LiveSession",
           "configure_logging", "create_app", "install_drain", "read_audio_upload", "score_batched", "score_items"]
