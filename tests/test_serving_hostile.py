"""Hostile input: property-based tests of the parsers, schema fuzzing of the REST routes, bombs and auth bypasses.

* Hypothesis (bounded, derandomized, no example database, so every run tries the same inputs):
  ``speech.audio.decode_audio`` on random bytes, random WAV headers and raw audio with random
  rates; μ-law/PCM16 framing; the Twilio message parser and stream state.
* schemathesis against the OpenAPI spec the server serves at ``/docs.json`` (``/score`` and
  ``/score_audio``, valid and invalid requests): no 5xx, only documented statuses, JSON bodies
  that match the documented schemas.
* Over real HTTP: deeply nested and huge JSON, non-UTF-8 bodies, compressed audio that declares
  hours of silence or absurd sample rates, and attempts to get past the API key check.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.server_harness import (  # noqa: F401 (live_server, serving_tmp: fixtures)
    API_KEYS, Server, close_of, collect_until_close, err, live_server, run, serving_tmp, start_server,
)

#: Bounded and reproducible: the same examples every run, nothing stored between runs.
BOUNDED = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                   suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])


# ---------------------------------------------------------------------------------------------
# Audio decoding


def _assert_audio(audio: np.ndarray, max_seconds: float) -> None:
    assert isinstance(audio, np.ndarray) and audio.dtype == np.float32 and audio.ndim == 1
    assert 0 < audio.size <= round(max_seconds * 16000)
    assert np.isfinite(audio).all()


def _wav(rate: int, data: bytes, *, channels: int = 1, bits: int = 16, fmt: int = 1,
         declared: int | None = None) -> bytes:
    """A RIFF/WAVE file with any header fields (wrapped into their field widths)."""
    size = len(data) if declared is None else declared
    block = (channels * bits // 8) & 0xFFFF
    return (b"RIFF" + struct.pack("<I", (36 + size) & 0xFFFFFFFF) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, fmt & 0xFFFF, channels & 0xFFFF, rate & 0xFFFFFFFF,
                                    (rate * block) & 0xFFFFFFFF, block, bits & 0xFFFF)
            + b"data" + struct.pack("<I", size & 0xFFFFFFFF) + data)


@BOUNDED
@given(data=st.binary(max_size=4096))
def test_decode_audio_random_bytes_is_audio_or_audio_error(data: bytes) -> None:
    from speech.audio import AudioError, decode_audio

    try:
        audio = decode_audio(data, max_seconds=5.0)
    except AudioError:
        return
    _assert_audio(audio, 5.0)


@BOUNDED
@given(rate=st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([1, 999, 1000, 8000, 384_000, 384_001])),
       channels=st.integers(0, 70_000), bits=st.sampled_from([0, 1, 8, 16, 24, 32, 64, 12, 65535]),
       fmt=st.sampled_from([1, 3, 6, 7, 0xFFFE, 0, 2, 0x55]), declared=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
       data=st.binary(max_size=3000))
def test_decode_audio_hostile_wav_headers(rate, channels, bits, fmt, declared, data) -> None:
    """Any header (absurd rates, channel counts, sample sizes, declared lengths): AudioError or bounded audio."""
    from speech.audio import AudioError, decode_audio

    try:
        audio = decode_audio(_wav(rate, data, channels=channels, bits=bits, fmt=fmt, declared=declared),
                             max_seconds=5.0)
    except AudioError:
        return
    _assert_audio(audio, 5.0)


@BOUNDED
@given(data=st.binary(min_size=0, max_size=2000), encoding=st.sampled_from(["mulaw", "pcm16", "ulaw", "s16le", "opus"]),
       rate=st.one_of(st.none(), st.integers(-10, 500_000)))
def test_decode_raw_audio_with_any_rate(data: bytes, encoding: str, rate: int | None) -> None:
    from speech.audio import AudioError, decode_audio

    try:
        audio = decode_audio(data, encoding=encoding, sample_rate=rate, max_seconds=2.0)
    except AudioError:
        return
    _assert_audio(audio, 2.0)
    assert np.abs(audio).max() <= 1.0 + 1e-3  # raw PCM/μ-law resampled: at most a filter overshoot


@BOUNDED
@given(data=st.binary(max_size=2000))
def test_mulaw_and_pcm16_framing(data: bytes) -> None:
    """μ-law: one sample per byte in [-1, 1], re-encoding gives the same bytes (0x7F is the other zero);
    PCM16: two bytes a sample in [-1, 1), an odd length is an AudioError."""
    from speech.audio import AudioError, mulaw_to_float, pcm16_to_float
    from serving.client import float_to_mulaw

    samples = mulaw_to_float(data)
    assert samples.dtype == np.float32 and samples.size == len(data)
    assert np.abs(samples).max(initial=0) <= 1.0
    assert float_to_mulaw(samples) == data.replace(b"\x7f", b"\xff")
    if len(data) % 2:
        with pytest.raises(AudioError, match="even number of bytes"):
            pcm16_to_float(data)
    else:
        pcm = pcm16_to_float(data)
        assert pcm.size == len(data) // 2 and (-1.0 <= pcm).all() and (pcm < 1.0).all()


@BOUNDED
@given(cuts=st.lists(st.integers(0, 3200), max_size=12))
def test_stream_resampler_any_chunking_matches_one_shot(cuts: list[int]) -> None:
    """Live frames of any size (not just 20 ms) resample to the same audio as the whole call."""
    from speech.audio import StreamResampler, resample

    audio = (0.5 * np.sin(2 * np.pi * 300 * np.arange(3200) / 8000)).astype(np.float32)
    bounds = sorted({0, 3200, *cuts})
    stream = StreamResampler(8000, 16000)
    parts = [stream.push(audio[a:b]) for a, b in zip(bounds, bounds[1:])] + [stream.flush()]
    np.testing.assert_allclose(np.concatenate(parts), resample(audio, 8000, 16000), atol=1e-5)


def _flac(rate: int, seconds: float, *, frame_size: int = 65535, noise: bool = False) -> bytes:
    """A FLAC file made with PyAV; silence compresses to almost nothing (constant subframes)."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate, layout="mono")
        stream.codec_context.options = {"frame_size": str(frame_size)}
        block = 65535 * 8
        samples = np.zeros((1, block), np.int16)
        if noise:
            samples = np.random.default_rng(0).integers(-3000, 3000, (1, block)).astype(np.int16)
        written = 0
        while written < rate * seconds:
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
            written += block
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def test_decoding_bombs_are_bounded():
    """Three hours of FLAC silence in 40 kB decodes only up to the limit; a FLAC declaring 1 Hz (each
    32768-sample frame would resample to 2 GB) is refused before any frame is resampled."""
    import resource

    from speech.audio import AudioError, decode_audio

    hours = _flac(8000, 3 * 3600)
    assert len(hours) < 60_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    audio = decode_audio(hours, max_seconds=40.5)
    assert audio.size == round(40.5 * 16000)
    assert time.perf_counter() - started < 3.0
    with pytest.raises(AudioError, match="sample rate 1 Hz is outside 1000..384000 Hz"):
        decode_audio(_flac(1, 4 * 32768, frame_size=32768, noise=True), max_seconds=40.5)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 300, f"decoding the bombs grew the process by {grown_mb:.0f} MB"


