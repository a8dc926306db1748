"""The QA report: ``metrics.json`` plus a self-contained ``report.html`` rendered with Jinja2.

The HTML has no external resource at all (figures are embedded PNG data URIs, CSS and the small
table-filter script are inline), so it opens from an e-mail attachment or a shared drive with no
network. Every value from data or models reaches the page through Jinja2 autoescaping; evidence
highlighting is built as a list of text parts the template wraps in ``<mark>``, never as HTML strings.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.labels import CLASS_NAMES, INTENT_CLASSES, SIGNALS

if TYPE_CHECKING:
    from evaluation.compare import Comparison
    from evaluation.config import GatePolicy
    from evaluation.evaluate import ModelEvaluation
    from evaluation.gate import GateResult
    from evaluation.plots import Figure
    from evaluation.robustness import RobustnessResult
    from evaluation.timecuts import TimecutResult
    from models.scores import IntentScores

logger = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE = "report.html.j2"
REPORT_FILE = "report.html"
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class TextPart:
    """A piece of a transcript; highlighted in the report when ``signals`` is not empty.

    Attributes:
        text: The characters.
        signals: Signals whose evidence covers them.
    """

    text: str
    signals: tuple[str, ...] = ()


@dataclass(frozen=True)
class ErrorRow:
    """A misclassified call as the report's table shows it.

    Attributes:
        call_id: The call.
        parts: Transcript with evidence spans marked.
        label: Labeled class.
        predicted: Predicted class.
        confidence: Probability of the predicted class.
        probabilities: ``(class, probability)`` in schema order.
        true_signals: Labeled signals (None: not labeled).
        predicted_signals: ``(signal, probability)`` of the signals the model reported.
        context: ``source / campaign / industry`` for people.
    """

    call_id: str
    parts: tuple[TextPart, ...]
    label: str
    predicted: str
    confidence: float
    probabilities: tuple[tuple[str, float], ...]
    true_signals: tuple[str, ...] | None
    predicted_signals: tuple[tuple[str, float], ...]
    context: str


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote.

    Attributes:
        directory: The output folder.
        html: ``report.html``.
        metrics: ``metrics.json``.
    """

    directory: Path
    html: Path
    metrics: Path


def highlight(text: str, scores: IntentScores) -> tuple[TextPart, ...]:
    """Split ``text`` into parts, marking the evidence spans of the signals the model reported.

    Overlapping spans of different signals are merged; each part lists the signals covering it.

    Args:
        text: The scored transcript.
        scores: The model's result for it (evidence offsets index into ``text``).

    Returns:
        Parts whose texts concatenate to ``text``.
    """
    cover: list[set[str]] = [set() for _ in text]
    for signal in scores.present_signals:
        for span in signal.evidence:
            for k in range(max(span.start, 0), min(span.end, len(text))):
                cover[k].add(signal.name)
    parts: list[TextPart] = []
    start = 0
    for k in range(1, len(text) + 1):
        if k == len(text) or cover[k] != cover[start]:
            parts.append(TextPart(text[start:k], tuple(sorted(cover[start]))))
            start = k
    return tuple(parts)


def error_table(evaluation: ModelEvaluation, limit: int | None = None) -> tuple[ErrorRow, ...]:
    """The misclassified calls, most confident mistakes first (at most ``limit``)."""
    rows = []
    data, scored = evaluation.data, evaluation.scored
    for i in evaluation.error_indices[:limit]:
        s = scored.scores[i]
        context = " / ".join(v for v in (data.source[i], data.campaign[i], data.industry[i]) if v)
        rows.append(ErrorRow(
            call_id=data.call_ids[i], parts=highlight(data.transcripts[i], s), label=data.labels[i],
            predicted=s.label, confidence=s.probabilities[s.label],
            probabilities=tuple((c, s.probabilities[c]) for c in CLASS_NAMES),
            true_signals=data.signals[i] if data.signals_labeled[i] else None,
            predicted_signals=tuple((sig.name, sig.probability) for sig in s.present_signals),
            context=context,
        ))
    return tuple(rows)


def metrics_document(
    evaluation: ModelEvaluation,
    *,
    comparison: Comparison | None = None,
    gate: GateResult | None = None,
    robustness: RobustnessResult | None = None,
    timecuts: TimecutResult | None = None,
) -> dict[str, Any]:
    """The ``metrics.json`` content: the evaluation plus comparison, gate, robustness and time cut-offs when present."""
    document = evaluation.to_json()
    if comparison is not None:
        document["comparison"] = comparison.to_json()
        document["baseline"] = comparison.baseline.to_json()
    if gate is not None:
        document["gate"] = gate.to_json()
    if robustness is not None:
        document["robustness"] = robustness.to_json()
    if timecuts is not None:
        document["timecuts"] = timecuts.to_json()
    return document


