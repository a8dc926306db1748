"""The call log's commands: ``callintent report calls`` (measurement) and ``callintent calls export`` (training data).

Examples::

    callintent report calls --since 7d --by source                       # table in the terminal
    callintent report calls --since 2026-11-01 --until 2026-12-01 --by campaign --html calls.html
    callintent report callbacks --since 30d --by segment --html callbacks.html   # missed calls, SLAs
    callintent calls export --since 30d --out calls.jsonl --corrections corrections.jsonl
    callintent calls purge --before 90d --dry-run                         # what a 90-day retention deletes

The database is ``--db URL``, else the service's own (``call_log.url`` of ``serve.yaml`` or
``--config``, ``$CALLINTENT_CALL_LOG_URL``; default ``sqlite:///<registry root>/calls.db``).
Times are UTC: ``2026-11-01``, ``2026-11-01T08:00``, or an age such as ``7d``, ``12h``, ``30m``.

``--html`` needs the evaluation extra (matplotlib, jinja2): the page is rendered by
``evaluation/calls_report.py``, imported only then.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from typing import TYPE_CHECKING

from callintent.errors import UserError

if TYPE_CHECKING:
    from serving.calllog.store import CallLogStore

_AGE = re.compile(r"^(\d+(?:\.\d+)?)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_when(text: str, option: str, *, now: dt.datetime | None = None) -> dt.datetime:
    """A time option as naive UTC: ISO date/datetime (no zone = UTC) or an age (``7d``, ``12h``, ``30m``).

    Raises:
        UserError: naming ``option`` and the accepted forms.
    """
    from serving.calllog.records import as_utc, utc_now

    value = text.strip()
    age = _AGE.match(value)
    if age:
        return (now or utc_now()) - dt.timedelta(**{_UNITS[age[2]]: float(age[1])})
    try:
        return as_utc(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        raise UserError(f"{option} {text!r}: expected a UTC date or time (2026-11-01, 2026-11-01T08:00) "
                        "or an age (7d, 12h, 30m)") from None


def _add_database(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=None, metavar="URL",
                        help="call log database (default: the service's call_log.url, $CALLINTENT_CALL_LOG_URL, "
                             "else sqlite:///<registry root>/calls.db)")
    parser.add_argument("--config", default=None, metavar="FILE", help="service YAML to take call_log.url from")


def _open(args: argparse.Namespace) -> CallLogStore:
    from serving.calllog.store import open_store

    url = args.db
    if not url:
        from serving.config import load_serve_config

        url = load_serve_config(args.config).call_log_url()
    return open_store(url)


def _write_html(module: str, writer: str, report: object, path: str) -> None:
    """Write a report's HTML page with ``module.writer`` (the page needs the evaluation extra)."""
    import importlib

    try:
        write = getattr(importlib.import_module(module), writer)
    except ImportError as e:
        raise UserError(f"--html needs the evaluation extra (pip install 'callintent[eval]'): {e}") from None
    print(f"wrote {write(report, path)}", file=sys.stderr)


def _window(args: argparse.Namespace) -> tuple[dt.datetime | None, dt.datetime | None]:
    since = parse_when(args.since, "--since") if args.since else None
    until = parse_when(args.until, "--until") if args.until else None
    if since is not None and until is not None and until <= since:
        raise UserError(f"--until {args.until} is not after --since {args.since}")
    return since, until


#: ``--by`` of each report kind (the first is the default).
_GROUPINGS = {"calls": ("source", "campaign"), "callbacks": ("source", "segment")}


