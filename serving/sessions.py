"""Live calls over WebSocket: the generic ``/v1/stream`` protocol and Twilio Media Streams on ``/v1/twilio``.

:class:`serving.service.CallIntentService` routes the sockets here; the call itself (decodes,
stable prefix, decision, event wire format) is :class:`serving.live_call.LiveCall`, which knows
nothing of sockets. A session sees only a :class:`LiveContext` (session slots, decode pool, ASR,
scoring, settings, API keys), never the service, so it can be tested with a fake of each.

Generic protocol, ``/v1/stream``
--------------------------------
Client → server: one text message ``{"type": "start", "call_id"?: str, "encoding": "pcm16" |
"mulaw" (default pcm16), "sample_rate": int (8000..48000, default 16000), "metadata"?: {…},
"channels"?: 1 | 2, "speakers"?: ["caller", "agent"]}``; then binary messages of raw audio in
that encoding (any size; 20 ms frames are typical; pcm16 is little-endian, a message may split
a sample); then ``{"type": "stop"}``. Two-channel audio (``channels: 2``) is interleaved, one
channel per speaker in the order of ``speakers`` (default caller first): the speakers are
transcribed apart and only the caller is scored (see :mod:`serving.live_call`).

Server → client: ``started``; ``partial`` events as decodes complete (at most one decode in flight
per call; audio keeps being buffered meanwhile); one ``decision``; ``final``; then close 1000.
Problems are ``error`` events (``{"type": "error", "error": {"code", "message"}}``; before a call
has started they carry ``seq: -1``). The call goes on after:

* ``bad_json``, ``unknown_type``, ``already_started``, ``message_too_large`` (message dropped).

The socket is closed after:

* ``binary_before_start`` (1008), ``unsupported_encoding`` (1003), ``invalid_start`` (1008),
  ``not_started`` on a stop before start (1000), ``unauthorized`` (1008, Twilio token);
* ``capacity``: ``limits.max_live_sessions`` calls are running → close **1013** (try again
  later) with the reason; the calls already running are not affected; ``shutting_down``: a
  call that starts while the server drains → close 1013 ``"server shutting down"``;
* ``audio_too_long``: more than ``limits.max_audio_seconds`` of audio → ``final``, close 1008;
* idle: nothing received for ``limits.idle_timeout_seconds`` → ``final``, close **1001**
  ``"idle timeout"``; server shutdown → ``final``, close 1001 ``"server shutting down"``;
* ``internal_error``: a bug while decoding or handling a message → close 1011 (other calls go on);
* a client that stops reading: an event it does not take within :data:`SEND_TIMEOUT_SECONDS`
  ends the call as a disconnect (the slot is freed; nothing more is sent).

Twilio Media Streams, ``/v1/twilio``
------------------------------------
Messages as :mod:`serving.twilio` parses them: ``connected``, ``start`` (``callSid`` = call id,
``customParameters`` = metadata, optional ``token`` parameter = API key), ``media`` (base64 μ-law
8 kHz, inbound track transcribed; with ``tracks: ["inbound", "outbound"]`` (``track="both_tracks"``)
both are, as the caller and the agent), ``stop``. Point a unidirectional
``<Start><Stream url="wss://HOST/v1/twilio">`` (with ``<Parameter>``s for source, campaign,
token) at it. The same events go back as JSON text messages (a unidirectional stream ignores
them) and are logged; decisions also reach ``callintent_decisions_total``. The limits, idle
timeout, capacity and shutdown rules above apply unchanged. Twilio-specific errors:
``invalid_message`` (a malformed message), ``bad_media`` (payload not base64), ``protocol_error``
(out of order, e.g. media before start), ``unexpected_binary`` — all keep the stream going; an
invalid ``start`` closes it (1003).

Code layout: :class:`LiveSession` is everything the two protocols share (socket reader, idle
timeout, size limit, admission, audio limit, decode scheduling, final event, close, metrics);
:class:`EventSocket` sends its events (one at a time, with a send timeout); :class:`GenericSession`
and :class:`TwilioSession` only turn their messages into start / audio / stop. Decisions and the
call's log record go through the same :class:`serving.scoring.Scoring` as ``POST /score``.
:func:`install_drain` ends every open session on SIGTERM.
"""

from __future__ import annotations

import abc
import asyncio
import contextvars
import dataclasses
import json
import logging
import signal
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect

