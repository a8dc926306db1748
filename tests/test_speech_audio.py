"""speech.audio: container and raw telephony decoding to 16 kHz mono, resampling, limits, silence."""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from callintent.errors import UserError
from speech.audio import (
    SAMPLE_RATE,
    AudioError,
    StreamResampler,
    decode_audio,
    is_silent,
    loudest_dbfs,
    mulaw_to_float,
    pcm16_to_float,
    resample,
)
from conftest import SHARED_AUDIO, require_tool

TONE_HZ = 440.0
TONE_AMPLITUDE = 0.3


def tone(seconds: float, rate: int, *, hz: float = TONE_HZ, amplitude: float = TONE_AMPLITUDE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """PCM16 WAV with the stdlib (no codec library), ``samples`` shaped (n,) or (n, channels)."""
    samples = np.asarray(samples)
    samples = samples.reshape(len(samples), -1) if samples.ndim == 1 else samples
    pcm = np.round(np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def sox_supports(fmt: str) -> bool:
    if shutil.which("sox") is None:
        return False
    help_text = subprocess.run(["sox", "-h"], capture_output=True, text=True).stdout
    formats = help_text.split("AUDIO FILE FORMATS:")[-1].split("\n")[0].split()
    return fmt in formats


def pyav_encode(src_wav: Path, out: Path, codec: str) -> Path:
    """Encode with PyAV's bundled FFmpeg: the fallback where sox lacks mp3/ogg handlers."""
    import av

    with av.open(str(src_wav)) as inp, av.open(str(out), "w") as container:
        source = inp.streams.audio[0]
        layout = "mono" if source.channels == 1 else "stereo"
        rate = 48000 if codec == "libopus" else source.rate  # Opus only runs at 8/12/16/24/48 kHz
        stream = container.add_stream(codec, rate=rate, layout=layout)
        stream.codec_context.open()
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate, frame_size=stream.frame_size)
        frames = [f for frame in inp.decode(audio=0) for f in resampler.resample(frame)] + resampler.resample(None)
        for frame in [*frames, None]:
            for packet in stream.encode(frame):
                container.mux(packet)
    return out


def encode(src_wav: Path, fmt: str, *, encoder: str = "auto") -> Path:
    out = src_wav.with_name(f"{src_wav.stem}.{encoder}.{fmt}")
    if fmt == "wav":
        return src_wav
    if encoder == "sox" or (encoder == "auto" and sox_supports(fmt)):
        subprocess.run([require_tool("sox"), str(src_wav), str(out)], check=True)
        return out
    return pyav_encode(src_wav, out, {"mp3": "libmp3lame", "ogg": "libopus", "flac": "flac"}[fmt])


def dominant_hz(audio: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / rate)[spectrum.argmax()])


# -------------------------------------------------------------------------------------- containers


@pytest.mark.parametrize(
    ("fmt", "rate", "channels"),
    [("wav", 8000, 1), ("wav", 44100, 2), ("flac", 22050, 2), ("flac", 48000, 1),
     ("mp3", 44100, 2), ("mp3", 22050, 1), ("ogg", 48000, 2), ("ogg", 8000, 1)],
)
def test_containers_decode_to_16k_mono(tmp_path, fmt, rate, channels):
    seconds = 10.0  # long enough that mp3 encoder padding (< 100 ms) stays under the 1% bound
    samples = np.stack([tone(seconds, rate)] * channels, axis=1)
    path = encode(write_wav(tmp_path / f"tone_{rate}_{channels}.wav", samples, rate), fmt)

    audio = decode_audio(path)

    assert audio.dtype == np.float32 and audio.ndim == 1 and audio.flags.c_contiguous
    assert abs(len(audio) - seconds * SAMPLE_RATE) <= 0.01 * seconds * SAMPLE_RATE
    assert dominant_hz(audio) == pytest.approx(TONE_HZ, abs=2.0)  # the rate was honoured
    rms = float(np.sqrt(np.mean(audio**2)))
    assert rms == pytest.approx(TONE_AMPLITUDE / math.sqrt(2), rel=0.1)


