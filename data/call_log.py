"""The call log's export rows as data: the one reader of ``callintent calls export`` files outside serving.

``evaluation.calls_export`` writes logged calls as labeled-example JSONL with extra keys (see its
docstring). Training reads those files through ``data.dataset.load_labeled`` like any labeled file;
tools that need to know *whose* label a row carries (a person's, or the logged model's own) read
them here, so no package below ``serving`` has to import it to learn the row format.

The keys this module relies on:

* ``call_id``, ``transcript`` (non-empty), ``label``;
* ``label_source``: ``"qa"`` (a person's label, from a corrections file) or ``"model"`` (the
  logged model's pseudo-label);
* ``origin``: :data:`ORIGIN` on every exported row; ``model``, ``source``, ``campaign``, ``industry``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callintent.errors import UserError
from data.dataset import read_records
from models.labels import CLASS_NAMES

#: ``origin`` of every row the call-log export writes (training counts these into the model card).
ORIGIN = "call_log"

#: ``label_source`` of a row whose label a person gave (a QA correction).
QA_LABEL = "qa"
#: ``label_source`` of a row that carries the logged model's own label.
MODEL_LABEL = "model"
LABEL_SOURCES = (QA_LABEL, MODEL_LABEL)


class CallLogExportError(UserError):
    """A call-log export cannot be read or has a malformed row; the message names file and line."""


@dataclass(frozen=True)
class ExportedCall:
    """One row of a call-log export.

    Attributes:
        call_id: The call's id.
        transcript: The logged opening transcript.
        label: The row's label (QA's or the logged model's, see ``label_source``).
        label_source: :data:`QA_LABEL` or :data:`MODEL_LABEL`.
        model: The model that scored the call when it was logged ("" when absent).
        source: Call source metadata ("" when absent).
        campaign: Campaign metadata ("" when absent).
        industry: Industry metadata ("" when absent).
        location: ``file:line`` of the row.
    """

    call_id: str
    transcript: str
    label: str
    label_source: str
    model: str
    source: str
    campaign: str
    industry: str
    location: str

    @property
    def qa_labeled(self) -> bool:
        """Whether a person gave this call its label."""
        return self.label_source == QA_LABEL


def read_call_log_export(paths: Iterable[str | Path]) -> list[ExportedCall]:
    """Read call-log exports; a call in several files keeps its row from the last one (the newest export).

    Args:
        paths: ``.jsonl`` files written by ``callintent calls export`` (``.csv``/``.parquet`` with the
            same columns load too).

    Returns:
        The calls, in order of first appearance.

    Raises:
        CallLogExportError: a missing or unreadable file, or a malformed row (the first one is named
            by ``file:line``, with the count of the others).
        UserError: an unsupported file suffix.
    """
    calls: dict[str, ExportedCall] = {}
    problems: list[str] = []
    for path in paths:
        for record in read_records(path):
            if record.parse_error:
                problems.append(f"{record.location}: {record.parse_error}")
                continue
            call, problem = _exported_call(record.data, record.location)
            if call is None:
                problems.append(f"{record.location}: {problem}")
            else:
                calls[call.call_id] = call
    if problems:
        more = f" (and {len(problems) - 1} more malformed rows)" if len(problems) > 1 else ""
        raise CallLogExportError(problems[0] + more)
    return list(calls.values())


def _exported_call(data: Any, location: str) -> tuple[ExportedCall | None, str]:
    """The row as an :class:`ExportedCall`, or None and what is wrong with it."""
    if not isinstance(data, Mapping):
        return None, f"row must be a JSON object, got {type(data).__name__}"
    call_id = data.get("call_id")
    if not isinstance(call_id, str) or not call_id.strip():
        return None, "call_id: must be a non-empty string"
    transcript = data.get("transcript")
    if not isinstance(transcript, str) or not transcript.strip():
        return None, f"transcript: call {call_id!r} has no transcript text"
    label = data.get("label")
    if label not in CLASS_NAMES:
        return None, f"label: {label!r} is not one of {list(CLASS_NAMES)}"
    label_source = data.get("label_source")
    if label_source not in LABEL_SOURCES:
        return None, (f"label_source: {label_source!r} is not one of {list(LABEL_SOURCES)} "
                      "(is this a call-log export? write one with 'callintent calls export')")

    def text(key: str) -> str:
        value = data.get(key)
        return value if isinstance(value, str) else ""

    return ExportedCall(call_id=call_id.strip(), transcript=transcript, label=label, label_source=label_source,
                        model=text("model"), source=text("source"), campaign=text("campaign"),
                        industry=text("industry"), location=location), ""
