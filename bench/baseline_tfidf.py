"""TF-IDF + logistic regression baseline on the built-in corpus: is it learnable, does it transfer?

Trains on a seeded, stratified 80% of ``generate_corpus(n, seed)`` (word 1-2 grams), reports
macro-F1 and per-class F1 on the other 20%, and the same model on every row of each real-text
set in ``../shared/data`` (SGD and CLINC openings): macro-F1 over the classes that set holds,
recall per class and how many rows were predicted as each class. The held-out figure says
whether the corpus is learnable without being memorisable (roughly 0.85-0.97 is the aim); the
real-set figures are a probe of how much real phrasing the corpus covers — a model trained on
nothing but the corpus, tested on text written by people. Only aggregate figures are printed:
the real rows are not for writing templates. Appends a dated entry under
"## Corpus: TF-IDF baseline" in BENCHMARKS.md.

    python -m bench.baseline_tfidf [--n 6000] [--seed 0] [--real-dir ../shared/data] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.benchmarks_file import BENCHMARKS, REPO, append_section, cpu_model

#: Where the real-text sets live by default (``../shared/data`` beside the checkout).
REAL_DIR = REPO.parent / "shared" / "data"
#: The real sets scored, by file name, with the name the report gives them.
REAL_SETS: tuple[tuple[str, str], ...] = (("sgd_openings.jsonl", "SGD"), ("clinc_openings.jsonl", "CLINC"))

HEADING = "## Corpus: TF-IDF baseline"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaselineResult:
    """Scores of one fitted baseline on one labeled set.

    Attributes:
        macro_f1: Macro-F1 over ``labels``.
        accuracy: Fraction of rows predicted exactly.
        per_class_f1: F1 per label.
        n: Rows scored.
        predicted: How many rows were predicted as each class (all four classes).
        per_class_recall: Recall per label.
    """

    macro_f1: float
    accuracy: float
    per_class_f1: dict[str, float]
    n: int
    predicted: dict[str, int] = field(default_factory=dict)
    per_class_recall: dict[str, float] = field(default_factory=dict)


def fit_baseline(texts: Sequence[str], labels: Sequence[str]) -> Any:
    """Fit TF-IDF (word 1-2 grams, sublinear tf) + logistic regression; returns the sklearn pipeline."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from threadpoolctl import threadpool_limits

    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, lowercase=True),
        LogisticRegression(max_iter=2000, C=10.0),
    )
    # One BLAS thread: this problem is tiny, and OpenBLAS threads fighting over 2 busy cores made
    # the fit 50-100x slower (0.08 s vs 4-10 s).
    with threadpool_limits(1):
        model.fit(list(texts), list(labels))
    return model


def score(model: Any, texts: Sequence[str], labels: Sequence[str],
          label_set: Sequence[str]) -> BaselineResult:
    """Macro-F1, accuracy and per-class F1 of ``model`` over ``label_set``."""
    from collections import Counter

    from sklearn.metrics import accuracy_score, f1_score, recall_score

    predicted = list(model.predict(list(texts)))
    per_class = f1_score(labels, predicted, labels=list(label_set), average=None, zero_division=0)
    recall = recall_score(labels, predicted, labels=list(label_set), average=None, zero_division=0)
    return BaselineResult(
        macro_f1=float(f1_score(labels, predicted, labels=list(label_set), average="macro", zero_division=0)),
        accuracy=float(accuracy_score(labels, predicted)),
        per_class_f1={name: round(float(f), 4) for name, f in zip(label_set, per_class)},
        n=len(labels),
        predicted={str(k): v for k, v in sorted(Counter(predicted).items())},
        per_class_recall={name: round(float(r), 4) for name, r in zip(label_set, recall)},
    )


def corpus_baseline(n: int = 6000, seed: int = 0, *, test_fraction: float = 0.2,
                    calls: Sequence[Any] | None = None) -> tuple[Any, BaselineResult]:
    """Fit on a seeded stratified split of ``generate_corpus(n, seed)``.

    Args:
        n: Corpus size.
        seed: Corpus and split seed.
        test_fraction: Held-out share.
        calls: The corpus when the caller already generated it (``generate_corpus(n, seed)``).

    Returns:
        The fitted pipeline and its result on the held-out rows.
    """
    from sklearn.model_selection import train_test_split

    from data.synth import generate_corpus
    from models.labels import CLASS_NAMES

    calls = generate_corpus(n, seed) if calls is None else calls
    texts = [c.transcript for c in calls]
    labels = [c.label for c in calls]
    x_train, x_test, y_train, y_test = train_test_split(
        texts, labels, test_size=test_fraction, random_state=seed, stratify=labels)
    model = fit_baseline(x_train, y_train)
    return model, score(model, x_test, y_test, CLASS_NAMES)


