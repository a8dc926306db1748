"""The report's figures: matplotlib charts rendered to embedded PNG data URIs (no files, no network).

Each function returns a :class:`Figure` carrying its title and a one-line plain-English
explanation, so a chart never reaches the report without the sentence that says how to read it.
Several models (``series``) are drawn on one chart in comparison mode.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.labels import CLASS_NAMES, SIGNAL_NAMES

if TYPE_CHECKING:
    from evaluation.metrics import PrCurve, RiskCoverageCurve
    from models.metrics import ClassificationMetrics, Reliability, SignalSummary

#: Colours of the first, second… model on a chart (colour-blind-safe Okabe-Ito pair + extras).
COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7")


@dataclass(frozen=True)
class Figure:
    """One chart for the report.

    Attributes:
        key: Stable id (HTML anchor, tests).
        title: Heading.
        explanation: One sentence telling a non-specialist what the chart shows and how to read it.
        data_uri: ``data:image/png;base64,…``.
        alt: Text alternative for screen readers.
    """

    key: str
    title: str
    explanation: str
    data_uri: str
    alt: str


def confusion_figure(metrics: ClassificationMetrics, model: str) -> Figure:
    """Heatmap of labeled class (rows) vs predicted class (columns), counts in the cells."""
    import numpy as np

    plt = _pyplot()
    matrix = np.asarray(metrics.confusion, dtype=float)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1.0)
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center",
                    color="white" if share[i, j] > 0.6 else "black", fontsize=11)
    ax.set_xticks(range(len(metrics.classes)), metrics.classes, rotation=20)
    ax.set_yticks(range(len(metrics.classes)), metrics.classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("labeled class (truth)")
    ax.set_title(model, fontsize=10)
    return Figure(
        key=f"confusion-{_slug(model)}", title=f"Confusion matrix — {model}",
        explanation="Each row is what the call really was and each column what the model said; "
                    "the diagonal holds the correct calls, everything else is a mix-up.",
        data_uri=_render(fig), alt=f"confusion matrix of {model}",
    )


def class_f1_figure(series: Sequence[tuple[str, ClassificationMetrics]]) -> Figure:
    """Per-class F1 bars with bootstrap confidence intervals, one bar group per class."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    x = np.arange(len(CLASS_NAMES))
    width = 0.8 / max(len(series), 1)
    for k, (name, metrics) in enumerate(series):
        values = [c.f1 if c.f1 is not None else 0.0 for c in metrics.per_class]
        low = [v - c.f1_ci.low if c.f1_ci else 0.0 for v, c in zip(values, metrics.per_class)]
        high = [c.f1_ci.high - v if c.f1_ci else 0.0 for v, c in zip(values, metrics.per_class)]
        ax.bar(x + (k - (len(series) - 1) / 2) * width, values, width, yerr=[low, high], capsize=3,
               color=COLORS[k % len(COLORS)], label=name)
    ax.set_xticks(x, CLASS_NAMES)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1 (0 to 1)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return Figure(
        key="class-f1", title="F1 per intent class",
        explanation="Taller is better: F1 combines how many calls of a class were found and how many "
                    "of the model's verdicts were right; the whiskers show the likely range (95 % interval).",
        data_uri=_render(fig), alt="bar chart of F1 per class",
    )


