"""Labeled call openings: read JSONL/CSV/Parquet, validate every row, split without leakage.

One entry point, :func:`load_labeled`, turns labeled files into a ``datasets.DatasetDict`` with
``train``/``validation``/``test`` splits and the columns the architecture contract names. Every
row is checked before anything is trained on it; a bad row either fails the load with its
``file:line`` and reason, or (``drop_invalid``) goes to a rejects file — it never silently vanishes.

Splits come from the files' own ``split`` column where rows have one; the other rows are split
by a seeded, label-stratified split. Rows whose normalised transcripts are equal are split as one
group, so an auto-split can never put the same words in training and evaluation; when the files
themselves do that, it is reported as leakage.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callintent.errors import UserError
from models.labels import CLASS_INDEX, CLASS_NAMES, DEFAULT_MAX_WORDS, SIGNAL_INDEX, SIGNAL_NAMES

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict, Features

logger = logging.getLogger(__name__)

#: Split names, in priority order: when the files put one transcript in two splits, the copy in
#: the earlier split is kept and the later ones are the leak (evaluation must be the clean side).
SPLITS: tuple[str, ...] = ("train", "validation", "test")

#: Columns of every split, in order (see docs/ARCHITECTURE.md, ``data.dataset``). ``extra`` holds
#: any other keys of the row (``words``, ``audio``…) as a JSON object so nothing a file carries is lost.
COLUMNS: tuple[str, ...] = (
    "call_id", "transcript", "label", "label_id", "signals", "signal_labels", "signals_labeled",
    "spans", "source", "campaign", "industry", "extra",
)

#: File suffix -> reader format.
FORMATS: dict[str, str] = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}

#: Known keys of a labeled row; everything else goes to ``extra``.
_KNOWN_KEYS = frozenset({"call_id", "transcript", "label", "signals", "spans", "source", "campaign",
                         "industry", "split"})
_TEXT_KEYS = ("source", "campaign", "industry")

#: Problems listed in a :class:`DataValidationError` message before "and N more".
MAX_REPORTED_PROBLEMS = 20


# --------------------------------------------------------------------------------------------
# Public types


@dataclass(frozen=True)
class DataConfig:
    """How labeled files become a ``DatasetDict``.

    Attributes:
        max_words: Longest transcript accepted, in whitespace-separated words. A 30-second
            opening is about 75 words; a much longer "transcript" is a whole call or a paste error.
        val_fraction: Share of the auto-split rows (rows without a ``split``) put in validation.
        test_fraction: Share of the auto-split rows put in test. ``val_fraction + test_fraction``
            may be at most 1 (``test_fraction=1`` puts everything in test, for evaluation sets).
        seed: Seed of the auto split: the same rows and seed give the same split.
        stratify: Keep each class's share the same in every auto split.
        drop_invalid: Write invalid rows to ``rejects_path`` and load the rest, instead of failing.
        rejects_path: JSONL file the rejected rows are written to (needed with ``drop_invalid``;
            ``load_labeled(rejects_path=…)`` overrides it).
    """

    max_words: int = DEFAULT_MAX_WORDS
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    stratify: bool = True
    drop_invalid: bool = False
    rejects_path: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.max_words, bool) or not isinstance(self.max_words, int) or self.max_words < 1:
            raise ValueError(f"max_words must be a positive integer, got {self.max_words!r}")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
        if self.val_fraction + self.test_fraction > 1.0 + 1e-9:
            raise ValueError(f"val_fraction + test_fraction must be at most 1, got "
                             f"{self.val_fraction} + {self.test_fraction}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not isinstance(self.stratify, bool):
            raise ValueError(f"stratify must be true or false, got {self.stratify!r}")
        if not isinstance(self.drop_invalid, bool):
            raise ValueError(f"drop_invalid must be true or false, got {self.drop_invalid!r}")
        if not isinstance(self.rejects_path, str):
            raise ValueError(f"rejects_path must be a string, got {self.rejects_path!r}")


@dataclass(frozen=True)
class Record:
    """One row as read from a file, before validation.

    Attributes:
        file: The file as the caller named it.
        line: 1-based line of the row (JSONL, CSV) or 1-based row number (Parquet).
        data: The parsed row (a mapping when it parsed), or the raw text when it did not.
        parse_error: Why the row could not be parsed ("" when it could).
        unit: ``"line"`` or ``"row"``: how :attr:`location` names the position.
        corrects: Location of the original row when this record is a correction merged into it.
    """

    file: str
    line: int
    data: Any
    parse_error: str = ""
    unit: str = "line"
    corrects: str = ""

    @property
    def location(self) -> str:
        """``file:line`` (``file:row N`` for Parquet)."""
        return f"{self.file}:{self.line}" if self.unit == "line" else f"{self.file}:row {self.line}"


@dataclass(frozen=True)
class Problem:
    """Why one row was rejected.

    Attributes:
        location: ``file:line`` of the row.
        reason: What is wrong, in words a data labeler can act on.
    """

    location: str
    reason: str

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"


class DataValidationError(UserError):
    """Labeled data has invalid rows; the message lists them as ``file:line: problem``.

    Attributes:
        problems: Every problem found (the message shows the first :data:`MAX_REPORTED_PROBLEMS`).
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        shown = [str(p) for p in self.problems[:MAX_REPORTED_PROBLEMS]]
        if len(self.problems) == 1:
            message = shown[0]
        else:
            rows = len({p.location for p in self.problems})
            lines = [f"{len(self.problems)} problems in {rows} rows of labeled data:"]
            lines += [f"  {s}" for s in shown]
            if len(self.problems) > MAX_REPORTED_PROBLEMS:
                lines.append(f"  … and {len(self.problems) - MAX_REPORTED_PROBLEMS} more")
            message = "\n".join(lines)
        super().__init__(message)


