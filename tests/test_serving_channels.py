"""Two-channel live calls against a real server: stereo PCM on /v1/stream and Twilio's
inbound + outbound tracks on /v1/twilio. The speakers are transcribed apart and every word keeps
its speaker; a plain model scores the caller's words only, a model trained with speaker tags
scores both speakers tagged (and /score takes speaker turns the same way)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from tests.server_harness import (  # noqa: F401 (live_server, serving_tmp, tagged_server: fixtures)
    CLEAR_SPEECH, close_of, collect_until_close, decoded, live_server, recv_json, run, serving_tmp, spoken,
    tagged_server,
)

pytestmark = pytest.mark.integration

# "today" is an urgency keyword of the tiny model: said by the agent, it counts only when the
# model reads the agent's words too.
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


def stereo_call(server, tmp_path, call_id: str):
    import websockets

    caller, agent = two_speakers(tmp_path)
    stereo = np.stack([agent, caller], axis=1)  # channel order below: agent first
    data = (np.clip(stereo, -1, 1) * 32767).astype("<i2").tobytes()

    async def call():
        async with websockets.connect(f"{server.ws}/v1/stream") as ws:
            await ws.send(json.dumps({"type": "start", "call_id": call_id, "encoding": "pcm16", "sample_rate": 16000,
                                      "channels": 2, "speakers": ["agent", "caller"]}))
            started = await recv_json(ws)
            for i in range(0, len(data), 1283):  # odd-sized messages split samples and channels
                await ws.send(data[i:i + 1283])
            await ws.send(json.dumps({"type": "stop"}))
            return started, await collect_until_close(ws), close_of(ws)

    return caller, run(call())


def evidence_of(event: dict) -> list[tuple[str, dict]]:
    return [(s["name"], e) for s in event["signals"] for e in s["evidence"]]


def test_generic_stereo_pcm16(live_server, tmp_path):
    caller, (started, events, (code, _)) = stereo_call(live_server, tmp_path, "stereo-1")
    assert code == 1000 and started["config"]["speakers"] == ["agent", "caller"]
    assert started["config"]["scored"] == "caller"  # the tiny model was not trained with speaker tags
    final = events[-1]
    assert final["type"] == "final"
    check_speakers(final)
    # the agent's "today" is not scored; evidence indexes the caller's text and names no speaker
    assert "urgency" not in {name for name, _ in evidence_of(final)}
    assert evidence_of(final) and all("speaker" not in e for _, e in evidence_of(final))
    for _, e in evidence_of(final):
        assert final["transcript"]["text"][e["start"]:e["end"]] == e["text"]
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

    from speech.audio import resample
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


def test_a_model_trained_with_speaker_tags_scores_both_speakers(tagged_server, tmp_path):
    _, (started, events, (code, _)) = stereo_call(tagged_server, tmp_path, "stereo-tagged")
    assert code == 1000 and started["config"]["scored"] == "caller+agent"
    final = events[-1]
    check_speakers(final)
    speakers = final["transcript"]["speakers"]
    found = evidence_of(final)
    for _, e in found:  # every span indexes the transcript of the speaker it names
        assert speakers[e["speaker"]]["text"][e["start"]:e["end"]] == e["text"]
    assert ("urgency", "agent") in {(name, e["speaker"]) for name, e in found}  # the agent's "today"
    assert ("specific_need", "caller") in {(name, e["speaker"]) for name, e in found}  # the caller's "roof"


def test_score_takes_speaker_turns(live_server, tagged_server):
    import httpx

    turns = [{"speaker": "agent", "text": "thanks for calling, can I help you today?"},
             {"speaker": "caller", "text": "how much to fix my roof"}]
    tagged = httpx.post(f"{tagged_server.url}/score", json={"turns": turns}, timeout=30).json()
    assert tagged["transcript"] == "agent: thanks for calling, can I help you today? caller: how much to fix my roof"
    spans = {(s["name"], e["text"]) for s in tagged["signals"] for e in s["evidence"]}
    assert {("urgency", "today"), ("price_inquiry", "much"), ("specific_need", "roof")} <= spans
    for s in tagged["signals"]:
        for e in s["evidence"]:
            assert tagged["transcript"][e["start"]:e["end"]] == e["text"]

    from serving.client import CallIntentClient

    with CallIntentClient(live_server.url) as client:  # turns as (speaker, text) pairs
        plain = client.score([(t["speaker"], t["text"]) for t in turns], {"source": "crm"})
    assert plain["transcript"] == "how much to fix my roof"  # a plain model scores the caller's turns
    assert "urgency" not in {s["name"] for s in plain["signals"] if s["present"]}

    for body, field, message in [
        ({"turns": [{"speaker": "agent", "text": "hello?"}]}, "turns", "no caller words"),
        ({"transcript": "hi", "turns": turns}, "turns", "not both"),
        ({}, "transcript", "field required (or give turns"),
        ({"turns": [{"speaker": "boss", "text": "hi"}]}, "turns.0.speaker", "caller"),
        ({"turns": [{"speaker": "caller", "text": "  "}]}, "turns", "only whitespace"),
    ]:
        r = httpx.post(f"{live_server.url}/score", json=body, timeout=30)
        assert r.status_code == 422, (body, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid_request" and field in error["fields"] and message in error["message"], error


def test_score_audio_takes_a_two_channel_recording(live_server, tagged_server, tmp_path):
    import wave

    import httpx

    caller_channel, agent_channel = two_speakers(tmp_path)  # the agent greets, then the caller speaks
    stereo = tmp_path / "call.wav"  # channel 1 the agent, channel 2 the caller
    with wave.open(str(stereo), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(np.stack([agent_channel, caller_channel], axis=1), -1, 1) * 32767).astype("<i2").tobytes())
    caller = spoken(CLEAR_SPEECH, tmp_path, name="mono.wav")

    def post(server, **fields):
        return httpx.post(f"{server.url}/score_audio", files={"file": ("call.wav", stereo.read_bytes(), "audio/wav")},
                          data=fields, timeout=60)

    plain = post(live_server, speakers="agent,caller")
    assert plain.status_code == 200, plain.text
    body = plain.json()
    assert "roof" in body["transcript"].lower() and "calling" not in body["transcript"].lower()  # the caller's words
    by_speaker = {s: " ".join(w["text"] for w in body["words"] if w["speaker"] == s).lower() for s in ("caller", "agent")}
    assert "roof" in by_speaker["caller"] and "calling" in by_speaker["agent"]
    tagged = post(tagged_server, speakers="agent,caller").json()
    assert tagged["transcript"].startswith("agent:") and " caller: " in tagged["transcript"]
    assert "urgency" in {s["name"] for s in tagged["signals"] if s["present"]}  # the agent's "today" counts
    mixed = post(live_server).json()  # no speakers: one mixed channel, as before
    assert "calling" in mixed["transcript"].lower() and all("speaker" not in w for w in mixed["words"])

    for fields, message in [({"speakers": "caller"}, "in order"), ({"speakers": "caller,agent", "encoding": "mulaw"},
                                                                    "raw audio has one channel")]:
        r = post(live_server, **fields)
        assert r.status_code == 422 and r.json()["error"]["fields"] == ["speakers"] and message in r.text, r.text
    mono = httpx.post(f"{live_server.url}/score_audio", files={"file": ("c.wav", caller.read_bytes(), "audio/wav")},
                      data={"speakers": "caller,agent"}, timeout=60)
    assert mono.status_code == 422 and "has 1 channel" in mono.json()["error"]["message"]
