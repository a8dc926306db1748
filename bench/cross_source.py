"""Cross-source benchmark: how a model does on real text from a source it never trained on.

The built-in test split says little about real callers (a model can score 0.98 there and 0.68 on
real openings). This benchmark decides whether a model change helped:

* **leave one source out** — for each real source S among the config's ``train_files`` (by
  default every file under ``data/real/``), train with everything else the same but without S
  (its ``mix.weights`` entry dropped with it), export, and score S's held-out rows (its
  validation and test splits) through the exported int8 graph, as serving runs it;
* **named models** (``--model``) — score existing models (e.g. ``production``) on every split of
  every real source, the training split included (marked: a model that trained on it has seen it).

Reported per (model, source, split): macro-F1 over the classes the source holds (a call sent to
another class still costs its own class's recall), the QA report's stricter macro-F1 (over the
classes in the labels or the predictions: every class the model wrongly uses adds an F1 of 0, so a
handful of calls sent to a class a 2-class source lacks pulls it from 0.98 to 0.66), recall per
class, buying precision at recall 0.90, and ECE. A dated entry goes under
"## Cross-source benchmark" in BENCHMARKS.md.

The leave-one-out runs use a smaller budget than the default model (``--set epochs=1`` by
default, stated in the entry); pass ``--set`` to change it. Example (about 20 min on 2 cores)::

    python -m bench.cross_source --label "corpus v2 + real text" --model production
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench.benchmarks_file import REPO, cpu_model, publish

HEADING = "## Cross-source benchmark"
DEFAULT_CONFIG = REPO / "training" / "configs" / "default.yaml"
REAL_DIR = "data/real"

#: The leave-one-out budget unless --set says otherwise (the default model trains 2 epochs).
DEFAULT_SETS = ("epochs=1",)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceScore:
    """One model on one split of one real source.

    Attributes:
        model: The model's name in the table (``without sgd_openings``, ``production``…).
        source: The source group (file stem).
        split: ``train``, ``validation`` or ``test``.
        seen: Whether the model trained on this source.
        n: Calls scored.
        macro_f1: Macro-F1 over the classes present in the labels.
        macro_f1_strict: Macro-F1 over the classes present in the labels or the predictions (the QA report's).
        recall: Recall per class present in the labels.
        buying_precision_at_90: Best buying precision at buying recall >= 0.90 (None: no buying calls).
        ece: Top-label expected calibration error.
    """

    model: str
    source: str
    split: str
    seen: bool
    n: int
    macro_f1: float
    macro_f1_strict: float
    recall: dict[str, float]
    buying_precision_at_90: float | None
    ece: float


def score_source(model_dir: str | Path, model_name: str, path: str | Path, split: str, *, seen: bool,
                 variant: str = "int8") -> SourceScore:
    """Score one split of a real-text file with an exported model."""
    from evaluation.config import EvalConfig
    from evaluation.evalset import load_eval_set
    from evaluation.evaluate import evaluate_model, resolve_model

    model = resolve_model(model_dir)
    eval_set = load_eval_set([str(path)], split=split)
    evaluation = evaluate_model(model, eval_set, replace(EvalConfig(), variant=variant, bootstrap_samples=0),
                                measure_speed=False)
    present = set(eval_set.labels)
    return SourceScore(
        model=model_name, source=Path(path).stem, split=split, seen=seen, n=len(eval_set),
        macro_f1=round(sum(c.f1 or 0.0 for c in evaluation.classes.per_class if c.name in present) / len(present), 4),
        macro_f1_strict=round(evaluation.classes.macro_f1, 4),
        recall={c.name: round(c.recall, 4) for c in evaluation.classes.per_class
                if c.name in present and c.recall is not None},
        buying_precision_at_90=_round(evaluation.pr_curve.precision_at_recall(0.90)),
        ece=round(evaluation.calibration.ece, 4),
    )


def train_without(config_path: Path, source_file: str, sets: Sequence[str], out_dir: Path) -> Path:
    """Train and export the config's model without ``source_file``; returns the artifact directory."""
    from callintent.config import load_config
    from training.config import TrainConfig
    from training.export import export_run
    from training.train import train

    config = load_config(config_path, TrainConfig, sets)
    files = list(config.train_files)
    if source_file not in files:
        raise SystemExit(f"{source_file} is not in train_files {files}")
    i = files.index(source_file)
    weights = tuple(w for j, w in enumerate(config.mix.weights) if j != i)
    config = replace(config, train_files=tuple(f for f in files if f != source_file),
                     mix=replace(config.mix, weights=weights), output_dir=str(out_dir))
    logger.info("training without %s -> %s", source_file, out_dir)
    run = train(config)
    return Path(export_run(run.output_dir).artifact_dir)


def _score_splits(model: str | Path, name: str, path: str, splits: Sequence[str], *, seen: bool) -> list[SourceScore]:
    """:func:`score_source` on each of ``splits`` that ``path`` has rows in (``seen`` applies to train)."""
    from data.dataset import read_records

    have = {r.data.get("split") for r in read_records(path) if isinstance(r.data, dict)}
    return [score_source(model, name, path, split, seen=seen and split == "train") for split in splits if split in have]


def _trained_on(ref: str) -> set[str]:
    """The stems of the files a model was trained on (its artifact's ``train_config.yaml``)."""
    import yaml

    from evaluation.evaluate import resolve_model
    from models.artifact import TRAIN_CONFIG

    path = resolve_model(ref).directory / TRAIN_CONFIG
    config = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    return {Path(f).stem for f in (config or {}).get("train_files", [])}


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def render(scores: Sequence[SourceScore], *, label: str, command: str, seconds: float, sets: Sequence[str]) -> str:
    classes = ("buying", "service", "informational", "noise")
    lines = [
        f"### {dt.date.today().isoformat()} — {label}",
        "",
        f"Machine: {platform.machine()} {cpu_model()}, CPU only. Command: `{command}` ({seconds / 60:.0f} min). "
        f"Leave-one-out runs: the config with `{' '.join(sets) or '(no overrides)'}`, without the held-out "
        "source, scored on the source's validation and test rows; every model scored with its int8 graph.",
        "",
        "| model | source | split | seen in training | n | macro-F1 (source's classes) | strict macro-F1 "
        "| recall buying / service / informational / noise | buying precision @ recall 0.90 | ECE |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scores:
        recall = " / ".join(_fmt(s.recall.get(c)) for c in classes)
        lines.append(f"| {s.model} | {s.source} | {s.split} | {'yes' if s.seen else 'no'} | {s.n} | "
                     f"**{s.macro_f1:.3f}** | {s.macro_f1_strict:.3f} | {recall} | {_fmt(s.buying_precision_at_90)} | {s.ece:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cross_source", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="training config (default: the default model's)")
    parser.add_argument("--holdout", action="append", default=None, metavar="FILE",
                        help=f"a train_files entry to leave out (repeatable; default: every file under {REAL_DIR}/)")
    parser.add_argument("--no-leave-one-out", action="store_true", help="only score the --model models")
    parser.add_argument("--set", action="append", default=None, metavar="KEY=VALUE", dest="sets",
                        help=f"training override for the leave-one-out runs (default: {' '.join(DEFAULT_SETS)})")
    parser.add_argument("--model", action="append", default=[], metavar="REF",
                        help="also score this model (registry ref or artifact dir) on every real split")
    parser.add_argument("--splits", default="train,validation,test",
                        help="splits to score the --model models on (comma-separated)")
    parser.add_argument("--real", action="append", default=None, metavar="FILE",
                        help=f"real-text files for --model (default: every .jsonl under {REAL_DIR}/)")
    parser.add_argument("--out-dir", default="runs/cross_source", help="where the leave-one-out runs go")
    parser.add_argument("--name", default="", help="the --model's name in the table (default: as given)")
    parser.add_argument("--label", default="", help="what is being measured (the entry's heading)")
    parser.add_argument("--json", default=None, help="also write the scores as JSON here")
    parser.add_argument("--include", action="append", default=[], metavar="JSON",
                        help="scores written by an earlier --json run to put in the same table (e.g. runs made "
                             "in parallel, one --holdout each)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to BENCHMARKS.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from callintent.config import load_config
    from training.config import TrainConfig

    started = time.perf_counter()
    sets = tuple(args.sets) if args.sets is not None else DEFAULT_SETS
    config = load_config(args.config, TrainConfig, sets)
    holdouts = args.holdout or [f for f in config.train_files if Path(f).parent.as_posix().endswith(REAL_DIR)]
    real_files = args.real or sorted(str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p)
                                     for p in (REPO / REAL_DIR).glob("*.jsonl"))
    scores: list[SourceScore] = [SourceScore(**s) for path in args.include
                                 for s in json.loads(Path(path).read_text(encoding="utf-8"))]
    if not args.no_leave_one_out:
        for source_file in holdouts:
            stem = Path(source_file).stem
            artifact = train_without(Path(args.config), source_file, sets, Path(args.out_dir) / f"without-{stem}")
            scores.extend(_score_splits(artifact, f"without {stem}", source_file, ("validation", "test"), seen=False))
    for ref in args.model:
        trained_on = _trained_on(ref)
        for path in real_files:
            scores.extend(_score_splits(ref, args.name or ref, path, tuple(args.splits.split(",")),
                                        seen=Path(path).stem in trained_on))
    command = "python -m bench.cross_source " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    entry = render(scores, label=args.label or "cross-source", command=command.strip(),
                   seconds=time.perf_counter() - started, sets=sets)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(s) for s in scores], indent=2) + "\n", encoding="utf-8")
    publish(HEADING, entry, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
