"""Faults a live call must survive without hurting any other call.

Two layers:

* in-process (``serving.sessions`` sessions on a Starlette test app, a fake ASR and classifier): the
  ASR or the classifier raising mid-call, a handler bug, a client that stops reading;
* a real ``callintent serve`` process (``tests/server_harness.py``) started for this module with
  small limits and a ``sitecustomize`` fault hook (written to a temporary folder and put first
  on the server's ``PYTHONPATH``; it makes the real ASR raise or the real classifier stall only
  for marked calls, so no test-only code ships in ``serving/``): client disconnects, vanishing
  and stalled clients, frames out of order and after stop, truncated and oversize frames, an ASR
  failure, REST overload (503 + ``Retry-After``) and SIGTERM under traffic.

Every server-level fault runs next to a *witness*: a concurrent call that must still get its
``started``, ``decision`` and ``final`` events and a normal close, and afterwards the server must
admit as many calls as its limit (no slot leaked).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import os
import signal
import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from tests.server_harness import (  # noqa: F401 (serving_tmp: fixture)
    CLEAR_SPEECH, Server, close_of, collect_until_close, decoded, recv_json, run, serving_tmp, spoken,
    start_server, write_wav,
)

# ---------------------------------------------------------------------------------------------
# In-process: sessions with a fake ASR and classifier

WORDS = (("hi", 0.1), ("how", 0.4), ("much", 0.7), ("for", 1.0), ("a", 1.2), ("roof", 1.5))


class _Recognizer:
    """A Transcriber that hears :data:`WORDS`, and fails on its 2nd decode of a ``boom-asr`` call."""

    def __init__(self) -> None:
        self.decodes: collections.Counter[str] = collections.Counter()

    def transcribe(self, audio, *, cut_seconds: float = 30.0, offset: float = 0.0):
        from speech.transcript import OpeningTranscript, Word
        from serving.logs import call_id_context

        call = call_id_context.get() or ""
        self.decodes[call] += 1
        if call.startswith("boom-asr") and self.decodes[call] >= 2:
            raise RuntimeError("injected ASR failure")
        end = min(offset + len(audio) / 16000, cut_seconds)
        words = tuple(Word(text, s, s + 0.2) for text, s in WORDS if offset <= s and s + 0.2 <= end)
        return OpeningTranscript(words, audio_seconds=len(audio) / 16000)


class _Predictor:
    """An IntentPredictor stand-in: a confident buying call, except that ``boom-score`` calls raise."""

    model_id = "intent/v0"
    meta = SimpleNamespace(speaker_tags=False, abstain_margin=None)

    def predict(self, texts):
        from models.labels import SIGNAL_NAMES
        from models.scores import IntentScores, SignalScore
        from serving.logs import call_id_context

        if (call_id_context.get() or "").startswith("boom-score"):
            raise RuntimeError("injected classifier failure")
        probs = {"buying": 0.95, "service": 0.03, "informational": 0.01, "noise": 0.01}
        signals = tuple(SignalScore(name, 0.1, False, ()) for name in SIGNAL_NAMES)
        return [IntentScores("buying", probs, probs["buying"], signals, self.model_id) for _ in texts]


def _config(**limits):
    from serving.config import load_serve_config

    return load_serve_config(environ={}, overrides={f"limits.{k}": v for k, v in limits.items()})


def _live_context(**limits):
    """What a live session sees: slots, decode pool, ASR, scoring, settings (and no API keys)."""
    from tests.service_fakes import live_context

    return live_context(asr=_Recognizer(), predictor=_Predictor(), config=_config(**limits))


def _tone(seconds: float) -> bytes:
    """pcm16 16 kHz of a 220 Hz tone (loud enough to pass the VAD gate)."""
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2").tobytes()


def _start(call_id: str, rate: int = 16000) -> str:
    return json.dumps({"type": "start", "call_id": call_id, "encoding": "pcm16", "sample_rate": rate})


def _drain(ws) -> tuple[list[dict], int]:
    """Every event until the server closes; (events, close code)."""
    from starlette.websockets import WebSocketDisconnect

    events = []
    try:
        while True:
            events.append(ws.receive_json())
    except WebSocketDisconnect as closed:
        return events, closed.code


def _assert_whole_call(events: list[dict], code: int) -> None:
    """The events after ``started`` of a call that went well."""
    types = [e["type"] for e in events]
    assert code == 1000, (code, types)
    assert types[-1] == "final" and types.count("decision") == 1, types
    assert "error" not in types, events
    assert events[-1]["transcript"]["text"] == "hi how much for a roof"


@pytest.fixture
def in_process():
    """(service, TestClient) serving the two live routes with fakes; checks no slot is left behind."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.testclient import TestClient

    from serving.sessions import GenericSession, TwilioSession

    ctx = _live_context(max_live_sessions=2)

    async def stream(websocket) -> None:
        await GenericSession(ctx, websocket).run()

    async def twilio(websocket) -> None:
        await TwilioSession(ctx, websocket).run()

    app = Starlette(routes=[WebSocketRoute("/v1/stream", stream), WebSocketRoute("/v1/twilio", twilio)])
    with TestClient(app) as client:
        yield ctx, client
    ctx.decode_pool.shutdown()
    assert ctx.slots.active == 0 and not ctx.slots.sessions, "a session kept its slot"


