"""Soak: hold real-time live calls for half an hour and check that nothing grows or goes missing.

Starts ``callintent serve`` on loopback (``bench/score_throughput.py`` ``running_server``) with a
fresh call log (a SQLite file in a temporary folder, or ``--call-log-url``, e.g. PostgreSQL), then
keeps ``--calls`` live calls open for ``--minutes``: each caller streams one pre-rendered opening in
real time over ``/v1/stream`` (20 ms μ-law 8 kHz frames; the espeak-ng caller lines of
``bench/load.py`` and, when ``../shared/audio`` has it, a natural-voice recording), 15-30 s long,
and starts the next call as soon as one ends, while ``/score`` requests arrive at ``--score-rps``
(the live-call and ``/score`` clients are ``bench/load.py``'s).

Every ``--sample-seconds`` it records the server's RSS and open file descriptors (its processes
and their children, psutil), the live session slots in use (``callintent_live_sessions_active``
from ``/metrics``) and the load average. At the end it waits for the last calls to finish and
checks the targets:

* **RSS growth < 5 % after warm-up**: the mean RSS of the last minute of load against the mean
  of the first minute after warm-up (``--warmup-minutes``, default 5, or a third of a short run);
* **no leaked slot**: slots in use back to 0 once the last call has ended;
* **no leaked descriptor**: open descriptors at rest after the load no more than the first
  minute after warm-up + ``FD_TOLERANCE`` (and no climb between that minute and the last one);
* **nothing lost**: every call got its final event, and the call log holds one row per call and
  per answered ``/score`` request (``rows == calls + scores``).

It also reports the p95 update latency (the ``latency_ms`` of partial events) per minute of the
run, by the minute the call ended: its drift is only meaningful on an otherwise quiet machine.
Prints a table and a verdict, appends a dated entry under "## Soak" in BENCHMARKS.md, and exits
1 when a target fails.

    python -m bench.soak --registry models/registry                       # 30 min, 6 calls
    python -m bench.soak --minutes 3 --no-write                           # a smoke run
    python -m bench.soak --call-log-url postgresql+psycopg://user@127.0.0.1/callintent
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import math
import os
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.benchmarks_file import REPO, machine, publish
from bench.load import RssSampler, caller_audio, live_call, score_traffic
from bench.score_throughput import percentile, running_server

HEADING = "## Soak"
#: 80 % of the real-time calls one 2-core server holds (about 8: BENCHMARKS.md "Live stream latency").
DEFAULT_CALLS = 6
#: Target: RSS may grow by less than this fraction after warm-up.
RSS_GROWTH_LIMIT = 0.05
#: Open descriptors at rest may exceed the post-warm-up level by at most this many.
FD_TOLERANCE = 4
#: The windows compared for RSS and descriptors (the first minute after warm-up, the last of the load).
WINDOW_SECONDS = 60.0
NATURAL_VOICE = REPO.parent / "shared" / "audio" / "OSR_us_000_0034_8k.wav"


@dataclass(frozen=True)
class Sample:
    """The server at one moment, ``t`` seconds after the load started."""

    t: float
    rss_mb: float
    fds: int
    slots: int
    load1: float


@dataclass(frozen=True)
class FinishedCall:
    """One live call, ended ``ended`` seconds after the load started."""

    ended: float
    latencies_ms: tuple[float, ...]
    final: bool
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class SoakReport:
    """What the run showed, and the verdict on each target."""

    warmup_s: float
    load_s: float
    rss_base_mb: float
    rss_end_mb: float
    rss_growth: float
    rss_peak_mb: float
    fds_base: float
    fds_end: float
    fds_after: int
    slots_after: int
    calls: int
    calls_final: int
    call_errors: int
    scores_ok: int
    scores_failed: int
    rows: int
    p95_by_minute: list[tuple[int, int, float]] = field(default_factory=list)
    load_avg: tuple[float, float, float] = (float("nan"), float("nan"), float("nan"))
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def expected_rows(self) -> int:
        return self.calls_final + self.scores_ok


# ---------------------------------------------------------------------------------------------
# Analysis (pure: tests/test_bench_soak.py feeds it synthetic samples)


def window(samples: Sequence[Sample], start: float, end: float) -> list[Sample]:
    """The samples with ``start <= t < end``."""
    return [s for s in samples if start <= s.t < end]


def rss_growth(samples: Sequence[Sample], warmup_s: float, load_s: float,
               window_s: float = WINDOW_SECONDS) -> tuple[float, float, float]:
    """RSS growth after warm-up: the mean of the first ``window_s`` after ``warmup_s`` against the mean
    of the last ``window_s`` of the load (before ``load_s``).

    Returns:
        (base MB, end MB, growth as a fraction of base).

    Raises:
        ValueError: a window holds no sample (a run shorter than warm-up + two windows).
    """
    first = window(samples, warmup_s, warmup_s + window_s)
    last = window(samples, max(warmup_s, load_s - window_s), load_s)
    if not first or not last:
        raise ValueError(f"no samples between {warmup_s:.0f} s and {load_s:.0f} s: the run is too short "
                         "for its warm-up")
    base = statistics.fmean(s.rss_mb for s in first)
    end = statistics.fmean(s.rss_mb for s in last)
    return base, end, (end - base) / base


def fd_levels(samples: Sequence[Sample], warmup_s: float, load_s: float,
              window_s: float = WINDOW_SECONDS) -> tuple[float, float]:
    """Median open descriptors in the first minute after warm-up and in the last minute of the load."""
    first = window(samples, warmup_s, warmup_s + window_s)
    last = window(samples, max(warmup_s, load_s - window_s), load_s)
    if not first or not last:
        raise ValueError(f"no samples between {warmup_s:.0f} s and {load_s:.0f} s")
    return statistics.median(s.fds for s in first), statistics.median(s.fds for s in last)


def p95_by_minute(calls: Sequence[FinishedCall]) -> list[tuple[int, int, float]]:
    """(minute, partial events, p95 update latency ms) by the minute each call ended."""
    minutes: dict[int, list[float]] = {}
    for call in calls:
        minutes.setdefault(int(call.ended // 60), []).extend(call.latencies_ms)
    return [(m, len(v), percentile(v, 95)) for m, v in sorted(minutes.items())]


def analyse(samples: Sequence[Sample], calls: Sequence[FinishedCall], *, after: Sample, scores_ok: int,
            scores_failed: int, rows: int, warmup_s: float, load_s: float,
            fd_tolerance: int = FD_TOLERANCE, rss_limit: float = RSS_GROWTH_LIMIT,
            window_s: float = WINDOW_SECONDS) -> SoakReport:
    """Judge a soak run.

    Args:
        samples: The periodic samples taken while calls ran (``t`` from the load's start).
        calls: Every live call made.
        after: A sample at rest after the last call ended.
        scores_ok: ``/score`` requests answered 200 (each writes one call-log row).
        scores_failed: ``/score`` requests answered otherwise, or not at all.
        rows: Call-log rows this run wrote.
        warmup_s: Seconds from the start not judged for growth.
        load_s: Seconds the load ran (calls started until then).
        window_s: The length of the windows compared (after warm-up, at the end of the load).
    """
    base, end, growth = rss_growth(samples, warmup_s, load_s, window_s)
    fds_base, fds_end = fd_levels(samples, warmup_s, load_s, window_s)
    finals = sum(c.final for c in calls)
    errors = sum(bool(c.errors) or not c.final for c in calls)
    loads = [s.load1 for s in samples]
    expected = finals + scores_ok
    checks = [
        Check("RSS growth after warm-up", growth < rss_limit,
              f"{base:.0f} → {end:.0f} MB ({growth:+.1%}; limit {rss_limit:.0%})"),
        Check("live session slots after the last call", after.slots == 0, f"{after.slots} in use (must be 0)"),
        Check("open descriptors", after.fds <= fds_base + fd_tolerance and fds_end <= fds_base + fd_tolerance,
              f"{fds_base:g} after warm-up, {fds_end:g} in the last minute, {after.fds} at rest "
              f"(at most {fds_base + fd_tolerance:g})"),
        Check("every call finished", errors == 0 and finals == len(calls),
              f"{finals}/{len(calls)} final events, {errors} calls with an error or no final event"),
        Check("call-log rows == calls + scores", rows == expected,
              f"{rows} rows for {finals} calls + {scores_ok} scores = {expected} (lost {expected - rows})"),
    ]
    return SoakReport(
        warmup_s=warmup_s, load_s=load_s, rss_base_mb=base, rss_end_mb=end, rss_growth=growth,
        rss_peak_mb=max(s.rss_mb for s in samples), fds_base=fds_base, fds_end=fds_end, fds_after=after.fds,
        slots_after=after.slots, calls=len(calls), calls_final=finals, call_errors=errors, scores_ok=scores_ok,
        scores_failed=scores_failed, rows=rows, p95_by_minute=p95_by_minute(calls),
        load_avg=(min(loads), statistics.fmean(loads), max(loads)) if loads else (float("nan"),) * 3,
        checks=checks)


# ---------------------------------------------------------------------------------------------
# The run


def call_audio(directory: Path, longest_s: float) -> list[bytes]:
    """The openings callers play (μ-law 8 kHz): the espeak-ng lines, plus a natural voice when present."""
    clips = caller_audio(directory, longest_s)
    if NATURAL_VOICE.exists():
        out = directory / "natural.ul"
        subprocess.run(["sox", str(NATURAL_VOICE), "-r", "8000", "-c", "1", "-e", "u-law", "-t", "ul", str(out),
                        "trim", "0", str(longest_s)], check=True)
        clips.append(out.read_bytes())
    return clips


def live_slots(metrics_text: str) -> int:
    """``callintent_live_sessions_active`` from a ``/metrics`` page (summed over workers)."""
    from prometheus_client.parser import text_string_to_metric_families

    return int(sum(s.value for family in text_string_to_metric_families(metrics_text)
                   for s in family.samples if s.name == "callintent_live_sessions_active"))


class ServerProbe:
    """Samples the server: RSS and descriptors of its processes, slots from ``/metrics``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.processes = RssSampler(url)

    async def sample(self, client, t: float) -> Sample:  # client: httpx.AsyncClient
        import psutil

        rss = self.processes.sample()
        fds = 0
        for proc in self.processes.processes():
            with contextlib.suppress(psutil.Error):
                fds += proc.num_fds()
        response = await client.get(f"{self.url}/metrics", timeout=10)
        return Sample(t=t, rss_mb=rss, fds=fds, slots=live_slots(response.text), load1=os.getloadavg()[0])


async def soak(url: str, clips: Sequence[bytes], *, calls: int, load_s: float, call_seconds: tuple[float, float],
               score_rps: float, sample_s: float, run_id: str, seed: int
               ) -> tuple[list[Sample], list[FinishedCall], dict, Sample]:
    """Hold ``calls`` live calls (each ending and the next starting at once) with ``/score`` beside them
    for ``load_s``; return the samples, the calls, the ``/score`` statuses and a sample at rest after."""
    import httpx

    ws_base = url.replace("http://", "ws://", 1)
    probe = ServerProbe(url)
    rng = random.Random(seed)
    finished: list[FinishedCall] = []
    samples: list[Sample] = []
    start = time.monotonic()
    counter = iter(range(10 ** 9))

    async def caller(slot: int) -> None:
        await asyncio.sleep(slot * min(call_seconds) / calls)  # staggered, so calls do not end together
        while time.monotonic() - start < load_s:
            i = next(counter)
            clip = clips[i % len(clips)][:int(rng.uniform(*call_seconds) * 8000)]
            outcome = await live_call(ws_base, clip, i, twilio=False, api_key=None, call_id=f"soak-{run_id}-{i}")
            finished.append(FinishedCall(ended=time.monotonic() - start, latencies_ms=tuple(outcome.latencies_ms),
                                         final=outcome.final,
                                         errors=tuple(outcome.errors) + (("refused",) if outcome.refused else ())))

    async def sampler(client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            samples.append(await probe.sample(client, time.monotonic() - start))
            if len(samples) % max(1, round(60 / sample_s)) == 0:
                last = samples[-1]
                print(f"{last.t / 60:5.1f} min: RSS {last.rss_mb:.0f} MB, {last.fds} fds, {last.slots} slots, "
                      f"{len(finished)} calls done, load {last.load1:.1f}", flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), sample_s)

    stop = asyncio.Event()
    async with httpx.AsyncClient() as client:
        sampling = asyncio.create_task(sampler(client, stop))
        scoring = asyncio.create_task(score_traffic(url, score_rps, stop, None, id_prefix=f"soak-{run_id}-score"))
        await asyncio.gather(*(caller(k) for k in range(calls)))
        stop.set()
        statuses, _ = await scoring
        await sampling
        # At rest: the last call's slot is released as its socket closes; give the server a moment.
        deadline = time.monotonic() + 15
        after = await probe.sample(client, time.monotonic() - start)
        while after.slots and time.monotonic() < deadline:
            await asyncio.sleep(1)
            after = await probe.sample(client, time.monotonic() - start)
        await asyncio.sleep(2)
        after = await probe.sample(client, time.monotonic() - start)
    return samples, finished, dict(statuses), after


def count_rows(call_log_url: str, prefix: str, expected: int, wait_s: float = 20.0) -> int:
    """Rows the run wrote (call ids ``prefix…``), once the write-behind queue has caught up."""
    from serving.calllog.store import CallLogStore

    store = CallLogStore(call_log_url)
    try:
        deadline = time.monotonic() + wait_s
        rows = store.count_calls(prefix)
        while rows < expected and time.monotonic() < deadline:
            time.sleep(0.5)
            rows = store.count_calls(prefix)
        return rows
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# Report


def markdown(report: SoakReport, samples: Sequence[Sample], calls: Sequence[FinishedCall], *, model: str,
             command: str, concurrency: int, score_rps: float, call_log: str, note: str, row_s: float) -> str:
    def ms(value: float) -> str:
        return "-" if math.isnan(value) else f"{value:.0f}"

    rows = []
    for t0 in range(0, int(report.load_s + row_s), int(row_s)):
        chunk = window(samples, t0, t0 + row_s)
        if not chunk:
            continue
        lat = [x for c in calls if t0 <= c.ended < t0 + row_s for x in c.latencies_ms]
        ended = sum(t0 <= c.ended < t0 + row_s for c in calls)
        rows.append(f"| {t0 / 60:.0f}–{(t0 + row_s) / 60:.0f} | {statistics.fmean(s.rss_mb for s in chunk):.0f} | "
                    f"{max(s.rss_mb for s in chunk):.0f} | {statistics.median(s.fds for s in chunk):g} | "
                    f"{max(s.slots for s in chunk)} | {ended} | {ms(percentile(lat, 95))} | "
                    f"{statistics.fmean(s.load1 for s in chunk):.1f} |")
    post = [(m, v) for m, n, v in report.p95_by_minute if m * 60 >= report.warmup_s and not math.isnan(v)]
    drift = (f"p95 update latency per minute after warm-up: {min(v for _, v in post):.0f}–"
             f"{max(v for _, v in post):.0f} ms (first {post[0][1]:.0f}, last {post[-1][1]:.0f})") if post else \
        "no partial events after warm-up"
    lo, mean, hi = report.load_avg
    checks = "\n".join(f"- {'PASS' if c.passed else 'FAIL'} {c.name}: {c.detail}" for c in report.checks)
    return (f"### {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC — {model}, {concurrency} calls for "
            f"{report.load_s / 60:g} min{f' ({note})' if note else ''}\n\n"
            f"Machine: {machine()}; load average {lo:.1f}–{hi:.1f} (mean {mean:.1f}) during the run. "
            f"Calls: {concurrency} at a time over /v1/stream, each a pre-rendered opening (espeak-ng lines and a "
            f"natural voice) streamed in real time as 20 ms μ-law frames, the next call starting as one ends; "
            f"/score at {score_rps:g} requests/s beside them; call log {call_log}. Warm-up: the first "
            f"{report.warmup_s / 60:g} min. Command: `{command}`\n\n"
            "| minutes | RSS MB (mean) | RSS MB (max) | open fds (median) | slots (max) | calls ended | "
            "p95 update ms | load avg |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
            f"{report.calls} calls ({report.calls_final} final events), {report.scores_ok} /score answered "
            f"({report.scores_failed} not), {report.rows} call-log rows. RSS peak {report.rss_peak_mb:.0f} MB. "
            f"{drift}.\n\n{checks}\n\n**Verdict: {'PASS' if report.passed else 'FAIL'}.**\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--registry", default=None, help="registry root for the started server")
    parser.add_argument("--model", default=None, help="model reference (default production)")
    parser.add_argument("--calls", type=int, default=DEFAULT_CALLS, help="live calls held at once (default "
                        "%(default)s: 80 %% of the ~8 real-time calls 2 cores hold)")
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to hold them (default %(default)s)")
    parser.add_argument("--warmup-minutes", type=float, default=None,
                        help="not judged for growth (default 5, or a third of a shorter run)")
    parser.add_argument("--call-seconds", default="15,30", help="call length range, seconds (default %(default)s)")
    parser.add_argument("--score-rps", type=float, default=2.0, help="/score requests per second beside the calls")
    parser.add_argument("--sample-seconds", type=float, default=10.0, help="sampling interval (default %(default)s)")
    parser.add_argument("--call-log-url", default=None,
                        help="call log database (default: a fresh SQLite file in a temporary folder)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for the started server (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="call lengths (default %(default)s)")
    parser.add_argument("--note", default="", help="a note for the BENCHMARKS.md heading")
    parser.add_argument("--no-write", action="store_true", help="print only; don't append to BENCHMARKS.md")
    args = parser.parse_args(argv)

    shortest, longest = (float(x) for x in args.call_seconds.split(","))
    load_s = args.minutes * 60
    warmup_s = 60 * (args.warmup_minutes if args.warmup_minutes is not None else min(5.0, args.minutes / 3))
    if load_s < warmup_s + 2 * WINDOW_SECONDS:
        parser.error(f"--minutes {args.minutes:g} leaves less than two minutes after a {warmup_s / 60:g}-minute "
                     "warm-up")
    run_id = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="callintent-soak-") as tmp:
        call_log_url = args.call_log_url or f"sqlite:///{Path(tmp) / 'calls.db'}"
        clips = call_audio(Path(tmp), longest)
        overrides = [f"call_log.url={call_log_url}", f"limits.max_live_sessions={max(8, args.calls + 2)}", *args.set]
        # Its own BENTOML_HOME: another server starting on this machine must not wipe this one's /metrics.
        with running_server(None, registry=args.registry, model=args.model, overrides=overrides,
                            env={"BENTOML_HOME": str(Path(tmp) / "bentoml")}) as url:
            import httpx

            model = httpx.post(f"{url}/score", json={"transcript": "hello"}, timeout=60).json()["model"]
            samples, calls, statuses, after = asyncio.run(soak(
                url, clips, calls=args.calls, load_s=load_s, call_seconds=(shortest, longest),
                score_rps=args.score_rps, sample_s=args.sample_seconds, run_id=run_id, seed=args.seed))
            scores_ok = statuses.get(200, 0)
            expected = sum(c.final for c in calls) + scores_ok
            rows = count_rows(call_log_url, f"soak-{run_id}-", expected)
        report = analyse(samples, calls, after=after, scores_ok=scores_ok,
                         scores_failed=sum(statuses.values()) - scores_ok, rows=rows, warmup_s=warmup_s,
                         load_s=load_s)
    command = shlex.join(["python", "-m", "bench.soak", *(argv if argv is not None else sys.argv[1:])])
    backend = "PostgreSQL" if call_log_url.startswith("postgres") else "SQLite"
    entry = markdown(report, samples, calls, model=model, command=command, concurrency=args.calls,
                     score_rps=args.score_rps, call_log=backend, note=args.note,
                     row_s=60.0 * max(1, round(args.minutes / 15)))
    publish(HEADING, entry, write=not args.no_write)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
