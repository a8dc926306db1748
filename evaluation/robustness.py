"""Robustness: the same labeled calls scored from clean text and from 8 kHz telephone ASR transcripts.

Each sampled transcript is spoken by espeak-ng (voice and speed varied per call), squeezed into
what a phone line carries (sox: 8 kHz, mono, μ-law), decoded back through ``speech.audio`` and
transcribed by ``speech.asr.SpeechRecognizer`` — the path a live call takes. The renderer is
:mod:`data.render` (also behind ``callintent data render-asr``); its results are cached in the ASR
cache, so re-running a report only renders and transcribes what is new.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speech.transcript import OPENING_SECONDS
from models.labels import CLASS_NAMES

if TYPE_CHECKING:
    from speech.asr import AsrConfig, SpeechRecognizer
    from evaluation.evalset import EvalSet
    from models.predictor import IntentPredictor

logger = logging.getLogger(__name__)

#: espeak-ng voices cycled over the sample (accents and a female variant).
DEFAULT_VOICES: tuple[str, ...] = ("en-us", "en-gb", "en-us+f3", "en-gb-scotland")
#: Speaking rates (words per minute) cycled over the sample.
DEFAULT_SPEEDS: tuple[int, ...] = (150, 170, 190)


@dataclass(frozen=True)
class RobustnessConfig:
    """How the robustness sample is drawn and rendered.

    Attributes:
        n: Calls in the sample (at most the evaluation set's size).
        seed: Seeds the sample (class-balanced: classes take turns).
        voices: espeak-ng voices, cycled over the sample.
        speeds: Speaking rates in words per minute, cycled over the sample.
        cache_dir: ASR cache directory (shared with ``callintent data transcribe``).
        cut_seconds: Opening length transcribed (as in the product).
    """

    n: int = 40
    seed: int = 0
    voices: tuple[str, ...] = DEFAULT_VOICES
    speeds: tuple[int, ...] = DEFAULT_SPEEDS
    cache_dir: str = ".cache/asr"
    cut_seconds: float = OPENING_SECONDS

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n must be an integer >= 1, got {self.n!r}")
        if not self.voices or not all(isinstance(v, str) and v for v in self.voices):
            raise ValueError(f"voices must be a non-empty list of espeak-ng voice names, got {self.voices!r}")
        if not self.speeds or not all(isinstance(s, int) and 80 <= s <= 450 for s in self.speeds):
            raise ValueError(f"speeds must be words per minute between 80 and 450, got {self.speeds!r}")
        if not self.cut_seconds > 0:
            raise ValueError(f"cut_seconds must be > 0, got {self.cut_seconds!r}")


@dataclass(frozen=True)
class RobustnessClassRow:
    """One class, clean vs ASR.

    Attributes:
        name: Class name.
        support: Sampled calls of this class.
        f1_clean: F1 on the clean transcripts (None when undefined).
        f1_asr: F1 on the ASR transcripts.
    """

    name: str
    support: int
    f1_clean: float | None
    f1_asr: float | None

    @property
    def drop(self) -> float | None:
        """``f1_clean - f1_asr`` (positive = worse on audio)."""
        if self.f1_clean is None or self.f1_asr is None:
            return None
        return self.f1_clean - self.f1_asr


@dataclass(frozen=True)
class RobustnessExample:
    """One sampled call as text and as heard.

    Attributes:
        call_id, label: The call.
        clean_text, asr_text: The labeled transcript and what ASR made of its speech.
        clean_prediction, asr_prediction: The model's class for each.
        voice, wpm: How it was spoken.
    """

    call_id: str
    label: str
    clean_text: str
    asr_text: str
    clean_prediction: str
    asr_prediction: str
    voice: str
    wpm: int


@dataclass(frozen=True)
class RobustnessResult:
    """Clean-text vs telephone-ASR scores of one model on a sample.

    Attributes:
        model_id: The model.
        asr_model: ASR model id (``tiny.en@…``).
        n: Sampled calls.
        accuracy_clean, accuracy_asr: Accuracy on each.
        macro_f1_clean, macro_f1_asr: Macro-F1 on each.
        rows: Per-class F1, schema order.
        examples: Every sampled call.
        cached: Sampled calls whose ASR came from the cache.
        seconds: Wall time of the check.
    """

    model_id: str
    asr_model: str
    n: int
    accuracy_clean: float
    accuracy_asr: float
    macro_f1_clean: float
    macro_f1_asr: float
    rows: tuple[RobustnessClassRow, ...]
    examples: tuple[RobustnessExample, ...]
    cached: int
    seconds: float

    @property
    def changed(self) -> int:
        """Calls whose predicted class differs between clean text and ASR."""
        return sum(1 for e in self.examples if e.clean_prediction != e.asr_prediction)

    def to_json(self) -> dict[str, Any]:
        r = _round
        return {
            "model": self.model_id, "asr_model": self.asr_model, "n": self.n,
            "accuracy_clean": r(self.accuracy_clean), "accuracy_asr": r(self.accuracy_asr),
            "macro_f1_clean": r(self.macro_f1_clean), "macro_f1_asr": r(self.macro_f1_asr),
            "per_class": {row.name: {"support": row.support, "f1_clean": r(row.f1_clean), "f1_asr": r(row.f1_asr),
                                     "drop": r(row.drop)} for row in self.rows},
            "changed_predictions": self.changed, "asr_cached": self.cached,
        }


def telephone_transcripts(
    texts: Sequence[str],
    voices: Sequence[str],
    speeds: Sequence[int],
    *,
    recognizer: SpeechRecognizer | None = None,
    asr_config: AsrConfig | None = None,
    cache_dir: str | Path = ".cache/asr",
    cut_seconds: float = OPENING_SECONDS,
) -> tuple[list[str], int, str]:
    """What telephone ASR hears when each text is spoken (``voices[i]`` at ``speeds[i]`` wpm).

    Rendering and transcription are :class:`data.render.TelephoneEar`'s (the one renderer that
    ``callintent data render-asr`` also uses), with one voice per call and a clean line.

    Args:
        texts: Transcripts to speak.
        voices, speeds: Per-text voice and rate (same length as ``texts``).
        recognizer: A loaded recognizer (loaded lazily from ``asr_config`` on the first cache miss).
        asr_config: ASR settings when no recognizer is given (default: bundled tiny.en).
        cache_dir: ASR cache directory.
        cut_seconds: Opening length transcribed.

    Returns:
        ``(asr_texts, cache_hits, asr_model_id)``.
    """
    from data.render import RenderPlan, TelephoneEar, Turn, Voice

    ear = TelephoneEar(asr_config, cache_dir=cache_dir, cut_seconds=cut_seconds, recognizer=recognizer)
    out: list[str] = []
    hits = 0
    for text, voice, wpm in zip(texts, voices, speeds, strict=True):
        one = Voice(voice, int(wpm))
        transcript, hit = ear.hear((Turn(text),), RenderPlan(agent=one, caller=one))
        hits += hit
        out.append(transcript.text)
    return out, hits, ear.model_id


def sample_indices(labels: Sequence[int], n: int, seed: int = 0) -> list[int]:
    """A seeded, class-balanced sample of row indices (classes take turns until ``n`` or exhausted).

    Args:
        labels: Class index per row.
        n: Sample size.
        seed: Shuffle seed.

    Returns:
        Row indices, sorted.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    rank: dict[int, int] = {}
    seen: dict[int, int] = {}
    for i in order:
        c = int(labels[i])
        rank[int(i)] = seen.get(c, 0)
        seen[c] = rank[int(i)] + 1
    # Rank within class first, then the shuffled order: round-robin over classes.
    position = {int(i): p for p, i in enumerate(order)}
    chosen = sorted(rank, key=lambda i: (rank[i], position[i]))[:n]
    return sorted(chosen)


