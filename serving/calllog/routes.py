"""The call log's HTTP routes: outcome feedback from a CRM, and reading a logged call back.

``POST /calls/{call_id}/outcome`` — body :class:`serving.schemas.OutcomeRequest`. An outcome is
written **once** per call id (first report wins):

======  ==========================================================================================
status  when
======  ==========================================================================================
201     recorded; the call is in the log
200     the same outcome again: nothing changed (a CRM retry is safe)
202     accepted for a call the log has not seen (yet): stored as an *orphan*, joined to the call
        when it is logged (a CRM may be faster than the write-behind queue), counted as an
        orphan by ``callintent report calls`` while no call arrives
409     a *different* outcome is already recorded: nothing changed; ``error.recorded`` holds it
        and ``error.fields`` names the fields that differ (change it on purpose with ``PUT``,
        not by a retry)
422     invalid field (``error.fields`` names it), or a malformed call id
404     ``call_log.enabled`` is false (``call_log_disabled``)
503     the database is unavailable (``call_log_unavailable``, ``Retry-After``); retry
======  ==========================================================================================

Body of 200/201/202: ``{"call_id", "status": "recorded" | "unchanged", "call_logged": bool,
"outcome": {converted, revenue, disposition, agent, queue, occurred_at, received_at}}``.

``PUT /calls/{call_id}/outcome`` — body :class:`serving.schemas.OutcomeCorrection` (the outcome
fields plus a required ``reason``): replaces the recorded outcome on purpose (a cancelled sale, a
wrong disposition). 200 ``{"status": "corrected", "previous": {…}, …}`` when one was recorded,
else 201/202 ``"recorded"`` as above; every correction is kept (time, reason, previous, new) and
listed by ``GET``.

``GET /calls/{call_id}`` — ``{"call_id", "call": {…} | null, "outcome": {…} | null, "orphan",
"corrections": [{"corrected_at", "reason", "previous", "current"}]}``
(the record of :class:`serving.calllog.records.CallRecord`); 404 ``not_found`` when neither is
logged. A scored call appears about ``call_log.flush_seconds`` after its response.

``POST /calls/missed`` — body :class:`serving.schemas.MissedCallRequest` (caller, missed_at,
metadata, owner, queue; no audio): logs a missed call with intent ``unknown`` and the callback
terms the policy's ``callbacks:`` section gives it. 201 ``{"call_id", "status": "recorded",
"missed_call": {…, "priority", "sla_seconds", "due_at"}}``; 200 ``"replaced"`` when the id was
already logged as missed (the latest report wins). A voicemail is ``POST /score_audio`` with
``kind=voicemail`` instead: its recording is scored and gives the missed call its intent.

``POST /calls/{call_id}/callbacks`` — body :class:`serving.schemas.CallbackRequest`: one callback
attempt (attempted_at, connected, agent, outcome). 201 recorded; 200 the same report again
(``unchanged``); 202 recorded for a call not logged as missed (yet); 409 ``callback_conflict``: a
different report is recorded for that call, time and agent (``error.recorded`` holds it).

All routes sit behind the same API-key check as the scoring routes (``serving.auth``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from serving.limits import error_body
from serving.schemas import (
    CallbackRequest, MissedCallRequest, OutcomeCorrection, OutcomeRequest, new_call_id, request_metadata, valid_call_id,
)

if TYPE_CHECKING:
    from serving.calllog.records import Outcome
    from serving.calllog.store import CallLogStore

logger = logging.getLogger(__name__)

router = APIRouter()

_STATUS = {("created", True): 201, ("created", False): 202, ("unchanged", True): 200, ("unchanged", False): 202}


@router.post("/calls/{call_id}/outcome")
async def record_outcome(call_id: str, body: OutcomeRequest) -> JSONResponse:
    """Record what happened to a call (idempotent; see the module docstring for the statuses)."""
    store = _store_for(call_id)
    if isinstance(store, JSONResponse):
        return store
    outcome = _outcome_of(call_id, body)
    try:
        written = await asyncio.to_thread(store.record_outcome, outcome)
    except Exception as e:  # noqa: BLE001 - only database outages become 503; the rest re-raise
        return unavailable_response(e)
    if written.status == "conflict":
        recorded = written.outcome
        fields = [name for name in ("converted", "revenue", "disposition", "agent", "queue")
                  if getattr(recorded, name) != getattr(outcome, name)]
        if not fields:
            fields = ["occurred_at"]
        logger.warning("outcome for call %s refused: differs from the recorded one in %s", call_id, ", ".join(fields),
                       extra={"call_id": call_id})
        return JSONResponse(error_body(
            "outcome_conflict", f"a different outcome is already recorded for call {call_id} "
                                f"(differs in {', '.join(fields)}); outcomes are written once",
            fields=fields, recorded=recorded.to_json()), status_code=409)
    status = _STATUS[(written.status, written.call_logged)]
    logger.info("outcome for call %s: %s (converted %s%s)", call_id, written.status, written.outcome.converted,
                "" if written.call_logged else ", call not logged yet", extra={"call_id": call_id})
    return JSONResponse({"call_id": call_id, "status": "recorded" if written.status == "created" else "unchanged",
                         "call_logged": written.call_logged, "outcome": written.outcome.to_json()},
                        status_code=status)


@router.put("/calls/{call_id}/outcome")
async def correct_outcome(call_id: str, body: OutcomeCorrection) -> JSONResponse:
    """Replace a call's recorded outcome on purpose, keeping the change (see the module docstring)."""
    store = _store_for(call_id)
    if isinstance(store, JSONResponse):
        return store
    outcome = _outcome_of(call_id, body)
    try:
        previous, call_logged = await asyncio.to_thread(store.correct_outcome, outcome, body.reason)
    except Exception as e:  # noqa: BLE001
        return unavailable_response(e)
    logger.info("outcome for call %s %s (converted %s): %s", call_id,
                "corrected" if previous else "recorded by a correction", outcome.converted, body.reason,
                extra={"call_id": call_id})
    status = 200 if previous is not None else (201 if call_logged else 202)
    return JSONResponse({"call_id": call_id, "status": "corrected" if previous else "recorded",
                         "call_logged": call_logged, "outcome": outcome.to_json(),
                         "previous": previous.to_json() if previous else None}, status_code=status)