# ---------------------------------------------------------------------------------------------
# The Twilio parser

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                     lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children,
                                                                                        max_size=4), max_leaves=12)
_SID = "MZ" + "1" * 32
_VALID = {
    "connected": {"event": "connected", "protocol": "Call", "version": "1.0.0"},
    "start": {"event": "start", "sequenceNumber": "1", "streamSid": _SID, "start": {
        "accountSid": "AC1", "streamSid": _SID, "callSid": "CA1", "tracks": ["inbound"],
        "customParameters": {"source": "ads"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}},
    "media": {"event": "media", "sequenceNumber": "2", "streamSid": _SID, "media": {
        "track": "inbound", "chunk": "1", "timestamp": "5", "payload": base64.b64encode(b"\xff" * 160).decode()}},
    "stop": {"event": "stop", "sequenceNumber": "3", "streamSid": _SID, "stop": {"accountSid": "AC1", "callSid": "CA1"}},
}


def _paths(obj, prefix=()):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))


def _replace(obj, path, value):
    obj = json.loads(json.dumps(obj))
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return obj


@BOUNDED
@given(text=st.one_of(st.text(max_size=300), _JSON.map(json.dumps),
                      st.sampled_from(["[" * 5000 + "]" * 5000, '{"event": "media", "sequenceNumber": ' + "9" * 5000 + "}",
                                       '{"event": "' + "x" * 100_000 + '"}'])))
