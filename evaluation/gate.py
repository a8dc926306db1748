"""The promotion gate: a YAML policy applied to a model's metrics (and the compared model's).

The verdict is written to ``<version dir>/evaluation/gate.json`` in the shape
``models.registry.Registry.promote`` reads (``{"passed": bool, "reasons": [...], "compared_to":
"intent/v2" | null}``, plus the checks in detail), so ``callintent models promote`` refuses a
version that has not passed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callintent.config import config_to_dict
from models.labels import BUYING
from evaluation.config import GatePolicy

if TYPE_CHECKING:
    from evaluation.evaluate import ModelEvaluation

logger = logging.getLogger(__name__)

#: Where the verdict goes inside a registry version (as ``models.registry`` reads it).
EVALUATION_DIR = "evaluation"
GATE_FILE = "gate.json"
METRICS_FILE = "metrics.json"

#: Float slack so that "may not drop" does not fail on rounding noise of equal models.
_EPS = 1e-9


@dataclass(frozen=True)
class GateMetrics:
    """The numbers the gate judges, for one model on one evaluation set.

    Attributes:
        n: Calls evaluated.
        macro_f1: Macro-F1.
        accuracy: Accuracy.
        ece: Expected calibration error.
        buying_recall: Recall of the buying class (None when the data has no buying calls).
        buying_precision: Precision of the buying class (None when never predicted).
        signal_macro_f1: Per-signal macro-F1 (None when no call has labeled signals).
    """

    n: int
    macro_f1: float
    accuracy: float
    ece: float
    buying_recall: float | None
    buying_precision: float | None
    signal_macro_f1: float | None = None

    @classmethod
    def from_evaluation(cls, evaluation: ModelEvaluation) -> GateMetrics:
        buying = evaluation.classes.of(BUYING)
        return cls(n=evaluation.classes.n, macro_f1=evaluation.classes.macro_f1,
                   accuracy=evaluation.classes.accuracy, ece=evaluation.calibration.ece,
                   buying_recall=buying.recall, buying_precision=buying.precision,
                   signal_macro_f1=evaluation.signals.macro_f1)


@dataclass(frozen=True)
class GateCheck:
    """One rule of the policy, applied.

    Attributes:
        rule: The policy key (``macro_f1_min``, ``buying_recall_max_drop``…).
        passed: Whether the model met it.
        message: A sentence saying what was compared, for people.
        value: The measured value (or change) the rule judged; None when it could not be measured.
        limit: The rule's limit.
    """

    rule: str
    passed: bool
    message: str
    value: float | None = None
    limit: float | None = None


@dataclass(frozen=True)
class GateResult:
    """The gate's verdict.

    Attributes:
        passed: Every check passed.
        checks: Every rule that was on, in policy order.
        compared_to: ``"intent/v2"`` of the model compared against (None: floors only).
    """

    passed: bool
    checks: tuple[GateCheck, ...]
    compared_to: str | None = None

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why it failed (the failed checks), or what it checked when it passed."""
        failed = tuple(c.message for c in self.checks if not c.passed)
        return failed if failed else tuple(c.message for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "compared_to": self.compared_to,
            "checks": [{"rule": c.rule, "passed": c.passed, "message": c.message,
                        "value": None if c.value is None else round(c.value, 6),
                        "limit": c.limit} for c in self.checks],
        }


#: (metric attribute, plain name) of the metrics with floors/tolerances, policy order.
_HIGHER_IS_BETTER = (
    ("macro_f1", "macro-F1"),
    ("accuracy", "accuracy"),
    ("buying_recall", "buying recall"),
    ("buying_precision", "buying precision"),
)


