"""A telephone channel drawn per call: what a phone line does to speech between the mouth and the ASR.

``render-asr`` used to squeeze clean synthetic speech into 8 kHz μ-law and nothing else; real
calls also come through other codecs, background noise, a handset's level and clipping, lost
packets and the other party's echo. This module models those effects as a per-call
:class:`ChannelPlan` drawn from a :class:`ChannelConfig` (the distribution) by a hash of
``(seed, call_id)``, so a call always sounds the same for the same seed whatever else is rendered.

The chain on a caller's track (and on a mono line), in the order the effects happen on a call:

1. **Background noise** at the caller's end, scaled to ``snr_db`` against the speech's active
   level (20 ms frames within 40 dB of the loudest one, a simple ITU-T P.56 stand-in):
   ``babble`` (several overlapped synthetic talkers: voiced pulse trains with a drifting pitch
   and noise, shaped like speech's long-term spectrum and switched on and off at syllable rate;
   no words, so it never adds words to a transcript), ``street`` (brown noise, a rumble, with
   slow swells of passing traffic), ``hum-50`` / ``hum-60`` (mains hum: the fundamental and
   seven harmonics, odd ones stronger, as a transformer buzz).
2. **Level and clipping** in the handset: a gain that drifts linearly in dB over the call from
   ``gain_db`` to ``gain_db + drift_db``, then a hard clip at ``clip_level`` of full scale
   (always at full scale).
3. **Echo / crosstalk** (two-channel calls): the agent's track, delayed by ``echo_delay_ms``,
   added into the caller's at ``crosstalk_db`` relative to the agent's level (a line hybrid's
   echo, or a leaky headset).
4. **Band-limiting** to ``band_hz`` (300–3400 Hz): a 6th-order Butterworth band-pass each
   side, run causally as a line filter is.
5. **Codec**: encoded and decoded by sox (``mulaw``: G.711 μ-law; ``gsm``: GSM 06.10 full
   rate; ``amr-nb-12.2`` / ``amr-nb-4.75``: AMR-NB at its top and bottom rates; sox's AMR-NB
   comes from libopencore-amrnb through libsox-fmt-all). PyAV can encode AMR-NB and μ-law but
   not GSM, so sox does all of them (one path).
6. **Packet loss with concealment**: ``loss_rate`` of the 20 ms frames are lost, in bursts of
   up to ``loss_burst_frames``; each lost frame is concealed as G.711 Appendix I does in spirit:
   the last frame heard is repeated, at full level for 10 ms and then fading by 20 % per 10 ms,
   so a burst of 60 ms or more goes silent.

The agent's track of a two-channel call is on the call centre's side of the line: it gets the
band-limit and the codec only.

:func:`apply_channel` runs the whole chain on 8 kHz float audio; each step is also a function of
its own (:func:`add_noise`, :func:`apply_level`, :func:`add_crosstalk`, :func:`band_limit`,
:func:`codec_roundtrip`, :func:`conceal_losses`), pure numpy except the codec.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from callintent.config import is_int, is_number
from callintent.errors import UserError

#: The rate every step works at: narrowband telephony.
LINE_RATE = 8000
#: One packet of telephone audio (RTP carries 20 ms of G.711 per packet; GSM and AMR frames are 20 ms).
FRAME_SECONDS = 0.02
#: Bumped when the same plan would give different audio (a new noise recipe, a new filter…); part of
#: the render cache key.
CHANNEL_MODEL_VERSION = 1

#: Codec name → (sox output options, sox input type, samples the decoded audio lags the input).
#: The lag was measured by cross-correlation: opencore AMR-NB decodes 40 samples (5 ms) late.
CODECS: dict[str, tuple[tuple[str, ...], str, int]] = {
    "mulaw": (("-t", "ul"), "ul", 0),
    "gsm": (("-t", "gsm"), "gsm", 0),
    "amr-nb-12.2": (("-t", "amr-nb", "-C", "7"), "amr-nb", 40),
    "amr-nb-4.75": (("-t", "amr-nb", "-C", "0"), "amr-nb", 40),
}
NOISE_KINDS: tuple[str, ...] = ("babble", "street", "hum-50", "hum-60")

_RAW = ("-t", "raw", "-r", str(LINE_RATE), "-e", "signed", "-b", "16", "-c", "1")


class ChannelError(UserError):
    """The codec step failed (sox missing or unable to encode)."""


def _check_range(name: str, value: object, low: float, high: float) -> None:
    if (not isinstance(value, (tuple, list)) or len(value) != 2 or not all(is_number(v) for v in value)
            or not low <= value[0] <= value[1] <= high):
        raise ValueError(f"{name} must be a (low, high) pair with {low:g} <= low <= high <= {high:g}, got {value!r}")


def _check_probability(name: str, value: object) -> None:
    if not is_number(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability between 0 and 1, got {value!r}")


@dataclass(frozen=True)
class ChannelConfig:
    """The distribution each call's channel is drawn from.

    Ranges are ``(low, high)`` pairs drawn uniformly; an effect with a probability is present on
    that share of calls.

    Attributes:
        codecs: Codecs drawn uniformly (names in :data:`CODECS`).
        band_hz: Pass band of the line in Hz.
        noise_probability: Share of calls with background noise.
        noise_kinds: Noises drawn uniformly (names in :data:`NOISE_KINDS`).
        snr_db: Speech-to-noise ratio in dB.
        gain_db: Level of the caller's handset at the start of the call, in dB.
        drift_db: Level change over the call in dB (the caller moves the phone, an AGC reacts).
        clip_probability: Share of calls clipped.
        clip_level: Clip level as a fraction of full scale.
        loss_probability: Share of calls that lose packets.
        loss_rate: Share of 20 ms frames lost on such a call.
        loss_burst_frames: Longest burst of consecutive lost frames.
        crosstalk_probability: Share of two-channel calls with the agent echoed into the caller's track.
        crosstalk_db: Level of that echo relative to the agent's track, in dB.
        echo_delay_ms: Delay of that echo in ms.
    """

    codecs: tuple[str, ...] = tuple(CODECS)
    band_hz: tuple[float, float] = (300.0, 3400.0)
    noise_probability: float = 0.8
    noise_kinds: tuple[str, ...] = NOISE_KINDS
    snr_db: tuple[float, float] = (5.0, 25.0)
    gain_db: tuple[float, float] = (-12.0, 6.0)
    drift_db: tuple[float, float] = (-6.0, 6.0)
    clip_probability: float = 0.2
    clip_level: tuple[float, float] = (0.3, 0.8)
    loss_probability: float = 0.5
    loss_rate: tuple[float, float] = (0.01, 0.08)
    loss_burst_frames: int = 3
    crosstalk_probability: float = 0.5
    # Residual echo after a network echo canceller is typically 30 dB or more below the far end; a
    # leaky headset or an echo canceller still converging lets through more.
    crosstalk_db: tuple[float, float] = (-40.0, -20.0)
    echo_delay_ms: tuple[float, float] = (0.0, 120.0)

    def __post_init__(self) -> None:
        if isinstance(self.codecs, str) or not self.codecs or not all(c in CODECS for c in self.codecs):
            raise ValueError(f"codecs must be a non-empty list of {sorted(CODECS)}, got {self.codecs!r}")
        if isinstance(self.noise_kinds, str) or not self.noise_kinds or not all(
                k in NOISE_KINDS for k in self.noise_kinds):
            raise ValueError(f"noise_kinds must be a non-empty list of {list(NOISE_KINDS)}, got {self.noise_kinds!r}")
        _check_range("band_hz", self.band_hz, 50.0, LINE_RATE / 2 - 100.0)
        if self.band_hz[0] >= self.band_hz[1]:
            raise ValueError(f"band_hz must have low < high, got {self.band_hz!r}")
        _check_range("snr_db", self.snr_db, -10.0, 60.0)
        _check_range("gain_db", self.gain_db, -40.0, 20.0)
        _check_range("drift_db", self.drift_db, -20.0, 20.0)
        _check_range("clip_level", self.clip_level, 0.05, 1.0)
        _check_range("loss_rate", self.loss_rate, 0.0, 0.5)
        _check_range("crosstalk_db", self.crosstalk_db, -80.0, 0.0)
        _check_range("echo_delay_ms", self.echo_delay_ms, 0.0, 1000.0)
        for name in ("noise_probability", "clip_probability", "loss_probability", "crosstalk_probability"):
            _check_probability(name, getattr(self, name))
        if not is_int(self.loss_burst_frames) or not 1 <= self.loss_burst_frames <= 50:
            raise ValueError(f"loss_burst_frames must be an integer between 1 and 50, got {self.loss_burst_frames!r}")


@dataclass(frozen=True)
class ChannelPlan:
    """What the line does to one call (kept with each rendered row under ``render.channel``).

    Attributes:
        codec: A name in :data:`CODECS`.
        band_hz: Pass band in Hz.
        noise: A name in :data:`NOISE_KINDS`, or None (a quiet room).
        snr_db: Speech-to-noise ratio in dB (None without noise).
        gain_db: Handset level at the start, in dB.
        drift_db: Level change over the call, in dB.
        clip_level: Clip level as a fraction of full scale (None: clipped at full scale only).
        loss_rate: Share of 20 ms frames lost (0: none).
        loss_burst_frames: Longest burst of lost frames.
        crosstalk_db: Agent echo in the caller's track relative to the agent, in dB (None: none;
            always None on a mono line).
        echo_delay_ms: Delay of that echo.
        seed: Seeds the noise and which frames are lost.
    """

    codec: str = "mulaw"
    band_hz: tuple[float, float] = (300.0, 3400.0)
    noise: str | None = None
    snr_db: float | None = None
    gain_db: float = 0.0
    drift_db: float = 0.0
    clip_level: float | None = None
    loss_rate: float = 0.0
    loss_burst_frames: int = 1
    crosstalk_db: float | None = None
    echo_delay_ms: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"codec must be one of {sorted(CODECS)}, got {self.codec!r}")
        if self.noise is not None and self.noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {list(NOISE_KINDS)} or None, got {self.noise!r}")
        if (self.noise is None) != (self.snr_db is None):
            raise ValueError(f"snr_db must be given exactly when noise is, got noise={self.noise!r} "
                             f"snr_db={self.snr_db!r}")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["band_hz"] = list(self.band_hz)
        return out


def draw_channel_plan(call_id: str, seed: int, config: ChannelConfig = ChannelConfig(), *,
                      two_channel: bool = False) -> ChannelPlan:
    """One call's channel, drawn from ``config`` by a hash of ``(seed, call_id)``.

    Args:
        call_id: The call.
        seed: The render seed.
        config: The distribution.
        two_channel: Whether the call is rendered as two tracks (only then is there crosstalk).

    Returns:
        The plan (values rounded, so they read well in a row and key the cache stably).
    """
    digest = hashlib.sha256(f"channel:{seed}:{call_id}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))

    def uniform(pair: tuple[float, float], digits: int = 1) -> float:
        return round(rng.uniform(*pair), digits)

    # Every draw is made whether or not it is used, so turning one effect off does not reshuffle the others.
    codec = rng.choice(list(config.codecs))
    has_noise, noise, snr = rng.random() < config.noise_probability, rng.choice(list(config.noise_kinds)), \
        uniform(config.snr_db)
    gain, drift = uniform(config.gain_db), uniform(config.drift_db)
    clipped, clip = rng.random() < config.clip_probability, uniform(config.clip_level, 2)
    lossy, loss = rng.random() < config.loss_probability, uniform(config.loss_rate, 3)
    echoed, echo_db, delay = (rng.random() < config.crosstalk_probability, uniform(config.crosstalk_db),
                              uniform(config.echo_delay_ms, 0))
    return ChannelPlan(
        codec=codec, band_hz=(float(config.band_hz[0]), float(config.band_hz[1])),
        noise=noise if has_noise else None, snr_db=snr if has_noise else None,
        gain_db=gain, drift_db=drift, clip_level=clip if clipped else None,
        loss_rate=loss if lossy else 0.0, loss_burst_frames=int(config.loss_burst_frames),
        crosstalk_db=echo_db if two_channel and echoed else None,
        echo_delay_ms=delay if two_channel and echoed else 0.0,
        seed=int.from_bytes(digest[8:12], "big"),
    )


# --- the chain -------------------------------------------------------------------------------------


def apply_channel(audio: np.ndarray, rate: int, plan: ChannelPlan, *, agent: np.ndarray | None = None,
                  line_only: bool = False, stream: int = 0) -> np.ndarray:
    """Put one track through the line ``plan`` describes (module docstring gives the chain).

    Args:
        audio: Float mono audio in [-1, 1] at ``rate``.
        rate: Must be :data:`LINE_RATE` (the codecs are narrowband).
        plan: The call's channel.
        agent: The agent's clean track on the same clock, echoed into this one when the plan has
            crosstalk (a two-channel call's caller track).
        line_only: Band-limit and codec only (the agent's side of the line).
        stream: Picks an independent noise and loss draw from the plan's seed (one per track).

    Returns:
        Float32 audio of the same length.
    """
    if rate != LINE_RATE:
        raise ValueError(f"the telephone channel runs at {LINE_RATE} Hz, got {rate}")
    x = np.asarray(audio, dtype=np.float64)
    rng = np.random.default_rng([plan.seed, stream])
    if not line_only:
        if plan.noise is not None and plan.snr_db is not None:
            x = add_noise(x, make_noise(plan.noise, len(x), rate, rng), plan.snr_db, rate)
        x = apply_level(x, plan.gain_db, plan.drift_db, plan.clip_level)
        if agent is not None and plan.crosstalk_db is not None:
            x = add_crosstalk(x, agent, rate, plan.crosstalk_db, plan.echo_delay_ms)
    x = band_limit(x, rate, plan.band_hz)
    x = codec_roundtrip(x, plan.codec)
    if not line_only and plan.loss_rate > 0:
        n_frames = len(x) // round(FRAME_SECONDS * rate)
        x = conceal_losses(x, rate, lost_frames(n_frames, plan.loss_rate, plan.loss_burst_frames, rng))
    return x.astype(np.float32)


def active_power(x: np.ndarray, rate: int, *, floor_db: float = 40.0) -> float:
    """Mean power over the 20 ms frames within ``floor_db`` of the loudest (the speech, not the pauses)."""
    step = round(FRAME_SECONDS * rate)
    n = len(x) // step
    if n == 0:
        return float(np.mean(np.square(x))) if len(x) else 0.0
    frames = np.mean(np.square(x[: n * step].reshape(n, step)), axis=1)
    peak = float(frames.max())
    if peak <= 0.0:
        return 0.0
    return float(frames[frames >= peak * 10.0 ** (-floor_db / 10.0)].mean())


def add_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float, rate: int) -> np.ndarray:
    """``speech`` plus ``noise`` scaled so that speech's active power over the noise's power is ``snr_db``."""
    p_speech, p_noise = active_power(speech, rate), float(np.mean(np.square(noise)))
    if p_speech <= 0.0 or p_noise <= 0.0:
        return speech
    return speech + noise * np.sqrt(p_speech / (p_noise * 10.0 ** (snr_db / 10.0)))


def apply_level(x: np.ndarray, gain_db: float, drift_db: float, clip_level: float | None) -> np.ndarray:
    """Gain drifting linearly in dB from ``gain_db`` to ``gain_db + drift_db``, then a hard clip."""
    gain = 10.0 ** (np.linspace(gain_db, gain_db + drift_db, num=len(x)) / 20.0)
    limit = 1.0 if clip_level is None else min(1.0, clip_level)
    return np.clip(x * gain, -limit, limit)


def add_crosstalk(caller: np.ndarray, agent: np.ndarray, rate: int, level_db: float, delay_ms: float) -> np.ndarray:
    """``caller`` plus ``agent`` delayed by ``delay_ms`` at ``level_db`` (relative to the agent's level)."""
    delay = round(delay_ms * rate / 1000.0)
    echo = np.zeros(len(caller))
    n = max(0, min(len(agent), len(caller) - delay))
    echo[delay:delay + n] = agent[:n]
    return caller + echo * 10.0 ** (level_db / 20.0)


def band_limit(x: np.ndarray, rate: int, band_hz: Sequence[float] = (300.0, 3400.0)) -> np.ndarray:
    """A 6th-order Butterworth band-pass each side, causal (a line filter, not a zero-phase one)."""
    from scipy import signal

    sos = signal.butter(6, [float(band_hz[0]), float(band_hz[1])], btype="bandpass", fs=rate, output="sos")
    return signal.sosfilt(sos, x)


def codec_roundtrip(x: np.ndarray, codec: str) -> np.ndarray:
    """Encode 8 kHz audio with ``codec`` and decode it back with sox, aligned and of the same length.

    Raises:
        ChannelError: sox is missing or cannot encode ``codec`` (GSM and AMR-NB need libsox-fmt-all).
    """
    encode, decode_type, lag = CODECS[codec]
    sox = shutil.which("sox")
    if sox is None:
        raise ChannelError("the telephone channel needs sox (apt-get install sox libsox-fmt-all)")
    pcm = (np.clip(x, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()
    # -D: no dither. A codec quantises without adding noise, and a silent track must stay silent.
    coded = _sox([sox, "-R", "-D", *_RAW, "-", *encode, "-"], pcm, codec)
    decoded = _sox([sox, "-R", "-D", "-t", decode_type, "-r", str(LINE_RATE), "-c", "1", "-", *_RAW, "-"], coded, codec)
    y = np.frombuffer(decoded, dtype="<i2").astype(np.float64)[lag:lag + len(x)] / 32768.0
    return np.pad(y, (0, len(x) - len(y))) if len(y) < len(x) else y


def lost_frames(n_frames: int, loss_rate: float, max_burst: int, rng: np.random.Generator) -> np.ndarray:
    """Exactly ``round(loss_rate * n_frames)`` distinct frame indices, in bursts of 1..``max_burst``."""
    want = min(n_frames, round(loss_rate * n_frames))
    lost: set[int] = set()
    while len(lost) < want:
        start, length = int(rng.integers(n_frames)), int(rng.integers(1, max_burst + 1))
        for k in range(start, min(start + length, n_frames)):
            if len(lost) < want:
                lost.add(k)
    return np.array(sorted(lost), dtype=np.int64)


def conceal_losses(x: np.ndarray, rate: int, lost: np.ndarray) -> np.ndarray:
    """Replace each lost 20 ms frame by the last frame heard, fading as G.711 Appendix I does.

    The first 10 ms of an erasure keep the level; it then falls by 20 % per 10 ms, so 60 ms into a
    burst the line is silent until a frame arrives.
    """
    step = round(FRAME_SECONDS * rate)
    y = np.array(x, dtype=np.float64, copy=True)
    lost_set = {int(k) for k in lost}
    # Whole samples, so the fade reaches exactly zero: level held for 10 ms, then -20 % per 10 ms.
    hold, fade = round(0.01 * rate), round(0.05 * rate)
    previous = np.zeros(step)
    run = 0
    for k in range(len(y) // step):
        frame = slice(k * step, (k + 1) * step)
        if k not in lost_set:
            previous, run = y[frame].copy(), 0
            continue
        since = run * step + np.arange(step)  # samples into the erasure
        y[frame] = previous * np.clip(1.0 - (since - hold) / fade, 0.0, 1.0)
        run += 1
    return y


def make_noise(kind: str, n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of background ``kind`` (a name in :data:`NOISE_KINDS`) at unit RMS."""
    if kind == "babble":
        x = _babble(n, rate, rng)
    elif kind == "street":
        x = _street(n, rate, rng)
    elif kind in ("hum-50", "hum-60"):
        x = _hum(n, rate, float(kind.split("-")[1]), rng)
    else:
        raise ValueError(f"noise must be one of {list(NOISE_KINDS)}, got {kind!r}")
    rms = float(np.sqrt(np.mean(np.square(x)))) if n else 0.0
    return x / rms if rms > 0 else x


# --------------------------------------------------------------------------------------------------


def _sox(cmd: list[str], data: bytes, codec: str) -> bytes:
    try:
        result = subprocess.run(cmd, input=data, capture_output=True, check=True, timeout=120)
    except subprocess.CalledProcessError as e:
        detail = (e.stderr or b"").decode("utf-8", "replace").strip() or f"exit status {e.returncode}"
        raise ChannelError(f"sox could not code {codec!r} audio: {detail}") from None
    except subprocess.TimeoutExpired:
        raise ChannelError(f"sox timed out coding {codec!r} audio") from None
    return result.stdout


def _smooth_envelope(n: int, rate: int, hz: float, rng: np.random.Generator) -> np.ndarray:
    """Random positive envelope varying at about ``hz`` (white noise through a one-pole low-pass, twice)."""
    from scipy import signal

    a = np.exp(-2.0 * np.pi * hz / rate)
    e = signal.lfilter([1 - a], [1, -a], signal.lfilter([1 - a], [1, -a], rng.standard_normal(n)))
    return e / (np.std(e) + 1e-12)


def _speech_shaped(x: np.ndarray, rate: int) -> np.ndarray:
    """Long-term speech spectrum, roughly: band 100-3800 Hz, falling about 6 dB per octave above 500 Hz."""
    from scipy import signal

    x = signal.sosfilt(signal.butter(2, [100.0, min(3800.0, rate / 2 - 50.0)], btype="bandpass", fs=rate,
                                     output="sos"), x)
    a = np.exp(-2.0 * np.pi * 500.0 / rate)
    return signal.lfilter([1 - a], [1, -a], x)


def _babble(n: int, rate: int, rng: np.random.Generator, talkers: int = 6) -> np.ndarray:
    out = np.zeros(n)
    for _ in range(talkers):
        f0 = rng.uniform(90.0, 230.0) * (1.0 + 0.1 * np.clip(_smooth_envelope(n, rate, 2.0, rng), -3, 3))
        phase = np.cumsum(f0 / rate)
        pulses = np.diff(np.floor(phase), prepend=0.0)  # one impulse per pitch period
        voiced = _speech_shaped(pulses + 0.05 * rng.standard_normal(n), rate)
        syllables = np.maximum(_smooth_envelope(n, rate, 4.0, rng) - 0.3, 0.0)  # on/off at syllable rate
        talker = voiced * syllables
        out += talker / (np.sqrt(np.mean(np.square(talker))) + 1e-12)
    return out


def _street(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    from scipy import signal

    brown = signal.lfilter([1.0], [1.0, -0.995], rng.standard_normal(n))
    hiss = _speech_shaped(rng.standard_normal(n), rate) * 0.5
    swells = 1.0 + 0.6 * np.clip(_smooth_envelope(n, rate, 0.2, rng), -1.5, 3.0)  # passing traffic
    return (brown / (np.std(brown) + 1e-12) + hiss / (np.std(hiss) + 1e-12)) * np.maximum(swells, 0.1)


def _hum(n: int, rate: int, mains_hz: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / rate
    out = np.zeros(n)
    for k in range(1, 9):
        if k * mains_hz >= rate / 2:
            break
        amplitude = (1.0 if k % 2 else 0.4) / k  # a transformer buzz: odd harmonics stronger
        out += amplitude * np.sin(2 * np.pi * k * mains_hz * t + rng.uniform(0, 2 * np.pi))
    return out


__all__ = ["CHANNEL_MODEL_VERSION", "CODECS", "FRAME_SECONDS", "LINE_RATE", "NOISE_KINDS", "ChannelConfig",
           "ChannelError", "ChannelPlan", "active_power", "add_crosstalk", "add_noise", "apply_channel",
           "apply_level", "band_limit", "codec_roundtrip", "conceal_losses", "draw_channel_plan", "lost_frames",
           "make_noise"]
