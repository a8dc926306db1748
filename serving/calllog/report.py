"""What the decision log measures: are the buying calls being converted, per source or campaign?

:func:`summarize` turns logged calls (with their outcomes) and orphan outcomes into a
:class:`CallsReport` — plain numbers in typed dataclasses, shared by the terminal table
(:func:`format_table`) and the HTML page (``evaluation/calls_report.py``). Definitions, per group:

* **calls** — logged calls with ``since <= logged_at < until``; **buying share** = calls the model
  labeled ``buying`` / calls.
* **conversion** of buying calls (and of the other calls) = converted / those *with an outcome*;
  calls no outcome was reported for are not counted as lost, they are shown as **no outcome**.
* **handoff gap** — buying calls whose outcome says *not converted*: the high-intent calls the
  business paid for and lost after the hand-off.
* **time to decision** — call audio heard when the decision was made (live and audio calls; text
  scoring has none), p50 and p90 with linear interpolation (``numpy.percentile``).
* **orphan outcomes** — outcomes (``since <= occurred_at < until``) for call ids the log never saw;
  they cannot be attributed to a source, so they are one row of their own, and in the total.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from models.labels import BUYING
from serving.calllog.records import LoggedCall, Outcome

GROUPINGS = ("source", "campaign")
#: Group of calls without the metadata key; and the row of orphan outcomes.
NO_VALUE = "(none)"
ORPHAN_ROW = "(no call logged)"


@dataclass(frozen=True)
class Rate:
    """``part`` of ``whole``; ``value`` is None when ``whole`` is 0."""

    part: int
    whole: int

    @property
    def value(self) -> float | None:
        return self.part / self.whole if self.whole else None


@dataclass(frozen=True)
class Distribution:
    """Time to decision over some calls. Attributes: count, p50, p90 (None when count is 0), values."""

    count: int
    p50: float | None
    p90: float | None
    values: tuple[float, ...]


@dataclass(frozen=True)
class GroupReport:
    """One row of the report.

    Attributes:
        key: The source or campaign (:data:`NO_VALUE` when calls carried none; :data:`ORPHAN_ROW`).
        calls: Logged calls.
        buying_share: Buying calls / calls.
        buying_conversion: Converted / buying calls with an outcome.
        other_conversion: Converted / non-buying calls with an outcome.
        handoff_gap: Buying calls reported as not converted.
        buying_no_outcome: Buying calls with no outcome reported (yet).
        revenue: Sum of reported revenue of converted calls.
        decision: Time to decision (seconds of call audio).
        orphans: Outcomes for calls the log never saw.
    """

    key: str
    calls: int
    buying_share: Rate
    buying_conversion: Rate
    other_conversion: Rate
    handoff_gap: int
    buying_no_outcome: int
    revenue: float
    decision: Distribution
    orphans: int = 0


@dataclass(frozen=True)
class CallsReport:
    """The whole report.

    Attributes:
        by: ``source`` or ``campaign``.
        since: Start of the window (naive UTC, inclusive).
        until: End of the window (exclusive; None = open).
        groups: One row per source/campaign, most calls first, then the orphan row if any.
        total: All calls and orphans.
        database: The log it was computed from (password masked).
    """

    by: str
    since: dt.datetime | None
    until: dt.datetime | None
    groups: tuple[GroupReport, ...]
    total: GroupReport
    database: str = ""

    def group(self, key: str) -> GroupReport:
        """The row of ``key`` (KeyError when absent)."""
        for group in self.groups:
            if group.key == key:
                return group
        raise KeyError(key)


def distribution(values: Sequence[float]) -> Distribution:
    """p50/p90 of ``values`` (linear interpolation between order statistics)."""
    import numpy as np

    if not values:
        return Distribution(0, None, None, ())
    p50, p90 = np.percentile(np.asarray(values, dtype=np.float64), [50, 90])
    return Distribution(len(values), float(p50), float(p90), tuple(float(v) for v in values))


def summarize(calls: Iterable[LoggedCall], orphans: Sequence[Outcome] = (), *, by: str = "source",
              since: dt.datetime | None = None, until: dt.datetime | None = None,
              database: str = "") -> CallsReport:
    """Aggregate logged calls per ``by`` (see the module docstring for every definition).

    Args:
        calls: Logged calls with their outcomes (already restricted to the window).
        orphans: Outcomes without a logged call (same window, by ``occurred_at``).
        by: ``source`` or ``campaign``.
        since, until, database: Shown in the report.

    Returns:
        The report.
    """
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {GROUPINGS}, got {by!r}")
    grouped: dict[str, list[LoggedCall]] = {}
    everything: list[LoggedCall] = []
    for logged in calls:
        assert logged.call is not None, "summarize takes logged calls; orphans go in `orphans`"
        key = getattr(logged.call, by) or NO_VALUE
        grouped.setdefault(key, []).append(logged)
        everything.append(logged)
    rows = [_group(key, members) for key, members in sorted(grouped.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    if orphans:
        rows.append(_group(ORPHAN_ROW, [], orphans=len(orphans)))
    total = _group("all", everything, orphans=len(orphans))
    return CallsReport(by=by, since=since, until=until, groups=tuple(rows), total=total, database=database)


def build_report(store: object, *, by: str = "source", since: dt.datetime | None = None,
                 until: dt.datetime | None = None) -> CallsReport:
    """:func:`summarize` over a :class:`~serving.calllog.store.CallLogStore`'s window."""
    from serving.calllog.store import display_url

    return summarize(store.iter_calls(since, until), store.orphan_outcomes(since, until),  # type: ignore[attr-defined]
                     by=by, since=since, until=until, database=display_url(store.url))  # type: ignore[attr-defined]


