"""The audio-to-text gap: a model's macro-F1 and ECE on the labeled text of calls vs on what the ASR
heard of the same calls through a telephone channel (``callintent data render-asr`` output).

Each rendered row carries both texts (``reference_transcript``: the labeled opening; ``transcript``:
tiny.en on its 8 kHz telephone rendering), so both columns score exactly the same calls. The word
error rate of the renders is printed beside them. Appends a dated entry under "## Audio-to-text gap"
in BENCHMARKS.md.

    python -m bench.asr_gap --registry models/registry --model production \\
        --data data/generated/test_asr.jsonl --data data/generated/real_test_asr.jsonl
    python -m bench.asr_gap --model-dir runs/x/export --data rendered.jsonl --no-write
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.benchmarks_file import publish, word_error_rate
from bench.score_throughput import machine

HEADING = "## Audio-to-text gap"


@dataclass(frozen=True)
class Gap:
    """One rendered file scored both ways."""

    name: str
    n: int
    wer: float
    clean_f1: float
    asr_f1: float
    clean_ece: float
    asr_ece: float

    @property
    def drop(self) -> float:
        return self.clean_f1 - self.asr_f1


def measure(predictor: object, path: Path) -> Gap:
    """Score a rendered file's labeled text and its ASR text with ``predictor``."""
    from models.labels import CLASS_INDEX
    from models.metrics import accuracy_and_macro_f1, expected_calibration_error

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r.get("reference_transcript") and r.get("transcript")]
    if not rows:
        raise SystemExit(f"{path}: no rendered rows (need reference_transcript and transcript)")
    y = np.array([CLASS_INDEX[r["label"]] for r in rows])
    columns = {}
    for column in ("reference_transcript", "transcript"):
        probs, _ = predictor.predict_arrays([r[column] for r in rows])  # type: ignore[attr-defined]
        _, f1 = accuracy_and_macro_f1(y, probs.argmax(axis=1))
        columns[column] = (f1, expected_calibration_error(y, probs))
    wer = word_error_rate([r["reference_transcript"] for r in rows], [r["transcript"] for r in rows])
    (clean_f1, clean_ece), (asr_f1, asr_ece) = columns["reference_transcript"], columns["transcript"]
    return Gap(path.name, len(rows), float(wer), clean_f1, asr_f1, clean_ece, asr_ece)


def markdown(gaps: Sequence[Gap], *, model: str, command: str) -> str:
    rows = "\n".join(f"| {g.name} | {g.n} | {g.wer:.3f} | {g.clean_f1:.3f} | {g.asr_f1:.3f} | **{g.drop:+.3f}** | "
                     f"{g.clean_ece:.3f} | {g.asr_ece:.3f} |" for g in gaps)
    return (f"### {dt.date.today().isoformat()} — {model}\n\n"
            f"Machine: {machine()}. Command: `{command}`\n\n"
            "| renders | calls | WER | macro-F1 text | macro-F1 ASR | drop | ECE text | ECE ASR |\n"
            "|---|---|---|---|---|---|---|---|\n"
            f"{rows}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.asr_gap", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data", type=Path, action="append", required=True, help="render-asr output (repeatable)")
    parser.add_argument("--registry", default=None, help="registry root (with --model)")
    parser.add_argument("--model", default="production", help="registry reference (default %(default)s)")
    parser.add_argument("--model-dir", type=Path, default=None, help="an exported model directory instead")
    parser.add_argument("--variant", default="int8", choices=("int8", "fp32"), help="ONNX graph (default %(default)s)")
    parser.add_argument("--label", default=None, help="name for the entry (default: the model id)")
    parser.add_argument("--no-write", action="store_true", help="print only; don't append to BENCHMARKS.md")
    args = parser.parse_args(argv)

    from models.predictor import IntentPredictor
    from models.registry import Registry

    model_dir = args.model_dir or Registry(args.registry).resolve(args.model)
    predictor = IntentPredictor.load(model_dir, variant=args.variant)
    gaps = [measure(predictor, path) for path in args.data]
    command = shlex.join(["python", "-m", "bench.asr_gap", *(argv if argv is not None else sys.argv[1:])])
    publish(HEADING, markdown(gaps, model=args.label or predictor.model_id, command=command),
            write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
