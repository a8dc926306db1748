"""Live-call latency: update latency, time to decision, and how many real-time calls one server holds.

Plays the same recording as N concurrent real-time calls over ``/v1/stream`` (16 kHz PCM16,
20 ms frames, paced by the wall clock like a phone line) and measures, per ``partial`` event:

* **client update latency**: receive time − the wall time the newest audio in the partial was
  sent (what a listener waits after the words are spoken);
* **server update latency**: the event's ``latency_ms`` (frame arrival → partial produced);
* whether the server fell behind (``lagging``) and by how much (``lag_seconds``);

and per call the **time to decision** (audio seconds heard when the ``decision`` event came, and
its wall time). With ``--find-max`` it doubles N until the p95 client latency passes 1 s or a
decode lags, and reports the most concurrent real-time calls held with lag < 1 s.
Appends a dated entry under "## Live stream latency" in BENCHMARKS.md.

    python -m bench.stream_latency                               # starts `callintent serve`
    python -m bench.stream_latency --calls 1,2,4 --find-max --max-calls 32
    python -m bench.stream_latency --url http://127.0.0.1:3000 --audio call.wav --seconds 20 --no-write
    python -m bench.stream_latency --checkout ../before          # the same, served by another checkout's code
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.benchmarks_file import machine, publish
from bench.score_throughput import percentile, running_server

HEADING = "## Live stream latency"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_AUDIO = REPO.parent / "shared" / "audio" / "OSR_us_000_0034_8k.wav"
#: A call is "held in real time" while its p95 client update latency stays under this.
REAL_TIME_BOUND_MS = 1000.0


@dataclass
class CallResult:
    """What one call observed."""

    client_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    lag_s: list[float] = field(default_factory=list)
    lagging: int = 0
    decision_audio_s: float | None = None
    decision_wall_s: float | None = None
    route: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Level:
    """N concurrent calls, aggregated."""

    calls: int
    partials: int
    client_p50: float
    client_p95: float
    server_p50: float
    server_p95: float
    max_lag_s: float
    lagging: int
    decision_audio_s: float | None
    decision_wall_s: float | None
    errors: int

    @property
    def real_time(self) -> bool:
        return self.errors == 0 and self.lagging == 0 and self.client_p95 < REAL_TIME_BOUND_MS


async def one_call(url: str, frames: Sequence[bytes], *, index: int, frame_s: float,
                   api_key: str | None) -> CallResult:
    """Stream ``frames`` in real time as one call; collect its timings."""
    import websockets

    result = CallResult()
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    ws_url = url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/v1/stream"
    try:
        async with websockets.connect(ws_url, additional_headers=headers, max_size=2 ** 22) as ws:
            await ws.send(json.dumps({"type": "start", "call_id": f"bench-{index}", "encoding": "pcm16",
                                      "sample_rate": 16000, "metadata": {"source": "bench"}}))
            started = json.loads(await ws.recv())
            if started.get("type") != "started":
                result.error = json.dumps(started.get("error", started))
                return result
            t0 = time.monotonic()

            async def send() -> None:
                for i, frame in enumerate(frames):
                    delay = t0 + (i + 1) * frame_s - time.monotonic()  # frame i holds audio up to (i+1)*frame_s
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await ws.send(frame)
                await ws.send(json.dumps({"type": "stop"}))

            sender = asyncio.create_task(send())
            async for message in ws:
                now = time.monotonic()
                event = json.loads(message)
                if event["type"] == "partial":
                    result.client_ms.append((now - (t0 + event["audio_seconds"])) * 1000.0)
                    result.server_ms.append(event["latency_ms"])
                    result.lag_s.append(event.get("lag_seconds", 0.0))
                    result.lagging += bool(event.get("lagging"))
                elif event["type"] == "decision":
                    result.decision_audio_s = event["audio_seconds"]
                    result.decision_wall_s = now - t0
                    result.route = event["decision"]["route"]
                elif event["type"] == "error":
                    result.error = event["error"]["code"]
            await sender
    except (OSError, websockets.exceptions.WebSocketException) as e:
        result.error = f"{type(e).__name__}: {e}"
    return result


async def level(url: str, frames: Sequence[bytes], calls: int, *, frame_s: float, api_key: str | None) -> Level:
    results = await asyncio.gather(*(one_call(url, frames, index=i, frame_s=frame_s, api_key=api_key)
                                     for i in range(calls)))
    client = [x for r in results for x in r.client_ms]
    server = [x for r in results for x in r.server_ms]
    decisions_audio = [r.decision_audio_s for r in results if r.decision_audio_s is not None]
    decisions_wall = [r.decision_wall_s for r in results if r.decision_wall_s is not None]
    return Level(
        calls=calls, partials=len(client),
        client_p50=statistics.median(client) if client else float("nan"), client_p95=percentile(client, 95),
        server_p50=statistics.median(server) if server else float("nan"), server_p95=percentile(server, 95),
        max_lag_s=max((x for r in results for x in r.lag_s), default=0.0),
        lagging=sum(r.lagging for r in results),
        decision_audio_s=statistics.fmean(decisions_audio) if decisions_audio else None,
        decision_wall_s=statistics.fmean(decisions_wall) if decisions_wall else None,
        errors=sum(r.error is not None for r in results),
    )


def load_frames(path: Path, seconds: float, frame_ms: int) -> list[bytes]:
    import numpy as np

    from speech.audio import SAMPLE_RATE, decode_audio

    audio = decode_audio(path, max_seconds=seconds)
    data = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    step = SAMPLE_RATE * frame_ms // 1000 * 2
    return [data[i:i + step] for i in range(0, len(data), step)]


def markdown(levels: Sequence[Level], *, audio: str, seconds: float, model: str, command: str,
             max_real_time: int | None) -> str:
    def fmt(value: float | None, digits: int = 0) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    rows = "\n".join(
        f"| {lv.calls} | {lv.partials} | {fmt(lv.client_p50)} | {fmt(lv.client_p95)} | {fmt(lv.server_p50)} | "
        f"{fmt(lv.server_p95)} | {lv.max_lag_s:.2f} | {lv.lagging} | {fmt(lv.decision_audio_s, 1)} | "
        f"{fmt(lv.decision_wall_s, 1)} | {lv.errors} | {'yes' if lv.real_time else 'no'} |" for lv in levels)
    held = "" if max_real_time is None else \
        f"\nMost concurrent real-time calls held with p95 update latency < 1 s and no lag skips: **{max_real_time}**.\n"
    return (f"### {dt.date.today().isoformat()} — {model}\n\n"
            f"Machine: {machine()}. Audio: {audio} (first {seconds:g} s, 20 ms PCM16 frames in real time). "
            f"Command: `{command}`\n\n"
            "| calls | partials | client p50 ms | client p95 ms | server p50 ms | server p95 ms | max lag s | "
            "lag skips | decision at audio s | decision wall s | errors | real time |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
            f"{rows}\n{held}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stream_latency", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--url", default=None, help="a running server (default: start `callintent serve` here)")
    parser.add_argument("--registry", default=None, help="registry root for the started server")
    parser.add_argument("--model", default=None, help="model reference for the started server (default production)")
    parser.add_argument("--audio", type=Path, default=DEFAULT_AUDIO, help="recording to play (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=20.0, help="play the first N seconds (default %(default)s)")
    parser.add_argument("--calls", default="1,4", help="comma-separated concurrent call counts (default %(default)s)")
    parser.add_argument("--find-max", action="store_true", help="double the calls until real time is lost")
    parser.add_argument("--max-calls", type=int, default=32, help="upper bound for --find-max (default %(default)s)")
    parser.add_argument("--frame-ms", type=int, default=20, help="audio per message (default %(default)s)")
    parser.add_argument("--api-key", default=os.environ.get("CALLINTENT_API_KEY"), help="API key, if required")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for the started server, e.g. decode_workers=1 (repeatable)")
    parser.add_argument("--checkout", type=Path, default=None, metavar="DIR",
                        help="serve another checkout's code (e.g. the commit before a change, to compare)")
    parser.add_argument("--no-write", action="store_true", help="print only; don't append to BENCHMARKS.md")
    args = parser.parse_args(argv)

    counts = sorted({int(c) for c in args.calls.split(",") if c.strip()})
    frames = load_frames(args.audio, args.seconds, args.frame_ms)
    frame_s = args.frame_ms / 1000.0
    overrides = [f"limits.max_live_sessions={max(args.max_calls, *counts)}", "limits.idle_timeout_seconds=60", *args.set]
    levels: list[Level] = []
    max_real_time: int | None = None
    with running_server(args.url, registry=args.registry, model=args.model, overrides=overrides,
                        checkout=args.checkout) as url:
        import httpx

        headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        model = httpx.post(f"{url}/score", json={"transcript": "hello"}, headers=headers, timeout=60).json()["model"]
        for n in counts:
            levels.append(asyncio.run(level(url, frames, n, frame_s=frame_s, api_key=args.api_key)))
            print(levels[-1], flush=True)
        if args.find_max:
            held = [lv.calls for lv in levels if lv.real_time]
            n = max(held, default=0) * 2 or 1
            while n <= args.max_calls:
                lv = asyncio.run(level(url, frames, n, frame_s=frame_s, api_key=args.api_key))
                levels.append(lv)
                print(lv, flush=True)
                if not lv.real_time:
                    break
                held.append(n)
                n *= 2
            max_real_time = max(held, default=0)
    command = shlex.join(["python", "-m", "bench.stream_latency", *(argv if argv is not None else sys.argv[1:])])
    entry = markdown(levels, audio=args.audio.name, seconds=args.seconds, model=model, command=command,
                     max_real_time=max_real_time)
    publish(HEADING, entry, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