@pytest.mark.parametrize("doomed", ["boom-asr-1", "boom-score-1"])
def test_asr_or_classifier_raising_ends_only_that_call(in_process, doomed):
    """The ASR (2nd decode) or the classifier raising: that call gets internal_error + 1011, the other finishes."""
    _, client = in_process
    audio = _tone(2.0)
    with client.websocket_connect("/v1/stream") as bad, client.websocket_connect("/v1/stream") as good:
        bad.send_text(_start(doomed))
        good.send_text(_start("witness-1"))
        assert bad.receive_json()["type"] == good.receive_json()["type"] == "started"
        for i in range(0, len(audio), 640):  # interleaved 20 ms frames: both calls decode at once
            bad.send_bytes(audio[i:i + 640])
            good.send_bytes(audio[i:i + 640])
        good.send_text(json.dumps({"type": "stop"}))
        bad.send_text(json.dumps({"type": "stop"}))
        bad_events, bad_code = _drain(bad)
        good_events, good_code = _drain(good)
    errors = [e for e in bad_events if e["type"] == "error"]
    assert bad_code == 1011
    assert [e["error"]["code"] for e in errors] == ["internal_error"]
    assert "injected" not in json.dumps(bad_events), "internals must stay in the server log"
    assert not any(e["type"] == "final" for e in bad_events)
    _assert_whole_call(good_events, good_code)


def test_deeply_nested_json_is_bad_json_and_the_call_goes_on(in_process):
    """Regression: nesting past the JSON parser's recursion limit crashed the session (no close frame)."""
    _, client = in_process
    deep = "[" * 100_000 + "]" * 100_000
    huge_number = '{"type": "start", "sample_rate": 1' + "0" * 5000 + "}"
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text(deep)
        first = ws.receive_json()
        ws.send_text(huge_number)
        second = ws.receive_json()
        ws.send_text(_start("deep-1"))
        assert ws.receive_json()["type"] == "started"
        ws.send_bytes(_tone(2.0))
        ws.send_text(json.dumps({"type": "stop"}))
        events, code = _drain(ws)
    assert first["error"]["code"] == second["error"]["code"] == "bad_json"
    assert "nested too deeply" in first["error"]["message"]
    _assert_whole_call(events, code)
    with client.websocket_connect("/v1/twilio") as ws:  # the Twilio route reads JSON the same way
        ws.send_text(deep)
        assert ws.receive_json()["error"]["code"] == "bad_json"


def test_a_bug_in_a_message_handler_closes_1011_not_silently(in_process, monkeypatch):
    """Regression: an unexpected exception in a handler dropped the socket with no error event or close code."""
    from serving.sessions import GenericSession

    original = GenericSession._on_binary

    async def on_binary(self, data: bytes):
        if self.call_id == "bug-1":
            raise KeyError("injected handler bug")
        return await original(self, data)

    monkeypatch.setattr(GenericSession, "_on_binary", on_binary)
    _, client = in_process
    with client.websocket_connect("/v1/stream") as bad, client.websocket_connect("/v1/stream") as good:
        bad.send_text(_start("bug-1"))
        good.send_text(_start("witness-2"))
        assert bad.receive_json()["type"] == good.receive_json()["type"] == "started"
        bad.send_bytes(_tone(0.5))
        good.send_bytes(_tone(2.0))
        good.send_text(json.dumps({"type": "stop"}))
        bad_events, bad_code = _drain(bad)
        good_events, good_code = _drain(good)
    assert bad_code == 1011 and [e["error"]["code"] for e in bad_events] == ["internal_error"]
    _assert_whole_call(good_events, good_code)


class _UnreadSocket:
    """A client that sent ``messages`` and then stopped reading: every send after the first blocks forever."""

    def __init__(self, messages: list[dict]) -> None:
        self.scope: dict = {"state": {}}
        self.messages = list(messages)
        self.sent: list[dict] = []
        self.closed: tuple[int, str] | None = None

    async def accept(self) -> None:
        pass

    async def receive(self) -> dict:
        if self.messages:
            return self.messages.pop(0)
        await asyncio.Event().wait()  # and then nothing, ever (a half-open TCP connection)
        raise AssertionError("unreachable")

    async def send_text(self, text: str) -> None:
        if self.sent:
            await asyncio.Event().wait()  # the socket buffers are full
        self.sent.append(json.loads(text))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)