@pytest.mark.parametrize(("fmt", "codec_rate"), [("mp3", 44100), ("ogg", 48000)])
def test_pyav_encoded_lossy_formats_decode(tmp_path, fmt, codec_rate):
    # Always exercise the PyAV-encoded variant too, whatever sox supports on this machine.
    src = write_wav(tmp_path / "tone.wav", np.stack([tone(5.0, codec_rate)] * 2, axis=1), codec_rate)
    audio = decode_audio(encode(src, fmt, encoder="pyav"))
    assert abs(len(audio) - 5.0 * SAMPLE_RATE) <= 0.01 * 5.0 * SAMPLE_RATE
    assert dominant_hz(audio) == pytest.approx(TONE_HZ, abs=2.0)


def test_stereo_is_the_mean_of_the_channels(tmp_path):
    left = tone(2.0, 16000)
    same = decode_audio(write_wav(tmp_path / "same.wav", np.stack([left, left], axis=1), 16000))
    one_side = decode_audio(write_wav(tmp_path / "left.wav", np.stack([left, np.zeros_like(left)], axis=1), 16000))
    mono = decode_audio(write_wav(tmp_path / "mono.wav", left, 16000))
    # Identical channels must not get louder (FFmpeg's own downmix would add them at -3 dB: x1.41).
    np.testing.assert_allclose(same, mono, atol=1e-4)
    np.testing.assert_allclose(one_side, mono / 2, atol=1e-4)


def test_channels_can_be_kept_apart(tmp_path):
    left = tone(2.0, 8000)
    path = write_wav(tmp_path / "call.wav", np.stack([left, np.zeros_like(left)], axis=1), 8000)
    both = decode_audio(path, keep_channels=True)
    assert both.shape == (2, 32000) and both.dtype == np.float32
    assert np.abs(both[1]).max() < 1e-4 and np.abs(both[0]).max() > 0.1  # the silent channel stays silent
    np.testing.assert_allclose(both.mean(axis=0), decode_audio(path), atol=1e-5)
    assert decode_audio(path, keep_channels=True, max_seconds=0.5).shape == (2, 8000)
    raw = decode_audio(b"\xff" * 800, encoding="mulaw", keep_channels=True)
    assert raw.shape == (1, 1600)


def test_real_files_decode_with_the_right_length():
    jfk = decode_audio(SHARED_AUDIO / "jfk.flac")  # 44.1 kHz stereo, 11.0 s
    osr = decode_audio(SHARED_AUDIO / "OSR_us_000_0034_8k.wav")  # 8 kHz mono, 35.5 s
    assert len(jfk) == pytest.approx(11.0 * SAMPLE_RATE, abs=16)
    assert len(osr) / SAMPLE_RATE == pytest.approx(35.55, abs=0.01)
    assert 0.05 < np.abs(jfk).max() <= 1.0 and 0.05 < np.abs(osr).max() <= 1.0


def test_bytes_and_file_objects_decode_like_paths():
    path = SHARED_AUDIO / "jfk.flac"
    from_path = decode_audio(path)
    np.testing.assert_array_equal(decode_audio(path.read_bytes()), from_path)
    with path.open("rb") as f:
        np.testing.assert_array_equal(decode_audio(f), from_path)


# -------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "content",
    [np.random.default_rng(0).bytes(5000), b"RIFF\x24\x00\x00\x00WAVEfmt ", b"this is not audio\n" * 50],
    ids=["random", "truncated-header", "text"],
)
def test_corrupt_audio_raises_audio_error_naming_the_file(tmp_path, content):
    path = tmp_path / "broken_call.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match="broken_call.wav") as info:
        decode_audio(path)
    assert isinstance(info.value, UserError)
    with pytest.raises(AudioError, match="bytes of audio"):
        decode_audio(content)


