"""Source-aware sampling: draw the training split from several labeled files without letting one
file, or one file's missing classes, decide what the model learns.

The built-in corpus has all four classes; the real-text sets do not (SGD has no informational or
noise rows, CLINC150 no noise), and their sizes and class balances are unlike each other's. Pooling
them as loaded shifts the class balance towards whatever the biggest set holds: adding the real
sets as they are once took noise recall from 0.96 to 0.83, because noise rows became rarer. So the
draw is two-level:

1. every class gets its share of the rows (``class_shares``; uniform by default), whatever the
   files hold;
2. inside a class, the files that have rows of it split that class's rows by their ``weights``.

A class only one file has (noise, here) is drawn from that file alone, at its full share. A cell
(file, class) with fewer rows than its quota is repeated, but never more than ``max_repeat`` times
per row; what it cannot fill goes to the other files of the class, so a small set is not memorised
and the class keeps its share. Everything is seeded: same rows, same config, same draw.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from callintent.config import is_int, is_number
from models.labels import CLASS_NAMES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceMix:
    """How the training split is drawn from several ``train_files``.

    Attributes:
        weights: One relative weight per ``train_files`` entry (same order): inside each class, the
            files that have rows of it share the class's rows in proportion to these. Empty (the
            default) turns the mix off: every loaded training row is used once, as loaded.
        class_shares: ``"uniform"`` (every class present in the training rows gets the same share)
            or one share per class in ``CLASS_NAMES`` order (normalised; 0 drops a class).
        rows: Training rows to draw in all; 0 = as many as were loaded.
        max_repeat: The most copies of one row a draw may take when a file has fewer rows of a
            class than its quota; the rest of the quota goes to the class's other files.
    """

    weights: tuple[float, ...] = ()
    class_shares: str | tuple[float, ...] = "uniform"
    rows: int = 0
    max_repeat: float = 3.0

    def __post_init__(self) -> None:
        if isinstance(self.weights, (str, bytes)) or not all(is_number(w) and w >= 0 for w in self.weights):
            raise ValueError(f"mix.weights must be a list of numbers >= 0 (one per train_files entry), got "
                             f"{self.weights!r}")
        if self.weights and not any(w > 0 for w in self.weights):
            raise ValueError(f"mix.weights must have at least one weight above 0, got {list(self.weights)!r}")
        if isinstance(self.class_shares, str):
            if self.class_shares != "uniform":
                raise ValueError(f"mix.class_shares must be 'uniform' or {len(CLASS_NAMES)} shares (one per class "
                                 f"{list(CLASS_NAMES)}), got {self.class_shares!r}")
        elif len(self.class_shares) != len(CLASS_NAMES) or not all(
                is_number(s) and s >= 0 for s in self.class_shares) or not any(s > 0 for s in self.class_shares):
            raise ValueError(f"mix.class_shares must be 'uniform' or {len(CLASS_NAMES)} shares >= 0 (one per class "
                             f"{list(CLASS_NAMES)}), got {list(self.class_shares)!r}")
        if not is_int(self.rows) or self.rows < 0:
            raise ValueError(f"mix.rows must be an integer >= 0, got {self.rows!r}")
        if not is_number(self.max_repeat) or self.max_repeat < 1:
            raise ValueError(f"mix.max_repeat must be a number >= 1, got {self.max_repeat!r}")

    @property
    def enabled(self) -> bool:
        return bool(self.weights)


@dataclass(frozen=True)
class MixReport:
    """What a draw took, for the run's metrics and the model card.

    Attributes:
        loaded: Training rows per ``"<group>/<class>"`` before the draw.
        drawn: Training rows per ``"<group>/<class>"`` after it (repeats counted).
        class_shares: The share each class was given.
    """

    loaded: dict[str, int] = field(default_factory=dict)
    drawn: dict[str, int] = field(default_factory=dict)
    class_shares: dict[str, float] = field(default_factory=dict)


def draw_training_rows(
    rows: Sequence[Mapping[str, Any]],
    groups: Sequence[str],
    mix: SourceMix,
    group_weights: Mapping[str, float],
    seed: int,
) -> tuple[list[Mapping[str, Any]], MixReport]:
    """Draw the training rows per class, then per source group inside each class.

    Args:
        rows: Training rows (each with a ``label``).
        groups: The source group of each row (e.g. the stem of the file it came from).
        mix: The mix settings (``weights`` are already resolved into ``group_weights``).
        group_weights: Relative weight of each group; groups missing from it weigh 0.
        seed: Seeds the draw.

    Returns:
        The drawn rows (each row a shared reference; repeats appear several times), shuffled, and
        a report of the counts.

    Raises:
        ValueError: ``class_shares`` gives a class a share but no group with weight has rows of it.
    """
    if len(rows) != len(groups):
        raise ValueError(f"{len(rows)} rows but {len(groups)} groups")
    cells: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (row, group) in enumerate(zip(rows, groups)):
        cells[(row["label"], group)].append(i)
    present = [c for c in CLASS_NAMES if any(label == c and group_weights.get(g, 0) > 0 for label, g in cells)]
    shares = _class_shares(mix.class_shares, present)
    total = mix.rows or len(rows)
    rng = random.Random(seed)
    drawn: list[int] = []
    for label, share in shares.items():
        if share == 0:
            continue
        members = {g: idx for (c, g), idx in sorted(cells.items()) if c == label and group_weights.get(g, 0) > 0}
        if not members:
            raise ValueError(f"mix.class_shares gives {label!r} a share of {share:.2f}, but no training file with a "
                             f"weight above 0 has {label!r} rows")
        quota = round(total * share)
        quotas = _quotas(members, group_weights, quota, mix.max_repeat)
        if sum(quotas.values()) < quota:
            logger.warning("mix: %s: %d of %d rows (every file with %s rows is at max_repeat %g); the class's share "
                           "falls: add rows of it or raise mix.max_repeat", label, sum(quotas.values()), quota, label,
                           mix.max_repeat)
        for group, n in quotas.items():
            drawn.extend(_take(members[group], n, rng))
    rng.shuffle(drawn)
    loaded = Counter(f"{g}/{rows[i]['label']}" for (_, g), idx in cells.items() for i in idx)
    taken = Counter(f"{groups[i]}/{rows[i]['label']}" for i in drawn)
    report = MixReport(loaded=dict(sorted(loaded.items())), drawn=dict(sorted(taken.items())),
                       class_shares={c: round(s, 4) for c, s in shares.items()})
    return [rows[i] for i in drawn], report


def _class_shares(setting: str | tuple[float, ...], present: Sequence[str]) -> dict[str, float]:
    if isinstance(setting, str):  # "uniform"
        return {c: 1.0 / len(present) for c in present}
    total = float(sum(setting))
    return {c: s / total for c, s in zip(CLASS_NAMES, setting)}


def _quotas(members: Mapping[str, list[int]], weights: Mapping[str, float], quota: int,
            max_repeat: float) -> dict[str, int]:
    """Split a class's ``quota`` over its groups by weight, capping each at ``max_repeat`` x its rows.

    What a capped group cannot take is shared again among the groups still below their cap, so the
    class gets its whole quota unless every group is capped.
    """
    cap = {g: int(len(idx) * max_repeat) for g, idx in members.items()}
    out = {g: 0 for g in members}
    left, open_groups = quota, set(members)
    while left > 0 and open_groups:
        weight = sum(weights[g] for g in open_groups)
        # Largest-remainder rounding keeps the parts summing to exactly ``left``.
        exact = {g: left * weights[g] / weight for g in open_groups}
        parts = {g: int(v) for g, v in exact.items()}
        for g in sorted(open_groups, key=lambda g: (parts[g] - exact[g], g))[: left - sum(parts.values())]:
            parts[g] += 1
        left = 0
        for g in sorted(open_groups):
            take = min(parts[g], cap[g] - out[g])
            out[g] += take
            left += parts[g] - take
        open_groups = {g for g in open_groups if out[g] < cap[g]}
    return out


def _take(indices: list[int], n: int, rng: random.Random) -> list[int]:
    """``n`` of ``indices``: whole shuffled passes, then a sample without replacement for the rest,
    so every row is used a number of times that differs by at most one from any other's."""
    out: list[int] = []
    while n >= len(indices):
        out.extend(indices)
        n -= len(indices)
    out.extend(rng.sample(indices, n))
    return out
