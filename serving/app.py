"""The HTTP and WebSocket routes of the service: a FastAPI app mounted on the BentoML service.

The models live on the service instance (:mod:`serving.service`); this module adapts HTTP
requests to them and owns the REST wire format, the error bodies, the middlewares and the logs.

Errors (every HTTP route): ``{"error": {"code": str, "message": str[, "fields": [str]]}}`` with

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
not_found / method_not_allowed  404 / 405   (also for paths and methods no route has: ``JsonErrorPages``)
overloaded              503     shed: more than ``limits.max_inflight_requests`` (``/score``) or
                                ``limits.max_inflight_audio_requests`` (``/score_audio``) in flight,
                                or the batcher predicted a miss of ``batching.max_latency_ms``;
                                ``Retry-After: 1`` says when to retry
outcome_conflict        409     a different outcome is already recorded for the call (serving/calllog/routes.py)
call_log_unavailable    503     the call log database is down (outcome and ``GET /calls`` only); retry
call_log_disabled       404     ``call_log.enabled`` is false
internal_error          500     a bug, or the model failing on this transcript (details only in the
                                server log; the other requests batched with it are answered)
======================  ======  ==========================================================

The live WebSocket routes, ``/v1/stream`` (generic protocol) and ``/v1/twilio`` (Twilio Media
Streams), are served by :mod:`serving.sessions`, which documents both protocols, their error events
and close codes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bentoml.exceptions import ServiceUnavailable as BentoMLServiceUnavailable
from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from callintent import __version__
from callintent.errors import UserError
from speech.audio import RAW_ENCODINGS, SAMPLE_RATE, AudioError
from speech.transcript import OPENING_SECONDS
from serving.auth import ApiKeyMiddleware, Unauthorized
from serving.config import ServeConfig
from serving.limits import RETRY_AFTER_SECONDS, InflightLimitMiddleware, LimitExceeded, check_text, error_body
# LiveSession and install_drain are re-exported: serving.service reaches them as ``api.*``.
from serving.sessions import GenericSession, LiveSession, TwilioSession, call_id_context, install_drain
from serving.schemas import (
    AudioScoreResponse, BatchItem, ErrorResponse, ScoreRequest, ScoreResponse, clean_metadata, new_call_id,
    score_result, transcript_json, valid_call_id,
)

if TYPE_CHECKING:
    import numpy as np

    from speech.transcript import OpeningTranscript
    from serving.service import CallIntentService

logger = logging.getLogger(__name__)

#: Per-process secret that the service's own in-process calls to ``/internal/*`` carry.
INTERNAL_SECRET = secrets.token_urlsafe(32)
INTERNAL_HEADER = "x-callintent-internal"

#: Rates ``/score_audio`` accepts for raw (headerless) audio, in Hz.
MIN_UPLOAD_RATE, MAX_UPLOAD_RATE = 4000, 192000

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text} for status, text in (
        (400, "Body is not JSON"), (401, "Missing or wrong API key"), (413, "Over a configured limit"),
        (422, "Invalid field (error.fields names it) or undecodable audio"),
        (503, "Overloaded: retry after the Retry-After header's seconds"))
}

#: Most validation problems a 422 body lists: a body with 100 000 unknown keys must not earn a
#: response larger than itself.
MAX_LISTED_ERRORS = 10


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
    # Inside the key check: requests without a valid key never take an in-flight slot.
    app.add_middleware(InflightLimitMiddleware, limits={
        "/score": config.limits.max_inflight_requests, "/score_audio": config.limits.max_inflight_audio_requests},
        drain_bytes=config.limits.max_body_bytes)
    # Added last = outermost: metrics see every outcome, including refused keys.
    app.add_middleware(ApiKeyMiddleware, keys=lambda: _service().api_keys, deferred_paths=("/v1/twilio",))
    app.add_middleware(RequestMetricsMiddleware, endpoints=("/score", "/score_audio"))
    _add_error_handlers(app)
    from serving.calllog.routes import router as call_log_router  # /calls/{call_id}[/outcome]

    app.include_router(call_log_router)
    limits = config.limits

    @app.post("/score", response_model=ScoreResponse, responses=_ERROR_RESPONSES)
    async def score(body: ScoreRequest) -> JSONResponse:
        """Score one opening transcript (adaptively batched with concurrent requests)."""
        started = time.perf_counter()
        problem = body.input_problem()
        if problem is not None:
            raise InvalidRequest(*problem)
        svc = _service()
        text = body.text_for(svc.predictor.meta.speaker_tags)
        if not text:
            raise InvalidRequest("turns have no caller words to score (this model reads the caller's turns only; "
                                 "it was not trained with speaker_tags)", fields=["turns"])
        check_text(text, limits.max_text_chars)
        metadata = _metadata(body.metadata, limits.max_metadata_items)
        call_id = body.call_id or new_call_id()
        (result,) = await score_batched(svc, [BatchItem(transcript=text, call_id=call_id, metadata=metadata,
                                                        source="score")])
        result["timings_ms"]["total"] = _ms_since(started)
        return JSONResponse(result)

    @app.post("/score_audio", response_model=AudioScoreResponse, responses=_ERROR_RESPONSES,
              openapi_extra=_AUDIO_REQUEST_BODY)
    async def score_audio(request: Request) -> JSONResponse:
        """Transcribe the opening 30 s of an audio file and score it."""
        return JSONResponse(await _score_audio(_service(), request, config))

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket) -> None:
        """A live call in the generic protocol (see :mod:`serving.sessions`)."""
        await GenericSession(_service(), websocket).run()

    @app.websocket("/v1/twilio")
    async def twilio(websocket: WebSocket) -> None:
        """A live call from Twilio Media Streams (see :mod:`serving.sessions`)."""
        await TwilioSession(_service(), websocket).run()

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
        "metadata": {"type": "string", "description": "JSON object: source, campaign, industry, …"},
        "speakers": {"type": "string", "description": "a two-channel recording: the speaker of each channel "
                                                      "in order, caller,agent or agent,caller"}}}},
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
        for e in errors[:MAX_LISTED_ERRORS]:
            loc = [str(part) for part in e.get("loc", ()) if part != "body"]
            name = ".".join(loc) or "body"
            fields.append(name)
            messages.append(f"{name}: {e.get('msg', 'invalid')}")
        if len(errors) > MAX_LISTED_ERRORS:
            messages.append(f"and {len(errors) - MAX_LISTED_ERRORS} more problems")
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
        if exc.status_code == 400 and isinstance(exc.__cause__, (ValueError, RecursionError)):
            # FastAPI's "There was an error parsing the body": json.loads raised something other
            # than a JSONDecodeError (bytes that are not UTF-8, nesting past the recursion limit,
            # an integer with more than 4300 digits).
            return error(400, "bad_json", "request body is not valid JSON: not UTF-8, nested too deeply "
                                          "or a number too long")
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
        return error(exc.status_code, codes.get(exc.status_code, f"http_{exc.status_code}"), str(exc.detail))

    @app.exception_handler(BentoMLServiceUnavailable)
    async def overloaded(_: Request, exc: BentoMLServiceUnavailable) -> JSONResponse:
        # The adaptive batcher shed the request: it predicted a miss of batching.max_latency_ms.
        response = error(503, "overloaded", "the server is overloaded; retry shortly")
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    @app.exception_handler(ScoringFailed)
    async def scoring_failed(_: Request, exc: ScoringFailed) -> JSONResponse:
        logger.warning("%s", exc)  # the traceback was logged where the batch ran
        return error(500, "internal_error", "the model failed on this transcript; see the server log")

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


class JsonErrorPages:
    """BentoML middleware: the framework router's own plain-text 404 and 405 pages (a path or
    method no route has) become the JSON error body every other answer of the service uses."""

    _CODES = {404: ("not_found", "Not Found"), 405: ("method_not_allowed", "Method Not Allowed")}

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replacement: bytes | None = None

        async def send_json_errors(message: dict) -> None:
            nonlocal replacement
            if message["type"] == "http.response.start" and message["status"] in self._CODES:
                headers = [(k, v) for k, v in message.get("headers", ())]
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if not content_type.startswith(b"application/json"):
                    code, text = self._CODES[message["status"]]
                    replacement = json.dumps(error_body(code, text)).encode("utf-8")
                    headers = [(k, v) for k, v in headers if k.lower() not in (b"content-type", b"content-length")]
                    headers += [(b"content-type", b"application/json"),
                                (b"content-length", str(len(replacement)).encode("ascii"))]
                    message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and replacement is not None:
                if message.get("more_body", False):
                    return  # the plain-text page's body is dropped
                message = {"type": "http.response.body", "body": replacement}
            await send(message)

        await self.app(scope, receive, send_json_errors)


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
    results = await client.score_batch(items=items)
    for item, result in zip(items, results):
        if _FAILED in result:
            raise ScoringFailed(f"call {item.call_id}: the model failed on this transcript (see the batch log)")
    return results


class ScoringFailed(RuntimeError):
    """The model raised on a transcript (the others of its batch were scored); answered as a 500."""


#: Key of a batch result whose transcript the model failed on.
_FAILED = "_failed"


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
    try:
        all_scores: list[Any] = svc.predictor.predict([item.transcript for item in items])
    except Exception:
        # One transcript the model cannot take must not fail the requests batched with it.
        logger.exception("model run on a batch of %d failed; scoring its transcripts one by one", len(items))
        all_scores = [_predict_alone(svc, item) for item in items]
    model_ms = _ms_since(started)
    results: list[dict[str, Any]] = []
    for item, scores in zip(items, all_scores):
        if scores is None:
            results.append({_FAILED: True})
            continue
        text = item.transcript
        if svc.config.redact_pii:
            text, scores = redact_scores(text, scores)
        decision = svc.policy.decide(scores, item.metadata)
        service_metrics().decisions.labels(route=decision.route, source=item.source).inc()
        if svc.call_log is not None:
            _log_scored(svc, item, text, scores, decision)
        result = score_result(item.call_id, text, scores, decision, timings_ms={"model": model_ms})
        result["batch_size"] = len(items)
        results.append(result)
        logger.info("scored %s: %s (buying_intent %.2f) -> %s", item.source, scores.label, scores.buying_intent,
                    decision.route, extra={"call_id": item.call_id})
    return results


def _predict_alone(svc: CallIntentService, item: BatchItem) -> Any:
    """One transcript's scores, or None (logged) when the model fails on it."""
    try:
        (scores,) = svc.predictor.predict([item.transcript])
        return scores
    except Exception:
        logger.exception("the model failed on one transcript", extra={"call_id": item.call_id})
        return None


