"""``POST /score`` latency with the call log on vs off: what the decision log costs the scoring path.

Starts two ``callintent serve`` processes on the same model — one logging every call to a fresh
SQLite file (the default backend, write-behind queue), one with ``call_log.enabled=false`` — and
sends the same texts to both, one request at a time, alternating which server goes first in each
round so drift on a shared machine hits both alike. Two separate server processes differ by more
than the log costs on a busy machine, so the script also times, in-process, exactly the work the
log adds to each scored call (record + redaction + queue). Target: < 5 % added at p50. Appends a
dated entry under "## Call log overhead" in BENCHMARKS.md.

    python -m bench.calllog_latency --registry ../main/models/registry --requests 300
    python -m bench.calllog_latency --db postgresql+psycopg://user@host/db --no-write
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shlex
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.benchmarks_file import machine
from bench.score_throughput import load_texts, percentile, running_server

HEADING = "## Call log overhead"
TARGET_PERCENT = 5.0


def measure(urls: dict[str, str], texts: Sequence[str], requests: int) -> dict[str, list[float]]:
    """Client latency (ms) per server, alternating the order of the two servers every round."""
    import httpx

    latencies: dict[str, list[float]] = {name: [] for name in urls}
    names = list(urls)
    with httpx.Client(timeout=60) as client:
        for name in names:  # warm-up: connections, first batches, caches
            for text in texts[:20]:
                client.post(f"{urls[name]}/score", json={"transcript": text}).raise_for_status()
        for i in range(requests):
            order = names if i % 2 == 0 else names[::-1]
            for name in order:
                body = {"transcript": texts[i % len(texts)], "call_id": f"bench-{name.replace(' ', '-')}-{i}",
                        "metadata": {"source": "bench", "campaign": f"c{i % 5}"}}
                started = time.perf_counter()
                client.post(f"{urls[name]}/score", json=body).raise_for_status()
                latencies[name].append((time.perf_counter() - started) * 1000.0)
    return latencies


def scoring_path_cost(db_dir: Path, iterations: int = 2000) -> float:
    """Microseconds the log adds inside ``score_items`` per call: build the record, queue it.

    The same two steps the service runs (``record_from_scores`` with transcript redaction, then
    ``CallLogWriter.submit``), timed in this process against a real SQLite writer, so the figure
    does not drown in the HTTP and batching noise of the end-to-end comparison.
    """
    from models.labels import CLASS_NAMES, SIGNAL_NAMES
    from models.scores import IntentScores, SignalScore
    from serving.calllog.records import record_from_scores
    from serving.calllog.store import open_store
    from serving.calllog.writer import CallLogWriter
    from serving.policy import DecisionPolicy

    probabilities = {c: 0.85 if c == "buying" else 0.05 for c in CLASS_NAMES}
    scores = IntentScores("buying", probabilities, 0.85, tuple(SignalScore(s, 0.5, s == "price_inquiry", ())
                                                               for s in SIGNAL_NAMES), "intent/v1")
    metadata = {"source": "bench", "campaign": "c1"}
    decision = DecisionPolicy.from_yaml().decide(scores, metadata)
    text = "hi I saw your ad, how much would it cost to replace a water heater, my number is 555 123 4567"
    writer = CallLogWriter(open_store(f"sqlite:///{db_dir / 'micro.db'}"), queue_size=iterations + 1)
    started = time.perf_counter()
    for i in range(iterations):
        writer.submit(record_from_scores(f"micro-{i}", channel="score", metadata=metadata, scores=scores,
                                         decision=decision, transcript=text, transcript_mode="redacted",
                                         redacted=False))
    elapsed = time.perf_counter() - started
    writer.close()
    return elapsed / iterations * 1e6


def markdown(latencies: dict[str, list[float]], *, logged_rows: int | None, backend: str, command: str,
             path_us: float) -> str:
    on, off = latencies["log on"], latencies["log off"]
    added = 100.0 * (statistics.median(on) / statistics.median(off) - 1.0)
    path_percent = 100.0 * path_us / 1000.0 / statistics.median(off)
    verdict = "meets" if max(added, path_percent) < TARGET_PERCENT else "misses"
    rows = "\n".join(f"| {name} | {len(v)} | {statistics.median(v):.2f} | {percentile(v, 95):.2f} | "
                     f"{statistics.fmean(v):.2f} |" for name, v in latencies.items())
    rows_line = "" if logged_rows is None else f" Rows in the log after the run: {logged_rows}."
    return (f"### {dt.date.today().isoformat()} — call log {backend}\n\n"
            f"Machine: {machine()}. Command: `{command}`\n\n"
            "| server | requests | p50 ms | p95 ms | mean ms |\n|---|---|---|---|---|\n"
            f"{rows}\n\n"
            f"End to end, log on vs off at p50: **{added:+.1f} %**. Work the log adds inside the scoring path "
            f"(build the record with redaction + queue it, measured in-process): **{path_us:.0f} µs per call = "
            f"{path_percent:.2f} % of the log-off p50** ({verdict} the < {TARGET_PERCENT:g} % target).{rows_line} "
            f"One request in flight at a time, alternating servers; load average {os.getloadavg()[0]:.1f} "
            "(a shared machine: the end-to-end difference is dominated by noise between the two server processes, "
            "the in-process figure is the cost of the log).\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.calllog_latency",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--registry", default=None, help="registry root for both servers")
    parser.add_argument("--model", default=None, help="model reference (default production)")
    parser.add_argument("--requests", type=int, default=300, help="requests per server (default %(default)s)")
    parser.add_argument("--db", default=None, help="call log URL (default: a fresh SQLite file)")
    parser.add_argument("--off-first", action="store_true",
                        help="start the log-off server first (to see whether start order biases the result)")
    parser.add_argument("--no-write", action="store_true", help="print only; don't append to BENCHMARKS.md")
    args = parser.parse_args(argv)

    texts = load_texts()
    with tempfile.TemporaryDirectory(prefix="calllog-bench-") as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'calls.db'}"
        with contextlib.ExitStack() as stack:
            settings = {"log on": [f"call_log.url={json.dumps(url)}"], "log off": ["call_log.enabled=false"]}
            order = ["log off", "log on"] if args.off_first else ["log on", "log off"]
            urls = {name: stack.enter_context(running_server(None, registry=args.registry, model=args.model,
                                                             overrides=settings[name])) for name in order}
            latencies = measure(urls, texts, args.requests)
        path_us = scoring_path_cost(Path(tmp))
        logged = None
        if url.startswith("sqlite:///"):  # the servers have stopped: the queue is drained
            with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
                logged = connection.execute("SELECT count(*) FROM calls").fetchone()[0]
    backend = url.split(":", 1)[0].split("+")[0]
    command = shlex.join(["python", "-m", "bench.calllog_latency", *(argv if argv is not None else sys.argv[1:])])
    entry = markdown(latencies, logged_rows=logged, backend=backend, command=command, path_us=path_us)
    from bench.benchmarks_file import publish

    publish(HEADING, entry, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
