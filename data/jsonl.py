"""JSON Lines read the one way every offline tool here reads them: blank lines skipped, each other
line a JSON object, and a problem named by its ``file:line``. A ``.gz`` file is read through gzip."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from callintent.errors import UserError


def json_objects(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, object) for each non-blank line of ``path``; a line that is not a JSON object gives a
    problem string in place of the object (the caller decides whether that is fatal)."""
    with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                yield line_no, f"not valid JSON: {e.msg} (column {e.colno})"
                continue
            yield line_no, record if isinstance(record, dict) else f"expected a JSON object, got {type(record).__name__}"


def read_objects(paths: Iterable[str | Path], *, missing: str) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    """(file, line, object) of every JSON object in ``paths``, in order.

    Args:
        paths: JSONL files.
        missing: What to say after ``<file>: `` when a file does not exist (how to make it).

    Raises:
        UserError: a missing file, or a line that is not a JSON object (named as ``file:line``).
    """
    for path in map(Path, paths):
        if not path.is_file():
            raise UserError(f"{path}: {missing}")
        for line_no, record in json_objects(path):
            if isinstance(record, str):
                raise UserError(f"{path}:{line_no}: {record}")
            yield path, line_no, record
