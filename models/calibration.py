"""Temperature scaling: the maths, in numpy, shared by the calibration fit and whoever applies it.

``softmax(logits / T)`` with one scalar ``T > 0`` changes confidence, never the argmax. The fit
minimises the (row-weighted) negative log-likelihood of validation rows; rows are weighted by
:func:`source_weights` so that every data source pulls on ``T`` equally. :mod:`training.calibrate`
decides what to fit on and stores the result; the exported graph divides by the same ``T``.

No torch: ``models`` is imported by serving.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: The fitted temperature is kept in ``[MIN_TEMPERATURE, MAX_TEMPERATURE]``: a separable validation
#: set drives ``T`` towards 0 (ever sharper is ever better), which no unseen call bears out.
MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 20.0

#: The fit stops sharpening or softening once the NLL changes by less than this per e-fold of ``T``
#: (the gradient tolerance of the LBFGS fit it replaces, so fitted temperatures stay where they were).
FLAT_SLOPE = 1e-7


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(logits / temperature)``, numerically stable, float64."""
    import numpy as np

    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Elementwise logistic function, float64."""
    import numpy as np

    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def source_weights(sources: Sequence[str]) -> np.ndarray:
    """Per-row weights ``1 / rows of the row's source``, scaled to mean 1: each source weighs the same.

    Args:
        sources: The data source of every row (:func:`data.sources.data_source`).

    Returns:
        ``[n]`` float64 weights (all 1 when there is one source).
    """
    import numpy as np

    counts = Counter(sources)
    if not counts:
        return np.ones(0)
    raw = np.asarray([1.0 / counts[s] for s in sources], dtype=np.float64)
    return raw * (len(raw) / raw.sum())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, *, weights: np.ndarray | None = None,
                    max_iter: int = 100) -> float:
    """The temperature minimising the (weighted) NLL of ``softmax(logits / T)``, starting from ``T = 1``.

    The NLL is convex in ``β = 1 / T`` (a log-sum-exp of lines in β minus a line), so its slope in
    β rises monotonically and the optimum is where the slope crosses 0: found by Newton steps kept
    inside a shrinking bracket of ``[1 / MAX_TEMPERATURE, 1 / MIN_TEMPERATURE]`` (the nearer end
    when the optimum lies outside). Walking from ``T = 1`` towards it, the fit stops where the NLL
    is flat, changing by less than :data:`FLAT_SLOPE` per e-fold of ``T``: on a separable
    validation set the NLL keeps falling as ``T → 0`` by amounts no unseen call bears out, and the
    fit keeps the softest temperature that has all of the real gain.

    Args:
        logits: ``[n, n_classes]`` uncalibrated class logits.
        labels: ``[n]`` true class indices.
        weights: ``[n]`` row weights of the NLL (see :func:`source_weights`); None = equal.
        max_iter: Most root-finding (and bisection) steps; each at least halves the bracket.

    Returns:
        ``T`` in ``[MIN_TEMPERATURE, MAX_TEMPERATURE]`` (1.0 when there is nothing to fit on, or when
        the NLL is already flat at ``T = 1``).

    Raises:
        ValueError: logits, labels and weights disagree on the number of rows.
    """
    import numpy as np

    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labels) == 0:
        return 1.0
    z = np.asarray(logits, dtype=np.float64)
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if z.ndim != 2 or z.shape[0] != len(labels) or len(w) != len(labels):
        raise ValueError(f"logits {z.shape}, labels {labels.shape} and weights {w.shape} disagree on rows")
    w = w / w.sum()
    z_true = z[np.arange(len(labels)), labels]

    def slope(beta: float) -> tuple[float, float]:
        """d NLL / dβ = E_w[E_p[z] − z_true] and its derivative E_w[Var_p(z)] at ``β``."""
        p = softmax(z, 1.0 / beta)
        mean = (p * z).sum(axis=1)
        var = (p * (z - mean[:, None]) ** 2).sum(axis=1)
        return float(w @ (mean - z_true)), float(w @ var)

    def flat(beta: float) -> bool:
        # d NLL / d log T = −β · d NLL / dβ
        return beta * abs(slope(beta)[0]) <= FLAT_SLOPE

    if flat(1.0):
        return 1.0
    optimum = _slope_root(slope, 1.0 / MAX_TEMPERATURE, 1.0 / MIN_TEMPERATURE, max_iter)
    if not flat(optimum):  # only at a bracket end: the optimum lies beyond it
        return float(1.0 / optimum)
    # Bisect log β between T = 1 (not flat) and the optimum (flat) for where the NLL turns flat.
    steep, level = 0.0, math.log(optimum)
    for _ in range(max_iter):
        middle = (steep + level) / 2
        if flat(math.exp(middle)):
            level = middle
        else:
            steep = middle
        if abs(level - steep) <= 1e-12:
            break
    return float(1.0 / math.exp(level))


def _slope_root(slope: Callable[[float], tuple[float, float]], low: float, high: float, max_iter: int) -> float:
    """Where a rising slope crosses 0 in ``[low, high]`` (the end nearer to it when it does not).

    Newton steps from 1.0 (the start of :func:`fit_temperature`) when they land inside the bracket,
    bisection otherwise.
    """
    if slope(low)[0] >= 0:
        return low
    if slope(high)[0] <= 0:
        return high
    beta = 1.0
    for _ in range(max_iter):
        g, h = slope(beta)
        if g == 0.0:
            break
        if g > 0:
            high = beta
        else:
            low = beta
        newton = beta - g / h if h > 0 else low
        step = newton if low < newton < high else (low + high) / 2
        converged = abs(step - beta) <= 1e-12 * beta
        beta = step
        if converged:
            break
    return beta
