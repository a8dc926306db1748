"""Typed results of the intent predictor, shared by evaluation and serving."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Evidence:
    """A span of the input text that drove a signal.

    Attributes:
        start: Character offset (inclusive) in the scored text.
        end: Character offset (exclusive).
        text: ``text[start:end]``.
        score: The strongest per-token signal probability inside the span.
        speaker: Whose words (``"caller"``/``"agent"``) when a two-channel call was scored as
            speaker-tagged text; the offsets then index that speaker's transcript. None otherwise.
    """

    start: int
    end: int
    text: str
    score: float
    speaker: str | None = None


@dataclass(frozen=True)
class SignalScore:
    """One buying-intent signal.

    Attributes:
        name: Signal name from ``models.labels.SIGNAL_NAMES``.
        probability: Sequence-level probability.
        present: ``probability >= `` the artifact's threshold for this signal.
        evidence: Spans that triggered it (empty when not present).
    """

    name: str
    probability: float
    present: bool
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True)
class IntentScores:
    """The classifier's verdict on one opening transcript.

    Attributes:
        label: The most probable class.
        probabilities: Calibrated probability per class, in schema order.
        buying_intent: ``probabilities["buying"]``.
        signals: One entry per schema signal, in schema order.
        model: ``"<name>/<version>"`` of the artifact that produced it.
    """

    label: str
    probabilities: dict[str, float]
    buying_intent: float
    signals: tuple[SignalScore, ...]
    model: str

    @property
    def present_signals(self) -> tuple[SignalScore, ...]:
        return tuple(s for s in self.signals if s.present)
