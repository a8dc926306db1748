"""Fine-tune the intent classifier from a YAML config (``callintent train`` / ``python -m training``).

    callintent train --config training/configs/default.yaml [key=value ...]
    python -m training --config training/configs/tiny.yaml epochs=1 output_dir=runs/try

Overrides are YAML values, dotted keys reach sections (``data.val_fraction=0.2``). Several GPUs:
``torchrun --nproc_per_node N -m training --config …`` or ``accelerate launch -m training --config …``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from callintent.errors import UserError

#: The config used when ``--config`` is not given.
DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "default.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and ``key=value`` overrides to ``parser``."""
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), metavar="YAML",
                        help=f"TrainConfig YAML (default: {DEFAULT_CONFIG.relative_to(DEFAULT_CONFIG.parents[2])})")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="override config keys, e.g. epochs=1 output_dir=runs/try data.seed=1")


def run(args: argparse.Namespace) -> int:
    """Load the config, train, and print where the run went and its headline metrics."""
    from callintent.config import load_config
    from training.config import TrainConfig, require_train_files

    config = load_config(args.config, TrainConfig, args.overrides)
    require_train_files(config)
    from training.train import train  # heavy (torch, transformers): only after the config is valid

    result = train(config)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun / accelerate launch, the main process reports
    val = result.validation
    print(f"run: {result.output_dir} (best epoch {result.best_epoch} of {len(result.epochs)}, "
          f"{result.wall_seconds:.0f}s on {result.device})")
    print(f"validation: macro-F1 {val.get('macro_f1', 0):.4f}, accuracy {val.get('accuracy', 0):.4f}, "
          f"ECE {result.calibration.ece_before:.4f} -> {result.calibration.ece_after:.4f} "
          f"(T={result.calibration.temperature:.3f})")
    if result.test:
        print(f"test: macro-F1 {result.test['macro_f1']:.4f}, accuracy {result.test['accuracy']:.4f}")
    print(f"next: callintent export {result.output_dir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m training``: the same command as ``callintent train``."""
    parser = argparse.ArgumentParser(prog="python -m training", description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return run(args)
    except UserError as e:
        print(f"python -m training: error: {e}", file=sys.stderr)
        return 2
