"""The QA review loop: export misclassified calls, let people correct labels, feed corrections back.

1. ``export_errors(evaluation, "errors.csv")`` (or ``.jsonl``) writes one row per misclassified
   call with the model's probabilities and an empty ``corrected_label`` column.
2. QA fills ``corrected_label`` where the *label* was wrong (leave it empty where the model was).
   ``corrected_signals`` may be filled too (JSON list or names separated by ``;``).
3. ``corrections_from_review("errors.csv")`` turns the filled rows into correction rows
   ``{"call_id", "label"[, "signals"]}``; :func:`write_corrections` saves them as JSONL, which
   ``data.dataset.load_labeled(..., corrections=[...])`` (and so training and
   ``callintent data validate --corrections``) applies over the original rows by ``call_id``.

Only ``call_id`` and the corrected fields go into a correction row: the export's other columns
(the transcript, the model's prediction) must never overwrite the original data.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callintent.errors import UserError
from models.labels import CLASS_NAMES, SIGNAL_NAMES

if TYPE_CHECKING:
    from evaluation.evaluate import ModelEvaluation
    from models.scores import IntentScores

logger = logging.getLogger(__name__)

#: Columns of the error export, in order (CSV spreads probabilities over ``p_<class>`` columns).
ERROR_COLUMNS: tuple[str, ...] = (
    "call_id", "transcript", "label", "predicted", "confidence",
    *(f"p_{c}" for c in CLASS_NAMES),
    "signals", "predicted_signals", "source", "campaign", "industry", "model",
    "corrected_label", "corrected_signals", "note",
)

_FORMATS = (".csv", ".jsonl")


class ReviewFileError(UserError):
    """A review file cannot be read or has an invalid correction; the message names file and line."""


def error_rows(evaluation: ModelEvaluation) -> list[dict[str, Any]]:
    """One JSON-ready row per misclassified call, most confident mistakes first.

    Args:
        evaluation: A model's evaluation.

    Returns:
        Rows with the keys of :data:`ERROR_COLUMNS` (``probabilities`` as one mapping instead
        of the ``p_<class>`` columns).
    """
    data, scored = evaluation.data, evaluation.scored
    return [review_row(call_id=data.call_ids[i], transcript=data.transcripts[i], label=data.labels[i],
                       scores=scored.scores[i],
                       signals=list(data.signals[i]) if data.signals_labeled[i] else None,
                       source=data.source[i], campaign=data.campaign[i], industry=data.industry[i],
                       model=scored.model_id)
            for i in evaluation.error_indices]


def review_row(*, call_id: str, transcript: str, label: str, scores: IntentScores, signals: list[str] | None,
               source: str, campaign: str, industry: str, model: str, note: str = "") -> dict[str, Any]:
    """One call as a review row: what the model says, with empty ``corrected_*`` cells for QA.

    Every file QA reviews is built from these rows (misclassified calls, calls chosen for labeling),
    so :func:`corrections_from_review` reads them all the same way.

    Args:
        call_id, transcript, source, campaign, industry: The call.
        label: The call's current label ("" when no person has labeled it yet: then any
            ``corrected_label`` QA fills in, the model's own class included, becomes a correction).
        scores: The model's verdict.
        signals: The labeled signals (None = not labeled).
        model: ``"<name>/<version>"`` that produced ``scores``.
        note: Pre-filled ``note`` (QA may overwrite it; it is never imported).

    Returns:
        A row with the keys of :data:`ERROR_COLUMNS` (``probabilities`` as one mapping).
    """
    return {
        "call_id": call_id,
        "transcript": transcript,
        "label": label,
        "predicted": scores.label,
        "confidence": round(scores.probabilities[scores.label], 4),
        "probabilities": {c: round(scores.probabilities[c], 4) for c in CLASS_NAMES},
        "signals": signals,
        "predicted_signals": [s.name for s in scores.present_signals],
        "source": source, "campaign": campaign, "industry": industry,
        "model": model,
        "corrected_label": "",
        "corrected_signals": "",
        "note": note,
    }


def export_errors(evaluation: ModelEvaluation, path: str | Path) -> Path:
    """Write the misclassified calls for review (``.csv`` for spreadsheets, ``.jsonl`` for tools).

    Args:
        evaluation: A model's evaluation.
        path: Output file; the suffix picks the format.

    Returns:
        The path written.

    Raises:
        ReviewFileError: unsupported suffix.
    """
    rows = error_rows(evaluation)
    path = write_review_file(rows, path)
    logger.info("wrote %d misclassified calls to %s", len(rows), path)
    return path


def write_review_file(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write review rows (from :func:`review_row`) as ``.csv`` (spreadsheets) or ``.jsonl`` (tools).

    Args:
        rows: The rows, in the order QA should see them.
        path: Output file; the suffix picks the format.

    Returns:
        The path written.

    Raises:
        ReviewFileError: unsupported suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise ReviewFileError(f"{path}: a review file must be .csv or .jsonl, got {suffix or 'no suffix'!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(ERROR_COLUMNS))
            writer.writeheader()
            for row in rows:
                flat = {k: v for k, v in row.items() if k != "probabilities"}
                flat.update({f"p_{c}": p for c, p in row["probabilities"].items()})
                # Lists as JSON, as data.dataset reads CSV signal cells; None (unlabeled) stays empty.
                for key in ("signals", "predicted_signals"):
                    flat[key] = "" if row[key] is None else json.dumps(row[key])
                writer.writerow(flat)
    return path


def corrections_from_review(path: str | Path) -> list[dict[str, Any]]:
    """Correction rows from a reviewed error export.

    A row becomes a correction when its ``corrected_label`` is filled and differs from ``label``
    (a repeated label changes nothing and would be miscounted as a correction), or when
    ``corrected_signals`` is filled.

    Args:
        path: The reviewed ``.csv`` or ``.jsonl`` (as written by :func:`export_errors`).

    Returns:
        ``[{"call_id", "label"?, "signals"?}, …]`` in file order.

    Raises:
        ReviewFileError: unreadable file, a missing ``call_id``, an unknown class or signal, or a
            call corrected twice (each named by ``file:line``).
    """
    path = Path(path)
    problems: list[str] = []
    corrections: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    unchanged = 0
    for line, row in _read_review(path):
        where = f"{path}:{line}"
        call_id = str(row.get("call_id") or "").strip()
        corrected = str(row.get("corrected_label") or "").strip()
        raw_signals = row.get("corrected_signals")
        if not corrected and raw_signals in (None, ""):
            continue
        if not call_id:
            problems.append(f"{where}: corrected row without call_id")
            continue
        if call_id in seen:
            problems.append(f"{where}: call_id {call_id!r} corrected twice (also line {seen[call_id]})")
            continue
        seen[call_id] = line
        correction: dict[str, Any] = {"call_id": call_id}
        if corrected:
            if corrected not in CLASS_NAMES:
                problems.append(f"{where}: corrected_label {corrected!r} is not a class "
                                f"(one of {', '.join(CLASS_NAMES)})")
                continue
            if corrected != str(row.get("label") or "").strip():
                correction["label"] = corrected
        if raw_signals not in (None, ""):
            signals, problem = _parse_signals(raw_signals)
            if problem:
                problems.append(f"{where}: corrected_signals {problem}")
                continue
            correction["signals"] = signals
        if len(correction) == 1:
            unchanged += 1
            continue
        corrections.append(correction)
    if problems:
        raise ReviewFileError("\n".join(problems[:20]) + (f"\n… and {len(problems) - 20} more"
                                                           if len(problems) > 20 else ""))
    logger.info("%s: %d corrections (%d rows repeated the original label and were skipped)", path,
                len(corrections), unchanged)
    return corrections


def write_corrections(corrections: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write correction rows as JSONL (the file ``load_labeled(..., corrections=...)`` reads).

    Args:
        corrections: From :func:`corrections_from_review`.
        path: Output ``.jsonl``.

    Returns:
        The path written.
    """
    path = Path(path)
    if path.suffix.lower() != ".jsonl":
        raise ReviewFileError(f"{path}: corrections are written as .jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in corrections:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def _read_review(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise ReviewFileError(f"{path}: review file must be .csv or .jsonl, got {suffix or 'no suffix'!r}")
    if not path.is_file():
        raise ReviewFileError(f"{path}: file not found")
    try:
        with path.open(encoding="utf-8", newline="" if suffix == ".csv" else None) as f:
            if suffix == ".csv":
                reader = csv.DictReader(f)
                if reader.fieldnames is None or "corrected_label" not in reader.fieldnames:
                    raise ReviewFileError(f"{path}: no corrected_label column (export it with "
                                          "callintent evaluate … --export-errors FILE)")
                previous_end = reader.line_num
                for row in reader:
                    # The record's first physical line (quoted cells may span several lines).
                    line, previous_end = previous_end + 1, reader.line_num
                    yield line, row
            else:
                for line, text in enumerate(f, start=1):
                    if not text.strip():
                        continue
                    try:
                        row = json.loads(text)
                    except json.JSONDecodeError as e:
                        raise ReviewFileError(f"{path}:{line}: not valid JSON ({e.msg})") from None
                    if not isinstance(row, dict):
                        raise ReviewFileError(f"{path}:{line}: each line must be a JSON object")
                    yield line, row
    except UnicodeDecodeError as e:
        raise ReviewFileError(f"{path}: not UTF-8 text ({e.reason})") from None
    except csv.Error as e:
        raise ReviewFileError(f"{path}: not valid CSV ({e})") from None


def _parse_signals(raw: Any) -> tuple[list[str], str]:
    """``(signals, problem)`` from a JSON list, a list, or names separated by ``;``/``,``/``|``."""
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            try:
                raw = json.loads(text)
            except json.JSONDecodeError:
                return [], f"{raw!r} is not a JSON list"
        else:
            raw = [s.strip() for s in text.replace("|", ";").replace(",", ";").split(";") if s.strip()]
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        return [], f"must be a list of signal names, got {raw!r}"
    unknown = [s for s in raw if s not in SIGNAL_NAMES]
    if unknown:
        return [], f"has unknown signal {unknown[0]!r} (known: {', '.join(SIGNAL_NAMES)})"
    return [s for s in SIGNAL_NAMES if s in raw], ""
