"""Bounded load test: how many real-time live calls (plus /score traffic) one server holds, and how it sheds the rest.

Starts ``callintent serve`` on loopback (the command ``tests/server_harness.py`` runs; or use
``--url``), then ramps N concurrent live calls (default 1, 2, 3, 4, 6, 8) until update latency,
lag or errors appear. Each call is an espeak-ng telephone recording streamed at real-time pace
as 20 ms μ-law 8 kHz frames — two of every three on ``/v1/stream``, one on ``/v1/twilio`` —
while ``/score`` requests arrive at ``--score-rps``. Per level it records the p50/p95/p99 of the
``latency_ms`` of partial events, decisions made, lag skips, errors, refused calls, the ``/score``
statuses and latency, and the server's peak RSS (all its processes).

Then it checks that the server sheds explicitly beyond capacity: ``max_live_sessions + 2`` calls
at once (the extra ones must be refused with close 1013 and a reason) and a burst of
``/score`` requests over ``limits.max_inflight_requests`` (the extra ones must get 503
``overloaded`` with ``Retry-After``), and records the exact codes and bodies.

The run stops by itself: at the first level that loses real time, and in any case at
``--time-cap`` seconds (default 300), after which running calls are cancelled. Appends a dated
entry under "## Load and shedding" in BENCHMARKS.md.

    python -m bench.load --registry models/registry                    # full ramp (~2 min)
    python -m bench.load --levels 1,2,3 --seconds 8 --no-write         # a short check
    python -m bench.load --url http://127.0.0.1:3000 --max-sessions 8 --max-inflight 64
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.benchmarks_file import machine, publish
from bench.score_throughput import FALLBACK_TEXTS, percentile, running_server

HEADING = "## Load and shedding"
#: A level holds real time while the p95 of partial latency stays under this, with no lag skip.
REAL_TIME_BOUND_MS = 1000.0
#: What the callers say (espeak-ng, 8 kHz telephone band); different lengths and intents.
CALLER_LINES = (
    "hi I saw your ad on facebook, how much would it cost to replace a fifty gallon water heater, "
    "can someone come out tomorrow morning",
    "yeah I'm calling to check on my order, it was supposed to arrive yesterday and I still don't have it",
    "what time do you close on saturday, and are you open on sunday afternoon",
    "I'd like to get an estimate for a new roof, we had some storm damage last week and it's leaking",
)


@dataclass
class CallOutcome:
    """What one live call saw."""

    latencies_ms: list[float] = field(default_factory=list)
    lag_skips: int = 0
    decision: bool = False
    final: bool = False
    errors: list[str] = field(default_factory=list)
    refused: tuple[int, str] | None = None


@dataclass(frozen=True)
class Level:
    """N concurrent calls, aggregated."""

    calls: int
    partials: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    lag_skips: int
    decisions: int
    finals: int
    errors: int
    refused: int
    score_statuses: dict[int | str, int]
    score_p95_ms: float
    peak_rss_mb: float
    wall_s: float

    @property
    def real_time(self) -> bool:
        return (self.errors == 0 and self.refused == 0 and self.lag_skips == 0 and self.finals == self.calls
                and self.p95_ms < REAL_TIME_BOUND_MS and set(self.score_statuses) <= {200})


# ---------------------------------------------------------------------------------------------
# Audio


def caller_audio(directory: Path, seconds: float) -> list[bytes]:
    """Each caller line as μ-law 8 kHz bytes (espeak-ng + sox), padded or cut to ``seconds``."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install espeak-ng sox)")
    calls = []
    for i, line in enumerate(CALLER_LINES):
        raw, out = directory / f"{i}.espeak.wav", directory / f"{i}.ul"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), line], check=True)
        # Silence after the words: a caller keeps the line open while the agent answers.
        subprocess.run(["sox", "-R", str(raw), "-r", "8000", "-c", "1", "-e", "u-law", "-t", "ul", str(out),
                        "pad", "0", str(seconds)], check=True)
        calls.append(out.read_bytes()[:int(seconds * 8000)])
    return calls


# ---------------------------------------------------------------------------------------------
# Traffic


