"""``callintent webhooks``: the webhook delivery log, and sending failed deliveries again.

Examples::

    callintent webhooks list --status failed               # what gave up, newest first
    callintent webhooks retry                              # every failed delivery: pending again, due now
    callintent webhooks retry --endpoint crm               # only the CRM's
    callintent webhooks retry --id 41 --id 42

``retry`` only marks the rows; the running service delivers them (within ``webhooks.poll_seconds``)
with a fresh budget of ``webhooks.max_attempts``. The database is ``--db URL``, else the service's
own (``call_log.url`` of ``serve.yaml`` or ``--config``, ``$CALLINTENT_CALL_LOG_URL``; default
``sqlite:///<registry root>/calls.db``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from serving.calllog.store import CallLogStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="webhooks_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="the delivery log, newest first")
    listing.add_argument("--status", choices=("pending", "delivered", "failed"), default=None)
    listing.add_argument("--endpoint", default=None, help="only this endpoint's deliveries")
    listing.add_argument("--call-id", default=None, help="only this call's")
    listing.add_argument("--limit", type=int, default=50, help="rows at most (default %(default)s)")
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    _add_database(listing)
    retry = sub.add_parser("retry", help="make failed deliveries pending again (the service sends them)")
    retry.add_argument("--id", type=int, action="append", default=[], dest="ids",
                       help="only this delivery (repeatable)")
    retry.add_argument("--endpoint", default=None, help="only this endpoint's failed deliveries")
    _add_database(retry)


def _add_database(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=None, metavar="URL",
                        help="call log database (default: the service's call_log.url, $CALLINTENT_CALL_LOG_URL, "
                             "else sqlite:///<registry root>/calls.db)")
    parser.add_argument("--config", default=None, metavar="FILE", help="service YAML to take call_log.url from")


def run(args: argparse.Namespace) -> int:
    from callintent.errors import UserError
    from serving.calllog.outbox import Outbox
    from serving.calllog.records import utc_now

    if args.webhooks_command == "list" and args.limit < 1:
        raise UserError(f"--limit must be >= 1, got {args.limit}")
    store = _open(args)
    try:
        outbox = Outbox(store)
        if args.webhooks_command == "retry":
            n = outbox.retry(utc_now(), ids=args.ids, endpoint=args.endpoint)
            what = f" of endpoint {args.endpoint}" if args.endpoint else ""
            print(f"{n} failed deliveries{what} queued again; the running service sends them")
            return 0
        rows = outbox.deliveries(args.status, endpoint=args.endpoint, call_id=args.call_id, limit=args.limit)
        if args.json:
            for row in rows:
                print(json.dumps(row.to_json()))
            return 0
        print(f"{'id':>6}  {'status':<9}  {'event':<12}  {'endpoint':<12}  {'tries':>5}  {'created':<20}  "
              f"{'call':<24}  last error")
        for row in rows:
            print(f"{row.id:>6}  {row.status:<9}  {row.event_type:<12}  {row.endpoint:<12}  {row.attempts:>5}  "
                  f"{row.created_at.isoformat(sep=' ', timespec='seconds'):<20}  {row.call_id:<24}  "
                  f"{row.last_error or ''}")
        backlog = outbox.backlog(utc_now())
        print(f"{backlog.pending} pending, oldest {backlog.oldest_seconds:.0f} s", file=sys.stderr)
        return 0
    finally:
        store.close()


def _open(args: argparse.Namespace) -> CallLogStore:
    from serving.calllog.store import open_store

    url = args.db
    if not url:
        from serving.config import load_serve_config

        url = load_serve_config(args.config).call_log_url()
    return open_store(url)