def _log_scored(svc: CallIntentService, item: BatchItem, text: str, scores: Any, decision: Any) -> None:
    """Queue the decision log record of a REST-scored call (``text`` is what the client got back)."""
    from serving.calllog.records import record_from_scores

    mode = svc.config.call_log.transcript
    heard, redacted = (text, True) if svc.config.redact_pii and mode != "full" else (item.transcript, False)
    svc.call_log.submit(record_from_scores(
        item.call_id, channel=item.source, metadata=item.metadata, scores=scores, decision=decision,
        transcript=heard, transcript_mode=mode, redacted=redacted, audio_seconds=item.audio_seconds,
        decision_seconds=item.audio_seconds))


@dataclass(frozen=True)
class AudioUpload:
    """What ``/score_audio`` received. Attributes: data, encoding (raw audio only), sample_rate,
    call_id, metadata, filename, speakers (a two-channel recording's speakers in channel order)."""

    data: bytes
    encoding: str | None
    sample_rate: int | None
    call_id: str
    metadata: dict[str, str]
    filename: str
    speakers: tuple[str, ...] = ()


async def _score_audio(svc: CallIntentService, request: Request, config: ServeConfig) -> dict[str, Any]:
    started = time.perf_counter()
    upload = await read_audio_upload(request, config)
    loop = asyncio.get_running_loop()
    limit = config.limits.max_audio_seconds
    from speech.audio import decode_audio

    if config.store_audio:
        await loop.run_in_executor(svc.decode_pool, _store_upload, config, upload)
    # Decode a little past the limit and no further: a huge upload costs at most that much work.
    audio = await loop.run_in_executor(svc.decode_pool, lambda: decode_audio(
        upload.data, encoding=upload.encoding, sample_rate=upload.sample_rate, max_seconds=limit + 0.5,
        keep_channels=bool(upload.speakers)))
    if audio.shape[-1] > round(limit * SAMPLE_RATE):
        raise LimitExceeded("audio_too_long", f"audio is longer than {limit:g} s, the limit "
                                              f"(limits.max_audio_seconds)")
    decoded = time.perf_counter()
    if upload.speakers:
        if audio.shape[0] != 2:
            raise InvalidRequest(f"speakers: the audio has {audio.shape[0]} channel(s); speakers is for a "
                                 "two-channel recording, one speaker per channel", ["speakers"])
        transcript, asr_seconds, text = await loop.run_in_executor(
            svc.decode_pool, lambda: _transcribe_channels(svc, audio, upload.speakers))
    else:
        transcript, asr_seconds = await loop.run_in_executor(
            svc.decode_pool, lambda: svc.asr.transcribe_timed(audio, cut_seconds=OPENING_SECONDS))
        text = transcript.text
    (result,) = await score_batched(svc, [BatchItem(transcript=text, call_id=upload.call_id,
                                                    metadata=upload.metadata, source="score_audio",
                                                    audio_seconds=round(transcript.audio_seconds, 3))])
    result.update(transcript_json(transcript, redact_pii=config.redact_pii))
    result["timings_ms"].update({"decode": round((decoded - started) * 1000.0, 2), "asr": round(asr_seconds * 1000, 2),
                                 "total": _ms_since(started)})
    return result