def test_twilio_parser_random_text(text: str) -> None:
    from serving.twilio import TwilioProtocolError, parse_message

    try:
        message = parse_message(text)
    except TwilioProtocolError as e:
        assert len(str(e)) < 400, "an error quotes what was sent, never all of it"
        return
    assert message.event in ("connected", "start", "media", "dtmf", "mark", "stop")


@BOUNDED
@given(kind=st.sampled_from(sorted(_VALID)), data=st.data())
def test_twilio_parser_one_field_mutated(kind: str, data) -> None:
    """A valid message with one field replaced by any JSON value: a typed message or TwilioProtocolError."""
    from serving.twilio import TwilioProtocolError, TwilioStreamState, parse_message

    path = data.draw(st.sampled_from(list(_paths(_VALID[kind]))))
    value = data.draw(st.one_of(_JSON, st.sampled_from(["9" * 19, "9" * 5000, "\u0663", "-1", 10 ** 30])))
    try:
        message = parse_message(json.dumps(_replace(_VALID[kind], path, value)))
    except TwilioProtocolError:
        return
    state = TwilioStreamState()
    for name in ("connected", "start"):
        if name != kind:
            state.accept(parse_message(json.dumps(_VALID[name])))
    try:
        state.accept(message)
    except TwilioProtocolError:
        return
    if kind == "media" and message.track == "inbound":
        audio = state.audio(message)
        assert audio.dtype == np.float32 and np.abs(audio).max(initial=0) <= 1.01


@BOUNDED
@given(sequence=st.lists(st.tuples(st.sampled_from(["connected", "start", "media", "stop"]), st.integers(1, 40)),
                         max_size=30))
def test_twilio_stream_state_any_order(sequence) -> None:
    """Messages in any order with any sequence numbers: Arrival or TwilioProtocolError, counters consistent."""
    from serving.twilio import TwilioProtocolError, TwilioStreamState, parse_message

    state = TwilioStreamState()
    for kind, seq in sequence:
        message = dict(_VALID[kind])
        if kind != "connected":
            message["sequenceNumber"] = str(seq)
        try:
            arrival = state.accept(parse_message(json.dumps(message)))
        except TwilioProtocolError:
            continue
        assert arrival.status in ("ok", "duplicate", "out_of_order", "gap") and arrival.missing >= 0
    assert state.media_frames <= sum(kind == "media" for kind, _ in sequence)


# ---------------------------------------------------------------------------------------------
# The REST routes against their OpenAPI spec (schemathesis)


