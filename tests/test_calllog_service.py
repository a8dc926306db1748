"""The call log in a real ``callintent serve``: outcome feedback over HTTP (auth, idempotency,
orphans, validation), reading calls back, and no record lost when the server stops mid-traffic."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time

import httpx
import pytest

from tests.server_harness import (
    API_KEYS, JFK, collect_until_close, decoded, err, pcm16_frames, recv_json, run, serving_tmp, start_server,  # noqa: F401
)

AUTH = {"Authorization": f"Bearer {API_KEYS[0]}"}


@pytest.fixture(scope="module")
def log_server(serving_tmp, tmp_path_factory):  # noqa: F811
    db = tmp_path_factory.mktemp("calllog-http") / "calls.db"
    server = start_server("calllog-http", serving_tmp, env={"CALLINTENT_API_KEYS": ",".join(API_KEYS)},
                          overrides={"call_log.url": f"sqlite:///{db}", "call_log.flush_seconds": 0.02})
    yield server
    server.stop()


def _logged(server, call_id: str, timeout: float = 10.0) -> dict:
    """``GET /calls/{id}`` once the call's record is written (the log is write-behind)."""
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(f"{server.url}/calls/{call_id}", headers=AUTH)
        if r.status_code == 200 and r.json()["call"] is not None:
            return r.json()
        assert time.monotonic() < deadline, f"call {call_id} never reached the log: {r.status_code} {r.text}"
        time.sleep(0.05)


def _outcome(server, call_id: str, body: dict, headers: dict | None = AUTH) -> httpx.Response:
    return httpx.post(f"{server.url}/calls/{call_id}/outcome", json=body, headers=headers or {})


def test_scored_call_is_logged_with_redacted_transcript_and_outcome_is_idempotent(log_server):
    r = httpx.post(f"{log_server.url}/score", headers=AUTH, json={
        "transcript": "hi I saw your ad, how much for a new roof, call me at 555 867 5309", "call_id": "http-1",
        "metadata": {"source": "google_ads", "campaign": "spring-roof"}})
    assert r.status_code == 200
    logged = _logged(log_server, "http-1")
    call = logged["call"]
    assert (call["channel"], call["source"], call["campaign"], call["label"]) == ("score", "google_ads",
                                                                                  "spring-roof", "buying")
    assert call["transcript_mode"] == "redacted" and "[PHONE]" in call["transcript"] and "5309" not in call["transcript"]
    assert call["model"] == r.json()["model"] and call["decision"]["route"] == r.json()["decision"]["route"]
    assert call["buying_intent"] == pytest.approx(r.json()["buying_intent"], abs=1e-6)
    assert {s["name"] for s in call["signals"] if s["present"]} >= {"ad_reference", "price_inquiry"}
    assert logged["outcome"] is None

    body = {"converted": True, "revenue": 420.5, "disposition": "sold", "agent": "a.lee", "queue": "sales",
            "occurred_at": "2026-11-27T15:04:05Z"}
    assert _outcome(log_server, "http-1", body, headers=None).status_code == 401
    first = _outcome(log_server, "http-1", body)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "recorded" and first.json()["call_logged"] is True
    again = _outcome(log_server, "http-1", body)
    assert again.status_code == 200 and again.json()["status"] == "unchanged"
    assert again.json()["outcome"] == first.json()["outcome"]

    conflict = _outcome(log_server, "http-1", {**body, "converted": False, "revenue": None})
    assert conflict.status_code == 409
    error = err(conflict)
    assert error["code"] == "outcome_conflict" and error["fields"] == ["converted", "revenue"]
    assert error["recorded"]["converted"] is True and error["recorded"]["revenue"] == 420.5
    outcome = _logged(log_server, "http-1")["outcome"]
    assert (outcome["converted"], outcome["revenue"], outcome["occurred_at"]) == (True, 420.5,
                                                                                   "2026-11-27T15:04:05.000Z")

    # The sale is cancelled: a deliberate correction, with its reason, replaces the outcome and is kept.
    correction = {"converted": False, "disposition": "cancelled", "reason": "order cancelled on 2026-11-30"}
    assert httpx.put(f"{log_server.url}/calls/http-1/outcome", json=correction).status_code == 401
    assert httpx.put(f"{log_server.url}/calls/http-1/outcome", json={"converted": False},
                     headers=AUTH).json()["error"]["fields"] == ["reason"]
    corrected = httpx.put(f"{log_server.url}/calls/http-1/outcome", json=correction, headers=AUTH)
    assert corrected.status_code == 200 and corrected.json()["status"] == "corrected", corrected.text
    assert corrected.json()["previous"]["converted"] is True and corrected.json()["outcome"]["converted"] is False
    logged = _logged(log_server, "http-1")
    assert (logged["outcome"]["converted"], logged["outcome"]["disposition"]) == (False, "cancelled")
    (kept,) = logged["corrections"]
    assert kept["reason"] == "order cancelled on 2026-11-30" and kept["previous"]["revenue"] == 420.5
    # a CRM retry of the original report now conflicts with the corrected outcome, changing nothing
    assert _outcome(log_server, "http-1", body).status_code == 409


