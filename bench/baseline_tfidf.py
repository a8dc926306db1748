"""TF-IDF + logistic regression baseline on the built-in corpus: is it learnable, is it too easy?

Trains on a seeded, stratified 80% of ``generate_corpus(n, seed)`` (word 1-2 grams), reports
macro-F1 and per-class F1 on the other 20%, and the same model on the real SGD openings
(buying vs service rows). A macro-F1 near 1.0 means the templates are memorisable; the corpus
aims for roughly 0.85-0.97. Appends a dated entry under "## Corpus: TF-IDF baseline" in
BENCHMARKS.md.

    python -m bench.baseline_tfidf [--n 6000] [--seed 0] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
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

SGD_PATH = REPO.parent / "shared" / "data" / "sgd_openings.jsonl"

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
    """

    macro_f1: float
    accuracy: float
    per_class_f1: dict[str, float]
    n: int
    predicted: dict[str, int] = field(default_factory=dict)


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

    from sklearn.metrics import accuracy_score, f1_score

    predicted = list(model.predict(list(texts)))
    per_class = f1_score(labels, predicted, labels=list(label_set), average=None, zero_division=0)
    return BaselineResult(
        macro_f1=float(f1_score(labels, predicted, labels=list(label_set), average="macro", zero_division=0)),
        accuracy=float(accuracy_score(labels, predicted)),
        per_class_f1={name: round(float(f), 4) for name, f in zip(label_set, per_class)},
        n=len(labels),
        predicted={str(k): v for k, v in Counter(predicted).items()},
    )


def corpus_baseline(n: int = 6000, seed: int = 0, *,
                    test_fraction: float = 0.2) -> tuple[Any, BaselineResult]:
    """Fit on a seeded stratified split of ``generate_corpus(n, seed)``.

    Args:
        n: Corpus size.
        seed: Corpus and split seed.
        test_fraction: Held-out share.

    Returns:
        The fitted pipeline and its result on the held-out rows.
    """
    from sklearn.model_selection import train_test_split

    from data.schema import CLASS_NAMES
    from data.synth import generate_corpus

    calls = generate_corpus(n, seed)
    texts = [c.transcript for c in calls]
    labels = [c.label for c in calls]
    x_train, x_test, y_train, y_test = train_test_split(
        texts, labels, test_size=test_fraction, random_state=seed, stratify=labels)
    model = fit_baseline(x_train, y_train)
    return model, score(model, x_test, y_test, CLASS_NAMES)


def sgd_result(model: Any, path: Path = SGD_PATH) -> BaselineResult:
    """The corpus-trained model on the real SGD openings (buying and service rows)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r["label"] in ("buying", "service")]
    return score(model, [r["transcript"] for r in rows], [r["label"] for r in rows], ("buying", "service"))


def _markdown(n: int, seed: int, held_out: BaselineResult, sgd: BaselineResult | None, seconds: float,
              command: str) -> str:
    lines = [
        f"### {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} — n={n}, seed={seed}",
        "",
        f"Machine: {os.cpu_count() or 2} cores ({cpu_model()}), Python {platform.python_version()}, "
        f"CPU only. Command: `{command}` ({seconds:.1f} s).",
        "TF-IDF word 1-2 grams (sublinear tf, min_df 2) + LogisticRegression(C=10), trained on a seeded "
        "stratified 80% of `generate_corpus(n, seed)`.",
        "",
        "| eval set | rows | accuracy | macro-F1 | " + " | ".join(held_out.per_class_f1) + " |",
        "|---|---|---|---|" + "---|" * len(held_out.per_class_f1),
        f"| corpus held-out 20% | {held_out.n} | {held_out.accuracy:.3f} | {held_out.macro_f1:.3f} | "
        + " | ".join(f"{v:.3f}" for v in held_out.per_class_f1.values()) + " |",
    ]
    if sgd is not None:
        cells = [f"{sgd.per_class_f1.get(name, float('nan')):.3f}" if name in sgd.per_class_f1 else "—"
                 for name in held_out.per_class_f1]
        lines.append(f"| SGD openings (buying+service, real text) | {sgd.n} | {sgd.accuracy:.3f} | "
                     f"{sgd.macro_f1:.3f} (2 classes) | " + " | ".join(cells) + " |")
        counts = ", ".join(f"{k} {v}" for k, v in sorted(sgd.predicted.items()))
        lines += ["", f"SGD predictions by class: {counts} (informational/noise count as errors). "
                  "SGD rows are typed requests to a virtual assistant (no greeting; mostly travel, "
                  "restaurant and event bookings), so this row measures transfer to real wording, not fit."]
    lines.append("")
    return "\n".join(lines)




def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_tfidf",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=6000, help="corpus size (default 6000)")
    parser.add_argument("--seed", type=int, default=0, help="corpus and split seed (default 0)")
    parser.add_argument("--no-write", action="store_true", help="print only; don't append to BENCHMARKS.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    started = time.perf_counter()
    model, held_out = corpus_baseline(args.n, args.seed)
    sgd = sgd_result(model) if SGD_PATH.exists() else None
    seconds = time.perf_counter() - started

    print(f"corpus held-out: n={held_out.n} accuracy={held_out.accuracy:.3f} "
          f"macro-F1={held_out.macro_f1:.3f}")
    print("  per-class F1: " + ", ".join(f"{k} {v:.3f}" for k, v in held_out.per_class_f1.items()))
    if sgd is None:
        print(f"SGD openings not found at {SGD_PATH}; skipped")
    else:
        print(f"SGD buying/service: n={sgd.n} accuracy={sgd.accuracy:.3f} macro-F1={sgd.macro_f1:.3f} "
              f"per-class {sgd.per_class_f1} predicted {sgd.predicted}")
    if not args.no_write:
        given = list(argv) if argv is not None else sys.argv[1:]
        command = shlex.join(["python", "-m", "bench.baseline_tfidf", *given])
        append_section(HEADING, _markdown(args.n, args.seed, held_out, sgd, seconds, command))
        print(f"appended to {BENCHMARKS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
