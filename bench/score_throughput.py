"""``POST /score`` throughput: one client at a time (no batching possible) vs concurrent clients (batched).

BentoML's adaptive batcher merges concurrent ``/score`` requests into one model run
(``CallIntentService.score_batch``). This script measures what that buys: requests per second
with one request in flight, then with ``--concurrency`` in flight, the mean batch size the server
reported, and client-side latency percentiles. Target: batched ≥ 3× sequential throughput.
Appends a dated entry under "## /score throughput" in BENCHMARKS.md.

    python -m bench.score_throughput                       # starts `callintent serve` (production model)
    python -m bench.score_throughput --url http://127.0.0.1:3000 --concurrency 64
    python -m bench.score_throughput --registry /tmp/reg --model v2 --no-write
    python -m bench.score_throughput --baseline ../before    # this checkout vs another (e.g. the commit before a change)

With ``--baseline DIR`` two servers run side by side, one on this checkout's code and one on
DIR's (same registry and model), and their sequential requests alternate in rounds so both see
the same machine load. The entry then adds the **server time beyond the model** per sequential
request: mean client latency minus the model time the server reports (``timings_ms.model``) —
HTTP, validation, batching hand-off, redaction, the decision and logging.

Texts: the real openings in ``../shared/data/sgd_openings.jsonl`` when present, else built-in ones.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.benchmarks_file import REPO, machine, publish

HEADING = "## /score throughput"
REAL_TEXT = REPO.parent / "shared" / "data" / "sgd_openings.jsonl"
TARGET_RATIO = 3.0

FALLBACK_TEXTS = (
    "hi I saw your ad on facebook, how much would it cost to replace a 50 gallon water heater",
    "yeah I'm calling to check on my order, it was supposed to arrive yesterday",
    "what time do you close on saturday",
    "press one to hear about your car's extended warranty",
    "can someone come out tomorrow morning to look at my furnace, it's making a noise",
    "I'd like to get an estimate for a new roof, we had some storm damage",
)


# ---------------------------------------------------------------------------------------------
# Shared with bench/stream_latency.py: starting a server and writing BENCHMARKS.md


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(url: str | None, *, registry: str | None = None, model: str | None = None,
                   overrides: Sequence[str] = (), timeout: float = 180.0, checkout: Path | None = None,
                   env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Yield the URL of a server: ``url`` when given, else a ``callintent serve`` started here.

    Args:
        url: An already running server, or None to start one on a free loopback port.
        registry: Registry root for the started server (default: this checkout's registry).
        model: Model reference for the started server.
        overrides: ``--set KEY=VALUE`` items for the started server.
        timeout: Seconds to wait for ``/readyz``.
        checkout: Serve another checkout's code (its directory first on the import path).
        env: Extra environment for the started server (e.g. its own ``BENTOML_HOME``: every
            ``bentoml serve`` empties ``$BENTOML_HOME/prometheus_multiproc_dir`` as it starts, which
            wipes the ``/metrics`` of any other server sharing it).
    """
    import httpx

    if url:
        yield url.rstrip("/")
        return
    port = free_port()
    command = [sys.executable, "-m", "callintent", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--registry", str(Path(registry or os.environ.get("CALLINTENT_REGISTRY")
                                   or REPO / "models" / "registry").resolve())]
    if model:
        command += ["--model", model]
    for item in overrides:
        command += ["--set", item]
    log = open(os.devnull, "wb")  # noqa: SIM115 (closed below)
    code = Path(checkout).resolve() if checkout else REPO
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH", "")])),
           **(env or {})}
    process = subprocess.Popen(command, cwd=code, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the server exited with {process.returncode}: run `{shlex.join(command)}` to see why")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/readyz", timeout=1.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"the server was not ready after {timeout:.0f} s")
            time.sleep(0.25)
        yield base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()




def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# ---------------------------------------------------------------------------------------------
# The measurement


@dataclass(frozen=True)
class Run:
    """One throughput run.

    Attributes:
        concurrency: Requests in flight.
        requests: Requests completed.
        seconds: Wall time.
        p50_ms: Median client latency.
        p95_ms: 95th percentile client latency.
        mean_batch: Mean ``batch_size`` the server reported.
        max_batch: Largest ``batch_size``.
        shed: Requests answered 503 ``overloaded`` (not counted in ``requests``).
        mean_ms: Mean client latency.
        model_ms: Mean model time the server reported (``timings_ms.model``).
    """

    concurrency: int
    requests: int
    seconds: float
    p50_ms: float
    p95_ms: float
    mean_batch: float
    max_batch: int
    shed: int = 0
    mean_ms: float = float("nan")
    model_ms: float = float("nan")

    @property
    def beyond_model_ms(self) -> float:
        """Client latency the model does not explain: HTTP, validation, batching, decision, logging."""
        return self.mean_ms - self.model_ms

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def load_texts(limit: int = 2000) -> list[str]:
    if REAL_TEXT.exists():
        texts = []
        with REAL_TEXT.open(encoding="utf-8") as f:
            for line in f:
                texts.append(json.loads(line)["transcript"])
                if len(texts) >= limit:
                    break
        if texts:
            return texts
    return list(FALLBACK_TEXTS)