class ReportCommand:
    """Measure the call log: conversion of buying calls per source or campaign, the handoff gap, time to
    decision (``calls``); missed calls, callback completion, latency, SLA breaches and revenue at risk
    (``callbacks``)."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("kind", choices=sorted(_GROUPINGS),
                            help="what to report on (calls: the decision log; callbacks: missed calls and callbacks)")
        parser.add_argument("--since", required=True, metavar="WHEN", help="start (UTC date/time, or an age: 7d, 12h)")
        parser.add_argument("--until", default=None, metavar="WHEN", help="end, exclusive (default: now)")
        parser.add_argument("--by", default=None, metavar="GROUP",
                            help="group by: source|campaign (calls), source|segment (callbacks); default source")
        parser.add_argument("--html", default=None, metavar="FILE", help="also write the self-contained HTML page")
        callbacks = parser.add_argument_group("callbacks report")
        callbacks.add_argument("--policy", default=None, metavar="FILE",
                               help="policy YAML whose callbacks: section applies (default: the service's policy)")
        callbacks.add_argument("--revenue-per-conversion", type=float, default=None, metavar="AMOUNT",
                               help="value of one converted call for the revenue-at-risk range (default: the "
                                    "policy's callbacks.revenue_per_conversion, else the mean revenue of converted "
                                    "high-intent misses)")
        callbacks.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
        callbacks.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
        _add_database(parser)

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        by = args.by or "source"
        if by not in _GROUPINGS[args.kind]:
            raise UserError(f"--by {by}: the {args.kind} report groups by {' or '.join(_GROUPINGS[args.kind])}")
        args.by = by
        if args.kind == "callbacks":
            return ReportCommand._callbacks(args)
        from serving.calllog.report import build_report, format_table

        since, until = _window(args)
        store = _open(args)
        try:
            report = build_report(store, by=args.by, since=since, until=until)
        finally:
            store.close()
        print(format_table(report))
        if args.html:
            _write_html("evaluation.calls_report", "write_calls_report", report, args.html)
        return 0

    @staticmethod
    def _callbacks(args: argparse.Namespace) -> int:
        from evaluation.callbacks_report import build_callbacks_report, format_callbacks
        from serving.callbacks import load_callback_policy

        if args.revenue_per_conversion is not None and not args.revenue_per_conversion >= 0:
            raise UserError(f"--revenue-per-conversion must be a non-negative amount, "
                            f"got {args.revenue_per_conversion}")
        from serving.config import load_serve_config

        policy = load_callback_policy(args.policy or load_serve_config(args.config).policy or None)
        since, until = _window(args)
        store = _open(args)
        try:
            report = build_callbacks_report(store, policy, by=args.by, since=since, until=until,
                                            revenue_per_conversion=args.revenue_per_conversion,
                                            resamples=args.resamples, seed=args.seed)
        finally:
            store.close()
        print(format_callbacks(report))
        if args.html:
            _write_html("evaluation.callbacks_report", "write_callbacks_report", report, args.html)
        return 0


class CallsCommand:
    """Work with the call log: export logged calls (with outcomes and QA corrections) as labeled training
    data, or purge what is older than the retention policy allows."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="calls_command", metavar="SUBCOMMAND", required=True)
        export = sub.add_parser("export", help="logged calls -> labeled JSONL (data/ARCHITECTURE format)",
                                description=(sys.modules[__name__].__doc__ or "").split("\n\n")[0])
        export.add_argument("--out", required=True, metavar="FILE.jsonl", help="training file to write")
        export.add_argument("--since", default=None, metavar="WHEN", help="first call (UTC date/time or age)")
        export.add_argument("--until", default=None, metavar="WHEN", help="end, exclusive")
        export.add_argument("--corrections", action="append", default=[], metavar="FILE",
                            help="QA corrections JSONL (callintent evaluate review-import); repeatable")
        _add_database(export)
        purge = sub.add_parser("purge", help="delete calls (and their outcomes) logged before a time: retention",
                               description="Delete calls logged before --before with their outcomes, and orphan "
                                           "outcomes received before it (run it from cron to keep a retention policy).")
        purge.add_argument("--before", required=True, metavar="WHEN",
                           help="cut-off: a UTC date/time, or an age (90d keeps the last 90 days)")
        purge.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")
        _add_database(purge)

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        if args.calls_command == "purge":
            return CallsCommand._purge(args)
        from evaluation.calls_export import export_calls

        since, until = _window(args)
        store = _open(args)
        try:
            report = export_calls(store, args.out, since=since, until=until, corrections=args.corrections)
        finally:
            store.close()
        print(f"wrote {report.rows} labeled calls to {report.path}: {report.qa_labeled} QA-labeled, "
              f"{report.model_labeled} model-labeled, {report.with_outcome} with an outcome; skipped "
              f"{report.no_transcript} without a logged transcript and {report.unusable_transcript} empty or too long"
              + (f"; {report.unused_corrections} corrections matched no exported call" if report.unused_corrections
                 else ""))
        return 0


    @staticmethod
    def _purge(args: argparse.Namespace) -> int:
        before = parse_when(args.before, "--before")
        store = _open(args)
        try:
            n_calls, n_outcomes = store.purge(before, dry_run=args.dry_run)
        finally:
            store.close()
        verb = "would delete" if args.dry_run else "deleted"
        print(f"{verb} {n_calls} calls and {n_outcomes} outcomes logged before {before.isoformat(sep=' ')} UTC")
        return 0


report = ReportCommand
calls = CallsCommand