async def live_call(ws_base: str, audio: bytes, index: int, *, twilio: bool, api_key: str | None,
                    call_id: str | None = None) -> CallOutcome:
    """Stream ``audio`` (μ-law 8 kHz) in real time as one call and collect what comes back.

    ``call_id`` names the call in the call log (default ``load-<index>``, ``CA…`` over Twilio)."""
    import websockets

    outcome = CallOutcome()
    path = "/v1/twilio" if twilio else "/v1/stream"
    query = f"?token={api_key}" if api_key else ""
    frames = [audio[i:i + 160] for i in range(0, len(audio), 160)]
    call_id = call_id or (f"CA{index:032d}" if twilio else f"load-{index}")
    stream_sid = f"MZ{index:032d}"
    try:
        async with websockets.connect(f"{ws_base}{path}{query}", max_size=2 ** 22) as ws:
            if twilio:
                await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
                await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": stream_sid, "start": {
                    "accountSid": "AC0", "streamSid": stream_sid, "callSid": call_id, "tracks": ["inbound"],
                    "customParameters": {"source": "load"},
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
            else:
                await ws.send(json.dumps({"type": "start", "call_id": call_id, "encoding": "mulaw",
                                          "sample_rate": 8000, "metadata": {"source": "load"}}))

            async def send() -> None:
                t0 = time.monotonic()
                for i, frame in enumerate(frames):
                    await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.02 - time.monotonic()))
                    if twilio:
                        await ws.send(json.dumps({"event": "media", "sequenceNumber": str(i + 2),
                                                  "streamSid": stream_sid, "media": {
                                                      "track": "inbound", "chunk": str(i + 1),
                                                      "timestamp": str(i * 20),
                                                      "payload": base64.b64encode(frame).decode()}}))
                    else:
                        await ws.send(frame)
                if twilio:
                    await ws.send(json.dumps({"event": "stop", "sequenceNumber": str(len(frames) + 2),
                                              "streamSid": stream_sid,
                                              "stop": {"accountSid": "AC0", "callSid": call_id}}))
                else:
                    await ws.send(json.dumps({"type": "stop"}))

            sender = asyncio.create_task(send())
            try:
                async for message in ws:
                    event = json.loads(message)
                    kind = event["type"]
                    if kind == "partial":
                        outcome.latencies_ms.append(event["latency_ms"])
                        outcome.lag_skips += bool(event.get("lagging"))
                    elif kind == "decision":
                        outcome.decision = True
                    elif kind == "final":
                        outcome.final = True
                    elif kind == "error":
                        outcome.errors.append(event["error"]["code"])
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, websockets.exceptions.ConnectionClosed):
                    await sender
            closed = ws.protocol.close_rcvd
            if closed is not None and closed.code == 1013:
                outcome.refused = (closed.code, closed.reason)
                outcome.errors = [e for e in outcome.errors if e != "capacity"]
    except (OSError, websockets.exceptions.WebSocketException) as e:
        outcome.errors.append(type(e).__name__)
    return outcome


async def score_traffic(url: str, rps: float, stop: asyncio.Event, api_key: str | None,
                        id_prefix: str = "load-score") -> tuple[Counter, list[float]]:
    """``/score`` requests at ``rps`` (open loop: a slow answer does not slow the arrivals), call ids
    ``<id_prefix>-<n>``."""
    import httpx

    statuses: Counter = Counter()
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def one(client: httpx.AsyncClient, i: int) -> None:
        started = time.monotonic()
        try:
            r = await client.post("/score", json={"transcript": FALLBACK_TEXTS[i % len(FALLBACK_TEXTS)],
                                                  "call_id": f"{id_prefix}-{i}", "metadata": {"source": "load"}})
            statuses[r.status_code] += 1
            if r.status_code == 200:
                latencies.append((time.monotonic() - started) * 1000.0)
        except httpx.HTTPError as e:
            statuses[type(e).__name__] += 1

    if rps <= 0:
        await stop.wait()
        return statuses, latencies
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        pending: set[asyncio.Task] = set()
        i = 0
        while not stop.is_set():
            task = asyncio.create_task(one(client, i))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0 / rps)
        if pending:
            await asyncio.wait(pending, timeout=30)
    return statuses, latencies


class RssSampler:
    """Peak resident memory of the server (the listening process and all its children), in MB."""

    def __init__(self, url: str) -> None:
        import psutil

        port = int(url.rsplit(":", 1)[1].split("/")[0])
        pids = {c.pid for c in psutil.net_connections(kind="tcp")
                if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid}
        self.roots = [self._server_root(psutil.Process(pid)) for pid in pids]
        self.peak_mb = 0.0

    @staticmethod
    def _server_root(listener):
        """The process this one started that the listener descends from (``bentoml serve``'s arbiter
        above its worker), or the listener itself for a server started elsewhere."""
        ancestors = [listener, *listener.parents()]
        pids = [p.pid for p in ancestors]
        me = os.getpid()
        return ancestors[pids.index(me) - 1] if me in pids[1:] else listener

    def processes(self) -> list:
        """The server's processes now (``psutil.Process``): the listening ones and all their children."""
        import psutil

        found: dict[int, psutil.Process] = {}
        for root in self.roots:
            with contextlib.suppress(psutil.Error):
                for proc in [root, *root.children(recursive=True)]:
                    found.setdefault(proc.pid, proc)
        return list(found.values())

    def sample(self) -> float:
        import psutil

        total = 0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        mb = total / 2 ** 20
        self.peak_mb = max(self.peak_mb, mb)
        return mb

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


