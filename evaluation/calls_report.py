"""The call-outcomes page: the call log's :class:`~serving.calllog.report.CallsReport` as one self-contained HTML file.

For the marketing lead and the contact-center lead together: which sources bring buying calls,
whether those calls convert once handed to an agent, and how fast the decision came. Same look as
the QA report (``templates/_style.html.j2``), figures as embedded PNGs with a plain-English line
under each, every value escaped by Jinja2.

This is the one place ``evaluation`` reads from ``serving`` (the report dataclasses of
``serving.calllog.report``): the serving install has no matplotlib, so the page is drawn here.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from evaluation.plots import COLORS, Figure, _pyplot, _render
from evaluation.report import TEMPLATE_DIR

if TYPE_CHECKING:
    from serving.calllog.report import CallsReport, Rate

logger = logging.getLogger(__name__)

TEMPLATE = "calls_report.html.j2"


def decision_time_figure(report: CallsReport) -> Figure:
    """Histogram of seconds of call audio heard before the decision, with p50 and p90 marked."""
    plt = _pyplot()
    values = report.total.decision.values
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    if values:
        top = max(30.0, max(values))
        ax.hist(values, bins=[i * 2.5 for i in range(int(top // 2.5) + 2)], color=COLORS[0], edgecolor="white")
        for q, value, style in (("p50", report.total.decision.p50, "--"), ("p90", report.total.decision.p90, ":")):
            if value is not None:
                ax.axvline(value, color=COLORS[1], linestyle=style, linewidth=2, label=f"{q} {value:.1f} s")
        ax.legend(loc="upper right")
    else:
        ax.text(0.5, 0.5, "no live or audio calls in this window", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("seconds of the call heard when the decision was made")
    ax.set_ylabel("calls")
    n = len(values)
    return Figure(
        key="decision-time", title="Time to decision",
        explanation=(f"How far into each of the {n} live or recorded calls the routing decision came; bars to the "
                     "left mean the agent knew sooner that the caller wanted to buy. Typed-in transcripts have no "
                     "call time and are not counted here."),
        data_uri=_render(fig), alt="histogram of time to decision in seconds")


def conversion_figure(report: CallsReport) -> Figure:
    """Conversion of buying calls vs the other calls, per group."""
    import numpy as np

    plt = _pyplot()
    groups = [g for g in report.groups if g.calls]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(groups) + 2.5), 3.6))
    x = np.arange(len(groups))
    for k, (name, rates) in enumerate((("buying calls", [g.buying_conversion for g in groups]),
                                       ("other calls", [g.other_conversion for g in groups]))):
        values = [_value(r) for r in rates]
        bars = ax.bar(x + (k - 0.5) * 0.38, values, 0.38, label=name, color=COLORS[k])
        for bar, rate in zip(bars, rates):
            ax.annotate(f"{rate.part}/{rate.whole}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [g.key for g in groups], rotation=20 if len(groups) > 4 else 0)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("converted / calls with an outcome")
    ax.legend(loc="upper right")
    return Figure(
        key="conversion", title=f"Conversion by {report.by}",
        explanation=("For each " + report.by + ", the share of calls with a reported outcome that converted: "
                     "buying calls (blue) should convert far more often than the rest; a low blue bar is where "
                     "high-intent callers are being lost after the hand-off."),
        data_uri=_render(fig), alt=f"bar chart of conversion rates by {report.by}")


def render_calls_report(report: CallsReport, *, generated_at: str | None = None,
                        callbacks_href: str = "callbacks.html") -> str:
    """The page as one HTML string (``callbacks_href``: where the missed-calls-and-callbacks page is linked)."""
    import jinja2

    from serving.calllog.report import format_rate, format_seconds

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(rate=format_rate, seconds=format_seconds, pct=_pct)
    figures = (conversion_figure(report), decision_time_figure(report))
    window = f"{_when(report.since) or 'the first logged call'} to {_when(report.until) or 'now'} (UTC)"
    return env.get_template(TEMPLATE).render(
        title=f"Call outcomes by {report.by}", report=report, total=report.total, window=window,
        figures=figures, callbacks_href=callbacks_href, generated_at=generated_at or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def write_calls_report(report: CallsReport, out: str | Path) -> Path:
    """Write the page to ``out`` (folders created); returns the path."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_calls_report(report), encoding="utf-8")
    logger.info("wrote %s", path)
    return path


def _value(rate: Rate) -> float:
    return rate.value or 0.0


def _pct(rate: Rate) -> str:
    return "n/a" if rate.value is None else f"{100.0 * rate.value:.1f} %"


def _when(value: dt.datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M")