@dataclass(frozen=True)
class LoadReport:
    """What a load read, rejected, corrected and produced.

    Attributes:
        files: The labeled files read.
        rows_read: Rows read from ``files`` (corrections not included).
        rows_rejected: Rows of ``files`` written to the rejects file (with their correction, if any).
        corrections_applied: Correction rows merged into an original row.
        corrections_rejected: Correction rows that matched no valid original or could not be read.
        split_origin: ``"file"`` (every row had a split), ``"auto"`` (none had) or ``"mixed"``.
        split_counts: Rows per split.
        class_counts: Rows per split and class.
        signals_labeled: Rows per split whose signals are labeled (``signals`` not null).
        fingerprint: :func:`fingerprint` of the result.
        rejects_path: Where rejected rows were written ("" when ``drop_invalid`` was off).
    """

    files: tuple[str, ...]
    rows_read: int
    rows_rejected: int
    corrections_applied: int
    corrections_rejected: int
    split_origin: str
    split_counts: Mapping[str, int]
    class_counts: Mapping[str, Mapping[str, int]]
    signals_labeled: Mapping[str, int]
    fingerprint: str
    rejects_path: str = ""

    @property
    def rows_loaded(self) -> int:
        return sum(self.split_counts.values())


# --------------------------------------------------------------------------------------------
# Loading


def load_labeled(
    paths: str | Path | Iterable[str | Path],
    config: DataConfig = DataConfig(),
    *,
    rejects_path: str | Path | None = None,
    corrections: str | Path | Iterable[str | Path] | None = None,
) -> DatasetDict:
    """Read, validate and split labeled files into a ``DatasetDict``.

    Args:
        paths: One or more ``.jsonl``, ``.csv`` or ``.parquet`` files in the labeled-example schema.
        config: Validation and split settings.
        rejects_path: Where rejected rows go when ``config.drop_invalid``; overrides
            ``config.rejects_path``.
        corrections: Files of rows that override the original row with the same ``call_id``
            (keys present in the correction replace the original's; absent keys are kept).

    Returns:
        ``DatasetDict`` with ``train``, ``validation`` and ``test`` (any may be empty) and the
        columns of :data:`COLUMNS`.

    Raises:
        DataValidationError: invalid rows (all listed), unless ``drop_invalid``.
        UserError: a file is missing or has an unsupported format.
    """
    dsd, _ = load_labeled_with_report(paths, config, rejects_path=rejects_path, corrections=corrections)
    return dsd


