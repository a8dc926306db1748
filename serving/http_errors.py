"""The HTTP error contract: one JSON body for every error any route or middleware answers.

Errors (every HTTP route): ``{"error": {"code": str, "message": str[, "fields": [str]]}}`` with

======================  ======  ==========================================================
code                    status  when
======================  ======  ==========================================================
bad_json                400     the body is not JSON
invalid_request         422     a field is missing or wrong (``fields`` names them)
bad_request             400     other bad input
unauthorized            401     API key missing or wrong; view token missing, wrong or expired
forbidden               403     a view token for another call (serving/view_tokens.py)
body_too_large          413     more than ``limits.max_body_bytes``
text_too_long           413     transcript over ``limits.max_text_chars``
audio_too_long          413     audio over ``limits.max_audio_seconds``
bad_audio               422     audio that cannot be decoded
not_found / method_not_allowed  404 / 405   (also for paths and methods no route has: :class:`JsonErrorPages`)
overloaded              503     shed: more than ``limits.max_inflight_requests`` (``/score``) or
                                ``limits.max_inflight_audio_requests`` (``/score_audio``) in flight,
                                or the batcher predicted a miss of ``batching.max_latency_ms``;
                                ``Retry-After: 1`` says when to retry
outcome_conflict        409     a different outcome is already recorded for the call (serving/calllog/routes.py)
callback_conflict       409     a different callback attempt is recorded for that call, time and agent
call_log_unavailable    503     the call log database is down (``/calls/…`` routes and voicemails); retry
call_log_disabled       404     ``call_log.enabled`` is false
internal_error          500     a bug, or the model failing on this transcript (details only in the
                                server log; the other requests batched with it are answered)
======================  ======  ==========================================================

The live WebSocket routes report problems as ``error`` events instead (:mod:`serving.sessions`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from bentoml.exceptions import ServiceUnavailable as BentoMLServiceUnavailable
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from callintent.errors import UserError
from serving.auth import Unauthorized
from serving.limits import RETRY_AFTER_SECONDS, LimitExceeded, error_body
from serving.schemas import ErrorResponse, InvalidRequest
from serving.scoring import ScoringFailed
from serving.view_tokens import Forbidden
from speech.audio import AudioError

logger = logging.getLogger(__name__)

#: The error answers a scoring route documents in the OpenAPI schema.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text} for status, text in (
        (400, "Body is not JSON"), (401, "Missing or wrong API key"), (413, "Over a configured limit"),
        (422, "Invalid field (error.fields names it) or undecodable audio"),
        (503, "Overloaded: retry after the Retry-After header's seconds"))
}

#: Most validation problems a 422 body lists: a body with 100 000 unknown keys must not earn a
#: response larger than itself.
MAX_LISTED_ERRORS = 10


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(code, message, **extra), status_code=status)


def add_error_handlers(app: FastAPI) -> None:
    """Answer every exception a route may raise with the JSON error body (table above)."""
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(InvalidRequest, _invalid_field)
    app.add_exception_handler(LimitExceeded, _limit)
    app.add_exception_handler(Unauthorized, _unauthorized)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(AudioError, _bad_audio)
    app.add_exception_handler(UserError, _bad_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(BentoMLServiceUnavailable, _overloaded)
    app.add_exception_handler(ScoringFailed, _scoring_failed)
    app.add_exception_handler(Exception, _internal)


async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    bad_json = [e for e in errors if e.get("type") == "json_invalid"]
    if bad_json:
        detail = (bad_json[0].get("ctx") or {}).get("error", "JSON decode error")
        return _error(400, "bad_json", f"request body is not valid JSON: {detail}")
    fields = []
    messages = []
    for e in errors[:MAX_LISTED_ERRORS]:
        name = ".".join(str(part) for part in e.get("loc", ()) if part != "body") or "body"
        fields.append(name)
        messages.append(f"{name}: {e.get('msg', 'invalid')}")
    if len(errors) > MAX_LISTED_ERRORS:
        messages.append(f"and {len(errors) - MAX_LISTED_ERRORS} more problems")
    return _error(422, "invalid_request", "; ".join(messages), fields=list(dict.fromkeys(fields)))


async def _invalid_field(_: Request, exc: InvalidRequest) -> JSONResponse:
    return _error(422, "invalid_request", str(exc), fields=exc.fields)


async def _limit(_: Request, exc: LimitExceeded) -> JSONResponse:
    return _error(exc.status, exc.code, str(exc))


async def _unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
    return _error(401, exc.code, str(exc))


async def _forbidden(_: Request, exc: Forbidden) -> JSONResponse:
    return _error(403, exc.code, str(exc))


async def _bad_audio(_: Request, exc: AudioError) -> JSONResponse:
    return _error(422, "bad_audio", str(exc))


async def _bad_request(_: Request, exc: UserError) -> JSONResponse:
    return _error(400, "bad_request", str(exc))


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400 and isinstance(exc.__cause__, (ValueError, RecursionError)):
        # FastAPI's "There was an error parsing the body": json.loads raised something other
        # than a JSONDecodeError (bytes that are not UTF-8, nesting past the recursion limit,
        # an integer with more than 4300 digits).
        return _error(400, "bad_json", "request body is not valid JSON: not UTF-8, nested too deeply "
                                       "or a number too long")
    codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
    return _error(exc.status_code, codes.get(exc.status_code, f"http_{exc.status_code}"), str(exc.detail))


async def _overloaded(_: Request, exc: BentoMLServiceUnavailable) -> JSONResponse:
    # The adaptive batcher shed the request: it predicted a miss of batching.max_latency_ms.
    response = _error(503, "overloaded", "the server is overloaded; retry shortly")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


async def _scoring_failed(_: Request, exc: ScoringFailed) -> JSONResponse:
    logger.warning("%s", exc)  # the traceback was logged where the batch ran
    return _error(500, "internal_error", "the model failed on this transcript; see the server log")


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s", request.url.path, exc_info=exc)
    return _error(500, "internal_error", "internal error; see the server log")


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
                headers = list(message.get("headers", ()))
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


__all__ = ["ERROR_RESPONSES", "JsonErrorPages", "MAX_LISTED_ERRORS", "add_error_handlers"]
