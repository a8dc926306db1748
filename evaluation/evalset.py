"""The labeled calls an evaluation scores: loaded through ``data.dataset`` and held as plain arrays.

Loading goes through :func:`data.dataset.load_labeled_with_report`, so evaluation data is
validated exactly like training data and corrections override rows by ``call_id`` the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from callintent.errors import UserError

if TYPE_CHECKING:
    import numpy as np

    from data.dataset import DataConfig

logger = logging.getLogger(__name__)

#: Split orders for ``split="all"``.
_ALL_SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class EvalSet:
    """Labeled calls to evaluate, column-wise, in a fixed order (every model sees the same order).

    Attributes:
        call_ids: Call ids.
        transcripts: Opening transcripts (what the model scores).
        labels: Labeled class names.
        label_ids: ``[n]`` int64 class indices (``CLASS_NAMES`` order).
        signal_labels: ``[n, n_signals]`` float32 multi-hot labels (zeros where unlabeled).
        signals_labeled: ``[n]`` bool: the row's signals are labeled (only these count for signals).
        signals: Labeled signal names per call (empty for unlabeled rows).
        source, campaign, industry: Slicing fields (``""`` when the row has none).
        split: Which split was evaluated (``test``, ``validation``, ``train`` or ``all``).
        files: The labeled files read.
        fingerprint: ``data.dataset.fingerprint`` of the evaluated rows.
        corrections_applied: Correction rows merged into these files while loading.
    """

    call_ids: tuple[str, ...]
    transcripts: tuple[str, ...]
    labels: tuple[str, ...]
    label_ids: np.ndarray
    signal_labels: np.ndarray
    signals_labeled: np.ndarray
    signals: tuple[tuple[str, ...], ...]
    source: tuple[str, ...]
    campaign: tuple[str, ...]
    industry: tuple[str, ...]
    split: str
    files: tuple[str, ...]
    fingerprint: str
    corrections_applied: int = 0

    def __len__(self) -> int:
        return len(self.call_ids)

    def subset(self, indices: Sequence[int]) -> EvalSet:
        """The calls at ``indices`` (in that order), e.g. the robustness sample."""
        import numpy as np

        idx = np.asarray(list(indices), dtype=np.int64)
        pick = (lambda values: tuple(values[i] for i in idx))  # noqa: E731 (local one-liner)
        return EvalSet(
            call_ids=pick(self.call_ids), transcripts=pick(self.transcripts), labels=pick(self.labels),
            label_ids=self.label_ids[idx], signal_labels=self.signal_labels[idx],
            signals_labeled=self.signals_labeled[idx], signals=pick(self.signals), source=pick(self.source),
            campaign=pick(self.campaign), industry=pick(self.industry), split=self.split, files=self.files,
            fingerprint=self.fingerprint, corrections_applied=self.corrections_applied,
        )


def load_eval_set(
    paths: str | Path | Iterable[str | Path],
    *,
    split: str = "auto",
    corrections: Sequence[str | Path] | None = None,
    config: DataConfig | None = None,
) -> EvalSet:
    """Load labeled files and pick the rows to evaluate.

    Args:
        paths: Labeled ``.jsonl``/``.csv``/``.parquet`` files.
        split: ``test``, ``validation``, ``train``, ``all``, or ``auto`` = ``test`` when the data
            has a non-empty test split (its own ``split`` column, else the loader's seeded split,
            the same one training makes with the default settings) and ``all`` otherwise.
        corrections: Correction files (override rows by ``call_id``).
        config: Loader settings (default ``DataConfig()``, as training uses).

    Returns:
        The evaluation set.

    Raises:
        UserError: unreadable or invalid data, or the chosen split is empty.
    """
    import numpy as np
    from datasets import DatasetDict, concatenate_datasets

    from data.dataset import DataConfig, fingerprint, load_labeled_with_report

    dsd, report = load_labeled_with_report(paths, config or DataConfig(), corrections=corrections or None)
    if split == "auto":
        split = "test" if len(dsd["test"]) > 0 else "all"
    if split == "all":
        chosen = [s for s in _ALL_SPLITS if len(dsd[s]) > 0]
        dataset = concatenate_datasets([dsd[s] for s in chosen])
    elif split in dsd:
        dataset = dsd[split]
    else:
        raise UserError(f"unknown split {split!r} (use test, validation, train, all or auto)")
    if len(dataset) == 0:
        counts = ", ".join(f"{s} {len(dsd[s])}" for s in _ALL_SPLITS)
        raise UserError(f"{', '.join(report.files)}: the {split!r} split is empty ({counts}); "
                        "use --split all or another split")
    rows = dataset.to_dict()
    eval_set = EvalSet(
        call_ids=tuple(rows["call_id"]),
        transcripts=tuple(rows["transcript"]),
        labels=tuple(rows["label"]),
        label_ids=np.asarray(rows["label_id"], dtype=np.int64),
        signal_labels=np.asarray(rows["signal_labels"], dtype=np.float32).reshape(len(dataset), -1),
        signals_labeled=np.asarray(rows["signals_labeled"], dtype=bool),
        signals=tuple(tuple(s) for s in rows["signals"]),
        source=tuple(rows["source"]),
        campaign=tuple(rows["campaign"]),
        industry=tuple(rows["industry"]),
        split=split,
        files=report.files,
        fingerprint=fingerprint(DatasetDict({split: dataset})),
        corrections_applied=report.corrections_applied,
    )
    logger.info("evaluating %d calls (%s split of %s; %d with labeled signals)", len(eval_set), split,
                ", ".join(report.files), int(eval_set.signals_labeled.sum()))
    return eval_set
