"""Two-channel live calls against a real server: stereo PCM on /v1/stream and Twilio's
inbound + outbound tracks on /v1/twilio. The speakers are transcribed apart, every word keeps
its speaker, and only the caller's words are scored."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from tests.server_harness import (  # noqa: F401 (live_server, serving_tmp: fixtures)
    CLEAR_SPEECH, close_of, collect_until_close, decoded, live_server, recv_json, run, serving_tmp, spoken,
)

pytestmark = pytest.mark.integration

AGENT_GREETING = "thank you for calling how can I help you today"


def two_speakers(tmp_path) -> tuple[np.ndarray, np.ndarray]:
    """(caller, agent) channels of one call: the agent greets, then the caller speaks."""
    agent = decoded(spoken(AGENT_GREETING, tmp_path, name="agent.wav"))
    caller = decoded(spoken(CLEAR_SPEECH, tmp_path, name="caller.wav"))
    pause = np.zeros(8000, np.float32)
    caller_channel = np.concatenate([np.zeros_like(agent), pause, caller])
    agent_channel = np.concatenate([agent, pause, np.zeros_like(caller)])
    return caller_channel, agent_channel


def check_speakers(final: dict) -> None:
    transcript = final["transcript"]
    caller_text = transcript["speakers"]["caller"]["text"].lower()
    agent_text = transcript["speakers"]["agent"]["text"].lower()
    assert "roof" in caller_text and "calling" not in caller_text, transcript
    assert "calling" in agent_text and "roof" not in agent_text, transcript
    assert transcript["text"].lower() == caller_text  # the scored text is the caller's
    words = transcript["words"]
    assert {w["speaker"] for w in words} == {"caller", "agent"}
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    first_caller = min(w["start"] for w in words if w["speaker"] == "caller")
    assert max(w["start"] for w in words if w["speaker"] == "agent") < first_caller  # the greeting came first


def test_generic_stereo_pcm16(live_server, tmp_path):
    import websockets

    caller, agent = two_speakers(tmp_path)
    stereo = np.stack([agent, caller], axis=1)  # channel order below: agent first
    data = (np.clip(stereo, -1, 1) * 32767).astype("<i2").tobytes()

    async def call():
        async with websockets.connect(f"{live_server.ws}/v1/stream") as ws:
            await ws.send(json.dumps({"type": "start", "call_id": "stereo-1", "encoding": "pcm16", "sample_rate": 16000,
                                      "channels": 2, "speakers": ["agent", "caller"]}))
            started = await recv_json(ws)
            for i in range(0, len(data), 1283):  # odd-sized messages split samples and channels
                await ws.send(data[i:i + 1283])
            await ws.send(json.dumps({"type": "stop"}))
            return started, await collect_until_close(ws), close_of(ws)

    started, events, (code, _) = run(call())
    assert code == 1000 and started["config"]["speakers"] == ["agent", "caller"]
    final = events[-1]
    assert final["type"] == "final"
    check_speakers(final)
    assert final["totals"]["audio_seconds"] == pytest.approx(len(caller) / 16000, abs=0.1)
    partials = [e for e in events if e["type"] == "partial"]
    assert partials and all(set(p["transcript"]["speakers"]) == {"caller", "agent"} for p in partials)


def test_generic_start_rejects_bad_channel_settings(live_server):
    import websockets

    async def start(**fields):
        async with websockets.connect(f"{live_server.ws}/v1/stream") as ws:
            await ws.send(json.dumps({"type": "start", "encoding": "pcm16", **fields}))
            return await recv_json(ws), await collect_until_close(ws, timeout=10), close_of(ws)

    for fields, message in [({"channels": 3}, "channels must be 1"),
                            ({"channels": 2, "speakers": ["caller", "caller"]}, "speakers must list"),
                            ({"speakers": ["caller", "agent"]}, "only for two-channel")]:
        error, _, (code, _) = run(start(**fields))
        assert error["type"] == "error" and error["error"]["code"] == "invalid_start", error
        assert message in error["error"]["message"] and code == 1008


def test_twilio_both_tracks(live_server, tmp_path):
    import websockets

    from data.audio import resample
    from serving.client import float_to_mulaw

    caller, agent = two_speakers(tmp_path)
    tracks = {"inbound": float_to_mulaw(resample(caller, 16000, 8000)),
              "outbound": float_to_mulaw(resample(agent, 16000, 8000))}
    call_sid, stream_sid = "CA" + "b" * 32, "MZ" + "1" * 32
    messages = [json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
                json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": stream_sid, "start": {
                    "accountSid": "AC" + "1" * 32, "streamSid": stream_sid, "callSid": call_sid,
                    "tracks": ["inbound", "outbound"], "customParameters": {"source": "google_ads"},
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})]
    seq = 2
    for chunk, i in enumerate(range(0, len(tracks["inbound"]), 160), start=1):
        for track in ("inbound", "outbound"):  # Twilio interleaves the two tracks' 20 ms frames
            messages.append(json.dumps({"event": "media", "sequenceNumber": str(seq), "streamSid": stream_sid,
                                        "media": {"track": track, "chunk": str(chunk),
                                                  "timestamp": str((chunk - 1) * 20),
                                                  "payload": base64.b64encode(tracks[track][i:i + 160]).decode()}}))
            seq += 1
    messages.append(json.dumps({"event": "stop", "sequenceNumber": str(seq), "streamSid": stream_sid,
                                "stop": {"accountSid": "AC" + "1" * 32, "callSid": call_sid}}))

    async def call():
        async with websockets.connect(f"{live_server.ws}/v1/twilio") as ws:
            for message in messages:
                await ws.send(message)
            return await collect_until_close(ws), close_of(ws)

    events, (code, _) = run(call())
    assert code == 1000 and events[0]["config"]["speakers"] == ["caller", "agent"]
    check_speakers(events[-1])
    # call time is counted once (the caller's track), not once per track
    assert events[-1]["totals"]["audio_seconds"] == pytest.approx(len(caller) / 16000, abs=0.1)