def test_a_client_that_stops_reading_frees_its_slot(monkeypatch):
    """Regression: a blocked send held the decode task, the session and its slot forever."""
    import serving.sessions as live

    monkeypatch.setattr(live, "SEND_TIMEOUT_SECONDS", 0.3)
    ctx = _live_context(max_live_sessions=1, idle_timeout_seconds=60)
    audio = _tone(2.0)
    ws = _UnreadSocket([{"type": "websocket.receive", "text": _start("unread-1")},
                        *({"type": "websocket.receive", "bytes": audio[i:i + 640]} for i in range(0, len(audio), 640))])

    async def serve() -> float:
        started = time.monotonic()
        await asyncio.wait_for(live.GenericSession(ctx, ws).run(), timeout=10)
        return time.monotonic() - started

    try:
        took = asyncio.run(serve())
    finally:
        ctx.decode_pool.shutdown()
    assert [e["type"] for e in ws.sent] == ["started"]
    assert took < 5, f"the session took {took:.1f} s to give up on a client that does not read"
    assert ctx.slots.active == 0 and not ctx.slots.sessions


# ---------------------------------------------------------------------------------------------
# A real server

#: Put first on the server's PYTHONPATH: makes the real ASR raise for calls whose id starts with
#: "fault-asr" and take 4 s over an upload of 0.75-0.79 s (SLOW_AUDIO_SAMPLES), and the real
#: classifier take 0.6 s over texts containing "slow classifier please" (under the batcher's 1 s
#: deadline, so only the in-flight limit can shed).
FAULT_HOOK = textwrap.dedent('''
    import time

    def _install():
        from speech import asr
        from models import predictor
        from serving import asr_batcher

        # Live calls reach the ASR through the batcher, in the call's own decode thread (where
        # the call id context is set); the batch itself runs on a worker thread.
        transcribe = asr_batcher.BatchingTranscriber.transcribe
        transcribe_timed = asr.SpeechRecognizer.transcribe_timed
        predict = predictor.IntentPredictor.predict

        def faulty_transcribe(self, audio, **kw):
            from serving.logs import call_id_context
            if (call_id_context.get() or "").startswith("fault-asr"):
                raise RuntimeError("injected ASR failure")
            return transcribe(self, audio, **kw)

        def slow_transcribe_timed(self, audio, **kw):
            if 12000 <= len(audio) <= 12700:
                time.sleep(4.0)
            return transcribe_timed(self, audio, **kw)

        def slow_predict(self, texts, **kw):
            if any("slow classifier please" in t for t in texts):
                time.sleep(0.6)
            return predict(self, texts, **kw)

        asr_batcher.BatchingTranscriber.transcribe = faulty_transcribe
        asr.SpeechRecognizer.transcribe_timed = slow_transcribe_timed
        predictor.IntentPredictor.predict = slow_predict

    try:
        _install()
    except ImportError:  # a process without the project on its path (not the server)
        pass
''')

FAULT_LIMITS = {"limits.max_live_sessions": 3, "limits.idle_timeout_seconds": 2, "limits.max_inflight_requests": 1,
                "limits.max_inflight_audio_requests": 1, "limits.max_message_bytes": 65536, "decode_workers": 2}


