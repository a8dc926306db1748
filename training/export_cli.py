"""Export a training run to a calibrated ONNX model and register it (``callintent export``).

    callintent export runs/default                      # -> models/registry/intent/vN
    callintent export runs/default --out /tmp/model --no-register
    callintent export runs/default int8_max_f1_drop=0.02 parity_atol=1e-3 --no-register

Fails (exit 2) when the ONNX graph does not match torch on the probe batch, or int8 loses more
validation macro-F1 than ``int8_max_f1_drop``; nothing is registered then.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the run directory, registry options and ExportConfig overrides to ``parser``."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help="training run directory (callintent train output)")
    parser.add_argument("--name", default="intent", help="registry model name (default: intent)")
    parser.add_argument("--registry", default=None, metavar="DIR",
                        help="registry root (default: $CALLINTENT_REGISTRY or models/registry)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="where to stage the artifact (default: RUN_DIR/artifact)")
    parser.add_argument("--no-register", action="store_true", help="stage the artifact only")
    parser.add_argument("--config", default=None, metavar="YAML", help="ExportConfig YAML (default: built-in)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="override ExportConfig keys, right after RUN_DIR, e.g. int8_max_f1_drop=0.02")


def run(args: argparse.Namespace) -> int:
    """Export, verify, register; print the staged directory and the registered ref."""
    from callintent.config import load_config
    from training.export import ExportConfig

    config = load_config(args.config, ExportConfig, args.overrides)
    from training.export import export_run  # heavy (torch, onnx): only after the config is valid

    result = export_run(args.run_dir, args.out, config, name=args.name)
    metrics = result.meta.metrics
    fp32 = metrics.get("fp32", {}).get("validation", {}).get("macro_f1", 0.0)
    int8 = metrics.get("int8", {}).get("validation", {}).get("macro_f1", 0.0)
    print(f"artifact: {result.artifact_dir} (parity {result.parity_max_abs_diff:.1e}; validation macro-F1 "
          f"fp32 {fp32:.4f}, int8 {int8:.4f})")
    if args.no_register:
        return 0
    from models.registry import Registry

    ref = Registry(args.registry).register(result.artifact_dir, args.name)
    print(f"registered {ref}")
    return 0