def _transcribe_channels(svc: CallIntentService, audio: np.ndarray, speakers: Sequence[str]
                         ) -> tuple[OpeningTranscript, float, str]:
    """A two-channel recording: each channel transcribed on its own, the words merged with their
    speakers, and the text the model scores (both speakers tagged, or the caller's words; as a
    two-channel live call)."""
    from speech.speakers import interleave, merge_speakers

    heard, seconds = {}, 0.0
    for speaker, channel in zip(speakers, audio):
        heard[speaker], elapsed = svc.asr.transcribe_timed(channel.copy(), cut_seconds=OPENING_SECONDS)
        seconds += elapsed
    transcript = merge_speakers(heard)
    if svc.predictor.meta.speaker_tags:
        text = interleave({s: t.words for s, t in heard.items()}).text
    else:
        text = heard["caller"].text
    return transcript, seconds, text


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
        if not MIN_UPLOAD_RATE <= sample_rate <= MAX_UPLOAD_RATE:
            raise InvalidRequest(f"sample_rate: must be an integer rate in Hz, got {fields['sample_rate']!r}",
                                 ["sample_rate"])
    speakers: tuple[str, ...] = ()
    if fields.get("speakers"):
        from speech.speakers import SPEAKERS

        speakers = tuple(part.strip() for part in fields["speakers"].split(","))
        if sorted(speakers) != sorted(SPEAKERS):
            raise InvalidRequest(f"speakers: the two channels' speakers in order, e.g. caller,agent, got "
                                 f"{fields['speakers'][:64]!r}", ["speakers"])
        if encoding is not None:
            raise InvalidRequest("speakers: raw audio has one channel; send a two-channel file (wav, flac…)",
                                 ["speakers"])
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
                       metadata=_metadata(metadata, config.limits.max_metadata_items), filename=filename,
                       speakers=speakers)


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
# Logs


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
            record.call_id = call_id_context.get() or ""
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