async def level(url: str, calls: list[bytes], n: int, *, rps: float, api_key: str | None,
                rss: RssSampler, deadline: float) -> Level:
    """N concurrent real-time calls plus /score traffic, cut off at ``deadline`` (monotonic)."""
    ws_base = url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    stop = asyncio.Event()
    rss.peak_mb = 0.0
    sampler = asyncio.create_task(rss.run(stop))
    traffic = asyncio.create_task(score_traffic(url, rps, stop, api_key))
    started = time.monotonic()
    tasks = [asyncio.create_task(live_call(ws_base, calls[i % len(calls)], i, twilio=i % 3 == 2, api_key=api_key))
             for i in range(n)]
    done, pending = await asyncio.wait(tasks, timeout=max(1.0, deadline - time.monotonic()))
    for task in pending:  # the hard time cap
        task.cancel()
    stop.set()
    statuses, score_ms = await traffic
    await sampler
    outcomes = [t.result() for t in done]
    latencies = [x for o in outcomes for x in o.latencies_ms]
    return Level(
        calls=n, partials=len(latencies), p50_ms=percentile(latencies, 50), p95_ms=percentile(latencies, 95),
        p99_ms=percentile(latencies, 99), lag_skips=sum(o.lag_skips for o in outcomes),
        decisions=sum(o.decision for o in outcomes), finals=sum(o.final for o in outcomes),
        errors=sum(len(o.errors) for o in outcomes) + len(pending), refused=sum(o.refused is not None for o in outcomes),
        score_statuses=dict(statuses), score_p95_ms=percentile(score_ms, 95), peak_rss_mb=rss.peak_mb,
        wall_s=time.monotonic() - started)


# ---------------------------------------------------------------------------------------------
# Shedding beyond capacity


async def shed_check(url: str, *, max_sessions: int, max_inflight: int, api_key: str | None) -> dict:
    """Over capacity on purpose: what do the extra calls and requests get back?"""
    import httpx
    import websockets

    ws_base = url.replace("http://", "ws://", 1)
    query = f"?token={api_key}" if api_key else ""
    sockets = []
    refusals: Counter = Counter()
    admitted = 0
    for i in range(max_sessions + 2):
        ws = await websockets.connect(f"{ws_base}/v1/stream{query}")
        sockets.append(ws)
        await ws.send(json.dumps({"type": "start", "call_id": f"shed-{i}", "encoding": "mulaw", "sample_rate": 8000}))
        event = json.loads(await ws.recv())
        if event["type"] == "started":
            admitted += 1
        else:
            with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            closed = ws.protocol.close_rcvd
            refusals[(event["error"]["code"], closed.code if closed else None, closed.reason if closed else "")] += 1
    for ws in sockets:
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            await ws.send(json.dumps({"type": "stop"}))
        await ws.close()

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    burst = max_inflight * 4
    limits = httpx.Limits(max_connections=burst, max_keepalive_connections=burst)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as client:
        started = time.monotonic()
        responses = await asyncio.gather(*(client.post("/score", json={"transcript": FALLBACK_TEXTS[i % 6]})
                                           for i in range(burst)), return_exceptions=True)
        burst_s = time.monotonic() - started
    statuses = Counter(r.status_code if not isinstance(r, BaseException) else type(r).__name__ for r in responses)
    shed = [r for r in responses if not isinstance(r, BaseException) and r.status_code == 503]
    example = None
    if shed:
        example = {"status": 503, "retry_after": shed[0].headers.get("retry-after"), "body": shed[0].json()}
    return {"admitted": admitted, "refusals": dict(refusals), "burst": burst, "burst_statuses": dict(statuses),
            "burst_seconds": round(burst_s, 2), "shed_example": example}


# ---------------------------------------------------------------------------------------------
# Report


