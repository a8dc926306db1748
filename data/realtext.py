"""Import external real-text sets (``../shared/data/*.jsonl``) as leak-free labeled data.

Real sets arrive in the labeled-example schema with their source corpus's own splits, and short
requests repeat across those splits ("I need a taxi" is in both SGD train and dev: 25 of SGD's 243
dev rows). A repeat in validation measures memory, not generalisation, and :func:`load_labeled`
rightly rejects it as leakage. The importer resolves it the one way that loses no row: every copy
of a repeated transcript moves to the earliest split that holds it (train before validation
before test), and each move is logged and reported. ``signals: null`` stays null: these sets
are not signal-labeled, and training must not read that as "no signals".
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from data.dataset import (
    SPLITS,
    DataConfig,
    LoadReport,
    Record,
    example_rows,
    load_records,
    normalise_transcript,
    read_records,
    write_jsonl,
)

if TYPE_CHECKING:
    from datasets import DatasetDict

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitMove:
    """One row the importer moved to keep a transcript in a single split.

    Attributes:
        call_id: The row's id.
        location: ``file:line`` of the row.
        from_split: The split the source file gave.
        to_split: The split it was moved to.
    """

    call_id: str
    location: str
    from_split: str
    to_split: str


@dataclass(frozen=True)
class RealTextImport:
    """What an import read, moved and wrote.

    Attributes:
        source: The file imported.
        out_path: The normalised copy written ("" when none was asked for).
        moves: Rows moved between splits to remove cross-split repeats.
        report: The load report of the imported rows (counts, fingerprint).
    """

    source: str
    out_path: str
    moves: tuple[SplitMove, ...]
    report: LoadReport


def import_real_text(
    path: str | Path,
    out_dir: str | Path | None = None,
    config: DataConfig = DataConfig(),
) -> tuple[DatasetDict, RealTextImport]:
    """Validate a real-text set, move cross-split repeats together and write a normalised copy.

    Args:
        path: A labeled ``.jsonl``/``.csv``/``.parquet`` file (e.g. ``sgd_openings.jsonl``).
        out_dir: Folder for the normalised copy ``<out_dir>/<stem>.jsonl`` (all splits, with a
            ``split`` key); None writes nothing.
        config: Validation settings (rows without a split are auto-split with them).

    Returns:
        ``(dataset_dict, import_summary)``; the copy loads with :func:`data.dataset.load_labeled`
        to the same fingerprint.

    Raises:
        DataValidationError: invalid rows (unless ``config.drop_invalid``).
    """
    path = Path(path)
    records, moves = _keep_repeats_together(read_records(path))
    for move in moves:
        logger.debug("%s: moved %s from %s to %s", move.location, move.call_id, move.from_split,
                     move.to_split)
    if moves:
        logger.warning("%s: moved %d rows whose transcript also occurs in an earlier split (%s)", path,
                       len(moves), ", ".join(f"{n} {a}->{b}" for (a, b), n in _move_counts(moves).items()))
    dsd, report = load_records(records, config, files=(str(path),))
    out_path = ""
    if out_dir is not None:
        out_path = str(write_jsonl(example_rows(dsd), Path(out_dir) / f"{path.stem}.jsonl"))
        logger.info("wrote %d rows to %s", report.rows_loaded, out_path)
    return dsd, RealTextImport(source=str(path), out_path=out_path, moves=tuple(moves), report=report)


def _keep_repeats_together(records: list[Record]) -> tuple[list[Record], list[SplitMove]]:
    """Give every row of a normalised transcript the earliest split any of its rows has."""
    earliest: dict[str, int] = {}
    for record in records:
        key, split = _key_and_split(record)
        if key is not None and split is not None:
            earliest[key] = min(earliest.get(key, len(SPLITS)), SPLITS.index(split))
    out: list[Record] = []
    moves: list[SplitMove] = []
    for record in records:
        key, split = _key_and_split(record)
        if key is None or split is None or SPLITS[earliest[key]] == split:
            out.append(record)
            continue
        target = SPLITS[earliest[key]]
        moves.append(SplitMove(str(record.data.get("call_id", "")), record.location, split, target))
        out.append(replace(record, data={**record.data, "split": target}))
    return out, moves


def _key_and_split(record: Record) -> tuple[str | None, str | None]:
    """The row's normalised transcript and valid split, or None where validation will complain."""
    data = record.data
    if record.parse_error or not isinstance(data, Mapping):
        return None, None
    transcript, split = data.get("transcript"), data.get("split")
    if not isinstance(transcript, str) or split not in SPLITS:
        return None, None
    return normalise_transcript(transcript), split


def _move_counts(moves: list[SplitMove]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for move in moves:
        counts[(move.from_split, move.to_split)] += 1
    return dict(counts)
