"""Audio in, float32 mono 16 kHz out: the one input format the ASR takes.

Containers (wav, flac, mp3, ogg, … at any rate and channel count) are decoded by PyAV, the FFmpeg
binding faster-whisper itself uses, so no container is parsed by hand here. Telephony audio often
arrives headerless: raw G.711 μ-law (Twilio, SIP recordings, ``sox -t ul``) or raw little-endian
PCM16; those are decoded with numpy and resampled through the same FFmpeg resampler.

Live serving imports this module, so it stays light: numpy and PyAV only, imported lazily where
the import is costly.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from callintent.errors import UserError

if TYPE_CHECKING:
    import av

logger = logging.getLogger(__name__)

#: The rate every decoded array has (what Whisper was trained on).
SAMPLE_RATE = 16000

#: Headerless encodings :func:`decode_audio` accepts, with the aliases callers commonly send.
RAW_ENCODINGS: dict[str, str] = {
    "mulaw": "mulaw", "ulaw": "mulaw", "u-law": "mulaw", "pcmu": "mulaw", "audio/x-mulaw": "mulaw",
    "pcm16": "pcm16", "s16le": "pcm16", "linear16": "pcm16", "pcm_s16le": "pcm16",
}

#: File extensions that mean raw 8 kHz μ-law (sox's ``-t ul`` and common telephony dumps).
MULAW_EXTENSIONS = frozenset({".ul", ".mulaw", ".ulaw"})

#: Rate assumed for raw audio when none is declared: G.711 telephony is 8 kHz.
DEFAULT_RAW_RATE = 8000

_BYTES_PER_SAMPLE = {"mulaw": 1, "pcm16": 2}
_MAX_RATE = 384_000
#: Lowest rate a container may declare. No speech is recorded below it, and resampling expands a
#: frame by 16000 / rate: a 220 kB FLAC declaring 1 Hz with 32768-sample frames would become
#: 2 GB of float32 before any length limit could look at it.
MIN_CONTAINER_RATE = 1000

AudioSource = str | Path | bytes | bytearray | memoryview | BinaryIO


class AudioError(UserError):
    """Audio that cannot be decoded (unreadable, corrupt, empty, unsupported); names the source."""


def decode_audio(
    source: AudioSource,
    *,
    encoding: str | None = None,
    sample_rate: int | None = None,
    max_seconds: float | None = None,
    keep_channels: bool = False,
) -> np.ndarray:
    """Decode audio to float32 mono at :data:`SAMPLE_RATE`.

    Args:
        source: A file path, the file's bytes, or a binary file object.
        encoding: ``None`` for a container (the header says what it is), or ``"mulaw"`` /
            ``"pcm16"`` (aliases in :data:`RAW_ENCODINGS`) for raw headerless audio. A path ending
            in ``.ul``, ``.mulaw`` or ``.ulaw`` implies ``"mulaw"``.
        sample_rate: Rate of raw audio (default 8000). Ignored for containers, whose header wins.
        max_seconds: Decode at most this many seconds from the start and stop there (the rest of
            the input is never decoded, which bounds the work a huge upload can cause). The result
            is then at most ``round(max_seconds * 16000)`` samples long.
        keep_channels: Return every channel apart instead of their average (a two-channel call
            recording: one speaker per channel). Raw audio has one channel.

    Returns:
        A contiguous float32 array in [-1, 1] (containers with float samples may exceed it
        slightly): 1-D, averaged over channels; with ``keep_channels`` 2-D ``[channels, samples]``.

    Raises:
        AudioError: missing, unreadable, empty, corrupt or unsupported audio (including a
            container rate outside :data:`MIN_CONTAINER_RATE`..384000 Hz); the message names
            the source and the reason.
        ValueError: ``max_seconds`` is not positive.
    """
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds!r}")
    name = _describe(source)
    if encoding is None and isinstance(source, (str, Path)) and Path(source).suffix.lower() in MULAW_EXTENSIONS:
        encoding = "mulaw"
    if isinstance(source, (str, Path)):
        _check_file(Path(source))
    if encoding is not None:
        kind = RAW_ENCODINGS.get(encoding.lower())
        if kind is None:
            raise AudioError(f"{name}: unknown raw encoding {encoding!r} (use 'mulaw' or 'pcm16')")
        audio = _decode_raw(source, name, kind, sample_rate or DEFAULT_RAW_RATE, max_seconds)
        if keep_channels:
            audio = audio.reshape(1, -1)
    else:
        audio = _decode_container(source, name, max_seconds, keep_channels=keep_channels)
    if audio.size == 0:
        raise AudioError(f"{name}: no audio samples decoded")
    logger.debug("decoded %s: %.2f s", name, audio.shape[-1] / SAMPLE_RATE)
    return audio


def mulaw_to_float(data: bytes | bytearray | memoryview) -> np.ndarray:
    """Expand G.711 μ-law bytes to float32 samples in [-1, 1] (same rate, no resampling).

    ``0xFF`` and ``0x7F`` are silence; ``0x00`` is the most negative value, -32124/32768.
    """
    return _mulaw_table()[np.frombuffer(data, dtype=np.uint8)]


def pcm16_to_float(data: bytes | bytearray | memoryview) -> np.ndarray:
    """Convert signed 16-bit little-endian PCM to float32 in [-1, 1) (same rate).

    Raises:
        AudioError: an odd number of bytes (a sample was cut in half).
    """
    if len(data) % 2:
        raise AudioError(f"pcm16 audio must have an even number of bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / np.float32(32768.0)


def resample(audio: np.ndarray, from_rate: int, to_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a whole mono float array (FFmpeg's resampler; no scipy).

    Args:
        audio: 1-D samples.
        from_rate: Rate of ``audio`` in Hz.
        to_rate: Wanted rate in Hz.

    Returns:
        float32 samples at ``to_rate``; about ``len(audio) * to_rate / from_rate`` long.
    """
    stream = StreamResampler(from_rate, to_rate)
    # Bounded frames keep each FFmpeg frame small whatever the input length.
    step = 1 << 16
    parts = [stream.push(audio[i:i + step]) for i in range(0, len(audio), step)]
    parts.append(stream.flush())
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