def figures(evaluation: ModelEvaluation, comparison: Comparison | None = None,
            robustness: RobustnessResult | None = None, timecuts: TimecutResult | None = None) -> tuple[Figure, ...]:
    """Every chart of the report, in page order."""
    from evaluation import plots

    evaluations = [comparison.baseline, evaluation] if comparison is not None else [evaluation]
    names = [_series_name(e, comparison) for e in evaluations]
    out = [plots.class_f1_figure([(n, e.classes) for n, e in zip(names, evaluations)])]
    out += [plots.confusion_figure(e.classes, n) for n, e in zip(names, evaluations)]
    out.append(plots.pr_figure([(n, e.pr_curve) for n, e in zip(names, evaluations)]))
    out.append(plots.reliability_figure([(n, e.calibration) for n, e in zip(names, evaluations)]))
    out.append(plots.risk_coverage_figure([(n, e.risk_coverage) for n, e in zip(names, evaluations)]))
    if evaluation.signals.rows:
        out.append(plots.signal_f1_figure([(n, e.signals) for n, e in zip(names, evaluations)]))
    if robustness is not None:
        out.append(plots.robustness_figure(robustness.rows, robustness.model_id))
    if timecuts is not None:
        out.append(plots.timecut_figure(timecuts.curve, timecuts.model_id, timecuts.config.cutoffs))
        out.append(plots.decision_time_figure(timecuts.decisions, timecuts.config.window_seconds))
    return tuple(out)


def render_report(
    evaluation: ModelEvaluation,
    *,
    comparison: Comparison | None = None,
    gate: GateResult | None = None,
    gate_policy: GatePolicy | None = None,
    robustness: RobustnessResult | None = None,
    timecuts: TimecutResult | None = None,
    gate_source: str = "",
    generated_at: str | None = None,
) -> str:
    """The report as one HTML string.

    Args:
        evaluation: The model being reported (the candidate in comparison mode).
        comparison: Candidate vs baseline, for the side-by-side sections.
        gate: The promotion gate verdict.
        gate_policy: The policy behind ``gate`` (shown).
        robustness: Clean-text vs telephone-ASR results.
        timecuts: Accuracy over time and the decision replay.
        gate_source: The policy file the gate came from (shown; default ``evaluation/configs/gate.yaml``).
        generated_at: Time stamp shown (default: now, UTC).

    Returns:
        Self-contained HTML.
    """
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=True,  # every value is escaped; the template never marks data as safe
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=_num, pct=_pct, ci=_ci, signed=_signed, ms=_ms)
    figs = figures(evaluation, comparison, robustness, timecuts)
    context = {
        "title": f"Call intent report — {evaluation.model.model_id}",
        "generated_at": generated_at or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "ev": evaluation,
        "model": evaluation.model,
        "data": evaluation.data,
        "buying": evaluation.classes.of("buying"),
        "comparison": comparison,
        "baseline_name": _series_name(comparison.baseline, comparison) if comparison else "",
        "candidate_name": _series_name(evaluation, comparison) if comparison else "",
        "gate": gate,
        "gate_policy": gate_policy,
        "gate_source": gate_source or "evaluation/configs/gate.yaml",
        "robustness": robustness,
        "timecuts": timecuts,
        "figures": {f.key: f for f in figs},
        "figure_list": figs,
        "errors": error_table(evaluation, evaluation.config.max_errors_shown),
        "error_count": len(evaluation.error_indices),
        "class_definitions": INTENT_CLASSES,
        "signal_definitions": SIGNALS,
        "small_slices": sum(1 for s in evaluation.slices if s.small),
    }
    return env.get_template(TEMPLATE).render(**context)


def write_report(
    out_dir: str | Path,
    evaluation: ModelEvaluation,
    *,
    comparison: Comparison | None = None,
    gate: GateResult | None = None,
    gate_policy: GatePolicy | None = None,
    robustness: RobustnessResult | None = None,
    timecuts: TimecutResult | None = None,
    gate_source: str = "",
) -> ReportFiles:
    """Write ``metrics.json`` and ``report.html`` into ``out_dir`` (created).

    Args:
        out_dir: Output folder.
        evaluation, comparison, gate, gate_policy, robustness, timecuts, gate_source: As for :func:`render_report`.

    Returns:
        The written paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = metrics_document(evaluation, comparison=comparison, gate=gate, robustness=robustness, timecuts=timecuts)
    metrics_path = out / METRICS_FILE
    metrics_path.write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    html = render_report(evaluation, comparison=comparison, gate=gate, gate_policy=gate_policy,
                         robustness=robustness, timecuts=timecuts, gate_source=gate_source)
    html_path = out / REPORT_FILE
    html_path.write_text(html, encoding="utf-8")
    logger.info("wrote %s and %s", html_path, metrics_path)
    return ReportFiles(directory=out, html=html_path, metrics=metrics_path)


def _series_name(evaluation: ModelEvaluation, comparison: Comparison | None) -> str:
    if comparison is None:
        return evaluation.model.model_id
    role = "baseline" if evaluation is comparison.baseline else "candidate"
    if comparison.baseline.model.model_id == comparison.candidate.model.model_id:
        return f"{role} ({evaluation.model.ref})"
    return f"{role} {evaluation.model.model_id}"


# ---------------------------------------------------------------------------------------- filters


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100.0 * value:.{digits}f} %"


def _ci(interval: Any, digits: int = 3) -> str:
    return "" if interval is None else f"{interval.low:.{digits}f} – {interval.high:.{digits}f}"


def _signed(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:+.{digits}f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"
