"""Classifier latency: torch eager vs ONNX Runtime fp32 vs ONNX Runtime int8, batch 1 and 32, seq 128.

Times the same computation three ways — the exported graph's function (encoder, both heads,
calibrated softmax and sigmoids) in torch eager mode, and the two ONNX graphs in ONNX Runtime —
on full-length (128-token) inputs, in alternating blocks, and reports p50/p95 per call. Also times the serving path
(``IntentPredictor.predict`` on a typical opening: tokenize, run int8, build evidence). Appends a
dated entry under "## Classifier latency" in BENCHMARKS.md.

    python -m bench.classifier_latency --model runs/default/artifact [--run runs/default]
    python -m bench.classifier_latency            # an untrained MiniLM-L6 model, exported on the fly

With ``--model`` the torch model comes from ``--run`` (default: the run directory recorded in the
artifact); validation macro-F1 of fp32 and int8 come from the artifact's metrics.
Targets: int8 batch-1 p50 ≤ 0.25× torch eager; int8 macro-F1 within 0.01 of fp32.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.benchmarks_file import cpu_model, publish

HEADING = "## Classifier latency"

#: The speed target: int8 batch-1 p50 at most this share of torch eager's.
TARGET_SPEEDUP_RATIO = 0.25
#: The accuracy target: int8 validation macro-F1 at most this far below fp32.
TARGET_F1_DROP = 0.01

#: A typical opening (about 60 tokens) for the end-to-end predictor timing.
TYPICAL_OPENING = ("Thank you for calling Summit Plumbing, this is Dana, how can I help you. Hi, yeah, I saw your "
                   "ad on Facebook, my water heater is leaking and I was wondering how much it would cost to "
                   "replace it, can someone come out today?")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    """Latency of one runtime at one input shape.

    Attributes:
        runtime: ``torch eager fp32``, ``ONNX fp32``, ``ONNX int8`` or the predictor path.
        batch: Texts per call.
        seq: Tokens per text.
        p50_ms: Median wall time per call.
        p95_ms: 95th percentile wall time per call.
        iterations: Timed calls (after warm-up).
    """

    runtime: str
    batch: int
    seq: int
    p50_ms: float
    p95_ms: float
    iterations: int


def time_calls(fn: Callable[[], Any], *, warmup: int, iterations: int) -> tuple[float, float]:
    """``(p50_ms, p95_ms)`` of ``fn()`` over ``iterations`` calls after ``warmup`` untimed ones."""
    return time_interleaved({"fn": fn}, warmup=warmup, iterations=iterations, rounds=1)["fn"]


def time_interleaved(fns: dict[str, Callable[[], Any]], *, warmup: int, iterations: int,
                     rounds: int = 5) -> dict[str, tuple[float, float]]:
    """``name -> (p50_ms, p95_ms)``, the functions timed in turn, in blocks, over several rounds.

    Rounds make a change in background load (a shared machine) hit every runtime alike, so their
    ratios stay meaningful even when absolute times drift. Each block starts after a half-second
    pause and untimed calls: torch's OpenMP and ONNX Runtime's worker threads spin-wait after
    work, and without the pause they steal cores from the next runtime's timed calls (measured:
    int8 5.4 ms with a 50 ms pause, 3.9 ms with 500 ms).
    """
    import numpy as np

    samples: dict[str, list[float]] = {name: [] for name in fns}
    per_round = max(1, iterations // rounds)
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(0.5)
            for _ in range(warmup):
                fn()
            for _ in range(per_round):
                start = time.perf_counter()
                fn()
                samples[name].append((time.perf_counter() - start) * 1000.0)
    return {name: (float(np.percentile(v, 50)), float(np.percentile(v, 95))) for name, v in samples.items()}



def _inputs(vocab_size: int, batch: int, seq: int, seed: int = 0) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    # Ordinary word-piece ids (low ids are special/unused tokens in BERT vocabularies).
    ids = rng.integers(1000, vocab_size, size=(batch, seq), dtype=np.int64)
    return {"input_ids": ids, "attention_mask": np.ones((batch, seq), dtype=np.int64)}


def benchmark(model: Any, temperature: float, artifact: Path, *, batches: Sequence[int] = (1, 32), seq: int = 128,
              iterations: int = 100) -> list[Timing]:
    """Time torch eager, ONNX fp32 and ONNX int8 on the same inputs.

    Args:
        model: The torch ``IntentModel`` the artifact was exported from.
        temperature: Its class-head temperature (as in the graph).
        artifact: Directory with ``model.onnx`` and ``model.int8.onnx``.
        batches: Batch sizes to time.
        seq: Tokens per text.
        iterations: Timed calls at batch 1; larger batches get proportionally fewer (at least 5).

    Returns:
        One :class:`Timing` per runtime and batch size, plus one for the int8 predictor path.
    """
    import onnxruntime as ort
    import torch

    from models.artifact import ONNX_FP32, ONNX_INT8, OUTPUT_NAMES
    from models.predictor import IntentPredictor
    from training.export import ExportGraph

    graph = ExportGraph(model, temperature).eval()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    sessions = {name: ort.InferenceSession(str(artifact / file), sess_options=options,
                                           providers=["CPUExecutionProvider"])
                for name, file in (("ONNX fp32", ONNX_FP32), ("ONNX int8", ONNX_INT8))}
    vocab = int(model.encoder.config.vocab_size)
    timings = []
    for batch in batches:
        n = max(5, iterations // batch) if batch > 1 else iterations
        warmup = 2
        feed = _inputs(vocab, batch, seq)
        tensors = {k: torch.from_numpy(v) for k, v in feed.items()}

        def run_torch() -> Any:
            with torch.inference_mode():
                return graph(tensors["input_ids"], tensors["attention_mask"])

        runners: dict[str, Callable[[], Any]] = {"torch eager fp32": run_torch}
        for name, session in sessions.items():
            runners[name] = lambda s=session: s.run(list(OUTPUT_NAMES), feed)
        for name, (p50, p95) in time_interleaved(runners, warmup=warmup, iterations=n).items():
            timings.append(Timing(name, batch, seq, p50, p95, n))
            logger.info("%-18s batch %2d: p50 %.1f ms, p95 %.1f ms (%d calls)", name, batch, p50, p95, n)
    predictor = IntentPredictor.load(artifact, variant="int8")
    tokens = len(model.tokenizer(TYPICAL_OPENING)["input_ids"])
    p50, p95 = time_calls(lambda: predictor.predict([TYPICAL_OPENING]), warmup=5, iterations=iterations)
    timings.append(Timing("predictor int8 (tokenize+evidence)", 1, tokens, p50, p95, iterations))
    return timings


def _untrained_minilm(directory: Path) -> tuple[Any, float, Path]:
    """An untrained MiniLM-L6 intent model exported into ``directory`` (latency does not need training)."""
    from models.artifact import TOKENIZER, ArtifactMeta
    from training.export import write_graphs, write_tokenizer
    from training.model import IntentModel, IntentModelConfig

    model = IntentModel.from_encoder("", IntentModelConfig()).eval()
    write_graphs(model, 1.0, directory)
    write_tokenizer(model.tokenizer, model.intent_config.max_length, directory / TOKENIZER)
    ArtifactMeta(classes=model.intent_config.classes, signals=model.intent_config.signals,
                 max_length=model.intent_config.max_length, base_model=model.intent_config.base_model,
                 extra={"note": "untrained, for latency only"}).save(directory)
    return model, 1.0, directory


def _trained(artifact: Path, run: Path | None) -> tuple[Any, float, Path]:
    from models.artifact import ArtifactMeta
    from training.model import IntentModel
    from training.train import BEST_DIR

    meta = ArtifactMeta.load(artifact)
    run = run or Path(meta.extra.get("run_dir", ""))
    if not (run / BEST_DIR).is_dir():
        raise SystemExit(f"no torch model for {artifact}: pass --run RUN_DIR (the training run it was exported from)")
    return IntentModel.from_pretrained(run / BEST_DIR), meta.temperature, artifact


def markdown(timings: Sequence[Timing], *, model_label: str, command: str, f1: tuple[float, float] | None,
             sizes: dict[str, float], threads: int) -> str:
    """The dated BENCHMARKS.md entry."""
    import onnxruntime
    import torch

    eager = {t.batch: t.p50_ms for t in timings if t.runtime == "torch eager fp32"}
    rows = ["| runtime | batch × seq | p50 ms | p95 ms | p50 ms / text | p50 vs torch eager |", "|---|---|---|---|---|---|"]
    for t in timings:
        ratio = f"{t.p50_ms / eager[t.batch]:.2f}×" if t.batch in eager and t.seq == 128 else "—"
        rows.append(f"| {t.runtime} | {t.batch} × {t.seq} | {t.p50_ms:.1f} | {t.p95_ms:.1f} | "
                    f"{t.p50_ms / t.batch:.2f} | {ratio} |")
    int8_1 = next(t.p50_ms for t in timings if t.runtime == "ONNX int8" and t.batch == 1)
    ratio = int8_1 / eager[1]
    lines = [
        f"### {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"- Machine: {threads} CPU cores ({cpu_model()}), {platform.system()} {platform.machine()}; "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__}; "
        f"1-min load average at the end {os.getloadavg()[0]:.1f} (other work on the machine slows every runtime)",
        f"- Model: {model_label}; fp32 graph {sizes['fp32']:.1f} MB, int8 graph {sizes['int8']:.1f} MB",
        f"- Command: `{command}`",
        "",
        *rows,
        "",
        f"- int8 batch-1 p50 = {ratio:.2f}× torch eager (target ≤ {TARGET_SPEEDUP_RATIO}×): "
        f"{'met' if ratio <= TARGET_SPEEDUP_RATIO else 'NOT met'}",
    ]
    if f1 is not None:
        drop = f1[0] - f1[1]
        lines.append(f"- validation macro-F1: fp32 {f1[0]:.4f}, int8 {f1[1]:.4f} (drop {drop:+.4f}; target ≤ "
                     f"{TARGET_F1_DROP}): {'met' if drop <= TARGET_F1_DROP else 'NOT met'}")
    else:
        lines.append("- macro-F1: not measured (untrained model)")
    return "\n".join(lines) + "\n"




def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.classifier_latency",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, metavar="DIR",
                        help="exported artifact directory (default: export an untrained MiniLM-L6)")
    parser.add_argument("--run", type=Path, default=None, metavar="DIR",
                        help="training run the artifact came from (default: the one recorded in it)")
    parser.add_argument("--iterations", type=int, default=100, help="timed calls at batch 1 (default 100)")
    parser.add_argument("--no-write", action="store_true", help="print only; don't append to BENCHMARKS.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from models.artifact import ONNX_FP32, ONNX_INT8, ArtifactMeta

    with tempfile.TemporaryDirectory(prefix="latency-") as tmp:
        if args.model is None:
            model, temperature, artifact = _untrained_minilm(Path(tmp))
            label = "untrained MiniLM-L6 intent model (exported here; latency only)"
        else:
            model, temperature, artifact = _trained(args.model, args.run)
            label = f"`{args.model}` ({model.intent_config.base_model})"
        timings = benchmark(model, temperature, artifact, iterations=args.iterations)
        metrics = ArtifactMeta.load(artifact).metrics
        f1 = None
        if "fp32" in metrics and "int8" in metrics:
            f1 = (metrics["fp32"]["validation"]["macro_f1"], metrics["int8"]["validation"]["macro_f1"])
        sizes = {"fp32": (artifact / ONNX_FP32).stat().st_size / 1e6, "int8": (artifact / ONNX_INT8).stat().st_size / 1e6}
        command = "python -m bench.classifier_latency " + shlex.join(argv if argv is not None else sys.argv[1:])
        entry = markdown(timings, model_label=label, command=command.strip(), f1=f1, sizes=sizes,
                         threads=os.cpu_count() or 0)
    publish(HEADING, entry, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