def pr_figure(series: Sequence[tuple[str, PrCurve]]) -> Figure:
    """Buying-intent precision-recall curves with each model's operating point marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    drawn = False
    for k, (name, curve) in enumerate(series):
        if not curve.positives:
            continue
        color = COLORS[k % len(COLORS)]
        ap = f" (AP {curve.average_precision:.3f})" if curve.average_precision is not None else ""
        ax.step(curve.recall, curve.precision, where="post", color=color, label=f"{name}{ap}")
        if curve.operating_recall is not None and curve.operating_precision is not None:
            ax.plot([curve.operating_recall], [curve.operating_precision], "o", color=color, markersize=9,
                    markeredgecolor="black", label=f"{name} operating point (threshold {curve.threshold:.2f})")
        drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no buying calls in this data", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall: share of buying calls found")
    ax.set_ylabel("precision: share of flagged calls that are buying")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(loc="lower left", fontsize=8)
    return Figure(
        key="buying-pr", title="Buying intent: precision vs recall",
        explanation="Moving along the curve trades catching more buying calls (right) against flagging "
                    "fewer non-buyers (up); the dot is the threshold the model ships with.",
        data_uri=_render(fig), alt="buying-intent precision-recall curve",
    )


def reliability_figure(series: Sequence[tuple[str, Reliability]]) -> Figure:
    """Reliability diagram: observed accuracy vs stated confidence per bin."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    for k, (name, cal) in enumerate(series):
        points = [(b.confidence, b.accuracy, b.count) for b in cal.bins if b.count]
        if not points:
            continue
        conf, acc, count = zip(*points)
        total = sum(count)
        ax.plot(conf, acc, "o-", color=COLORS[k % len(COLORS)], label=f"{name} (ECE {cal.ece:.3f})")
        for x, y, c in zip(conf, acc, count):
            ax.scatter([x], [y], s=20 + 300 * c / total, color=COLORS[k % len(COLORS)], alpha=0.3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("model's confidence in its verdict")
    ax.set_ylabel("share of those verdicts that were right")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return Figure(
        key="reliability", title="Calibration: can the confidence be trusted?",
        explanation="When the model says 80 % sure it should be right about 80 % of the time: points on the "
                    "dashed line mean trustworthy confidence, bigger dots hold more calls.",
        data_uri=_render(fig), alt="reliability diagram",
    )


def risk_coverage_figure(series: Sequence[tuple[str, RiskCoverageCurve]]) -> Figure:
    """Accuracy of the decided calls against the share decided, with each artifact's abstention point."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    low = 1.0
    for k, (name, curve) in enumerate(series):
        color = COLORS[k % len(COLORS)]
        # Start the line at coverage 0 with the most confident calls' accuracy, so the step reads left to right.
        ax.step((0.0, *curve.coverage), (curve.accuracy[0], *curve.accuracy), where="pre", color=color,
                label=f"{name} (all calls: {curve.accuracy[-1]:.3f})")
        low = min(low, *curve.accuracy)
        if curve.threshold is not None and curve.operating_accuracy is not None:
            ax.plot([curve.operating_coverage], [curve.operating_accuracy], "o", color=color, markersize=9,
                    markeredgecolor="black",
                    label=f"{name} abstention margin {curve.threshold:.2f}: decides {curve.operating_coverage:.0%}")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(max(0.0, low - 0.05), 1.01)
    ax.set_xlabel("share of calls decided (the least sure are left to a person)")
    ax.set_ylabel("accuracy of the decided calls")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return Figure(
        key="risk-coverage", title="Abstaining: accuracy against the share of calls decided",
        explanation="Calls are decided most sure first (by how far the top class leads the runner-up); moving "
                    "left leaves more of the unsure calls undetermined and makes the decided ones more accurate. "
                    "The dot is where the model's abstention margin sits.",
        data_uri=_render(fig), alt="risk-coverage curve",
    )


def signal_f1_figure(series: Sequence[tuple[str, SignalSummary]]) -> Figure:
    """Per-signal F1 as horizontal bars."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    y = np.arange(len(SIGNAL_NAMES))
    height = 0.8 / max(len(series), 1)
    for k, (name, summary) in enumerate(series):
        values = [s.f1 if s.f1 is not None else 0.0 for s in summary.per_signal]
        ax.barh(y + (k - (len(series) - 1) / 2) * height, values, height, color=COLORS[k % len(COLORS)],
                label=f"{name} ({summary.rows} labeled calls)")
    ax.set_yticks(y, SIGNAL_NAMES)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("F1 (0 to 1)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return Figure(
        key="signal-f1", title="F1 per buying signal",
        explanation="How reliably each reason-for-interest (an ad mention, a price question…) is spotted; "
                    "longer bars are better, counted only on calls whose signals were labeled.",
        data_uri=_render(fig), alt="bar chart of F1 per signal",
    )


def robustness_figure(rows: Sequence[Any], model: str) -> Figure:
    """Per-class F1 on clean text, one-shot ASR and the live stream (rows: ``RobustnessClassRow``)."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    x = np.arange(len(rows))
    series = (("f1_clean", "clean text"), ("f1_oneshot", "phone audio → one-shot ASR"),
              ("f1_streamed", "phone audio → live stream"))
    width = 0.27
    for k, (attr, label) in enumerate(series):
        values = [getattr(r, attr) if getattr(r, attr) is not None else 0.0 for r in rows]
        ax.bar(x + (k - 1) * width, values, width, color=COLORS[k], label=label)
    ax.set_xticks(x, [r.name for r in rows])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1 (0 to 1)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(model, fontsize=10)
    return Figure(
        key="robustness", title="Clean text vs phone-line speech recognition, once and live",
        explanation="The same calls scored from their written text, from one transcription of their phone "
                    "audio, and from what the live stream heard; the gap between the bars is what audio and "
                    "recognition errors cost.",
        data_uri=_render(fig), alt="bar chart of F1 per class on clean text, one-shot ASR text and live-streamed text",
    )


def timecut_figure(curve: Sequence[Any], model: str, cutoffs: Sequence[float] = ()) -> Figure:
    """Macro-F1, buying recall/precision and ECE against seconds into the call (curve: ``CutoffMetrics``)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    seconds = [c.seconds for c in curve]
    lines = (("macro-F1", [c.macro_f1 for c in curve], COLORS[0], "-"),
             ("buying recall", [c.buying_recall for c in curve], COLORS[1], "-"),
             ("buying precision", [c.buying_precision for c in curve], COLORS[2], "--"),
             ("ECE (lower is better)", [c.ece for c in curve], COLORS[3], ":"))
    for name, values, color, style in lines:
        ax.plot(seconds, [float("nan") if v is None else v for v in values], style, color=color, label=name,
                linewidth=2)
    for c in cutoffs:
        ax.axvline(c, color="grey", alpha=0.25, linewidth=1)
    ax.set_xlim(0, max(seconds) if seconds else 30)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("seconds into the call")
    ax.set_ylabel("score (0 to 1)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(model, fontsize=10)
    return Figure(
        key="timecuts", title="How right the model is as the call goes on",
        explanation="Each point scores every call on only the words heard by that second; the lines rise as "
                    "callers say what they want, and where they flatten, waiting longer buys little.",
        data_uri=_render(fig), alt="line chart of macro-F1, buying recall, buying precision and ECE over seconds",
    )


def decision_time_figure(decisions: Sequence[Any], window_seconds: float) -> Figure:
    """When the replayed policy decided on each buying call, stacked by outcome (decisions: ``CallDecision``)."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    buying = [d for d in decisions if d.label == "buying"]
    edges = np.arange(0.0, float(np.ceil(window_seconds)) + 1.0, 1.0)
    groups = (("decided buying (right)", [d.seconds for d in buying if d.correct], COLORS[2]),
              ("wrong class", [d.seconds for d in buying if d.correct is False], "#D55E00"),
              ("undetermined (abstained)", [d.seconds for d in buying if d.abstained], "#999999"))
    bottom = np.zeros(len(edges) - 1)
    for name, values, color in groups:
        counts, _ = np.histogram(values, bins=edges)
        ax.bar(edges[:-1], counts, width=1.0, align="edge", bottom=bottom, color=color, edgecolor="white",
               label=f"{name} ({len(values)})")
        bottom += counts
    if buying:
        median = float(np.median([d.seconds for d in buying]))
        ax.axvline(median, color="black", linestyle="--", linewidth=1, label=f"median {median:.0f} s")
    else:
        ax.text(0.5, 0.5, "no buying calls in this data", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(0, edges[-1])
    ax.set_xlabel("seconds into the call when the routing decision was made")
    ax.set_ylabel("buying calls")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return Figure(
        key="decision-time", title="When buying calls get their routing decision",
        explanation="Bars left of the end are early decisions made as soon as the model was confident enough; "
                    "the bar at the end holds calls that needed the whole opening, including those it would not call.",
        data_uri=_render(fig), alt="histogram of time-to-decision of buying calls",
    )


def _pyplot() -> Any:
    import matplotlib

    # A non-interactive backend: reports are rendered on servers and in CI with no display.
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _render(fig: Any) -> str:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=96)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")