def load_labeled_with_report(
    paths: str | Path | Iterable[str | Path],
    config: DataConfig = DataConfig(),
    *,
    rejects_path: str | Path | None = None,
    corrections: str | Path | Iterable[str | Path] | None = None,
) -> tuple[DatasetDict, LoadReport]:
    """:func:`load_labeled` that also returns a :class:`LoadReport`.

    Args:
        paths, config, rejects_path, corrections: As for :func:`load_labeled`.

    Returns:
        ``(dataset_dict, report)``.
    """
    files = _as_paths(paths)
    if not files:
        raise UserError("no labeled data files given")
    correction_files = _as_paths(corrections) if corrections is not None else []
    records = [r for f in files for r in read_records(f)]
    correction_records = [r for f in correction_files for r in read_records(f)]
    return load_records(records, config, corrections=correction_records, rejects_path=rejects_path,
                        files=tuple(str(f) for f in files))


def read_records(path: str | Path) -> list[Record]:
    """Read the rows of one labeled file, without validating them.

    JSONL lines that are not JSON come back with ``parse_error`` set (validation reports them).
    CSV cells: empty means missing; ``signals`` and ``spans`` hold JSON lists.

    Args:
        path: A ``.jsonl``, ``.csv`` or ``.parquet`` file.

    Returns:
        The rows in file order.

    Raises:
        UserError: the file is missing, unreadable or has an unsupported suffix.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"{path}: unsupported labeled-data format {path.suffix!r} "
                        f"(use {', '.join(FORMATS)})")
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        if fmt == "jsonl":
            return _read_jsonl(path)
        if fmt == "csv":
            return _read_csv(path)
        return _read_parquet(path)
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason})") from None
    except csv.Error as e:
        raise UserError(f"{path}: not valid CSV ({e})") from None


def load_records(
    records: Sequence[Record],
    config: DataConfig = DataConfig(),
    *,
    corrections: Sequence[Record] = (),
    rejects_path: str | Path | None = None,
    files: tuple[str, ...] = (),
) -> tuple[DatasetDict, LoadReport]:
    """Validate, correct and split rows already read by :func:`read_records`.

    Args:
        records: The original rows.
        config: Validation and split settings.
        corrections: Correction rows (see :func:`load_labeled`).
        rejects_path: Overrides ``config.rejects_path``.
        files: File names for the report.

    Returns:
        ``(dataset_dict, report)``.

    Raises:
        DataValidationError: invalid rows, unless ``config.drop_invalid``.
    """
    rejects_file = str(rejects_path) if rejects_path is not None else config.rejects_path
    if config.drop_invalid and not rejects_file:
        raise UserError("drop_invalid needs a rejects_path, so that every dropped row is kept with its "
                        "reason")

    merged, corrections_applied, problems = _apply_corrections(records, corrections)
    examples: dict[int, _Example] = {}
    for order, record in enumerate(merged):
        if order in problems:
            continue
        example, reasons = _check_row(record, config.max_words)
        if reasons:
            problems[order] = reasons
        else:
            examples[order] = example
    for order, reason in _given_split_leaks(examples).items():
        problems.setdefault(order, []).append(reason)
        del examples[order]

    all_records = list(merged) + list(corrections)
    ordered = sorted(problems)
    flat = [Problem(all_records[o].location, r) for o in ordered for r in problems[o]]
    if flat and not config.drop_invalid:
        raise DataValidationError(flat)
    rows_rejected = sum(1 for o in ordered if o < len(merged))
    if config.drop_invalid:
        _write_rejects(Path(rejects_file), [(all_records[o], problems[o]) for o in ordered])
        if ordered:
            logger.warning("rejected %d invalid rows (%d from corrections); they are in %s with their "
                           "reasons", len(ordered), len(ordered) - rows_rejected, rejects_file)
    if not examples:
        raise UserError(f"no valid labeled rows in {', '.join(files) or 'the input'}")

    kept = [examples[o] for o in sorted(examples)]
    splits, origin = _assign_splits(kept, config)
    leaks = _cross_split_duplicates(splits)
    # Grouping makes auto-splits leak-free by construction and file-given leaks were removed above.
    assert not leaks, f"split leaked {len(leaks)} transcripts"
    dsd = _to_dataset_dict(splits)
    for name in SPLITS:
        if not splits[name]:
            logger.warning("split %r is empty", name)

    report = LoadReport(
        files=files,
        rows_read=len(records),
        rows_rejected=rows_rejected,
        corrections_applied=corrections_applied,
        corrections_rejected=len(ordered) - rows_rejected,
        split_origin=origin,
        split_counts={s: len(splits[s]) for s in SPLITS},
        class_counts={s: {c: sum(1 for e in splits[s] if e.label == c) for c in CLASS_NAMES} for s in SPLITS},
        signals_labeled={s: sum(1 for e in splits[s] if e.signals is not None) for s in SPLITS},
        fingerprint=fingerprint(dsd),
        rejects_path=rejects_file if config.drop_invalid else "",
    )
    logger.info("loaded %d labeled rows (%s) from %d files; %d rejected, %d corrections applied",
                report.rows_loaded, ", ".join(f"{s} {n}" for s, n in report.split_counts.items()),
                len(files), rows_rejected, corrections_applied)
    return dsd, report


def fingerprint(dsd: DatasetDict) -> str:
    """A stable sha256 (hex) of the rows of every split, independent of row order and file format.

    Args:
        dsd: A ``DatasetDict`` from :func:`load_labeled` (other columns, e.g. token ids, are ignored).

    Returns:
        64 hex characters; equal for equal data.
    """
    lines: list[str] = []
    for split in sorted(dsd):
        dataset = dsd[split]
        columns = [c for c in COLUMNS if c in dataset.column_names]
        for row in dataset.select_columns(columns).to_list():
            lines.append(json.dumps({"split": split, **row}, sort_keys=True, ensure_ascii=False,
                                    separators=(",", ":")))
    digest = hashlib.sha256()
    for line in sorted(lines):
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def normalise_transcript(text: str) -> str:
    """The form two transcripts are compared in for leakage: case, punctuation and spacing removed.

    Apostrophes are deleted (``I'd`` == ``id``), other punctuation becomes a space.

    Args:
        text: A transcript.

    Returns:
        Lowercase words separated by single spaces.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"['\u2019`]", "", text)
    text = re.sub(r"[\W_]+", " ", text)
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------
# Writing


