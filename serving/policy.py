"""The routing decision: calibrated scores + call metadata → ``priority_sales`` / ``standard`` / ``screen``.

The classifier says *what* a call is; this module says *what to do with it*, by thresholds that
the business sets per traffic segment in ``serving/configs/policy.yaml`` (a paid-search campaign
may route to sales at a lower buying intent than organic traffic). Segments are matched against
the call metadata (``source``, ``campaign`` or any other key the telephony platform sends) in
file order; the first match wins, else ``default`` applies.

Two entry points:

* :meth:`DecisionPolicy.decide` (REST, and the stream at the end of the window or on stop)
  always returns a :class:`Decision`; when even the most likely class is below
  ``abstain_below``, or the two most likely classes are closer than the abstention margin, it
  routes ``undetermined`` and says so.
* :meth:`DecisionPolicy.early_decision` (live stream) returns ``None`` until one class is
  probable enough (``early_threshold``) after at least ``min_audio_seconds`` of audio, and never
  while the margin is below the abstention margin.

The abstention margin is a calibrated uncertainty rule: ``p(top1) − p(top2)``
(:func:`models.uncertainty.margin_of`) below a threshold that training chose on validation and
export stored in the artifact (``ArtifactMeta.abstain_margin``); the service passes it in, and a
segment's (or the default's) ``abstain_margin`` in ``policy.yaml`` overrides it. An artifact
without one and no override: no margin rule, decisions as before it existed.

Every decision carries human-readable reasons: the threshold comparison that decided it and the
present signals with their evidence text. Evidence text is shown as given, so callers pass
scores whose evidence was already redacted (see :func:`serving.redact.redact_scores`).
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeVar

from callintent.config import load_config
from models.labels import BUYING, CLASS_NAMES
from models.scores import IntentScores
from models.uncertainty import margin_of

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The policy file used when none is given.
DEFAULT_POLICY_PATH = Path(__file__).resolve().parent / "configs" / "policy.yaml"

ROUTES = ("priority_sales", "standard", "screen", "undetermined")

#: Top-level sections of the policy file that other modules read with their own loaders (the
#: decision skips them): ``next_steps`` (serving/screen_pop.py), ``callbacks`` (serving/callbacks.py),
#: ``webhooks`` (serving/webhook_policy.py).
OTHER_SECTIONS = ("next_steps", "callbacks", "webhooks")
NOISE = "noise"

#: Evidence quotes longer than this are cut in reasons (reasons are for people, not storage).
_MAX_QUOTE_CHARS = 60


@dataclass(frozen=True)
class Decision:
    """What to do with a call, and why.

    Attributes:
        route: ``priority_sales`` | ``standard`` | ``screen`` | ``undetermined``.
        label: The class the decision is based on.
        buying_intent: Calibrated P(buying) at decision time.
        confidence: Calibrated probability of ``label``.
        reasons: The threshold comparison that decided it, then one entry per present signal
            with its evidence, e.g. ``"signal price_inquiry: 'how much would it cost'"``.
        segment: Name of the policy segment that applied (``"default"`` when none matched).
        audio_seconds: Seconds of call audio the decision was made on (None for text scoring).
        early: Made before the opening window ended or the caller stopped the stream.
    """

    route: str
    label: str
    buying_intent: float
    confidence: float
    reasons: tuple[str, ...]
    segment: str
    audio_seconds: float | None = None
    early: bool = False

    def to_json(self) -> dict:
        """The wire form (see ``serving/live_call.py`` for where it appears)."""
        return {
            "route": self.route, "label": self.label, "buying_intent": round(self.buying_intent, 4),
            "confidence": round(self.confidence, 4), "reasons": list(self.reasons), "segment": self.segment,
            "audio_seconds": None if self.audio_seconds is None else round(self.audio_seconds, 3),
            "early": self.early,
        }


@dataclass(frozen=True)
class Thresholds:
    """The thresholds of one segment (all probabilities are calibrated, in [0, 1]).

    Attributes:
        priority_threshold: ``buying_intent >=`` this routes ``priority_sales``.
        screen_threshold: P(noise) ``>=`` this routes ``screen`` (spam, wrong number, robocall).
        early_threshold: On a live stream, decide before the window ends once buying_intent or
            the probability of any other class reaches this. Must be at least the two above, so
            an early decision is never less sure than a final one.
        min_audio_seconds: No early decision before this much audio (the first words are rarely
            enough, and ASR of a one-second buffer is unreliable).
        abstain_below: When the most probable class is below this at the end, route
            ``undetermined`` instead of guessing.
        abstain_margin: Route ``undetermined`` when ``p(top1) − p(top2)`` is below this (and make
            no early decision). None = the model artifact's margin chosen on validation (no margin
            rule when the artifact has none); 0 = off for this segment.
    """

    priority_threshold: float = 0.80
    screen_threshold: float = 0.70
    early_threshold: float = 0.90
    min_audio_seconds: float = 4.0
    abstain_below: float = 0.40
    abstain_margin: float | None = None

    def __post_init__(self) -> None:
        if self.abstain_margin is not None and not 0.0 <= self.abstain_margin <= 1.0:
            raise ValueError(f"abstain_margin must be a probability margin in [0, 1] (or unset: the model's), got "
                             f"{self.abstain_margin!r}")
        for name in ("priority_threshold", "screen_threshold", "early_threshold", "abstain_below"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        if self.min_audio_seconds < 0:
            raise ValueError(f"min_audio_seconds must be >= 0, got {self.min_audio_seconds!r}")
        if self.early_threshold < max(self.priority_threshold, self.screen_threshold):
            raise ValueError(f"early_threshold must be >= priority_threshold and screen_threshold "
                             f"(an early decision needs more confidence than a final one), got "
                             f"{self.early_threshold} < {max(self.priority_threshold, self.screen_threshold)}")
        if self.abstain_below > min(self.priority_threshold, self.screen_threshold):
            raise ValueError(f"abstain_below must be <= priority_threshold and screen_threshold, got "
                             f"{self.abstain_below}")


_THRESHOLD_FIELDS = tuple(f.name for f in fields(Thresholds))


@dataclass(frozen=True)
class Segment:
    """A traffic segment with its own thresholds.

    Attributes:
        name: Shown in decisions and metrics (``"google_ads"``); must be unique, not ``default``.
        match: Metadata key → value; all must match (case-insensitive, ``*``/``?`` globs allowed,
            e.g. ``campaign: "spring-*"``). A key missing from the call's metadata never matches.
        priority_threshold: Overrides the default's (None = inherit). Same for the fields below.
        screen_threshold: See :class:`Thresholds`.
        early_threshold: See :class:`Thresholds`.
        min_audio_seconds: See :class:`Thresholds`.
        abstain_below: See :class:`Thresholds`.
        abstain_margin: See :class:`Thresholds`.
    """

    name: str
    match: dict[str, str] = field(default_factory=dict)
    priority_threshold: float | None = None
    screen_threshold: float | None = None
    early_threshold: float | None = None
    min_audio_seconds: float | None = None
    abstain_below: float | None = None
    abstain_margin: float | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("segments[].name must not be empty")
        if self.name == "default":
            raise ValueError("segments[].name 'default' is reserved for the default thresholds")
        if not self.match:
            raise ValueError(f"segments[{self.name}].match must name at least one metadata key "
                             f"(put catch-all thresholds under default)")

    def matches(self, metadata: Mapping[str, str]) -> bool:
        for key, pattern in self.match.items():
            value = metadata.get(key)
            if value is None or not fnmatch.fnmatchcase(str(value).lower(), pattern.lower()):
                return False
        return True

    def resolve(self, default: Thresholds) -> Thresholds:
        """This segment's thresholds, inheriting unset ones from ``default`` (validated together)."""
        values = {name: getattr(default, name) for name in _THRESHOLD_FIELDS}
        values.update({name: getattr(self, name) for name in _THRESHOLD_FIELDS if getattr(self, name) is not None})
        try:
            return Thresholds(**values)
        except ValueError as e:
            raise ValueError(f"segments[{self.name}]: {e}") from None


