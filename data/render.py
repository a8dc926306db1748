"""Labeled openings → what telephone ASR hears: synthetic speech, a telephone channel, faster-whisper.

The classifier is served on ASR output, not on clean text. This step gives training and evaluation
the same kind of text: every labeled opening is spoken (the agent and the caller in different
voices, rates and pitches, drawn per call; :mod:`data.voices`: natural Piper and Flite voices from
registry packages, or espeak-ng), joined turn by turn with short pauses, put
through what a phone line does to it, decoded back through :mod:`speech.audio` and transcribed by
:class:`speech.asr.SpeechRecognizer` — the serving ASR, cut at the same 30 s.

The line is a telephone channel drawn per call (:mod:`data.channel`, ``RenderConfig.channel``, the
default): a codec (μ-law, GSM 06.10, AMR-NB), a 300-3400 Hz band, babble, street or hum noise at a
drawn SNR, level drift and clipping, lost 20 ms packets with concealment and, on two-channel
renders, the agent's echo in the caller's track; the result is 8 kHz 16-bit PCM. With
``RenderConfig.channel = None`` (``--channel mulaw``) the line is what it was before the channel
model: sox squeezes the speech into 8 kHz mono μ-law, optionally over pink noise (``noise_db``).

Output rows keep the label fields (``label``, ``signals``, ``source``, ``campaign``,
``industry``), the split the loader assigned (so the rendered file splits like its source), and:

* ``transcript``: the ASR text; the labeled text moves to ``reference_transcript``;
* ``words``: the ASR words with their real timings (what time cut-offs use); with
  ``channels=2`` each word also has its ``speaker``;
* ``audio_seconds``, ``asr_model`` and ``render`` (voices with their engine, sex and accent,
  rates, pitches, noise, gap, and the
  call's telephone channel under ``render.channel``: codec, noise and SNR, level, clip, packet
  loss, crosstalk; None on the μ-law-only line), so accuracy can be sliced by condition;
* no ``spans``: their character offsets point into the labeled text, and ASR rewrites words
  ("4,500" → "four thousand five hundred", dropped or merged words), so no offset survives
  reliably. The row's ``signals`` stay (what the caller asked for has not changed); training
  masks the token-level targets of a present signal without spans (``training.features``).

Two channels (``RenderConfig.channels = 2``, ``--channels 2``) render the call as a two-channel
recording does (stereo PCM, Twilio's inbound and outbound tracks): each speaker on their own
track, silence where the other speaks, each track transcribed on its own, the words merged by
time with their speaker. That is the text a two-channel live call gives a model trained with
``speaker_tags`` (``training.augment``, ``evaluate --two-channel``).

Results are cached in the ASR cache of :mod:`data.transcribe`, keyed by what determines the words
before any audio is made (turn texts, the render plan with its channel and the channel model's
version, the espeak-ng and sox versions, the natural voices' package versions, the ASR model and
its decoding options), so a re-run renders and transcribes nothing it has seen.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from callintent.config import is_int, is_number
from callintent.errors import UserError
from data.channel import CHANNEL_MODEL_VERSION, LINE_RATE, ChannelConfig, ChannelPlan, draw_channel_plan
from data.voices import SYNTH_RATE, VoiceError, describe, run_tool, synthesize, voice_version
from speech.transcript import OPENING_SECONDS

if TYPE_CHECKING:
    from speech.asr import AsrConfig, SpeechRecognizer
    from speech.transcript import OpeningTranscript

logger = logging.getLogger(__name__)

#: espeak-ng voices (``espeak-ng --voices=en``) with variants (``+f3`` female, ``+m3``…): US, British,
#: Scottish, RP, Caribbean and New York accents.
DEFAULT_VOICES: tuple[str, ...] = ("en-us", "en-us+f3", "en-gb", "en-gb-x-rp+f2", "en-gb-scotland", "en-us+m3",
                                   "en-029", "en-us-nyc+f4")
#: Speaking rates in words per minute (espeak-ng ``-s``; 175 is its default).
DEFAULT_RATES: tuple[int, ...] = (140, 160, 175, 190)
#: Pitches (espeak-ng ``-p``, 0-99; 50 is its default).
DEFAULT_PITCHES: tuple[int, ...] = (35, 50, 65)

#: Bumped when the meaning of a cached render changes (the plan, the audio chain).
RENDER_CACHE_VERSION = 1

#: Every voice's output rate (:data:`data.voices.SYNTH_RATE`); the silence between turns is made at
#: the same rate so sox can join them.
_TURN_RATE = SYNTH_RATE


class RenderError(UserError):
    """Speech could not be rendered (espeak-ng or sox missing or failing, or a bad voice)."""


@dataclass(frozen=True)
class Voice:
    """How one speaker is spoken.

    Attributes:
        name: A voice of :mod:`data.voices`: a natural one (``piper:joe``, ``flite:slt``…) or an
            espeak-ng voice (``en-us``, ``en-gb-scotland``, ``en-us+f3``…).
        wpm: Speaking rate in words per minute (175 = a natural voice's own pace).
        pitch: espeak-ng pitch, 0-99 (natural voices: a pitch shift, 50 = none).
    """

    name: str
    wpm: int = 160
    pitch: int = 50


@dataclass(frozen=True)
class RenderPlan:
    """How one call is spoken and put on the line.

    Attributes:
        agent: Voice of the agent's turns (and of turns without a speaker).
        caller: Voice of the caller's turns.
        gap_seconds: Silence between turns.
        noise_db: Pink noise level under the speech in dBFS on the μ-law-only line (None = a clean
            line; not with ``channel``, which brings its own noise).
        channels: 1 = both speakers on one line; 2 = a track per speaker, transcribed apart.
        channel: The telephone channel (:mod:`data.channel`: codec, band, noise, level, clipping,
            packet loss, crosstalk); None = 8 kHz μ-law only, as renders were before it.
    """

    agent: Voice
    caller: Voice
    gap_seconds: float = 0.4
    noise_db: float | None = None
    channels: int = 1
    channel: ChannelPlan | None = None

    def __post_init__(self) -> None:
        if self.channel is not None and self.noise_db is not None:
            raise ValueError("noise_db (pink noise on the μ-law-only line) cannot be combined with a channel plan, "
                             "which draws its own noise")

    def voice_for(self, speaker: str | None) -> Voice:
        """The caller's voice for ``"caller"``, the agent's for anything else."""
        return self.caller if speaker == "caller" else self.agent

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["channel"] = None if self.channel is None else self.channel.to_json()
        return out


@dataclass(frozen=True)
class RenderConfig:
    """What the render step varies and where it caches.

    Attributes:
        voices: Voices of :mod:`data.voices` (natural ``piper:joe``, ``flite:slt``…, or espeak-ng
            names); each call draws two different ones (agent, caller). The default is espeak-ng
            only, the same on every machine; ``render-asr`` defaults to the natural voices installed
            (:func:`data.voices.resolve_voices`).
        rates: Speaking rates (words per minute) drawn per speaker.
        pitches: espeak-ng pitches (0-99) drawn per speaker.
        noise_db: Pink noise under the speech in dBFS, e.g. -35 (None = none).
        gap_seconds: Silence between turns.
        seed: Seeds the per-call draws (a call is always spoken the same way for the same seed,
            whatever else is in the batch).
        cut_seconds: Opening transcribed (as in the product).
        cache_dir: ASR cache directory (shared with ``callintent data transcribe``).
        channels: 1 = one mixed line; 2 = each speaker on their own track, transcribed apart
            (words carry their ``speaker``).
        channel: The distribution of telephone channels drawn per call (:class:`data.channel.ChannelConfig`;
            the default: mixed codecs, 300-3400 Hz, noise at 5-25 dB SNR, level, clipping, packet
            loss, crosstalk on two-channel calls); None = 8 kHz μ-law only, as before it
            (``--channel mulaw``; the only line ``noise_db`` applies to).
    """

    voices: tuple[str, ...] = DEFAULT_VOICES
    rates: tuple[int, ...] = DEFAULT_RATES
    pitches: tuple[int, ...] = DEFAULT_PITCHES
    noise_db: float | None = None
    gap_seconds: float = 0.4
    seed: int = 0
    cut_seconds: float = OPENING_SECONDS
    cache_dir: str = ".cache/asr"
    channels: int = 1
    channel: ChannelConfig | None = ChannelConfig()

    def __post_init__(self) -> None:
        if isinstance(self.voices, str) or not self.voices or not all(
                isinstance(v, str) and v.strip() and not v.startswith("-") for v in self.voices):
            raise ValueError(f"voices must be a non-empty list of voice names, got {self.voices!r}")
        for name in self.voices:
            try:
                describe(name)  # an unknown piper:/flite: voice fails here, not mid-batch
            except VoiceError as e:
                raise ValueError(str(e)) from None
        if isinstance(self.rates, (str, int)) or not self.rates or not all(
                is_int(r) and 80 <= r <= 450 for r in self.rates):
            raise ValueError(f"rates must be words per minute between 80 and 450, got {self.rates!r}")
        if isinstance(self.pitches, (str, int)) or not self.pitches or not all(
                is_int(p) and 0 <= p <= 99 for p in self.pitches):
            raise ValueError(f"pitches must be espeak-ng pitches between 0 and 99, got {self.pitches!r}")
        if self.noise_db is not None and (not is_number(self.noise_db) or not -90.0 <= self.noise_db <= 0.0):
            raise ValueError(f"noise_db must be a level in dBFS between -90 and 0 (or none), got {self.noise_db!r}")
        if not is_number(self.gap_seconds) or not 0.0 <= self.gap_seconds <= 5.0:
            raise ValueError(f"gap_seconds must be between 0 and 5, got {self.gap_seconds!r}")
        if not is_int(self.seed):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not is_number(self.cut_seconds) or not self.cut_seconds > 0:
            raise ValueError(f"cut_seconds must be > 0, got {self.cut_seconds!r}")
        if self.channels not in (1, 2):
            raise ValueError(f"channels must be 1 (one line) or 2 (a track per speaker), got {self.channels!r}")
        if self.channel is not None and not isinstance(self.channel, ChannelConfig):
            raise ValueError(f"channel must be a ChannelConfig or None (μ-law only), got {self.channel!r}")
        if self.channel is not None and self.noise_db is not None:
            raise ValueError("noise_db is pink noise on the μ-law-only line (channel: none, --channel mulaw); "
                             "the telephone channel draws its own noise")


@dataclass(frozen=True)
class Turn:
    """A stretch of one speaker's words.

    Attributes:
        text: What is said.
        speaker: ``"agent"``, ``"caller"`` or None (unknown: spoken in the agent's voice).
    """

    text: str
    speaker: str | None = None


@dataclass(frozen=True)
class RenderReport:
    """What a render batch did.

    Attributes:
        out: The JSONL written.
        errors_out: The JSONL of rows that failed, each with ``error``.
        total: Rows given.
        ok: Rows written (fresh + cached).
        cached: Of ``ok``, rows whose ASR came from the cache.
        errors: Rows that failed.
        asr_model: ASR model id.
        wall_seconds: Wall time of the batch.
    """

    out: Path
    errors_out: Path
    total: int
    ok: int
    cached: int
    errors: int
    asr_model: str
    wall_seconds: float

    def summary(self) -> str:
        """One line for people."""
        fresh = self.ok - self.cached
        rate = f" ({self.wall_seconds / fresh:.2f} s per rendered call)" if fresh else ""
        return (f"{self.total} calls: {self.ok} ok ({self.cached} cached, {fresh} rendered and transcribed), "
                f"{self.errors} errors, {self.wall_seconds:.1f} s{rate}")


def plan_for(call_id: str, config: RenderConfig = RenderConfig()) -> RenderPlan:
    """The voices and telephone channel of one call, drawn from ``config`` by a hash of (seed, call_id).

    Hashing the id instead of walking one random stream keeps a call's voices the same whether
    it is rendered alone, in a subset, or in another order (so the cache keeps hitting).

    Args:
        call_id: The call.
        config: Voices, rates, pitches, noise, gap and seed.

    Returns:
        The plan; agent and caller get different voices when ``config.voices`` has two or more.
    """
    import random

    digest = hashlib.sha256(f"{config.seed}:{call_id}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    names = list(config.voices)
    agent_name = rng.choice(names)
    caller_name = rng.choice([n for n in names if n != agent_name] or names)
    agent = Voice(agent_name, rng.choice(config.rates), rng.choice(config.pitches))
    caller = Voice(caller_name, rng.choice(config.rates), rng.choice(config.pitches))
    channel = None if config.channel is None else draw_channel_plan(call_id, config.seed, config.channel,
                                                                    two_channel=config.channels == 2)
    return RenderPlan(agent=agent, caller=caller, gap_seconds=float(config.gap_seconds),
                      noise_db=None if config.noise_db is None else float(config.noise_db), channels=config.channels,
                      channel=channel)


def turns_of(row: Mapping[str, Any]) -> tuple[Turn, ...]:
    """A labeled row's speaker turns: its ``turns`` when they spell out the transcript, else one turn.

    Args:
        row: A labeled row (``transcript``, optional ``turns`` of ``{"speaker", "text"}``).

    Returns:
        Non-empty turns in order.
    """
    transcript = str(row.get("transcript") or "")
    turns = row.get("turns")
    if isinstance(turns, list) and turns and all(isinstance(t, dict) and isinstance(t.get("text"), str) for t in turns):
        parsed = tuple(Turn(t["text"], t.get("speaker") if isinstance(t.get("speaker"), str) else None)
                       for t in turns if t["text"].strip())
        # Turns that do not add up to the labeled transcript (edited by hand, corrected) would
        # speak something other than what was labeled: speak the transcript instead.
        if parsed and " ".join(" ".join(t.text.split()) for t in parsed) == " ".join(transcript.split()):
            return parsed
    return (Turn(transcript, None),)


def render_call_audio(turns: Sequence[Turn], out: Path, plan: RenderPlan) -> Path:
    """Speak ``turns`` (:func:`data.voices.synthesize`) and make an 8 kHz mono WAV of them as a phone line carries them.

    Args:
        turns: What is said, in order.
        out: Output ``.wav`` path (its folder is used for temporary files).
        plan: Voices, pause between turns, the line (``plan.channel``, or μ-law with optional
            noise); ``plan.channels`` is not used here.

    Returns:
        ``out``.

    Raises:
        RenderError: espeak-ng or sox missing or failing (the message names the tool and voice).
    """
    return render_call_tracks(turns, out.parent, plan, stem=out.stem, speakers=(None,))[None]


def render_call_tracks(turns: Sequence[Turn], out_dir: Path, plan: RenderPlan, *, stem: str = "call",
                       speakers: Sequence[str | None] = ("caller", "agent")) -> dict[str | None, Path]:
    """Speak ``turns`` once and put them on the line as one track per entry of ``speakers``.

    The track of a speaker holds their turns and the same length of silence where the others
    speak, so every track runs on the call's clock (what a two-channel recording gives); the
    track of ``None`` holds everyone (a mono line). Turns without a speaker count as the agent's.

    Args:
        turns: What is said, in order.
        out_dir: Where the ``<stem>.<speaker>.wav`` files go (``<stem>.wav`` for ``None``).
        plan: Voices, pause between turns, and the line: ``plan.channel`` (the caller's track and a
            mono line get its whole chain, the agent's track its band-limit and codec, and the
            caller's track the agent's echo when the plan has crosstalk), or without one μ-law
            with optional pink noise (independent on each track).
        stem: File name stem.
        speakers: The tracks to make.

    Returns:
        Speaker → 8 kHz WAV path: μ-law without a channel plan; 16-bit PCM of the decoded line with one.

    Raises:
        RenderError: espeak-ng or sox missing or failing (the message names the tool and voice).
    """
    _, sox = _tools()
    if not turns or not any(t.text.strip() for t in turns):
        raise RenderError("nothing to say: the transcript is empty")
    work = out_dir / f".{stem}.parts"
    work.mkdir(parents=True, exist_ok=True)
    tracks: dict[str | None, Path] = {}
    try:
        silence = work / "gap.wav"
        if plan.gap_seconds > 0:
            _run([sox, "-n", "-r", str(_TURN_RATE), "-c", "1", "-b", "16", str(silence), "trim", "0",
                  f"{plan.gap_seconds:.3f}"], "sox")
        spoken: list[tuple[str, Path, Path]] = []  # (speaker, speech, the same length of silence)
        for k, turn in enumerate(t for t in turns if t.text.strip()):
            voice = plan.voice_for(turn.speaker)
            wav, quiet = work / f"turn{k}.wav", work / f"quiet{k}.wav"
            try:  # every voice comes out at SYNTH_RATE mono, so sox can join the turns
                synthesize(voice.name, turn.text, wav, wpm=voice.wpm, pitch=voice.pitch)
            except VoiceError as e:
                raise RenderError(str(e)) from None
            if any(s is not None for s in speakers):
                _run([sox, str(wav), str(quiet), "vol", "0"], "sox")
            spoken.append(("caller" if turn.speaker == "caller" else "agent", wav, quiet))

        def parts_of(speaker: str | None) -> list[Path]:
            parts: list[Path] = []
            for who, wav, quiet in spoken:
                if parts and plan.gap_seconds > 0:
                    parts.append(silence)
                parts.append(wav if speaker is None or who == speaker else quiet)
            return parts

        for speaker in speakers:
            tracks[speaker] = out_dir / (f"{stem}.wav" if speaker is None else f"{stem}.{speaker}.wav")
            if plan.channel is None:
                _line(sox, parts_of(speaker), tracks[speaker], plan.noise_db, work / f"line-{speaker}")
        if plan.channel is not None:
            _channel_lines(sox, parts_of, tracks, plan.channel, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tracks


def _line(sox: str, parts: Sequence[Path], out: Path, noise_db: float | None, work: Path) -> None:
    """Join ``parts`` into 8 kHz mono μ-law (a phone line), with pink noise under it when asked."""
    # -R: sox dithers with random noise when it cuts bit depth (and synth noise is random);
    # "repeatable" mode seeds both, so the same plan gives the same bytes.
    line = ["-r", "8000", "-c", "1"]
    if noise_db is None:
        _run([sox, "-R", *map(str, parts), *line, "-e", "u-law", "-b", "8", str(out)], "sox")
        return
    work.mkdir(parents=True, exist_ok=True)
    speech = work / "speech.wav"
    _run([sox, "-R", *map(str, parts), *line, "-b", "16", str(speech)], "sox")
    seconds = _wav_seconds(speech)
    noise = work / "noise.wav"
    amplitude = 10.0 ** (noise_db / 20.0)
    _run([sox, "-R", "-n", *line, "-b", "16", str(noise), "synth", f"{seconds:.3f}", "pinknoise",
          "vol", f"{amplitude:.6f}"], "sox")
    # -m mixes; -v 1 on both keeps the speech level (sox would otherwise halve each input).
    _run([sox, "-R", "-m", "-v", "1", str(speech), "-v", "1", str(noise), "-e", "u-law", "-b", "8", str(out)],
         "sox")


def _channel_lines(sox: str, parts_of: Callable[[str | None], list[Path]], tracks: Mapping[str | None, Path],
                   channel: ChannelPlan, work: Path) -> None:
    """Put each track through the telephone channel (see :func:`render_call_tracks`) and write it."""
    from data.channel import apply_channel

    clean: dict[str | None, np.ndarray] = {}

    def clean_line(speaker: str | None) -> np.ndarray:
        if speaker not in clean:
            pcm = work / f"pcm-{speaker}.wav"
            # -R: repeatable dither when sox resamples to 16 bits, so the same plan gives the same bytes.
            _run([sox, "-R", *map(str, parts_of(speaker)), "-r", str(LINE_RATE), "-c", "1", "-b", "16", str(pcm)],
                 "sox")
            clean[speaker] = _read_pcm16(pcm)
        return clean[speaker]

    for stream, (speaker, out) in enumerate(tracks.items()):
        if speaker == "agent":  # the call centre's side: band and codec only
            heard = apply_channel(clean_line(speaker), LINE_RATE, channel, line_only=True, stream=stream)
        else:
            echo = clean_line("agent") if speaker == "caller" and channel.crosstalk_db is not None else None
            heard = apply_channel(clean_line(speaker), LINE_RATE, channel, agent=echo, stream=stream)
        _write_pcm16(out, heard, LINE_RATE)


def render_telephone_audio(text: str, out: Path, *, voice: str = "en-us", wpm: int = 160, pitch: int = 50,
                           noise_db: float | None = None) -> Path:
    """Speak one text in one voice as 8 kHz μ-law telephone audio (see :func:`render_call_audio`)."""
    one = Voice(voice, wpm, pitch)
    return render_call_audio((Turn(text),), out, RenderPlan(agent=one, caller=one, noise_db=noise_db))


@lru_cache(maxsize=1)
def tool_versions() -> str:
    """``espeak-ng`` and ``sox`` version lines (part of the cache key: a new synthesiser, new audio)."""
    espeak, sox = _tools()
    lines = []
    for tool in (espeak, sox):
        result = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30, check=False)
        lines.append((result.stdout or result.stderr).strip().splitlines()[0] if (result.stdout or result.stderr)
                     else Path(tool).name)
    return " | ".join(lines)


def render_cache_key(turns: Sequence[Turn], plan: RenderPlan, model_id: str, cut_seconds: float,
                     asr_config: AsrConfig) -> str:
    """Cache key of one rendered call: everything that decides its ASR words, before any audio exists."""
    from speech.asr import DECODE_VERSION

    plan_json = plan.to_json()
    if plan.channels == 1:
        del plan_json["channels"]  # keys made before two-channel renders existed stay valid
    if plan.channel is None:
        del plan_json["channel"]  # and keys of μ-law-only renders made before the channel model
    else:
        plan_json["channel_model"] = CHANNEL_MODEL_VERSION  # a new noise recipe or filter re-renders
    parts = {"v": RENDER_CACHE_VERSION, "kind": "render", "turns": [[t.speaker, t.text] for t in turns],
             "plan": plan_json, "tools": tool_versions(), "model": model_id, "cut": float(cut_seconds),
             "decode": DECODE_VERSION, "vad": asr_config.vad, "beam": asr_config.beam_size, "compute_type": asr_config.compute_type,
             "language": asr_config.language}
    natural = sorted({v.name for v in (plan.agent, plan.caller) if describe(v.name).engine != "espeak"})
    if natural:  # a new voice model re-renders; espeak-only keys stay as they were
        parts["voices"] = {name: voice_version(name) for name in natural}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class TelephoneEar:
    """Hears labeled text as a phone call: renders it and transcribes it with the serving ASR, cached.

    Thread-safe: a batch may call :meth:`hear` from several threads (espeak-ng and sox run as
    subprocesses and CTranslate2 releases the GIL, so threads overlap rendering and decoding).

    Args:
        asr_config: ASR model and decoding options (default: bundled tiny.en, as serving).
        cache_dir: ASR cache directory.
        cut_seconds: Opening transcribed.
        recognizer: An already loaded recognizer (its config replaces ``asr_config``); otherwise
            one is loaded on the first cache miss.
    """

    def __init__(self, asr_config: AsrConfig | None = None, *, cache_dir: str | Path = ".cache/asr",
                 cut_seconds: float = OPENING_SECONDS, recognizer: SpeechRecognizer | None = None) -> None:
        from speech.asr import AsrConfig, asr_model_id
        from data.transcribe import TranscriptCache

        self.asr_config = recognizer.config if recognizer is not None else (asr_config or AsrConfig())
        self.model_id = asr_model_id(self.asr_config)  # validates the model directory before any work
        self.cut_seconds = float(cut_seconds)
        self._cache = TranscriptCache(Path(cache_dir))
        self._recognizer = recognizer
        self._lock = threading.Lock()

    def render(self, turns: Sequence[Turn], plan: RenderPlan) -> dict[str | None, np.ndarray]:
        """The call as the ASR gets it: each track rendered, decoded to 16 kHz float32 and cut at
        ``cut_seconds`` (not cached: audio is large, and rendering is cheap next to decoding).

        Returns:
            Speaker → samples: ``{None: …}`` on a one-channel plan, ``caller`` and ``agent`` on two.

        Raises:
            RenderError: synthesis failed.
            AudioError: the rendered audio could not be decoded.
        """
        from speech.audio import decode_audio

        speakers: tuple[str | None, ...] = ("caller", "agent") if plan.channels == 2 else (None,)
        with tempfile.TemporaryDirectory(prefix="callintent-render-") as tmp:
            tracks = render_call_tracks(turns, Path(tmp), plan, speakers=speakers)
            return {s: decode_audio(tracks[s], max_seconds=self.cut_seconds) for s in speakers}

    def hear(self, turns: Sequence[Turn], plan: RenderPlan, *,
             audio: Mapping[str | None, np.ndarray] | None = None) -> tuple[OpeningTranscript, bool]:
        """What the ASR makes of ``turns`` spoken as ``plan`` says (one decode of the whole opening).

        Args:
            turns, plan: What is said and how.
            audio: The call's tracks when the caller already rendered them (:meth:`render`), so a
                cache miss does not render twice.

        Returns:
            ``(transcript, from_cache)``.

        Raises:
            RenderError: synthesis failed.
            AudioError: the rendered audio could not be decoded.
        """
        from speech.speakers import merge_speakers

        key = render_cache_key(turns, plan, self.model_id, self.cut_seconds, self.asr_config)
        transcript = self._cache.get(key)
        if transcript is not None:
            return transcript, True
        tracks = self.render(turns, plan) if audio is None else audio
        heard = {s: self._recognizer_now().transcribe_timed(samples, cut_seconds=self.cut_seconds)[0]
                 for s, samples in tracks.items()}
        transcript = heard[None] if plan.channels == 1 else merge_speakers(heard)
        self._cache.put(key, transcript)
        return transcript, False

    def _recognizer_now(self) -> SpeechRecognizer:
        with self._lock:
            if self._recognizer is None:
                from speech.asr import SpeechRecognizer

                self._recognizer = SpeechRecognizer(self.asr_config)
            return self._recognizer


def asr_row(row: Mapping[str, Any], transcript: OpeningTranscript, plan: RenderPlan, model_id: str) -> dict[str, Any]:
    """The labeled row as heard: ASR transcript and word timings, label fields kept, spans dropped.

    Args:
        row: The labeled row (``call_id``, ``transcript``, ``label``, ``signals``…, extra keys).
        transcript: What the ASR heard.
        plan: How it was spoken.
        model_id: The ASR model.

    Returns:
        The output row (module docstring lists its keys).
    """
    dropped = {"transcript", "spans", "turns", "words", "audio", "audio_seconds", "asr_model", "render",
               "reference_transcript"}
    out: dict[str, Any] = {"call_id": row["call_id"], "transcript": transcript.text}
    out.update({k: v for k, v in row.items() if k not in dropped and k != "call_id"})
    out["reference_transcript"] = row.get("transcript", "")
    out["words"] = [{"text": w.text, "start": w.start, "end": w.end, "probability": w.probability,
                     **({"speaker": w.speaker} if w.speaker is not None else {})} for w in transcript.words]
    out["audio_seconds"] = round(transcript.audio_seconds, 3)
    out["asr_model"] = model_id
    out["render"] = plan.to_json()
    for role in ("agent", "caller"):  # engine, sex and accent, so accuracy can be sliced by voice
        about = describe(out["render"][role]["name"])
        out["render"][role].update(engine=about.engine, sex=about.sex, accent=about.accent)
    return out


def render_rows(
    rows: Sequence[Mapping[str, Any]],
    out: str | Path,
    config: RenderConfig = RenderConfig(),
    *,
    asr_config: AsrConfig | None = None,
    workers: int = 1,
    errors_out: str | Path | None = None,
    ear: TelephoneEar | None = None,
) -> RenderReport:
    """Render and transcribe labeled rows into an ASR-text labeled JSONL (module docstring).

    A row that cannot be rendered or yields no words goes to ``errors_out`` with the reason; the
    batch goes on.

    Args:
        rows: Labeled rows (plain dicts: ``call_id``, ``transcript``, label fields, optional ``turns``).
        out: Output JSONL (written to a temporary file and renamed at the end).
        config: Voices, rates, pitches, noise, seed, cut and cache.
        asr_config: ASR model and options (default: bundled tiny.en).
        workers: Calls rendered and transcribed at the same time (threads; the ASR gets as many
            decode workers).
        errors_out: JSONL of failed rows (default ``<out stem>.errors.jsonl``).
        ear: A ready :class:`TelephoneEar` (tests); built from ``asr_config`` and ``config`` otherwise.

    Returns:
        Counts and timing.
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from tqdm import tqdm

    from speech.asr import AsrConfig
    from speech.audio import AudioError

    if not is_int(workers) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    started = time.perf_counter()
    out = Path(out)
    errors_out = Path(errors_out) if errors_out is not None else out.with_name(f"{_stem(out)}.errors.jsonl")
    if ear is None:
        base = asr_config or AsrConfig()
        if workers > 1 and base.num_workers < workers:
            from dataclasses import replace

            base = replace(base, num_workers=workers)
        ear = TelephoneEar(base, cache_dir=config.cache_dir, cut_seconds=config.cut_seconds)

    def one(row: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None, bool]:
        plan = plan_for(str(row["call_id"]), config)
        try:
            transcript, hit = ear.hear(turns_of(row), plan)
        except (RenderError, AudioError) as e:
            return None, str(e), False
        if not transcript.words:
            return None, f"no speech recognised in the first {config.cut_seconds:g} s of the rendered call", hit
        return asr_row(row, transcript, plan, ear.model_id), None, hit

    results: list[tuple[dict[str, Any] | None, str | None, bool] | None] = [None] * len(rows)
    ok = cached = errors = 0
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=len(rows), desc="render-asr", unit="call", disable=None) as progress:
        futures = {pool.submit(one, row): i for i, row in enumerate(rows)}
        for future in as_completed(futures):
            result = results[futures[future]] = future.result()
            row_out, error, hit = result
            ok += row_out is not None
            cached += row_out is not None and hit
            errors += error is not None
            progress.update(1)
            progress.set_postfix(ok=ok, cached=cached, errors=errors, refresh=False)

    out.parent.mkdir(parents=True, exist_ok=True)
    errors_out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out, tmp_err = out.with_name(out.name + ".tmp"), errors_out.with_name(errors_out.name + ".tmp")
    with tmp_out.open("w", encoding="utf-8") as fout, tmp_err.open("w", encoding="utf-8") as ferr:
        for row, result in zip(rows, results, strict=True):
            assert result is not None
            row_out, error, _ = result
            if row_out is not None:
                fout.write(json.dumps(row_out, ensure_ascii=False) + "\n")
            else:
                logger.warning("%s: %s", row["call_id"], error)
                ferr.write(json.dumps({"call_id": row["call_id"], "error": error}, ensure_ascii=False) + "\n")
    os.replace(tmp_out, out)
    os.replace(tmp_err, errors_out)
    report = RenderReport(out=out, errors_out=errors_out, total=len(rows), ok=ok, cached=cached, errors=errors,
                          asr_model=ear.model_id, wall_seconds=round(time.perf_counter() - started, 2))
    logger.info("render-asr -> %s: %s", out, report.summary())
    return report


def labeled_rows(
    paths: str | Path | Iterable[str | Path],
    *,
    split: str = "all",
    limit: int = 0,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Labeled rows to render, validated and split exactly as training and evaluation see them.

    Args:
        paths: Labeled ``.jsonl``/``.csv``/``.parquet`` files.
        split: ``train``, ``validation``, ``test`` or ``all``; every returned row carries its
            ``split`` (so the rendered file splits like the source).
        limit: Keep a class-stratified, seeded sample of this many rows (0 = all).
        seed: Seed of that sample.

    Returns:
        Plain row dicts (label fields, ``split``, and the row's extra keys such as ``turns``).

    Raises:
        UserError: invalid data, an unknown or empty split.
    """
    from data.dataset import SPLITS, DataConfig, load_labeled

    if split not in (*SPLITS, "all"):
        raise UserError(f"unknown split {split!r} (use train, validation, test or all)")
    dsd = load_labeled(paths, DataConfig())
    rows: list[dict[str, Any]] = []
    for name in SPLITS if split == "all" else (split,):
        for r in dsd[name]:
            row: dict[str, Any] = {
                "call_id": r["call_id"], "transcript": r["transcript"], "label": r["label"],
                "signals": list(r["signals"]) if r["signals_labeled"] else None,
                "source": r["source"], "campaign": r["campaign"], "industry": r["industry"], "split": name,
            }
            row.update({k: v for k, v in json.loads(r["extra"] or "{}").items() if k not in row})
            rows.append(row)
    if not rows:
        raise UserError(f"the {split!r} split of {paths} is empty")
    if limit and limit < len(rows):
        from sklearn.model_selection import train_test_split

        labels = [r["label"] for r in rows]
        try:
            keep, _ = train_test_split(range(len(rows)), train_size=limit, random_state=seed, stratify=labels)
        except ValueError:  # a class too small to stratify
            keep, _ = train_test_split(range(len(rows)), train_size=limit, random_state=seed)
        rows = [rows[i] for i in sorted(keep)]
    return rows


# --------------------------------------------------------------------------------------------------


def _tools() -> tuple[str, str]:
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if espeak is None or sox is None:
        raise RenderError("rendering speech needs espeak-ng and sox (apt-get install espeak-ng sox libsox-fmt-all)")
    return espeak, sox


def _run(cmd: list[str], tool: str, voice: str = "") -> None:
    try:
        run_tool(cmd, tool, voice)
    except VoiceError as e:
        raise RenderError(str(e)) from None


def _read_pcm16(path: Path) -> np.ndarray:
    import wave

    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768.0


def _write_pcm16(path: Path, audio: np.ndarray, rate: int) -> None:
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes())


def _wav_seconds(path: Path) -> float:
    import wave

    with wave.open(str(path)) as w:
        return w.getnframes() / float(w.getframerate())


def _stem(path: Path) -> str:
    return path.name[: -len(path.suffix)] if path.suffix else path.name


__all__ = ["DEFAULT_PITCHES", "DEFAULT_RATES", "DEFAULT_VOICES", "RenderConfig", "RenderError", "RenderPlan",
           "RenderReport", "TelephoneEar", "Turn", "Voice", "asr_row", "labeled_rows", "plan_for",
           "render_call_audio", "render_call_tracks", "render_cache_key", "render_rows", "render_telephone_audio",
           "turns_of"]
