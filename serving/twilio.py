"""Twilio Media Streams: the JSON messages Twilio sends over the WebSocket, parsed and checked.

Twilio's ``<Stream>`` TwiML noun opens a WebSocket to the service and sends, in order
(https://www.twilio.com/docs/voice/media-streams/websocket-messages)::

    {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    {"event": "start", "sequenceNumber": "1", "streamSid": "MZ…",
     "start": {"accountSid": "AC…", "streamSid": "MZ…", "callSid": "CA…", "tracks": ["inbound"],
               "customParameters": {"source": "google_ads", "campaign": "spring-hvac"},
               "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}
    {"event": "media", "sequenceNumber": "3", "streamSid": "MZ…",
     "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": "<base64 μ-law>"}}
    {"event": "dtmf", "sequenceNumber": "5", "streamSid": "MZ…", "dtmf": {"track": "inbound_track", "digit": "1"}}
    {"event": "mark", "sequenceNumber": "4", "streamSid": "MZ…", "mark": {"name": "my label"}}
    {"event": "stop", "sequenceNumber": "5", "streamSid": "MZ…", "stop": {"accountSid": "AC…", "callSid": "CA…"}}

:func:`parse_message` turns one text frame into a typed message or raises
:class:`TwilioProtocolError` naming what is wrong; extra keys Twilio may add later are ignored,
missing or mistyped required ones are not. :class:`TwilioStreamState` follows one stream: it
checks the order (start before media, one stream id), reports duplicate, out-of-order and lost
messages by ``sequenceNumber``, exposes the call metadata from ``customParameters`` and the
``callSid`` as the call id, and converts inbound media payloads to the float32 16 kHz audio
:class:`serving.live_call.LiveCall` takes. Of a one-track stream only the *inbound* track (the
caller) is transcribed; outbound media is accepted and ignored. A stream
started with both tracks (``<Stream track="both_tracks">``) is a two-channel call: inbound is
the caller, outbound the agent (:data:`TRACK_SPEAKERS`), each transcribed on its own.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from callintent.errors import UserError

logger = logging.getLogger(__name__)

#: The only media format Twilio Media Streams sends.
MULAW_ENCODING = "audio/x-mulaw"
TWILIO_SAMPLE_RATE = 8000
EVENTS = ("connected", "start", "media", "dtmf", "mark", "stop")
MEDIA_TRACKS = ("inbound", "outbound")
#: Who speaks on each track: inbound is what the caller says to Twilio, outbound what is played
#: or said back to the caller (the agent).
TRACK_SPEAKERS = {"inbound": "caller", "outbound": "agent"}
#: Twilio sends 20 ms frames (160 bytes); anything far larger is not Twilio.
MAX_PAYLOAD_BYTES = 64_000
#: Sequence numbers remembered to tell a duplicate from a late message.
_SEEN_WINDOW = 512
#: Longest counter string (sequenceNumber, chunk, timestamp) accepted.
_MAX_COUNTER_DIGITS = 18
#: Longest quote of a bad value in an error message (they reach the client and the log).
_MAX_QUOTE_CHARS = 80


class TwilioProtocolError(UserError):
    """A message that is not valid Twilio Media Streams JSON; the message says which field."""


@dataclass(frozen=True)
class MediaFormat:
    """Attributes: encoding (``audio/x-mulaw``), sample_rate (8000), channels (1)."""

    encoding: str
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class ConnectedMessage:
    """The first message. Attributes: protocol (``Call``), version (``1.0.0``)."""

    protocol: str
    version: str
    event: str = "connected"


@dataclass(frozen=True)
class StartMessage:
    """Stream metadata, sent once.

    Attributes:
        sequence_number: Message counter (starts at 1).
        stream_sid: The stream id (``MZ…``).
        account_sid: Twilio account (``AC…``).
        call_sid: The call (``CA…``); used as the live call id.
        tracks: ``("inbound",)``, ``("outbound",)`` or both.
        custom_parameters: ``<Parameter>`` name/values from the TwiML (source, campaign…).
        media_format: Always μ-law 8 kHz mono (anything else is rejected).
    """

    sequence_number: int
    stream_sid: str
    account_sid: str
    call_sid: str
    tracks: tuple[str, ...]
    custom_parameters: dict[str, str]
    media_format: MediaFormat
    event: str = "start"


@dataclass(frozen=True)
class MediaMessage:
    """One audio frame.

    Attributes:
        sequence_number: Message counter.
        stream_sid: The stream id.
        track: ``inbound`` (the caller) or ``outbound``.
        chunk: Per-track frame counter (starts at 1).
        timestamp_ms: Milliseconds since the stream started.
        payload: Raw μ-law bytes (base64-decoded).
    """

    sequence_number: int
    stream_sid: str
    track: str
    chunk: int
    timestamp_ms: int
    payload: bytes = field(repr=False)
    event: str = "media"


@dataclass(frozen=True)
class DtmfMessage:
    """A key press. Attributes: sequence_number, stream_sid, track (``inbound_track``), digit."""

    sequence_number: int
    stream_sid: str
    track: str
    digit: str
    event: str = "dtmf"


@dataclass(frozen=True)
class MarkMessage:
    """Echo of a mark the server sent (bidirectional streams). Attributes: sequence_number, stream_sid, name."""

    sequence_number: int
    stream_sid: str
    name: str
    event: str = "mark"


@dataclass(frozen=True)
class StopMessage:
    """The stream ended (hang-up or TwiML). Attributes: sequence_number, stream_sid, account_sid, call_sid."""

    sequence_number: int
    stream_sid: str
    account_sid: str
    call_sid: str
    event: str = "stop"


TwilioMessage = ConnectedMessage | StartMessage | MediaMessage | DtmfMessage | MarkMessage | StopMessage


def parse_message(text: str | bytes) -> TwilioMessage:
    """Parse and validate one Twilio Media Streams WebSocket text frame.

    Args:
        text: The frame (JSON).

    Returns:
        The typed message.

    Raises:
        TwilioProtocolError: not JSON, not an object, unknown ``event``, a missing or mistyped
            field, a payload that is not base64, or a media format other than μ-law 8 kHz mono.
    """
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        # ValueError covers JSONDecodeError, UnicodeDecodeError and integers over Python's
        # 4300-digit limit; RecursionError is nesting deeper than the parser's stack.
        raise TwilioProtocolError(f"twilio message is not valid JSON: {_short(e)}") from None
    if not isinstance(data, dict):
        raise TwilioProtocolError(f"twilio message must be a JSON object, got {type(data).__name__}")
    event = data.get("event")
    if not isinstance(event, str):
        raise TwilioProtocolError("twilio message has no 'event' string")
    if event not in EVENTS:
        raise TwilioProtocolError(f"unknown twilio event {_short(event)} (expected one of {', '.join(EVENTS)})")
    if event == "connected":
        return ConnectedMessage(protocol=_str(data, "protocol", event), version=_str(data, "version", event))
    seq = _seq(data, event)
    stream_sid = _str(data, "streamSid", event)
    if event == "start":
        return _start_message(data, seq, stream_sid)
    if event == "media":
        body = _obj(data, "media", event)
        track = _str(body, "track", event, "media.")
        if track not in MEDIA_TRACKS:
            raise TwilioProtocolError(f"media: media.track must be one of {MEDIA_TRACKS}, got {_short(track)}")
        return MediaMessage(sequence_number=seq, stream_sid=stream_sid, track=track,
                            chunk=_int_str(body, "chunk", event, "media."),
                            timestamp_ms=_int_str(body, "timestamp", event, "media."),
                            payload=_payload(body, event))
    if event == "dtmf":
        body = _obj(data, "dtmf", event)
        digit = _str(body, "digit", event, "dtmf.")
        if len(digit) != 1 or digit not in "0123456789*#ABCD":
            raise TwilioProtocolError(f"dtmf: dtmf.digit must be one key (0-9, *, #, A-D), got {_short(digit)}")
        return DtmfMessage(sequence_number=seq, stream_sid=stream_sid, track=_str(body, "track", event, "dtmf."),
                           digit=digit)
    if event == "mark":
        body = _obj(data, "mark", event)
        return MarkMessage(sequence_number=seq, stream_sid=stream_sid, name=_str(body, "name", event, "mark."))
    body = _obj(data, "stop", event)
    return StopMessage(sequence_number=seq, stream_sid=stream_sid, account_sid=_str(body, "accountSid", event, "stop."),
                       call_sid=_str(body, "callSid", event, "stop."))


def _start_message(data: dict[str, Any], seq: int, stream_sid: str) -> StartMessage:
    event = "start"
    body = _obj(data, "start", event)
    if _str(body, "streamSid", event, "start.") != stream_sid:
        raise TwilioProtocolError("start: start.streamSid differs from streamSid")
    tracks = body.get("tracks")
    if not isinstance(tracks, list) or not tracks or not all(t in MEDIA_TRACKS for t in tracks):
        raise TwilioProtocolError(f"start: start.tracks must be a non-empty list of {MEDIA_TRACKS}, "
                                  f"got {_short(tracks)}")
    params = body.get("customParameters", {})
    if params is None:
        params = {}
    if not isinstance(params, dict) or not all(isinstance(v, (str, int, float, bool)) for v in params.values()):
        raise TwilioProtocolError("start: start.customParameters must be an object of string values")
    return StartMessage(
        sequence_number=seq, stream_sid=stream_sid, account_sid=_str(body, "accountSid", event, "start."),
        call_sid=_str(body, "callSid", event, "start."), tracks=tuple(tracks),
        custom_parameters={str(k): str(v) for k, v in params.items()},
        media_format=_media_format(_obj(body, "mediaFormat", event, "start.")),
    )


def media_to_audio(payload: bytes) -> np.ndarray:
    """μ-law 8 kHz bytes → float32 16 kHz (stateless; see :class:`TwilioStreamState.audio` for streams)."""
    from speech.audio import SAMPLE_RATE, mulaw_to_float, resample

    return resample(mulaw_to_float(payload), TWILIO_SAMPLE_RATE, SAMPLE_RATE)


@dataclass(frozen=True)
class Arrival:
    """How one message fits the sequence so far.

    Attributes:
        status: ``ok``, ``duplicate`` (sequence number seen before), ``out_of_order`` (older than
            the newest seen, not seen before) or ``gap`` (newer, with messages missing before it).
        missing: Messages lost before this one (``gap`` only).
        use: Whether the message should be processed (duplicates and late frames are dropped,
            because a live call's audio is append-only).
    """

    status: str
    missing: int = 0
    use: bool = True


class TwilioStreamState:
    """Follows one Twilio stream: order checks, sequence accounting, metadata and audio.

    Usage: for each text frame, ``msg = parse_message(frame)``, ``arrival = state.accept(msg)``,
    and when ``arrival.use`` and ``msg`` is inbound media, ``call.insert(state.audio(msg))``.
    """

    def __init__(self) -> None:
        self.connected = False
        self.start: StartMessage | None = None
        self.stopped = False
        self.last_sequence = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.missing = 0
        self.media_frames = 0
        self.dtmf_digits: list[str] = []
        self._seen: deque[int] = deque(maxlen=_SEEN_WINDOW)
        self._seen_set: set[int] = set()
        self._resamplers: dict[str, Any] = {}  # track -> speech.audio.StreamResampler

    @property
    def call_id(self) -> str:
        """The Twilio ``callSid`` (after start)."""
        if self.start is None:
            raise TwilioProtocolError("no start message yet: the call id is unknown")
        return self.start.call_sid

    @property
    def metadata(self) -> dict[str, str]:
        """Call metadata for the policy: ``customParameters`` plus ``call_sid``/``stream_sid``/``account_sid``."""
        if self.start is None:
            raise TwilioProtocolError("no start message yet: the call metadata is unknown")
        out = dict(self.start.custom_parameters)
        out.setdefault("call_sid", self.start.call_sid)
        out.setdefault("stream_sid", self.start.stream_sid)
        out.setdefault("account_sid", self.start.account_sid)
        return out

    def accept(self, message: TwilioMessage) -> Arrival:
        """Check ``message`` against the stream so far and record it.

        Returns:
            Where it falls in the sequence (see :class:`Arrival`).

        Raises:
            TwilioProtocolError: a second start, media/stop before start, another stream's id,
                or any message after stop.
        """
        if self.stopped:
            raise TwilioProtocolError(f"{message.event} after stop: the stream has ended")
        if isinstance(message, ConnectedMessage):
            if self.connected or self.start is not None:
                raise TwilioProtocolError("connected received twice or after start")
            self.connected = True
            return Arrival("ok")
        if isinstance(message, StartMessage):
            if self.start is not None:
                raise TwilioProtocolError(f"second start message (stream {message.stream_sid})")
            self.start = message
        elif self.start is None:
            raise TwilioProtocolError(f"{message.event} before start")
        elif message.stream_sid != self.start.stream_sid:
            raise TwilioProtocolError(f"{message.event} for stream {message.stream_sid}, but this connection "
                                      f"carries {self.start.stream_sid}")
        arrival = self._sequence(message.sequence_number)
        if arrival.status != "ok":
            logger.warning("twilio stream %s: %s message %d (%s, %d missing)", self.start.stream_sid, message.event,
                           message.sequence_number, arrival.status, arrival.missing)
        if not arrival.use:
            return arrival
        if isinstance(message, StopMessage):
            self.stopped = True
        elif isinstance(message, MediaMessage):
            self.media_frames += 1
        elif isinstance(message, DtmfMessage):
            self.dtmf_digits.append(message.digit)
        return arrival

    @property
    def two_channel(self) -> bool:
        """The stream carries both tracks (``<Stream track="both_tracks">``): caller and agent."""
        return self.start is not None and set(self.start.tracks) == set(MEDIA_TRACKS)

    def audio(self, message: MediaMessage) -> np.ndarray:
        """Media → float32 16 kHz samples of its track (outbound: empty unless :attr:`two_channel`).

        One resampler per track is kept for the whole stream so 20 ms frames join without clicks.
        """
        if message.track != "inbound" and not self.two_channel:
            return np.zeros(0, dtype=np.float32)
        from speech.audio import SAMPLE_RATE, StreamResampler, mulaw_to_float

        resampler = self._resamplers.get(message.track)
        if resampler is None:
            resampler = self._resamplers[message.track] = StreamResampler(TWILIO_SAMPLE_RATE, SAMPLE_RATE)
        return resampler.push(mulaw_to_float(message.payload))

    def flush_audio(self, track: str = "inbound") -> np.ndarray:
        """A track's resampler's last samples at the end of the stream."""
        resampler = self._resamplers.get(track)
        if resampler is None:
            return np.zeros(0, dtype=np.float32)
        return resampler.flush()

    def summary(self) -> dict[str, Any]:
        """Counters for logs and the final event."""
        return {"media_frames": self.media_frames, "duplicates": self.duplicates, "out_of_order": self.out_of_order,
                "missing": self.missing, "dtmf": "".join(self.dtmf_digits)}

    def _sequence(self, seq: int) -> Arrival:
        if seq in self._seen_set:
            self.duplicates += 1
            return Arrival("duplicate", use=False)
        self._remember(seq)
        if seq < self.last_sequence:
            self.out_of_order += 1
            return Arrival("out_of_order", use=False)
        missing = seq - self.last_sequence - 1 if self.last_sequence else max(0, seq - 1)
        self.last_sequence = seq
        if missing > 0:
            self.missing += missing
            return Arrival("gap", missing=missing)
        return Arrival("ok")

    def _remember(self, seq: int) -> None:
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(seq)
        self._seen_set.add(seq)


# -- field helpers: each raises with the event and the dotted field name ---------------------


def _short(value: object) -> str:
    """``repr(value)`` cut to :data:`_MAX_QUOTE_CHARS`: an error quotes what was sent, never all of it."""
    text = repr(value) if not isinstance(value, BaseException) else str(value)
    return text if len(text) <= _MAX_QUOTE_CHARS else text[:_MAX_QUOTE_CHARS] + f"… ({len(text)} characters)"


def _str(obj: Mapping[str, Any], key: str, event: str, prefix: str = "") -> str:
    value = obj.get(key)
    if value is None:
        raise TwilioProtocolError(f"{event}: missing field {prefix}{key}")
    if not isinstance(value, str) or not value:
        raise TwilioProtocolError(f"{event}: {prefix}{key} must be a non-empty string, got {_short(value)}")
    return value


def _obj(obj: Mapping[str, Any], key: str, event: str, prefix: str = "") -> Mapping[str, Any]:
    value = obj.get(key)
    if value is None:
        raise TwilioProtocolError(f"{event}: missing field {prefix}{key}")
    if not isinstance(value, dict):
        raise TwilioProtocolError(f"{event}: {prefix}{key} must be an object, got {type(value).__name__}")
    return value


def _int_str(obj: Mapping[str, Any], key: str, event: str, prefix: str = "") -> int:
    """Twilio sends counters as decimal strings ("3"); accept ints too."""
    value = obj.get(key)
    if value is None:
        raise TwilioProtocolError(f"{event}: missing field {prefix}{key}")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10 ** _MAX_COUNTER_DIGITS:
        return value
    # At most 18 digits: a counter never needs more, and int() of a 5000-digit string raises.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= _MAX_COUNTER_DIGITS:
        return int(value)
    raise TwilioProtocolError(f"{event}: {prefix}{key} must be a non-negative integer string, got {_short(value)}")


def _seq(data: Mapping[str, Any], event: str) -> int:
    seq = _int_str(data, "sequenceNumber", event)
    if seq < 1:
        raise TwilioProtocolError(f"{event}: sequenceNumber must be >= 1, got {seq}")
    return seq


def _payload(body: Mapping[str, Any], event: str) -> bytes:
    value = body.get("payload")
    if value is None:
        raise TwilioProtocolError(f"{event}: missing field media.payload")
    if not isinstance(value, str):
        raise TwilioProtocolError(f"{event}: media.payload must be a base64 string, got {type(value).__name__}")
    if len(value) > MAX_PAYLOAD_BYTES * 4 // 3 + 4:
        raise TwilioProtocolError(f"{event}: media.payload is {len(value)} characters, more than a Twilio frame")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise TwilioProtocolError(f"{event}: media.payload is not valid base64: {e}") from None


def _media_format(fmt: Mapping[str, Any]) -> MediaFormat:
    encoding = fmt.get("encoding")
    rate = fmt.get("sampleRate")
    channels = fmt.get("channels")
    if encoding != MULAW_ENCODING or type(rate) is not int or rate != TWILIO_SAMPLE_RATE \
            or type(channels) is not int or channels != 1:
        raise TwilioProtocolError(
            f"start: unsupported start.mediaFormat {_short(dict(fmt))}: expected encoding {MULAW_ENCODING!r}, "
            f"sampleRate {TWILIO_SAMPLE_RATE}, channels 1")
    return MediaFormat(encoding=encoding, sample_rate=rate, channels=channels)


__all__ = [
    "Arrival", "ConnectedMessage", "DtmfMessage", "MarkMessage", "MediaFormat", "MediaMessage", "StartMessage",
    "StopMessage", "TwilioMessage", "TwilioProtocolError", "TwilioStreamState", "media_to_audio", "parse_message",
]
