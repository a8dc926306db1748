"""``GET /v1/webhooks/deliveries``: the webhook delivery log (behind the API keys like every route).

Query: ``status`` (``pending`` | ``delivered`` | ``failed``), ``endpoint``, ``call_id``, ``limit``
(1–1000, default 100). Answer, newest first::

    {"deliveries": [{"id", "idempotency_key", "event_id", "event", "endpoint", "call_id", "status",
                     "attempts", "created_at", "next_attempt_at", "last_attempt_at", "delivered_at",
                     "last_status_code", "last_error"}, …],
     "count": n, "backlog": {"pending": n, "oldest_seconds": s}}

422 names a bad parameter; 404 ``call_log_disabled`` when the call log (which holds the outbox)
is off; 503 ``call_log_unavailable`` when its database is down. ``callintent webhooks retry``
sends ``failed`` deliveries again.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

# The call-log routes' lookups of the store and of a database outage (one rule for both routers).
from serving.calllog.routes import _store, unavailable_response

router = APIRouter()


@router.get("/v1/webhooks/deliveries")
async def list_deliveries(
    status: Literal["pending", "delivered", "failed"] | None = None,
    endpoint: str | None = Query(None, max_length=64),
    call_id: str | None = Query(None, max_length=128),
    limit: int = Query(100, ge=1, le=1000),
) -> JSONResponse:
    """The webhook delivery log, filtered (see the module docstring)."""
    from serving.calllog.outbox import Outbox
    from serving.calllog.records import utc_now

    store = _store()
    if isinstance(store, JSONResponse):
        return store
    outbox = Outbox(store)
    try:
        rows = await asyncio.to_thread(outbox.deliveries, status, endpoint=endpoint, call_id=call_id, limit=limit)
        backlog = await asyncio.to_thread(outbox.backlog, utc_now())
    except Exception as e:  # noqa: BLE001 - only database outages become 503; the rest re-raise
        return unavailable_response(e)
    return JSONResponse({"deliveries": [d.to_json() for d in rows], "count": len(rows),
                         "backlog": {"pending": backlog.pending, "oldest_seconds": round(backlog.oldest_seconds, 3)}})


__all__ = ["router"]