async def measure(url: str, texts: Sequence[str], *, requests: int, concurrency: int,
                  api_key: str | None = None) -> Run:
    """Send ``requests`` scoring requests with ``concurrency`` in flight."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    latencies: list[float] = []
    batches: list[int] = []
    model_ms: list[float] = []
    shed: list[int] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            response = await client.post("/score", json={"transcript": texts[i % len(texts)]})
            latencies.append((time.perf_counter() - started) * 1000.0)
            if response.status_code == 503:  # shed by the batcher (batching.max_latency_ms)
                shed.append(i)
                continue
            response.raise_for_status()
            result = response.json()
            batches.append(int(result.get("batch_size", 1)))
            model_ms.append(float(result.get("timings_ms", {}).get("model", float("nan"))))

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120, limits=limits) as client:
        await asyncio.gather(*(client.post("/score", json={"transcript": t}) for t in texts[:concurrency]))  # warm-up
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return Run(concurrency, len(batches), seconds, statistics.median(latencies), percentile(latencies, 95),
               statistics.fmean(batches), max(batches), len(shed), statistics.fmean(latencies),
               statistics.fmean(model_ms))


def merged(runs: Sequence[Run]) -> Run:
    """Rounds of one kind of run as one run (means weighted by requests; medians of the rounds)."""
    n = sum(r.requests for r in runs)
    return Run(runs[0].concurrency, n, sum(r.seconds for r in runs), statistics.median(r.p50_ms for r in runs),
               max(r.p95_ms for r in runs), sum(r.mean_batch * r.requests for r in runs) / n,
               max(r.max_batch for r in runs), sum(r.shed for r in runs),
               sum(r.mean_ms * r.requests for r in runs) / n, sum(r.model_ms * r.requests for r in runs) / n)


def compared(this: Run, baseline: Run, baseline_name: str) -> str:
    """The "beyond the model" table of a ``--baseline`` run."""
    rows = "\n".join(f"| {name} | {r.requests} | {r.mean_ms:.2f} | {r.model_ms:.2f} | {r.beyond_model_ms:.2f} |"
                     for name, r in ((f"baseline `{baseline_name}`", baseline), ("this checkout", this)))
    return ("\nSequential `/score`, server time beyond the model (rounds alternate between the two servers):\n\n"
            "| code | requests | mean ms | model ms | beyond the model ms |\n|---|---|---|---|---|\n"
            f"{rows}\n")


def markdown(sequential: Run, batched: Run, *, model: str, command: str) -> str:
    ratio = batched.per_second / sequential.per_second
    verdict = "meets" if ratio >= TARGET_RATIO else "misses"
    rows = "\n".join(
        f"| {label} | {r.concurrency} | {r.requests} | {r.shed} | {r.per_second:.1f} | {r.p50_ms:.1f} | "
        f"{r.p95_ms:.1f} | {r.mean_batch:.1f} | {r.max_batch} |"
        for label, r in (("sequential", sequential), ("concurrent (batched)", batched)))
    return (f"### {dt.date.today().isoformat()} — {model}\n\n"
            f"Machine: {machine()}. Command: `{command}`\n\n"
            "| mode | in flight | answered | shed (503) | req/s | p50 ms | p95 ms | mean batch | max batch |\n"
            "|---|---|---|---|---|---|---|---|---|\n"
            f"{rows}\n\n"
            f"Batched / sequential throughput: **{ratio:.1f}×** ({verdict} the ≥ {TARGET_RATIO:g}× target). "
            f"Load average during the run: {os.getloadavg()[0]:.1f} (the client shares the machine).\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.score_throughput", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--url", default=None, help="a running server (default: start `callintent serve` here)")
    parser.add_argument("--registry", default=None, help="registry root for the started server")
    parser.add_argument("--model", default=None, help="model reference for the started server (default production)")
    parser.add_argument("--requests", type=int, default=600, help="requests in the batched run (default %(default)s)")
    parser.add_argument("--sequential-requests", type=int, default=150, help="requests one at a time (default %(default)s)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight when batched (default %(default)s)")
    parser.add_argument("--api-key", default=os.environ.get("CALLINTENT_API_KEY"), help="API key, if the server needs one")
    parser.add_argument("--checkout", type=Path, default=None, metavar="DIR",
                        help="serve another checkout's code instead of this one's")
    parser.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                        help="also serve another checkout's code and compare the sequential time beyond the model")
    parser.add_argument("--rounds", type=int, default=5, help="alternating sequential rounds with --baseline "
                                                              "(default %(default)s)")
    parser.add_argument("--no-write", action="store_true", help="print only; don't append to BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.baseline is not None and args.url:
        parser.error("--baseline starts both servers itself; leave out --url")

    texts = load_texts()
    command = shlex.join(["python", "-m", "bench.score_throughput", *(argv if argv is not None else sys.argv[1:])])
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(running_server(args.url, registry=args.registry, model=args.model,
                                                 checkout=args.checkout))
        base = None if args.baseline is None else stack.enter_context(
            running_server(None, registry=args.registry, model=args.model, checkout=args.baseline))
        import httpx

        headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        model = httpx.post(f"{url}/score", json={"transcript": texts[0]}, headers=headers, timeout=60).json()["model"]
        if base is None:
            sequential = asyncio.run(measure(url, texts, requests=args.sequential_requests, concurrency=1,
                                             api_key=args.api_key))
        else:
            per_round = max(1, args.sequential_requests // args.rounds)
            rounds: dict[str, list[Run]] = {"this": [], "base": []}
            for _ in range(args.rounds):
                for name, server in (("base", base), ("this", url)):
                    rounds[name].append(asyncio.run(measure(server, texts, requests=per_round, concurrency=1,
                                                            api_key=args.api_key)))
            sequential, baseline = merged(rounds["this"]), merged(rounds["base"])
        batched = asyncio.run(measure(url, texts, requests=args.requests, concurrency=args.concurrency,
                                      api_key=args.api_key))
    entry = markdown(sequential, batched, model=model, command=command)
    if base is not None:
        entry += compared(sequential, baseline, str(args.baseline))
    publish(HEADING, entry, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
