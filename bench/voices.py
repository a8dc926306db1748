"""How much each render voice makes tiny.en mishear: WER per voice on real openings through a phone line.

Renders overstate ASR errors when the voice is espeak-ng's robot (tiny.en WER ~0.58 on espeak renders
of the corpus vs ~0.06 on real recordings). This bench speaks the same seeded sample of real
openings (``../shared/data``: SGD validation and CLINC test rows) in every voice of
:mod:`data.voices` that is installed — espeak-ng (its render voices, cycled over the sample) and
each natural voice — puts each clip through the same telephone channel (drawn per row, so every
voice meets the same line) and transcribes it with the serving ASR. It also times each synthesiser
alone (real-time factor: synthesis seconds per second of speech, one thread) and gives the WER of
the clean synthesised clip too (the voice alone, before the line). Appends a dated entry
under "## Render voices" in BENCHMARKS.md.

    nice -n 10 python -m bench.voices [--n 60] [--seed 0] [--voices natural espeak] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.benchmarks_file import REPO, publish, word_error_rate
from bench.score_throughput import machine

HEADING = "## Render voices"
REAL_DIR = REPO.parent / "shared" / "data"
#: Held-out splits only (the tests read SGD's train rows).
SOURCES = (("sgd_openings.jsonl", "validation"), ("clinc_openings.jsonl", "test"))


@dataclass(frozen=True)
class VoiceResult:
    """One voice over the sample."""

    voice: str
    sex: str
    accent: str
    n: int
    wer_clean: float
    wer: float
    rtf: float


def sample_rows(real_dir: Path, n: int, seed: int) -> list[dict]:
    """A seeded sample of ``n`` held-out real openings, half from each source."""
    rng = random.Random(seed)
    rows: list[dict] = []
    for k, (name, split) in enumerate(SOURCES):
        pool = [json.loads(line) for line in (real_dir / name).read_text(encoding="utf-8").splitlines() if line.strip()]
        pool = [r for r in pool if r.get("split") == split and r.get("transcript", "").strip()]
        take = n // len(SOURCES) + (1 if k < n % len(SOURCES) else 0)
        rows.extend(rng.sample(pool, min(take, len(pool))))
    return rows


def measure(name: str, rows: Sequence[dict], recognizer: object, seed: int, work: Path) -> VoiceResult:
    """WER through the phone line and the synthesiser's real-time factor for one voice group.

    ``name`` is a voice, or ``espeak`` for espeak-ng's render voices cycled over the rows.
    """
    from data.channel import ChannelConfig, draw_channel_plan
    from data.render import DEFAULT_VOICES, RenderPlan, Turn, Voice, render_call_audio
    from data.voices import describe, synthesize
    from speech.audio import decode_audio

    names = [DEFAULT_VOICES[i % len(DEFAULT_VOICES)] if name == "espeak" else name for i in range(len(rows))]
    synth_seconds = speech_seconds = 0.0
    for i, (row, voice) in enumerate(zip(rows, names, strict=True)):
        wav = work / f"synth{i}.wav"
        started = time.perf_counter()
        synthesize(voice, row["transcript"], wav)
        synth_seconds += time.perf_counter() - started
        speech_seconds += wav.stat().st_size / 2 / 22050  # 16-bit mono at SYNTH_RATE (44-byte header aside)
    clean = [recognizer.transcribe_timed(decode_audio(work / f"synth{i}.wav"))[0].text  # type: ignore[attr-defined]
             for i in range(len(rows))]
    hypotheses = []
    for i, (row, voice) in enumerate(zip(rows, names, strict=True)):
        one = Voice(voice, 175, 50)
        plan = RenderPlan(agent=one, caller=one, channel=draw_channel_plan(row["call_id"], seed, ChannelConfig()))
        line = render_call_audio((Turn(row["transcript"]),), work / f"line{i}.wav", plan)
        heard, _ = recognizer.transcribe_timed(decode_audio(line))  # type: ignore[attr-defined]
        hypotheses.append(heard.text)
    about = describe(name) if name != "espeak" else None
    return VoiceResult(voice=f"espeak-ng ({len(set(names))} render voices)" if about is None else name,
                       sex="mixed" if about is None else about.sex, accent="mixed" if about is None else about.accent,
                       n=len(rows), wer_clean=word_error_rate([r["transcript"] for r in rows], clean),
                       wer=word_error_rate([r["transcript"] for r in rows], hypotheses),
                       rtf=synth_seconds / max(speech_seconds, 1e-9))


def markdown(results: Sequence[VoiceResult], *, command: str, n: int) -> str:
    lines = "\n".join(f"| {r.voice} | {r.sex} | {r.accent} | {r.n} | {r.wer_clean:.3f} | **{r.wer:.3f}** | "
                      f"{r.rtf:.3f} |" for r in results)
    return (f"### {dt.date.today().isoformat()} — tiny.en on {n} real openings, phone channel\n\n"
            f"Machine: {machine()}. Command: `{command}`\n\n"
            "| voice | sex | accent | clips | WER clean | WER phone | synthesis RTF |\n|---|---|---|---|---|---|---|\n"
            f"{lines}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.voices", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, default=60, help="real openings in the sample (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="sample and channel seed (default %(default)s)")
    parser.add_argument("--voices", nargs="+", default=["espeak", "natural"],
                        help="espeak, natural, or voice names (default: %(default)s)")
    parser.add_argument("--real-dir", type=Path, default=REAL_DIR, help="the real-text sets (default: %(default)s)")
    parser.add_argument("--no-write", action="store_true", help="print only; don't append to BENCHMARKS.md")
    args = parser.parse_args(argv)

    from data.voices import available
    from speech.asr import AsrConfig, SpeechRecognizer

    groups: list[str] = []
    for item in args.voices:
        groups.extend(available() if item == "natural" else [item])
    rows = sample_rows(args.real_dir, args.n, args.seed)
    recognizer = SpeechRecognizer(AsrConfig(cpu_threads=1))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-voices-") as tmp:
        for name in dict.fromkeys(groups):
            results.append(measure(name, rows, recognizer, args.seed, Path(tmp)))
            print(results[-1], flush=True)
    command = shlex.join(["python", "-m", "bench.voices", *(argv if argv is not None else sys.argv[1:])])
    publish(HEADING, markdown(results, command=command, n=len(rows)), write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
