"""The live scoring service over real HTTP and WebSockets (a real ``callintent serve`` process).

Two servers for the whole session (``tests/server_harness.py``): ``live_server`` (no API keys,
small limits so every limit can be hit cheaply) and ``auth_server`` (API keys on). Both serve the
tiny keyword model of ``tests/model_fixtures.py`` from a temporary registry, so intents follow its
keywords and the assertions here are about the protocol, shapes, limits and errors, not model quality.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
import time
from pathlib import Path

import httpx
import jiwer
import numpy as np
import pytest

from tests.server_harness import (  # noqa: F401 (auth_server, live_server, serving_tmp: fixtures)
    API_KEYS, CLEAR_SPEECH, JFK, OSR, auth_server, close_of, collect_until_close, decoded, err, live_server,
    pcm16_frames, recv_json, run, serving_tmp, spoken, write_wav,
)

pytestmark = pytest.mark.integration


BUYING_TEXT = "hi I saw your ad on facebook how much does a new roof cost"


# ---------------------------------------------------------------------------------------------
# Ops and OpenAPI


def test_probes_metrics_and_openapi(live_server):
    assert httpx.get(f"{live_server.url}/livez").status_code == 200
    ready = httpx.get(f"{live_server.url}/readyz")
    assert ready.status_code == 200 and ready.headers["x-callintent-model"] == "intent/v1"  # the version serving
    httpx.post(f"{live_server.url}/score", json={"transcript": BUYING_TEXT}).raise_for_status()
    metrics = httpx.get(f"{live_server.url}/metrics").text
    assert re.search(r'^callintent_model_info\{model="intent",version="v1"\} 1\.0$', metrics, re.M)
    assert 'callintent_requests_total{endpoint="/score",status="200"}' in metrics
    assert "callintent_decisions_total" in metrics
    assert "callintent_live_sessions_active" in metrics
    assert re.search(r"^callintent_score_batch_size_count [1-9]", metrics, re.M)  # the in-process batcher (serving/batching.py)
    paths = httpx.get(f"{live_server.url}/docs.json").json()["paths"]
    assert "/score" in paths and "/score_audio" in paths


def test_service_process_has_no_torch(live_server):
    """The serving install has no torch: no process of the server may have loaded it.

    Native libraries show in /proc/PID/maps (torch, pandas and sklearn all ship .so files);
    test_serving_service checks the pure-Python ones through sys.modules.
    """
    import psutil

    root = psutil.Process(live_server.process.pid)
    processes = [root, *root.children(recursive=True)]
    workers = [p for p in processes if "_bentoml_impl.worker.service" in " ".join(p.cmdline())]
    assert workers, "bentoml serve started no worker process"
    for proc in processes:
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        for heavy in ("/torch/", "/pandas/", "/sklearn/", "/transformers/"):
            assert heavy not in maps, f"process {proc.pid} ({proc.name()}) loaded {heavy}"
    for worker in workers:
        assert "onnxruntime" in Path(f"/proc/{worker.pid}/maps").read_text(), "the worker should score with ONNX"


# ---------------------------------------------------------------------------------------------
# POST /score


def test_score_result_shape(live_server):
    body = {"transcript": BUYING_TEXT, "call_id": "call-shape-1",
            "metadata": {"source": "google_ads", "campaign": "spring-roof", "industry": "home_services"}}
    r = httpx.post(f"{live_server.url}/score", json=body)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["call_id"] == "call-shape-1"
    assert result["model"] == "intent/v1"
    assert set(result["probabilities"]) == {"buying", "service", "informational", "noise"}
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert result["intent"] == "buying" and result["buying_intent"] == result["probabilities"]["buying"]
    signals = {s["name"]: s for s in result["signals"]}
    assert len(signals) == 7
    assert signals["ad_reference"]["present"] and signals["price_inquiry"]["present"]
    for s in result["signals"]:
        for ev in s["evidence"]:
            assert result["transcript"][ev["start"]:ev["end"]] == ev["text"]
    assert {e["text"] for e in signals["price_inquiry"]["evidence"]} <= {"much", "cost"}
    decision = result["decision"]
    assert decision["route"] in ("priority_sales", "standard", "screen", "undetermined")
    assert decision["reasons"] and decision["segment"] and decision["audio_seconds"] is None
    assert result["transcript"] == BUYING_TEXT
    assert result["timings_ms"]["total"] >= result["timings_ms"]["model"] > 0


def _schema_of(spec: dict, path: str) -> dict:
    ref = spec["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_score_response_is_its_openapi_schema(live_server):
    """The served OpenAPI schema of /score is what a live response is: the same fields, none missing
    or extra (the response models forbid extra fields), and the body validates against it."""
    import schemathesis
    from schemathesis.checks import response_schema_conformance

    spec = httpx.get(f"{live_server.url}/docs.json").json()
    schema = _schema_of(spec, "/score")
    assert schema.get("additionalProperties") is False
    body = {"transcript": BUYING_TEXT, "call_id": "call-schema-1", "metadata": {"source": "google_ads"}}
    response = httpx.post(f"{live_server.url}/score", json=body)
    assert response.status_code == 200, response.text
    assert set(response.json()) == set(schema["properties"])
    for name, field in (("decision", "DecisionOut"), ("signals", "SignalOut")):
        shown = response.json()[name][0] if name == "signals" else response.json()[name]
        assert set(shown) == set(spec["components"]["schemas"][field]["properties"]), name
    operation = schemathesis.openapi.from_url(f"{live_server.url}/docs.json")["/score"]["POST"]
    case = operation.Case(body=body, media_type="application/json")
    case.validate_response(case.call(base_url=live_server.url, timeout=30), checks=[response_schema_conformance])


def test_score_redacts_pii(live_server):
    text = ("hi I saw your ad how much for a roof, call me back at 555-123-4567 or email john.smith@gmail.com, "
            "my card is 4111 1111 1111 1111")
    result = httpx.post(f"{live_server.url}/score", json={"transcript": text}).json()
    out = result["transcript"]
    assert "[PHONE]" in out and "[EMAIL]" in out and "[CARD]" in out
    for secret in ("555-123-4567", "john.smith", "4111"):
        assert secret not in json.dumps(result)
    for s in result["signals"]:
        for ev in s["evidence"]:
            assert out[ev["start"]:ev["end"]] == ev["text"]


def test_score_batches_concurrent_requests(live_server):
    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as client:
            texts = [f"call number {i}: checking on my order" if i % 2 else f"call {i}: how much is a new furnace"
                     for i in range(32)]
            return await asyncio.gather(*(client.post("/score", json={"transcript": t, "call_id": f"batch-{i}"})
                                          for i, t in enumerate(texts)))

    responses = run(fire())
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    results = [r.json() for r in responses]
    for i, result in enumerate(results):  # each answer belongs to its own request
        assert result["call_id"] == f"batch-{i}"
        assert result["intent"] == ("service" if i % 2 else "buying")
        assert result["transcript"].startswith(f"call number {i}:" if i % 2 else f"call {i}:")
    assert max(r["batch_size"] for r in results) > 1, "concurrent requests were never batched"


@pytest.mark.parametrize(("payload", "status", "code", "fields"), [
    (b"{not json", 400, "bad_json", None),
    (b'{"call_id": "x1"}', 422, "invalid_request", ["transcript"]),
    (b'{"transcript": 5}', 422, "invalid_request", ["transcript"]),
    (b'{"transcript": "   "}', 422, "invalid_request", ["transcript"]),
    (b'{"transcript": "hi", "colour": "red"}', 422, "invalid_request", ["colour"]),
    (b'{"transcript": "hi", "call_id": "bad id!"}', 422, "invalid_request", ["call_id"]),
    (b'{"transcript": "hi", "metadata": {"source": {"nested": 1}}}', 422, "invalid_request", None),
    (b'[1, 2]', 422, "invalid_request", None),
])
def test_score_rejects_malformed_input(live_server, payload, status, code, fields):
    r = httpx.post(f"{live_server.url}/score", content=payload, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    error = err(r)
    assert error["code"] == code and error["message"]
    if fields is not None:
        assert error["fields"] == fields
        assert fields[0] in error["message"]


def test_score_limits(live_server):
    r = httpx.post(f"{live_server.url}/score", json={"transcript": "roof " * 500})
    assert r.status_code == 413 and err(r)["code"] == "text_too_long"
    assert "limits.max_text_chars" in err(r)["message"] and "2000" in err(r)["message"]

    big = json.dumps({"transcript": "x" * 2_100_000}).encode()
    r = httpx.post(f"{live_server.url}/score", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and err(r)["code"] == "body_too_large"
    assert "2000000" in err(r)["message"]

    def chunked():  # no Content-Length: the limit must hold while the body streams in
        yield b'{"transcript": "'
        for _ in range(40):
            yield b"x" * 100_000
        yield b'"}'

    r = httpx.post(f"{live_server.url}/score", content=chunked(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and err(r)["code"] == "body_too_large"


def test_unknown_routes_and_internal_route_are_json_errors(live_server):
    r = httpx.post(f"{live_server.url}/internal/score_batch", json={"items": []})
    assert r.status_code == 404 and err(r)["code"] == "not_found"
    r = httpx.get(f"{live_server.url}/score")
    assert r.status_code == 405 and err(r)["code"] == "method_not_allowed"


# ---------------------------------------------------------------------------------------------
# POST /score_audio


def _words(result: dict) -> list[str]:
    return [w["text"].strip(".,?!").lower() for w in result["words"]]


def test_score_audio_jfk(live_server):
    with JFK.open("rb") as f:
        r = httpx.post(f"{live_server.url}/score_audio", files={"file": ("jfk.flac", f, "audio/flac")},
                       data={"call_id": "jfk-1", "metadata": json.dumps({"source": "organic"})}, timeout=120)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["call_id"] == "jfk-1"
    words = _words(result)
    for expected in ("ask", "not", "what", "your", "country", "can", "do", "for", "you"):
        assert expected in words
    assert result["audio_seconds"] == pytest.approx(11.0, abs=0.2) and result["cut_seconds"] == 30.0
    assert all(0 <= w["start"] <= w["end"] <= 11.5 for w in result["words"])
    assert result["transcript"].lower().startswith("and so my fellow americans")
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert {"decode", "asr", "model", "total"} <= set(result["timings_ms"])
    assert not (live_server.log.parent / "served_audio").exists(), "audio must not be stored unless configured"


def test_score_audio_telephone_wav_and_raw_mulaw(live_server, tmp_path):
    from speech.audio import resample
    from serving.client import float_to_mulaw

    wav = spoken(CLEAR_SPEECH, tmp_path)
    r = httpx.post(f"{live_server.url}/score_audio", files={"file": ("call.wav", wav.read_bytes())}, timeout=120)
    assert r.status_code == 200, r.text
    wav_words = set(_words(r.json()))
    assert {"someone", "tomorrow", "roof"} <= wav_words, wav_words

    # The same speech as raw 8 kHz μ-law (what telephony dumps): near enough the same words.
    raw = float_to_mulaw(resample(decoded(wav), 16000, 8000))
    r = httpx.post(f"{live_server.url}/score_audio", files={"file": ("call.ul", raw)},
                   data={"encoding": "mulaw", "sample_rate": "8000"}, timeout=120)
    assert r.status_code == 200, r.text
    raw_words = set(_words(r.json()))
    assert "roof" in raw_words and len(raw_words & wav_words) >= 0.6 * len(wav_words), (raw_words, wav_words)
    assert r.json()["audio_seconds"] == pytest.approx(len(decoded(wav)) / 16000, abs=0.05)

    # The raw-body form: audio as the body, fields in the query string.
    r = httpx.post(f"{live_server.url}/score_audio?encoding=mulaw&sample_rate=8000&call_id=raw-1", content=raw,
                   headers={"content-type": "application/octet-stream"}, timeout=120)
    assert r.status_code == 200 and r.json()["call_id"] == "raw-1"


def test_score_audio_cuts_at_30_seconds(live_server):
    r = httpx.post(f"{live_server.url}/score_audio", files={"file": ("osr.wav", OSR.read_bytes())}, timeout=120)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["audio_seconds"] == pytest.approx(30.0) and result["cut_seconds"] == 30.0
    words = _words(result)
    assert "barn" in words  # said at ~28 s
    assert "bell" not in words and "quickly" not in words  # said after 32 s
    assert all(w["start"] < 30.0 for w in result["words"])


def test_score_audio_errors(live_server, tmp_path):
    long_wav = write_wav(tmp_path / "long.wav", np.zeros(45 * 16000, np.float32))
    r = httpx.post(f"{live_server.url}/score_audio", files={"file": ("long.wav", long_wav.read_bytes())})
    assert r.status_code == 413 and err(r)["code"] == "audio_too_long"
    assert "limits.max_audio_seconds" in err(r)["message"] and "40" in err(r)["message"]

    r = httpx.post(f"{live_server.url}/score_audio", files={"file": ("x.wav", b"this is not audio at all" * 10)})
    assert r.status_code == 422 and err(r)["code"] == "bad_audio"

    r = httpx.post(f"{live_server.url}/score_audio", files={"file": ("x.raw", b"\x00\x01" * 800)},
                   data={"encoding": "opus"})
    assert r.status_code == 422 and err(r)["fields"] == ["encoding"]

    r = httpx.post(f"{live_server.url}/score_audio", files={"other": ("x.wav", b"1234")})
    assert r.status_code == 422 and err(r)["fields"] == ["file"]

    r = httpx.post(f"{live_server.url}/score_audio", files={"file": ("x.raw", b"\x00\x01" * 800)},
                   data={"encoding": "pcm16", "metadata": "{oops"})
    assert r.status_code == 422 and err(r)["fields"] == ["metadata"]


# ---------------------------------------------------------------------------------------------
# WebSocket /v1/stream


async def _start(ws, call_id: str, **fields) -> dict:
    message = {"type": "start", "call_id": call_id, "encoding": "pcm16", "sample_rate": 16000,
               "metadata": {"source": "google_ads"}, **fields}
    await ws.send(json.dumps(message))
    return await recv_json(ws)


def test_stream_generic_protocol(live_server, tmp_path):
    """Real-time audio: partials arrive before stop, then one decision and the final event."""
    import websockets

    audio = decoded(spoken(CLEAR_SPEECH, tmp_path, pad_seconds=1.5))
    frames = pcm16_frames(audio)

    async def call() -> tuple[list[dict], int, tuple]:
        async with websockets.connect(f"{live_server.ws}/v1/stream") as ws:
            started = await _start(ws, "gen-1")
            assert started["type"] == "started" and started["seq"] == 0 and started["call_id"] == "gen-1"
            assert started["metadata"] == {"source": "google_ads"}
            events: list[dict] = []

            task = asyncio.create_task(collect_until_close(ws, timeout=60, events=events))
            t0 = time.monotonic()
            for i, frame in enumerate(frames):
                await asyncio.sleep(max(0.0, t0 + i * 0.02 - time.monotonic()))
                await ws.send(frame)
            partials_before_stop = sum(e["type"] == "partial" for e in events)
            await ws.send(json.dumps({"type": "stop"}))
            await task
            return events, partials_before_stop, close_of(ws)

    events, partials_before_stop, (code, reason) = run(call())
    assert code == 1000, (code, reason)
    assert partials_before_stop >= 1, "no partial arrived while audio was still streaming"
    types = [e["type"] for e in events]
    assert types[-1] == "final" and types.count("decision") == 1 and types.count("final") == 1
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    partial = next(e for e in events if e["type"] == "partial")
    assert partial["latency_ms"] > 0 and partial["decode_ms"] >= 0
    assert set(partial["transcript"]) == {"stable", "unstable", "text"}
    assert sum(partial["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    final = events[-1]
    assert final["totals"]["audio_seconds"] == pytest.approx(len(audio) / 16000, abs=0.1)
    assert final["totals"]["decodes"] >= 1 and final["decision"]["route"]
    assert "roof" in final["transcript"]["text"].lower()
    assert final["model"] == "intent/v1"


def test_stream_mulaw_8k_and_bad_messages_keep_going(live_server, tmp_path):
    import websockets
    from speech.audio import resample
    from serving.client import float_to_mulaw

    mulaw = float_to_mulaw(resample(decoded(spoken("I need an appointment to fix my water heater", tmp_path)), 16000, 8000))

    async def call():
        async with websockets.connect(f"{live_server.ws}/v1/stream") as ws:
            await ws.send("{this is not json")
            bad = await recv_json(ws)
            await ws.send(json.dumps({"type": "dance"}))
            unknown = await recv_json(ws)
            started = await _start(ws, "mulaw-1", encoding="mulaw", sample_rate=8000)
            await ws.send(json.dumps({"type": "start", "encoding": "pcm16"}))
            again = await recv_json(ws)
            for i in range(0, len(mulaw), 160):
                await ws.send(mulaw[i:i + 160])
            await ws.send(json.dumps({"type": "stop"}))
            return bad, unknown, started, again, await collect_until_close(ws), close_of(ws)

    bad, unknown, started, again, events, close = run(call())
    assert bad["type"] == "error" and bad["error"]["code"] == "bad_json" and bad["seq"] == -1
    assert unknown["error"]["code"] == "unknown_type" and "dance" in unknown["error"]["message"]
    assert started["type"] == "started"
    assert again["error"]["code"] == "already_started"
    assert events[-1]["type"] == "final" and close[0] == 1000
    # μ-law 8 kHz reached the ASR intact: tiny.en on this robot voice gets most words right
    # ("i need an appointment to fix my wager fever"), never all of them.
    heard = re.sub(r"[^a-z' ]", " ", events[-1]["transcript"]["text"].lower())
    assert jiwer.wer("i need an appointment to fix my water heater", heard) <= 0.5, heard


def test_stream_oversized_message_is_dropped_and_the_call_goes_on(live_server):
    import websockets

    async def call():
        async with websockets.connect(f"{live_server.ws}/v1/stream", max_size=2 ** 22) as ws:
            await _start(ws, "big-1")
            await ws.send(b"\x00" * (256 * 1024 + 2))
            dropped = await recv_json(ws)
            await ws.send(pcm16_frames(np.zeros(1600, np.float32), frame_ms=100)[0])
            await ws.send(json.dumps({"type": "stop"}))
            return dropped, await collect_until_close(ws), close_of(ws)

    dropped, events, (code, _) = run(call())
    assert dropped["error"]["code"] == "message_too_large" and "limits.max_message_bytes" in dropped["error"]["message"]
    assert dropped["call_id"] == "big-1" and dropped["seq"] == 1
    assert events[-1]["type"] == "final" and code == 1000
    assert events[-1]["totals"]["audio_seconds"] == pytest.approx(0.1, abs=0.01)  # the dropped frame is not audio


@pytest.mark.parametrize(("first", "code", "close_code"), [
    (b"\x00\x01" * 160, "binary_before_start", 1008),
    ({"type": "start", "encoding": "opus"}, "unsupported_encoding", 1003),
    ({"type": "start", "encoding": "pcm16", "sample_rate": 44}, "invalid_start", 1008),
    ({"type": "start", "call_id": "no spaces allowed"}, "invalid_start", 1008),
    ({"type": "start", "metadata": ["not", "an", "object"]}, "invalid_start", 1008),
    ({"type": "stop"}, "not_started", 1000),
])
def test_stream_protocol_errors_close(live_server, first, code, close_code):
    import websockets

    async def call():
        async with websockets.connect(f"{live_server.ws}/v1/stream") as ws:
            await ws.send(first if isinstance(first, bytes) else json.dumps(first))
            return await collect_until_close(ws, timeout=10), close_of(ws)

    events, (close, _) = run(call())
    assert [e["type"] for e in events] == ["error"]
    assert events[0]["error"]["code"] == code and events[0]["error"]["message"]
    assert close == close_code


def test_stream_capacity_refuses_newcomers_not_running_calls(live_server, tmp_path):
    """Two calls fill the server (max_live_sessions=2); a third is refused 1013, the two go on."""
    import websockets

    frames = pcm16_frames(decoded(spoken("I need an estimate for a furnace install", tmp_path)))

    async def scenario():
        async with websockets.connect(f"{live_server.ws}/v1/stream") as a, \
                websockets.connect(f"{live_server.ws}/v1/stream") as b:
            assert (await _start(a, "cap-a"))["type"] == "started"
            assert (await _start(b, "cap-b"))["type"] == "started"
            async with websockets.connect(f"{live_server.ws}/v1/stream") as c:
                refused = await _start(c, "cap-c")
                c_events = await collect_until_close(c, timeout=10)
                c_close = close_of(c)
            for frame in frames:
                await a.send(frame)
            a_partial = await recv_json(a)
            await a.send(json.dumps({"type": "stop"}))
            a_events = await collect_until_close(a)
            await b.send(json.dumps({"type": "stop"}))
            b_events = await collect_until_close(b)
            return refused, c_events, c_close, a_partial, a_events, b_events

    refused, c_events, (code, reason), a_partial, a_events, b_events = run(scenario())
    assert refused["type"] == "error" and refused["error"]["code"] == "capacity" and not c_events
    assert code == 1013 and "capacity" in reason
    assert a_partial["type"] == "partial" and a_partial["call_id"] == "cap-a"
    assert a_events[-1]["type"] == "final" and b_events[-1]["type"] == "final"
    # the slots are free again
    with httpx.Client() as client:
        metrics = client.get(f"{live_server.url}/metrics").text
    assert 'callintent_live_sessions_refused_total{reason="capacity"}' in metrics


def test_stream_idle_timeout_sends_final_and_closes_1001(live_server, tmp_path):
    import websockets

    frames = pcm16_frames(decoded(spoken("hello there", tmp_path)))

    async def call():
        async with websockets.connect(f"{live_server.ws}/v1/stream") as ws:
            await _start(ws, "idle-1")
            for frame in frames:
                await ws.send(frame)
            t0 = time.monotonic()
            events = await collect_until_close(ws, timeout=20)
            return events, close_of(ws), time.monotonic() - t0

    events, (code, reason), waited = run(call())
    assert events[-1]["type"] == "final"
    assert code == 1001 and reason == "idle timeout"
    assert 2.5 <= waited <= 15


def test_stream_audio_limit(live_server):
    import websockets

    second = np.zeros(16000, np.float32)  # silence: the VAD gate keeps this cheap

    async def call():
        async with websockets.connect(f"{live_server.ws}/v1/stream") as ws:
            await _start(ws, "long-1")
            for _ in range(41):
                await ws.send(pcm16_frames(second, frame_ms=1000)[0])
            return await collect_until_close(ws), close_of(ws)

    events, (code, reason) = run(call())
    errors = [e for e in events if e["type"] == "error"]
    assert errors and errors[0]["error"]["code"] == "audio_too_long"
    assert "limits.max_audio_seconds" in errors[0]["error"]["message"]
    assert events[-1]["type"] == "final"
    assert code == 1008 and "40" in reason


# ---------------------------------------------------------------------------------------------
# WebSocket /v1/twilio


def twilio_messages(audio16k: np.ndarray, *, call_sid: str, params: dict[str, str]) -> list[str]:
    """The exact message shapes Twilio Media Streams sends (20 ms base64 μ-law frames)."""
    from speech.audio import resample
    from serving.client import float_to_mulaw

    stream_sid = "MZ" + "0" * 32
    mulaw = float_to_mulaw(resample(audio16k, 16000, 8000))
    out = [json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
           json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": stream_sid, "start": {
               "accountSid": "AC" + "1" * 32, "streamSid": stream_sid, "callSid": call_sid, "tracks": ["inbound"],
               "customParameters": params,
               "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})]
    seq = 2
    for chunk, i in enumerate(range(0, len(mulaw), 160), start=1):
        out.append(json.dumps({"event": "media", "sequenceNumber": str(seq), "streamSid": stream_sid, "media": {
            "track": "inbound", "chunk": str(chunk), "timestamp": str((chunk - 1) * 20),
            "payload": base64.b64encode(mulaw[i:i + 160]).decode()}}))
        seq += 1
    out.append(json.dumps({"event": "stop", "sequenceNumber": str(seq), "streamSid": stream_sid,
                           "stop": {"accountSid": "AC" + "1" * 32, "callSid": call_sid}}))
    return out


def test_twilio_media_stream(live_server, tmp_path):
    import websockets

    audio = decoded(spoken(CLEAR_SPEECH, tmp_path))
    call_sid = "CA" + "a" * 32
    messages = twilio_messages(audio, call_sid=call_sid, params={"source": "google_ads", "campaign": "roof-spring"})

    async def call():
        async with websockets.connect(f"{live_server.ws}/v1/twilio") as ws:
            for message in messages[:-1]:
                await ws.send(message)
            await ws.send(messages[-1])
            return await collect_until_close(ws), close_of(ws)

    events, (code, _) = run(call())
    assert code == 1000
    types = [e["type"] for e in events]
    assert types[0] == "started" and types[-1] == "final" and types.count("decision") == 1
    assert all(e["call_id"] == call_sid for e in events)
    metadata = events[0]["metadata"]
    assert metadata["source"] == "google_ads" and metadata["campaign"] == "roof-spring"
    assert metadata["call_sid"] == call_sid
    assert "roof" in events[-1]["transcript"]["text"].lower()
    assert events[-1]["totals"]["audio_seconds"] == pytest.approx(len(audio) / 16000, abs=0.1)


def test_twilio_bad_messages(live_server, tmp_path):
    import websockets

    audio = decoded(spoken("hello", tmp_path))
    messages = twilio_messages(audio, call_sid="CA" + "b" * 32, params={})
    media = json.loads(messages[2])

    async def call():
        async with websockets.connect(f"{live_server.ws}/v1/twilio") as ws:
            replies = []
            await ws.send(messages[0])  # connected
            await ws.send(messages[2])  # media before start
            replies.append(await recv_json(ws))
            await ws.send(messages[1])  # start
            replies.append(await recv_json(ws))
            bad = dict(media, sequenceNumber="900", media=dict(media["media"], payload="%%% not base64 %%%"))
            await ws.send(json.dumps(bad))
            replies.append(await recv_json(ws))
            await ws.send("not json")
            replies.append(await recv_json(ws))
            await ws.send(json.dumps({"event": "hangup"}))
            replies.append(await recv_json(ws))
            await ws.send(b"\x01\x02")
            replies.append(await recv_json(ws))
            for message in messages[3:]:
                await ws.send(message)
            return replies, await collect_until_close(ws), close_of(ws)

    replies, events, (code, _) = run(call())
    codes = [r.get("error", {}).get("code") or r["type"] for r in replies]
    assert codes == ["protocol_error", "started", "bad_media", "bad_json", "invalid_message", "unexpected_binary"]
    assert "base64" in replies[2]["error"]["message"]
    assert events[-1]["type"] == "final" and code == 1000


def test_twilio_invalid_start_closes(live_server):
    import websockets

    start = json.loads(twilio_messages(np.zeros(1600, np.float32), call_sid="CA" + "c" * 32, params={})[1])
    start["start"]["mediaFormat"]["sampleRate"] = 16000

    async def call():
        async with websockets.connect(f"{live_server.ws}/v1/twilio") as ws:
            await ws.send(json.dumps(start))
            return await collect_until_close(ws, timeout=10), close_of(ws)

    events, (code, _) = run(call())
    assert [e["error"]["code"] for e in events] == ["invalid_message"]
    assert code == 1003


# ---------------------------------------------------------------------------------------------
# Authentication (a second server with API keys)


def test_auth_http(auth_server):
    url = f"{auth_server.url}/score"
    body = {"transcript": BUYING_TEXT}
    r = httpx.post(url, json=body)
    assert r.status_code == 401 and err(r)["code"] == "unauthorized" and "Bearer" in err(r)["message"]
    r = httpx.post(url, json=body, headers={"Authorization": "Bearer wrong-key-000000"})
    assert r.status_code == 401 and err(r)["code"] == "unauthorized"
    r = httpx.post(url, content=b"{broken", headers={"content-type": "application/json"})
    assert r.status_code == 401, "auth is checked before the body is read"
    r = httpx.post(f"{url}?token={API_KEYS[0]}", json=body)
    assert r.status_code == 401, "query tokens are for WebSocket handshakes only"
    for key in API_KEYS:
        r = httpx.post(url, json=body, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.json()["intent"] == "buying"
    r = httpx.post(f"{auth_server.url}/score_audio", files={"file": ("x.wav", b"1234")})
    assert r.status_code == 401
    for probe in ("/livez", "/readyz", "/metrics", "/docs.json"):
        assert httpx.get(f"{auth_server.url}{probe}").status_code == 200


def test_auth_websockets(auth_server):
    import websockets
    from websockets.exceptions import InvalidStatus

    async def scenario():
        results = {}
        try:
            async with websockets.connect(f"{auth_server.ws}/v1/stream"):
                results["no_key"] = "accepted"
        except InvalidStatus as e:
            results["no_key"] = (e.response.status_code, json.loads(e.response.body)["error"]["code"])
        try:
            async with websockets.connect(f"{auth_server.ws}/v1/stream?token=wrong-key-000000"):
                results["wrong"] = "accepted"
        except InvalidStatus as e:
            results["wrong"] = e.response.status_code
        async with websockets.connect(f"{auth_server.ws}/v1/stream?token={API_KEYS[1]}") as ws:
            results["query"] = (await _start(ws, "auth-q"))["type"]
        async with websockets.connect(f"{auth_server.ws}/v1/stream",
                                      additional_headers={"Authorization": f"Bearer {API_KEYS[0]}"}) as ws:
            results["header"] = (await _start(ws, "auth-h"))["type"]
        # Twilio cannot send headers or query strings: the key comes as the `token` custom parameter.
        ok = twilio_messages(np.zeros(1600, np.float32), call_sid="CA" + "d" * 32, params={"token": API_KEYS[0]})
        async with websockets.connect(f"{auth_server.ws}/v1/twilio") as ws:
            await ws.send(ok[0])
            await ws.send(ok[1])
            started = await recv_json(ws)
            results["twilio"] = started["type"]
            results["twilio_metadata"] = started["metadata"]
        bad = twilio_messages(np.zeros(1600, np.float32), call_sid="CA" + "e" * 32, params={"token": "nope-nope-nope"})
        async with websockets.connect(f"{auth_server.ws}/v1/twilio") as ws:
            await ws.send(bad[1])
            results["twilio_bad"] = ([e["error"]["code"] for e in await collect_until_close(ws, 10)], close_of(ws)[0])
        return results

    results = run(scenario())
    assert results["no_key"] == (401, "unauthorized")
    assert results["wrong"] == 401
    assert results["query"] == "started" and results["header"] == "started"
    assert results["twilio"] == "started" and "token" not in results["twilio_metadata"]
    assert results["twilio_bad"] == (["unauthorized"], 1008)


def test_shutdown_gives_open_calls_their_final_event(auth_server, tmp_path):
    """SIGTERM: a call in progress gets its final event and a 1001 close before the server stops."""
    import websockets

    frames = pcm16_frames(decoded(spoken("I want to book an appointment", tmp_path)))

    async def call():
        async with websockets.connect(f"{auth_server.ws}/v1/stream?token={API_KEYS[0]}") as ws:
            await _start(ws, "shutdown-1")
            for frame in frames:
                await ws.send(frame)
            await asyncio.sleep(0.5)
            auth_server.process.send_signal(signal.SIGTERM)
            return await collect_until_close(ws, timeout=30), close_of(ws)

    try:
        events, (code, reason) = run(call())
    finally:
        auth_server.stop()  # also drops it from the harness cache: a later start_server("auth") starts afresh
    assert events and events[-1]["type"] == "final"
    assert code == 1001 and reason == "server shutting down"
    assert auth_server.process.wait(timeout=30) is not None