def test_outcome_before_the_call_is_accepted_and_reconciled(log_server):
    early = _outcome(log_server, "http-late", {"converted": False, "disposition": "no_answer"})
    assert early.status_code == 202 and early.json()["call_logged"] is False
    orphan = httpx.get(f"{log_server.url}/calls/http-late", headers=AUTH).json()
    assert orphan["orphan"] is True and orphan["call"] is None
    assert _outcome(log_server, "http-late", {"converted": False, "disposition": "no_answer"}).status_code == 202

    assert httpx.post(f"{log_server.url}/score", headers=AUTH,
                      json={"transcript": "can someone come out today", "call_id": "http-late"}).status_code == 200
    logged = _logged(log_server, "http-late")
    assert logged["orphan"] is False and logged["outcome"]["disposition"] == "no_answer"
    assert _outcome(log_server, "http-late", {"converted": False, "disposition": "no_answer"}).status_code == 200


@pytest.mark.parametrize(("path", "body", "fields"), [
    ("/calls/v-1/outcome", {"converted": "yes"}, ["converted"]),
    ("/calls/v-1/outcome", {"revenue": 10}, ["converted"]),
    ("/calls/v-1/outcome", {"converted": True, "revenue": -5}, ["revenue"]),
    ("/calls/v-1/outcome", {"converted": True, "occurred_at": "last tuesday"}, ["occurred_at"]),
    ("/calls/v-1/outcome", {"converted": True, "colour": "red"}, ["colour"]),
    ("/calls/bad%20id!/outcome", {"converted": True}, ["call_id"]),
])
def test_outcome_validation_names_the_field(log_server, path, body, fields):
    r = httpx.post(f"{log_server.url}{path}", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    assert err(r)["code"] == "invalid_request" and err(r)["fields"] == fields


def test_unknown_call_is_404_and_audio_calls_record_when_they_decided(log_server):
    r = httpx.get(f"{log_server.url}/calls/never-seen", headers=AUTH)
    assert r.status_code == 404 and err(r)["code"] == "not_found"

    with JFK.open("rb") as f:
        r = httpx.post(f"{log_server.url}/score_audio", headers=AUTH, timeout=60,
                       files={"file": ("jfk.flac", f)}, data={"call_id": "http-audio", "metadata": '{"source": "radio"}'})
    assert r.status_code == 200, r.text
    call = _logged(log_server, "http-audio")["call"]
    assert call["channel"] == "score_audio" and call["source"] == "radio"
    assert call["decision"]["audio_seconds"] == pytest.approx(r.json()["audio_seconds"], abs=0.01)
    assert call["decision"]["audio_seconds"] > 10  # jfk.flac is 11 s: decided once the whole opening was heard
    assert call["transcript"].lower().startswith("and so my fellow americans")

    metrics = httpx.get(f"{log_server.url}/metrics").text
    written = [line for line in metrics.splitlines() if line.startswith("callintent_call_log_written_total")]
    assert written and float(written[0].split()[-1]) >= 2
    assert "callintent_call_log_dropped_total" in metrics


def test_graceful_stop_mid_traffic_loses_no_record(serving_tmp, tmp_path):  # noqa: F811
    """N /score calls and one live call in flight, then SIGTERM: the log holds N + 1 rows.

    ``flush_seconds`` is long, so when the signal arrives every record is still in the writer's
    queue: only the shutdown drain can have written them.
    """
    import websockets

    n = 30
    db = tmp_path / "calls.db"
    frames = pcm16_frames(decoded(JFK))  # before the server starts: a missing file must not leave it running
    server = start_server("calllog-drain", serving_tmp, overrides={
        "call_log.url": f"sqlite:///{db}", "call_log.flush_seconds": 60, "call_log.transcript": "full"})

    async def traffic() -> tuple[list[int], list[dict]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client, \
                websockets.connect(f"{server.ws}/v1/stream") as ws:
            await ws.send(json.dumps({"type": "start", "call_id": "drain-live", "encoding": "pcm16",
                                      "sample_rate": 16000, "metadata": {"source": "tv"}}))
            assert (await recv_json(ws))["type"] == "started"
            for frame in frames[:200]:  # 4 s of audio, faster than real time; no stop message
                await ws.send(frame)
            statuses = await asyncio.gather(*(client.post("/score", json={
                "transcript": f"do you install water heaters, this is call {i}", "call_id": f"drain-{i}",
                "metadata": {"source": "search"}}) for i in range(n)))
            server.process.send_signal(signal.SIGTERM)
            return [s.status_code for s in statuses], await collect_until_close(ws, timeout=60)

    try:
        statuses, events = run(traffic())
        assert server.process.wait(timeout=60) is not None
    finally:
        server.stop()
    assert statuses == [200] * n
    assert events and events[-1]["type"] == "final"
    with sqlite3.connect(db) as connection:
        rows = dict(connection.execute("SELECT call_id, channel FROM calls WHERE call_id LIKE 'drain-%'").fetchall())
        live_transcript = connection.execute("SELECT transcript FROM calls WHERE call_id = 'drain-live'").fetchone()
    assert len(rows) == n + 1, server.log_text()[-3000:]
    assert rows["drain-live"] == "stream" and sum(channel == "score" for channel in rows.values()) == n
    assert live_transcript[0].lower().startswith("and so my fellow")  # call_log.transcript: full
    assert "call log writer closed: 31 written, 0 dropped" in server.log_text()


def test_scoring_goes_on_while_the_log_database_is_down(serving_tmp):  # noqa: F811
    """PostgreSQL stops mid-traffic: /score and live calls go on, the log reports the outage, the
    records wait in the queue and are all written once the database is back."""
    from tests.pg_harness import postgres_cluster, require_postgres

    with postgres_cluster(require_postgres()) as pg:
        url = pg.create_database()
        server = start_server("calllog-outage", serving_tmp, overrides={
            "call_log.url": url, "call_log.flush_seconds": 0.02, "call_log.retry_max_seconds": 0.5})
        try:
            def score(call_id: str) -> httpx.Response:
                return httpx.post(f"{server.url}/score", json={"transcript": "how much is a new roof",
                                                               "call_id": call_id}, timeout=30)

            assert score("up-0").status_code == 200
            deadline = time.monotonic() + 10
            while httpx.get(f"{server.url}/calls/up-0").status_code != 200:
                assert time.monotonic() < deadline, "the first call never reached the log"
                time.sleep(0.05)

            pg.stop()
            for i in range(5):
                r = score(f"down-{i}")
                assert r.status_code == 200 and r.json()["intent"], r.text  # scoring does not wait for the log
            frames = pcm16_frames(decoded(JFK)[:3 * 16000])

            async def stream() -> list[dict]:
                import websockets

                async with websockets.connect(f"{server.ws}/v1/stream") as ws:
                    await ws.send(json.dumps({"type": "start", "call_id": "down-live", "encoding": "pcm16"}))
                    await recv_json(ws)
                    for frame in frames:
                        await ws.send(frame)
                    await ws.send(json.dumps({"type": "stop"}))
                    return await collect_until_close(ws)

            assert run(stream())[-1]["type"] == "final"
            r = httpx.get(f"{server.url}/calls/down-0")
            assert r.status_code == 503 and err(r)["code"] == "call_log_unavailable", r.text
            deadline = time.monotonic() + 10
            while True:  # the writer has tried, failed and counted it
                metrics = httpx.get(f"{server.url}/metrics").text
                errors = [float(line.split()[-1]) for line in metrics.splitlines()
                          if line.startswith("callintent_call_log_errors_total")]
                if errors and errors[0] > 0:
                    break
                assert time.monotonic() < deadline, "no call log error was counted during the outage"
                time.sleep(0.2)
            assert "callintent_call_log_dropped_total 0.0" in metrics  # queued, not dropped

            pg.start()
            deadline = time.monotonic() + 20
            for call_id in ["up-0", "down-live", *(f"down-{i}" for i in range(5))]:
                while (r := httpx.get(f"{server.url}/calls/{call_id}")).status_code != 200 or not r.json()["call"]:
                    assert time.monotonic() < deadline, f"{call_id} was not written after the database came back"
                    time.sleep(0.1)
        finally:
            server.stop()
