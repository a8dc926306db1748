"""Build the built-in default model when the registry has no production model.

The Quick start's first command (``make serve``) runs this before serving, so a new machine goes
from nothing to a live service with no outside data: built-in corpus (+ the real text in
``data/real/``) → train → export (fp32 +
int8, verified) → register → promote to ``production``. A second run finds the production model
and returns at once.

The first production model has no production model to be compared against, so it is promoted with
``force`` and a recorded reason (see ``callintent models history``); every later model goes
through the evaluation gate.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from callintent.errors import UserError

if TYPE_CHECKING:
    from training.export import ExportConfig

logger = logging.getLogger(__name__)

BOOTSTRAP_REASON = ("bootstrap: built-in default model trained on the built-in corpus and the bundled real text; "
                    "no production model to compare against")


def default_config_path() -> Path:
    """The packaged default training config (works from a checkout and from an install)."""
    import training

    return Path(training.__file__).resolve().parent / "configs" / "default.yaml"


def ensure_default_model(
    registry_root: str | Path | None = None,
    *,
    config_path: str | Path | None = None,
    overrides: tuple[str, ...] = (),
    corpus_size: int = 6000,
    corpus_seed: int = 0,
    rebuild: bool = False,
    export: ExportConfig | None = None,
) -> str:
    """Return the production model's reference, building the default model first if there is none.

    Args:
        registry_root: Registry directory (default: ``$CALLINTENT_REGISTRY`` or ``models/registry``).
        config_path: Training config (default: the packaged ``training/configs/default.yaml``).
        overrides: ``key=value`` overrides for the training config.
        corpus_size: Rows of built-in corpus to generate when the training file is missing.
        corpus_seed: Seed of the generated corpus.
        rebuild: Build and promote a new default model even if production exists.
        export: Export settings (default ``ExportConfig()``: the int8 gate and parity check as shipped).

    Returns:
        ``"<name>/<version>"`` of the production model.
    """
    from models.registry import Registry

    registry = Registry(registry_root)
    if not rebuild:
        try:
            info = registry.show("production")
        except UserError:
            pass
        else:
            logger.info("production model %s found in %s; nothing to build", info.ref, registry.root)
            return info.ref

    from callintent.config import load_config
    from data.synth import DEFAULT_ASR_NOISE, generate_corpus, write_jsonl
    from training.config import DEFAULT_CORPUS, TrainConfig
    from training.export import ExportConfig, export_run
    from training.train import train

    started = time.perf_counter()
    config = load_config(config_path or default_config_path(), TrainConfig, overrides)
    if DEFAULT_CORPUS in config.train_files and not Path(DEFAULT_CORPUS).exists():
        logger.info("generating the built-in corpus (%d calls, seed %d) -> %s", corpus_size, corpus_seed, DEFAULT_CORPUS)
        write_jsonl(generate_corpus(corpus_size, corpus_seed, asr_noise=DEFAULT_ASR_NOISE), DEFAULT_CORPUS)
    logger.info("training the default model (%s); this takes a while on CPU", config.output_dir)
    run = train(config)
    exported = export_run(run.output_dir, config=export or ExportConfig())
    ref = registry.register(exported.artifact_dir)
    registry.promote(ref, "production", force=True, reason=BOOTSTRAP_REASON)
    logger.info("default model %s is in production (built in %.0f s)", ref, time.perf_counter() - started)
    return ref


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", default=None, help="registry directory (default: $CALLINTENT_REGISTRY or models/registry)")
    parser.add_argument("--config", default=None, help="training config (default: training/configs/default.yaml)")
    parser.add_argument("--rebuild", action="store_true", help="build and promote a new default model even if production exists")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="training config overrides, e.g. epochs=1")


def run(args: argparse.Namespace) -> int:
    ref = ensure_default_model(args.registry, config_path=args.config, overrides=tuple(args.overrides), rebuild=args.rebuild)
    print(ref)
    return 0