@pytest.mark.integration
@pytest.mark.parametrize(("path", "examples"), [("/score", 50), ("/score_audio", 20)])
def test_rest_routes_conform_to_their_openapi_spec(live_server, path: str, examples: int) -> None:
    """Valid and invalid requests generated from /docs.json: never 5xx, only documented statuses,
    JSON bodies matching the documented schema; invalid ones are rejected with 4xx."""
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance, negative_data_rejection, not_a_server_error, response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_url(f"{live_server.url}/docs.json")
    operation = schema[path]["POST"]
    # Not positive_data_acceptance: a schema-valid request may still exceed a configured limit (413).
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    statuses: Counter[int] = Counter()

    def fuzz(mode: GenerationMode, mode_checks: list) -> None:
        @settings(BOUNDED, max_examples=examples)
        @given(case=operation.as_strategy(mode))
        def call(case) -> None:
            response = case.call(base_url=live_server.url, timeout=30)
            statuses[response.status_code] += 1
            case.validate_response(response, checks=mode_checks)

        call()

    fuzz(GenerationMode.POSITIVE, checks)
    fuzz(GenerationMode.NEGATIVE, [*checks, negative_data_rejection])
    assert statuses[200] > 0 and not [s for s in statuses if s >= 500], statuses


# ---------------------------------------------------------------------------------------------
# Hostile bodies over HTTP and WebSocket