from serving import twilio as tw
from serving.auth import ApiKeys
from serving.config import LimitsConfig, ServeConfig
from serving.limits import CLOSE_TRY_AGAIN_LATER, SessionSlots
from serving.live_floor import LiveFloor
from serving.live_call import SCORED_SPEAKER, SPEAKERS, LiveCall, StreamConfig, StreamEvent, Transcriber
from serving.logs import call_id_context
from serving.metrics import service_metrics
from serving.schemas import clean_metadata, new_call_id, valid_call_id
from serving.scoring import Scoring
from speech.audio import RAW_ENCODINGS, SAMPLE_RATE, StreamResampler, mulaw_to_float, pcm16_to_float

if TYPE_CHECKING:
    from serving.twilio import StartMessage

logger = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_INTERNAL_ERROR = 1011

#: Rates a generic live call may declare (telephony 8 kHz up to studio 48 kHz).
MIN_STREAM_RATE, MAX_STREAM_RATE = 8000, 48000
#: Longest one event may take to go out. A client that stops reading (a half-open socket, a
#: stuck consumer) fills the socket buffers and would block the send — and with it the decode
#: task and the call's slot — forever; past this the client counts as gone.
SEND_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class LiveSettings:
    """What a live call may do and how it is decoded.

    Attributes:
        limits: Session, message, audio and idle limits.
        stream: The live-call engine settings (``redact_pii`` already the service's).
        store_audio: Keep each call's raw audio in ``audio_dir``.
        audio_dir: Where.
    """

    limits: LimitsConfig
    stream: StreamConfig
    store_audio: bool = False
    audio_dir: str = ""

    @classmethod
    def of(cls, config: ServeConfig) -> LiveSettings:
        return cls(config.limits, dataclasses.replace(config.stream, redact_pii=config.redact_pii),
                   store_audio=config.store_audio, audio_dir=config.audio_dir)


@dataclass(frozen=True)
class LiveContext:
    """Everything a live session uses, built once per worker by the service.

    Attributes:
        slots: Admission control and the register of open calls (drained at shutdown).
        decode_pool: Where decodes and the final step run (bounded, apart from request threads).
        asr: The live speech recognizer (the service's ASR batcher).
        scoring: The model, policy, decision counting and call log, shared with ``POST /score``.
        settings: Limits, stream settings, audio storage.
        api_keys: The keys accepted now (Twilio sends its key in the ``start`` message).
        floor: The open calls and their subscribers (every event a call sends is published there).
    """

    slots: SessionSlots
    decode_pool: Executor
    asr: Transcriber
    scoring: Scoring
    settings: LiveSettings
    api_keys: Callable[[], ApiKeys] = ApiKeys
    floor: LiveFloor = dataclasses.field(default_factory=LiveFloor)


@dataclass(frozen=True)
class _Close:
    """How a session ends: close code and reason, whether the call gets its final event, and
    the label for ``live_sessions_ended_total``."""

    code: int
    reason: str
    ended: str
    finish: bool = True


# The ends both protocols reach the same way.
_STOPPED = _Close(CLOSE_NORMAL, "stop", "stop")
_CLIENT_GONE = _Close(CLOSE_GOING_AWAY, "client went away", "disconnect")
_INVALID_START = _Close(CLOSE_POLICY, "invalid start message", "bad_start", finish=False)
_INTERNAL_ERROR = _Close(CLOSE_INTERNAL_ERROR, "internal error", "error", finish=False)

#: Inbox sentinels (identity-compared).
_SHUTDOWN = object()
_FAILED = object()


# ---------------------------------------------------------------------------------------------
# The shared pump