@router.post("/calls/missed")
async def record_missed_call(body: MissedCallRequest) -> JSONResponse:
    """Log a missed call (no audio) with its callback terms (see the module docstring)."""
    import bentoml

    from serving.calllog.records import as_utc, utc_now

    call_id = body.call_id or new_call_id()
    store = _store_for(call_id)
    if isinstance(store, JSONResponse):
        return store
    service = bentoml.get_current_service()
    scoring = service.scoring
    metadata = request_metadata(body.metadata, service.config.limits.max_metadata_items)
    missed_at = as_utc(body.missed_at) if body.missed_at is not None else utc_now()
    try:
        missed, status = await asyncio.to_thread(
            scoring.log_missed, call_id, kind="missed", missed_at=missed_at, caller=body.caller, metadata=metadata,
            owner=body.owner, queue=body.queue)
    except Exception as e:  # noqa: BLE001
        return unavailable_response(e)
    return JSONResponse({"call_id": call_id, "status": "recorded" if status == "created" else "replaced",
                         "missed_call": missed.to_json()}, status_code=201 if status == "created" else 200)


@router.post("/calls/{call_id}/callbacks")
async def record_callback(call_id: str, body: CallbackRequest) -> JSONResponse:
    """Record one callback attempt (idempotent per call, time and agent; see the module docstring)."""
    from serving.calllog.callbacks import CallbackAttempt, CallbackLog
    from serving.calllog.records import as_utc

    store = _store_for(call_id)
    if isinstance(store, JSONResponse):
        return store
    attempt = CallbackAttempt(call_id=call_id, attempted_at=as_utc(body.attempted_at), connected=body.connected,
                              agent=body.agent, outcome=body.outcome)
    try:
        status, recorded, missed_logged = await asyncio.to_thread(CallbackLog(store).record_attempt, attempt)
    except Exception as e:  # noqa: BLE001
        return unavailable_response(e)
    if status == "conflict":
        fields = [name for name in ("connected", "outcome") if getattr(recorded, name) != getattr(attempt, name)]
        return JSONResponse(error_body(
            "callback_conflict", f"a different callback attempt is recorded for call {call_id} at "
                                 f"{recorded.to_json()['attempted_at']} by agent {attempt.agent!r} (differs in "
                                 f"{', '.join(fields)}); each attempt is recorded once",
            fields=fields, recorded=recorded.to_json()), status_code=409)
    logger.info("callback attempt for call %s: %s (connected %s)", call_id, status, attempt.connected,
                extra={"call_id": call_id})
    code = 202 if not missed_logged else (201 if status == "created" else 200)
    return JSONResponse({"call_id": call_id, "status": "recorded" if status == "created" else "unchanged",
                         "missed_logged": missed_logged, "callback": recorded.to_json()}, status_code=code)


