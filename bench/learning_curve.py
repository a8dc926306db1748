"""Few-label learning curve: adapting a trained model vs training from the bundled encoder, on k rows per class.

A held-out real source plays the customer: its train rows are the labeled pool, its test rows the
score. For each seed and each k, k rows per class are drawn from the pool (seeded; the k=8 rows
are inside the k=16 rows and so on, so the curve shows more labels, not other labels), a seeded
25 % of them is held out for validation (``training/configs/adapt.yaml``: ``data.val_fraction``),
and two runs train on the same rows:

(a) **adapt**: ``init_from`` the given base model (a registry reference or run directory, trained
    without this source) with the ``adapt.yaml`` recipe: learning rate 3e-5, replay of the base's
    own training data (as many replay rows as customer training rows, the same number per class;
    validation gets replay rows in the same proportion);
(b) **fresh**: fresh heads on the bundled MiniLM (``base_model: ""``), learning rate 8e-5 (the
    default training config's), no replay; everything else the same.

Both runs take about ``--steps`` optimizer steps (whole epochs: ``ceil(steps / steps_per_epoch)``,
at least 3 and at most ``--max-epochs``), pick the best epoch on validation macro-F1, calibrate on
validation, and are scored on the source's test rows (macro-F1, ECE after calibration). The base
model's own score before adaptation (k = 0) is the first row. Appends a dated entry under
"## Few-label adaptation: learning curve" in BENCHMARKS.md.

    python -m bench.learning_curve --base runs/no-clinc                 # the full curve: k 8 16 32 64, 3 seeds
    python -m bench.learning_curve --base intent/v7 --k 8 --seeds 0 --steps 4 --max-epochs 1 --no-write   # smoke run
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.benchmarks_file import BENCHMARKS, REPO, append_section, cpu_model

HEADING = "## Few-label adaptation: learning curve"
CLINC_PATH = REPO.parent / "shared" / "data" / "clinc_openings.jsonl"
#: The fresh arm's learning rate: the default training config's (fresh heads need the larger step).
FRESH_LEARNING_RATE = 8e-5

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunScore:
    """One training run of the curve.

    Attributes:
        arm: ``adapt`` or ``fresh``.
        k: Labeled rows per class drawn from the pool.
        seed: Seed of the draw, the split and the training.
        macro_f1: Macro-F1 on the source's test rows, over the classes the source holds (as
            ``bench/cross_source.py`` counts it: a call sent to another class still costs its
            own class's recall).
        macro_f1_strict: Over the classes in labels or predictions (the QA report's): a model that
            knows noise pays an F1 of 0 for every class the source lacks that it ever predicts.
        ece: Expected calibration error on those rows (after the run's temperature).
        steps: Optimizer steps the run was given (epochs x steps per epoch).
        train_rows: Rows in its train split (customer + replay).
        seconds: Wall time of the run.
    """

    arm: str
    k: int
    seed: int
    macro_f1: float
    macro_f1_strict: float
    ece: float
    steps: int
    train_rows: int
    seconds: float


def draw_pool(rows: Sequence[dict[str, Any]], k: int, seed: int) -> list[dict[str, Any]]:
    """The first ``k`` rows per class of a seeded order of ``rows`` (nested in k for a fixed seed).

    Returns:
        The rows without their ``split`` (the run splits them itself).
    """
    import random

    by_class: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_class.setdefault(row["label"], []).append(row)
    picked = []
    for label in sorted(by_class):
        ordered = sorted(by_class[label], key=lambda r: r["call_id"])
        random.Random(f"{seed}-{label}").shuffle(ordered)
        picked += [{key: value for key, value in row.items() if key != "split"} for row in ordered[:k]]
    return picked


def customer_splits(rows: list[dict[str, Any]], seed: int, val_fraction: float, work: Path) -> Any:
    """Split the drawn rows into train and validation the way a customer's file would be split."""
    from data.dataset import DataConfig, load_labeled, write_jsonl

    path = write_jsonl(rows, work / f"pool-{seed}-{len(rows)}.jsonl")
    return load_labeled([str(path)], DataConfig(val_fraction=val_fraction, test_fraction=0.0, seed=seed))


def epochs_for(steps: int, train_rows: int, batch_size: int, max_epochs: int) -> int:
    """Whole epochs that give about ``steps`` optimizer steps (at least 3, at most ``max_epochs``)."""
    per_epoch = math.ceil(train_rows / batch_size)
    return max(1, min(max_epochs, max(3, math.ceil(steps / per_epoch))))


def run_arm(arm: str, base: str, dsd: Any, k: int, seed: int, args: argparse.Namespace, work: Path) -> RunScore:
    """Train one arm on ``dsd`` and score it on its test split."""
    from datasets import DatasetDict

    from callintent.config import load_config
    from training.adapt_cli import ADAPT_CONFIG
    from training.config import TrainConfig
    from training.train import train

    customer_train = len(dsd["train"])
    train_rows = customer_train * (2 if arm == "adapt" else 1)  # adapt: 1:1 replay
    out = work / f"{arm}-k{k}-s{seed}"
    common = {"output_dir": str(out), "seed": seed, "data.seed": seed, "device": args.device,
              "max_length": args.max_length}
    probe = load_config(ADAPT_CONFIG, TrainConfig, {**common, "init_from": "", "replay_rows": 0})
    epochs = epochs_for(args.steps, train_rows, probe.batch_size, args.max_epochs)
    if arm == "adapt":
        overrides = {**common, "init_from": base, "replay_rows": customer_train, "epochs": epochs,
                     "replay_files": list(args.replay_files)}
    else:
        overrides = {**common, "init_from": "", "replay_rows": 0, "epochs": epochs,
                     "learning_rate": FRESH_LEARNING_RATE}
    config = load_config(ADAPT_CONFIG, TrainConfig, overrides)
    started = time.perf_counter()
    result = train(config, DatasetDict(dsd))
    seconds = time.perf_counter() - started
    shutil.rmtree(out, ignore_errors=True)  # ~90 MB of weights per run; the score is all the curve needs
    score = RunScore(arm, k, seed, source_macro_f1(result.test, dsd["test"]["label"]),
                     float(result.test["macro_f1"]), float(result.test["ece"]),
                     epochs * math.ceil(result.split_sizes["train"] / config.batch_size),
                     result.split_sizes["train"], round(seconds, 1))
    print(f"{arm:5s} k={k:3d} seed={seed}: macro-F1 {score.macro_f1:.3f} (strict {score.macro_f1_strict:.3f}), "
          f"ECE {score.ece:.3f} "
          f"({score.steps} steps on {score.train_rows} rows, {seconds:.0f}s)", flush=True)
    return score


def source_macro_f1(metrics: dict[str, float], labels: Sequence[str]) -> float:
    """Mean F1 over the classes present in ``labels`` (``metrics`` has ``f1.<class>`` for every class)."""
    present = sorted(set(labels))
    return float(statistics.fmean(metrics[f"f1.{c}"] for c in present))


def base_score(base: str, test: Any, max_length: int) -> tuple[float, str]:
    """Macro-F1 of the base model itself on the test rows (k = 0), and what ``base`` resolved to."""
    import numpy as np
    import torch

    from models.calibration import softmax
    from training.adapt import find_init_source
    from training.metrics import split_metrics
    from training.model import IntentModel

    source = find_init_source(base)
    model = IntentModel.from_pretrained(source.weights_dir)
    texts = list(test["transcript"])
    logits = []
    with torch.no_grad():
        for start in range(0, len(texts), 64):
            enc = model.tokenizer(texts[start:start + 64], padding=True, truncation=True, max_length=max_length,
                                  return_tensors="pt", return_token_type_ids=False)
            logits.append(model(enc["input_ids"], enc["attention_mask"]).class_logits.numpy())
    n_signals = len(model.intent_config.signals)
    metrics = split_metrics(np.asarray(test["label_id"]), softmax(np.concatenate(logits)),
                            np.zeros((len(texts), n_signals)), np.zeros((len(texts), n_signals)),
                            np.zeros(len(texts)))
    return source_macro_f1(metrics, test["label"]), source.version or str(source.path)


def summary(values: Sequence[float]) -> str:
    """``mean ± sd (min–max)`` over seeds (sd with n-1; a single seed has none)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.3f}"
    return f"{mean:.3f} ± {statistics.stdev(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def markdown(scores: Sequence[RunScore], base: str, resolved: str, k0: float, data: Path, n_test: int,
             args: argparse.Namespace, seconds: float, command: str) -> str:
    """The BENCHMARKS.md entry."""
    import torch

    device = (torch.cuda.get_device_name(0) if torch.cuda.is_available() and args.device != "cpu"
              else f"CPU only, {torch.get_num_threads()} torch threads")
    lines = [
        f"### {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} — {data.name}, base `{base}`",
        "",
        f"Machine: {os.cpu_count()} cores ({cpu_model()}), {device}, Python {platform.python_version()}. "
        f"Command: `{command}` ({seconds / 60:.1f} min).",
        f"Customer: {data.name}; pool = its train rows, score = its {n_test} test rows. Base: `{base}` "
        f"(→ `{resolved}`). k rows per class drawn per seed (nested in k), 25 % of them (seeded, stratified) "
        f"held out for validation. **adapt**: `init_from` the base, `training/configs/adapt.yaml` (lr 3e-5, "
        f"batch 16), replay rows = customer train rows (same number per class) from the base's training data, "
        f"validation + replay in the same proportion. **fresh**: bundled MiniLM with fresh heads, lr "
        f"{FRESH_LEARNING_RATE:g}, no replay. Both: ~{args.steps} steps in whole epochs (at least 3, at most "
        f"{args.max_epochs} epochs; the steps column says what each run got), "
        f"max_length {args.max_length}, best epoch on validation macro-F1, temperature fitted on validation.",
        "",
        "| k per class | adapt macro-F1 | fresh macro-F1 | adapt strict | fresh strict | adapt ECE | fresh ECE "
        "| steps adapt / fresh |",
        "|---|---|---|---|---|---|---|---|",
        f"| 0 (base as is) | {k0:.3f} | — | — | — | — | — | — |",
    ]
    for k in sorted({s.k for s in scores}):
        arm = {name: [s for s in scores if s.k == k and s.arm == name] for name in ("adapt", "fresh")}
        cell = {name: summary([s.macro_f1 for s in runs]) if runs else "—" for name, runs in arm.items()}
        strict = {name: f"{statistics.fmean(s.macro_f1_strict for s in runs):.3f}" if runs else "—"
                  for name, runs in arm.items()}
        ece = {name: f"{statistics.fmean(s.ece for s in runs):.3f}" if runs else "—" for name, runs in arm.items()}
        steps = " / ".join(str(runs[0].steps) if runs else "—" for runs in arm.values())
        lines.append(f"| {k} | {cell['adapt']} | {cell['fresh']} | {strict['adapt']} | {strict['fresh']} | "
                     f"{ece['adapt']} | {ece['fresh']} | {steps} |")
    seeds = sorted({s.seed for s in scores})
    lines += ["", f"Mean ± sample sd (min–max) over seeds {', '.join(map(str, seeds))}; macro-F1 over the source's "
              "classes; strict (over the classes in labels or predictions, the QA report's) and ECE are means.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.learning_curve",
                                     description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, metavar="REF",
                        help="model to adapt: registry reference (intent/v7) or training run directory, "
                             "trained WITHOUT the --data source")
    parser.add_argument("--data", type=Path, default=CLINC_PATH, metavar="FILE",
                        help=f"held-out real source with train and test rows (default: {CLINC_PATH})")
    parser.add_argument("--k", type=int, nargs="+", default=[8, 16, 32, 64], help="rows per class (8 16 32 64)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (0 1 2)")
    parser.add_argument("--steps", type=int, default=60,
                        help="optimizer steps per run, rounded to whole epochs (default 60)")
    parser.add_argument("--max-epochs", type=int, default=15, help="epoch cap for the smallest k (default 15)")
    parser.add_argument("--max-length", type=int, default=64,
                        help="token budget (default 64: the source's rows are one short sentence)")
    parser.add_argument("--replay-files", nargs="*", default=[], metavar="FILE",
                        help="replay from these files (default: what the base was trained on, from its config)")
    parser.add_argument("--arms", nargs="+", choices=("adapt", "fresh"), default=["adapt", "fresh"])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--work-dir", type=Path, default=None, help="where runs go (default: a temporary folder)")
    parser.add_argument("--no-write", action="store_true", help="print only; don't append to BENCHMARKS.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TQDM_DISABLE", "1")  # no per-step progress bars from the Trainer

    from callintent.config import load_config
    from data.dataset import DataConfig, load_labeled
    from training.adapt_cli import ADAPT_CONFIG
    from training.config import TrainConfig

    if not args.data.is_file():
        print(f"{args.data}: data file not found (--data)", file=sys.stderr)
        return 2
    val_fraction = load_config(ADAPT_CONFIG, TrainConfig).data.val_fraction
    started = time.perf_counter()
    source = load_labeled([str(args.data)], DataConfig())  # validates the file; its test split is the score
    test = source["test"]
    # The pool as the file has it (a customer's labeled file), restricted to the rows load_labeled put in train.
    train_ids = set(source["train"]["call_id"])
    pool = [row for row in map(json.loads, args.data.read_text(encoding="utf-8").splitlines())
            if row.get("call_id") in train_ids]
    k0, resolved = base_score(args.base, test, args.max_length)
    print(f"base {args.base} ({resolved}) on {len(test)} test rows: macro-F1 {k0:.3f}", flush=True)

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="learning-curve-"))
    work.mkdir(parents=True, exist_ok=True)
    scores: list[RunScore] = []
    for seed in args.seeds:
        for k in args.k:
            customer = customer_splits(draw_pool(pool, k, seed), seed, val_fraction, work)
            dsd = {"train": customer["train"], "validation": customer["validation"], "test": test}
            for arm in args.arms:
                scores.append(run_arm(arm, args.base, dsd, k, seed, args, work))
    seconds = time.perf_counter() - started
    given = list(argv) if argv is not None else sys.argv[1:]
    entry = markdown(scores, args.base, resolved, k0, args.data, len(test), args, seconds,
                     shlex.join(["python", "-m", "bench.learning_curve", *given]))
    print(entry)
    if not args.no_write:
        append_section(HEADING, entry)
        print(f"appended to {BENCHMARKS}")
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