@pytest.fixture(scope="module")
def fault_server(serving_tmp: Path) -> Iterator[Server]:
    hook = serving_tmp / "fault-hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(FAULT_HOOK, encoding="utf-8")
    repo = Path(__file__).resolve().parents[1]
    pythonpath = os.pathsep.join([str(hook), str(repo), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    server = start_server("faults", serving_tmp, overrides=FAULT_LIMITS, env={"PYTHONPATH": pythonpath})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def speech_frames(tmp_path_factory) -> list[bytes]:
    """CLEAR_SPEECH as 16 kHz pcm16 20 ms frames."""
    audio = decoded(spoken(CLEAR_SPEECH, tmp_path_factory.mktemp("speech"), pad_seconds=0.5))
    data = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    return [data[i:i + 640] for i in range(0, len(data), 640)]


def _start_message(call_id: str, **fields) -> str:
    return json.dumps({"type": "start", "call_id": call_id, "encoding": "pcm16", "sample_rate": 16000, **fields})


async def _witness(server: Server, frames: list[bytes], call_id: str, pace: float = 0.005) -> tuple[list[dict], tuple]:
    """A well-behaved call (4x real time) running next to a fault; returns (events, close)."""
    import websockets

    async with websockets.connect(f"{server.ws}/v1/stream") as ws:
        await ws.send(_start_message(call_id))
        events = [await recv_json(ws)]
        for frame in frames:
            await ws.send(frame)
            await asyncio.sleep(pace)
        await ws.send(json.dumps({"type": "stop"}))
        return await collect_until_close(ws, 60, events), close_of(ws)


def _assert_witness(result: tuple[list[dict], tuple]) -> None:
    events, (code, reason) = result
    types = [e["type"] for e in events]
    assert (code, reason) == (1000, "stop"), (code, reason, types)
    assert types[0] == "started" and types[-1] == "final" and types.count("decision") == 1, types
    assert "error" not in types, events
    assert "roof" in events[-1]["transcript"]["text"].lower()


def _admits_all(server: Server, n: int, within: float = 20.0) -> None:
    """Within ``within`` seconds, n calls at once are all admitted and end cleanly: no slot leaked.

    The faulty calls of a test may still be finishing (a dropped call still gets its last decode,
    so its decision is counted), hence the retries.
    """
    import websockets
    from websockets.exceptions import ConnectionClosed

    async def attempt() -> list[str]:
        sockets = [await websockets.connect(f"{server.ws}/v1/stream") for _ in range(n)]
        admitted = []
        for i, ws in enumerate(sockets):
            await ws.send(_start_message(f"admit-{i}"))
            admitted.append((await recv_json(ws))["type"])
        for ws in sockets:
            with contextlib.suppress(ConnectionClosed):  # a refused one is already closed
                await ws.send(json.dumps({"type": "stop"}))
            await collect_until_close(ws, 30)
        return admitted

    deadline = time.monotonic() + within
    while True:
        admitted = run(attempt())
        if admitted == ["started"] * n or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert admitted == ["started"] * n, f"after the faults the server admits only {admitted}"


@pytest.mark.integration
def test_client_disconnect_and_vanish_mid_stream(fault_server, speech_frames):
    """A close frame mid-call and a TCP connection dropped with no close frame: the witness is untouched."""
    import websockets

    async def close_mid_call() -> None:
        async with websockets.connect(f"{fault_server.ws}/v1/stream") as ws:
            await ws.send(_start_message("gone-1"))
            await recv_json(ws)
            for frame in speech_frames[:60]:
                await ws.send(frame)
        # the context manager sent a close frame (1000) without a stop message

    async def vanish_mid_call() -> None:
        ws = await websockets.connect(f"{fault_server.ws}/v1/stream")
        await ws.send(_start_message("gone-2"))
        await recv_json(ws)
        for frame in speech_frames[:60]:
            await ws.send(frame)
        ws.transport.abort()  # RST: no close frame, no FIN handshake

    async def scenario():
        witness = asyncio.create_task(_witness(fault_server, speech_frames, "witness-gone"))
        await asyncio.gather(close_mid_call(), vanish_mid_call())
        return await witness

    _assert_witness(run(scenario()))
    _admits_all(fault_server, 3)
    log = fault_server.log_text()
    assert '"call ended (disconnect)' in log.replace("\\", "") or "call ended (disconnect)" in log


def _raw_handshake(server: Server, path: str = "/v1/stream") -> socket.socket:
    """A WebSocket handshake on a plain socket, which then never reads and never closes."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    assert sock.recv(4096).startswith(b"HTTP/1.1 101")
    return sock


def _masked_frame(payload: bytes, opcode: int) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    length = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return bytes([0x80 | opcode]) + length + mask + body


@pytest.mark.integration
def test_stalled_and_half_open_clients_are_closed_by_the_idle_timeout(fault_server, speech_frames):
    """A client that stops sending gets its final event and close 1001 "idle timeout"; a half-open
    socket (never reads, never closes) loses its slot the same way; the witness is untouched."""
    import websockets

    half_open = _raw_handshake(fault_server)
    half_open.sendall(_masked_frame(_start_message("half-open-1").encode(), 0x1))
    half_open.sendall(_masked_frame(b"".join(speech_frames[:25]), 0x2))

    async def stalled():
        async with websockets.connect(f"{fault_server.ws}/v1/stream") as ws:
            await ws.send(_start_message("stalled-1"))
            events = [await recv_json(ws)]
            for frame in speech_frames[:60]:
                await ws.send(frame)
            started = time.monotonic()
            events = await collect_until_close(ws, 30, events)  # send nothing more
            return events, close_of(ws), time.monotonic() - started

    async def scenario():
        return await asyncio.gather(stalled(), _witness(fault_server, speech_frames, "witness-stall"))

    try:
        (events, close, waited), witness = run(scenario())
    finally:
        half_open.close()
    assert close == (1001, "idle timeout")
    assert 1.5 <= waited < 6, waited
    assert [e["type"] for e in events][-1] == "final" and events[-1]["totals"]["audio_seconds"] > 1
    _assert_witness(witness)
    _admits_all(fault_server, 3)


@pytest.mark.integration
def test_messages_out_of_order_and_after_stop(fault_server, speech_frames):
    """Generic: stop before start, audio before start, a second start, audio after stop. Twilio: media
    before start, duplicate and late sequence numbers, media after stop."""
    import websockets

    from serving.client import plan_stream

    async def generic():
        results = {}
        async with websockets.connect(f"{fault_server.ws}/v1/stream") as ws:
            await ws.send(json.dumps({"type": "stop"}))
            results["stop_first"] = (await collect_until_close(ws, 10), close_of(ws))
        async with websockets.connect(f"{fault_server.ws}/v1/stream") as ws:
            await ws.send(speech_frames[0])
            results["audio_first"] = (await collect_until_close(ws, 10), close_of(ws))
        async with websockets.connect(f"{fault_server.ws}/v1/stream") as ws:
            await ws.send(_start_message("order-1"))
            await recv_json(ws)
            await ws.send(_start_message("order-2"))
            again = await recv_json(ws)
            for frame in speech_frames:
                await ws.send(frame)
            await ws.send(json.dumps({"type": "stop"}))
            for frame in speech_frames[:50]:  # after stop: must be ignored, not crash or reopen the call
                await ws.send(frame)
            results["after_stop"] = (again, await collect_until_close(ws, 30), close_of(ws))
        return results

    async def twilio():
        plan = plan_stream(decoded_speech(speech_frames), twilio=True, call_id="CA" + "5" * 32)
        media = [json.loads(f) for f in plan.frames]
        async with websockets.connect(f"{fault_server.ws}/v1/twilio") as ws:
            await ws.send(plan.start[0])  # connected
            await ws.send(json.dumps(media[0]))  # media before start
            early = await recv_json(ws)
            await ws.send(plan.start[1])
            started = await recv_json(ws)
            for i, message in enumerate(media[1:], start=1):
                await ws.send(json.dumps(message))
                if i == 10:
                    await ws.send(json.dumps(media[5]))  # a duplicate
                    late = dict(media[8], sequenceNumber="4")  # never seen, older than the newest
                    await ws.send(json.dumps(late))
            await ws.send(plan.stop)
            await ws.send(json.dumps(media[3]))  # after stop
            return early, started, await collect_until_close(ws, 30), close_of(ws)

    async def scenario():
        return await asyncio.gather(generic(), twilio(), _witness(fault_server, speech_frames, "witness-order"))

    generic_results, (early, started, twilio_events, twilio_close), witness = run(scenario())
    events, close = generic_results["stop_first"]
    assert [e["error"]["code"] for e in events] == ["not_started"] and close == (1000, "no call")
    events, close = generic_results["audio_first"]
    assert [e["error"]["code"] for e in events] == ["binary_before_start"] and close == (1008, "audio before start")
    again, events, close = generic_results["after_stop"]
    assert again["error"]["code"] == "already_started"
    assert close == (1000, "stop") and events[-1]["type"] == "final"
    assert events[-1]["call_id"] == "order-1" and "roof" in events[-1]["transcript"]["text"].lower()
    assert events[-1]["totals"]["audio_seconds"] == pytest.approx(len(speech_frames) * 0.02, abs=0.05)

    assert early["error"]["code"] == "protocol_error" and "before start" in early["error"]["message"]
    assert started["type"] == "started"
    assert twilio_close == (1000, "stop") and twilio_events[-1]["type"] == "final"
    assert not [e for e in twilio_events if e["type"] == "error"], "duplicates and late frames are dropped quietly"
    assert "roof" in twilio_events[-1]["transcript"]["text"].lower()
    _assert_witness(witness)
    _admits_all(fault_server, 3)


def decoded_speech(frames: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(frames), dtype="<i2").astype(np.float32) / 32768.0


@pytest.mark.integration
def test_truncated_and_oversize_frames(fault_server, speech_frames):
    """pcm16 frames that split samples (odd lengths), an oversize frame, Twilio base64 that does not
    decode and a truncated JSON message: errors where documented, the calls go on, the witness is untouched."""
    import websockets

    from serving.client import plan_stream

    odd = b"".join(speech_frames)

    async def generic():
        async with websockets.connect(f"{fault_server.ws}/v1/stream", max_size=2 ** 22) as ws:
            await ws.send(_start_message("odd-1"))
            await recv_json(ws)
            for i in range(0, len(odd), 641):  # 641 bytes: every frame ends mid-sample
                await ws.send(odd[i:i + 641])
            await ws.send(b"\0" * 70_000)  # over limits.max_message_bytes (65536)
            oversize = await recv_json(ws)
            await ws.send('{"type": "stop"')  # truncated JSON
            truncated = await recv_json(ws)
            await ws.send(json.dumps({"type": "stop"}))
            return oversize, truncated, await collect_until_close(ws, 30), close_of(ws)

    async def twilio():
        plan = plan_stream(decoded_speech(speech_frames), twilio=True, call_id="CA" + "6" * 32)
        async with websockets.connect(f"{fault_server.ws}/v1/twilio") as ws:
            for message in plan.start:
                await ws.send(message)
            await recv_json(ws)  # started
            bad = json.loads(plan.frames[0])
            for payload in ("not base64 at all!", "QUJ", "QUJDRA="):  # bad alphabet, truncated, bad padding
                await ws.send(json.dumps(dict(bad, media=dict(bad["media"], payload=payload))))
            errors = [await recv_json(ws) for _ in range(3)]
            for message in plan.frames:
                await ws.send(message)
            await ws.send(plan.stop)
            return errors, await collect_until_close(ws, 30), close_of(ws)

    async def scenario():
        return await asyncio.gather(generic(), twilio(), _witness(fault_server, speech_frames, "witness-frames"))

    (oversize, truncated, events, close), (errors, twilio_events, twilio_close), witness = run(scenario())
    assert oversize["error"]["code"] == "message_too_large" and "65536" in oversize["error"]["message"]
    assert truncated["error"]["code"] == "bad_json"
    assert close == (1000, "stop") and events[-1]["type"] == "final"
    assert "roof" in events[-1]["transcript"]["text"].lower()
    assert events[-1]["totals"]["audio_seconds"] == pytest.approx(len(odd) / 32000, abs=0.01)
    assert [e.get("error", e)["code"] for e in errors] == ["bad_media"] * 3, errors
    assert twilio_close == (1000, "stop") and "roof" in twilio_events[-1]["transcript"]["text"].lower()
    _assert_witness(witness)
    _admits_all(fault_server, 3)


@pytest.mark.integration
def test_asr_failure_on_the_server_ends_only_that_call(fault_server, speech_frames):
    """The real ASR raising (fault hook) for one call: internal_error + 1011; the witness and /score go on."""
    import websockets

    async def doomed():
        async with websockets.connect(f"{fault_server.ws}/v1/stream") as ws:
            await ws.send(_start_message("fault-asr-1"))
            events = [await recv_json(ws)]
            with contextlib.suppress(websockets.exceptions.ConnectionClosed):  # closed as it fails
                for frame in speech_frames:
                    await ws.send(frame)
                    await asyncio.sleep(0.005)
            return await collect_until_close(ws, 30, events), close_of(ws)

    async def scenario():
        return await asyncio.gather(doomed(), _witness(fault_server, speech_frames, "witness-asr"))

    (events, close), witness = run(scenario())
    assert close == (1011, "internal error")
    assert [e["type"] for e in events] == ["started", "error"]
    assert events[1]["error"] == {"code": "internal_error",
                                  "message": "the call failed on the server; see the server log"}
    _assert_witness(witness)
    assert httpx.post(f"{fault_server.url}/score", json={"transcript": "how much for a roof"}).status_code == 200
    assert "injected ASR failure" in fault_server.log_text()
    _admits_all(fault_server, 3)


@pytest.mark.integration
def test_overload_is_shed_with_503_and_retry_after(fault_server, tmp_path, speech_frames):
    """Over max_inflight_requests (1) /score answers 503 at once; over max_inflight_audio_requests (1)
    /score_audio does; the requests in flight and a live call are not slowed; afterwards all is served."""
    # 12345 samples: the hook's slow ASR (a decode worker, not the model thread, so the audio's own
    # scoring 4 s later finds the classifier free and the batcher has no reason to shed it).
    wav = write_wav(tmp_path / "call.wav", decoded_speech(speech_frames)[:12345])

    async def scenario():
        async with httpx.AsyncClient(base_url=fault_server.url, timeout=30) as client:
            slow = [asyncio.create_task(client.post("/score", json={"transcript": "slow classifier please"}))]
            audio = asyncio.create_task(client.post("/score_audio", files={"file": ("call.wav", wav.read_bytes())}))
            witness = asyncio.create_task(_witness(fault_server, speech_frames, "witness-overload"))
            await asyncio.sleep(0.2)  # the slow ones are in flight
            shed = await client.post("/score", json={"transcript": "how much for a roof"})
            # 3 MB: the client is still uploading when the 503 is ready; it must still read it
            # (a response sent before the body is read used to reach it as a connection reset)
            big = wav.read_bytes() + bytes(3_000_000)
            shed_audio = await client.post("/score_audio", files={"file": ("call.wav", big)})
            answered_first = not any(task.done() for task in slow)
            done = await asyncio.gather(*slow, audio)
            after = await client.post("/score", json={"transcript": "how much for a roof"})
            return shed, shed_audio, answered_first, done, after, await witness

    shed, shed_audio, answered_first, done, after, witness = run(scenario())
    for response, path in ((shed, "/score"), (shed_audio, "/score_audio")):
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"error": {"code": "overloaded", "message": (
            f"the server is overloaded (1 {path} requests in flight); "
            "retry after 1 s")}}
    # The slow requests take 0.6 s and 4 s: a shed request is answered at once, not after them.
    assert answered_first, "the shed requests waited for the requests in flight"
    assert [r.status_code for r in done] == [200, 200]
    assert after.status_code == 200
    _assert_witness(witness)
    deadline = time.monotonic() + 5  # worker metric files are merged on scrape; give them a moment
    while 'callintent_requests_total{endpoint="/score",status="503"}' not in (
            metrics := httpx.get(f"{fault_server.url}/metrics").text) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert 'callintent_requests_total{endpoint="/score",status="503"}' in metrics


@pytest.mark.integration
def test_sigterm_under_traffic(fault_server, speech_frames):
    """SIGTERM with live calls and /score traffic: every open call gets its final event and 1001
    "server shutting down", /score answers 200 until the server stops accepting, and it exits 0."""
    import websockets

    async def open_call(i: int):
        async with websockets.connect(f"{fault_server.ws}/v1/stream") as ws:
            await ws.send(_start_message(f"term-{i}"))
            events = [await recv_json(ws)]
            sending = asyncio.create_task(_send_slowly(ws, speech_frames))
            events = await collect_until_close(ws, 30, events)
            sending.cancel()
            return events, close_of(ws)

    async def score_traffic(stop) -> list[int | str]:
        statuses: list[int | str] = []
        async with httpx.AsyncClient(base_url=fault_server.url, timeout=10) as client:
            while not stop.is_set():
                try:
                    statuses.append((await client.post("/score", json={"transcript": "how much"})).status_code)
                except httpx.TransportError as e:  # the server has stopped listening
                    statuses.append(type(e).__name__)
                    break
                await asyncio.sleep(0.05)
        return statuses

    async def scenario():
        stop = asyncio.Event()
        calls = [asyncio.create_task(open_call(i)) for i in range(2)]
        traffic = asyncio.create_task(score_traffic(stop))
        await asyncio.sleep(1.5)  # calls are mid-stream, requests flowing
        fault_server.process.send_signal(signal.SIGTERM)
        results = await asyncio.gather(*calls)
        await asyncio.sleep(0.5)
        stop.set()
        return results, await traffic

    results, statuses = run(scenario())
    for events, close in results:
        assert close == (1001, "server shutting down"), close
        assert events[-1]["type"] == "final" and events[-1]["totals"]["audio_seconds"] > 0.5
    assert statuses and statuses[0] == 200
    assert all(s == 200 or isinstance(s, str) for s in statuses), statuses  # never a 5xx
    assert fault_server.process.wait(timeout=30) == 0
    fault_server.stop()


async def _send_slowly(ws, frames: list[bytes]) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        for frame in frames * 5:  # real time, longer than the test waits
            await ws.send(frame)
            await asyncio.sleep(0.02)
    except ConnectionClosed:
        pass


def test_a_shed_request_body_is_read_before_the_503_goes_out() -> None:
    """A 503 sent while the client is still uploading can reach it as a connection reset; the
    middleware reads (and drops) the body first, bounded by drain_bytes."""
    from serving.limits import InflightLimitMiddleware

    async def scenario(chunks: int, drain_bytes: int) -> tuple[list[str], int]:
        events: list[str] = []
        received = 0

        async def receive():
            nonlocal received
            received += 1
            events.append("body")
            return {"type": "http.request", "body": b"x" * 1000, "more_body": received < chunks}

        async def send(message):
            events.append(message["type"])

        async def app(scope, receive, send):  # the one request in flight, never finishing here
            raise AssertionError("a shed request must not reach the app")

        middleware = InflightLimitMiddleware(app, limits={"/score_audio": 1}, drain_bytes=drain_bytes)
        middleware.inflight["/score_audio"] = 1
        await middleware({"type": "http", "path": "/score_audio", "headers": []}, receive, send)
        return events, received

    events, received = run(scenario(chunks=5, drain_bytes=10_000))
    assert events == ["body"] * 5 + ["http.response.start", "http.response.body"] and received == 5
    events, received = run(scenario(chunks=50, drain_bytes=2_500))  # a huge upload is cut off, not read whole
    assert received == 3 and events[-2:] == ["http.response.start", "http.response.body"]


class _PickyPredictor(_Predictor):
    """Raises on any batch that holds a transcript with "boom" in it (as a model bug on one input would)."""

    def predict(self, texts):
        if any("boom" in t for t in texts):
            raise ValueError("injected failure on one transcript")
        return super().predict(texts)


def test_a_transcript_the_model_fails_on_fails_only_its_own_request():
    from serving.policy import DecisionPolicy
    from serving.scoring import ScoreItem, ScoredCall, Scoring, ScoringFailed

    scoring = Scoring(_PickyPredictor(), DecisionPolicy.from_yaml())
    items = [ScoreItem(transcript=t, call_id=f"c{i}") for i, t in enumerate(["how much", "boom", "a quote please"])]
    results = scoring.score_items(items)
    assert [type(r) for r in results] == [ScoredCall, ScoringFailed, ScoredCall]
    assert results[0].scores.label == "buying" and results[2].text == "a quote please"
    assert results[0].batch_size == 3
    assert "call c1: the model failed" in str(results[1])


def test_the_failed_request_gets_a_json_500_and_the_server_goes_on():
    from tests.service_fakes import serving_client, wired_service

    svc = wired_service(_config(), predictor=_PickyPredictor(), asr=_Recognizer())
    with serving_client(svc) as client:
        bad = client.post("/score", json={"transcript": "boom"})
        good = client.post("/score", json={"transcript": "how much for a roof"})
    assert bad.status_code == 500 and bad.json()["error"]["code"] == "internal_error"
    assert "failed on this transcript" in bad.json()["error"]["message"]
    assert good.status_code == 200 and good.json()["intent"] == "buying"


def test_readiness_drops_once_a_shutdown_drains():
    """``/readyz`` (``__is_ready__``) turns false when SIGTERM starts the drain, so a load balancer's
    health check takes the replica out while it still finishes its calls (tests/test_replicas.py)."""
    from serving.sessions import _start_drain
    from tests.service_fakes import wired_service

    svc = wired_service(_config(), predictor=_Predictor(), asr=_Recognizer())
    handed_on: list[int] = []

    async def scenario() -> tuple[bool, bool]:
        before = await svc.__is_ready__()
        _start_drain(svc.live.slots, 10.0, 0.0, lambda sig, frame: handed_on.append(sig), signal.SIGTERM, None)
        return before, await svc.__is_ready__()

    assert run(scenario()) == (True, False)
    assert handed_on == [signal.SIGTERM]  # with no open call the drain ends at once and uvicorn stops the server


def test_shutdown_drain_waits_at_most_the_configured_drain_seconds(caplog) -> None:
    from serving.config import LimitsConfig
    from serving.limits import SessionSlots
    from serving.sessions import _drain

    class Call:
        def __init__(self, ends: bool) -> None:
            self.done, self.ends, self.asked = asyncio.Event(), ends, False

        def request_shutdown(self) -> None:
            self.asked = True
            if self.ends:
                self.done.set()

    async def scenario(drain_seconds: float) -> tuple[float, list[Call]]:
        slots = SessionSlots(4)
        calls = [Call(ends=True), Call(ends=False)]
        slots.sessions.update(calls)
        started = time.perf_counter()
        await _drain(slots, drain_seconds)
        return time.perf_counter() - started, calls

    waited, calls = asyncio.run(scenario(0.3))
    assert all(c.asked for c in calls)
    assert 0.3 <= waited < 1.5
    assert "1 live calls did not finish within 0 s (limits.drain_seconds)" in caplog.text  # "%.0f" of 0.3
    with pytest.raises(ValueError, match="drain_seconds must be a number > 0"):
        LimitsConfig(drain_seconds=0)


def test_shutdown_stays_unready_long_enough_for_a_load_balancer_to_notice() -> None:
    """However soon the calls end, the server stops no sooner than unready_seconds after SIGTERM
    (a request sent on a kept-alive connection as the server closed it was lost: test_replicas)."""
    from serving.config import LimitsConfig
    from serving.limits import SessionSlots
    from serving.sessions import _drain

    async def timed(slots: SessionSlots, drain: float, unready: float) -> float:
        started = time.perf_counter()
        await _drain(slots, drain, unready)
        return time.perf_counter() - started

    assert 0.4 <= asyncio.run(timed(SessionSlots(4), 10.0, 0.4)) < 1.0  # no call open: still waits
    assert asyncio.run(timed(SessionSlots(4), 10.0, 0.0)) < 0.1
    with pytest.raises(ValueError, match="unready_seconds must be a number in \\[0, drain_seconds=10\\]"):
        LimitsConfig(unready_seconds=11)
