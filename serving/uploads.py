"""``POST /score_audio``: the upload parsed in memory, stored when asked, decoded and transcribed.

Starlette's own form parser spools uploads over 1 MiB to a temporary file; audio must never
touch the disk unless ``store_audio`` is on, so the (already size-limited) body is parsed here.
What comes out (:class:`HeardUpload`) is scored by the same path as ``POST /score``.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request

from callintent.errors import UserError
from serving.config import ServeConfig
from serving.limits import LimitExceeded
from serving.schemas import InvalidRequest, new_call_id, plausible_time, request_metadata, valid_call_id
from speech.audio import RAW_ENCODINGS, SAMPLE_RATE, decode_audio
from speech.speakers import SPEAKERS, interleave, merge_speakers
from speech.transcript import OPENING_SECONDS, OpeningTranscript

if TYPE_CHECKING:
    import numpy as np

#: Rates ``/score_audio`` accepts for raw (headerless) audio, in Hz.
MIN_UPLOAD_RATE, MAX_UPLOAD_RATE = 4000, 192000

#: The request body the route documents (FastAPI cannot infer it: the body is parsed here).
AUDIO_REQUEST_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "wav/flac/mp3/ogg…, or raw audio"},
        "encoding": {"type": "string", "enum": ["mulaw", "pcm16"], "description": "raw (headerless) audio only"},
        "sample_rate": {"type": "integer", "description": "rate of raw audio (default 8000)"},
        "call_id": {"type": "string"},
        "metadata": {"type": "string", "description": "JSON object: source, campaign, industry, …"},
        "speakers": {"type": "string", "description": "a two-channel recording: the speaker of each channel "
                                                      "in order, caller,agent or agent,caller"},
        "kind": {"type": "string", "enum": ["call", "voicemail"],
                 "description": "voicemail: the recording is a voicemail; the call is logged as missed, with "
                                "its callback terms (needs the call log)"},
        "caller": {"type": "string", "description": "voicemail: the caller's number (to call back)"},
        "missed_at": {"type": "string", "format": "date-time",
                      "description": "voicemail: when the call was missed (ISO 8601, no zone = UTC; default now)"},
        "owner": {"type": "string", "description": "voicemail: who owns the callback"},
        "queue": {"type": "string", "description": "voicemail: queue (default: the policy's for the intent)"}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"},
                                 "description": "the audio as the body; fields as query parameters"}}}}


@dataclass(frozen=True)
class VoicemailFields:
    """What a ``kind=voicemail`` upload says about the missed call. Attributes: caller, missed_at
    (naive UTC; None = when received), owner, queue."""

    caller: str = ""
    missed_at: datetime.datetime | None = None
    owner: str = ""
    queue: str = ""


@dataclass(frozen=True)
class AudioUpload:
    """What ``/score_audio`` received. Attributes: data, encoding (raw audio only), sample_rate,
    call_id, metadata, filename, speakers (a two-channel recording's speakers in channel order),
    voicemail (the missed call's fields when ``kind=voicemail``, else None)."""

    data: bytes
    encoding: str | None
    sample_rate: int | None
    call_id: str
    metadata: dict[str, str]
    filename: str
    speakers: tuple[str, ...] = ()
    voicemail: VoicemailFields | None = None


@dataclass(frozen=True)
class HeardUpload:
    """An upload transcribed.

    Attributes:
        transcript: The opening's timed words (both speakers of a two-channel recording).
        text: What the model scores (the words; a two-channel recording: both speakers tagged
            for a model trained with speaker tags, else the caller's words).
        timings_ms: ``decode`` and ``asr`` milliseconds.
    """

    transcript: OpeningTranscript
    text: str
    timings_ms: Mapping[str, float] = field(default_factory=dict)


async def read_audio_upload(request: Request, config: ServeConfig) -> AudioUpload:
    """Parse a ``/score_audio`` request in memory (multipart form, or raw body + query fields).

    Raises:
        InvalidRequest: no file, or a bad ``encoding`` / ``sample_rate`` / ``call_id`` /
            ``metadata`` / ``speakers``.
    """
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        fields, files = _parse_multipart(body, content_type)
        if "file" not in files:
            raise InvalidRequest("file: an audio file is required (multipart field 'file')", ["file"])
        filename, data = files["file"]
    else:
        fields = dict(request.query_params)
        data = body
        filename = fields.get("filename", "")
    if not data:
        raise InvalidRequest("file: the audio is empty", ["file"])
    encoding = _encoding(fields)
    sample_rate = _sample_rate(fields)
    speakers = _speakers(fields, encoding)
    call_id = fields.get("call_id") or new_call_id()
    if not valid_call_id(call_id):
        raise InvalidRequest("call_id: letters, digits and . _ : - only, at most 128 characters", ["call_id"])
    return AudioUpload(data=data, encoding=encoding, sample_rate=sample_rate, call_id=call_id,
                       metadata=request_metadata(_metadata_field(fields), config.limits.max_metadata_items),
                       filename=filename, speakers=speakers, voicemail=_voicemail(fields))


#: Longest ``caller`` / ``owner`` / ``queue`` of a voicemail upload (the call log's column sizes).
_VOICEMAIL_LIMITS = {"caller": 64, "owner": 256, "queue": 256}


def _voicemail(fields: Mapping[str, str]) -> VoicemailFields | None:
    kind = fields.get("kind") or "call"
    given = [name for name in (*_VOICEMAIL_LIMITS, "missed_at") if fields.get(name)]
    if kind == "call":
        if given:
            raise InvalidRequest(f"{given[0]}: only for a voicemail (kind=voicemail)", [given[0]])
        return None
    if kind != "voicemail":
        raise InvalidRequest(f"kind: must be 'call' or 'voicemail', got {kind[:32]!r}", ["kind"])
    for name, limit in _VOICEMAIL_LIMITS.items():
        if len(fields.get(name, "")) > limit:
            raise InvalidRequest(f"{name}: at most {limit} characters", [name])
    missed_at = None
    if fields.get("missed_at"):
        try:
            missed_at = plausible_time(datetime.datetime.fromisoformat(fields["missed_at"].replace("Z", "+00:00")),
                                       "missed_at")
        except ValueError as e:
            raise InvalidRequest(f"missed_at: expected an ISO 8601 time such as 2026-11-27T15:04:05Z ({e}), got "
                                 f"{fields['missed_at'][:40]!r}", ["missed_at"]) from None
    return VoicemailFields(caller=fields.get("caller", ""), missed_at=missed_at, owner=fields.get("owner", ""),
                           queue=fields.get("queue", ""))


def _encoding(fields: Mapping[str, str]) -> str | None:
    encoding = fields.get("encoding") or None
    if encoding is not None and encoding.lower() not in RAW_ENCODINGS:
        raise InvalidRequest(f"encoding: must be 'mulaw' or 'pcm16' for raw audio, got {encoding!r} "
                             "(leave it out for wav/flac/mp3/ogg)", ["encoding"])
    return encoding


def _sample_rate(fields: Mapping[str, str]) -> int | None:
    if not fields.get("sample_rate"):
        return None
    try:
        rate = int(fields["sample_rate"])
    except ValueError:
        rate = -1
    if not MIN_UPLOAD_RATE <= rate <= MAX_UPLOAD_RATE:
        raise InvalidRequest(f"sample_rate: must be an integer rate in Hz, got {fields['sample_rate']!r}",
                             ["sample_rate"])
    return rate


def _speakers(fields: Mapping[str, str], encoding: str | None) -> tuple[str, ...]:
    if not fields.get("speakers"):
        return ()
    speakers = tuple(part.strip() for part in fields["speakers"].split(","))
    if sorted(speakers) != sorted(SPEAKERS):
        raise InvalidRequest(f"speakers: the two channels' speakers in order, e.g. caller,agent, got "
                             f"{fields['speakers'][:64]!r}", ["speakers"])
    if encoding is not None:
        raise InvalidRequest("speakers: raw audio has one channel; send a two-channel file (wav, flac…)",
                             ["speakers"])
    return speakers


def _metadata_field(fields: Mapping[str, str]) -> Mapping[str, Any]:
    if not fields.get("metadata"):
        return {}
    try:
        metadata = json.loads(fields["metadata"])
    except json.JSONDecodeError as e:
        raise InvalidRequest(f"metadata: not valid JSON: {e}", ["metadata"]) from None
    if not isinstance(metadata, dict):
        raise InvalidRequest("metadata: must be a JSON object", ["metadata"])
    return metadata


def _parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import create_form_parser

    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}

    def on_field(field: Any) -> None:
        fields[(field.field_name or b"").decode("utf-8", "replace")] = (field.value or b"").decode("utf-8", "replace")

    def on_file(file: Any) -> None:
        handle = file.file_object
        handle.seek(0)
        files[(file.field_name or b"").decode("utf-8", "replace")] = (
            (file.file_name or b"").decode("utf-8", "replace"), handle.read())

    try:
        parser = create_form_parser({"Content-Type": content_type.encode("latin-1")}, on_field, on_file,
                                    config={"MAX_MEMORY_FILE_SIZE": float("inf")})
        parser.write(body)
        parser.finalize()
    except (FormParserError, ValueError) as e:
        raise UserError(f"malformed multipart/form-data body: {e}") from None
    return fields, files


async def hear_upload(upload: AudioUpload, *, config: ServeConfig, asr: Any, pool: Executor,
                      speaker_tags: bool) -> HeardUpload:
    """Store (when asked), decode and transcribe an upload's opening, off the event loop.

    Args:
        upload: The parsed upload.
        config: ``limits.max_audio_seconds``, ``store_audio``, ``audio_dir``.
        asr: The speech recognizer (``transcribe_timed``).
        pool: Where blocking work runs (the service's decode pool).
        speaker_tags: The model reads speaker-tagged text (a two-channel recording is scored tagged).

    Raises:
        LimitExceeded: the audio is longer than ``limits.max_audio_seconds`` (413).
        InvalidRequest: ``speakers`` given for audio that does not have two channels.
        AudioError: the audio cannot be decoded (422).
    """
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    limit = config.limits.max_audio_seconds
    if config.store_audio:
        await loop.run_in_executor(pool, _store_upload, config, upload)
    # Decode a little past the limit and no further: a huge upload costs at most that much work.
    audio = await loop.run_in_executor(pool, lambda: decode_audio(
        upload.data, encoding=upload.encoding, sample_rate=upload.sample_rate, max_seconds=limit + 0.5,
        keep_channels=bool(upload.speakers)))
    if audio.shape[-1] > round(limit * SAMPLE_RATE):
        raise LimitExceeded("audio_too_long", f"audio is longer than {limit:g} s, the limit "
                                              f"(limits.max_audio_seconds)")
    decoded = time.perf_counter()
    if upload.speakers:
        if audio.shape[0] != 2:
            raise InvalidRequest(f"speakers: the audio has {audio.shape[0]} channel(s); speakers is for a "
                                 "two-channel recording, one speaker per channel", ["speakers"])
        transcript, asr_seconds, text = await loop.run_in_executor(
            pool, lambda: _transcribe_channels(asr, audio, upload.speakers, speaker_tags))
    else:
        transcript, asr_seconds = await loop.run_in_executor(
            pool, lambda: asr.transcribe_timed(audio, cut_seconds=OPENING_SECONDS))
        text = transcript.text
    return HeardUpload(transcript, text, {"decode": round((decoded - started) * 1000.0, 2),
                                          "asr": round(asr_seconds * 1000, 2)})


def _transcribe_channels(asr: Any, audio: np.ndarray, speakers: Sequence[str], speaker_tags: bool
                         ) -> tuple[OpeningTranscript, float, str]:
    """A two-channel recording: each channel transcribed on its own, the words merged with their
    speakers, and the text the model scores (both speakers tagged, or the caller's words; as a
    two-channel live call)."""
    heard, seconds = {}, 0.0
    for speaker, channel in zip(speakers, audio):
        heard[speaker], elapsed = asr.transcribe_timed(channel.copy(), cut_seconds=OPENING_SECONDS)
        seconds += elapsed
    transcript = merge_speakers(heard)
    text = interleave({s: t.words for s, t in heard.items()}).text if speaker_tags else heard["caller"].text
    return transcript, seconds, text


def _store_upload(config: ServeConfig, upload: AudioUpload) -> None:
    directory = Path(config.audio_dir)
    directory.mkdir(parents=True, exist_ok=True)
    suffix = Path(upload.filename).suffix if upload.filename else f".{upload.encoding or 'audio'}"
    (directory / f"{upload.call_id}{suffix}").write_bytes(upload.data)


__all__ = ["AUDIO_REQUEST_BODY", "AudioUpload", "HeardUpload", "VoicemailFields", "hear_upload", "read_audio_upload"]