class StreamResampler:
    """Resample a mono stream chunk by chunk with no clicks at chunk boundaries.

    A live call arrives as 20 ms frames; resampling each frame on its own would restart the
    filter at every boundary. This object keeps the filter state between :meth:`push` calls, so
    the concatenated output equals resampling the whole stream at once. Output lags input by the
    filter delay (about 2 ms for 8→16 kHz) until :meth:`flush`.

    Args:
        from_rate: Input rate in Hz.
        to_rate: Output rate in Hz.
    """

    def __init__(self, from_rate: int, to_rate: int = SAMPLE_RATE) -> None:
        for field_name, rate in (("from_rate", from_rate), ("to_rate", to_rate)):
            if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or not 0 < rate <= _MAX_RATE:
                raise ValueError(f"{field_name} must be an integer in 1..{_MAX_RATE} Hz, got {rate!r}")
        self.from_rate = int(from_rate)
        self.to_rate = int(to_rate)
        self._resampler = None
        if self.from_rate != self.to_rate:
            from av.audio.resampler import AudioResampler

            self._resampler = AudioResampler(format="flt", layout="mono", rate=self.to_rate)

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Feed the next samples; returns the resampled samples that are ready (maybe none)."""
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim != 1:
            raise ValueError(f"audio must be 1-D (mono), got shape {chunk.shape}")
        if self._resampler is None:
            return chunk.copy()
        if chunk.size == 0:
            return np.zeros(0, np.float32)
        import av

        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk).reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = self.from_rate
        return self._collect(self._resampler.resample(frame))

    def flush(self) -> np.ndarray:
        """Drain the filter at the end of the stream; the object must not be pushed to afterwards."""
        if self._resampler is None:
            return np.zeros(0, np.float32)
        return self._collect(self._resampler.resample(None))

    @staticmethod
    def _collect(frames: list[av.AudioFrame]) -> np.ndarray:
        if not frames:
            return np.zeros(0, np.float32)
        return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32, copy=False)


def loudest_dbfs(audio: np.ndarray, window_seconds: float = 0.05) -> float:
    """RMS level, in dB relative to full scale, of the loudest window of 16 kHz audio.

    The loudest window rather than the whole-file RMS, so one short utterance in a long quiet
    recording still counts as sound. ``-inf`` for empty or all-zero audio.
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if audio.size == 0:
        return -math.inf
    window = min(audio.size, max(1, int(window_seconds * SAMPLE_RATE)))
    full = audio.size // window * window
    # Whole windows, plus one aligned to the end for the remainder: no zero padding, so a 20 ms
    # streaming chunk is measured at its true level.
    power = max(np.square(audio[:full].reshape(-1, window), dtype=np.float64).mean(axis=1).max(),
                np.square(audio[-window:], dtype=np.float64).mean())
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def is_silent(audio: np.ndarray, threshold_dbfs: float = -50.0) -> bool:
    """True when no 50 ms window of ``audio`` reaches ``threshold_dbfs`` (see :func:`loudest_dbfs`)."""
    return loudest_dbfs(audio) < threshold_dbfs


# --------------------------------------------------------------------------------------------------


def _describe(source: AudioSource) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes of audio>"
    return str(getattr(source, "name", None) or "<audio stream>")