def robustness_check(
    predictor: IntentPredictor,
    eval_set: EvalSet,
    config: RobustnessConfig = RobustnessConfig(),
    *,
    recognizer: SpeechRecognizer | None = None,
    asr_config: AsrConfig | None = None,
) -> RobustnessResult:
    """Score a sample of ``eval_set`` from clean text and from telephone ASR.

    Args:
        predictor: The model.
        eval_set: Labeled calls to sample from.
        config: Sample size, voices, speeds, cache.
        recognizer: A loaded ASR recognizer to reuse.
        asr_config: ASR settings when no recognizer is given.

    Returns:
        Per-class F1 on both and the drop.
    """
    import numpy as np

    from models.labels import CLASS_INDEX
    from models.metrics import classification_metrics

    started = time.perf_counter()
    indices = sample_indices(eval_set.label_ids, config.n, config.seed)
    sample = eval_set.subset(indices)
    voices = [config.voices[i % len(config.voices)] for i in range(len(sample))]
    speeds = [config.speeds[i % len(config.speeds)] for i in range(len(sample))]
    logger.info("robustness: speaking %d calls (8 kHz μ-law) and transcribing them", len(sample))
    asr_texts, hits, asr_model = telephone_transcripts(
        sample.transcripts, voices, speeds, recognizer=recognizer, asr_config=asr_config,
        cache_dir=config.cache_dir, cut_seconds=config.cut_seconds)
    clean_scores = predictor.predict(list(sample.transcripts), evidence=False)
    asr_scores = predictor.predict(asr_texts, evidence=False)
    clean_pred = np.asarray([CLASS_INDEX[s.label] for s in clean_scores])
    asr_pred = np.asarray([CLASS_INDEX[s.label] for s in asr_scores])
    clean = classification_metrics(sample.label_ids, clean_pred)
    asr = classification_metrics(sample.label_ids, asr_pred)
    rows = tuple(RobustnessClassRow(name, clean.of(name).support, clean.of(name).f1, asr.of(name).f1)
                 for name in CLASS_NAMES)
    examples = tuple(
        RobustnessExample(call_id=sample.call_ids[i], label=sample.labels[i], clean_text=sample.transcripts[i],
                          asr_text=asr_texts[i], clean_prediction=clean_scores[i].label,
                          asr_prediction=asr_scores[i].label, voice=voices[i], wpm=speeds[i])
        for i in range(len(sample)))
    result = RobustnessResult(
        model_id=predictor.model_id, asr_model=asr_model, n=len(sample), accuracy_clean=clean.accuracy,
        accuracy_asr=asr.accuracy, macro_f1_clean=clean.macro_f1, macro_f1_asr=asr.macro_f1, rows=rows,
        examples=examples, cached=hits, seconds=time.perf_counter() - started)
    logger.info("robustness on %d calls: macro-F1 %.3f clean vs %.3f ASR (%d ASR results cached, %.1f s)",
                result.n, result.macro_f1_clean, result.macro_f1_asr, hits, result.seconds)
    return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)