def test_empty_missing_and_directory_inputs(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty.wav: empty"):
        decode_audio(empty)
    with pytest.raises(AudioError, match=r"empty"):
        decode_audio(b"")
    with pytest.raises(AudioError, match=r"nope.flac: no such audio file"):
        decode_audio(tmp_path / "nope.flac")
    with pytest.raises(AudioError, match="not a file"):
        decode_audio(tmp_path)
    empty_ul = tmp_path / "empty.ul"
    empty_ul.write_bytes(b"")
    with pytest.raises(AudioError, match="empty.ul: empty"):
        decode_audio(empty_ul)


def test_a_wav_with_no_samples_is_an_error(tmp_path):
    path = write_wav(tmp_path / "zero_frames.wav", np.zeros((0, 1), np.float32), 8000)
    with pytest.raises(AudioError, match="zero_frames.wav"):
        decode_audio(path)


def test_bad_raw_parameters(tmp_path):
    with pytest.raises(AudioError, match="unknown raw encoding 'alaw"):
        decode_audio(b"\x00" * 100, encoding="alaw")
    with pytest.raises(AudioError, match="odd number of bytes"):
        decode_audio(b"\x00" * 101, encoding="pcm16")
    with pytest.raises(AudioError, match="sample_rate"):
        decode_audio(b"\x00" * 100, encoding="mulaw", sample_rate=-8000)
    with pytest.raises(ValueError, match="max_seconds"):
        decode_audio(b"\x00" * 100, encoding="mulaw", max_seconds=0)


# -------------------------------------------------------------------------------------- raw μ-law / PCM16


def test_mulaw_known_values():
    values = mulaw_to_float(bytes([0xFF, 0x7F, 0x00, 0x80, 0xFE, 0x7E, 0xEF, 0x0F])) * 32768
    # G.711: 0xFF/0x7F are +/-0, 0x00/0x80 the extremes, 0xFE/0x7E the smallest steps (+/-8).
    np.testing.assert_array_equal(values, [0, 0, -32124, 32124, 8, -8, 132, -16764])
    assert mulaw_to_float(b"").shape == (0,)


def test_mulaw_table_matches_sox(tmp_path):
    """All 256 codes against sox's G.711 decoder (an independent implementation)."""
    codes = tmp_path / "codes.ul"
    codes.write_bytes(bytes(range(256)))
    pcm = tmp_path / "codes.s16"
    subprocess.run([require_tool("sox"), "-t", "ul", "-r", "8000", "-c", "1", str(codes),
                    "-t", "s16", "-e", "signed-integer", "-b", "16", "-L", str(pcm)], check=True)
    expected = np.frombuffer(pcm.read_bytes(), "<i2").astype(np.float32) / 32768
    np.testing.assert_array_equal(mulaw_to_float(bytes(range(256))), expected)


def test_pcm16_to_float():
    data = np.array([0, 1, -1, 32767, -32768], "<i2").tobytes()
    np.testing.assert_array_equal(pcm16_to_float(data) * 32768, [0, 1, -1, 32767, -32768])
    with pytest.raises(AudioError, match="even number of bytes"):
        pcm16_to_float(b"\x00\x01\x02")


def test_raw_mulaw_file_by_extension_bytes_and_encoding(tmp_path):
    """A headerless .ul from sox decodes like the 8 kHz wav it came from (within μ-law's error)."""
    src = write_wav(tmp_path / "tone8k.wav", tone(3.0, 8000), 8000)
    ul = tmp_path / "call.ul"
    subprocess.run([require_tool("sox"), str(src), "-t", "ul", str(ul)], check=True)
    reference = decode_audio(src)

    by_extension = decode_audio(ul)
    assert len(by_extension) == 3 * SAMPLE_RATE
    assert np.abs(by_extension - reference).max() < 0.02  # μ-law step near 0.3 is ~1/100 of full scale
    np.testing.assert_array_equal(decode_audio(ul.read_bytes(), encoding="mulaw"), by_extension)
    np.testing.assert_array_equal(decode_audio(io.BytesIO(ul.read_bytes()), encoding="u-law", sample_rate=8000),
                                  by_extension)
    assert decode_audio(ul, encoding="mulaw", sample_rate=16000).size == 3 * SAMPLE_RATE // 2


def test_raw_pcm16_at_any_rate(tmp_path):
    rate = 24000
    samples = tone(2.0, rate)
    raw = tmp_path / "call.raw"
    raw.write_bytes(np.round(samples * 32767).astype("<i2").tobytes())
    audio = decode_audio(raw, encoding="pcm16", sample_rate=rate)
    assert abs(len(audio) - 2 * SAMPLE_RATE) <= 2
    assert dominant_hz(audio) == pytest.approx(TONE_HZ, abs=2.0)
    at_16k = decode_audio(np.round(tone(1.0, 16000) * 32767).astype("<i2").tobytes(), encoding="pcm16",
                          sample_rate=16000)
    np.testing.assert_allclose(at_16k, tone(1.0, 16000), atol=1 / 32767)


# -------------------------------------------------------------------------------------- max_seconds


def test_max_seconds_truncates_exactly(tmp_path):
    path = write_wav(tmp_path / "long.wav", tone(10.0, 44100), 44100)
    full = decode_audio(path)
    head = decode_audio(path, max_seconds=2.5)
    assert len(head) == 40000
    np.testing.assert_allclose(head[:39000], full[:39000], atol=1e-4)
    assert len(decode_audio(path, max_seconds=60)) == len(full)  # a bound above the length changes nothing
    ul = tmp_path / "long.ul"
    ul.write_bytes(b"\xff" * 80000)  # 10 s of μ-law silence
    assert len(decode_audio(ul, max_seconds=1.25)) == 20000


class CountingReader(io.RawIOBase):
    """A file object that counts the bytes PyAV pulls from it."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def readinto(self, buffer) -> int:
        chunk = self._inner.read(len(buffer))
        buffer[: len(chunk)] = chunk
        self.bytes_read += len(chunk)
        return len(chunk)


def test_max_seconds_stops_reading_huge_inputs(tmp_path):
    data = write_wav(tmp_path / "hour.wav", tone(120.0, 16000), 16000).read_bytes()  # 3.8 MB
    reader = CountingReader(data)
    audio = decode_audio(reader, max_seconds=1.0)
    assert len(audio) == SAMPLE_RATE
    assert reader.bytes_read < len(data) / 10, "decoding went on past max_seconds"


# -------------------------------------------------------------------------------------- resampling


def test_resample_lengths_and_pitch():
    up = resample(tone(1.0, 8000), 8000)
    assert len(up) == 16000 and up.dtype == np.float32
    assert dominant_hz(up) == pytest.approx(TONE_HZ, abs=1.5)
    down = resample(tone(1.0, 44100), 44100, 16000)
    assert abs(len(down) - 16000) <= 2
    same = tone(0.5, 16000)
    np.testing.assert_array_equal(resample(same, 16000), same)
    assert resample(np.zeros(0, np.float32), 8000).shape == (0,)


def test_stream_resampler_matches_one_shot_on_20ms_frames():
    audio = tone(2.0, 8000) + tone(2.0, 8000, hz=1800, amplitude=0.1)
    stream = StreamResampler(8000)
    pieces = [stream.push(audio[i:i + 160]) for i in range(0, len(audio), 160)]  # 20 ms at 8 kHz
    chunked = np.concatenate([*pieces, stream.flush()])
    whole = resample(audio, 8000)
    assert len(chunked) == len(whole) == 32000
    np.testing.assert_allclose(chunked, whole, atol=1e-6)  # no seams at the frame boundaries
    assert sum(len(p) for p in pieces) >= 32000 - 64  # output keeps up with input (small filter delay)


def test_stream_resampler_rejects_bad_rates_and_shapes():
    with pytest.raises(ValueError, match="from_rate"):
        StreamResampler(0)
    with pytest.raises(ValueError, match="to_rate"):
        StreamResampler(8000, 8000.5)
    with pytest.raises(ValueError, match="1-D"):
        StreamResampler(8000).push(np.zeros((2, 10), np.float32))


# -------------------------------------------------------------------------------------- silence


def test_silence_detection():
    rng = np.random.default_rng(0)
    assert is_silent(np.zeros(SAMPLE_RATE, np.float32))
    assert is_silent(np.zeros(0, np.float32))
    assert is_silent((rng.standard_normal(SAMPLE_RATE) * 10 ** (-60 / 20)).astype(np.float32))  # -60 dBFS hiss
    assert not is_silent(tone(1.0, SAMPLE_RATE, amplitude=0.1))
    assert loudest_dbfs(tone(1.0, SAMPLE_RATE, amplitude=1.0)) == pytest.approx(-3.01, abs=0.05)
    # One short word in half a minute of silence is not a silent call.
    call = np.zeros(30 * SAMPLE_RATE, np.float32)
    call[SAMPLE_RATE * 12: SAMPLE_RATE * 12 + 1600] = tone(0.1, SAMPLE_RATE, amplitude=0.05)
    assert not is_silent(call)
    assert is_silent(call, threshold_dbfs=-20)
    # A 20 ms streaming chunk is measured at its own level (no padding to the 50 ms window).
    assert loudest_dbfs(tone(0.02, SAMPLE_RATE, amplitude=1.0)) == pytest.approx(-3.01, abs=0.1)


def test_light_imports():
    """Serving imports speech.audio/speech.asr: no ML stack and no codec library at import time."""
    code = ("import sys, speech.audio, speech.asr, data.transcribe; "
            "bad = [m for m in ('torch', 'transformers', 'datasets', 'pandas', 'sklearn', 'av', 'faster_whisper', "
            "'ctranslate2') if m in sys.modules]; print(','.join(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.stdout.strip() == ""