def real_set_result(model: Any, path: Path) -> BaselineResult:
    """The corpus-trained model on every row of one real-text set.

    Args:
        model: A fitted pipeline (:func:`fit_baseline`).
        path: A labeled JSONL file (``../shared/data/*.jsonl``).

    Returns:
        Scores over the classes present in the file (in ``CLASS_NAMES`` order): a set with no
        noise rows is not charged for a noise F1 of zero, but rows predicted as an absent class
        still count as errors (they lower recall and accuracy).
    """
    from data.dataset import read_records
    from models.labels import CLASS_NAMES

    rows = [r.data for r in read_records(path) if isinstance(r.data, dict)]
    labels = [str(r["label"]) for r in rows]
    present = [name for name in CLASS_NAMES if name in set(labels)]
    return score(model, [str(r["transcript"]) for r in rows], labels, present)


def real_results(model: Any, real_dir: Path = REAL_DIR) -> dict[str, BaselineResult]:
    """:func:`real_set_result` for each of :data:`REAL_SETS` found in ``real_dir`` (by report name)."""
    return {name: real_set_result(model, real_dir / file)
            for file, name in REAL_SETS if (real_dir / file).is_file()}


def _markdown(n: int, seed: int, held_out: BaselineResult, real: dict[str, BaselineResult],
              corpus: dict[str, Any], seconds: float, command: str, note: str = "") -> str:
    classes = list(held_out.per_class_f1)
    lines = [
        f"### {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} — n={n}, seed={seed}",
        "",
        f"Machine: {os.cpu_count() or 2} cores ({cpu_model()}), Python {platform.python_version()}, "
        f"CPU only. Command: `{command}` ({seconds:.1f} s).",
        "TF-IDF word 1-2 grams (sublinear tf, min_df 2) + LogisticRegression(C=10), trained on a seeded "
        "stratified 80% of `generate_corpus(n, seed)`; real sets: all rows, macro-F1 over the classes "
        "the set holds, recall per class (— where the set has none of the class).",
    ]
    if note:
        lines += ["", note]
    lines += [
        "",
        "| eval set | rows | accuracy | macro-F1 | " + " | ".join(f"{c} R" for c in classes)
        + " | predicted (" + " / ".join(classes) + ") |",
        "|---|---|---|---|" + "---|" * len(classes) + "---|",
    ]
    for name, result in (("corpus held-out 20%", held_out), *real.items()):
        recall = " | ".join(f"{result.per_class_recall[c]:.3f}" if c in result.per_class_recall else "—"
                            for c in classes)
        predicted = " / ".join(str(result.predicted.get(c, 0)) for c in classes)
        lines.append(f"| {name} | {result.n} | {result.accuracy:.3f} | {result.macro_f1:.3f} "
                     f"({len(result.per_class_recall)} classes) | {recall} | {predicted} |")
    lines += ["", "Corpus held-out F1 per class: "
              + ", ".join(f"{k} {v:.3f}" for k, v in held_out.per_class_f1.items()) + "."]
    registers = corpus.get("registers")
    shares = (", registers " + ", ".join(f"{k} {v / corpus['n']:.0%}" for k, v in registers.items())
              if registers else "")
    lines += [f"Corpus: {corpus['n']} rows, {corpus['words']['mean']} words per transcript on average "
              f"(median {corpus['words']['median']}){shares}.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_tfidf",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=6000, help="corpus size (default 6000)")
    parser.add_argument("--seed", type=int, default=0, help="corpus and split seed (default 0)")
    parser.add_argument("--real-dir", type=Path, default=REAL_DIR,
                        help=f"folder holding the real-text sets (default {REAL_DIR})")
    parser.add_argument("--note", default="", help="a line to write under the entry's heading")
    parser.add_argument("--no-write", action="store_true", help="print only; don't append to BENCHMARKS.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from data.synth import corpus_stats, generate_corpus

    started = time.perf_counter()
    calls = generate_corpus(args.n, args.seed)
    model, held_out = corpus_baseline(args.n, args.seed, calls=calls)
    real = real_results(model, args.real_dir)
    seconds = time.perf_counter() - started
    if not real:
        logger.warning("no real-text sets in %s; only the corpus hold-out is scored", args.real_dir)

    command = shlex.join(["python", "-m", "bench.baseline_tfidf",
                          *(list(argv) if argv is not None else sys.argv[1:])])
    entry = _markdown(args.n, args.seed, held_out, real, corpus_stats(calls), seconds, command, args.note)
    print(entry)
    if not args.no_write:
        append_section(HEADING, entry)
        print(f"appended to {BENCHMARKS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
