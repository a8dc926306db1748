"""Encoder choice: ONNX fp32 and int8 latency, size and parameter count of each packaged encoder.

For each ``base_model`` given (default: every installed encoder in
``training.encoders.PACKAGED_ENCODERS``) builds an intent model with untrained heads (latency does
not depend on training), exports it the way ``callintent export`` does (fp32 graph checked
against torch, int8 dynamic quantization) and times both graphs at batch 1 x 128 tokens with a
fixed number of ONNX Runtime threads. Encoders are timed in turn, in rounds, so that a change in
the load of a shared machine hits every encoder alike. Appends a dated table under
"## Encoder choice" in BENCHMARKS.md.

    python -m bench.encoder_latency                       # every installed packaged encoder
    python -m bench.encoder_latency minilm-l6 all-mpnet-base-v2 --threads 2 --iterations 200

Budget (issue #13): int8 batch-1 p50 ≤ 10 ms per 128-token text on the 2-core machine.
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.benchmarks_file import cpu_model, publish
from bench.classifier_latency import _inputs, time_interleaved

HEADING = "## Encoder choice"

#: The latency budget of issue #13: int8, batch 1, 128 tokens, on the 2-core machine.
BUDGET_INT8_MS = 10.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderTiming:
    """One encoder's measurements.

    Attributes:
        name: The ``base_model`` value.
        architecture: ``model_type``, layers x hidden size.
        params_m: Encoder + heads parameters, millions.
        fp32_mb: ``model.onnx`` size on disk.
        int8_mb: ``model.int8.onnx`` size on disk.
        fp32_p50_ms: ONNX fp32 median per call (batch 1, ``seq`` tokens).
        int8_p50_ms: ONNX int8 median per call.
        int8_p95_ms: ONNX int8 95th percentile per call.
        parity: Largest |ONNX fp32 − torch| of the export check.
    """

    name: str
    architecture: str
    params_m: float
    fp32_mb: float
    int8_mb: float
    fp32_p50_ms: float
    int8_p50_ms: float
    int8_p95_ms: float
    parity: float


def export_untrained(base_model: str, directory: Path) -> tuple[Any, float]:
    """Export an intent model with untrained heads on ``base_model`` into ``directory``.

    Returns:
        ``(model, parity_max_abs_diff)``.
    """
    import torch

    from models.artifact import TOKENIZER
    from training.export import write_graphs, write_tokenizer
    from training.model import IntentModel, IntentModelConfig

    torch.manual_seed(0)
    model = IntentModel.from_encoder(base_model, IntentModelConfig()).eval()
    parity, _ = write_graphs(model, 1.0, directory)
    write_tokenizer(model.tokenizer, model.intent_config.max_length, directory / TOKENIZER)
    return model, parity


def measure(names: Sequence[str], *, threads: int, iterations: int, seq: int = 128) -> list[EncoderTiming]:
    """Export each encoder and time its fp32 and int8 graphs in interleaved rounds.

    Args:
        names: ``base_model`` values.
        threads: ONNX Runtime intra-op threads.
        iterations: Timed calls per graph (spread over 5 rounds).
        seq: Tokens per text.

    Returns:
        One :class:`EncoderTiming` per name, in order.
    """
    import onnxruntime as ort

    from models.artifact import ONNX_FP32, ONNX_INT8, OUTPUT_NAMES

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory(prefix="encoders-") as tmp:
        facts: dict[str, dict[str, Any]] = {}
        runners = {}
        for i, name in enumerate(names):
            directory = Path(tmp) / str(i)  # a name may be a path
            directory.mkdir()
            model, parity = export_untrained(name, directory)
            config = model.encoder.config
            facts[name] = {
                "architecture": f"{config.model_type}, {config.num_hidden_layers} x {config.hidden_size}",
                "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
                "fp32_mb": (directory / ONNX_FP32).stat().st_size / 1e6,
                "int8_mb": (directory / ONNX_INT8).stat().st_size / 1e6,
                "parity": parity,
            }
            feed = _inputs(int(config.vocab_size), 1, seq)
            for variant, file in (("fp32", ONNX_FP32), ("int8", ONNX_INT8)):
                session = ort.InferenceSession(str(directory / file), sess_options=options,
                                               providers=["CPUExecutionProvider"])
                runners[(name, variant)] = lambda s=session, f=feed: s.run(list(OUTPUT_NAMES), f)
            del model
            logger.info("%s: %s, %.1fM params, int8 %.1f MB, parity %.1e", name or "default",
                        facts[name]["architecture"], facts[name]["params_m"], facts[name]["int8_mb"], parity)
        times = time_interleaved({f"{n}|{v}": fn for (n, v), fn in runners.items()}, warmup=3,
                                 iterations=iterations)
    return [EncoderTiming(name=name, fp32_p50_ms=times[f"{name}|fp32"][0], int8_p50_ms=times[f"{name}|int8"][0],
                          int8_p95_ms=times[f"{name}|int8"][1], **facts[name]) for name in names]


def markdown(timings: Sequence[EncoderTiming], *, threads: int, iterations: int, command: str) -> str:
    """The dated BENCHMARKS.md entry.

    On a shared machine absolute times move with the load (and slow a small model's overhead-bound
    calls more than a large model's), so each row also gives its int8 p50 as a multiple of the
    first encoder's, measured in the same interleaved rounds.
    """
    import onnxruntime

    base = timings[0]
    rows = ["| base_model | architecture | params | int8 on disk | fp32 on disk | ONNX fp32 p50 | ONNX int8 p50 "
            f"| ONNX int8 p95 | int8 p50 vs `{base.name or '(default)'}` |",
            "|---|---|---|---|---|---|---|---|---|"]
    for t in timings:
        rows.append(f"| `{t.name or '(default)'}` | {t.architecture} | {t.params_m:.1f}M | {t.int8_mb:.1f} MB | "
                    f"{t.fp32_mb:.1f} MB | {t.fp32_p50_ms:.1f} ms | {t.int8_p50_ms:.1f} ms | {t.int8_p95_ms:.1f} ms | "
                    f"{t.int8_p50_ms / base.int8_p50_ms:.2f}× |")
    within = [f"`{t.name or '(default)'}`" for t in timings if t.int8_p50_ms <= BUDGET_INT8_MS]
    return "\n".join([
        f"### {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"- Machine: {os.cpu_count()} CPU cores ({cpu_model()}), {platform.system()} {platform.machine()}, "
        f"shared with other work (1-min load average at the end {os.getloadavg()[0]:.1f}); onnxruntime "
        f"{onnxruntime.__version__} with {threads} intra-op threads",
        f"- Batch 1 x 128 tokens, untrained heads (latency does not depend on training), {iterations} timed calls "
        "per graph in 5 interleaved rounds; medians",
        f"- Command: `{command}`",
        "",
        *rows,
        "",
        f"- int8 p50 within the {BUDGET_INT8_MS:g} ms budget in this run: {', '.join(within) or 'none'}",
        "",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    from training.encoders import PACKAGED_ENCODERS

    parser = argparse.ArgumentParser(prog="python -m bench.encoder_latency",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="BASE_MODEL",
                        help="packaged encoder names or encoder directories (default: every installed one)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    parser.add_argument("--iterations", type=int, default=200, help="timed calls per graph (default 200)")
    parser.add_argument("--no-write", action="store_true", help="print only; don't append to BENCHMARKS.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    names = args.names or [n for n, e in PACKAGED_ENCODERS.items() if e.installed()]
    timings = measure(names, threads=args.threads, iterations=args.iterations)
    command = "python -m bench.encoder_latency " + shlex.join(argv if argv is not None else sys.argv[1:])
    publish(HEADING, markdown(timings, threads=args.threads, iterations=args.iterations, command=command.strip()),
            write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
