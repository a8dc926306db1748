"""Make, check, split and transcribe labeled call openings.

Each subcommand lives beside the code it drives (``data/*_cli.py``), each module providing
``register(subparsers)``; this module only collects them.
"""

from __future__ import annotations

import argparse
import importlib

SUBCOMMAND_MODULES = ("data.synth_cli", "data.dataset_cli", "data.transcribe_cli", "data.render_cli",
                      "data.asr_noise_cli")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    for module_name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name == module_name:
                continue
            raise
        module.register(sub)


def run(args: argparse.Namespace) -> int:
    return int(args.data_run(args) or 0)
