"""Request, audio and live-session limits, each refused with an error that names the limit.

* :class:`BodyLimitMiddleware` refuses bodies over ``max_body_bytes`` with 413 before a route
  reads them (``Content-Length`` up front; chunked bodies as they arrive).
* :func:`check_text` / :func:`check_audio_seconds` guard what the model and the ASR get.
* :class:`SessionSlots` counts live calls; a call over capacity is refused at its start so the
  calls already admitted keep real time (nobody degrades, the newcomer retries).
* :class:`InflightLimitMiddleware` sheds REST scoring requests over ``max_inflight_requests``
  (``/score``) or ``max_inflight_audio_requests`` (``/score_audio``) at once: 503 ``overloaded``
  with ``Retry-After``, answered before the body is read, so an overloaded server says so at once
  instead of queueing every caller into a timeout.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException

from callintent.errors import UserError

logger = logging.getLogger(__name__)

#: WebSocket close code "Try Again Later" (RFC 6455 registry): the server is at capacity.
CLOSE_TRY_AGAIN_LATER = 1013
#: ``Retry-After`` seconds on a shed request: scoring takes milliseconds to a few seconds.
RETRY_AFTER_SECONDS = 1


class LimitExceeded(UserError):
    """A request is over a configured limit; ``code`` and the message name it (HTTP 413)."""

    status = 413

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_text(text: str, max_chars: int) -> None:
    """Refuse a transcript longer than ``limits.max_text_chars``."""
    if len(text) > max_chars:
        raise LimitExceeded("text_too_long", f"transcript has {len(text)} characters; the limit "
                                             f"(limits.max_text_chars) is {max_chars}")


def check_audio_seconds(seconds: float, max_seconds: float) -> None:
    """Refuse audio longer than ``limits.max_audio_seconds``."""
    if seconds > max_seconds:
        raise LimitExceeded("audio_too_long", f"audio is {seconds:.1f} s long; the limit "
                                              f"(limits.max_audio_seconds) is {max_seconds:g} s")


def body_too_large(max_bytes: int) -> LimitExceeded:
    return LimitExceeded("body_too_large", f"request body is larger than the limit "
                                           f"(limits.max_body_bytes) of {max_bytes} bytes")


class SessionSlots:
    """Admission control for live calls in one worker process, and the register of its open calls.

    Only the event loop thread touches it (WebSocket handlers), so a plain counter is enough.

    Attributes:
        capacity: ``limits.max_live_sessions``.
        active: Slots taken (admitted calls).
        sessions: Every open session, admitted or not yet (a shutdown ends each with its final event).
        draining: The worker is shutting down: new calls are refused.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.active = 0
        self.sessions: set[Any] = set()
        self.draining = False

    def try_acquire(self) -> bool:
        """Take a slot; False (and nothing taken) when all are in use."""
        if self.active >= self.capacity:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        if self.active <= 0:
            raise RuntimeError("SessionSlots.release without a matching acquire")
        self.active -= 1

    def refusal_reason(self) -> str:
        """Close reason for a refused call (WebSocket reasons must stay under 123 bytes)."""
        return f"server at capacity ({self.capacity} live calls); try again later"


class BodyLimitMiddleware:
    """ASGI middleware: 413 JSON for HTTP bodies over ``max_bytes``.

    Args:
        app: The wrapped ASGI app.
        max_bytes: ``limits.max_body_bytes``.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            # Refuse before reading a byte: the client learns at once and we buffer nothing.
            await _send_error(send, body_too_large(self.max_bytes))
            return
        received = 0
        response_started = False

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyOverLimit(self.max_bytes)
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyOverLimit:
            if response_started:
                raise
            await _send_error(send, body_too_large(self.max_bytes))


class _BodyOverLimit(HTTPException):
    """Raised from ``receive`` when a chunked body passes the limit.

    An ``HTTPException`` because FastAPI turns any other error while reading a body into a 400;
    this one reaches the app's exception handler (413 JSON) or, outside FastAPI, the middleware.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(status_code=413, detail=str(body_too_large(max_bytes)))


class InflightLimitMiddleware:
    """ASGI middleware: at most ``limits[path]`` HTTP requests in flight per path; 503 beyond.

    A request over the limit is answered at once with 503 ``overloaded``, a ``Retry-After``
    header and the JSON error body, without scoring it, so overload costs the server almost
    nothing and the caller (a call router) can fail over instead of waiting out a timeout. The
    request body is read and dropped first (up to ``drain_bytes``): a response sent while the
    client is still uploading (an audio file) can be lost to the connection reset that follows,
    and the client would see a read error instead of the 503. Only the event loop thread runs
    it, so plain counters are enough.

    Args:
        app: The wrapped ASGI app.
        limits: Path -> most requests in flight (``/score`` -> ``max_inflight_requests``,
            ``/score_audio`` -> ``max_inflight_audio_requests``); other paths are not limited.
        drain_bytes: Most body bytes read from a shed request (``limits.max_body_bytes``).
    """

    def __init__(self, app: Any, limits: dict[str, int], drain_bytes: int = 10 * 2**20) -> None:
        self.app = app
        self.limits = dict(limits)
        self.drain_bytes = drain_bytes
        self.inflight = dict.fromkeys(self.limits, 0)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path not in self.limits:
            await self.app(scope, receive, send)
            return
        limit = self.limits[path]
        if self.inflight[path] >= limit:
            logger.warning("shed %s: %d requests in flight (the limit)", path, limit)
            await _drain(receive, self.drain_bytes)
            await _send_error(send, Overloaded(f"the server is overloaded ({limit} {path} requests in flight); "
                                               f"retry after {RETRY_AFTER_SECONDS} s"))
            return
        self.inflight[path] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight[path] -= 1


class Overloaded(UserError):
    """The server sheds a request it cannot serve in time (HTTP 503 with ``Retry-After``)."""

    code = "overloaded"
    status = 503


async def _drain(receive: Any, max_bytes: int) -> None:
    """Read and drop a request's body, up to ``max_bytes`` (a larger one is cut off there)."""
    seen = 0
    while seen <= max_bytes:
        message = await receive()
        if message["type"] != "http.request":
            return  # the client went away
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _content_length(scope: dict) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The one error shape every route returns: ``{"error": {"code", "message", ...}}``."""
    return {"error": {"code": code, "message": message, **extra}}


async def _send_error(send: Any, error: LimitExceeded | Overloaded) -> None:
    body = json.dumps(error_body(error.code, str(error))).encode("utf-8")
    # Connection: close — the body was never read, and must not be parsed as the next request.
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    if isinstance(error, Overloaded):
        headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