def apply_gate(
    policy: GatePolicy,
    candidate: GateMetrics,
    baseline: GateMetrics | None = None,
    *,
    compared_to: str | None = None,
    uncompared_production: str | None = None,
) -> GateResult:
    """Judge ``candidate`` by ``policy``: floors always, tolerances against ``baseline`` when given.

    Args:
        policy: The rules.
        candidate: The model being judged.
        baseline: The model it would replace, measured on the same calls (None: floors only).
        compared_to: Name of the baseline for the record (``"intent/v2"``).
        uncompared_production: The production version when one exists, is not the candidate, and
            was not compared against (with ``policy.require_comparison`` this fails the gate).

    Returns:
        The verdict with one check per rule that is on.
    """
    checks: list[GateCheck] = []
    need = policy.min_examples
    checks.append(GateCheck("min_examples", candidate.n >= need,
                            f"evaluated on {candidate.n} calls ({'≥' if candidate.n >= need else '<'} "
                            f"{need} needed)", float(candidate.n), float(need)))
    if baseline is None and uncompared_production and policy.require_comparison:
        checks.append(GateCheck("require_comparison", False,
                                f"not compared with production {uncompared_production} "
                                "(run with --compare production)"))

    for attr, name in _HIGHER_IS_BETTER:
        floor = getattr(policy, f"{attr}_min")
        if floor is None:
            continue
        value = getattr(candidate, attr)
        if value is None:
            checks.append(GateCheck(f"{attr}_min", False, f"{name} cannot be measured on this data "
                                    f"(floor {floor:.3f})", None, floor))
        else:
            ok = value >= floor - _EPS
            checks.append(GateCheck(f"{attr}_min", ok, f"{name} {value:.3f} {'≥' if ok else '<'} floor "
                                    f"{floor:.3f}", value, floor))
    if policy.ece_max is not None:
        ok = candidate.ece <= policy.ece_max + _EPS
        checks.append(GateCheck("ece_max", ok, f"calibration error (ECE) {candidate.ece:.3f} "
                                f"{'≤' if ok else '>'} limit {policy.ece_max:.3f}", candidate.ece,
                                policy.ece_max))

    if baseline is not None:
        against = compared_to or "the compared model"
        for attr, name in (*_HIGHER_IS_BETTER, ("signal_macro_f1", "signal macro-F1")):
            tolerance = getattr(policy, f"{attr}_max_drop")
            new, old = getattr(candidate, attr), getattr(baseline, attr)
            if tolerance is None or new is None or old is None:
                continue
            drop = old - new
            ok = drop <= tolerance + _EPS
            change = f"{name} {old:.3f} → {new:.3f} ({new - old:+.3f} vs {against})"
            limit = "no drop allowed" if tolerance == 0 else f"allowed drop {tolerance:.3f}"
            checks.append(GateCheck(f"{attr}_max_drop", ok, f"{change}; {limit}", new - old, tolerance))
        if policy.ece_max_rise is not None:
            rise = candidate.ece - baseline.ece
            ok = rise <= policy.ece_max_rise + _EPS
            checks.append(GateCheck("ece_max_rise", ok,
                                    f"ECE {baseline.ece:.3f} → {candidate.ece:.3f} ({rise:+.3f} vs {against}); "
                                    f"allowed rise {policy.ece_max_rise:.3f}", rise, policy.ece_max_rise))
    return GateResult(passed=all(c.passed for c in checks), checks=tuple(checks),
                      compared_to=compared_to if baseline is not None else None)


def write_gate(
    version_dir: str | Path,
    result: GateResult,
    *,
    policy: GatePolicy,
    metrics: Mapping[str, Any] | None = None,
    report_dir: str | Path | None = None,
) -> Path:
    """Write ``<version_dir>/evaluation/gate.json`` (and ``metrics.json`` beside it).

    Both files are written atomically (temporary file + rename), so the registry never reads a
    half-written verdict.

    Args:
        version_dir: The registry version directory.
        result: The verdict.
        policy: The policy applied (recorded).
        metrics: The ``metrics.json`` content to copy beside the verdict.
        report_dir: Where the full report was written (recorded).

    Returns:
        The ``gate.json`` path.
    """
    out_dir = Path(version_dir) / EVALUATION_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {**result.to_json(), "policy": config_to_dict(policy),
               "evaluated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "report": str(Path(report_dir).absolute()) if report_dir is not None else None}
    if metrics is not None:
        payload["data"] = metrics.get("data")
        _atomic_write(out_dir / METRICS_FILE, json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    path = out_dir / GATE_FILE
    _atomic_write(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    logger.info("gate %s for %s written to %s", "PASSED" if result.passed else "FAILED", version_dir, path)
    return path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