def example_rows(dsd: DatasetDict, splits: Sequence[str] = SPLITS) -> Iterator[dict[str, Any]]:
    """Rows of ``dsd`` back in the labeled-example file schema (with ``split``).

    ``signals`` is ``null`` for unlabeled rows, empty optional fields are left out, and the keys
    kept in ``extra`` come back as top-level keys, so writing and re-loading gives the same
    :func:`fingerprint`.

    Args:
        dsd: A ``DatasetDict`` from :func:`load_labeled`.
        splits: Which splits, in this order.

    Yields:
        One JSON-ready mapping per row.
    """
    for split in splits:
        if split not in dsd:
            continue
        for row in dsd[split].to_list():
            out: dict[str, Any] = {
                "call_id": row["call_id"],
                "transcript": row["transcript"],
                "label": row["label"],
                "signals": list(row["signals"]) if row["signals_labeled"] else None,
            }
            spans = json.loads(row["spans"])
            if spans:
                out["spans"] = spans
            for key in _TEXT_KEYS:
                if row[key]:
                    out[key] = row[key]
            out["split"] = split
            out.update(json.loads(row.get("extra") or "{}"))
            yield out


def write_jsonl(rows: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Write rows as JSON lines (UTF-8, one object a line), creating the folder.

    Args:
        rows: JSON-ready mappings.
        path: Output file.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    return path


def write_splits(dsd: DatasetDict, out_dir: str | Path) -> dict[str, Path]:
    """Write ``out_dir/{train,validation,test}.jsonl`` (empty splits give empty files).

    Args:
        dsd: A ``DatasetDict`` from :func:`load_labeled`.
        out_dir: Output folder (created).

    Returns:
        Split name -> file written.
    """
    out_dir = Path(out_dir)
    return {s: write_jsonl(example_rows(dsd, (s,)), out_dir / f"{s}.jsonl") for s in SPLITS}


# --------------------------------------------------------------------------------------------
# Internals: reading


def _as_paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    if isinstance(paths, (str, Path)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def _read_jsonl(path: Path) -> list[Record]:
    records = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                records.append(Record(str(path), number, json.loads(line)))
            except json.JSONDecodeError as e:
                records.append(Record(str(path), number, line.rstrip("\n"),
                                      parse_error=f"not valid JSON ({e.msg})"))
    return records


def _read_csv(path: Path) -> list[Record]:
    # The csv module (not pandas) because it knows the physical line of every record, quoted
    # newlines included, and leaves every cell a string (no "00123" -> 123, "null" -> NaN).
    records = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            return []
        previous_end = reader.line_num
        for row in reader:
            line, previous_end = previous_end + 1, reader.line_num
            data: dict[str, Any] = {}
            parse_error = ""
            for key, cell in row.items():
                if key is None:  # more cells than header columns
                    parse_error = f"{len(cell)} more cells than the header has columns"
                    continue
                if cell is None or cell == "":
                    continue
                if key in ("signals", "spans"):
                    try:
                        data[key] = json.loads(cell)
                    except json.JSONDecodeError:
                        data[key] = cell  # validation names the field and the value
                else:
                    data[key] = cell
            records.append(Record(str(path), line, data, parse_error=parse_error))
    return records


def _read_parquet(path: Path) -> list[Record]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise RuntimeError("reading Parquet requires pyarrow (pip install 'callintent[train]')") from e
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises several types (ArrowInvalid, OSError) for a broken file
        raise UserError(f"{path}: not a readable Parquet file ({e})") from None
    records = []
    for number, row in enumerate(rows, start=1):
        # Parquet stores a column for every row, so a key one row lacks comes back as null.
        data = {k: v for k, v in row.items() if v is not None or k == "signals"}
        if isinstance(data.get("spans"), str):
            try:
                data["spans"] = json.loads(data["spans"])
            except json.JSONDecodeError:
                pass
        records.append(Record(str(path), number, data, unit="row"))
    return records


# --------------------------------------------------------------------------------------------
# Internals: validation


@dataclass(frozen=True)
class _Example:
    """A valid row in canonical form."""

    call_id: str
    transcript: str
    label: str
    signals: tuple[str, ...] | None
    spans: tuple[tuple[int, int, str, str], ...]
    source: str
    campaign: str
    industry: str
    split: str | None
    extra: str
    location: str
    key: str = field(repr=False, default="")


def _call_id(data: Any) -> str | None:
    if not isinstance(data, Mapping):
        return None
    value = data.get("call_id")
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _apply_corrections(
    records: Sequence[Record], corrections: Sequence[Record]
) -> tuple[list[Record], int, dict[int, list[str]]]:
    """Flag unreadable rows and duplicate ids, and merge corrections into their originals.

    Returns:
        ``(records with corrections merged, corrections applied, problems)`` where problems maps
        an index (``< len(records)``: an original row; above: ``len(records) + i`` for
        correction ``i``) to its reasons.
    """
    problems: dict[int, list[str]] = defaultdict(list)
    first_at: dict[str, int] = {}
    for order, record in enumerate(records):
        reason = _unreadable(record)
        if reason:
            problems[order].append(reason)
            continue
        call_id = _call_id(record.data)
        if call_id is None:
            problems[order].append("missing call_id (a non-empty string)")
        elif call_id in first_at:
            first = records[first_at[call_id]].location
            problems[order].append(f"duplicate call_id {call_id!r} (also at {first})")
        else:
            first_at[call_id] = order

    merged = list(records)
    applied = 0
    corrected_at: dict[str, Record] = {}
    for i, correction in enumerate(corrections):
        order = len(records) + i
        reason = _unreadable(correction)
        call_id = None if reason else _call_id(correction.data)
        if reason:
            problems[order].append(reason)
        elif call_id is None:
            problems[order].append("correction without call_id")
        elif call_id in corrected_at:
            problems[order].append(f"second correction for call_id {call_id!r} "
                                   f"(also at {corrected_at[call_id].location})")
        elif call_id not in first_at:
            problems[order].append(f"correction for unknown call_id {call_id!r}")
        else:
            original = records[first_at[call_id]]
            corrected_at[call_id] = correction
            data = {**original.data, **correction.data}
            merged[first_at[call_id]] = Record(correction.file, correction.line, data, unit=correction.unit,
                                               corrects=original.location)
            applied += 1
    if applied:
        logger.info("applied %d corrections", applied)
    return merged, applied, dict(problems)


def _unreadable(record: Record) -> str:
    if record.parse_error:
        return record.parse_error
    if not isinstance(record.data, Mapping):
        return f"row must be a JSON object, got {type(record.data).__name__}"
    return ""


def _check_row(record: Record, max_words: int) -> tuple[_Example | None, list[str]]:
    """Validate one readable row; returns the canonical example or the reasons it is invalid."""
    data: Mapping[str, Any] = record.data
    reasons: list[str] = []
    call_id = _call_id(data) or ""

    transcript = data.get("transcript")
    if not isinstance(transcript, str):
        reasons.append("missing transcript" if transcript is None
                       else f"transcript must be a string, got {type(transcript).__name__}")
        transcript = ""
    elif not transcript.strip():
        reasons.append("empty transcript")
    elif not normalise_transcript(transcript):
        reasons.append(f"transcript {transcript!r} has no words")
    else:
        words = len(transcript.split())
        if words > max_words:
            reasons.append(f"transcript has {words} words, more than max_words={max_words} "
                           "(an opening is about 75; is this a whole call?)")

    label = data.get("label")
    if not isinstance(label, str) or label not in CLASS_INDEX:
        reasons.append(f"unknown label {label!r} (known: {', '.join(CLASS_NAMES)})" if label is not None
                       else f"missing label (one of {', '.join(CLASS_NAMES)})")

    signals: tuple[str, ...] | None = None
    raw_signals = data.get("signals")
    if raw_signals is not None:
        if not isinstance(raw_signals, (list, tuple)) or not all(isinstance(s, str) for s in raw_signals):
            reasons.append(f"signals must be a list of signal names or null, got {raw_signals!r}")
        else:
            unknown = [s for s in raw_signals if s not in SIGNAL_INDEX]
            if unknown:
                reasons.append(f"unknown signal {unknown[0]!r} (known: {', '.join(SIGNAL_NAMES)})")
            else:
                # Canonical order (schema order, no repeats) so equal labels compare equal.
                signals = tuple(s for s in SIGNAL_NAMES if s in raw_signals)

    spans, span_reasons = _check_spans(data.get("spans"), transcript, signals, raw_signals is None)
    reasons += span_reasons

    split = data.get("split")
    if split == "":
        split = None
    if split is not None and split not in SPLITS:
        reasons.append(f"split must be one of {', '.join(SPLITS)} (or absent), got {split!r}")

    texts = {}
    for key in _TEXT_KEYS:
        value = data.get(key)
        if value is not None and not isinstance(value, (str, int, float)):
            reasons.append(f"{key} must be a string, got {type(value).__name__}")
        texts[key] = "" if value is None else str(value)

    if reasons:
        if record.corrects:
            reasons = [f"{r} (after correcting {record.corrects})" for r in reasons]
        return None, reasons
    extra = {k: v for k, v in data.items() if k not in _KNOWN_KEYS and v is not None}
    return _Example(
        call_id=call_id, transcript=transcript, label=label, signals=signals, spans=spans,
        split=split, extra=json.dumps(extra, sort_keys=True, ensure_ascii=False, default=str),
        location=record.location, key=normalise_transcript(transcript), **texts,
    ), []


def _check_spans(
    raw: Any, transcript: str, signals: tuple[str, ...] | None, unlabeled: bool
) -> tuple[tuple[tuple[int, int, str, str], ...], list[str]]:
    """Check evidence spans: known signal, listed in ``signals``, offsets inside and matching the text."""
    if raw is None:
        return (), []
    if not isinstance(raw, (list, tuple)):
        return (), [f"spans must be a list of {{signal, start, end, text}} objects, got {raw!r}"]
    spans: list[tuple[int, int, str, str]] = []
    reasons: list[str] = []
    for i, span in enumerate(raw):
        where = f"spans[{i}]"
        if not isinstance(span, Mapping):
            reasons.append(f"{where} must be an object with signal, start, end")
            continue
        name, start, end = span.get("signal"), span.get("start"), span.get("end")
        if not isinstance(name, str) or name not in SIGNAL_INDEX:
            reasons.append(f"{where}: unknown signal {name!r}")
            continue
        if unlabeled:
            reasons.append(f"{where}: span for {name!r} but signals is null (not labeled)")
            continue
        if signals is not None and name not in signals:
            reasons.append(f"{where}: span for {name!r}, which is not in signals")
            continue
        if (not isinstance(start, int) or not isinstance(end, int) or isinstance(start, bool)
                or isinstance(end, bool) or not 0 <= start < end <= len(transcript)):
            reasons.append(f"{where}: offsets start={start!r} end={end!r} are not inside the "
                           f"{len(transcript)}-character transcript")
            continue
        text = span.get("text")
        if text is not None and text != transcript[start:end]:
            reasons.append(f"{where}: text {text!r} does not match transcript[{start}:{end}] = "
                           f"{transcript[start:end]!r}")
            continue
        spans.append((start, end, name, transcript[start:end]))
    return tuple(sorted(spans)), reasons


def _given_split_leaks(examples: Mapping[int, _Example]) -> dict[int, str]:
    """Rows whose normalised transcript the files also put in an earlier-priority split."""
    first_in_split: dict[str, dict[str, _Example]] = defaultdict(dict)
    for order in sorted(examples):
        example = examples[order]
        if example.split is not None:
            first_in_split[example.key].setdefault(example.split, example)
    leaks: dict[int, str] = {}
    for order, example in examples.items():
        if example.split is None:
            continue
        held = first_in_split[example.key]
        kept = next(s for s in SPLITS if s in held)
        if kept != example.split:
            leaks[order] = (f"leakage: same transcript as the {kept!r} row at {held[kept].location}, "
                            f"but this row is in {example.split!r}")
    return leaks


# --------------------------------------------------------------------------------------------
# Internals: splitting


def _assign_splits(examples: Sequence[_Example], config: DataConfig) -> tuple[dict[str, list[_Example]], str]:
    """Put each example in a split: its own, its transcript group's, or a seeded stratified one."""
    groups: dict[str, list[_Example]] = defaultdict(list)
    for example in examples:
        groups[example.key].append(example)
    given = sum(1 for e in examples if e.split is not None)
    origin = "file" if given == len(examples) else "auto" if given == 0 else "mixed"

    group_split: dict[str, str] = {}
    free: list[str] = []
    for key in sorted(groups):  # sorted, so the split depends on the rows, not on their order
        pinned = next((e.split for e in groups[key] if e.split is not None), None)
        if pinned is not None:
            group_split[key] = pinned  # a transcript group follows its file-given split
        else:
            free.append(key)
    conflicting = sum(1 for key in groups if len({e.label for e in groups[key]}) > 1)
    if conflicting:
        logger.warning("%d transcripts occur with different labels", conflicting)

    if free:
        strata = [_group_label(groups[key]) for key in free]
        n_test = round(config.test_fraction * len(free))
        n_val = round(config.val_fraction * len(free))
        test, rest, rest_strata = _take(free, strata, n_test, config)
        val, train, _ = _take(rest, rest_strata, n_val, config)
        for keys, name in ((train, "train"), (val, "validation"), (test, "test")):
            group_split.update(dict.fromkeys(keys, name))
        logger.info("auto-split %d transcript groups (seed %d): train %d, validation %d, test %d",
                    len(free), config.seed, len(train), len(val), len(test))

    splits: dict[str, list[_Example]] = {s: [] for s in SPLITS}
    for example in examples:
        splits[group_split[example.key]].append(example)
    return splits, origin


def _group_label(group: Sequence[_Example]) -> str:
    counts = Counter(e.label for e in group)
    return max(CLASS_NAMES, key=lambda c: (counts[c], -CLASS_INDEX[c]))


def _take(
    keys: list[str], strata: list[str], n: int, config: DataConfig
) -> tuple[list[str], list[str], list[str]]:
    """Take ``n`` of ``keys`` (stratified by ``strata`` when configured): ``(taken, rest, rest_strata)``."""
    if n <= 0 or not keys:
        return [], keys, strata
    if n >= len(keys):
        return keys, [], []
    from sklearn.model_selection import train_test_split

    indices = list(range(len(keys)))
    try:
        rest, taken = train_test_split(indices, test_size=n, random_state=config.seed,
                                       stratify=strata if config.stratify else None)
    except ValueError as e:
        # Too few rows of some class to give every split its share (tiny sets): split unstratified.
        logger.warning("cannot stratify this split (%s); splitting without stratification", e)
        rest, taken = train_test_split(indices, test_size=n, random_state=config.seed)
    rest = sorted(rest)
    return [keys[i] for i in sorted(taken)], [keys[i] for i in rest], [strata[i] for i in rest]


def _cross_split_duplicates(splits: Mapping[str, Sequence[_Example]]) -> set[str]:
    seen: dict[str, str] = {}
    leaks: set[str] = set()
    for name, examples in splits.items():
        for example in examples:
            if seen.setdefault(example.key, name) != name:
                leaks.add(example.key)
    return leaks


# --------------------------------------------------------------------------------------------
# Internals: building the DatasetDict


def _features() -> Features:
    from datasets import Features, List, Value

    return Features({
        "call_id": Value("string"),
        "transcript": Value("string"),
        "label": Value("string"),
        "label_id": Value("int64"),
        "signals": List(Value("string")),
        "signal_labels": List(Value("float32")),
        "signals_labeled": Value("bool"),
        "spans": Value("string"),
        "source": Value("string"),
        "campaign": Value("string"),
        "industry": Value("string"),
        "extra": Value("string"),
    })


def _to_dataset(examples: Sequence[_Example]) -> Dataset:
    from datasets import Dataset

    columns: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    for e in examples:
        signals = e.signals or ()
        columns["call_id"].append(e.call_id)
        columns["transcript"].append(e.transcript)
        columns["label"].append(e.label)
        columns["label_id"].append(CLASS_INDEX[e.label])
        columns["signals"].append(list(signals))
        columns["signal_labels"].append([1.0 if s in signals else 0.0 for s in SIGNAL_NAMES])
        columns["signals_labeled"].append(e.signals is not None)
        spans = [{"signal": name, "start": start, "end": end, "text": text}
                 for start, end, name, text in e.spans]
        columns["spans"].append(json.dumps(spans, ensure_ascii=False))
        columns["source"].append(e.source)
        columns["campaign"].append(e.campaign)
        columns["industry"].append(e.industry)
        columns["extra"].append(e.extra)
    return Dataset.from_dict(columns, features=_features())


def _to_dataset_dict(splits: Mapping[str, Sequence[_Example]]) -> DatasetDict:
    from datasets import DatasetDict

    return DatasetDict({name: _to_dataset(splits[name]) for name in SPLITS})


def _write_rejects(path: Path, rejected: Sequence[tuple[Record, list[str]]]) -> None:
    write_jsonl(({"file": r.file, "line": r.line, "reason": "; ".join(reasons), "row": r.data}
                 for r, reasons in rejected), path)
