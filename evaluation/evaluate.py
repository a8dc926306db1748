"""One model on one evaluation set: score it, compute every metric, and say it as JSON.

:func:`evaluate_model` is the stage's entry point; the report, the comparison, the gate and the
review export all read the :class:`ModelEvaluation` it returns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.labels import BUYING, CLASS_NAMES, SIGNAL_NAMES
from evaluation.config import EvalConfig

if TYPE_CHECKING:
    from evaluation.evalset import EvalSet
    from evaluation.metrics import PrCurve, RiskCoverageCurve, SliceMetrics
    from evaluation.scoring import LatencyStat, ScoredSet
    from models.artifact import ArtifactMeta
    from models.metrics import ClassificationMetrics, Reliability, SignalSummary
    from models.predictor import IntentPredictor
    from models.registry import Registry

logger = logging.getLogger(__name__)

#: Keys of the artifact metadata where export records how many label corrections training used
#: (first found wins): ``meta.extra["corrections_applied"]``, then ``meta.metrics["corrections_applied"]``.
CORRECTIONS_KEY = "corrections_applied"

#: Fields the report slices by.
SLICE_FIELDS = ("source", "campaign", "industry")

#: The slice by data set (:func:`data.sources.data_source`: ``corpus``, ``sgd``, ``clinc150``…),
#: shown before :data:`SLICE_FIELDS` when the evaluated calls come from more than one.
DATA_SOURCE_FIELD = "data_source"

#: Coverages at which ``metrics.json`` lists the risk–coverage accuracy.
RISK_COVERAGE_POINTS = (0.5, 0.8, 0.9, 0.95, 1.0)

#: At most this many risk–coverage points go into ``metrics.json`` (evenly spaced, ends kept).
_MAX_CURVE_POINTS = 101


@dataclass(frozen=True)
class ModelRef:
    """A model as the user named it and as it was found.

    Attributes:
        ref: What the user gave (``candidate``, ``v3``, ``intent/v3``, a directory).
        model_id: ``"<name>/<version>"`` from the artifact (``"<name>/unregistered"`` outside the registry).
        directory: The artifact directory.
        registry_version: ``"<name>/v<N>"`` when the directory is a registry version, else None
            (only registry versions get a ``gate.json``).
        meta: The artifact metadata.
    """

    ref: str
    model_id: str
    directory: Path
    registry_version: str | None
    meta: ArtifactMeta

    @property
    def corrections_used(self) -> int | None:
        """Label corrections the model's training data used, as export recorded it (None: not recorded)."""
        for source in (self.meta.extra, self.meta.metrics):
            value = source.get(CORRECTIONS_KEY) if isinstance(source, dict) else None
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return None


def resolve_model(ref: str | Path, registry: Registry | None = None) -> ModelRef:
    """Find a model by registry reference or artifact directory.

    Args:
        ref: ``production``, ``candidate``, ``v3``, ``intent/v3``, ``intent:production`` or a directory.
        registry: Registry to look in (default ``Registry()``: ``$CALLINTENT_REGISTRY`` or ``models/registry``).

    Returns:
        The resolved model.

    Raises:
        RegistryError: nothing by that reference.
    """
    from models.artifact import ArtifactMeta
    from models.registry import Registry, RegistryError

    registry = registry or Registry()
    directory = registry.resolve(str(ref))
    version: str | None
    try:
        version = registry.show(str(directory)).ref
    except RegistryError:
        version = None
    meta = ArtifactMeta.load(directory)
    model_id = version or f"{meta.name}/{meta.version or 'unregistered'}"
    return ModelRef(ref=str(ref), model_id=model_id, directory=Path(directory), registry_version=version,
                    meta=meta)


