"""The ``callintent`` command: a thin dispatcher over each stage's own CLI module.

Each stage module named in :data:`COMMANDS` provides ``add_arguments(parser)`` and
``run(args) -> int`` and keeps its heavy imports inside ``run``, so ``--help`` stays fast.
``"module:attr"`` names an object of that module with the two instead (one module, several commands).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from callintent import __version__
from callintent.errors import UserError

#: subcommand -> (module, one-line help). Order is the order a newcomer meets them.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("data.cli", "make, check, split and transcribe labeled call openings"),
    "train": ("training.cli", "fine-tune the intent classifier from a YAML config"),
    "adapt": ("training.adapt_cli", "fine-tune a trained model on a customer's few labeled calls (with replay)"),
    "export": ("training.export_cli", "export a training run to a calibrated ONNX model in the registry"),
    "models": ("models.cli", "list, show, promote and roll back registry versions"),
    "evaluate": ("evaluation.cli", "write a QA report (metrics.json + report.html) for a model"),
    "bootstrap": ("training.bootstrap", "build the default model (corpus, train, export, promote) if there is none"),
    "serve": ("serving.cli", "run the live scoring service (builds the default model if none)"),
    "stream": ("serving.stream_cli", "play an audio file into a running server as a live call"),
    "report": ("evaluation.calls_cli:report", "measure the call log: conversion of buying calls per source/campaign"),
    "calls": ("evaluation.calls_cli:calls", "export logged calls with outcomes as labeled training data"),
    "webhooks": ("serving.webhooks_cli", "list webhook deliveries and send failed ones again"),
}

EPILOG = """\
typical flow:
  callintent data synth --n 6000 --seed 0          # built-in labeled corpus
  callintent train --config training/configs/default.yaml
  callintent export runs/default                   # -> models/registry/intent/<version>
  callintent models promote intent/<version> --to production --force --reason "first model"
  callintent serve                                 # http://127.0.0.1:3000
  callintent stream call.wav --realtime            # watch a live decision

Run 'callintent COMMAND --help' for each command's options."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callintent",
        description="Find buying intent in the opening 30 seconds of a phone call.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"callintent {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (spec, help_text) in COMMANDS.items():
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name and module_name.startswith(e.name):
                continue  # stage not built yet / not installed in this (e.g. serving-only) install
            raise
        module = getattr(module, attr) if attr else module
        cmd = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip().split("\n\n")[0],
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)  # an s3:// registry: no line per credential lookup
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except UserError as e:
        print(f"callintent {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("callintent: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
