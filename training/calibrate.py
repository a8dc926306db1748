"""Calibration fitted on validation: class-head temperature, abstention margin, signal and buying thresholds.

* Temperature scaling: one scalar ``T`` with ``softmax(logits / T)`` minimising validation NLL
  (:func:`models.calibration.fit_temperature`). It changes confidence, never the argmax. Each
  validation row weighs ``1 / rows of its data source`` (:func:`data.sources.data_source`: the
  built-in corpus, ``sgd``, ``clinc150``…), so every source pulls on ``T`` equally: a temperature
  fitted on a validation split that is mostly corpus would be the corpus's temperature, and the
  model would stay overconfident on the real text it reads worse.
* Abstention margin: the decision policy routes a call ``undetermined`` when the margin
  ``p(top1) − p(top2)`` of its calibrated probabilities (:mod:`models.uncertainty`) is below this.
  Chosen as the smallest margin whose decided validation rows (margin at or above it) reach
  ``abstain_target_accuracy`` — the most calls decided at that accuracy — with the same per-source
  weights, never abstaining on more than ``abstain_max_share`` of validation
  (:func:`choose_abstain_margin`).
* Signal thresholds: per signal, the probability maximising F1 on validation rows whose signals
  are labeled (0.5 when validation has no positive for it; of thresholds within
  :data:`F1_TOLERANCE` of the best F1, the one closest to 0.5).
* Buying threshold: the operating point for ``buying_intent`` = calibrated P(buying) — the F1
  optimum of buying-vs-rest (same rule), or the lowest threshold reaching a precision target.

The result is stored as ``calibration.json`` in the run directory and carried into the artifact
(the temperature inside the ONNX graph, the thresholds in ``artifact.json``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from callintent.errors import UserError
from models.calibration import fit_temperature, softmax, source_weights
from models.labels import BUYING, CLASS_INDEX, SIGNAL_NAMES
from models.metrics import expected_calibration_error, negative_log_likelihood
from models.uncertainty import probability_margin, risk_coverage

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"

#: Threshold used when validation cannot tell (no labeled rows, or no positives).
DEFAULT_THRESHOLD = 0.5

#: Validation F1 differences below this are treated as noise when choosing thresholds.
F1_TOLERANCE = 0.01


@dataclass(frozen=True)
class SourceCalibration:
    """Calibration figures of the validation rows of one data source.

    Attributes:
        rows: Validation rows of the source.
        ece_before: Their expected calibration error with ``T = 1``.
        ece_after: Their ECE with the fitted ``T``.
        accuracy: Share of them predicted correctly.
        decided_share: Share of them the abstention margin decides (the rest route ``undetermined``).
    """

    rows: int
    ece_before: float
    ece_after: float
    accuracy: float
    decided_share: float = 1.0


@dataclass(frozen=True)
class Calibration:
    """What calibration fitted, and how much it helped.

    Attributes:
        temperature: Class-head temperature ``T`` (probabilities are ``softmax(logits / T)``).
        signal_thresholds: Probability at or above which each signal is present.
        buying_threshold: Operating threshold on calibrated P(buying).
        ece_before: Validation expected calibration error with ``T = 1``
            (:func:`models.metrics.expected_calibration_error`, the QA report's definition).
        ece_after: Validation ECE with the fitted ``T``.
        nll_before: Validation negative log-likelihood with ``T = 1``.
        nll_after: Validation NLL with the fitted ``T``.
        buying_precision_target: The precision target the buying threshold was chosen for (0 = F1).
        n_validation: Validation rows it was fitted on.
        abstain_margin: Calibrated ``p(top1) − p(top2)`` below which the policy abstains (0 = never);
            None when not fitted (a run from before the rule existed).
        abstain_target_accuracy: Accuracy of the decided validation rows the margin was chosen
            for (0 = no abstention asked for).
        abstain_max_share: Most of validation (weighted) the margin was allowed to abstain on.
        abstain_coverage: Share of validation (per-source weighted) the margin decides.
        abstain_accuracy: Accuracy (per-source weighted) of the validation rows it decides.
        sources: Per data source (:func:`data.sources.data_source`) of the validation rows.
    """

    temperature: float = 1.0
    signal_thresholds: dict[str, float] | None = None
    buying_threshold: float = DEFAULT_THRESHOLD
    ece_before: float = 0.0
    ece_after: float = 0.0
    nll_before: float = 0.0
    nll_after: float = 0.0
    buying_precision_target: float = 0.0
    n_validation: int = 0
    abstain_margin: float | None = None
    abstain_target_accuracy: float = 0.0
    abstain_max_share: float = 0.0
    abstain_coverage: float = 1.0
    abstain_accuracy: float = 0.0
    sources: dict[str, SourceCalibration] = field(default_factory=dict)

    def thresholds(self) -> dict[str, float]:
        """Per-signal thresholds in schema order (default for any missing)."""
        given = self.signal_thresholds or {}
        return {name: float(given.get(name, DEFAULT_THRESHOLD)) for name in SIGNAL_NAMES}

    def save(self, directory: str | Path) -> Path:
        """Write ``calibration.json`` into ``directory``."""
        path = Path(directory) / CALIBRATION_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Calibration:
        """Read ``calibration.json`` from a run directory.

        Raises:
            UserError: missing or unreadable file.
        """
        path = Path(directory) / CALIBRATION_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            raw["sources"] = {name: SourceCalibration(**v) for name, v in (raw.get("sources") or {}).items()}
            return cls(**raw)
        except FileNotFoundError:
            raise UserError(f"{path}: no calibration (is {directory} a finished training run?)") from None
        except (json.JSONDecodeError, TypeError, AttributeError) as e:
            raise UserError(f"{path}: unreadable calibration: {e}") from None


def best_threshold(scores: np.ndarray, targets: np.ndarray, *, precision_target: float = 0.0,
                   f1_tolerance: float = F1_TOLERANCE) -> float:
    """The decision threshold (``score >= t`` is positive) chosen on labeled scores.

    Args:
        scores: ``[n]`` probabilities.
        targets: ``[n]`` 0/1 truth.
        precision_target: 0 → maximise F1; otherwise the lowest threshold whose precision
            reaches the target (most recall at that precision), falling back to the F1 rule
            with a warning when no threshold reaches it.
        f1_tolerance: Thresholds whose F1 is within this of the best count as equally good;
            of those, the one closest to 0.5 is taken. On a few hundred validation rows the exact
            F1 optimum often sits in a sparse tail (one example either side decides it), which
            does not carry over to new calls.

    Returns:
        The threshold, halfway between the lowest score taken as positive and the next lower
        score; :data:`DEFAULT_THRESHOLD` when there are no positives.
    """
    import numpy as np
    from sklearn.metrics import precision_recall_curve

    targets = np.asarray(targets).astype(int)
    if len(targets) == 0 or targets.sum() == 0:
        return DEFAULT_THRESHOLD
    precision, recall, thresholds = precision_recall_curve(targets, np.asarray(scores, dtype=np.float64))
    # The last (precision, recall) point has no threshold (it is "predict nothing").
    precision, recall = precision[:-1], recall[:-1]
    # Halfway down to the next lower score: the same decisions on validation, but not sitting exactly
    # on a validation score that a re-computation (ONNX, int8) moves by 1e-7 to the other side.
    candidates = (thresholds + np.concatenate([[0.0], thresholds[:-1]])) / 2
    if precision_target > 0:
        reaching = np.flatnonzero(precision >= precision_target)
        if reaching.size:
            return float(candidates[reaching[np.argmax(recall[reaching])]])
        logger.warning("no threshold reaches precision %.3f on validation (best %.3f); using the F1 rule",
                       precision_target, precision.max())
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision),
                   where=(precision + recall) > 0)
    near_best = np.flatnonzero(f1 >= f1.max() - f1_tolerance)
    return float(candidates[near_best[np.argmin(np.abs(candidates[near_best] - 0.5))]])


def choose_abstain_margin(margins: np.ndarray, correct: np.ndarray, *, target_accuracy: float,
                          max_abstain_share: float, weights: np.ndarray | None = None) -> float:
    """The abstention threshold on the probability margin, chosen on validation.

    Rows are decided most confident first (:func:`models.uncertainty.risk_coverage`). The threshold
    is the smallest margin whose decided rows reach ``target_accuracy`` (the most rows decided at
    that accuracy), among thresholds that abstain on at most ``max_abstain_share``; when none
    reaches the target, the one abstaining on as much as allowed (with a warning).

    Args:
        margins: ``[n]`` calibrated ``p(top1) − p(top2)``.
        correct: ``[n]`` whether each row's argmax is right.
        target_accuracy: Accuracy the decided rows must reach; 0 = decide everything.
        max_abstain_share: Most of the rows (weighted) it may abstain on, in ``[0, 1]``.
        weights: ``[n]`` row weights (see :func:`models.calibration.source_weights`); None = equal.

    Returns:
        The threshold (0.0 = never abstain), halfway between the lowest decided margin and the
        next lower one, so an int8 or ONNX re-computation that moves a margin by 1e-7 does not
        flip a validation decision.
    """
    import numpy as np

    if target_accuracy <= 0 or len(margins) == 0:
        return 0.0
    curve = risk_coverage(margins, correct, weights)
    coverage, accuracy = np.asarray(curve.coverage), np.asarray(curve.accuracy)
    allowed = np.flatnonzero(coverage >= 1.0 - max_abstain_share - 1e-12)  # always holds the last point
    reaching = allowed[accuracy[allowed] >= target_accuracy]
    if reaching.size:
        k = int(reaching.max())
    else:
        k = int(allowed.min())
        logger.warning("no margin threshold reaches validation accuracy %.3f while abstaining on at most %.0f%% "
                       "(best %.3f); abstaining on %.1f%%", target_accuracy, 100 * max_abstain_share,
                       accuracy[allowed].max(), 100 * (1.0 - coverage[k]))
    if k == len(curve.thresholds) - 1:
        return 0.0
    return float((curve.thresholds[k] + curve.thresholds[k + 1]) / 2)


def fit_calibration(
    class_logits: np.ndarray,
    labels: np.ndarray,
    signal_probs: np.ndarray,
    signal_labels: np.ndarray,
    signal_mask: np.ndarray,
    *,
    buying_precision_target: float = 0.0,
    sources: Sequence[str] | None = None,
    abstain_target_accuracy: float = 0.0,
    abstain_max_share: float = 0.2,
    min_temperature: float = 0.0,
) -> Calibration:
    """Fit temperature, abstention margin and thresholds on validation predictions.

    Args:
        class_logits: ``[n, n_classes]`` uncalibrated class logits.
        labels: ``[n]`` true class indices.
        signal_probs: ``[n, n_signals]`` sequence signal probabilities.
        signal_labels: ``[n, n_signals]`` multi-hot truth.
        signal_mask: ``[n]`` 1 where the row's signals are labeled.
        buying_precision_target: See :func:`best_threshold` (0 = maximise F1).
        sources: ``[n]`` data source of each row (:func:`data.sources.data_source`); the
            temperature and the abstention margin weigh every source equally. None = one source.
        abstain_target_accuracy: See :func:`choose_abstain_margin` (0 = never abstain).
        abstain_max_share: See :func:`choose_abstain_margin`.
        min_temperature: The lowest temperature kept (0 = as fitted). Validation from the
            training sources is easy, so the fit often sharpens (T < 1); on a source the model
            never saw that sharpening is overconfidence (see ``TrainConfig.min_temperature``).

    Returns:
        The fitted :class:`Calibration`.
    """
    import numpy as np

    labels = np.asarray(labels).astype(int)
    if len(labels) == 0:
        logger.warning("validation split is empty: no calibration (T=1, thresholds %.1f)", DEFAULT_THRESHOLD)
        return Calibration(signal_thresholds={s: DEFAULT_THRESHOLD for s in SIGNAL_NAMES},
                           buying_precision_target=buying_precision_target)
    sources = list(sources) if sources is not None else ["all"] * len(labels)
    if len(sources) != len(labels):
        raise ValueError(f"{len(sources)} sources for {len(labels)} validation rows")
    weights = source_weights(sources)
    before = softmax(class_logits)
    temperature = fit_temperature(class_logits, labels, weights=weights)
    if temperature < min_temperature:
        logger.info("temperature %.3f fitted on validation raised to min_temperature %.3f", temperature,
                    min_temperature)
        temperature = float(min_temperature)
    after = softmax(class_logits, temperature)
    correct = after.argmax(axis=1) == labels
    margins = probability_margin(after)
    abstain_margin = choose_abstain_margin(margins, correct, target_accuracy=abstain_target_accuracy,
                                           max_abstain_share=abstain_max_share, weights=weights)
    decided = margins >= abstain_margin

    labeled = np.asarray(signal_mask) > 0.5
    thresholds = {name: best_threshold(signal_probs[labeled, j], signal_labels[labeled, j])
                  for j, name in enumerate(SIGNAL_NAMES)}
    buying = CLASS_INDEX[BUYING]
    buying_threshold = best_threshold(after[:, buying], labels == buying, precision_target=buying_precision_target)

    calibration = Calibration(
        temperature=temperature,
        signal_thresholds=thresholds,
        buying_threshold=buying_threshold,
        ece_before=expected_calibration_error(labels, before),
        ece_after=expected_calibration_error(labels, after),
        nll_before=negative_log_likelihood(labels, before),
        nll_after=negative_log_likelihood(labels, after),
        buying_precision_target=buying_precision_target,
        n_validation=int(len(labels)),
        abstain_margin=abstain_margin,
        abstain_target_accuracy=abstain_target_accuracy,
        abstain_max_share=abstain_max_share,
        abstain_coverage=float(np.sum(weights * decided) / np.sum(weights)),
        abstain_accuracy=float(np.sum(weights * decided * correct) / max(np.sum(weights * decided), 1e-12)),
        sources=per_source_calibration(before, after, labels, sources, decided),
    )
    logger.info("calibration: T=%.3f, ECE %.4f -> %.4f, NLL %.4f -> %.4f, buying threshold %.3f, abstain margin "
                "%.3f (decides %.1f%% of validation at accuracy %.3f)", temperature, calibration.ece_before,
                calibration.ece_after, calibration.nll_before, calibration.nll_after, buying_threshold,
                abstain_margin, 100 * calibration.abstain_coverage, calibration.abstain_accuracy)
    for name, sc in calibration.sources.items():
        logger.info("calibration on %s (%d rows): ECE %.4f -> %.4f, accuracy %.3f, decided %.1f%%", name, sc.rows,
                    sc.ece_before, sc.ece_after, sc.accuracy, 100 * sc.decided_share)
    return calibration


def per_source_calibration(before: np.ndarray, after: np.ndarray, labels: np.ndarray, sources: Sequence[str],
                           decided: np.ndarray) -> dict[str, SourceCalibration]:
    """ECE before/after, accuracy and decided share of each data source's rows.

    Args:
        before: ``[n, n_classes]`` probabilities with ``T = 1``.
        after: ``[n, n_classes]`` calibrated probabilities.
        labels: ``[n]`` true class indices.
        sources: ``[n]`` data source per row.
        decided: ``[n]`` whether the abstention margin decides the row.

    Returns:
        Source name → figures, sources in name order.
    """
    import numpy as np

    names = np.asarray(list(sources), dtype=object)
    out = {}
    for name in sorted(set(names.tolist())):
        rows = names == name
        out[name] = SourceCalibration(
            rows=int(rows.sum()),
            ece_before=expected_calibration_error(labels[rows], before[rows]),
            ece_after=expected_calibration_error(labels[rows], after[rows]),
            accuracy=float((after[rows].argmax(axis=1) == labels[rows]).mean()),
            decided_share=float(np.asarray(decided)[rows].mean()),
        )
    return out
