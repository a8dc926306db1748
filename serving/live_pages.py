"""The live pages: the supervisor wallboard (``/live``) and the agent screen-pop (``/live/calls/{call_id}``).

Plain HTML, CSS and one small vanilla JavaScript file shipped in the package (``serving/static``):
no build step, no CDN, so the pages work on a server with no internet. The pages hold no call
data; they read the subscriber feeds (``GET /v1/calls/live/events``, ``GET
/v1/calls/{call_id}/events``), passing on the ``?token=`` view token of their own URL
(:mod:`serving.view_tokens`), so they are served without credentials
(``ApiKeyMiddleware(open_paths=...)``). Every text they show comes redacted from the floor
(:mod:`serving.live_floor`), and the script writes it with ``textContent`` only.

Headers: a Content-Security-Policy that allows only this server's own scripts, styles and feeds,
and ``Referrer-Policy: no-referrer`` so a token in the page URL never leaves in a Referer. The
screen-pop may be framed (an agent desktop embeds it); set ``frame-ancestors`` at a proxy to
restrict who may.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

#: The pages' files (HTML, CSS, JS), package data of ``serving``.
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Where the pages live; served without credentials (the feeds they read are checked).
PAGES_PREFIX = "/live"

_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)


@router.get(PAGES_PREFIX)
async def wallboard() -> FileResponse:
    """The supervisor wallboard: every call open now (``?route=``, ``?source=`` filter; ``?token=``)."""
    return FileResponse(STATIC_DIR / "wallboard.html", media_type="text/html", headers=_HEADERS)


@router.get(PAGES_PREFIX + "/calls/{call_id}")
async def screen_pop(call_id: str) -> FileResponse:
    """The agent screen-pop of one call (``?token=`` a view token for it)."""
    return FileResponse(STATIC_DIR / "screen_pop.html", media_type="text/html", headers=_HEADERS)


def static_files() -> StaticFiles:
    """The pages' CSS and JavaScript, mounted at ``/live/static``."""
    return StaticFiles(directory=STATIC_DIR)


__all__ = ["PAGES_PREFIX", "STATIC_DIR", "router", "static_files"]