@dataclass(frozen=True)
class ModelEvaluation:
    """Everything measured for one model on one evaluation set.

    Attributes:
        model: Which model.
        data: The calls.
        scored: The model's outputs.
        classes: Intent-class metrics.
        calibration: ECE and reliability bins.
        pr_curve: Buying-intent precision-recall curve at the artifact's operating point.
        signals: Per-signal metrics over the rows with labeled signals.
        slices: Metrics per data source / source / campaign / industry value (with ECE).
        risk_coverage: Accuracy of the decided calls against the share decided, by probability
            margin, with the artifact's abstention margin as the operating point.
        latency: ``predict`` timings (empty when not measured).
        config: The settings used.
    """

    model: ModelRef
    data: EvalSet
    scored: ScoredSet
    classes: ClassificationMetrics
    calibration: Reliability
    pr_curve: PrCurve
    signals: SignalSummary
    slices: tuple[SliceMetrics, ...]
    latency: tuple[LatencyStat, ...]
    config: EvalConfig
    risk_coverage: RiskCoverageCurve

    @property
    def error_indices(self) -> tuple[int, ...]:
        """Rows whose predicted class differs from the label, most confident mistakes first."""
        import numpy as np

        wrong = np.flatnonzero(self.scored.pred_ids != self.data.label_ids)
        confidence = self.scored.class_probs[wrong, self.scored.pred_ids[wrong]]
        return tuple(int(i) for i in wrong[np.argsort(-confidence, kind="stable")])

    def to_json(self) -> dict[str, Any]:
        """The ``metrics.json`` view (plain numbers; None where a value is undefined on this data)."""
        c = self.classes
        buying = c.of(BUYING)
        out: dict[str, Any] = {
            "model": {
                "id": self.model.model_id, "ref": self.model.ref, "path": str(self.model.directory),
                "variant": self.scored.variant, "registry_version": self.model.registry_version,
                "buying_threshold": self.model.meta.buying_threshold,
                "abstain_margin": self.model.meta.abstain_margin,
                "signal_thresholds": dict(zip(SIGNAL_NAMES, self.scored.signal_thresholds)),
                "corrections_used": self.model.corrections_used,
                "data_fingerprint": self.model.meta.data_fingerprint,
            },
            "data": {
                "files": list(self.data.files), "split": self.data.split, "n": len(self.data),
                "fingerprint": self.data.fingerprint, "signals_labeled": self.signals.rows,
                "corrections_applied": self.data.corrections_applied,
                "text_form": self.data.text_form, "two_channel_calls": self.data.converted_calls,
                "class_counts": {cm.name: cm.support for cm in c.per_class},
            },
            "accuracy": _r(c.accuracy),
            "accuracy_ci": _ci(c.accuracy_ci),
            "macro_f1": _r(c.macro_f1),
            "macro_f1_ci": _ci(c.macro_f1_ci),
            "ece": _r(self.calibration.ece),
            "buying_precision": _r(buying.precision),
            "buying_recall": _r(buying.recall),
            "per_class": {
                cm.name: {"precision": _r(cm.precision), "recall": _r(cm.recall), "f1": _r(cm.f1),
                          "support": cm.support, "predicted": cm.predicted,
                          "precision_ci": _ci(cm.precision_ci), "recall_ci": _ci(cm.recall_ci),
                          "f1_ci": _ci(cm.f1_ci)}
                for cm in c.per_class
            },
            "confusion_matrix": {"classes": list(c.classes), "matrix": [list(r) for r in c.confusion],
                                 "note": "rows: labeled class, columns: predicted class"},
            "buying_pr": {
                "average_precision": _r(self.pr_curve.average_precision),
                "threshold": _r(self.pr_curve.threshold),
                "precision_at_threshold": _r(self.pr_curve.operating_precision),
                "recall_at_threshold": _r(self.pr_curve.operating_recall),
                "positives": self.pr_curve.positives,
            },
            "calibration": {
                "ece": _r(self.calibration.ece), "bins": [
                    {"low": _r(b.low), "high": _r(b.high), "count": b.count, "confidence": _r(b.confidence),
                     "accuracy": _r(b.accuracy)} for b in self.calibration.bins],
            },
            "signals": {
                "rows": self.signals.rows, "macro_f1": _r(self.signals.macro_f1),
                "micro_f1": _r(self.signals.micro_f1),
                "per_signal": {s.name: {"precision": _r(s.precision), "recall": _r(s.recall), "f1": _r(s.f1),
                                        "support": s.support, "predicted": s.predicted}
                               for s in self.signals.per_signal},
            },
            "slices": [{"field": s.field, "value": s.value, "n": s.n, "accuracy": _r(s.accuracy),
                        "macro_f1": _r(s.macro_f1), "buying_recall": _r(s.buying_recall), "ece": _r(s.ece),
                        "small": s.small}
                       for s in self.slices],
            "risk_coverage": _risk_coverage_json(self.risk_coverage),
            "latency_ms": {f"batch_{stat.batch_size}": {"p50": _r(stat.p50_ms, 3), "p95": _r(stat.p95_ms, 3),
                                                        "iterations": stat.iterations}
                           for stat in self.latency},
            "misclassified": len(self.error_indices),
            "settings": {"bootstrap_samples": self.config.bootstrap_samples,
                         "confidence": self.config.confidence, "seed": self.config.seed,
                         "ece_bins": self.config.ece_bins, "small_slice": self.config.small_slice},
        }
        return out