@dataclass(frozen=True)
class PolicyConfig:
    """The decision policy file.

    Attributes:
        default: Thresholds for calls no segment matches.
        segments: Tried in order; the first whose ``match`` fits the call's metadata applies.
    """

    default: Thresholds = field(default_factory=Thresholds)
    segments: tuple[Segment, ...] = ()

    def __post_init__(self) -> None:
        names = [s.name for s in self.segments]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"segments names must be unique, {duplicates[0]!r} appears twice")
        for segment in self.segments:
            segment.resolve(self.default)  # fail at load time, not on the first matching call


def load_policy_section(path: str | Path | None, key: str, section: type[T]) -> T:
    """One of :data:`OTHER_SECTIONS` of a policy file, read into ``section`` (a dataclass with one field, ``key``).

    Every other top-level key is left to its own reader, so a typo'd key in this section is still
    an error that names it (``callbacks.intents.buyng``), and ``section``'s defaults apply when the
    file leaves the section out.

    Args:
        path: The policy YAML (None: the shipped ``serving/configs/policy.yaml``).
        key: The section's top-level key.
        section: The wrapper dataclass to load the file into.

    Raises:
        ConfigError: unreadable file, not a mapping, or a bad key or value in the section.
    """
    import yaml

    from callintent.config import ConfigError

    path = DEFAULT_POLICY_PATH if path is None else Path(path)
    try:
        keys = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        keys = {}  # load_config reads it again and says what is wrong
    if not isinstance(keys, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values")
    return load_config(path, section, ignore=[k for k in keys if k != key])


class DecisionPolicy:
    """Applies a :class:`PolicyConfig` to scores.

    Args:
        config: The policy (thresholds per segment).
        model_abstain_margin: The scoring model's abstention margin (``ArtifactMeta.abstain_margin``),
            used where the policy sets no ``abstain_margin``; None = no margin rule there.
    """

    def __init__(self, config: PolicyConfig | None = None, *, model_abstain_margin: float | None = None) -> None:
        if model_abstain_margin is not None and not 0.0 <= model_abstain_margin <= 1.0:
            raise ValueError(f"model_abstain_margin must be in [0, 1] or None, got {model_abstain_margin!r}")
        self.config = config or PolicyConfig()
        self.model_abstain_margin = model_abstain_margin
        self._resolved = tuple((s, s.resolve(self.config.default)) for s in self.config.segments)

    @classmethod
    def from_yaml(cls, path: str | Path | None = None, *, model_abstain_margin: float | None = None) -> DecisionPolicy:
        """Load a policy file (``None`` → ``serving/configs/policy.yaml``).

        Args:
            path: The policy file.
            model_abstain_margin: See :class:`DecisionPolicy` (pass the loaded artifact's).

        Raises:
            ConfigError: unreadable file, unknown key, wrong type or inconsistent thresholds.
        """
        path = DEFAULT_POLICY_PATH if path is None else Path(path)
        config = load_config(path, PolicyConfig, ignore=OTHER_SECTIONS)
        policy = cls(config, model_abstain_margin=model_abstain_margin)
        logger.info("decision policy %s: %d segments, model abstention margin %s", path, len(policy.config.segments),
                    "none" if model_abstain_margin is None else f"{model_abstain_margin:.3f}")
        return policy

    def abstain_margin(self, thresholds: Thresholds) -> tuple[float, str]:
        """The margin below which a segment abstains, and where it came from.

        Args:
            thresholds: The segment's resolved thresholds.

        Returns:
            ``(margin, origin)``: the policy's ``abstain_margin`` (origin ``"policy"``), else the
            model's (``"model"``), else ``(0.0, "none")`` — a margin is never below 0, so 0 never abstains.
        """
        if thresholds.abstain_margin is not None:
            return thresholds.abstain_margin, "policy"
        if self.model_abstain_margin is not None:
            return self.model_abstain_margin, "model"
        return 0.0, "none"

    def segment_for(self, metadata: Mapping[str, str]) -> tuple[str, Thresholds]:
        """The name and thresholds of the first segment matching ``metadata`` (else ``default``)."""
        for segment, thresholds in self._resolved:
            if segment.matches(metadata):
                return segment.name, thresholds
        return "default", self.config.default

    def decide(self, scores: IntentScores, metadata: Mapping[str, str], *,
               audio_seconds: float | None = None, early: bool = False) -> Decision:
        """Always decide (REST scoring, end of the stream window, stream stop).

        Args:
            scores: Calibrated scores (evidence already redacted where that matters).
            metadata: Call metadata (``source``, ``campaign``…) that selects the segment.
            audio_seconds: Audio the scores were made on (None for text).
            early: Mark the decision as made before the window ended (a stream deadline).

        Returns:
            The decision; ``undetermined`` when the top class is below ``abstain_below`` or the
            margin between the two most likely classes is below the abstention margin.
        """
        segment, t = self.segment_for(metadata)
        label, top = _top(scores)
        if top < t.abstain_below:
            reason = f"top class {label} {top:.2f} < abstain_below {t.abstain_below:.2f} (segment {segment})"
            return self._decision("undetermined", label, scores, segment, [reason], audio_seconds, early)
        margin_reason = self._below_margin(scores, segment, t)
        if margin_reason:
            return self._decision("undetermined", label, scores, segment, [margin_reason], audio_seconds, early)
        noise = scores.probabilities.get(NOISE, 0.0)
        if scores.buying_intent >= t.priority_threshold:
            reason = f"buying_intent {scores.buying_intent:.2f} >= {t.priority_threshold:.2f} (segment {segment})"
            return self._decision("priority_sales", BUYING, scores, segment, [reason], audio_seconds, early)
        if noise >= t.screen_threshold:
            reason = f"P(noise) {noise:.2f} >= screen_threshold {t.screen_threshold:.2f} (segment {segment})"
            return self._decision("screen", NOISE, scores, segment, [reason], audio_seconds, early)
        reasons = [f"buying_intent {scores.buying_intent:.2f} < {t.priority_threshold:.2f} (segment {segment})"]
        if label != BUYING:
            reasons.append(f"most likely {label} {top:.2f}")
        return self._decision("standard", label, scores, segment, reasons, audio_seconds, early)

    def early_decision(self, scores: IntentScores, metadata: Mapping[str, str],
                       audio_seconds: float) -> Decision | None:
        """Decide mid-stream only when confident; otherwise ``None`` (keep listening).

        Args:
            scores: Scores of the transcript so far.
            metadata: Call metadata that selects the segment.
            audio_seconds: Audio heard so far.

        Returns:
            A decision with ``early=True`` once ``audio_seconds >= min_audio_seconds`` and
            buying_intent, or the probability of another class, reaches ``early_threshold``, and
            the margin is not below the abstention margin.
        """
        segment, t = self.segment_for(metadata)
        if audio_seconds < t.min_audio_seconds or self._below_margin(scores, segment, t):
            return None
        at = f"at {audio_seconds:.1f} s (segment {segment})"
        if scores.buying_intent >= t.early_threshold:
            reason = f"buying_intent {scores.buying_intent:.2f} >= early_threshold {t.early_threshold:.2f} {at}"
            return self._decision("priority_sales", BUYING, scores, segment, [reason], audio_seconds, True)
        label, top = _top(scores)
        if label != BUYING and top >= t.early_threshold:
            route = "screen" if label == NOISE else "standard"
            reason = f"P({label}) {top:.2f} >= early_threshold {t.early_threshold:.2f} {at}"
            return self._decision(route, label, scores, segment, [reason], audio_seconds, True)
        return None

    def _below_margin(self, scores: IntentScores, segment: str, t: Thresholds) -> str:
        """The abstention reason when the margin is below the segment's abstention margin, else ``""``."""
        threshold, origin = self.abstain_margin(t)
        margin = margin_of(scores.probabilities)
        if margin >= threshold:
            return ""
        first, second = _top_two(scores)
        return (f"margin {margin:.3f} ({first} {scores.probabilities[first]:.2f} - {second} "
                f"{scores.probabilities[second]:.2f}) < abstain_margin {threshold:.3f} ({origin}, segment {segment})")

    @staticmethod
    def _decision(route: str, label: str, scores: IntentScores, segment: str, reasons: list[str],
                  audio_seconds: float | None, early: bool) -> Decision:
        reasons = reasons + signal_reasons(scores)
        decision = Decision(route=route, label=label, buying_intent=float(scores.buying_intent),
                            confidence=float(scores.probabilities.get(label, 0.0)), reasons=tuple(reasons),
                            segment=segment, audio_seconds=audio_seconds, early=early)
        logger.debug("decision %s (%s %.2f, segment %s, early=%s)", route, label, decision.confidence, segment, early)
        return decision


def signal_reasons(scores: IntentScores) -> list[str]:
    """``"signal price_inquiry: 'how much would it cost'"`` for each present signal."""
    out = []
    for signal in scores.present_signals:
        quotes = [_quote(ev.text) for ev in signal.evidence if ev.text.strip()]
        if quotes:
            out.append(f"signal {signal.name}: {', '.join(quotes)}")
        else:
            out.append(f"signal {signal.name} ({signal.probability:.2f})")
    return out


def _quote(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _MAX_QUOTE_CHARS:
        text = text[:_MAX_QUOTE_CHARS - 1] + "…"
    return f"'{text}'"


def _top(scores: IntentScores) -> tuple[str, float]:
    """The most probable class (ties broken by schema order) and its probability."""
    best = _top_two(scores)[0]
    return best, float(scores.probabilities.get(best, 0.0))


def _top_two(scores: IntentScores) -> tuple[str, str]:
    """The two most probable classes (ties broken by schema order)."""
    ranked = sorted(CLASS_NAMES, key=lambda c: (-scores.probabilities.get(c, 0.0), CLASS_NAMES.index(c)))
    return ranked[0], ranked[1]


__all__ = ["DEFAULT_POLICY_PATH", "ROUTES", "Decision", "DecisionPolicy", "PolicyConfig", "Segment", "Thresholds",
           "signal_reasons"]
