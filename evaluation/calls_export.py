"""Logged calls as labeled training rows: the production traffic the next model learns from.

:func:`export_calls` writes the labeled-example JSONL of ``docs/ARCHITECTURE.md`` (loadable by
``data.dataset.load_labeled``). Each row's label is

* the QA-corrected label when a corrections file has one for the call (``label_source: "qa"``), or
* the label the logged model gave it (``label_source: "model"`` — a pseudo-label: useful volume,
  but it can only teach the next model what this one already believed).

Signals follow the label: the model's present signals for model-labeled rows; for QA rows the
corrected signals when given, the model's when QA kept the label, and ``null`` (unlabeled, masked
in training) when QA changed the label without saying which signals are present.

Every row carries ``origin: "call_log"`` (training counts these into the model card), the scoring
``model``, ``model_label``, ``buying_intent``, ``channel``, ``logged_at`` and the ``outcome``
(or null) as extra keys. Only calls whose transcript was logged (``call_log.transcript`` not
``off``) can be exported; empty and over-long (> ``DEFAULT_MAX_WORDS`` words) transcripts are
skipped and counted, because ``load_labeled`` would reject them.

Corrections files are JSONL rows ``{"call_id", "label"[, "signals"]}`` — what
``callintent evaluate review-import`` writes and ``load_labeled(..., corrections=…)`` reads.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callintent.errors import UserError
from data.call_log import MODEL_LABEL, ORIGIN, QA_LABEL
from models.labels import CLASS_NAMES, DEFAULT_MAX_WORDS, SIGNAL_NAMES
from serving.calllog.records import LoggedCall

logger = logging.getLogger(__name__)


class CorrectionsFileError(UserError):
    """A corrections file cannot be read or holds an invalid row; the message names file and line."""


@dataclass(frozen=True)
class Correction:
    """A QA correction. Attributes: call_id, label (None = not corrected), signals (None = not given)."""

    call_id: str
    label: str | None
    signals: tuple[str, ...] | None


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_calls` wrote.

    Attributes:
        path: The JSONL file.
        rows: Rows written.
        qa_labeled: Rows whose label came from a correction.
        model_labeled: Rows labeled with the logged model's label.
        with_outcome: Rows whose call has a reported outcome.
        no_transcript: Calls skipped: transcript not logged (``call_log.transcript: off``).
        unusable_transcript: Calls skipped: empty, or longer than ``DEFAULT_MAX_WORDS`` words.
        unused_corrections: Corrections for calls not in the export.
    """

    path: Path
    rows: int
    qa_labeled: int
    model_labeled: int
    with_outcome: int
    no_transcript: int
    unusable_transcript: int
    unused_corrections: int


def read_corrections(paths: Iterable[str | Path]) -> dict[str, Correction]:
    """Read corrections files (JSONL); a later file's row for the same call wins.

    Raises:
        CorrectionsFileError: unreadable file, bad JSON, or an unknown label/signal (``file:line``).
    """
    out: dict[str, Correction] = {}
    for path in map(Path, paths):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise CorrectionsFileError(f"{path}: cannot read corrections: {e.strerror or e}") from None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise CorrectionsFileError(f"{where}: not valid JSON: {e}") from None
            if not isinstance(row, dict) or not isinstance(row.get("call_id"), str) or not row["call_id"]:
                raise CorrectionsFileError(f"{where}: call_id: a correction needs the call's id")
            label = row.get("label")
            if label is not None and label not in CLASS_NAMES:
                raise CorrectionsFileError(f"{where}: label: {label!r} is not one of {list(CLASS_NAMES)}")
            signals = row.get("signals")
            if signals is not None:
                if not isinstance(signals, list) or any(s not in SIGNAL_NAMES for s in signals):
                    raise CorrectionsFileError(f"{where}: signals: must be a list of {list(SIGNAL_NAMES)}, "
                                               f"got {signals!r}")
                signals = tuple(sorted(set(signals)))
            out[row["call_id"]] = Correction(row["call_id"], label, signals)
    return out


def training_row(logged: LoggedCall, correction: Correction | None = None) -> dict[str, Any]:
    """One labeled row for a logged call (its transcript must have been logged)."""
    call = logged.call
    assert call is not None and call.transcript is not None
    label, signals, source = call.label, list(call.present_signals), MODEL_LABEL
    if correction is not None and (correction.label is not None or correction.signals is not None):
        source = QA_LABEL
        if correction.label is not None and correction.label != call.label:
            label = correction.label
            signals = None  # the model's signals belong to its label, not to QA's
        if correction.signals is not None:
            signals = list(correction.signals)
    return {
        "call_id": call.call_id, "transcript": call.transcript, "label": label, "signals": signals,
        "source": call.source, "campaign": call.campaign, "industry": call.metadata.get("industry", ""),
        "origin": ORIGIN, "label_source": source, "model": call.model, "model_label": call.label,
        "buying_intent": call.buying_intent, "channel": call.channel,
        "logged_at": call.logged_at.isoformat(timespec="seconds") + "Z",
        "outcome": logged.outcome.to_json() if logged.outcome is not None else None,
    }


def export_calls(store: Any, out: str | Path, *, since: dt.datetime | None = None, until: dt.datetime | None = None,
                 corrections: Sequence[str | Path] = ()) -> ExportReport:
    """Write the logged calls in the window as a labeled JSONL training file.

    Args:
        store: A :class:`~serving.calllog.store.CallLogStore`.
        out: Output ``.jsonl`` (written whole or not at all).
        since, until: Window on ``logged_at`` (naive UTC; None = open).
        corrections: QA corrections files (JSONL).

    Returns:
        Counts of what was written and skipped.
    """
    fixes = read_corrections(corrections)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    counts = {"rows": 0, "qa": 0, "outcome": 0, "no_transcript": 0, "unusable": 0}
    used: set[str] = set()
    with partial.open("w", encoding="utf-8") as f:
        for logged in store.iter_calls(since, until):
            call = logged.call
            if call.transcript is None:
                counts["no_transcript"] += 1
                continue
            words = len(call.transcript.split())
            if words == 0 or words > DEFAULT_MAX_WORDS:
                counts["unusable"] += 1
                continue
            correction = fixes.get(call.call_id)
            row = training_row(logged, correction)
            if correction is not None:
                used.add(call.call_id)
            counts["rows"] += 1
            counts["qa"] += row["label_source"] == QA_LABEL
            counts["outcome"] += logged.outcome is not None
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(partial, path)
    report = ExportReport(path=path, rows=counts["rows"], qa_labeled=counts["qa"],
                          model_labeled=counts["rows"] - counts["qa"], with_outcome=counts["outcome"],
                          no_transcript=counts["no_transcript"], unusable_transcript=counts["unusable"],
                          unused_corrections=len(set(fixes) - used))
    logger.info("exported %d logged calls to %s (%d QA-labeled, %d model-labeled; skipped %d without transcript, "
                "%d empty or too long)", report.rows, path, report.qa_labeled, report.model_labeled,
                report.no_transcript, report.unusable_transcript)
    return report
