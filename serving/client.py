"""Python clients of the live scoring service: what an integrator tries first.

::

    from serving.client import CallIntentClient

    with CallIntentClient("http://127.0.0.1:3000", api_key="…") as client:
        result = client.score("hi I saw your ad, what does a new roof cost", {"source": "google_ads"})
        print(result["decision"]["route"], result["buying_intent"])
        for event in client.stream("call.wav", realtime=True):      # a file played as a live call
            if event["type"] == "decision":
                print(event["decision"]["route"])

Results are the service's JSON as plain dicts (documented, with their pydantic models, in
:mod:`serving.schemas`; stream events in :mod:`serving.live_call`):

* ``score`` → ``{call_id, intent, probabilities, buying_intent, signals, decision, transcript,
  model, timings_ms, batch_size}``
* ``score_audio`` → the same plus ``words``, ``audio_seconds``, ``cut_seconds``
* ``stream`` → events ``started``, ``partial``…, ``decision``, ``final`` (and ``error``)

An error response raises :class:`ApiError` (``status``, ``code``, ``message``); a server that
cannot be reached raises :class:`ServerUnavailable`; a live call the server closes with any code
but 1000 raises :class:`StreamClosed` after its last event was yielded (e.g. 1013 at capacity).

Audio for :meth:`CallIntentClient.stream` is a file path (any format ``speech.audio`` decodes) or a
float32 16 kHz mono array. It is sent as 16 kHz PCM16 frames, as 8 kHz μ-law with
``encoding="mulaw"``, or as Twilio Media Streams messages with ``twilio=True`` (what a Twilio
``<Stream>`` sends: ``connected``, ``start`` with ``customParameters``, base64 μ-law ``media``,
``stop``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from callintent.errors import UserError

DEFAULT_URL = "http://127.0.0.1:3000"
#: Close codes after which the server sent everything it had to say.
_CLEAN_CLOSE = (1000,)


class ApiError(UserError):
    """The service answered with an error body.

    Attributes:
        status: HTTP status (401, 413, 422…).
        code: The error code from the body (``unauthorized``, ``body_too_large``…).
        fields: Offending fields for ``invalid_request``.
    """

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []


class ServerUnavailable(UserError):
    """The service could not be reached (refused, DNS, timeout)."""


class StreamClosed(UserError):
    """The server closed a live call with a code other than 1000.

    Attributes:
        code: WebSocket close code (1013 = at capacity, 1008 = policy, 1001 = idle/shutdown…).
        reason: The server's close reason.
    """

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"the server closed the call: {code} {reason}".strip())
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class StreamPlan:
    """The messages of one live call, prepared before sending.

    Attributes:
        start: The opening text message(s).
        frames: Audio messages in order (bytes for the generic protocol, JSON text for Twilio).
        frame_seconds: Wall time between two messages when paced in real time (the audio of one
            message; half of it for the two interleaved tracks of a two-channel Twilio call).
        stop: The closing text message.
    """

    start: tuple[str, ...]
    frames: tuple[bytes | str, ...]
    frame_seconds: float
    stop: str


class _Base:
    def __init__(self, url: str = DEFAULT_URL, *, api_key: str | None = None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _ws_url(self, twilio: bool) -> str:
        base = self.url
        if base.startswith("http://"):
            base = "ws://" + base[len("http://"):]
        elif base.startswith("https://"):
            base = "wss://" + base[len("https://"):]
        return f"{base}{'/v1/twilio' if twilio else '/v1/stream'}"

    def _audio_request(self, audio: str | Path | bytes, *, encoding: str | None, sample_rate: int | None,
                       metadata: Mapping[str, Any] | None, call_id: str | None) -> tuple[dict, dict]:
        if isinstance(audio, (str, Path)):
            path = Path(audio)
            try:
                content = path.read_bytes()
            except OSError as e:
                raise UserError(f"{path}: cannot read audio file: {e.strerror or e}") from None
            name = path.name
        else:
            content, name = bytes(audio), "audio"
        data: dict[str, str] = {}
        if encoding:
            data["encoding"] = encoding
        if sample_rate:
            data["sample_rate"] = str(sample_rate)
        if metadata:
            data["metadata"] = json.dumps(dict(metadata))
        if call_id:
            data["call_id"] = call_id
        return data, {"file": (name, content, "application/octet-stream")}


def _score_body(transcript: str | Sequence[Mapping[str, str] | tuple[str, str]],
                metadata: Mapping[str, Any] | None, call_id: str | None) -> dict[str, Any]:
    """The ``/score`` JSON body: ``transcript`` for text, ``turns`` for speaker turns."""
    body: dict[str, Any] = {"metadata": dict(metadata or {})}
    if isinstance(transcript, str):
        body["transcript"] = transcript
    else:
        body["turns"] = [dict(t) if isinstance(t, Mapping) else {"speaker": t[0], "text": t[1]} for t in transcript]
    if call_id:
        body["call_id"] = call_id
    return body


def _raise_for(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            raise ApiError(response.status_code, str(error.get("code", "error")), str(error.get("message", "")),
                           error.get("fields"))
        raise ApiError(response.status_code, "http_error", response.text[:200])
    if not isinstance(body, dict):
        raise ApiError(response.status_code, "bad_response", "the server did not answer with a JSON object")
    return body


class CallIntentClient(_Base):
    """Synchronous client (httpx for HTTP, websockets' sync client for live calls).

    Args:
        url: Service base URL (``http://host:port``).
        api_key: Sent as ``Authorization: Bearer``; None when the server has no keys.
        timeout: Seconds per HTTP request.
    """

    def __init__(self, url: str = DEFAULT_URL, *, api_key: str | None = None, timeout: float = 60.0) -> None:
        super().__init__(url, api_key=api_key, timeout=timeout)
        import httpx

        self._http = httpx.Client(base_url=self.url, headers=self._headers, timeout=timeout)

    def __enter__(self) -> CallIntentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def score(self, transcript: str | Sequence[Mapping[str, str] | tuple[str, str]],
              metadata: Mapping[str, Any] | None = None, *, call_id: str | None = None) -> dict[str, Any]:
        """``POST /score``.

        Args:
            transcript: The opening of the call as text, or its speaker turns in order
                (``{"speaker": "caller"|"agent", "text"}`` dicts or ``(speaker, text)`` pairs).
            metadata: ``source``, ``campaign``, ``industry``… (the decision policy keys on them).
            call_id: Your id for the call (the server makes one when None).

        Returns:
            The result dict (see the module docstring).
        """
        return _raise_for(self._request("POST", "/score", json=_score_body(transcript, metadata, call_id)))

    def score_audio(self, audio: str | Path | bytes, *, encoding: str | None = None, sample_rate: int | None = None,
                    metadata: Mapping[str, Any] | None = None, call_id: str | None = None) -> dict[str, Any]:
        """``POST /score_audio`` with a file (or its bytes); ``encoding``/``sample_rate`` for raw audio."""
        data, files = self._audio_request(audio, encoding=encoding, sample_rate=sample_rate, metadata=metadata,
                                          call_id=call_id)
        return _raise_for(self._request("POST", "/score_audio", data=data, files=files))

    def stream(self, audio: str | Path | np.ndarray, *, realtime: bool = False, twilio: bool = False,
               frame_ms: int = 20, encoding: str = "pcm16", call_id: str | None = None,
               metadata: Mapping[str, Any] | None = None,
               speakers: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
        """Play audio into ``/v1/stream`` (or ``/v1/twilio``) as a live call; yield the server's events.

        Args:
            audio: A file path or float32 16 kHz mono samples.
            realtime: Send one frame per ``frame_ms`` of wall time (as a phone call would);
                otherwise as fast as the connection takes them.
            twilio: Speak Twilio Media Streams (μ-law 8 kHz, base64 JSON) to ``/v1/twilio``.
            frame_ms: Audio per message.
            encoding: ``pcm16`` (16 kHz) or ``mulaw`` (8 kHz) for the generic protocol.
            call_id: The call id (Twilio: the callSid); generated when None.
            metadata: Call metadata (Twilio: ``customParameters``).
            speakers: For a two-channel recording (stereo file, or ``[2, n]`` samples): who each
                channel holds, e.g. ``("caller", "agent")``; sent as a two-channel call
                (``channels: 2``, or Twilio's inbound = caller and outbound = agent tracks).

        Yields:
            Event dicts in the order the server sent them.

        Raises:
            ServerUnavailable: the server cannot be reached.
            StreamClosed: the server closed with a code other than 1000 (after the last event).
            ApiError: the handshake was refused (401 unauthorized).
        """
        from websockets.exceptions import ConnectionClosed, InvalidStatus
        from websockets.sync.client import connect

        plan = plan_stream(audio, twilio=twilio, frame_ms=frame_ms, encoding=encoding, call_id=call_id,
                           metadata=metadata, speakers=speakers)
        url = self._ws_url(twilio)
        try:
            ws = connect(url, additional_headers=self._headers, open_timeout=self.timeout, max_size=2 ** 22)
        except InvalidStatus as e:
            raise _handshake_error(e) from None
        except OSError as e:
            raise ServerUnavailable(f"cannot connect to {url}: {e.strerror or e} (is the server running?)") from None
        with ws:
            sender = threading.Thread(target=_send_plan_sync, args=(ws, plan, realtime), daemon=True)
            sender.start()
            try:
                while True:
                    try:
                        message = ws.recv()
                    except ConnectionClosed:
                        break
                    if isinstance(message, str):
                        yield json.loads(message)
            finally:
                sender.join(timeout=1.0)
            code, reason = _close_info(ws)
        if code not in _CLEAN_CLOSE:
            raise StreamClosed(code, reason)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise ServerUnavailable(f"cannot reach {self.url}: {e or type(e).__name__} (is the server running?)") from None


class AsyncCallIntentClient(_Base):
    """Asynchronous client (httpx + websockets); the same methods as :class:`CallIntentClient`.

    ``stream`` is an async generator: ``async for event in client.stream("call.wav"): …``.
    """

    def __init__(self, url: str = DEFAULT_URL, *, api_key: str | None = None, timeout: float = 60.0) -> None:
        super().__init__(url, api_key=api_key, timeout=timeout)
        import httpx

        self._http = httpx.AsyncClient(base_url=self.url, headers=self._headers, timeout=timeout)

    async def __aenter__(self) -> AsyncCallIntentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def score(self, transcript: str | Sequence[Mapping[str, str] | tuple[str, str]],
                    metadata: Mapping[str, Any] | None = None, *, call_id: str | None = None) -> dict[str, Any]:
        """``POST /score`` (see :meth:`CallIntentClient.score`)."""
        return _raise_for(await self._request("POST", "/score", json=_score_body(transcript, metadata, call_id)))

    async def score_audio(self, audio: str | Path | bytes, *, encoding: str | None = None,
                          sample_rate: int | None = None, metadata: Mapping[str, Any] | None = None,
                          call_id: str | None = None) -> dict[str, Any]:
        """``POST /score_audio`` (see :meth:`CallIntentClient.score_audio`)."""
        data, files = self._audio_request(audio, encoding=encoding, sample_rate=sample_rate, metadata=metadata,
                                          call_id=call_id)
        return _raise_for(await self._request("POST", "/score_audio", data=data, files=files))

    async def stream(self, audio: str | Path | np.ndarray, *, realtime: bool = False, twilio: bool = False,
                     frame_ms: int = 20, encoding: str = "pcm16", call_id: str | None = None,
                     metadata: Mapping[str, Any] | None = None,
                     speakers: Sequence[str] | None = None) -> AsyncIterator[dict[str, Any]]:
        """A live call (see :meth:`CallIntentClient.stream`); an async iterator of events."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        plan = plan_stream(audio, twilio=twilio, frame_ms=frame_ms, encoding=encoding, call_id=call_id,
                           metadata=metadata, speakers=speakers)
        url = self._ws_url(twilio)
        try:
            ws = await connect(url, additional_headers=self._headers, open_timeout=self.timeout, max_size=2 ** 22)
        except InvalidStatus as e:
            raise _handshake_error(e) from None
        except OSError as e:
            raise ServerUnavailable(f"cannot connect to {url}: {e.strerror or e} (is the server running?)") from None
        async with ws:
            sender = asyncio.create_task(_send_plan_async(ws, plan, realtime))
            try:
                while True:
                    try:
                        message = await ws.recv()
                    except ConnectionClosed:
                        break
                    if isinstance(message, str):
                        yield json.loads(message)
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
            code, reason = _close_info(ws)
        if code not in _CLEAN_CLOSE:
            raise StreamClosed(code, reason)

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise ServerUnavailable(f"cannot reach {self.url}: {e or type(e).__name__} (is the server running?)") from None


# ---------------------------------------------------------------------------------------------
# Preparing and sending a live call


def plan_stream(audio: str | Path | np.ndarray, *, twilio: bool = False, frame_ms: int = 20, encoding: str = "pcm16",
                call_id: str | None = None, metadata: Mapping[str, Any] | None = None,
                speakers: Sequence[str] | None = None) -> StreamPlan:
    """Cut audio into the messages of a live call.

    Args:
        audio: A file path (decoded to 16 kHz) or float32 16 kHz samples (``[n]``; ``[2, n]``
            with ``speakers``).
        twilio: Twilio Media Streams messages (μ-law 8 kHz, base64) instead of the generic protocol.
        frame_ms: Audio per message (Twilio sends 20 ms).
        encoding: Generic protocol only: ``pcm16`` at 16 kHz or ``mulaw`` at 8 kHz.
        call_id: The call id (Twilio: callSid); generated when None.
        metadata: Call metadata (Twilio: customParameters).
        speakers: A two-channel recording's speakers in channel order (``("caller", "agent")``
            or the reverse): the generic protocol interleaves the channels (``channels: 2``),
            Twilio sends the caller as the inbound and the agent as the outbound track.

    Returns:
        The messages.

    Raises:
        UserError: unreadable audio, bad ``frame_ms``, ``encoding`` or ``speakers``, or
            ``speakers`` for audio without two channels.
    """
    from speech.audio import SAMPLE_RATE, decode_audio
    from speech.speakers import SPEAKERS

    if not 5 <= frame_ms <= 1000:
        raise UserError(f"frame_ms must be between 5 and 1000, got {frame_ms}")
    if encoding not in ("pcm16", "mulaw"):
        raise UserError(f"encoding must be 'pcm16' or 'mulaw', got {encoding!r}")
    if speakers is not None and sorted(speakers) != sorted(SPEAKERS):
        raise UserError(f"speakers must name the two channels in order, e.g. caller,agent, got {list(speakers)}")
    two = speakers is not None
    if isinstance(audio, (str, Path)):
        samples = decode_audio(audio, keep_channels=two)
    else:
        samples = np.asarray(audio, dtype=np.float32)
    if two and (samples.ndim != 2 or samples.shape[0] != 2):
        count = samples.shape[0] if samples.ndim == 2 else 1
        raise UserError(f"speakers {','.join(speakers)}: the audio must have two channels (one per speaker), "
                        f"it has {count}")
    if not two and samples.ndim != 1:
        raise UserError(f"audio must be mono float32 at 16 kHz, got shape {samples.shape}")
    metadata = {str(k): str(v) for k, v in (metadata or {}).items()}
    channels = list(samples) if two else [samples]
    if not twilio:
        return _generic_plan(channels, encoding=encoding, frame_ms=frame_ms, call_id=call_id, metadata=metadata,
                             speakers=speakers)
    return _twilio_plan(channels, frame_ms=frame_ms, call_id=call_id, metadata=metadata, speakers=speakers)


def _generic_plan(channels: Sequence[np.ndarray], *, encoding: str, frame_ms: int, call_id: str | None,
                  metadata: dict[str, str], speakers: Sequence[str] | None) -> StreamPlan:
    from speech.audio import SAMPLE_RATE

    mulaw = encoding == "mulaw"
    rate = 8000 if mulaw else SAMPLE_RATE
    step = rate * frame_ms // 1000  # samples per channel per message
    # Interleaved: one sample of each channel in turn (2 bytes each for pcm16, 1 for μ-law).
    encoded = np.stack([_encode(c, mulaw) for c in channels], axis=1)
    width = encoded.shape[1] * encoded.itemsize
    payload = encoded.tobytes()
    chunks = [payload[i:i + step * width] for i in range(0, len(payload), step * width)]
    start: dict[str, Any] = {"type": "start", "call_id": call_id or f"call-{uuid.uuid4().hex[:16]}",
                             "encoding": encoding, "sample_rate": rate, "metadata": metadata}
    if speakers is not None:
        start.update(channels=2, speakers=list(speakers))
    return StreamPlan((json.dumps(start),), tuple(chunks), frame_ms / 1000.0, json.dumps({"type": "stop"}))


def _twilio_plan(channels: Sequence[np.ndarray], *, frame_ms: int, call_id: str | None, metadata: dict[str, str],
                 speakers: Sequence[str] | None) -> StreamPlan:
    step = 8000 * frame_ms // 1000  # samples per track per message
    tracks = [_TWILIO_TRACKS[s] for s in speakers] if speakers is not None else ["inbound"]
    per_track = [_encode(c, True).tobytes() for c in channels]
    call_sid = call_id or "CA" + uuid.uuid4().hex
    stream_sid = "MZ" + uuid.uuid4().hex
    account_sid = "AC" + uuid.uuid4().hex
    connected = json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    start_event = json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": stream_sid, "start": {
        "accountSid": account_sid, "streamSid": stream_sid, "callSid": call_sid, "tracks": sorted(tracks),
        "customParameters": metadata, "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
    frames = []
    for i, offset in enumerate(range(0, len(per_track[0]), step)):
        for track, data in zip(tracks, per_track):  # Twilio interleaves the tracks' 20 ms frames
            frames.append(json.dumps({"event": "media", "sequenceNumber": str(len(frames) + 2), "streamSid": stream_sid,
                                      "media": {"track": track, "chunk": str(i + 1), "timestamp": str(i * frame_ms),
                                                "payload": base64.b64encode(data[offset:offset + step]).decode("ascii")}}))
    stop = json.dumps({"event": "stop", "sequenceNumber": str(len(frames) + 2), "streamSid": stream_sid,
                       "stop": {"accountSid": account_sid, "callSid": call_sid}})
    # Two tracks' frames are sent in pairs (one frame_ms of call time per pair).
    return StreamPlan((connected, start_event), tuple(frames), frame_ms / 1000.0 / len(tracks), stop)


#: Which Twilio track carries each speaker (``serving.twilio.TRACK_SPEAKERS``, inverted).
_TWILIO_TRACKS = {"caller": "inbound", "agent": "outbound"}


def _encode(samples: np.ndarray, mulaw: bool) -> np.ndarray:
    """16 kHz float samples as μ-law bytes at 8 kHz, or little-endian pcm16 at 16 kHz."""
    from speech.audio import SAMPLE_RATE, resample

    if mulaw:
        return np.frombuffer(float_to_mulaw(resample(np.ascontiguousarray(samples), SAMPLE_RATE, 8000)), dtype=np.uint8)
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")


def float_to_mulaw(samples: np.ndarray) -> bytes:
    """Encode float samples in [-1, 1] as G.711 μ-law bytes (the inverse of ``speech.audio.mulaw_to_float``)."""
    bias, clip = 0x84, 32635
    pcm = np.clip(np.round(np.asarray(samples, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int32)
    sign = np.where(pcm < 0, 0x80, 0x00)
    magnitude = np.minimum(np.abs(pcm), clip) + bias
    exponent = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 7, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def _send_plan_sync(ws: Any, plan: StreamPlan, realtime: bool) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        for message in plan.start:
            ws.send(message)
        started = time.monotonic()
        for i, frame in enumerate(plan.frames):
            if realtime:
                delay = started + i * plan.frame_seconds - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            ws.send(frame)
        ws.send(plan.stop)
    except ConnectionClosed:
        pass  # the server ended the call early (refused, limit); the receiver reports it


async def _send_plan_async(ws: Any, plan: StreamPlan, realtime: bool) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        for message in plan.start:
            await ws.send(message)
        started = time.monotonic()
        for i, frame in enumerate(plan.frames):
            if realtime:
                delay = started + i * plan.frame_seconds - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)  # let the receiver run between frames
            await ws.send(frame)
        await ws.send(plan.stop)
    except ConnectionClosed:
        pass


def _close_info(ws: Any) -> tuple[int | None, str]:
    received = getattr(ws.protocol, "close_rcvd", None)
    if received is not None:
        return received.code, received.reason
    return ws.close_code, ws.close_reason or ""


def _handshake_error(error: Any) -> UserError:
    response = error.response
    try:
        body = json.loads(response.body or b"{}")
    except ValueError:
        body = {}
    detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        return ApiError(response.status_code, str(detail.get("code", "error")), str(detail.get("message", "")))
    return ApiError(response.status_code, "handshake_refused", f"the server refused the WebSocket "
                                                               f"({response.status_code})")


__all__ = ["ApiError", "AsyncCallIntentClient", "CallIntentClient", "ServerUnavailable", "StreamClosed",
           "StreamPlan", "float_to_mulaw", "plan_stream"]