def _group(key: str, members: Sequence[LoggedCall], *, orphans: int = 0) -> GroupReport:
    buying = [m for m in members if m.call is not None and m.call.label == BUYING]
    other = [m for m in members if m.call is not None and m.call.label != BUYING]

    def conversion(subset: Sequence[LoggedCall]) -> Rate:
        reported = [m for m in subset if m.outcome is not None]
        return Rate(sum(1 for m in reported if m.outcome and m.outcome.converted), len(reported))

    seconds = [m.call.decision_seconds for m in members if m.call is not None and m.call.decision_seconds is not None]
    return GroupReport(
        key=key, calls=len(members), buying_share=Rate(len(buying), len(members)),
        buying_conversion=conversion(buying), other_conversion=conversion(other),
        handoff_gap=sum(1 for m in buying if m.outcome is not None and not m.outcome.converted),
        buying_no_outcome=sum(1 for m in buying if m.outcome is None),
        revenue=sum(m.outcome.revenue or 0.0 for m in members if m.outcome is not None and m.outcome.converted),
        decision=distribution(seconds), orphans=orphans,
    )


# ------------------------------------------------------------------------------------- terminal


def format_rate(rate: Rate) -> str:
    """``"3/4 75.0%"``, or ``"0/0 -"``."""
    value = rate.value
    return f"{rate.part}/{rate.whole} {'-' if value is None else f'{100.0 * value:.1f}%'}"


def format_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_table(report: CallsReport) -> str:
    """The report as an aligned plain-text table (what ``callintent report calls`` prints)."""
    header = (report.by, "calls", "buying share", "buying conv.", "other conv.", "handoff gap", "no outcome",
              "decision p50 s", "p90 s", "orphans")
    rows = [header]
    for group in (*report.groups, report.total):
        rows.append((group.key, str(group.calls), format_rate(group.buying_share), format_rate(group.buying_conversion),
                     format_rate(group.other_conversion), str(group.handoff_gap), str(group.buying_no_outcome),
                     format_seconds(group.decision.p50), format_seconds(group.decision.p90), str(group.orphans)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))

    window = f"{_when(report.since) or 'the start'} to {_when(report.until) or 'now'}"
    out = [f"Calls by {report.by}, {window} (UTC){' — ' + report.database if report.database else ''}",
           line(rows[0]), line(["-" * w for w in widths])]
    out += [line(row) for row in rows[1:-1]]
    out += [line(["-" * w for w in widths]), line(rows[-1])]
    out.append("conversion = converted / calls with a reported outcome; handoff gap = buying calls reported "
               "not converted; no outcome = buying calls nobody reported on yet")
    out.append("missed calls are not counted here: callintent report callbacks --since 30d (callbacks, SLA breaches, "
               "revenue at risk)")
    return "\n".join(out)


def _when(value: dt.datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M")
