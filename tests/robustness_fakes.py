"""Stand-ins for the robustness check's renderer, ASRs and model, so its bookkeeping is testable in
well under a second: which transcript feeds which column, how WER groups by condition, and when the
live stream decides.

Each call's "audio" is a constant at a level of its own; the one-shot ear and the live stream's
scripted ASR (``evaluation.timecuts.ScriptedTranscriber``, keyed by that level) each hear their
own script of the call. The model is a keyword classifier with fixed probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from evaluation.timecuts import ScriptedTranscriber
from models.labels import CLASS_NAMES
from models.scores import IntentScores
from speech.audio import SAMPLE_RATE
from speech.transcript import OpeningTranscript, Word

#: Keyword → the class the fake model gives it (first match in the text wins).
KEYWORDS: dict[str, str] = {"buy": "buying", "bill": "service", "hours": "informational"}
#: Probability of a keyword's class (the rest is shared out evenly): above the policy's early threshold.
TOP = 0.94
#: Probability of ``noise`` for a text without a keyword: below any early threshold, so the stream
#: decides early only once it hears a keyword.
UNSURE = 0.5


def timed_words(text: str, start: float, step: float = 0.5) -> tuple[Word, ...]:
    """``text``'s words, one every ``step`` seconds from ``start``."""
    return tuple(Word(w, round(start + k * step, 3), round(start + k * step + 0.3, 3), 0.9)
                 for k, w in enumerate(text.split()))


class KeywordModel:
    """A predictor (``predict(texts, evidence=...)``) that classifies by :data:`KEYWORDS`."""

    model_id = "fake/v1"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def predict(self, texts: Sequence[str], *, evidence: bool = True) -> list[IntentScores]:
        out = []
        for text in texts:
            self.seen.append(text)
            label = next((c for k, c in KEYWORDS.items() if k in text.lower().split()), "noise")
            top = TOP if label != "noise" else UNSURE
            rest = (1.0 - top) / (len(CLASS_NAMES) - 1)
            probs = {c: top if c == label else rest for c in CLASS_NAMES}
            out.append(IntentScores(label=label, probabilities=probs, buying_intent=probs["buying"], signals=(),
                                    model=self.model_id))
        return out


class ScriptedEar:
    """A ``data.render.TelephoneEar`` whose renders are constants and whose one-shot ASR reads a script.

    Args:
        calls: Per labeled transcript: (one-shot text, streamed text, streamed words' start, audio seconds).
    """

    model_id = "scripted-asr"

    def __init__(self, calls: Mapping[str, tuple[str, str, float, float]]) -> None:
        self.calls = dict(calls)
        # float32 as the audio holds it, so the scripted ASR finds the level it reads from the samples.
        self.levels = {text: float(np.float32(0.1 + 0.05 * k)) for k, text in enumerate(self.calls)}
        self.rendered: list[str] = []

    def _text(self, turns: Sequence[object]) -> str:
        return " ".join(t.text for t in turns)  # type: ignore[attr-defined]

    def render(self, turns: Sequence[object], plan: object) -> dict[str | None, np.ndarray]:
        text = self._text(turns)
        self.rendered.append(text)
        seconds = self.calls[text][3]
        return {None: np.full(round(seconds * SAMPLE_RATE), self.levels[text], np.float32)}

    def hear(self, turns: Sequence[object], plan: object, *, audio: object = None) -> tuple[OpeningTranscript, bool]:
        text = self._text(turns)
        words = timed_words(self.calls[text][0], 0.5)
        return OpeningTranscript(words=words, audio_seconds=self.calls[text][3], cut_seconds=30.0), False

    def live_asr(self) -> ScriptedTranscriber:
        """The live stream's ASR: each call's level hears its streamed script."""
        return ScriptedTranscriber({self.levels[text]: timed_words(streamed, start)
                                    for text, (_, streamed, start, _) in self.calls.items()})
