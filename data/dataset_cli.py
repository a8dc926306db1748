"""``callintent data validate | split | import-real``: check labeled files, write splits, import real text."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from callintent.errors import UserError

if TYPE_CHECKING:
    from datasets import DatasetDict

    from data.dataset import DataConfig, LoadReport


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``validate``, ``split`` and ``import-real`` to ``callintent data``."""
    validate = subparsers.add_parser(
        "validate", help="check labeled files; print split/class counts and the data fingerprint",
        description="Check labeled JSONL/CSV/Parquet files row by row (labels, signals, spans, length, "
                    "duplicate ids, leakage between splits). Exit 0 when valid, 2 with file:line "
                    "problems when not.")
    _add_load_arguments(validate)
    validate.set_defaults(data_run=run_validate)

    split = subparsers.add_parser(
        "split", help="validate and write DIR/{train,validation,test}.jsonl",
        description="Validate labeled files and write their splits (the files' own split column, else "
                    "a seeded stratified split that keeps repeated transcripts together).")
    _add_load_arguments(split)
    split.add_argument("--out", required=True, metavar="DIR", help="output folder")
    split.set_defaults(data_run=run_split)

    real = subparsers.add_parser(
        "import-real", help="import a real-text set (e.g. ../shared/data/sgd_openings.jsonl) leak-free",
        description="Validate a real-text labeled set, move copies of a transcript repeated across its "
                    "splits into the earliest one, and write DIR/<name>.jsonl.")
    real.add_argument("file", metavar="FILE", help="labeled .jsonl/.csv/.parquet file")
    real.add_argument("--out", required=True, metavar="DIR", help="output folder")
    real.add_argument("--max-words", type=int, default=None, help="longest transcript accepted (default 150)")
    real.set_defaults(data_run=run_import_real)


def _add_load_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="labeled .jsonl, .csv or .parquet files")
    parser.add_argument("--corrections", action="append", default=None, metavar="FILE",
                        help="rows that override the row with the same call_id (repeatable)")
    parser.add_argument("--max-words", type=int, default=None,
                        help="longest transcript accepted (default 150)")
    parser.add_argument("--val-fraction", type=float, default=None, help="auto-split validation share (0.1)")
    parser.add_argument("--test-fraction", type=float, default=None, help="auto-split test share (0.1)")
    parser.add_argument("--seed", type=int, default=None, help="auto-split seed (0)")
    parser.add_argument("--no-stratify", action="store_true", help="auto-split without stratifying by label")
    parser.add_argument("--drop-invalid", action="store_true",
                        help="load the valid rows and write the invalid ones to --rejects")
    parser.add_argument("--rejects", metavar="FILE", default=None, help="JSONL file for rejected rows")


def _config(args: argparse.Namespace) -> DataConfig:
    from data.dataset import DataConfig

    values = {
        "max_words": getattr(args, "max_words", None),
        "val_fraction": getattr(args, "val_fraction", None),
        "test_fraction": getattr(args, "test_fraction", None),
        "seed": getattr(args, "seed", None),
    }
    kwargs = {k: v for k, v in values.items() if v is not None}
    if getattr(args, "no_stratify", False):
        kwargs["stratify"] = False
    if getattr(args, "drop_invalid", False):
        if not args.rejects:
            raise UserError("--drop-invalid needs --rejects FILE, so every dropped row is kept with its "
                            "reason")
        kwargs.update(drop_invalid=True, rejects_path=args.rejects)
    try:
        return DataConfig(**kwargs)
    except ValueError as e:
        raise UserError(f"bad option: {e}") from None


def _load(args: argparse.Namespace) -> tuple[DatasetDict, LoadReport]:
    from data.dataset import load_labeled_with_report

    return load_labeled_with_report(args.files, _config(args), corrections=args.corrections)


def format_report(report: LoadReport) -> str:
    """The counts table ``validate`` and ``split`` print."""
    from models.labels import CLASS_NAMES

    width = max(len(c) for c in CLASS_NAMES)
    header = f"{'split':<11}{'rows':>7}" + "".join(f"{c:>{width + 2}}" for c in CLASS_NAMES)
    header += "  signals labeled"
    lines = [
        f"files: {', '.join(report.files)}",
        f"rows read {report.rows_read}, rejected {report.rows_rejected}, corrections applied "
        f"{report.corrections_applied}" + (f" (rejected {report.corrections_rejected})"
                                           if report.corrections_rejected else "")
        + f", splits from {report.split_origin}",
        header,
    ]
    for split, n in report.split_counts.items():
        lines.append(f"{split:<11}{n:>7}" + "".join(f"{report.class_counts[split][c]:>{width + 2}}"
                                                    for c in CLASS_NAMES)
                     + f"  {report.signals_labeled[split]:>15}")
    if report.rejects_path:
        lines.append(f"rejected rows: {report.rejects_path}")
    lines.append(f"fingerprint: {report.fingerprint}")
    return "\n".join(lines)


def run_validate(args: argparse.Namespace) -> int:
    _, report = _load(args)
    print(format_report(report))
    return 0


def run_split(args: argparse.Namespace) -> int:
    from data.dataset import write_splits

    dsd, report = _load(args)
    written = write_splits(dsd, args.out)
    print(format_report(report))
    for split, path in written.items():
        print(f"wrote {path} ({report.split_counts[split]} rows)")
    return 0


def run_import_real(args: argparse.Namespace) -> int:
    from data.realtext import import_real_text

    _, summary = import_real_text(args.file, args.out, _config(args))
    print(format_report(summary.report))
    print(f"moved {len(summary.moves)} rows into an earlier split to keep repeated transcripts together")
    print(f"wrote {summary.out_path}")
    return 0