def markdown(levels: Sequence[Level], shed: dict | None, *, model: str, command: str, seconds: float,
             rps: float, max_sessions: int, max_inflight: int, note: str) -> str:
    def ms(value: float) -> str:
        return "-" if value != value else f"{value:.0f}"  # NaN: no sample

    rows = "\n".join(
        f"| {lv.calls} | {lv.partials} | {ms(lv.p50_ms)} | {ms(lv.p95_ms)} | {ms(lv.p99_ms)} | {lv.lag_skips} | "
        f"{lv.decisions}/{lv.calls} | {lv.errors} | {lv.refused} | "
        f"{', '.join(f'{k}: {v}' for k, v in sorted(lv.score_statuses.items(), key=str)) or '-'} | "
        f"{ms(lv.score_p95_ms)} | {lv.peak_rss_mb:.0f} | {'yes' if lv.real_time else 'no'} |" for lv in levels)
    held = max((lv.calls for lv in levels if lv.real_time), default=0)
    text = (f"### {dt.date.today().isoformat()} — {model}{f' ({note})' if note else ''}\n\n"
            f"Machine: {machine()}. Calls: espeak-ng 8 kHz μ-law, {seconds:g} s each, 20 ms frames in real time "
            f"(1 in 3 over /v1/twilio); /score at {rps:g} requests/s alongside. Limits: max_live_sessions "
            f"{max_sessions}, max_inflight_requests {max_inflight}. Command: `{command}`\n\n"
            "| calls | partials | p50 ms | p95 ms | p99 ms | lag skips | decisions | errors | refused | "
            "/score statuses | /score p95 ms | peak RSS MB | real time |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
            f"{rows}\n\nMost concurrent real-time calls held (p95 partial latency < {REAL_TIME_BOUND_MS:.0f} ms, "
            f"no lag skip, no error): **{held}**.\n")
    if shed is not None:
        refusals = "; ".join(f"{n}× error `{code}` + close {close} \"{reason}\""
                             for (code, close, reason), n in shed["refusals"].items()) or "none"
        text += (f"\nShedding: {shed['admitted'] + sum(shed['refusals'].values())} calls at once → "
                 f"{shed['admitted']} admitted, refused: {refusals}. A burst of {shed['burst']} /score requests → "
                 f"{shed['burst_statuses']} in {shed['burst_seconds']} s")
        if shed["shed_example"]:
            text += (f"; a shed request got {shed['shed_example']['status']} `Retry-After: "
                     f"{shed['shed_example']['retry_after']}` `{json.dumps(shed['shed_example']['body'])}`")
        text += ".\n"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--url", default=None, help="a running server (default: start `callintent serve` on loopback)")
    parser.add_argument("--registry", default=None, help="registry root for the started server")
    parser.add_argument("--model", default=None, help="model reference for the started server (default production)")
    parser.add_argument("--levels", default="1,2,3,4,6,8", help="concurrent call counts to ramp through")
    parser.add_argument("--seconds", type=float, default=15.0, help="audio per call (default %(default)s)")
    parser.add_argument("--score-rps", type=float, default=5.0, help="/score requests per second alongside")
    parser.add_argument("--max-sessions", type=int, default=8, help="limits.max_live_sessions of the started server "
                                                                     "(with --url: what the server is set to)")
    parser.add_argument("--max-inflight", type=int, default=16, help="limits.max_inflight_requests, likewise")
    parser.add_argument("--time-cap", type=float, default=300.0, help="hard cap on the whole run, seconds")
    parser.add_argument("--keep-going", action="store_true", help="run every level even after real time is lost")
    parser.add_argument("--api-key", default=None, help="API key, if the server requires one")
    parser.add_argument("--note", default="", help="a note for the BENCHMARKS.md heading (e.g. 'quiet machine')")
    parser.add_argument("--no-write", action="store_true", help="print only; don't append to BENCHMARKS.md")
    args = parser.parse_args(argv)

    deadline = time.monotonic() + args.time_cap
    counts = [int(c) for c in args.levels.split(",") if c.strip()]
    overrides = [f"limits.max_live_sessions={args.max_sessions}", f"limits.max_inflight_requests={args.max_inflight}",
                 "limits.idle_timeout_seconds=30"]
    with tempfile.TemporaryDirectory(prefix="callintent-load-") as tmp:
        calls = caller_audio(Path(tmp), args.seconds)
    levels: list[Level] = []
    shed = None
    with running_server(args.url, registry=args.registry, model=args.model, overrides=overrides) as url:
        import httpx

        headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        model = httpx.post(f"{url}/score", json={"transcript": "hello"}, headers=headers, timeout=60).json()["model"]
        rss = RssSampler(url)
        for n in counts:
            if time.monotonic() + args.seconds + 5 > deadline:
                print(f"time cap: skipping {n} calls and beyond", flush=True)
                break
            lv = asyncio.run(level(url, calls, n, rps=args.score_rps, api_key=args.api_key, rss=rss,
                                   deadline=min(deadline, time.monotonic() + args.seconds * 3 + 30)))
            levels.append(lv)
            print(lv, flush=True)
            if not lv.real_time and not args.keep_going:
                break
        if time.monotonic() + 30 < deadline:
            time.sleep(2)  # the last level's calls release their slots
            shed = asyncio.run(shed_check(url, max_sessions=args.max_sessions, max_inflight=args.max_inflight,
                                          api_key=args.api_key))
            print(shed, flush=True)
    command = shlex.join(["python", "-m", "bench.load", *(argv if argv is not None else sys.argv[1:])])
    entry = markdown(levels, shed, model=model, command=command, seconds=args.seconds, rps=args.score_rps,
                     max_sessions=args.max_sessions, max_inflight=args.max_inflight, note=args.note)
    publish(HEADING, entry, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
