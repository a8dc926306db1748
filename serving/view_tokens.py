"""Short-lived signed view tokens: a browser may watch one call (or the floor) without an API key.

An agent desktop opens ``/live/calls/{call_id}?token=…`` in an iframe or a browser tab; that
browser must never hold a full API key, which would let it score, record outcomes and watch
every call. A server-side integration that holds the key mints a token instead::

    POST /v1/calls/{call_id}/view-token     (Authorization: Bearer <API key>)
    -> {"token": "v1.<payload>.<signature>", "expires_at": ..., "url": "/live/calls/{call_id}?token=…"}

A token is ``v1.`` + base64url(JSON ``{"scope", "exp"}``) + ``.`` + base64url(HMAC-SHA256 over
the first two parts) with the server's secret. ``scope`` is ``call:<call_id>`` (the screen-pop
of that call only) or ``floor`` (the wallboard, and every call's screen-pop: a supervisor's
view); ``exp`` is a Unix time. A token is read-only by construction: only the live feeds
(``GET /v1/calls/live[/events]``, ``GET /v1/calls/{call_id}/events``) accept it, and nothing
else does.

The secret comes from ``$CALLINTENT_VIEW_TOKEN_SECRET``, or the file named by
``$CALLINTENT_VIEW_TOKEN_SECRET_FILE`` (at least :data:`MIN_SECRET_BYTES` bytes either way). With
neither, each process draws a random secret at start: tokens then die with a restart and are
valid only on the worker that minted them (set a secret when ``workers`` > 1). Rotating the
secret revokes every token at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from callintent.errors import UserError
from serving.auth import Unauthorized

logger = logging.getLogger(__name__)

ENV_SECRET = "CALLINTENT_VIEW_TOKEN_SECRET"
ENV_SECRET_FILE = "CALLINTENT_VIEW_TOKEN_SECRET_FILE"

#: Shortest secret accepted (a short one can be brute-forced from one token).
MIN_SECRET_BYTES = 32
#: Default and longest token lifetime: a screen-pop lasts a call, not a shift.
DEFAULT_TTL_SECONDS = 900
MAX_TTL_SECONDS = 12 * 3600

#: The scope of a token that opens the floor and every call.
FLOOR_SCOPE = "floor"

_VERSION = "v1"


class Forbidden(UserError):
    """A valid view token for something else than what is asked (HTTP 403)."""

    code = "forbidden"
    status = 403


def call_scope(call_id: str) -> str:
    """The scope of a token that opens one call."""
    return f"call:{call_id}"


@dataclass(frozen=True)
class ViewToken:
    """A minted token.

    Attributes:
        token: What the browser presents (``?token=``).
        scope: ``call:<call_id>`` or ``floor``.
        expires_at: Unix time after which it is refused.
    """

    token: str
    scope: str
    expires_at: int


class ViewTokens:
    """Mints and checks view tokens with one secret.

    Args:
        secret: The HMAC key (at least :data:`MIN_SECRET_BYTES` bytes).
        clock: Wall clock in Unix seconds (tests pass a fake).
    """

    def __init__(self, secret: bytes, *, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the view token secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self._clock = clock

    def mint(self, scope: str, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> ViewToken:
        """A token for ``scope`` valid for ``ttl_seconds`` (1..:data:`MAX_TTL_SECONDS`)."""
        if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
            raise ValueError(f"ttl_seconds must be in 1..{MAX_TTL_SECONDS}, got {ttl_seconds!r}")
        expires_at = int(self._clock()) + ttl_seconds
        payload = _b64(json.dumps({"scope": scope, "exp": expires_at}, separators=(",", ":")).encode("utf-8"))
        signed = f"{_VERSION}.{payload}"
        return ViewToken(f"{signed}.{_b64(self._sign(signed))}", scope, expires_at)

    def check(self, token: str | None, scope: str) -> None:
        """Accept ``token`` for ``scope`` (a floor token opens every call), or raise.

        Raises:
            Unauthorized: no token, a malformed or forged one, or an expired one (401).
            Forbidden: a valid token for another call (403).
        """
        if not token:
            raise Unauthorized("missing credentials: send 'Authorization: Bearer <API key>', or ?token=<view token> "
                               "(POST /v1/calls/{call_id}/view-token mints one)")
        version, _, rest = token.partition(".")
        payload, _, signature = rest.rpartition(".")
        if version != _VERSION or not payload or not hmac.compare_digest(
                _b64(self._sign(f"{version}.{payload}")), signature):
            raise Unauthorized("invalid view token")
        try:
            claims = json.loads(_unb64(payload))
            granted, expires_at = str(claims["scope"]), int(claims["exp"])
        except (ValueError, KeyError, TypeError):  # signed by us, so only a bug gets here
            raise Unauthorized("invalid view token") from None
        if self._clock() >= expires_at:
            raise Unauthorized("view token expired: mint a new one")
        if granted != scope and granted != FLOOR_SCOPE:
            raise Forbidden("this view token is for another call")

    def _sign(self, message: str) -> bytes:
        return hmac.new(self._secret, message.encode("utf-8"), hashlib.sha256).digest()  # any text a client sends


def load_view_tokens(*, environ: Mapping[str, str] | None = None) -> tuple[ViewTokens, bool]:
    """The service's view tokens from the environment.

    Args:
        environ: Environment to read (default ``os.environ``).

    Returns:
        ``(tokens, configured)``: ``configured`` is False when the secret is a random one of
        this process (tokens die with it).

    Raises:
        UserError: an unreadable secret file, or a secret shorter than :data:`MIN_SECRET_BYTES`.
    """
    env = os.environ if environ is None else environ
    secret, where = env.get(ENV_SECRET, "").encode("utf-8"), f"${ENV_SECRET}"
    if not secret and env.get(ENV_SECRET_FILE):
        path = Path(env[ENV_SECRET_FILE])
        try:
            secret, where = path.read_bytes().strip(), str(path)
        except OSError as e:
            raise UserError(f"{path}: cannot read the view token secret: {e.strerror or e}") from None
    if not secret:
        return ViewTokens(secrets.token_bytes(MIN_SECRET_BYTES)), False
    if len(secret) < MIN_SECRET_BYTES:
        raise UserError(f"{where}: the view token secret is shorter than {MIN_SECRET_BYTES} bytes "
                        "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')")
    return ViewTokens(secret), True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


__all__ = ["DEFAULT_TTL_SECONDS", "ENV_SECRET", "ENV_SECRET_FILE", "FLOOR_SCOPE", "Forbidden", "MAX_TTL_SECONDS",
           "MIN_SECRET_BYTES", "ViewToken", "ViewTokens", "call_scope", "load_view_tokens"]
