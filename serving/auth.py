"""API-key authentication for every scoring route and WebSocket handshake.

Keys come from ``$CALLINTENT_API_KEYS`` (comma or whitespace separated), from the file named by
``$CALLINTENT_API_KEYS_FILE`` and from ``ServeConfig.api_keys_file`` (one key per line, ``#``
comments). No key configured = authentication off (a warning is logged at start).

A client presents a key as ``Authorization: Bearer <key>``. Telephony platforms that cannot set
headers on a WebSocket (Twilio ``<Stream>``, many SIP gateways) may use ``?token=<key>`` in the
URL instead; Twilio also forbids query strings in ``<Stream url>``, so ``/v1/twilio`` additionally
accepts the key as the ``token`` custom parameter of its ``start`` message. A query-string key
can end up in proxy access logs: prefer the header wherever the client allows it.

Every comparison runs :func:`hmac.compare_digest` against *all* keys (no early exit), so the
time a check takes does not reveal which key, or how much of one, matched.

Rotation without a restart: the service holds an :class:`ApiKeySource`, which re-reads the key
files when they change (checked at most every :data:`RELOAD_SECONDS`). Add the new key as a
second line, move clients over, delete the old line. A change that would leave no key at all,
or that is unreadable or invalid, is refused (logged; the keys in use stay), so a truncated or
half-written file can never switch authentication off. Keys from ``$CALLINTENT_API_KEYS`` are
read once, at start.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from callintent.errors import UserError

logger = logging.getLogger(__name__)

ENV_KEYS = "CALLINTENT_API_KEYS"
ENV_KEYS_FILE = "CALLINTENT_API_KEYS_FILE"

#: Query parameter (WebSocket handshakes) and Twilio custom parameter that may carry the key.
TOKEN_PARAM = "token"

#: Shortest key accepted: a shorter one is guessable.
MIN_KEY_LENGTH = 8

#: How often the key files are checked for changes (a stat per file; the read only on change).
RELOAD_SECONDS = 2.0


class Unauthorized(UserError):
    """No API key, or a wrong one, on a route that requires one (HTTP 401)."""

    code = "unauthorized"
    status = 401


class ApiKeys:
    """The set of accepted keys and the constant-time check against them.

    Args:
        keys: Accepted keys; empty = authentication disabled.
    """

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._keys = tuple(k.encode("utf-8") for k in dict.fromkeys(keys))

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def check(self, presented: str | None) -> bool:
        """True when authentication is off or ``presented`` equals one of the keys."""
        if not self._keys:
            return True
        if not presented:
            return False
        candidate = presented.encode("utf-8")
        matched = False
        for key in self._keys:  # all keys, always: timing must not depend on which one matches
            matched |= hmac.compare_digest(candidate, key)
        return matched

    def require(self, presented: str | None) -> None:
        """Raise :class:`Unauthorized` unless :meth:`check` passes; the message says what to send."""
        if self.check(presented):
            return
        if not presented:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' "
                               f"(WebSockets may use ?{TOKEN_PARAM}=<key>)")
        raise Unauthorized("invalid API key")


def presented_key(headers: Mapping[str, str], query: Mapping[str, str] | None = None) -> str | None:
    """The key a request carries: the Bearer header first, then ``?token=``.

    Args:
        headers: Request headers (case-insensitive mapping, e.g. Starlette ``Headers``).
        query: Query parameters (only consulted for WebSocket handshakes).

    Returns:
        The key, or None when the request carries none.
    """
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if query is not None:
        # The first of repeated ?token= values, as for headers: a mapping would keep the last, so
        # "?token=<anything>&token=<key>" and "Authorization" twice would be judged differently.
        tokens = query.getlist(TOKEN_PARAM) if hasattr(query, "getlist") else [query.get(TOKEN_PARAM, "")]
        if tokens and tokens[0]:
            return tokens[0]
    return None


def load_api_keys(keys_file: str | Path | None = None, *, environ: Mapping[str, str] | None = None) -> ApiKeys:
    """Collect the accepted keys from the environment and key files.

    Args:
        keys_file: ``ServeConfig.api_keys_file`` (``""``/None = none).
        environ: Environment to read (default ``os.environ``).

    Returns:
        The accepted keys (disabled when none are configured).

    Raises:
        UserError: a key file that cannot be read, or a key shorter than :data:`MIN_KEY_LENGTH`
            (naming the file and line, never the key).
    """
    env = os.environ if environ is None else environ
    keys: list[str] = []
    for i, key in enumerate(re.split(r"[\s,]+", env.get(ENV_KEYS, "").strip())):
        if key:
            _check_key(key, f"${ENV_KEYS} entry {i + 1}")
            keys.append(key)
    for path in (env.get(ENV_KEYS_FILE), keys_file):
        if path:
            keys.extend(_read_key_file(Path(path)))
    return ApiKeys(keys)


class ApiKeySource:
    """The accepted keys, re-read from the key files when they change (rotation without a restart).

    Args:
        keys_file: ``ServeConfig.api_keys_file`` (``""``/None = none).
        environ: Environment to read (default ``os.environ``).
        reload_seconds: Least time between two looks at the files.
        clock: Monotonic clock (tests pass a fake).

    Raises:
        UserError: at construction, as :func:`load_api_keys` (a bad start fails fast).
    """

    def __init__(self, keys_file: str | Path | None = None, *, environ: Mapping[str, str] | None = None,
                 reload_seconds: float = RELOAD_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._keys_file = keys_file
        self._environ = dict(os.environ if environ is None else environ)
        self._files = [Path(p) for p in (self._environ.get(ENV_KEYS_FILE), keys_file) if p]
        self._reload_seconds = reload_seconds
        self._clock = clock
        self._keys = load_api_keys(keys_file, environ=self._environ)
        self._stamp = self._file_stamp()
        self._checked = clock()

    def current(self) -> ApiKeys:
        """The keys to check a request against (reloaded first when a key file changed)."""
        if self._files and self._clock() - self._checked >= self._reload_seconds:
            self._checked = self._clock()
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._stamp = stamp  # judged once per change, so a refused change is logged once
                self._reload()
        return self._keys

    def _reload(self) -> None:
        try:
            keys = load_api_keys(self._keys_file, environ=self._environ)
        except UserError as e:
            logger.error("API key files changed but cannot be used (%s); keeping the %d keys in use", e,
                         len(self._keys))
            return
        if self._keys.enabled and not keys.enabled:
            logger.error("API key files changed to hold no key; refusing to switch authentication off "
                         "(keeping the %d keys in use; restart without keys to really turn it off)", len(self._keys))
            return
        logger.info("API key files changed: %d keys accepted (were %d)", len(keys), len(self._keys))
        self._keys = keys

    def _file_stamp(self) -> tuple[tuple[int, int, int] | None, ...]:
        stamps = []
        for path in self._files:
            try:
                st = path.stat()
            except OSError:
                stamps.append(None)
                continue
            stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(stamps)


def _read_key_file(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise UserError(f"{path}: cannot read API key file: {e.strerror or e}") from None
    keys = []
    for number, line in enumerate(lines, start=1):
        key = line.split("#", 1)[0].strip()
        if key:
            _check_key(key, f"{path}:{number}")
            keys.append(key)
    return keys


def _check_key(key: str, where: str) -> None:
    if len(key) < MIN_KEY_LENGTH:
        raise UserError(f"{where}: API key is shorter than {MIN_KEY_LENGTH} characters")


class ApiKeyMiddleware:
    """ASGI middleware: every HTTP request and WebSocket handshake it sees must carry a valid key.

    Mounted on the service's FastAPI app, so it guards exactly the scoring routes and WebSockets;
    BentoML's ops routes (``/livez``, ``/readyz``, ``/metrics``, ``/docs.json``) stay open for
    probes and scrapers. A refused HTTP request gets 401 ``{"error": {"code": "unauthorized", …}}``;
    a refused WebSocket handshake gets the same 401 body as an HTTP denial response where the
    server supports it (uvicorn does), else a close with code 1008.

    Args:
        app: The wrapped ASGI app.
        keys: Returns the accepted keys (looked up per request: they load with the service).
        deferred_paths: WebSocket paths where a handshake *without* credentials is let through
            and the route checks a key later (Twilio's ``token`` custom parameter). A wrong
            key presented at the handshake is still refused there.
        view_paths: HTTP ``GET`` paths (regular expressions, matched whole) where a request
            without an ``Authorization`` header is let through for the route to check a view
            token instead (:mod:`serving.view_tokens`): the live feeds.
        open_paths: Paths served, with everything under them, without any credentials: the live
            pages and their assets, which hold no call data (the feeds they read are checked).
    """

    def __init__(self, app: Any, keys: Callable[[], ApiKeys], deferred_paths: Iterable[str] = (),
                 view_paths: Iterable[str] = (), open_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.keys = keys
        self.deferred_paths = frozenset(deferred_paths)
        self.view_paths = tuple(re.compile(p) for p in view_paths)
        self.open_paths = tuple(open_paths)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        from starlette.datastructures import Headers, QueryParams

        keys = self.keys()
        websocket = scope["type"] == "websocket"
        path = scope["path"]
        if not websocket and any(path == p or path.startswith(p + "/") for p in self.open_paths):
            await self.app(scope, receive, send)
            return
        presented = presented_key(Headers(scope=scope), QueryParams(scope.get("query_string", b"")) if websocket else None)
        if keys.check(presented):
            await self.app(scope, receive, send)
            return
        if presented is None and (path in self.deferred_paths if websocket else (
                scope.get("method") == "GET" and any(p.fullmatch(path) for p in self.view_paths))):
            # The route must check a key or view token itself before doing any work
            # (scope["state"]["auth_deferred"]).
            scope.setdefault("state", {})["auth_deferred"] = True
            await self.app(scope, receive, send)
            return
        try:
            keys.require(presented)
        except Unauthorized as e:
            error = e
        logger.warning("refused %s %s: %s", "WebSocket" if websocket else "request", scope["path"], error)
        body = json.dumps({"error": {"code": error.code, "message": str(error)}}).encode("utf-8")
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"www-authenticate", b'Bearer realm="callintent"')]
        if websocket:
            await receive()  # the websocket.connect event, answered below instead of accepted
        if not websocket:
            await send({"type": "http.response.start", "status": 401, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        elif "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008, "reason": "unauthorized"})