class EventSocket:
    """Sends a session's events: one at a time (the decode task and the session loop both send),
    each within :data:`SEND_TIMEOUT_SECONDS`, and nothing once the socket is closed or gone.
    Call events are measured on the way out, decisions and final events reported to scoring, and
    every event published on the live floor (its subscribers get it even when the caller is gone).

    Args:
        websocket: The accepted socket.
        inbox: The session's queue: a client that stops reading is reported there as a disconnect.
        scoring: Counts and publishes decisions and logs calls (the same rules as ``POST /score``).
        source: The protocol's ``source`` label (``stream``, ``twilio``).
        floor: The live floor (None: not published).
    """

    def __init__(self, websocket: WebSocket, inbox: asyncio.Queue[Any], scoring: Scoring, source: str,
                 floor: LiveFloor | None = None) -> None:
        self.ws = websocket
        self.inbox = inbox
        self.scoring = scoring
        self.source = source
        self.floor = floor
        self.closed = False
        self._lock = asyncio.Lock()

    async def send_events(self, call: LiveCall, events: Iterable[StreamEvent]) -> None:
        metrics = service_metrics()
        for event in events:
            if event.type == "partial" and event.latency_ms is not None:
                metrics.update_latency.observe(event.latency_ms / 1000.0)
                metrics.decode_seconds.observe(((event.decode_ms or 0.0) + (event.score_ms or 0.0)) / 1000.0)
            elif event.type == "decision" and event.decision is not None:
                assert event.scores is not None
                self.scoring.decided(call.call_id, channel=self.source, metadata=call.metadata, scores=event.scores,
                                     decision=event.decision, shown=event.text, heard=call.transcript,
                                     audio_seconds=event.audio_seconds)
                logger.info("decision %s at %.1f s of audio: %s", event.decision.route, event.audio_seconds,
                            "; ".join(event.decision.reasons))
            elif event.type == "final":
                self._log_call(call, event)
            if self.floor is not None:
                self.floor.publish(self.source, event)
            await self.send(event.to_json())

    def _log_call(self, call: LiveCall, final: StreamEvent) -> None:
        """Queue the call's decision log record (its ``final`` event; also on disconnect and shutdown)."""
        assert final.scores is not None and final.decision is not None
        self.scoring.log_call(
            call.call_id, channel=self.source, metadata=call.metadata, scores=final.scores, decision=final.decision,
            shown=final.text, heard=call.transcript,
            audio_seconds=round(final.totals.audio_seconds, 3) if final.totals else None)

    async def send(self, payload: dict[str, Any]) -> None:
        if self.closed:
            return
        async with self._lock:
            try:
                await asyncio.wait_for(self.ws.send_text(json.dumps(payload)), SEND_TIMEOUT_SECONDS)
            except TimeoutError:  # before OSError, its base class
                logger.warning("client took no event for %g s: treating it as gone", SEND_TIMEOUT_SECONDS)
                self.closed = True
                self.inbox.put_nowait({"type": "websocket.disconnect", "code": CLOSE_GOING_AWAY})
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.closed = True  # the client is gone; the loop sees the disconnect

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self.ws.close(code=code, reason=reason)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # already closed by the client


