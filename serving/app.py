"""The FastAPI app the service's routes are declared on: its middlewares and error contract.

:class:`serving.service.CallIntentService` declares ``/score``, ``/score_audio`` and the two
live WebSockets as its own methods on this app (BentoML class views) and mounts it at ``/``;
the call-log routes (:mod:`serving.calllog.routes`) and the webhook delivery log
(:mod:`serving.webhook_routes`) are included here. Every error answers with
the body of :mod:`serving.http_errors`.

Middlewares, outermost first: request metrics (every outcome counted, refused keys included),
API keys (:mod:`serving.auth`), then the in-flight limit (:mod:`serving.limits`), so requests
without a valid key never take an in-flight slot. Around the whole BentoML app the service adds
the body-size limit and the JSON 404/405 pages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bentoml
from fastapi import FastAPI

from callintent import __version__
from serving.auth import ApiKeyMiddleware, ApiKeys
from serving.calllog.routes import router as call_log_router
from serving.config import ServeConfig
from serving.http_errors import add_error_handlers
from serving.limits import InflightLimitMiddleware
from serving.live_pages import PAGES_PREFIX, router as live_pages_router, static_files
from serving.metrics import RequestMetricsMiddleware
from serving.webhook_routes import router as webhook_router

#: The scoring routes: counted, and each with its own in-flight limit.
SCORING_PATHS = ("/score", "/score_audio")

#: The live feeds, where a view token may stand in for an API key (``?token=``; the route checks it).
VIEW_PATHS = (r"/v1/calls/live", r"/v1/calls/live/events", r"/v1/calls/[^/]+/events")


class ServingModelHeader:
    """BentoML middleware: ``X-Callintent-Model: <name>/<version>`` (the model serving now) on the
    answers of ``paths`` (``/readyz``: a readiness probe or ``curl -i`` sees which version serves).

    Args:
        app: The wrapped ASGI app.
        model_id: The version serving now, None before a model is loaded (no header then).
        paths: The paths whose answers carry it.
    """

    HEADER = b"x-callintent-model"

    def __init__(self, app: Any, model_id: Callable[[], str | None], paths: tuple[str, ...]) -> None:
        self.app = app
        self.model_id = model_id
        self.paths = frozenset(paths)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return

        async def with_model(message: dict) -> None:
            if message["type"] == "http.response.start" and (model := self.model_id()) is not None:
                message = {**message, "headers": [*message.get("headers", ()), (self.HEADER, model.encode("ascii"))]}
            await send(message)

        await self.app(scope, receive, with_model)


def create_app(config: ServeConfig, api_keys: Callable[[], ApiKeys]) -> FastAPI:
    """Build the app (no routes of the service yet: it declares them on its methods).

    Args:
        config: The resolved service config (limits).
        api_keys: The keys accepted now (read per request: key files are re-read on change).

    Returns:
        The app; the service mounts it at ``/``.
    """
    app = FastAPI(title="callintent", version=__version__, docs_url=None, redoc_url=None, openapi_url=None,
                  description="Buying intent in the opening 30 seconds of a call.")
    app.add_middleware(InflightLimitMiddleware, limits={
        "/score": config.limits.max_inflight_requests, "/score_audio": config.limits.max_inflight_audio_requests},
        drain_bytes=config.limits.max_body_bytes)
    app.add_middleware(ApiKeyMiddleware, keys=api_keys, deferred_paths=("/v1/twilio",), view_paths=VIEW_PATHS,
                       open_paths=(PAGES_PREFIX,))
    app.add_middleware(RequestMetricsMiddleware, endpoints=SCORING_PATHS)  # added last = outermost
    add_error_handlers(app)
    app.include_router(call_log_router)  # /calls/{call_id}[/outcome]
    app.include_router(live_pages_router)  # /live, /live/calls/{call_id}
    app.mount(PAGES_PREFIX + "/static", static_files(), name="live-static")
    app.include_router(webhook_router)  # /v1/webhooks/deliveries
    # BentoML's class views resolve a route's ``self`` with Depends(bentoml.get_current_service), a
    # plain function, which FastAPI runs in a worker thread: a thread hop on every request for a
    # global read. The same lookup as a coroutine runs on the event loop.
    app.dependency_overrides[bentoml.get_current_service] = _current_service
    return app


async def _current_service() -> Any:
    return bentoml.get_current_service()


__all__ = ["SCORING_PATHS", "VIEW_PATHS", "ServingModelHeader", "create_app"]