@pytest.mark.integration
@pytest.mark.parametrize(("body", "status", "code"), [
    (b"[" * 100_000 + b"]" * 100_000, 400, "bad_json"),
    (b'{"transcript": "hi", "metadata": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}", 400, "bad_json"),
    (b'{"transcript": "\xff\xfe caf\xe9"}', 400, "bad_json"),
    (b'{"transcript": "hi", "call_id": 1' + b"0" * 5000 + b"}", 400, "bad_json"),
    (b'{"transcript": NaN}', 422, "invalid_request"),
    (json.dumps({"transcript": "hi", "metadata": {"source": "x" * 100_000}}).encode(), 422, "invalid_request"),
    (json.dumps({"transcript": "hi", "metadata": {"k": "9" * 300}}).encode(), 422, "invalid_request"),
    (json.dumps({"transcript": "hi", "metadata": {f"k{i}": i for i in range(100)}}).encode(), 422, "invalid_request"),
])
def test_hostile_json_bodies(live_server, body: bytes, status: int, code: str) -> None:
    """Regression: nesting, non-UTF-8 and 5000-digit numbers were "bad_request" with FastAPI's generic
    message; a string of 300 digits slipped through metadata's 256-character limit as an int."""
    r = httpx.post(f"{live_server.url}/score", content=body, headers={"content-type": "application/json"}, timeout=30)
    assert (r.status_code, err(r)["code"]) == (status, code), r.text[:300]


@pytest.mark.integration
def test_many_unknown_keys_earn_a_short_answer(live_server) -> None:
    """Regression: 100 000 unknown keys (1.5 MB) earned a 4.9 MB 422 body listing every one."""
    body = json.dumps({"transcript": "hi", **{f"k{i}": i for i in range(100_000)}}).encode()
    r = httpx.post(f"{live_server.url}/score", content=body, headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 422 and len(r.content) < 2000, len(r.content)
    error = err(r)
    assert error["fields"] == [f"k{i}" for i in range(10)]
    assert error["message"].endswith("and 99990 more problems")


@pytest.mark.integration
def test_audio_bombs_and_absurd_rates_over_http(live_server) -> None:
    """/score_audio: 3 h of FLAC silence is refused by the duration limit (413) at once; a 1 Hz FLAC, a
    WAV declaring 4 GHz and raw audio with absurd rates are 422; nothing is a 5xx."""
    url = f"{live_server.url}/score_audio"

    def post(data: bytes, **params) -> httpx.Response:
        return httpx.post(url, files={"file": ("call.bin", data)}, data=params, timeout=60)

    started = time.monotonic()
    hours = post(_flac(8000, 3 * 3600))
    assert (hours.status_code, err(hours)["code"]) == (413, "audio_too_long")
    assert time.monotonic() - started < 10
    one_hz = post(_flac(1, 4 * 32768, frame_size=32768, noise=True))
    assert (one_hz.status_code, err(one_hz)["code"]) == (422, "bad_audio")
    assert "sample rate 1 Hz" in err(one_hz)["message"]
    noise = np.random.default_rng(0).integers(-3000, 3000, 16000).astype("<i2").tobytes()
    gigahertz = post(_wav(4_000_000_000, noise))
    assert (gigahertz.status_code, err(gigahertz)["code"]) == (422, "bad_audio")
    for rate in ("1", "0", "-8000", "1e9", "nan", "8000.5", "9" * 5000):
        r = post(noise, encoding="pcm16", sample_rate=rate)
        assert (r.status_code, err(r)["fields"]) == (422, ["sample_rate"]), (rate, r.text[:200])
    header_only = post(_wav(8000, b"", declared=2**31))
    assert (header_only.status_code, err(header_only)["code"]) == (422, "bad_audio")


# ---------------------------------------------------------------------------------------------
# Getting past the API key


@pytest.fixture(scope="module")
def keyed_server(serving_tmp: Path) -> Iterator[Server]:
    """The session's API-key server (restarted if another module already shut it down)."""
    server = start_server("auth", serving_tmp, env={"CALLINTENT_API_KEYS": ",".join(API_KEYS)})
    yield server
    server.stop()  # idempotent; a later start_server("auth") starts a fresh one


_KEY = API_KEYS[0]


@pytest.mark.integration
@pytest.mark.parametrize(("headers", "params", "path"), [
    ({}, {}, "/score"),
    ({"Authorization": ""}, {}, "/score"),
    ({"Authorization": "Bearer"}, {}, "/score"),
    ({"Authorization": f"Bearer {_KEY[:-1]}"}, {}, "/score"),           # a prefix of the key
    ({"Authorization": f"Bearer {_KEY}x"}, {}, "/score"),               # the key plus more
    ({"Authorization": f"Bearer {_KEY.upper()}"}, {}, "/score"),        # another case
    ({"Authorization": f"Bearer {_KEY[:8]}"}, {}, "/score"),
    ({"Authorization": f"Basic {base64.b64encode(f'{_KEY}:'.encode()).decode()}"}, {}, "/score"),
    ({"Authorization": _KEY}, {}, "/score"),                            # no scheme
    ({"Authorization": f"Token {_KEY}"}, {}, "/score"),
    ({"X-API-Key": _KEY}, {}, "/score"),
    ({}, {"token": _KEY}, "/score"),                                    # ?token= is for WebSockets only
    ({}, {"api_key": _KEY}, "/score_audio"),
    ({"Authorization": "Bearer \u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"}, {}, "/score"),
])
def test_auth_bypass_attempts_are_refused(keyed_server, headers, params, path) -> None:
    r = httpx.post(f"{keyed_server.url}{path}", json={"transcript": "how much for a roof"},
                   headers={k: v.encode("utf-8") for k, v in headers.items()}, params=params, timeout=30)
    assert (r.status_code, err(r)["code"]) == (401, "unauthorized"), r.text[:200]
    assert r.headers["www-authenticate"] == 'Bearer realm="callintent"'


@pytest.mark.integration
@pytest.mark.parametrize("path", ["/score/", "//score", "/%73core", "/SCORE", "/score;x", "/score%00", "/./score"])
def test_path_tricks_never_score_without_a_key(keyed_server, path: str) -> None:
    """Spellings of /score are refused (401), unknown (404) or redirected to /score (307), never scored."""
    r = httpx.post(f"{keyed_server.url}{path}", json={"transcript": "how much for a roof"}, timeout=30)
    assert r.status_code in (307, 401, 404), (r.status_code, r.text[:200])
    assert "probabilities" not in r.text
    if r.status_code == 307:
        assert httpx.URL(r.headers["location"]).path == "/score"
    if r.status_code == 404:
        assert err(r)["code"] == "not_found", r.text[:200]


@pytest.mark.integration
def test_unknown_paths_and_methods_answer_json(live_server) -> None:
    """Not only the service's routes: the framework router's own 404/405 pages are JSON too."""
    for method, path, status, code in [("GET", "/no-such-path", 404, "not_found"),
                                       ("POST", "/v2/score", 404, "not_found"),
                                       ("GET", "/score", 405, "method_not_allowed")]:
        r = httpx.request(method, f"{live_server.url}{path}", timeout=30)
        assert r.status_code == status and r.headers["content-type"].startswith("application/json"), (path, r.text)
        assert err(r)["code"] == code
    assert httpx.get(f"{live_server.url}/livez", timeout=30).status_code == 200  # the rest as it was


@pytest.mark.integration
def test_auth_accepts_exactly_the_keys(keyed_server) -> None:
    """Both keys work (rotation), the scheme is case-insensitive (RFC 7235), surrounding spaces are
    trimmed; two Authorization headers are judged by the first; /internal stays hidden even with a key."""
    def status(headers) -> int:
        return httpx.post(f"{keyed_server.url}/score", json={"transcript": "hi"}, headers=headers, timeout=30).status_code

    assert status({"Authorization": f"Bearer {API_KEYS[0]}"}) == 200
    assert status({"Authorization": f"Bearer {API_KEYS[1]}"}) == 200
    assert status({"Authorization": f"bearer {API_KEYS[0]}"}) == 200
    assert status({"Authorization": f"BEARER   {API_KEYS[0]}"}) == 200
    two = httpx.Headers([("Authorization", "Bearer wrong-key-123456"), ("Authorization", f"Bearer {API_KEYS[0]}")])
    assert status(two) == 401
    internal = httpx.post(f"{keyed_server.url}/internal/score_batch", json={"items": []},
                          headers={"Authorization": f"Bearer {API_KEYS[0]}"}, timeout=30)
    assert (internal.status_code, err(internal)["code"]) == (404, "not_found")


@pytest.mark.integration
def test_websocket_auth_bypass_attempts(keyed_server) -> None:
    """WebSockets: no key, a wrong or partial ?token=, a wrong Twilio token parameter are refused; the
    key never appears in the server log (the ?token= query string included)."""
    import websockets
    from websockets.exceptions import InvalidStatus

    from serving.client import plan_stream

    async def handshake(path: str) -> int:
        try:
            async with websockets.connect(f"{keyed_server.ws}{path}"):
                return 101
        except InvalidStatus as e:
            return e.response.status_code

    async def twilio(token: str | None) -> tuple[list[str], tuple]:
        metadata = {"source": "ads"} | ({"token": token} if token is not None else {})
        plan = plan_stream(np.zeros(1600, np.float32), twilio=True, call_id="CA" + "8" * 32, metadata=metadata)
        async with websockets.connect(f"{keyed_server.ws}/v1/twilio") as ws:
            for message in plan.start:
                await ws.send(message)
            events = await collect_until_close(ws, 10)
            return [e.get("error", {}).get("code", e["type"]) for e in events], close_of(ws)

    async def scenario():
        return {
            "none": await handshake("/v1/stream"),
            "prefix": await handshake(f"/v1/stream?token={_KEY[:-1]}"),
            "empty": await handshake("/v1/stream?token="),
            "twice": await handshake(f"/v1/stream?token=wrong-key-123456&token={_KEY}"),
            "good": await handshake(f"/v1/stream?token={_KEY}"),
            "twilio_none": await twilio(None),
            "twilio_wrong": await twilio(_KEY[:-1]),
            "twilio_empty": await twilio(""),
        }

    results = run(scenario())
    assert results["none"] == results["prefix"] == results["empty"] == results["twice"] == 401, results
    assert results["good"] == 101
    for name in ("twilio_none", "twilio_wrong", "twilio_empty"):
        assert results[name] == (["unauthorized"], (1008, "unauthorized")), (name, results[name])
    for key in API_KEYS:
        assert key not in keyed_server.log_text(), "an API key reached the server log"

