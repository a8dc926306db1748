"""``callintent data synth``: write the built-in labeled corpus as JSONL."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_OUT = Path("data/generated/corpus.jsonl")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synth`` subcommand to ``callintent data``."""
    parser = subparsers.add_parser(
        "synth",
        help="generate the built-in labeled corpus (deterministic by seed)",
        description="Generate synthetic labeled call openings (labels, signals with spans, turns, word "
                    "timings) as JSONL. The same --n/--seed/--asr-noise always give the same file.",
    )
    parser.add_argument("--n", type=int, default=6000, help="number of calls (default 6000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output JSONL (default {DEFAULT_OUT})")
    parser.add_argument("--asr-noise", type=float, default=0.3, dest="asr_noise",
                        help="fraction of rows rendered as telephone-ASR text, 0..1 (default 0.3, "
                             "data.synth.DEFAULT_ASR_NOISE)")
    parser.add_argument("--stats", action="store_true",
                        help="also print counts per class, industry and scenario and words per opening")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(data_run=run)


def run(args: argparse.Namespace) -> int:
    """Generate, write, and print a one-line summary (plus ``--stats``)."""
    from data.synth import corpus_stats, generate_corpus, write_jsonl

    calls = generate_corpus(args.n, args.seed, asr_noise=args.asr_noise, progress=not args.no_progress)
    path = write_jsonl(calls, args.out)
    stats = corpus_stats(calls)
    classes = " ".join(f"{name}={count}" for name, count in stats["classes"].items())
    print(f"wrote {stats['n']} calls to {path} (seed {args.seed}, asr-noise {args.asr_noise:g}, "
          f"{len(stats['industries'])} industries, {stats['words']['mean']:.0f} words/opening on average): "
          f"{classes}")
    if args.stats:
        print(json.dumps(stats, indent=2))
    return 0
