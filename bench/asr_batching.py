"""Live ASR batching: N calls' pending clips decoded one by one vs as one faster-whisper batch.

What makes one server hold several live calls on a small CPU (serving/asr_batcher.py): every open
call re-decodes its recent audio about once a second, and ``SpeechRecognizer.transcribe_many``
decodes all the waiting clips together. This times both ways on the same clips (8 s windows of
espeak-ng telephone speech and the shared recordings), with the serving ASR settings (tiny.en
int8, encoder window ≥ 10 s), and appends a dated entry under "## Live ASR batching".

    python -m bench.asr_batching                  # clips 1,2,4,6,8; 5 repeats; best of each
    python -m bench.asr_batching --sizes 1,4,8 --threads 2 --no-write
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.benchmarks_file import machine, publish

HEADING = "## Live ASR batching"
SHARED_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "audio"
SPEECH = ("Hi, I saw your ad on Facebook for the kitchen remodel special. How much would it cost to redo a small "
          "kitchen, and could somebody come out this week? Hello, yes, I'm calling about my bill. I was charged "
          "twice last month and I need somebody to fix that.")


def clips(n: int, seconds: float = 8.0) -> list[np.ndarray]:
    """``n`` different 8 s clips (espeak-ng 8 kHz μ-law speech, then the shared recordings)."""
    from speech.audio import decode_audio

    with tempfile.TemporaryDirectory() as tmp:
        wav, phone = Path(tmp) / "s.wav", Path(tmp) / "s8.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), SPEECH], check=True)
        subprocess.run(["sox", str(wav), "-r", "8000", "-e", "u-law", str(phone)], check=True)
        audio = np.concatenate([decode_audio(phone), decode_audio(SHARED_AUDIO / "jfk.flac"),
                                decode_audio(SHARED_AUDIO / "OSR_us_000_0034_8k.wav")])
    size, step = round(seconds * 16000), 3 * 16000
    return [audio[i * step:i * step + size] for i in range(n)]


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,2,4,6,8", help="clips per batch (default %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="CTranslate2 CPU threads (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per size, best kept (default %(default)s)")
    parser.add_argument("--no-write", action="store_true", help="print only; don't append to BENCHMARKS.md")
    args = parser.parse_args(argv)

    from speech.asr import AsrConfig, SpeechRecognizer

    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    recognizer = SpeechRecognizer(AsrConfig(encoder_min_seconds=10.0, cpu_threads=args.threads))
    pool = clips(max(sizes))
    recognizer.transcribe_many(pool[:2])  # warm up
    rows = []
    for n in sizes:
        batch = pool[:n]
        one_by_one = best_of(lambda: [recognizer.transcribe_many([c]) for c in batch], args.repeats)
        together = best_of(lambda: recognizer.transcribe_many(batch), args.repeats)
        rows.append((n, one_by_one, together))
        print(f"{n} clips: one by one {one_by_one * 1000:.0f} ms, batched {together * 1000:.0f} ms "
              f"({one_by_one / together:.2f}x)", flush=True)
    command = "python -m bench.asr_batching " + shlex.join(argv if argv is not None else sys.argv[1:])
    lines = [f"### {dt.date.today().isoformat()} — tiny.en int8, {args.threads} threads", "",
             f"Machine: {machine()}. Clips: 8 s of telephone speech each. Best of {args.repeats}. "
             f"Command: `{command.strip()}`", "",
             "| clips | one by one ms | batched ms | per clip batched ms | speed-up |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {a * 1000:.0f} | {b * 1000:.0f} | {b * 1000 / n:.0f} | {a / b:.2f}× |" for n, a, b in rows]
    publish(HEADING, "\n".join(lines) + "\n", write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
