"""Typed transcript values shared by the offline audio pipeline and live serving."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Length of the opening the product scores, in seconds of call audio.
OPENING_SECONDS = 30.0


@dataclass(frozen=True)
class Word:
    """One recognised word with its time in the call audio.

    Attributes:
        text: The word as the ASR wrote it (leading space stripped).
        start: Start time in seconds from the start of the call audio.
        end: End time in seconds.
        probability: The ASR's word probability (1.0 for text that did not come from ASR).
        speaker: ``"caller"``, ``"agent"`` or ``None`` when channels are not separated.
    """

    text: str
    start: float
    end: float
    probability: float = 1.0
    speaker: str | None = None


@dataclass(frozen=True)
class OpeningTranscript:
    """The words of a call's opening window (by default the first 30 s), in time order.

    Attributes:
        words: Words whose *start* lies inside the window (a word straddling the cut is kept
            only if it started before it; see ``speech.asr.cut_words``).
        audio_seconds: Seconds of audio that were decoded (≤ the window).
        cut_seconds: The window length that was applied.
        language: Language code the ASR used.
        dropped_words: Words the ASR's hallucination guards removed (a phrase looped back to
            back, tokens with no letter or digit such as "." or "♪"; see ``speech.asr.guard_words``).
    """

    words: tuple[Word, ...] = field(default_factory=tuple)
    audio_seconds: float = 0.0
    cut_seconds: float = 30.0
    language: str = "en"
    dropped_words: int = 0

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words).strip()
