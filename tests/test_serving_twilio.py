"""Twilio Media Streams messages: the documented shapes, every malformed case, stream state, audio."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from callintent.errors import UserError
from serving.twilio import (
    ConnectedMessage,
    DtmfMessage,
    MarkMessage,
    MediaMessage,
    StartMessage,
    StopMessage,
    TwilioProtocolError,
    TwilioStreamState,
    media_to_audio,
    parse_message,
)

STREAM = "MZ18ad3ab5a668481ce02b83e7395059f0"
CALL = "CA2ff6a8b0b3b9bb1b7b2c3e1f0f7a7f1c"
ACCOUNT = "AC2ce6b86a5f9d3cb1f3f9c1e3c3a7a0f2"

# The examples from https://www.twilio.com/docs/voice/media-streams/websocket-messages
CONNECTED = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
START = {
    "event": "start", "sequenceNumber": "1",
    "start": {
        "accountSid": ACCOUNT, "streamSid": STREAM, "callSid": CALL, "tracks": ["inbound"],
        "customParameters": {"source": "google_ads", "campaign": "spring-hvac"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    },
    "streamSid": STREAM,
}
MEDIA = {"event": "media", "sequenceNumber": "3",
         "media": {"track": "inbound", "chunk": "1", "timestamp": "5",
                   "payload": "no+JhoaJjpzSHxAKBgYJDhtEopGKh4eJjZm7JRQMBwYIDBcv"},
         "streamSid": STREAM}
STOP = {"event": "stop", "sequenceNumber": "5", "stop": {"accountSid": ACCOUNT, "callSid": CALL}, "streamSid": STREAM}
MARK = {"event": "mark", "sequenceNumber": "4", "streamSid": STREAM, "mark": {"name": "my label"}}
DTMF = {"event": "dtmf", "streamSid": STREAM, "sequenceNumber": "5", "dtmf": {"track": "inbound_track", "digit": "1"}}


def dumps(obj) -> str:
    return json.dumps(obj)


def test_connected() -> None:
    msg = parse_message(dumps(CONNECTED))
    assert msg == ConnectedMessage(protocol="Call", version="1.0.0")


def test_start() -> None:
    msg = parse_message(dumps(START))
    assert isinstance(msg, StartMessage)
    assert (msg.sequence_number, msg.stream_sid, msg.call_sid, msg.account_sid) == (1, STREAM, CALL, ACCOUNT)
    assert msg.tracks == ("inbound",)
    assert msg.custom_parameters == {"source": "google_ads", "campaign": "spring-hvac"}
    assert (msg.media_format.encoding, msg.media_format.sample_rate, msg.media_format.channels) == (
        "audio/x-mulaw", 8000, 1)


def test_media() -> None:
    msg = parse_message(dumps(MEDIA))
    assert isinstance(msg, MediaMessage)
    assert (msg.sequence_number, msg.track, msg.chunk, msg.timestamp_ms) == (3, "inbound", 1, 5)
    assert msg.payload == base64.b64decode(MEDIA["media"]["payload"])
    assert "payload" not in repr(msg)  # audio bytes stay out of logs


def test_stop_mark_dtmf() -> None:
    stop = parse_message(dumps(STOP))
    assert stop == StopMessage(sequence_number=5, stream_sid=STREAM, account_sid=ACCOUNT, call_sid=CALL)
    mark = parse_message(dumps(MARK))
    assert mark == MarkMessage(sequence_number=4, stream_sid=STREAM, name="my label")
    dtmf = parse_message(dumps(DTMF))
    assert dtmf == DtmfMessage(sequence_number=5, stream_sid=STREAM, track="inbound_track", digit="1")


def test_bytes_and_extra_fields_are_accepted() -> None:
    extra = {**STOP, "stop": {**STOP["stop"], "reason": "hangup"}, "future": True}
    assert parse_message(dumps(extra).encode()).event == "stop"


def with_(base: dict, path: str, value) -> dict:
    """A deep copy of ``base`` with ``path`` ("a.b") set to ``value`` (or deleted when value is ...)."""
    obj = json.loads(json.dumps(base))
    *parents, last = path.split(".")
    node = obj
    for p in parents:
        node = node[p]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return obj


MALFORMED = [
    ("{not json", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    (dumps({"foo": 1}), "no 'event'"),
    (dumps({"event": "hello"}), "unknown twilio event 'hello'"),
    (dumps(with_(CONNECTED, "protocol", ...)), "connected: missing field protocol"),
    (dumps(with_(START, "start.callSid", ...)), "start: missing field start.callSid"),
    (dumps(with_(START, "start", ...)), "start: missing field start"),
    (dumps(with_(START, "start.streamSid", "MZother")), "differs from streamSid"),
    (dumps(with_(START, "start.tracks", [])), "start.tracks"),
    (dumps(with_(START, "start.tracks", ["both"])), "start.tracks"),
    (dumps(with_(START, "start.customParameters", ["a"])), "customParameters"),
    (dumps(with_(START, "start.mediaFormat.encoding", "audio/l16")), "unsupported start.mediaFormat"),
    (dumps(with_(START, "start.mediaFormat.sampleRate", 16000)), "unsupported start.mediaFormat"),
    (dumps(with_(START, "start.mediaFormat.channels", 2)), "unsupported start.mediaFormat"),
    (dumps(with_(START, "start.mediaFormat", ...)), "missing field start.mediaFormat"),
    (dumps(with_(MEDIA, "media.payload", ...)), "missing field media.payload"),
    (dumps(with_(MEDIA, "media.payload", "@@not base64@@")), "media.payload is not valid base64"),
    (dumps(with_(MEDIA, "media.payload", 12)), "media.payload must be a base64 string"),
    (dumps(with_(MEDIA, "media.track", "sideways")), "media.track"),
    (dumps(with_(MEDIA, "media.chunk", "one")), "media.chunk must be a non-negative integer"),
    (dumps(with_(MEDIA, "media.timestamp", ...)), "missing field media.timestamp"),
    (dumps(with_(MEDIA, "media", "x")), "media must be an object"),
    (dumps(with_(MEDIA, "sequenceNumber", "x3")), "sequenceNumber"),
    (dumps(with_(MEDIA, "sequenceNumber", "0")), "sequenceNumber must be >= 1"),
    (dumps(with_(MEDIA, "streamSid", ...)), "media: missing field streamSid"),
    (dumps(with_(STOP, "stop", ...)), "stop: missing field stop"),
    (dumps(with_(STOP, "stop.callSid", 5)), "stop.callSid must be a non-empty string"),
    (dumps(with_(DTMF, "dtmf.digit", "12")), "dtmf.digit"),
    (dumps(with_(MARK, "mark.name", ...)), "missing field mark.name"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_malformed_messages_are_rejected_with_a_clear_message(text, message: str) -> None:
    with pytest.raises(TwilioProtocolError) as info:
        parse_message(text)
    assert message in str(info.value)
    assert isinstance(info.value, UserError)


def test_oversized_payload_is_rejected() -> None:
    big = base64.b64encode(bytes(100_000)).decode()
    with pytest.raises(TwilioProtocolError, match="more than a Twilio frame"):
        parse_message(dumps(with_(MEDIA, "media.payload", big)))


# -- stream state ----------------------------------------------------------------------------


def media(seq: int, chunk: int | None = None, payload: bytes = b"\xff" * 160, track: str = "inbound") -> str:
    chunk = seq - 1 if chunk is None else chunk
    return dumps({"event": "media", "sequenceNumber": str(seq), "streamSid": STREAM,
                  "media": {"track": track, "chunk": str(chunk), "timestamp": str(20 * (chunk - 1)),
                            "payload": base64.b64encode(payload).decode()}})


def started_state() -> TwilioStreamState:
    state = TwilioStreamState()
    assert state.accept(parse_message(dumps(CONNECTED))).status == "ok"
    assert state.accept(parse_message(dumps(START))).status == "ok"
    return state


def test_stream_state_follows_a_documented_stream() -> None:
    state = started_state()
    assert state.call_id == CALL
    assert state.metadata == {"source": "google_ads", "campaign": "spring-hvac", "call_sid": CALL,
                              "stream_sid": STREAM, "account_sid": ACCOUNT}
    for seq in (2, 3, 4):
        assert state.accept(parse_message(media(seq))).status == "ok"
    assert state.accept(parse_message(dumps({**MARK, "sequenceNumber": "5"}))).use
    assert state.accept(parse_message(dumps({**DTMF, "sequenceNumber": "6"}))).use
    assert state.accept(parse_message(dumps({**STOP, "sequenceNumber": "7"}))).status == "ok"
    assert state.stopped
    assert state.summary() == {"media_frames": 3, "duplicates": 0, "out_of_order": 0, "missing": 0, "dtmf": "1"}
    with pytest.raises(TwilioProtocolError, match="after stop"):
        state.accept(parse_message(media(8)))


def test_duplicates_out_of_order_and_gaps_are_reported() -> None:
    state = started_state()
    assert state.accept(parse_message(media(2))).status == "ok"
    dup = state.accept(parse_message(media(2)))
    assert (dup.status, dup.use) == ("duplicate", False)
    gap = state.accept(parse_message(media(5)))
    assert (gap.status, gap.missing, gap.use) == ("gap", 2, True)
    late = state.accept(parse_message(media(4)))
    assert (late.status, late.use) == ("out_of_order", False)  # audio is append-only: a late frame is dropped
    again = state.accept(parse_message(media(4)))
    assert again.status == "duplicate"
    assert state.accept(parse_message(media(6))).status == "ok"
    assert (state.duplicates, state.out_of_order, state.missing, state.media_frames) == (2, 1, 2, 3)


@pytest.mark.parametrize(("messages", "error"), [
    ([MEDIA], "media before start"),
    ([CONNECTED, START, START], "second start"),
    ([CONNECTED, START, CONNECTED], "connected received twice"),
    ([CONNECTED, START, {**MEDIA, "streamSid": "MZother"}], "for stream MZother"),
])
def test_protocol_order_violations(messages: list[dict], error: str) -> None:
    state = TwilioStreamState()
    with pytest.raises(TwilioProtocolError, match=error):
        for m in messages:
            state.accept(parse_message(dumps(m)))


def test_call_id_before_start_is_an_error() -> None:
    with pytest.raises(TwilioProtocolError, match="no start"):
        _ = TwilioStreamState().call_id


# -- audio -----------------------------------------------------------------------------------


def mulaw_encode(x: np.ndarray) -> bytes:
    """G.711 μ-law encoder (the inverse of speech.audio.mulaw_to_float), for building test payloads."""
    pcm = np.clip(np.round(x * 32768), -32768, 32767).astype(np.int32)
    sign = np.where(pcm < 0, 0x80, 0)
    mag = np.minimum(np.abs(pcm), 32635) + 0x84
    exponent = np.clip(np.floor(np.log2(mag)).astype(np.int32) - 7, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def test_inbound_media_becomes_16khz_float_audio() -> None:
    t = np.arange(8000) / 8000
    sine = 0.5 * np.sin(2 * np.pi * 440 * t)
    payload = mulaw_encode(sine)
    state = started_state()
    parts = []
    for i in range(50):  # 50 frames of 20 ms, as Twilio sends them
        msg = parse_message(media(i + 2, payload=payload[i * 160:(i + 1) * 160]))
        assert state.accept(msg).use
        parts.append(state.audio(msg))
    parts.append(state.flush_audio())
    audio = np.concatenate(parts)
    assert audio.dtype == np.float32
    assert abs(len(audio) - 16000) <= 64
    spectrum = np.abs(np.fft.rfft(audio[:16000] * np.hanning(min(16000, len(audio)))))
    assert np.argmax(spectrum) * 16000 / (2 * (len(spectrum) - 1)) == pytest.approx(440, abs=2)
    assert 0.45 < np.max(np.abs(audio[1000:15000])) < 0.55
    # the stateless helper gives the same signal (up to the resampler's edge samples)
    whole = media_to_audio(payload)
    assert abs(len(whole) - len(audio)) <= 64
    np.testing.assert_allclose(whole[200:15000], audio[200:15000], atol=2e-3)


def test_silence_payload_and_outbound_track() -> None:
    state = started_state()
    silent = state.audio(parse_message(media(2, payload=b"\xff" * 160)))
    assert silent.size > 250 and np.all(silent == 0.0)  # ~320 samples less the resampler's delay
    assert state.audio(parse_message(media(3, payload=b"\x00" * 160, track="outbound"))).size == 0


# -- end to end with the real tiny.en --------------------------------------------------------


@pytest.mark.integration
def test_twilio_call_streams_into_a_live_call_with_redacted_number(tmp_path) -> None:
    import re
    import subprocess

    from conftest import require_tool, speak
    from test_serving_live_call import KeywordScorer

    from speech.asr import AsrConfig, SpeechRecognizer
    from serving.policy import DecisionPolicy
    from serving.live_call import LiveCall, StreamConfig

    text = ("Hi, I saw your ad. How much does a new water heater cost? "
            "You can call me back at five five five, one two three, four five six seven.")
    wav = speak(text, tmp_path / "call.wav", encoding="u-law")
    raw = tmp_path / "call.ul"
    subprocess.run([require_tool("sox"), str(wav), "-t", "ul", str(raw)], check=True)
    ulaw = raw.read_bytes()
    frames = [dumps(CONNECTED), dumps(START)]
    frames += [media(k + 2, chunk=k + 1, payload=ulaw[i:i + 160]) for k, i in enumerate(range(0, len(ulaw), 160))]
    frames.append(dumps({**STOP, "sequenceNumber": str(len(frames))}))

    state = TwilioStreamState()
    recognizer = SpeechRecognizer(AsrConfig(cpu_threads=2))
    call: LiveCall | None = None
    events = []
    for frame in frames:
        msg = parse_message(frame)
        if not state.accept(msg).use:
            continue
        if isinstance(msg, StartMessage):
            call = LiveCall(state.call_id, state.metadata, asr=recognizer, scorer=KeywordScorer(),
                            policy=DecisionPolicy.from_yaml(), config=StreamConfig())
            events.append(call.start())
        elif isinstance(msg, MediaMessage):
            call.insert(state.audio(msg))
            if call.ready():
                events += call.step()
        elif isinstance(msg, StopMessage):
            call.insert(state.flush_audio())
            events += call.finish()
    assert state.summary()["missing"] == 0 and state.media_frames == len(frames) - 3
    final = events[-1].to_json()
    assert final["type"] == "final" and final["call_id"] == CALL
    heard = final["transcript"]["text"]
    assert "how much" in heard.lower() and "cost" in heard.lower(), heard
    assert re.search(r"\[(PHONE|SSN|NUMBER)\]", heard), heard
    shown = [e.text for e in events if e.type in ("partial", "decision", "final")]
    shown += [w.text for w in events[-1].words]
    for t in shown:  # no event shows four digits of the number, not even while it is being read out
        assert not re.search(r"\d\W{0,3}\d\W{0,3}\d\W{0,3}\d", t), t
    decision = next(e for e in events if e.type == "decision").decision
    assert (decision.route, decision.segment, decision.early) == ("priority_sales", "google_ads", True)