@router.get("/calls/{call_id}")
async def get_call(call_id: str) -> JSONResponse:
    """The logged call and its outcome (and, for a missed call, its callback terms and attempts)."""
    from serving.calllog.callbacks import CallbackLog

    store = _store_for(call_id)
    if isinstance(store, JSONResponse):
        return store
    try:
        logged = await asyncio.to_thread(store.get, call_id)
        missed = await asyncio.to_thread(CallbackLog(store).get, call_id)
        attempts = await asyncio.to_thread(CallbackLog(store).attempts, call_id)
        corrections = await asyncio.to_thread(store.corrections, call_id) if logged is not None else []
    except Exception as e:  # noqa: BLE001
        return unavailable_response(e)
    if logged is None and missed is None and not attempts:
        return JSONResponse(error_body("not_found", f"nothing logged for call {call_id} (a scored call appears "
                                                    "call_log.flush_seconds after its response)"), status_code=404)
    body = logged.to_json() if logged is not None else {"call_id": call_id, "call": None, "outcome": None}
    body["orphan"] = bool(logged is not None and logged.orphan and missed is None)
    return JSONResponse({**body, "corrections": corrections,
                         "missed": None if missed is None else missed.missed.to_json(),
                         "callbacks": [a.to_json() for a in attempts]})


def _outcome_of(call_id: str, body: OutcomeRequest) -> Outcome:
    from serving.calllog.records import Outcome, as_utc

    return Outcome(call_id=call_id, converted=body.converted, revenue=body.revenue, disposition=body.disposition,
                   agent=body.agent, queue=body.queue,
                   occurred_at=as_utc(body.occurred_at) if body.occurred_at is not None else None)


def _store() -> CallLogStore | JSONResponse:
    import bentoml

    writer = bentoml.get_current_service().call_log
    if writer is None:
        return JSONResponse(error_body("call_log_disabled", "the call log is disabled on this server "
                                                            "(call_log.enabled: false)"), status_code=404)
    return writer.store


def _store_for(call_id: str) -> CallLogStore | JSONResponse:
    """The store for a request about ``call_id``, or the error answer (log disabled, bad id)."""
    store = _store()
    if isinstance(store, JSONResponse) or valid_call_id(call_id):
        return store
    return JSONResponse(error_body("invalid_request", "call_id: letters, digits and . _ : - only, "
                                                      "at most 128 characters", fields=["call_id"]), status_code=422)


def unavailable_response(error: Exception) -> JSONResponse:
    """503 ``call_log_unavailable`` (``Retry-After``) for a database outage; any other error is re-raised."""
    from serving.calllog.writer import is_transient

    if not is_transient(error):
        raise error
    logger.warning("call log unavailable: %s", error)
    response = JSONResponse(error_body("call_log_unavailable", "the call log database is unavailable; retry shortly"),
                            status_code=503)
    response.headers["Retry-After"] = "5"
    return response


__all__: list[Any] = ["router", "unavailable_response"]