def _check_file(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise AudioError(f"{path}: no such audio file") from None
    except OSError as e:
        raise AudioError(f"{path}: cannot read audio file: {e.strerror or e}") from None
    if not path.is_file():
        raise AudioError(f"{path}: not a file")
    if size == 0:
        raise AudioError(f"{path}: empty audio file (0 bytes)")


def _decode_raw(source: AudioSource, name: str, kind: str, rate: int, max_seconds: float | None) -> np.ndarray:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or not 0 < rate <= _MAX_RATE:
        raise AudioError(f"{name}: sample_rate must be an integer in 1..{_MAX_RATE} Hz, got {rate!r}")
    width = _BYTES_PER_SAMPLE[kind]
    limit = -1 if max_seconds is None else math.ceil(max_seconds * rate) * width
    try:
        if isinstance(source, (str, Path)):
            with open(source, "rb") as f:
                data = f.read(limit)
        elif isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source if limit < 0 else source[:limit])
        else:
            data = source.read(limit)
    except OSError as e:
        raise AudioError(f"{name}: cannot read audio: {e.strerror or e}") from None
    if not data:
        raise AudioError(f"{name}: empty audio (0 bytes)")
    if kind == "mulaw":
        samples = mulaw_to_float(data)
    else:
        if len(data) % 2:
            raise AudioError(f"{name}: raw pcm16 audio has an odd number of bytes ({len(data)}); "
                             "is it really 16-bit PCM?")
        samples = pcm16_to_float(data)
    audio = resample(samples, int(rate), SAMPLE_RATE)
    return _trim(audio, max_seconds)


def _decode_container(source: AudioSource, name: str, max_seconds: float | None, *,
                      keep_channels: bool = False) -> np.ndarray:
    import av
    from av.audio.resampler import AudioResampler

    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise AudioError(f"{name}: empty audio (0 bytes)")
        source = io.BytesIO(bytes(source))
    max_samples = None if max_seconds is None else round(max_seconds * SAMPLE_RATE)
    parts: list[np.ndarray] = []
    total = 0

    def take(frame: av.AudioFrame) -> np.ndarray:
        samples = frame.to_ndarray()  # [channels, n] (planar)
        return samples.astype(np.float32, copy=False) if keep_channels else samples.mean(axis=0, dtype=np.float32)

    try:
        with av.open(str(source) if isinstance(source, Path) else source, mode="r",
                     metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioError(f"{name}: no audio stream in the file")
            # Keep the source's channel layout through the resampler and average the channels
            # ourselves: FFmpeg's stereo->mono downmix adds the channels at -3 dB each, which
            # makes identical channels 1.4x louder and can clip.
            resampler = AudioResampler(format="fltp", rate=SAMPLE_RATE)
            for frame in _valid_frames(container.decode(audio=0)):
                if not MIN_CONTAINER_RATE <= frame.sample_rate <= _MAX_RATE:  # checked per frame: it may change
                    raise AudioError(f"{name}: sample rate {frame.sample_rate} Hz is outside "
                                     f"{MIN_CONTAINER_RATE}..{_MAX_RATE} Hz")
                frame.pts = None  # timestamps of broken files confuse the resampler; order is enough
                for out in resampler.resample(frame):
                    parts.append(take(out))
                    total += parts[-1].shape[-1]
                if max_samples is not None and total >= max_samples:
                    break  # the rest is never decoded: bounded work for huge inputs
            else:
                parts.extend(take(f) for f in resampler.resample(None))
    except AudioError:
        raise
    except av.FFmpegError as e:
        raise AudioError(f"{name}: cannot decode audio: {e.strerror or e}") from None
    except ValueError as e:  # e.g. the channel layout changed mid-stream
        raise AudioError(f"{name}: cannot decode audio: {e}") from None
    if keep_channels:
        audio = np.concatenate(parts, axis=1) if parts else np.zeros((1, 0), np.float32)
    else:
        audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return _trim(audio, max_seconds)


def _valid_frames(frames: Iterator[av.AudioFrame]) -> Iterator[av.AudioFrame]:
    """Skip frames FFmpeg flags as invalid (a damaged packet mid-file), as faster-whisper does."""
    import av

    iterator = iter(frames)
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            continue


def _trim(audio: np.ndarray, max_seconds: float | None) -> np.ndarray:
    if max_seconds is not None:
        audio = audio[..., :round(max_seconds * SAMPLE_RATE)]
    return np.ascontiguousarray(audio, dtype=np.float32)


@lru_cache(maxsize=1)
def _mulaw_table() -> np.ndarray:
    """The 256-entry G.711 μ-law expansion table (ITU-T G.711), as float32 / 32768."""
    code = ~np.arange(256, dtype=np.int32) & 0xFF  # μ-law bytes are stored bit-inverted
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84  # 0x84: the encoder's bias
    table = np.where(code & 0x80, -magnitude, magnitude).astype(np.float32) / np.float32(32768.0)
    table.flags.writeable = False
    return table
