"""The Python clients and ``callintent stream`` against a real server (``tests/server_harness.py``)."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from serving.client import (
    ApiError, AsyncCallIntentClient, CallIntentClient, ServerUnavailable, float_to_mulaw, plan_stream,
)

# The harness caches servers by name, so this file and test_serving_sessions share one "live" process.
from tests.server_harness import (  # noqa: F401 (live_server, serving_tmp: fixtures)
    CLEAR_SPEECH, JFK, Server, free_port, live_server, serving_tmp, spoken,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def server(live_server: Server) -> Server:
    return live_server


@pytest.fixture
def speech(tmp_path) -> Path:
    return spoken(CLEAR_SPEECH, tmp_path, pad_seconds=0.3)


# ---------------------------------------------------------------------------------------------
# Unit: audio framing and message shapes


def test_mulaw_encoder_inverts_the_decoder():
    from speech.audio import mulaw_to_float

    x = np.linspace(-1, 1, 4001, dtype=np.float32)
    y = mulaw_to_float(float_to_mulaw(x))
    assert np.abs(y - x).max() < 0.03  # μ-law's coarsest step near full scale
    quiet = np.linspace(-0.01, 0.01, 401, dtype=np.float32)
    assert np.abs(mulaw_to_float(float_to_mulaw(quiet)) - quiet).max() < 0.0005
    assert float_to_mulaw(np.zeros(3, np.float32)) == b"\xff\xff\xff"  # G.711 silence


def test_plan_generic_pcm16_and_mulaw():
    audio = np.zeros(16000, np.float32)
    plan = plan_stream(audio, call_id="c1", metadata={"source": "ads"})
    start = json.loads(plan.start[0])
    assert start == {"type": "start", "call_id": "c1", "encoding": "pcm16", "sample_rate": 16000,
                     "metadata": {"source": "ads"}}
    assert len(plan.frames) == 50 and all(len(f) == 640 for f in plan.frames)
    assert json.loads(plan.stop) == {"type": "stop"}
    mulaw = plan_stream(audio, encoding="mulaw")
    assert json.loads(mulaw.start[0])["sample_rate"] == 8000
    assert sum(len(f) for f in mulaw.frames) == pytest.approx(8000, abs=160) and len(mulaw.frames[0]) == 160


def test_plan_twilio_messages_are_valid_twilio():
    """Every message the client sends parses as Twilio Media Streams and arrives in order."""
    from serving.twilio import MediaMessage, StartMessage, StopMessage, TwilioStreamState, parse_message

    plan = plan_stream(np.zeros(8000, np.float32), twilio=True, call_id="CA" + "f" * 32,
                       metadata={"campaign": "spring"})
    state = TwilioStreamState()
    messages = [parse_message(m) for m in (*plan.start, *plan.frames, plan.stop)]
    arrivals = [state.accept(m) for m in messages]
    assert all(a.status == "ok" for a in arrivals)
    assert isinstance(messages[1], StartMessage) and messages[1].custom_parameters == {"campaign": "spring"}
    assert state.call_id == "CA" + "f" * 32
    media = [m for m in messages if isinstance(m, MediaMessage)]
    assert len(media) == 25 and all(len(m.payload) == 160 for m in media)
    assert [m.timestamp_ms for m in media[:3]] == [0, 20, 40]
    assert isinstance(messages[-1], StopMessage)
    raw = json.loads(plan.frames[0])
    assert base64.b64decode(raw["media"]["payload"]) == media[0].payload


def test_plan_two_channel_recordings():
    from callintent.errors import UserError
    from serving.twilio import MediaMessage, TwilioStreamState, parse_message

    caller, agent = np.full(16000, 0.5, np.float32), np.full(16000, -0.25, np.float32)
    plan = plan_stream(np.stack([caller, agent]), speakers=["caller", "agent"], call_id="c2")
    start = json.loads(plan.start[0])
    assert (start["channels"], start["speakers"]) == (2, ["caller", "agent"])
    assert len(plan.frames) == 50 and all(len(f) == 1280 for f in plan.frames)  # 20 ms x 2 channels x 2 bytes
    pcm = np.frombuffer(plan.frames[0], dtype="<i2").reshape(-1, 2)  # interleaved, channel order kept
    assert (pcm[:, 0] == 16383).all() and (pcm[:, 1] == -8191).all()

    twilio = plan_stream(np.stack([agent, caller]), speakers=["agent", "caller"], twilio=True)
    assert json.loads(twilio.start[1])["start"]["tracks"] == ["inbound", "outbound"]
    state = TwilioStreamState()
    messages = [parse_message(m) for m in (*twilio.start, *twilio.frames, twilio.stop)]
    assert all(state.accept(m).status == "ok" for m in messages)
    media = [m for m in messages if isinstance(m, MediaMessage)]
    assert [m.track for m in media[:4]] == ["outbound", "inbound", "outbound", "inbound"]  # agent first, as given
    assert len(media) == 100 and twilio.frame_seconds == pytest.approx(0.01)  # a pair per 20 ms of call

    with pytest.raises(UserError, match="must have two channels .* it has 1"):
        plan_stream(caller, speakers=["caller", "agent"])
    with pytest.raises(UserError, match="speakers must name the two channels"):
        plan_stream(np.stack([caller, agent]), speakers=["caller", "boss"])


# ---------------------------------------------------------------------------------------------
# Against the server


@pytest.mark.integration
def test_sync_client_score_and_audio(server):
    with CallIntentClient(server.url) as client:
        result = client.score("hi I saw your ad, how much is a new roof", {"source": "google_ads"}, call_id="cl-1")
        assert result["call_id"] == "cl-1" and result["intent"] == "buying" and result["decision"]["route"]
        audio = client.score_audio(JFK, metadata={"source": "organic"})
        assert "country" in audio["transcript"].lower() and audio["words"]
        with pytest.raises(ApiError) as info:
            client.score("")
        assert info.value.status == 422 and info.value.code == "invalid_request" and info.value.fields == ["transcript"]


@pytest.mark.integration
def test_sync_client_stream_generic_and_twilio(server, speech):
    with CallIntentClient(server.url) as client:
        events = list(client.stream(speech, call_id="cl-stream", metadata={"source": "google_ads"}))
        twilio = list(client.stream(speech, twilio=True, call_id="CA" + "9" * 32))
    for evs in (events, twilio):
        types = [e["type"] for e in evs]
        assert types[0] == "started" and types[-1] == "final" and types.count("decision") == 1
        assert "roof" in evs[-1]["transcript"]["text"].lower()
    assert events[0]["call_id"] == "cl-stream" and twilio[0]["call_id"] == "CA" + "9" * 32


@pytest.mark.integration
def test_async_client(server, speech):
    async def go():
        async with AsyncCallIntentClient(server.url) as client:
            scored = await asyncio.gather(*(client.score(f"checking on my order {i}") for i in range(4)))
            events = [e async for e in client.stream(speech, encoding="mulaw")]
            return scored, events

    scored, events = asyncio.run(go())
    assert [s["intent"] for s in scored] == ["service"] * 4
    assert events[0]["type"] == "started" and events[-1]["type"] == "final"


def test_unreachable_server_is_one_clear_error():
    url = f"http://127.0.0.1:{free_port()}"
    with CallIntentClient(url, timeout=5) as client:
        with pytest.raises(ServerUnavailable, match="is the server running"):
            client.score("hello")
        with pytest.raises(ServerUnavailable, match="cannot connect to ws://"):
            list(client.stream(np.zeros(1600, np.float32)))


# ---------------------------------------------------------------------------------------------
# callintent stream


def _stream_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "callintent", "stream", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=180)


@pytest.mark.integration
def test_stream_cli_prints_partials_and_the_decision(server, speech):
    out = _stream_cli(str(speech), "--url", server.ws, "--meta", "source=google_ads")
    assert out.returncode == 0, out.stderr
    assert ">>> DECISION:" in out.stdout and "final transcript:" in out.stdout
    assert "roof" in out.stdout.lower()
    as_json = _stream_cli(str(speech), "--url", server.ws, "--json", "--twilio", "--frame-ms", "40")
    assert as_json.returncode == 0, as_json.stderr
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert events[0]["type"] == "started" and events[-1]["type"] == "final"


def test_stream_cli_connection_refused_exits_2_with_one_line(tmp_path):
    wav = tmp_path / "silence.wav"
    import wave

    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 800)
    out = _stream_cli(str(wav), "--url", f"ws://127.0.0.1:{free_port()}")
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot connect" in lines[0], out.stderr


@pytest.mark.integration
def test_a_stereo_recording_streams_as_a_two_channel_call(server, tmp_path, capsys):
    from callintent.cli import main

    caller = spoken(CLEAR_SPEECH, tmp_path, name="caller.wav", pad_seconds=0.3)
    agent = spoken("thank you for calling how can I help", tmp_path, name="agent.wav", pad_seconds=0.3)
    stereo = tmp_path / "call.wav"  # left: the caller, right: the agent (sox pads the shorter one)
    subprocess.run(["sox", "-M", str(caller), str(agent), str(stereo)], check=True)
    with CallIntentClient(server.url) as client:
        for twilio in (False, True):
            events = list(client.stream(stereo, twilio=twilio, speakers=["caller", "agent"]))
            assert events[0]["config"]["speakers"] == ["caller", "agent"]
            speakers = events[-1]["transcript"]["speakers"]
            assert "roof" in speakers["caller"]["text"].lower() and "roof" not in speakers["agent"]["text"].lower()
            assert "calling" in speakers["agent"]["text"].lower()
    assert main(["stream", str(stereo), "--url", server.url, "--speakers", "caller,agent", "--json"]) == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert final["type"] == "final" and set(final["transcript"]["speakers"]) == {"caller", "agent"}
    assert main(["stream", str(caller), "--url", server.url, "--speakers", "caller,agent"]) == 2
    assert "two channels" in capsys.readouterr().err
