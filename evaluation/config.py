"""Typed settings of the evaluation stage: how a report is computed and what the promotion gate demands.

Both are frozen dataclasses. :class:`GatePolicy` is read from YAML (``evaluation/configs/gate.yaml``
by default) with :func:`callintent.config.load_config`, which rejects unknown keys, so a typo in a
policy can never silently switch a rule off.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from callintent.config import is_int, is_number
from models.metrics import ECE_BINS

#: The policy the promote flow uses unless ``--gate`` names another.
DEFAULT_GATE_PATH = Path(__file__).resolve().parent / "configs" / "gate.yaml"

#: ``--split`` choices; ``auto`` = ``test`` when the loaded data has a non-empty test split, else ``all``.
SPLIT_CHOICES: tuple[str, ...] = ("auto", "test", "validation", "train", "all")

VARIANT_CHOICES: tuple[str, ...] = ("int8", "fp32")


@dataclass(frozen=True)
class GatePolicy:
    """What a model must achieve on the evaluation data before it may become ``production``.

    A rule set to ``None`` is off. Floors (``*_min`` / ``*_max``) always apply, also to the very
    first model; the ``*_max_drop`` / ``*_max_rise`` tolerances apply when the model is compared
    with another one (normally ``production``) on the same calls.

    Attributes:
        min_examples: Fewest evaluated calls for the gate to mean anything; fewer fails it.
        macro_f1_min: Lowest acceptable macro-F1 (average of the per-class F1 scores).
        accuracy_min: Lowest acceptable accuracy.
        ece_max: Highest acceptable expected calibration error (how far the stated confidence
            is from the observed accuracy, on average).
        buying_recall_min: Lowest acceptable share of buying calls that the model finds.
        buying_precision_min: Lowest acceptable share of "buying" verdicts that are right.
        macro_f1_max_drop: How much lower than the compared model's macro-F1 is tolerated.
        accuracy_max_drop: How much lower than the compared model's accuracy is tolerated.
        buying_recall_max_drop: How much lower than the compared model's buying recall is
            tolerated (0 = it may not drop at all).
        buying_precision_max_drop: How much lower than the compared model's buying precision is tolerated.
        ece_max_rise: How much higher than the compared model's ECE is tolerated.
        signal_macro_f1_max_drop: How much lower than the compared model's per-signal macro-F1
            is tolerated (checked only when the data has labeled signals).
        require_comparison: Fail a registry version evaluated without ``--compare production``
            while a different production version exists (so a promotion is always judged
            against what it replaces).
    """

    min_examples: int = 50
    macro_f1_min: float | None = 0.80
    accuracy_min: float | None = None
    ece_max: float | None = 0.05
    buying_recall_min: float | None = 0.80
    buying_precision_min: float | None = None
    macro_f1_max_drop: float | None = 0.01
    accuracy_max_drop: float | None = None
    buying_recall_max_drop: float | None = 0.0
    buying_precision_max_drop: float | None = 0.02
    ece_max_rise: float | None = 0.02
    signal_macro_f1_max_drop: float | None = 0.02
    require_comparison: bool = True

    def __post_init__(self) -> None:
        if not is_int(self.min_examples) or self.min_examples < 0:
            raise ValueError(f"min_examples must be an integer >= 0, got {self.min_examples!r}")
        for f in fields(self):
            if f.name in ("min_examples", "require_comparison"):
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            if not is_number(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} must be a number between 0 and 1 (or null to turn the rule "
                                 f"off), got {value!r}")
        if not isinstance(self.require_comparison, bool):
            raise ValueError(f"require_comparison must be true or false, got {self.require_comparison!r}")


@dataclass(frozen=True)
class EvalConfig:
    """How an evaluation is computed.

    Attributes:
        variant: Which ONNX graph is scored: ``int8`` (what serving runs by default) or ``fp32``.
        split: Which rows of the data are evaluated (see :data:`SPLIT_CHOICES`).
        bootstrap_samples: Resamples for the confidence intervals (0 = no intervals).
        confidence: Confidence level of the intervals (0.95 = 95 %).
        seed: Seeds the bootstrap and every sample drawn, so a report is reproducible.
        ece_bins: Equal-width confidence bins of the calibration error and reliability diagram.
        small_slice: Slices (a source, campaign or industry) with fewer calls are flagged as too
            small to judge.
        latency_iterations: Timed ``predict`` calls per batch size (after one warm-up).
        latency_batch_sizes: Batch sizes whose latency is reported.
        max_errors_shown: Most misclassified calls listed in the report (all go to the export).
    """

    variant: str = "int8"
    split: str = "auto"
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    ece_bins: int = ECE_BINS
    small_slice: int = 30
    latency_iterations: int = 10
    latency_batch_sizes: tuple[int, ...] = (1, 32)
    max_errors_shown: int = 1000

    def __post_init__(self) -> None:
        if self.variant not in VARIANT_CHOICES:
            raise ValueError(f"variant must be one of {list(VARIANT_CHOICES)}, got {self.variant!r}")
        if self.split not in SPLIT_CHOICES:
            raise ValueError(f"split must be one of {list(SPLIT_CHOICES)}, got {self.split!r}")
        if not is_int(self.bootstrap_samples) or self.bootstrap_samples < 0:
            raise ValueError(f"bootstrap_samples must be an integer >= 0, got {self.bootstrap_samples!r}")
        if not is_number(self.confidence) or not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be a number between 0 and 1, got {self.confidence!r}")
        if not is_int(self.seed):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not is_int(self.ece_bins) or self.ece_bins < 1:
            raise ValueError(f"ece_bins must be an integer >= 1, got {self.ece_bins!r}")
        if not is_int(self.small_slice) or self.small_slice < 0:
            raise ValueError(f"small_slice must be an integer >= 0, got {self.small_slice!r}")
        if not is_int(self.latency_iterations) or self.latency_iterations < 0:
            raise ValueError(f"latency_iterations must be an integer >= 0 (0 = skip), got "
                             f"{self.latency_iterations!r}")
        if not all(is_int(b) and b >= 1 for b in self.latency_batch_sizes):
            raise ValueError(f"latency_batch_sizes must be integers >= 1, got {self.latency_batch_sizes!r}")
        if not is_int(self.max_errors_shown) or self.max_errors_shown < 0:
            raise ValueError(f"max_errors_shown must be an integer >= 0, got {self.max_errors_shown!r}")


def load_gate_policy(path: str | Path | None = None) -> GatePolicy:
    """Read a gate policy YAML (None = :data:`DEFAULT_GATE_PATH`).

    Raises:
        ConfigError: unreadable file, unknown key or bad value (the message names it).
    """
    from callintent.config import load_config

    return load_config(path if path is not None else DEFAULT_GATE_PATH, GatePolicy)
