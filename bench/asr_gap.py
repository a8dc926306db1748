"""The audio-to-text gap as a benchmark: clean text vs one-shot ASR vs live-streamed ASR, per data file.

A thin wrapper over :func:`evaluation.robustness.robustness_check` (the path behind
``callintent evaluate --robustness``): a class-balanced sample of each file's evaluation split is
rendered as phone calls (``data.render`` defaults: voices and the telephone channel), transcribed
once and streamed through the live path, and scored three ways. Appends a dated entry under
"## Audio-to-text gap" in BENCHMARKS.md.

    python -m bench.asr_gap --registry models/registry --model production --n 100 \\
        --data data/generated/corpus.jsonl --data data/real/clinc_openings.jsonl
    python -m bench.asr_gap --model-dir runs/x/export --data calls.jsonl --n 20 --no-write

``--renders`` scores files that ``callintent data render-asr`` already wrote (text vs one-shot ASR
only, no streaming): several models compared on the very same audio and transcripts, in seconds.

    python -m bench.asr_gap --model-dir runs/old/export --renders test_asr.jsonl --no-write
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bench.benchmarks_file import machine, publish

if TYPE_CHECKING:
    from evaluation.robustness import ColumnScores, RobustnessResult
    from models.predictor import IntentPredictor

HEADING = "## Audio-to-text gap"


def markdown(results: Sequence[tuple[str, RobustnessResult]], *, model: str, command: str) -> str:
    """The dated BENCHMARKS.md entry: one row per data file."""
    def f(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = []
    for name, r in results:
        clean, oneshot, streamed = (r.column(c) for c in ("clean", "oneshot", "streamed"))
        d = r.decisions
        median = r.median_buying_early_seconds
        lines.append(
            f"| {name} | {r.n} | {f(r.wer_oneshot)} | {f(r.wer_streamed)} | {clean.macro_f1:.3f} | "
            f"{oneshot.macro_f1:.3f} | {streamed.macro_f1:.3f} | **{clean.macro_f1 - streamed.macro_f1:+.3f}** | "
            f"{clean.ece:.3f} / {oneshot.ece:.3f} / {streamed.ece:.3f} | {d.buying_early} of {d.buying_calls}"
            + (f", median {median:.1f} s" if median is not None else "") + " |")
    conditions = []
    for name, r in results:
        for factor in ("codec", "snr", "packet_loss", "voice"):
            parts = ", ".join(f"{c.value} {f(c.wer_oneshot)}/{f(c.wer_streamed)} ({c.calls})"
                              for c in r.conditions if c.factor == factor)
            conditions.append(f"| {name} | {factor} | {parts} |")
    return (f"### {dt.date.today().isoformat()} — {model}\n\n"
            f"Machine: {machine()}. Command: `{command}`\n\n"
            "| data | calls | WER one-shot | WER streamed | macro-F1 text | macro-F1 one-shot | macro-F1 streamed | "
            "drop text → streamed | ECE text / one-shot / streamed | buying calls decided early |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(lines) + "\n\n"
            "WER by condition (one-shot / streamed, calls):\n\n"
            "| data | condition | WER |\n|---|---|---|\n" + "\n".join(conditions) + "\n")


def renders_markdown(results: Sequence[tuple[str, int, float | None, ColumnScores, ColumnScores]], *,
                     model: str, command: str) -> str:
    """The dated BENCHMARKS.md entry of a ``--renders`` run: text vs one-shot ASR per render file."""
    rows = "\n".join(
        f"| {name} | {n} | {'n/a' if wer is None else f'{wer:.3f}'} | {text.macro_f1:.3f} | {asr.macro_f1:.3f} | "
        f"**{text.macro_f1 - asr.macro_f1:+.3f}** | {text.ece:.3f} / {asr.ece:.3f} |"
        for name, n, wer, text, asr in results)
    return (f"### {dt.date.today().isoformat()} — {model} (pre-rendered calls, one-shot ASR)\n\n"
            f"Machine: {machine()}. Command: `{command}`\n\n"
            "| renders | calls | WER | macro-F1 text | macro-F1 ASR | drop | ECE text / ASR |\n"
            "|---|---|---|---|---|---|---|\n" + rows + "\n")


def score_renders(predictor: IntentPredictor, path: Path) -> tuple[int, float | None, ColumnScores, ColumnScores]:
    """Text vs one-shot ASR of one ``render-asr`` output file: (calls, WER, text column, ASR column)."""
    from data.jsonl import read_objects
    from evaluation.metrics import word_error_rate
    from evaluation.robustness import score_column
    from models.labels import CLASS_NAMES

    rows = [row for _, _, row in read_objects([path], missing="render file")]
    rows = [r for r in rows if r.get("label") in CLASS_NAMES and r.get("reference_transcript")]
    if not rows:
        raise SystemExit(f"{path}: no labeled render-asr rows (label + reference_transcript + transcript)")
    labels = [CLASS_NAMES.index(r["label"]) for r in rows]
    clean = [r["reference_transcript"] for r in rows]
    heard = [r.get("transcript") or "" for r in rows]
    text = score_column("clean", labels, predictor.predict(clean, evidence=False))
    asr = score_column("oneshot", labels, predictor.predict(heard, evidence=False))
    return len(rows), word_error_rate(clean, heard), text, asr


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.asr_gap", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data", type=Path, action="append", default=[],
                        help="labeled .jsonl/.csv/.parquet (repeatable; each scored on its own)")
    parser.add_argument("--renders", type=Path, action="append", default=[],
                        help="'callintent data render-asr' output to score as is: text vs one-shot ASR "
                             "(repeatable; instead of --data)")
    parser.add_argument("--split", default="auto", help="split to sample (default auto: test when there is one)")
    parser.add_argument("--n", type=int, default=100, help="calls sampled per file (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="sample, voice and channel seed (default %(default)s)")
    parser.add_argument("--voices", nargs="+", default=["natural"],
                        help="render voices: natural (default), espeak, or names (data/voices.py)")
    parser.add_argument("--asr-cache", default=".cache/asr", help="one-shot ASR cache (default %(default)s)")
    parser.add_argument("--registry", default=None, help="registry root (with --model)")
    parser.add_argument("--model", default="production", help="registry reference (default %(default)s)")
    parser.add_argument("--model-dir", type=Path, default=None, help="an exported model directory instead")
    parser.add_argument("--variant", default="int8", choices=("int8", "fp32"), help="ONNX graph (default %(default)s)")
    parser.add_argument("--policy", default=None, help="decision policy YAML (default serving/configs/policy.yaml)")
    parser.add_argument("--label", default=None, help="name for the entry (default: the model id)")
    parser.add_argument("--no-write", action="store_true", help="print only; don't append to BENCHMARKS.md")
    args = parser.parse_args(argv)
    if bool(args.data) == bool(args.renders):
        parser.error("give --data (render and stream now) or --renders (score pre-rendered calls), not both")

    from evaluation.evalset import load_eval_set
    from evaluation.robustness import RobustnessConfig, robustness_check, summary_lines
    from models.predictor import IntentPredictor
    from models.registry import Registry
    from serving.policy import DecisionPolicy

    model_dir = args.model_dir or Registry(args.registry).resolve(args.model)
    predictor = IntentPredictor.load(model_dir, variant=args.variant)
    policy = DecisionPolicy.from_yaml(args.policy, model_abstain_margin=predictor.meta.abstain_margin)
    command = shlex.join(["python", "-m", "bench.asr_gap", *(argv if argv is not None else sys.argv[1:])])
    label = args.label or predictor.model_id
    if args.renders:
        scored = [(path.name, *score_renders(predictor, path)) for path in args.renders]
        publish(HEADING, renders_markdown(scored, model=label, command=command), write=not args.no_write)
        return 0
    config = RobustnessConfig(n=args.n, seed=args.seed, cache_dir=args.asr_cache, voices=tuple(args.voices))
    results = []
    for path in args.data:
        result = robustness_check(predictor, load_eval_set([path], split=args.split), policy, config)
        print("\n".join([f"{path.name}:", *summary_lines(result)]))
        results.append((path.name, result))
    publish(HEADING, markdown(results, model=label, command=command),
            write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