class LiveSession(abc.ABC):
    """One live call on a WebSocket; the protocol subclasses say what their messages mean.

    A reader task moves incoming messages into a queue, so the session loop can wait for the
    next message, the idle timeout and a shutdown request at once. Audio goes straight into the
    :class:`~serving.live_call.LiveCall` (its buffer is append-only and safe to fill while a decode
    runs); decodes run on the service's bounded decode pool, one at a time per call.

    A subclass implements :meth:`_on_message` (a text message, already parsed as JSON),
    :meth:`_on_binary` and :meth:`_audio_tail`; it starts the call with :meth:`_admit` and feeds
    audio with :meth:`_insert`. Each handler returns a :class:`_Close` to end the session, or
    None to keep it going.

    Args:
        ctx: What the session uses (slots, decode pool, ASR, scoring, settings, API keys).
        websocket: The not yet accepted socket.
    """

    #: ``source`` label of the decisions this protocol makes (``callintent_decisions_total``).
    source: ClassVar[str]

    def __init__(self, ctx: LiveContext, websocket: WebSocket) -> None:
        self.ctx = ctx
        self.ws = websocket
        self.limits = ctx.settings.limits
        self.call: LiveCall | None = None
        self.call_id = ""
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.socket = EventSocket(websocket, self.inbox, ctx.scoring, self.source, ctx.floor)
        self.decoding: asyncio.Task[None] | None = None
        self.finishing = False
        self.done = asyncio.Event()
        self._slot = False
        self._encoding = "pcm16"
        self._rate = SAMPLE_RATE
        self._received_seconds = 0.0
        self._tape = _AudioTape(ctx.settings.audio_dir) if ctx.settings.store_audio else None

    async def run(self) -> None:
        """Serve the socket until the call ends; never raises for client behaviour."""
        await self.ws.accept()
        self.ctx.slots.sessions.add(self)
        reader = asyncio.create_task(self._read())
        close: _Close | None = None
        try:
            close = await self._serve()
            if close is not None:
                await self._end(close)
        except WebSocketDisconnect:
            close = _CLIENT_GONE
            await self._end(close)
        except Exception:  # a bug handling one call must end that call (1011), never the server
            logger.exception("live call failed")
            close = _INTERNAL_ERROR
            await self._error("internal_error", "the call failed on the server; see the server log")
            await self._end(close)
        finally:
            reader.cancel()
            if self.decoding is not None:
                await asyncio.gather(self.decoding, return_exceptions=True)
            if self.call is not None:
                self.ctx.floor.end(self.call_id)  # leaves the floor, final event or not
            if self._slot:
                self.ctx.slots.release()
                service_metrics().sessions_active.dec()
                service_metrics().sessions_ended.labels(reason=close.ended if close else "error").inc()
            self.ctx.slots.sessions.discard(self)
            self.done.set()

    def request_shutdown(self) -> None:
        """Ask the session to end now with its final event (server shutdown)."""
        self.inbox.put_nowait(_SHUTDOWN)

    # -- what the protocols define ---------------------------------------------------------------

    @abc.abstractmethod
    async def _on_message(self, message: Any, text: str) -> _Close | None:
        """Handle a text message that parsed as JSON (``message``; ``text`` is the raw frame)."""

    @abc.abstractmethod
    async def _on_binary(self, data: bytes) -> _Close | None:
        """Handle a binary message."""

    @abc.abstractmethod
    def _audio_tails(self) -> dict[str | None, np.ndarray]:
        """The samples stateful resamplers still hold when the call ends, per speaker (None:
        one channel); arrays may be empty."""

    # -- the loop --------------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            while True:
                message = await self.ws.receive()
                self.inbox.put_nowait(message)
                if message["type"] == "websocket.disconnect":
                    return
        except (WebSocketDisconnect, RuntimeError):  # receive after we closed the socket
            self.inbox.put_nowait({"type": "websocket.disconnect", "code": CLOSE_GOING_AWAY})

    async def _serve(self) -> _Close | None:
        while True:
            try:
                item = await asyncio.wait_for(self.inbox.get(), timeout=self.limits.idle_timeout_seconds)
            except TimeoutError:
                logger.info("closing idle call after %.0f s without a message", self.limits.idle_timeout_seconds)
                return _Close(CLOSE_GOING_AWAY, "idle timeout", "idle")
            if item is _SHUTDOWN:
                return _Close(CLOSE_GOING_AWAY, "server shutting down", "shutdown")
            if item is _FAILED:
                await self._error("internal_error", "the call failed on the server; see the server log")
                return _INTERNAL_ERROR
            if item["type"] == "websocket.disconnect":
                logger.info("client disconnected (code %s)", item.get("code"))
                return _CLIENT_GONE
            data = item.get("bytes")
            text = item.get("text")
            size = len(data) if data is not None else len((text or "").encode("utf-8"))
            if size > self.limits.max_message_bytes:
                await self._error("message_too_large", f"message of {size} bytes dropped; the limit "
                                                       f"(limits.max_message_bytes) is {self.limits.max_message_bytes}")
                continue
            close = await (self._on_binary(data) if data is not None else self._on_text(text or ""))
            if close is not None:
                return close

    async def _on_text(self, text: str) -> _Close | None:
        # Both protocols are JSON text: a frame that is not JSON is dropped the same way.
        message, problem = _parse_json(text)
        if problem is not None:
            await self._error("bad_json", problem)
            return None
        return await self._on_message(message, text)

    # -- the call --------------------------------------------------------------------------------

    async def _admit(self, call_id: str, metadata: dict[str, str], *, encoding: str,
                     sample_rate: int, speakers: tuple[str, ...] = ()) -> _Close | None:
        """Take a session slot and start the call (``started`` event), or refuse it.

        Args:
            call_id: The call id (validated).
            metadata: Cleaned call metadata for the policy.
            encoding: Raw encoding of the audio the client sends (names stored audio).
            sample_rate: Its rate in Hz.
            speakers: The speakers of a two-channel call, in channel order (``()``: one channel).

        Returns:
            None when the call runs; a close (1013) when the server drains or is full.
        """
        self._encoding, self._rate = encoding, sample_rate
        slots = self.ctx.slots
        if slots.draining:
            await self._error("shutting_down", "the server is shutting down; try again", refused="shutdown")
            return _Close(CLOSE_TRY_AGAIN_LATER, "server shutting down", "refused", finish=False)
        if not slots.try_acquire():
            reason = slots.refusal_reason()
            logger.warning("refused call %s: %s", call_id, reason)
            await self._error("capacity", reason, refused="capacity")
            return _Close(CLOSE_TRY_AGAIN_LATER, reason, "refused", finish=False)
        self._slot = True
        service_metrics().sessions_active.inc()
        service_metrics().sessions_started.inc()
        self.call_id = call_id
        call_id_context.set(call_id)
        # The call keeps the model serving now to its end, whatever a hot swap does meanwhile.
        model = self.ctx.scoring.model
        self.call = LiveCall(call_id, metadata, asr=self.ctx.asr, scorer=model.scorer, policy=model.policy,
                             config=self.ctx.settings.stream, model=model.model_id, speakers=speakers)
        await self.socket.send_events(self.call, [self.call.start()])
        return None

    def _insert(self, samples: np.ndarray, source_seconds: float, raw: bytes,
                speaker: str | None = None) -> _Close | None:
        """Feed converted audio to the call (one speaker's channel of a two-channel call) and
        start a decode when one is due.

        Args:
            samples: float32 16 kHz mono (may be empty while a resampler fills).
            source_seconds: How much audio ``raw`` holds at the client's rate (the limit counts
                what was sent, not what the resampler has released so far).
            raw: The bytes as received, kept only when ``store_audio`` is on.
            speaker: The channel of a two-channel call; None for one channel.
        """
        assert self.call is not None
        if speaker in (None, SCORED_SPEAKER):  # call time, counted once: on the caller's channel
            self._received_seconds += source_seconds
        if self._received_seconds > self.limits.max_audio_seconds:
            return _Close(CLOSE_POLICY, f"audio limit of {self.limits.max_audio_seconds:g} s reached", "limit")
        if self._tape is not None and raw:
            self._tape.chunks.append(raw)
        if samples.size:
            self.call.insert(samples, arrived_at=time.monotonic(), speaker=speaker)
        self._schedule()
        return None

    def _schedule(self) -> None:
        if self.decoding is None and not self.finishing and self.call is not None and self.call.ready():
            self.decoding = asyncio.create_task(self._decode_step())

    async def _decode_step(self) -> None:
        assert self.call is not None
        try:
            events = await self._in_pool(self.call.step)
        except Exception:  # a decode bug must end this call (1011), not the server or other calls
            logger.exception("live decode failed")
            self.decoding = None
            self.inbox.put_nowait(_FAILED)
            return
        self.decoding = None
        await self.socket.send_events(self.call, events)
        self._schedule()

    async def _end(self, close: _Close) -> None:
        """Finish the call (final event) when it started, then close the socket."""
        self.finishing = True
        if self.decoding is not None:
            await asyncio.gather(self.decoding, return_exceptions=True)
        if close.ended == "limit":
            await self._error("audio_too_long", f"the call sent more than {self.limits.max_audio_seconds:g} s of "
                                                "audio, the limit (limits.max_audio_seconds)")
        if close.finish and self.call is not None and not self.call.finished:
            for speaker, tail in self._audio_tails().items():
                if tail.size:
                    self.call.insert(tail, speaker=speaker)
            try:
                await self.socket.send_events(self.call, await self._in_pool(self.call.finish))
            except Exception:  # same as a failed step: report, close 1011
                logger.exception("live call finish failed")
                await self._error("internal_error", "the call failed on the server; see the server log")
                close = _INTERNAL_ERROR
        if self._tape is not None and self._tape.chunks:
            speakers = self.call.speakers if self.call is not None else ()
            await self._in_pool(lambda: self._tape.write(self.call_id, self._encoding, self._rate, speakers))
        logger.info("call ended (%s): %.1f s of audio received", close.ended, self._received_seconds)
        await self.socket.close(close.code, close.reason)

    async def _in_pool(self, fn: Callable[[], Any]) -> Any:
        """Run blocking work on the decode pool, keeping the call id for its log lines."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await loop.run_in_executor(self.ctx.decode_pool, context.run, fn)

    # -- sending ---------------------------------------------------------------------------------

    async def _error(self, code: str, message: str, *, refused: str | None = None) -> None:
        """Send an ``error`` event; ``refused`` also counts a refused call under that reason."""
        if refused is not None:
            service_metrics().sessions_refused.labels(reason=refused).inc()
        if self.call is not None:
            payload = self.call.error(message, code=code).to_json()
        else:
            payload = {"type": "error", "call_id": self.call_id, "seq": -1, "model": "", "audio_seconds": 0.0,
                       "error": {"code": code, "message": message}}
        logger.info("error event %s: %s", code, message)
        await self.socket.send(payload)


class _AudioTape:
    """A call's audio as received (``store_audio``), written once when the call ends."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.chunks: list[bytes] = []

    def write(self, call_id: str, encoding: str, rate: int, speakers: tuple[str, ...]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        channels = f".{len(speakers)}ch" if speakers else ""
        (self.directory / f"{call_id}.{encoding}.{rate}{channels}.raw").write_bytes(b"".join(self.chunks))


# ---------------------------------------------------------------------------------------------
# The protocols


class GenericSession(LiveSession):
    """``/v1/stream``: a JSON ``start``, binary raw audio frames (pcm16 or μ-law, 8–48 kHz), a JSON ``stop``.

    Args:
        ctx: What the session uses.
        websocket: The not yet accepted socket.
    """

    source = "stream"

    def __init__(self, ctx: LiveContext, websocket: WebSocket) -> None:
        super().__init__(ctx, websocket)
        self._resamplers: list[StreamResampler] = []  # one per channel
        self._speakers: tuple[str | None, ...] = (None,)  # channel -> speaker
        self._carry = b""  # a sample (frame of channels) split across two messages

    async def _on_message(self, message: Any, text: str) -> _Close | None:
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "start":
            return await self._start(message)
        if kind == "stop":
            if self.call is None:
                await self._error("not_started", "stop before start: no call to end")
                return _Close(CLOSE_NORMAL, "no call", "stop", finish=False)
            return _STOPPED
        await self._error("unknown_type", f"unknown message type {kind!r}: expected 'start' or 'stop' "
                                          "(audio goes in binary messages)")
        return None

    async def _start(self, message: dict[str, Any]) -> _Close | None:
        if self.call is not None:
            await self._error("already_started", f"call {self.call_id} has already started")
            return None
        encoding = message.get("encoding", "pcm16")
        kind = RAW_ENCODINGS.get(encoding.lower()) if isinstance(encoding, str) else None
        if kind is None:
            await self._error("unsupported_encoding", f"encoding {encoding!r} is not supported: use 'pcm16' or 'mulaw'",
                              refused="bad_start")
            return _Close(CLOSE_UNSUPPORTED, "unsupported encoding", "bad_start", finish=False)
        rate = message.get("sample_rate", SAMPLE_RATE)
        problem = None
        if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_STREAM_RATE <= rate <= MAX_STREAM_RATE:
            problem = f"sample_rate must be an integer in {MIN_STREAM_RATE}..{MAX_STREAM_RATE} Hz, got {rate!r}"
        call_id = message.get("call_id") or new_call_id()
        if problem is None and (not isinstance(call_id, str) or not valid_call_id(call_id)):
            problem = "call_id must be letters, digits and . _ : - (at most 128 characters)"
        metadata = message.get("metadata") or {}
        if problem is None and not isinstance(metadata, dict):
            problem = "metadata must be a JSON object"
        speakers: tuple[str, ...] = ()
        if problem is None:
            speakers, problem = _channel_speakers(message)
        if problem is None:
            try:
                metadata = clean_metadata(metadata, self.limits.max_metadata_items)
            except ValueError as e:
                problem = str(e)
        if problem is not None:
            await self._error("invalid_start", problem, refused="bad_start")
            return _INVALID_START
        self._speakers = speakers or (None,)
        self._resamplers = [StreamResampler(rate, SAMPLE_RATE) for _ in self._speakers]
        return await self._admit(call_id, metadata, encoding=kind, sample_rate=rate, speakers=speakers)

    async def _on_binary(self, data: bytes) -> _Close | None:
        if self.call is None:
            await self._error("binary_before_start", "audio before the start message: send "
                                                     '{"type": "start", "encoding", "sample_rate"} first')
            return _Close(CLOSE_POLICY, "audio before start", "bad_start", finish=False)
        channels = len(self._speakers)
        data = self._carry + data
        cut = len(data) - len(data) % ((1 if self._encoding == "mulaw" else 2) * channels)
        self._carry = data[cut:]
        samples = (mulaw_to_float if self._encoding == "mulaw" else pcm16_to_float)(data[:cut])
        frames = samples.reshape(-1, channels)  # interleaved: one column per channel
        for channel, (speaker, resampler) in enumerate(zip(self._speakers, self._resamplers)):
            close = self._insert(resampler.push(np.ascontiguousarray(frames[:, channel])), len(frames) / self._rate,
                                 data[:cut] if channel == 0 else b"", speaker)
            if close is not None:
                return close
        return None

    def _audio_tails(self) -> dict[str | None, np.ndarray]:
        return {speaker: resampler.flush() for speaker, resampler in zip(self._speakers, self._resamplers)}


class TwilioSession(LiveSession):
    """``/v1/twilio``: Twilio Media Streams JSON (``connected``/``start``/``media``/``stop``), μ-law 8 kHz.

    Order, duplicates and the audio conversion are :class:`serving.twilio.TwilioStreamState`'s;
    this class maps its outcomes to error events and closes.

    Args:
        ctx: What the session uses.
        websocket: The not yet accepted socket.
    """

    source = "twilio"

    def __init__(self, ctx: LiveContext, websocket: WebSocket) -> None:
        super().__init__(ctx, websocket)
        self._stream = tw.TwilioStreamState()

    async def _on_binary(self, data: bytes) -> _Close | None:
        await self._error("unexpected_binary", "Twilio Media Streams sends JSON text messages only; frame dropped")
        return None

    async def _on_message(self, message: Any, text: str) -> _Close | None:
        event = message.get("event") if isinstance(message, dict) else None
        try:
            parsed = tw.parse_message(text)
        except tw.TwilioProtocolError as e:
            code = "bad_media" if event == "media" else "invalid_message"
            await self._error(code, str(e), refused="bad_start" if event == "start" else None)
            if event == "start":
                return _Close(CLOSE_UNSUPPORTED, "invalid start message", "bad_start", finish=False)
            return None
        try:
            arrival = self._stream.accept(parsed)
        except tw.TwilioProtocolError as e:
            await self._error("protocol_error", str(e))
            return None
        if not arrival.use:  # a duplicate or late frame: the call's audio is append-only
            return None
        if isinstance(parsed, tw.StartMessage):
            return await self._start(parsed)
        if isinstance(parsed, tw.MediaMessage):
            if parsed.track != "inbound" and not self._stream.two_channel:  # one track: the caller's
                return None
            speaker = tw.TRACK_SPEAKERS[parsed.track] if self._stream.two_channel else None
            return self._insert(self._stream.audio(parsed), len(parsed.payload) / tw.TWILIO_SAMPLE_RATE,
                                parsed.payload if parsed.track == "inbound" else b"", speaker)
        if isinstance(parsed, tw.StopMessage):
            return _STOPPED
        logger.debug("twilio %s message", parsed.event)
        return None

    async def _start(self, message: StartMessage) -> _Close | None:
        params = dict(self._stream.metadata)
        token = params.pop("token", None)  # an API key must never reach metadata, events or logs
        # Twilio cannot send headers or query strings, so ApiKeyMiddleware defers the key check
        # of a handshake without a key to here, where the `token` custom parameter arrives.
        if self.ws.scope.get("state", {}).get("auth_deferred") and not self.ctx.api_keys().check(token):
            await self._error("unauthorized", "missing or invalid API key (Authorization header, ?token= or the "
                                              "'token' custom parameter)", refused="unauthorized")
            return _Close(CLOSE_POLICY, "unauthorized", "unauthorized", finish=False)
        try:
            metadata = clean_metadata(params, self.limits.max_metadata_items + 3)  # + call/stream/account sids
        except ValueError as e:
            await self._error("invalid_start", f"customParameters: {e}", refused="bad_start")
            return _INVALID_START
        call_id = message.call_sid if valid_call_id(message.call_sid) else new_call_id()
        speakers = tuple(tw.TRACK_SPEAKERS[t] for t in tw.MEDIA_TRACKS) if self._stream.two_channel else ()
        return await self._admit(call_id, metadata, encoding="mulaw", sample_rate=tw.TWILIO_SAMPLE_RATE,
                                 speakers=speakers)

    def _audio_tails(self) -> dict[str | None, np.ndarray]:
        if not self._stream.two_channel:
            return {None: self._stream.flush_audio()}
        return {speaker: self._stream.flush_audio(track) for track, speaker in tw.TRACK_SPEAKERS.items()}


def _parse_json(text: str) -> tuple[Any, str | None]:
    """A text frame as JSON: (message, None), or (None, why it is not valid JSON)."""
    try:
        return json.loads(text), None
    except json.JSONDecodeError as e:
        return None, f"message is not valid JSON: {e}"
    except (ValueError, RecursionError):  # an integer over 4300 digits; nesting past the stack
        return None, "message is not valid JSON: nested too deeply or a number too long"


def _channel_speakers(message: dict[str, Any]) -> tuple[tuple[str, ...], str | None]:
    """The ``channels``/``speakers`` of a generic start message: (speakers, problem or None)."""
    channels = message.get("channels", 1)
    if isinstance(channels, bool) or channels not in (1, 2):
        return (), f"channels must be 1 (one mixed channel) or 2 (interleaved caller and agent), got {channels!r}"
    speakers = message.get("speakers")
    if channels == 1:
        if speakers is not None:
            return (), "speakers is only for two-channel audio (channels: 2)"
        return (), None
    speakers = list(SPEAKERS) if speakers is None else speakers
    if not isinstance(speakers, list) or sorted(map(str, speakers)) != sorted(SPEAKERS):
        return (), f"speakers must list the two channels in order, e.g. {list(SPEAKERS)}, got {speakers!r}"
    return tuple(speakers), None


# ---------------------------------------------------------------------------------------------
# Shutdown


def install_drain(slots: SessionSlots, drain_seconds: float, unready_seconds: float = 0.0) -> None:
    """On SIGTERM/SIGINT, end every live call with its final event, then let the server stop.

    uvicorn answers the signal by closing WebSockets with 1012 *before* the ASGI lifespan
    shutdown runs, which would cut calls off without their final event; so the handler uvicorn
    installed is wrapped: first drain (at most ``drain_seconds``), then hand the signal on.

    Args:
        slots: The worker's open calls (``sessions``), drained; ``draining`` is set so new calls
            are refused.
        drain_seconds: The longest the drain waits (``limits.drain_seconds``).
        unready_seconds: The shortest: ``/readyz`` has said 503 this long before the server
            stops, so a load balancer has stopped sending requests (``limits.unready_seconds``).
    """
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue

        def handler(sig: int, frame: Any, previous: Callable[..., Any] = previous) -> None:
            loop.call_soon_threadsafe(_start_drain, slots, drain_seconds, unready_seconds, previous, sig, frame)

        try:
            signal.signal(signum, handler)
        except ValueError:  # not the main thread (e.g. an in-process test server): no drain
            logger.warning("cannot install the shutdown drain outside the main thread")
            return


def _start_drain(slots: SessionSlots, drain_seconds: float, unready_seconds: float, previous: Callable[..., Any],
                 sig: int, frame: Any) -> None:
    if slots.draining:  # a second signal: stop now
        previous(sig, frame)
        return
    slots.draining = True
    task = asyncio.get_running_loop().create_task(_drain(slots, drain_seconds, unready_seconds))
    task.add_done_callback(lambda _: previous(sig, frame))


async def _drain(slots: SessionSlots, drain_seconds: float, unready_seconds: float = 0.0) -> None:
    # /readyz says 503 from now (slots.draining); requests still routed here are answered meanwhile.
    unready = asyncio.create_task(asyncio.sleep(min(unready_seconds, drain_seconds)))
    sessions = list(slots.sessions)
    if sessions:
        logger.info("shutting down: ending %d live calls", len(sessions))
        for session in sessions:
            session.request_shutdown()
        _, pending = await asyncio.wait([asyncio.create_task(s.done.wait()) for s in sessions], timeout=drain_seconds)
        if pending:
            logger.warning("%d live calls did not finish within %.0f s (limits.drain_seconds)", len(pending),
                           drain_seconds)
    await unready


__all__ = ["EventSocket", "GenericSession", "LiveContext", "LiveSession", "LiveSettings",
           "TwilioSession", "install_drain"]
