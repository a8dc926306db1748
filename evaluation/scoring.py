"""Scoring an evaluation set with the ONNX predictor, and timing the predictor.

Evaluation scores only through :class:`models.predictor.IntentPredictor`, so a report measures
exactly what serving runs (same graph, same in-graph calibration, same evidence spans).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from models.labels import CLASS_INDEX

if TYPE_CHECKING:
    import numpy as np

    from evaluation.evalset import EvalSet
    from models.predictor import IntentPredictor
    from models.scores import IntentScores

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoredSet:
    """One model's outputs on an :class:`~evaluation.evalset.EvalSet`, in its row order.

    Attributes:
        model_id: ``"<name>/<version>"`` of the artifact.
        variant: ``int8`` or ``fp32``.
        class_probs: ``[n, n_classes]`` calibrated probabilities.
        signal_probs: ``[n, n_signals]`` signal probabilities.
        pred_ids: ``[n]`` predicted class indices (argmax).
        scores: Full per-call results with evidence spans.
        signal_thresholds: Presence threshold per signal (schema order) the artifact uses.
    """

    model_id: str
    variant: str
    class_probs: np.ndarray
    signal_probs: np.ndarray
    pred_ids: np.ndarray
    scores: tuple[IntentScores, ...]
    signal_thresholds: tuple[float, ...]


@dataclass(frozen=True)
class LatencyStat:
    """Wall time of ``IntentPredictor.predict`` (with evidence, as serving calls it).

    Attributes:
        batch_size: Texts per call.
        iterations: Timed calls (after one untimed warm-up).
        p50_ms: Median milliseconds per call.
        p95_ms: 95th percentile milliseconds per call.
    """

    batch_size: int
    iterations: int
    p50_ms: float
    p95_ms: float

    @property
    def per_text_ms(self) -> float:
        """Median milliseconds per text at this batch size."""
        return self.p50_ms / self.batch_size


def score_eval_set(predictor: IntentPredictor, eval_set: EvalSet) -> ScoredSet:
    """Score every call of ``eval_set``.

    Args:
        predictor: A loaded predictor.
        eval_set: The calls.

    Returns:
        The model's outputs in the set's order.
    """
    import numpy as np

    from models.predictor import DEFAULT_SIGNAL_THRESHOLD

    started = time.perf_counter()
    scores = predictor.predict(list(eval_set.transcripts), evidence=True)
    classes, signals = predictor.meta.classes, predictor.meta.signals
    class_probs = np.asarray([[s.probabilities[c] for c in classes] for s in scores], dtype=np.float64)
    signal_probs = np.asarray([[sig.probability for sig in s.signals] for s in scores], dtype=np.float64)
    pred_ids = np.asarray([CLASS_INDEX[s.label] for s in scores], dtype=np.int64)
    thresholds = tuple(float(predictor.meta.signal_thresholds.get(name, DEFAULT_SIGNAL_THRESHOLD))
                       for name in signals)
    logger.info("scored %d calls with %s (%s) in %.1f s", len(scores), predictor.model_id, predictor.variant,
                time.perf_counter() - started)
    return ScoredSet(model_id=predictor.model_id, variant=predictor.variant,
                     class_probs=class_probs.reshape(len(scores), len(classes)),
                     signal_probs=signal_probs.reshape(len(scores), len(signals)), pred_ids=pred_ids,
                     scores=tuple(scores), signal_thresholds=thresholds)


def measure_latency(
    predictor: IntentPredictor,
    texts: Sequence[str],
    *,
    batch_sizes: Sequence[int] = (1, 32),
    iterations: int = 10,
    seed: int = 0,
) -> tuple[LatencyStat, ...]:
    """p50/p95 wall time of ``predict`` on batches drawn from ``texts``.

    Each timed call scores a different random batch of real transcripts (seeded), so the
    figure reflects the data's length mix rather than one text.

    Args:
        predictor: A loaded predictor.
        texts: Transcripts to draw batches from (drawn with replacement when fewer than a batch).
        batch_sizes: Batch sizes to time.
        iterations: Timed calls per batch size (0 = measure nothing).
        seed: Seed of the batch draws.

    Returns:
        One entry per batch size (empty when ``iterations == 0`` or no texts).
    """
    import numpy as np

    if iterations <= 0 or not texts:
        return ()
    rng = np.random.default_rng(seed)
    out = []
    for batch_size in batch_sizes:
        draws = [[texts[i] for i in rng.integers(0, len(texts), batch_size)] for _ in range(iterations + 1)]
        predictor.predict(draws[0])  # warm-up: first-run allocations are not what a caller sees later
        times = []
        for batch in draws[1:]:
            started = time.perf_counter()
            predictor.predict(batch)
            times.append((time.perf_counter() - started) * 1000.0)
        p50, p95 = np.percentile(times, [50, 95])
        out.append(LatencyStat(batch_size=int(batch_size), iterations=iterations, p50_ms=float(p50),
                               p95_ms=float(p95)))
        logger.info("latency batch %d: p50 %.1f ms, p95 %.1f ms", batch_size, p50, p95)
    return tuple(out)
