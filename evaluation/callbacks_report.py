"""Callbacks measured: did the missed calls get called back, how fast, and what did the delay cost?

:func:`summarize_callbacks` turns the call log's missed calls (with their callback attempts and
outcomes, :class:`serving.calllog.callbacks.MissedCallEntry`) into a :class:`CallbacksReport`;
:func:`format_callbacks` prints it and :func:`write_callbacks_report` draws the HTML page (same
template machinery and look as ``evaluation/calls_report.py``). Definitions, per source or intent
segment (``--by``):

* **owed** — missed calls whose intent segment has an SLA (``callbacks.intents`` in the policy
  file: noise is owed none). Everything below is over owed calls.
* **attempted** / **completed** — owed calls with at least one callback attempt / at least one
  *connected* attempt. Completion rate = completed / owed. The two are never merged: a callback
  that rang out or reached the caller's voicemail is an attempt, not a recovery.
* **latency** — from the missed call to the first attempt, and to the first connected attempt;
  p50/p90/p95 by linear interpolation (``numpy.percentile``) over the calls that have one (calls
  with none are counted as not attempted / not completed, not as a latency). Split by whether the
  call was missed inside business hours (``callbacks.business_hours``).
* **SLA** — met when the first attempt came by the deadline (``due_at = missed_at + sla``);
  breached when it came later, or when none came and the report's end (``--until``, else now) is
  past the deadline; pending otherwise. Breaches are listed with owner and queue.
* **conversion after callback by delay bucket** — owed calls by the delay to their first
  *connected* callback (``callbacks.delay_buckets``; "not reached" without one): converted /
  calls with a reported outcome (``POST /calls/{id}/outcome``), as in ``callintent report calls``.
* **revenue at risk** — for high-intent (``buying``) misses that breached the SLA:
  ``R × Σ max(0, c_ref − c_bucket)`` where ``c_ref`` is the conversion of high-intent misses
  reached within the first delay bucket, ``c_bucket`` that of the breached call's own bucket, and
  ``R`` the revenue per converted call. The range is a percentile bootstrap: the high-intent misses
  with an outcome are resampled with replacement *within each bucket* (seeded), the breached calls
  stay fixed. Its assumptions are printed beside it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from callintent.errors import UserError
from serving.callbacks import CallbackPolicy
from serving.calllog.report import Rate, format_rate

if TYPE_CHECKING:
    from serving.calllog.callbacks import MissedCallEntry

logger = logging.getLogger(__name__)

GROUPINGS = ("source", "segment")
NO_VALUE = "(none)"
NOT_REACHED = "not reached"
HIGH_INTENT = "buying"
HOURS = ("all", "inside", "outside")
TEMPLATE = "callbacks_report.html.j2"


@dataclass(frozen=True)
class Latency:
    """Seconds from the missed call to a callback. Attributes: count, p50, p90, p95 (None when count is 0)."""

    count: int
    p50: float | None
    p90: float | None
    p95: float | None


@dataclass(frozen=True)
class LatencyRow:
    """Latencies of the calls missed ``hours`` (``all`` | ``inside`` | ``outside`` business hours).

    Attributes: hours, calls (owed), to_attempt, to_connect.
    """

    hours: str
    calls: int
    to_attempt: Latency
    to_connect: Latency


@dataclass(frozen=True)
class CallbackGroup:
    """One row of the report.

    Attributes:
        key: The source or intent segment (``all`` for the total).
        missed: Missed calls (voicemails included).
        voicemails: Of which left a voicemail.
        owed: Missed calls owed a callback (their segment has an SLA).
        attempted: Owed calls with at least one attempt / owed.
        completed: Owed calls with a connected attempt / owed (the completion rate).
        sla_met: Owed calls whose first attempt met the deadline / owed calls already decided (met or breached).
        breached: Owed calls that breached their SLA.
        pending: Owed calls not attempted yet whose deadline has not passed.
        latency: One row for all, inside and outside business hours.
    """

    key: str
    missed: int
    voicemails: int
    owed: int
    attempted: Rate
    completed: Rate
    sla_met: Rate
    breached: int
    pending: int
    latency: tuple[LatencyRow, ...]


@dataclass(frozen=True)
class Breach:
    """A missed call whose SLA was breached.

    Attributes: call_id, missed_at, intent, source, owner ("" = unassigned), queue, due_at,
    first_attempt_at (None: not attempted by the report's end), late_seconds (past the deadline:
    at the first attempt, or at the report's end when open).
    """

    call_id: str
    missed_at: dt.datetime
    intent: str
    source: str
    owner: str
    queue: str
    due_at: dt.datetime
    first_attempt_at: dt.datetime | None
    late_seconds: float


@dataclass(frozen=True)
class BucketRow:
    """Conversion of the calls whose first connected callback fell in one delay bucket.

    Attributes: bucket (label), calls, conversion (converted / with an outcome), no_outcome.
    """

    bucket: str
    calls: int
    conversion: Rate
    no_outcome: int


@dataclass(frozen=True)
class RevenueAtRisk:
    """Revenue at risk from high-intent misses that breached the SLA, as a range.

    Attributes:
        point: The estimate (None when it cannot be made: see ``reason``).
        low: Lower end of the bootstrap interval.
        high: Upper end.
        level: Interval level (0.95).
        resamples: Bootstrap resamples.
        seed: The resampling seed.
        revenue_per_conversion: ``R`` (None when unknown).
        revenue_source: Where ``R`` came from.
        breached: High-intent misses that breached the SLA.
        priced: Of which in a delay bucket with a measured conversion.
        reference: Label of the reference bucket.
        reference_conversion: Conversion of high-intent misses in it.
        lost_conversions: Expected conversions lost (``point / R``).
        assumptions: Printed beside the range.
        reason: Why there is no estimate ("" when there is one).
    """

    point: float | None
    low: float | None
    high: float | None
    level: float
    resamples: int
    seed: int
    revenue_per_conversion: float | None
    revenue_source: str
    breached: int
    priced: int
    reference: str
    reference_conversion: Rate
    lost_conversions: float | None
    assumptions: tuple[str, ...]
    reason: str = ""


@dataclass(frozen=True)
class CallbacksReport:
    """The whole report.

    Attributes:
        by: ``source`` or ``segment``.
        since: Start of the window (naive UTC, by ``missed_at``).
        until: End, exclusive (None = open).
        as_of: When deadlines are judged (``until``, else the time of the report).
        groups: One row per source/segment, most missed calls first.
        total: All missed calls.
        breaches: SLA breaches, most late first.
        conversion: Conversion after callback by delay bucket, all owed calls.
        conversion_high: The same for high-intent misses (what the revenue at risk uses).
        revenue_at_risk: The range and its assumptions.
        business_hours: The business hours, in words.
        terms: ``(segment, priority, sla, queue)`` of the policy.
        database: The log it was computed from (password masked).
    """

    by: str
    since: dt.datetime | None
    until: dt.datetime | None
    as_of: dt.datetime
    groups: tuple[CallbackGroup, ...]
    total: CallbackGroup
    breaches: tuple[Breach, ...]
    conversion: tuple[BucketRow, ...]
    conversion_high: tuple[BucketRow, ...]
    revenue_at_risk: RevenueAtRisk
    business_hours: str
    terms: tuple[tuple[str, int | None, str, str], ...]
    database: str = ""

    def group(self, key: str) -> CallbackGroup:
        """The row of ``key`` (KeyError when absent)."""
        for group in self.groups:
            if group.key == key:
                return group
        raise KeyError(key)


def latency(values: Sequence[float]) -> Latency:
    """p50/p90/p95 of ``values`` (linear interpolation between order statistics)."""
    import numpy as np

    if not values:
        return Latency(0, None, None, None)
    p50, p90, p95 = np.percentile(np.asarray(values, dtype=np.float64), [50, 90, 95])
    return Latency(len(values), float(p50), float(p90), float(p95))


def bucket_labels(policy: CallbackPolicy) -> tuple[str, ...]:
    """``("≤15m", "15m–1h", …, ">1d", "not reached")`` from ``delay_buckets``."""
    edges = policy.delay_buckets
    labels = [f"≤{edges[0]}"] + [f"{a}–{b}" for a, b in zip(edges, edges[1:])] + [f">{edges[-1]}"]
    return (*labels, NOT_REACHED)


def delay_bucket(entry: MissedCallEntry, policy: CallbackPolicy) -> str:
    """The bucket of the delay from the missed call to its first connected callback."""
    connect = entry.first_connect
    labels = bucket_labels(policy)
    if connect is None:
        return NOT_REACHED
    delay = (connect.attempted_at - entry.missed.missed_at).total_seconds()
    for label, edge in zip(labels, policy.bucket_edges):
        if delay <= edge:
            return label
    return labels[-2]


def sla_status(entry: MissedCallEntry, as_of: dt.datetime) -> str:
    """``none`` (no SLA) | ``met`` | ``breached`` | ``pending`` (see the module docstring)."""
    due = entry.missed.due_at
    if due is None:
        return "none"
    first = entry.first_attempt
    if first is not None:
        return "met" if first.attempted_at <= due else "breached"
    return "breached" if as_of > due else "pending"


def summarize_callbacks(entries: Iterable[MissedCallEntry], policy: CallbackPolicy, *, by: str = "source",
                        since: dt.datetime | None = None, until: dt.datetime | None = None,
                        as_of: dt.datetime | None = None, revenue_per_conversion: float | None = None,
                        resamples: int = 1000, seed: int = 0, level: float = 0.95,
                        database: str = "") -> CallbacksReport:
    """Measure callbacks of missed calls (every definition: the module docstring).

    Args:
        entries: Missed calls with attempts and outcomes (already restricted to the window).
        policy: The callback policy (business hours, delay buckets, ``revenue_per_conversion``).
        by: ``source`` or ``segment`` (intent segment).
        since, until: The window (shown).
        as_of: When deadlines are judged (default ``until``, else now).
        revenue_per_conversion: ``R`` (overrides the policy's; else the observed mean).
        resamples: Bootstrap resamples.
        seed: Bootstrap seed.
        level: Interval level.
        database: Shown.

    Returns:
        The report.
    """
    from serving.calllog.records import utc_now

    if by not in GROUPINGS:
        raise UserError(f"--by must be one of {', '.join(GROUPINGS)} for the callbacks report, got {by!r}")
    if resamples < 1 or not 0.0 < level < 1.0:
        raise UserError(f"--resamples must be >= 1 and the level in (0, 1), got {resamples} and {level}")
    as_of = as_of or until or utc_now()
    everything = list(entries)
    grouped: dict[str, list[MissedCallEntry]] = {}
    for entry in everything:
        key = (entry.missed.source if by == "source" else entry.missed.intent) or NO_VALUE
        grouped.setdefault(key, []).append(entry)
    rows = tuple(_group(key, members, policy, as_of)
                 for key, members in sorted(grouped.items(), key=lambda kv: (-len(kv[1]), kv[0])))
    owed = [e for e in everything if e.missed.due_at is not None]
    high = [e for e in owed if e.missed.intent == HIGH_INTENT]
    breaches = []
    for entry in owed:
        if sla_status(entry, as_of) != "breached":
            continue
        missed, first = entry.missed, entry.first_attempt
        assert missed.due_at is not None
        late = ((first.attempted_at if first else as_of) - missed.due_at).total_seconds()
        breaches.append(Breach(missed.call_id, missed.missed_at, missed.intent, missed.source, missed.owner,
                               missed.queue, missed.due_at, first.attempted_at if first else None, late))
    breaches.sort(key=lambda b: (-b.late_seconds, b.call_id))
    terms = tuple((name, t.priority, t.sla or "none", t.queue) for name, t in policy.intents.items())
    return CallbacksReport(
        by=by, since=since, until=until, as_of=as_of, groups=rows, total=_group("all", everything, policy, as_of),
        breaches=tuple(breaches), conversion=_conversion(owed, policy), conversion_high=_conversion(high, policy),
        revenue_at_risk=revenue_at_risk(high, policy, as_of=as_of, revenue_per_conversion=revenue_per_conversion,
                                        resamples=resamples, seed=seed, level=level),
        business_hours=policy.business_hours.describe(), terms=terms, database=database)


def _group(key: str, members: Sequence[MissedCallEntry], policy: CallbackPolicy, as_of: dt.datetime) -> CallbackGroup:
    owed = [e for e in members if e.missed.due_at is not None]
    statuses = [sla_status(e, as_of) for e in owed]
    met, breached = statuses.count("met"), statuses.count("breached")
    latency_rows = []
    for hours in HOURS:
        subset = [e for e in owed if hours == "all"
                  or (policy.business_hours.contains(e.missed.missed_at) == (hours == "inside"))]
        to_attempt = [(e.first_attempt.attempted_at - e.missed.missed_at).total_seconds()
                      for e in subset if e.first_attempt is not None]
        to_connect = [(e.first_connect.attempted_at - e.missed.missed_at).total_seconds()
                      for e in subset if e.first_connect is not None]
        latency_rows.append(LatencyRow(hours, len(subset), latency(to_attempt), latency(to_connect)))
    return CallbackGroup(
        key=key, missed=len(members), voicemails=sum(1 for e in members if e.missed.kind == "voicemail"),
        owed=len(owed), attempted=Rate(sum(1 for e in owed if e.attempts), len(owed)),
        completed=Rate(sum(1 for e in owed if e.first_connect is not None), len(owed)),
        sla_met=Rate(met, met + breached), breached=breached, pending=statuses.count("pending"),
        latency=tuple(latency_rows))


def _conversion(entries: Sequence[MissedCallEntry], policy: CallbackPolicy) -> tuple[BucketRow, ...]:
    rows = []
    for label in bucket_labels(policy):
        members = [e for e in entries if delay_bucket(e, policy) == label]
        reported = [e for e in members if e.outcome is not None]
        rows.append(BucketRow(label, len(members), Rate(sum(1 for e in reported if e.outcome and e.outcome.converted),
                                                        len(reported)), len(members) - len(reported)))
    return tuple(rows)


def revenue_at_risk(high: Sequence[MissedCallEntry], policy: CallbackPolicy, *, as_of: dt.datetime,
                    revenue_per_conversion: float | None = None, resamples: int = 1000, seed: int = 0,
                    level: float = 0.95) -> RevenueAtRisk:
    """The revenue-at-risk range of high-intent misses (see the module docstring).

    Args:
        high: High-intent misses owed a callback.
        policy: Delay buckets and the policy's ``revenue_per_conversion``.
        as_of: When deadlines are judged.
        revenue_per_conversion: ``R`` from the command line (wins over the policy's and the observed mean).
        resamples, seed, level: The bootstrap.
    """
    import numpy as np

    labels = bucket_labels(policy)
    reference = labels[0]
    outcomes: dict[str, list[float]] = {label: [] for label in labels}
    for entry in high:
        if entry.outcome is not None:
            outcomes[delay_bucket(entry, policy)].append(1.0 if entry.outcome.converted else 0.0)
    breached_buckets = [delay_bucket(e, policy) for e in high if sla_status(e, as_of) == "breached"]
    ref = outcomes[reference]
    reference_rate = Rate(int(sum(ref)), len(ref))

    revenue, source = revenue_per_conversion, "--revenue-per-conversion"
    if revenue is None and policy.revenue_per_conversion is not None:
        revenue, source = policy.revenue_per_conversion, "callbacks.revenue_per_conversion in the policy file"
    if revenue is None:
        values = [e.outcome.revenue for e in high if e.outcome is not None and e.outcome.converted
                  and e.outcome.revenue is not None]
        if values:
            revenue, source = float(np.mean(values)), f"mean revenue of the {len(values)} converted high-intent misses"
    priced = [b for b in breached_buckets if outcomes[b]]

    def result(point: float | None, low: float | None, high_: float | None, reason: str = "") -> RevenueAtRisk:
        per_conversion = ("unknown (pass --revenue-per-conversion)" if revenue is None
                          else f"{revenue:,.2f} ({source})")
        assumptions = (
            f"Revenue per converted call: {per_conversion}.",
            f"A high-intent miss that breached the SLA would have converted like the high-intent misses reached "
            f"within {policy.delay_buckets[0]} ({format_rate(reference_rate)}); it converts like those reached in "
            "its own delay bucket, or never reached.",
            "Conversion = converted / misses with a reported outcome; misses without one are left out of the rates.",
            f"Range: {level:.0%} percentile bootstrap, {resamples} resamples of the misses with an outcome within each "
            f"delay bucket (seed {seed}); the breached calls are fixed, and a bucket converting better than the "
            "reference counts 0, not negative.",
            f"{len(breached_buckets) - len(priced)} of {len(breached_buckets)} breached high-intent misses are in a "
            "bucket with no reported outcome and are not priced.",
            "SLA met = first callback attempt by the deadline (missed time + SLA); connecting is measured apart.",
        )
        lost = None if point is None or not revenue else point / revenue
        return RevenueAtRisk(point, low, high_, level, resamples, seed, revenue, source if revenue is not None else "",
                             len(breached_buckets), len(priced), reference, reference_rate, lost, assumptions, reason)

    if not breached_buckets:
        return result(0.0, 0.0, 0.0)
    if revenue is None:
        return result(None, None, None, "no revenue per converted call: pass --revenue-per-conversion, set "
                                        "callbacks.revenue_per_conversion, or report outcomes with revenue")
    if not ref:
        return result(None, None, None, f"no high-intent miss reached within {policy.delay_buckets[0]} has a reported "
                                        "outcome: there is no reference conversion")
    counts = {label: priced.count(label) for label in labels if label != reference and priced.count(label)}
    rate = {label: float(np.mean(outcomes[label])) for label in (reference, *counts)}
    point = revenue * sum(n * max(0.0, rate[reference] - rate[label]) for label, n in counts.items())
    rng = np.random.default_rng(seed)
    boot = {}
    for label in (reference, *counts):  # a fixed order: the same seed gives the same range
        x = np.asarray(outcomes[label])
        boot[label] = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    risk = revenue * sum(n * np.maximum(0.0, boot[reference] - boot[label]) for label, n in counts.items())
    risk = np.broadcast_to(np.asarray(risk, dtype=np.float64), (resamples,))
    low, high_ = np.percentile(risk, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return result(float(point), float(low), float(high_))


def build_callbacks_report(store: object, policy: CallbackPolicy, *, by: str = "source",
                           since: dt.datetime | None = None, until: dt.datetime | None = None,
                           **options: object) -> CallbacksReport:
    """:func:`summarize_callbacks` over a :class:`~serving.calllog.store.CallLogStore`'s window."""
    from serving.calllog.callbacks import CallbackLog
    from serving.calllog.store import display_url

    entries = CallbackLog(store).entries(since, until)  # type: ignore[arg-type]
    return summarize_callbacks(entries, policy, by=by, since=since, until=until,
                               database=display_url(store.url), **options)  # type: ignore[attr-defined,arg-type]


# ------------------------------------------------------------------------------------- terminal


def format_latency(seconds: float | None) -> str:
    """``"12.5m"`` (minutes), or ``"-"``."""
    return "-" if seconds is None else f"{seconds / 60.0:.1f}m"


def format_late(seconds: float) -> str:
    """Lateness in minutes, or hours past two hours (``"35.0m"``, ``"29.8h"``)."""
    return f"{seconds / 60.0:.1f}m" if seconds < 7200 else f"{seconds / 3600.0:.1f}h"


def format_money(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def format_callbacks(report: CallbacksReport) -> str:
    """The report as plain-text tables (what ``callintent report callbacks`` prints)."""
    window = f"{_when(report.since) or 'the start'} to {_when(report.until) or 'now'}"
    out = [f"Missed calls and callbacks by {report.by}, {window} (UTC), deadlines as of {_when(report.as_of)}"
           + (f" — {report.database}" if report.database else ""),
           "SLA terms: " + ", ".join(f"{name} {sla}" + (f" (priority {p}, {q})" if p else "")
                                      for name, p, sla, q in report.terms)
           + f"; business hours {report.business_hours}", ""]
    rows = []
    for g in (*report.groups, report.total):
        rows.append((g.key, g.missed, g.voicemails, g.owed, format_rate(g.attempted), format_rate(g.completed),
                     format_rate(g.sla_met), g.breached, g.pending))
    out += _table((report.by, "missed", "voicemail", "owed", "attempted", "completed", "SLA met", "breached",
                   "pending"), rows)
    out += ["", "Callback latency (minutes from the missed call; p50/p90/p95), by when the call was missed:"]
    rows = []
    for g in (*report.groups, report.total):
        for row in g.latency:
            rows.append((g.key, row.hours, row.calls,
                         row.to_attempt.count, format_latency(row.to_attempt.p50), format_latency(row.to_attempt.p90),
                         format_latency(row.to_attempt.p95), row.to_connect.count, format_latency(row.to_connect.p50),
                         format_latency(row.to_connect.p90), format_latency(row.to_connect.p95)))
    out += _table((report.by, "hours", "owed", "attempted", "p50", "p90", "p95", "connected", "p50", "p90", "p95"),
                  rows)
    out += ["", f"SLA breaches ({len(report.breaches)}):"]
    if report.breaches:
        out += _table(("call", "intent", "source", "owner", "queue", "due (UTC)", "first attempt", "late"), [
            (b.call_id, b.intent, b.source or NO_VALUE, b.owner or "(unassigned)", b.queue or NO_VALUE, _when(b.due_at),
             _when(b.first_attempt_at) if b.first_attempt_at else "none yet", format_late(b.late_seconds))
            for b in report.breaches])
    out += ["", "Conversion after callback, by delay to the first connected callback (converted / with an outcome):"]
    out += _table(("delay", "owed calls", "conversion", "no outcome", "high-intent", "conversion", "no outcome"), [
        (a.bucket, a.calls, format_rate(a.conversion), a.no_outcome, h.calls, format_rate(h.conversion), h.no_outcome)
        for a, h in zip(report.conversion, report.conversion_high)])
    risk = report.revenue_at_risk
    out += ["", "Revenue at risk, high-intent misses that breached the SLA:"]
    if risk.point is None:
        out.append(f"  n/a: {risk.reason}")
    else:
        out.append(f"  {format_money(risk.point)} (range {format_money(risk.low)} – {format_money(risk.high)}, "
                   f"{risk.level:.0%} bootstrap) from {risk.priced} of {risk.breached} breached high-intent misses")
    out += ["  Assumptions:", *(f"  - {a}" for a in risk.assumptions)]
    return "\n".join(out)


# ------------------------------------------------------------------------------------- HTML


def render_callbacks_report(report: CallbacksReport, *, generated_at: str | None = None,
                            calls_href: str = "calls.html") -> str:
    """The page as one HTML string (the look of the QA and call-outcomes reports)."""
    import jinja2

    from evaluation.report import TEMPLATE_DIR

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(rate=format_rate, minutes=format_latency, late=format_late, money=format_money, when=_when,
                       pct=lambda r: "n/a" if r.value is None else f"{100.0 * r.value:.1f} %",
                       zip=lambda a, b: list(zip(a, b)))
    window = f"{_when(report.since) or 'the first missed call'} to {_when(report.until) or 'now'} (UTC)"
    return env.get_template(TEMPLATE).render(
        title=f"Missed calls and callbacks by {report.by}", report=report, total=report.total, window=window,
        risk=report.revenue_at_risk, figures=(delay_figure(report),), calls_href=calls_href, no_value=NO_VALUE,
        generated_at=generated_at or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def delay_figure(report: CallbacksReport) -> object:
    """Conversion after callback by delay bucket: all owed misses and high-intent ones."""
    import numpy as np

    from evaluation.plots import COLORS, Figure, _pyplot, _render

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 3.6))
    x = np.arange(len(report.conversion))
    for k, (name, rows) in enumerate((("all owed misses", report.conversion),
                                      ("high-intent misses", report.conversion_high))):
        bars = ax.bar(x + (k - 0.5) * 0.38, [r.conversion.value or 0.0 for r in rows], 0.38, label=name,
                      color=COLORS[k])
        for bar, row in zip(bars, rows):
            ax.annotate(f"{row.conversion.part}/{row.conversion.whole}", (bar.get_x() + bar.get_width() / 2,
                                                                          bar.get_height()), ha="center", va="bottom",
                        fontsize=8)
    ax.set_xticks(x, [r.bucket for r in report.conversion])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("converted / with an outcome")
    ax.legend(loc="upper right")
    return Figure(key="delay", title="Conversion by callback delay",
                  explanation=("How often a missed caller bought, by how long it took to reach them: the drop from "
                               "the left bar to the right ones is what slow callbacks cost."),
                  data_uri=_render(fig), alt="bar chart of conversion by callback delay")


def write_callbacks_report(report: CallbacksReport, out: str | Path) -> Path:
    """Write the page to ``out`` (folders created); returns the path."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_callbacks_report(report), encoding="utf-8")
    logger.info("wrote %s", path)
    return path


def _when(value: dt.datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M")


__all__ = ["CallbacksReport", "build_callbacks_report", "format_callbacks", "revenue_at_risk", "summarize_callbacks",
           "write_callbacks_report"]
