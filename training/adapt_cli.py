"""Adapt a trained model to a customer's own labeled calls (``callintent adapt``).

    callintent adapt --data calls.jsonl                 # from production, replaying its training data
    callintent adapt --from intent/v3 --data calls.jsonl replay_rows=400 output_dir=runs/acme
    callintent export runs/adapt                        # -> a new registry version (candidate)
    callintent evaluate candidate --data holdout.jsonl --compare production --out reports/acme

A training run from ``training/configs/adapt.yaml`` with ``init_from`` and ``train_files`` set from
the options: the model starts from the given version's weights and trains on the labeled calls
plus ``replay_rows`` rows of its own training data (training/adapt.py). Export, evaluation and the
promotion gate are the usual ones.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

#: The adaptation defaults (small data: lower learning rate, more epochs, replay).
ADAPT_CONFIG = Path(__file__).resolve().parent / "configs" / "adapt.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the model to start from, the labeled calls, and TrainConfig overrides to ``parser``."""
    parser.add_argument("--from", dest="init_from", default="production", metavar="REF",
                        help="model to adapt: production (default), intent/v3, an artifact or a training run "
                             "directory (an artifact must hold its torch/ weights: exported by this version)")
    parser.add_argument("--data", action="append", required=True, metavar="FILE",
                        help="the customer's labeled calls (JSONL/CSV/Parquet; repeat for several files)")
    parser.add_argument("--replay-rows", type=int, default=None, metavar="N",
                        help="rows of the model's own training data mixed in, the same number per class "
                             "(default: the config's, 200; 0 = none)")
    parser.add_argument("--registry", default=None, metavar="DIR",
                        help="registry root for REF (default: $CALLINTENT_REGISTRY or models/registry)")
    parser.add_argument("--config", default=str(ADAPT_CONFIG), metavar="YAML",
                        help="TrainConfig YAML (default: training/configs/adapt.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="override config keys, e.g. epochs=5 output_dir=runs/acme replay_files=[old.jsonl]")


def run(args: argparse.Namespace) -> int:
    """Train from ``--from`` on ``--data`` (the ``callintent train`` path), then say how to export."""
    from models.registry import ENV_ROOT
    from training.cli import run as run_training

    if args.registry:
        os.environ[ENV_ROOT] = args.registry  # read by the registry lookup of init_from, in this process
    # JSON is YAML: the values reach the config exactly, whatever characters a path or ref holds.
    ours = [f"init_from={json.dumps(args.init_from)}", f"train_files={json.dumps(args.data)}"]
    if args.replay_rows is not None:
        ours.append(f"replay_rows={args.replay_rows}")
    return run_training(argparse.Namespace(config=args.config, overrides=[*ours, *args.overrides]))