def evaluate_model(
    model: ModelRef,
    eval_set: EvalSet,
    config: EvalConfig = EvalConfig(),
    *,
    predictor: IntentPredictor | None = None,
    measure_speed: bool = True,
) -> ModelEvaluation:
    """Score ``eval_set`` with ``model`` and compute every report metric.

    Args:
        model: The model (see :func:`resolve_model`).
        eval_set: The labeled calls.
        config: Variant, bootstrap, bins, slice and latency settings.
        predictor: An already loaded predictor for ``model`` (loaded from ``model.directory``
            with ``config.variant`` when None).
        measure_speed: Time ``predict`` (``config.latency_*``); off for quick tests.

    Returns:
        The evaluation.
    """
    from evaluation.scoring import measure_latency, score_eval_set
    from models.predictor import IntentPredictor

    if predictor is None:
        predictor = IntentPredictor.load(model.directory, variant=config.variant)
    scored = score_eval_set(predictor, eval_set)
    latency = ()
    if measure_speed:
        latency = measure_latency(predictor, eval_set.transcripts, batch_sizes=config.latency_batch_sizes,
                                  iterations=config.latency_iterations, seed=config.seed)
    return evaluation_from_scores(model, eval_set, scored, config, latency=latency)


def evaluation_from_scores(
    model: ModelRef,
    eval_set: EvalSet,
    scored: ScoredSet,
    config: EvalConfig = EvalConfig(),
    *,
    latency: tuple[LatencyStat, ...] = (),
) -> ModelEvaluation:
    """Every report metric from a model's outputs (pure: no model is run).

    Args:
        model: The model the outputs came from.
        eval_set: The labeled calls.
        scored: The outputs, in ``eval_set`` order.
        config: Bootstrap, bins and slice settings.
        latency: Timings to carry along.

    Returns:
        The evaluation.
    """
    import numpy as np

    from data.sources import data_sources
    from evaluation.metrics import buying_pr_curve, risk_coverage_curve, slice_metrics
    from models.metrics import classification_metrics, reliability, signal_metrics

    if len(scored.pred_ids) != len(eval_set):
        raise ValueError(f"{len(scored.pred_ids)} scores for {len(eval_set)} calls")
    classes = classification_metrics(eval_set.label_ids, scored.pred_ids,
                                     bootstrap_samples=config.bootstrap_samples, confidence=config.confidence,
                                     seed=config.seed)
    labeled = eval_set.signals_labeled
    signals = signal_metrics(eval_set.signal_labels[labeled], scored.signal_probs[labeled],
                             scored.signal_thresholds)
    buying = CLASS_NAMES.index(BUYING)
    fields = {f: getattr(eval_set, f) for f in SLICE_FIELDS}
    sources = data_sources(eval_set.call_ids, eval_set.source)
    if len(set(sources)) > 1:  # one data source is the whole set again
        fields = {DATA_SOURCE_FIELD: sources, **fields}
    evaluation = ModelEvaluation(
        model=model, data=eval_set, scored=scored, classes=classes,
        calibration=reliability(eval_set.label_ids, scored.class_probs, config.ece_bins),
        pr_curve=buying_pr_curve(eval_set.label_ids, scored.class_probs[:, buying], model.meta.buying_threshold),
        signals=signals,
        slices=slice_metrics(eval_set.label_ids, scored.pred_ids, fields, small=config.small_slice,
                             probs=scored.class_probs, n_bins=config.ece_bins),
        latency=latency, config=config,
        risk_coverage=risk_coverage_curve(eval_set.label_ids, scored.class_probs, model.meta.abstain_margin),
    )
    logger.info("%s on %d calls: accuracy %.3f, macro-F1 %.3f, ECE %.3f, %d misclassified",
                model.model_id, len(eval_set), classes.accuracy, classes.macro_f1, evaluation.calibration.ece,
                int(np.sum(scored.pred_ids != eval_set.label_ids)))
    return evaluation


def _risk_coverage_json(curve: RiskCoverageCurve) -> dict[str, Any]:
    """The ``metrics.json`` view of the risk–coverage curve (points thinned to at most ``_MAX_CURVE_POINTS``)."""
    import numpy as np

    keep = sorted(set(np.linspace(0, len(curve.coverage) - 1, min(len(curve.coverage), _MAX_CURVE_POINTS))
                      .round().astype(int).tolist()))
    return {
        "by": "margin", "note": "accuracy of the calls decided (margin p(top1) - p(top2) >= threshold) "
                                "against the share decided",
        "threshold": _r(curve.threshold), "coverage_at_threshold": _r(curve.operating_coverage),
        "accuracy_at_threshold": _r(curve.operating_accuracy),
        "accuracy_at_coverage": {f"{c:g}": _r(curve.accuracy_at_coverage(c)) for c in RISK_COVERAGE_POINTS},
        "points": [{"coverage": _r(curve.coverage[k]), "accuracy": _r(curve.accuracy[k]),
                    "threshold": _r(curve.thresholds[k])} for k in keep],
    }


def _r(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


def _ci(interval: Any) -> list[float] | None:
    return None if interval is None else interval.to_json()
