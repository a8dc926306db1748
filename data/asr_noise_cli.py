"""``callintent data learn-asr-noise``: (clean, ASR) pairs of rendered openings -> a compact ASR-noise model (JSON)."""

from __future__ import annotations

import argparse

from callintent.errors import UserError

EPILOG = """\
examples:
  callintent data learn-asr-noise --in data/generated/train_asr.jsonl --out data/asr_noise.json
  callintent data learn-asr-noise --in corpus_asr.jsonl real_asr.jsonl --out noise.json --min-count 5

Input rows are 'callintent data render-asr' (or 'data transcribe') output: the labeled text in
reference_transcript, the ASR text in transcript. Train with it by setting asr_noise (the file)
and asr_noise_share (the share of training rows noised) in the training config."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``learn-asr-noise`` subcommand to ``callintent data``."""
    p = subparsers.add_parser(
        "learn-asr-noise", help="learn word substitution/deletion/insertion statistics from rendered ASR pairs",
        description=__doc__.split(":", 1)[1].strip(), epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--in", dest="inputs", nargs="+", required=True, metavar="RENDERED",
                   help="render-asr JSONL files (reference_transcript + transcript)")
    p.add_argument("--out", required=True, help="model JSON to write")
    p.add_argument("--min-count", type=int, default=3,
                   help="occurrences a word needs for its own statistics (default: %(default)s)")
    p.add_argument("--max-words", type=int, default=3000,
                   help="keep the statistics of at most this many words, the most frequent (default: %(default)s)")
    p.set_defaults(data_run=run)


def run(args: argparse.Namespace) -> int:
    """Learn and write the model; prints a one-line summary. Exit 1 when no pair was found."""
    from data.asr_noise import AsrNoiseModel, read_pairs

    if args.min_count < 1 or args.max_words < 1:
        raise UserError(f"--min-count and --max-words must be >= 1, got {args.min_count} and {args.max_words}")
    pairs = read_pairs(args.inputs)
    if not pairs:
        print(f"no (reference_transcript, transcript) pairs in {', '.join(args.inputs)}")
        return 1
    model = AsrNoiseModel.learn(pairs, min_count=args.min_count, max_words=args.max_words)
    out = model.save(args.out)
    print(f"{model.summary.line()}; {len(model.words)} words, {len(model.merges)} merges, "
          f"{len(model.inserted)} inserted words -> {out} ({out.stat().st_size / 1024:.0f} KB)")
    return 0
