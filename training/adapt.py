"""Adapt a trained intent model to a customer's own calls: start from its weights, replay its data.

A run with ``init_from`` (``callintent adapt``, or any training config) differs from a fresh run in
three places, each a function here that :func:`training.train.train` calls:

1. :func:`resolve_init` finds the model to start from (a registry reference such as
   ``production`` or ``intent/v3`` whose artifact kept its ``torch/`` weights, or a training run
   directory) and, when ``replay_rows`` is set without ``replay_files``, fills ``replay_files`` with
   the files that model was trained on (its recorded ``train_files`` and ``replay_files``), so the
   run's own ``train_config.yaml`` says exactly what was replayed;
2. :func:`mix_replay` draws ``replay_rows`` rows from the replay files' train split, the same
   number per class (seeded), and adds them to the customer's train split; the customer's
   validation split gets replay rows from the replay files' validation split in the same
   proportion (``replay_rows * validation / train``). Validation therefore holds a seeded share of
   the customer's own rows (``data.val_fraction`` of them) *and* the original kind of traffic, in
   the mix training sees: the best epoch and the calibration (temperature, thresholds) are chosen
   for both, not on a handful of the customer's calls alone, which at 8 labeled calls per class
   would be two or three rows per class;
3. :func:`initial_model` loads the saved model (encoder, tokenizer and both heads) instead of an
   encoder with fresh heads.

The result is an ordinary run directory: ``callintent export`` registers it as a new version,
which is evaluated and promoted through the usual gate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from callintent.errors import UserError
from data.dataset import DataConfig
from models.labels import CLASS_INDEX, CLASS_NAMES, SIGNAL_NAMES
from training.config import TrainConfig

if TYPE_CHECKING:
    from training.model import IntentModel

logger = logging.getLogger(__name__)

#: The saved-model files that mark a directory :meth:`IntentModel.from_pretrained` can load
#: (``training.model.HEADS_CONFIG``; named here so resolving a reference needs no torch).
_HEADS_CONFIG = "intent_model.json"
#: A training run's weights and config (``training.train.BEST_DIR`` / ``TRAIN_CONFIG_FILE``).
_RUN_WEIGHTS = "best"
_RUN_CONFIG = "train_config.yaml"


@dataclass(frozen=True)
class InitSource:
    """The trained model a run starts from.

    Attributes:
        ref: ``init_from`` as configured (``production``, ``intent/v3``, ``runs/base`` …).
        path: The run, artifact or model directory it resolved to (absolute).
        weights_dir: The saved :class:`~training.model.IntentModel` directory inside it.
        version: ``"intent/v3"`` when it is a registry version, else "".
        recorded_config: That model's ``train_config.yaml``; None when there is none.
    """

    ref: str
    path: Path
    weights_dir: Path
    version: str = ""
    recorded_config: Path | None = None


@dataclass(frozen=True)
class AdaptationRecord:
    """What an adaptation run started from and mixed in (``metrics.json`` ``adaptation``, the model card).

    Attributes:
        init_from: ``init_from`` as configured.
        path: The directory it resolved to.
        version: Registry version (``intent/v3``) or "".
        replay_files: Files the replay rows were drawn from.
        new_train: The customer's rows in the train split.
        new_validation: The customer's rows in the validation split.
        replay_train: Replay rows added to train, per class.
        replay_validation: Replay rows added to validation, per class.
    """

    init_from: str
    path: str
    version: str
    replay_files: tuple[str, ...]
    new_train: int
    new_validation: int
    replay_train: dict[str, int] = field(default_factory=dict)
    replay_validation: dict[str, int] = field(default_factory=dict)


def find_init_source(ref: str, registry_root: str | Path | None = None) -> InitSource:
    """Resolve ``init_from`` to the directory of saved torch weights it names.

    Args:
        ref: A training run directory (``<run>/best``), a saved model directory, an artifact
            directory, or a registry reference (``production``, ``candidate``, ``v3``, ``intent/v3``).
        registry_root: Registry root; None = ``$CALLINTENT_REGISTRY`` or ``models/registry``.

    Returns:
        The source.

    Raises:
        UserError: nothing by that name, or an artifact exported without its torch weights.
    """
    from models.artifact import META, TORCH_DIR, TRAIN_CONFIG, ArtifactMeta
    from models.registry import Registry, RegistryError

    path = Path(ref)
    if (path / _RUN_WEIGHTS / _HEADS_CONFIG).is_file():
        return InitSource(ref, path.absolute(), path.absolute() / _RUN_WEIGHTS, "",
                          _existing(path / _RUN_CONFIG))
    if (path / _HEADS_CONFIG).is_file():  # <run>/best or <artifact>/torch named directly
        recorded = _existing(path.parent / _RUN_CONFIG) or _existing(path.parent / TRAIN_CONFIG)
        return InitSource(ref, path.absolute(), path.absolute(), "", recorded)
    registry = Registry(registry_root)
    try:
        artifact = registry.resolve(ref)
    except RegistryError as e:
        raise UserError(f"init_from {ref!r}: not a training run directory (no {_RUN_WEIGHTS}/), not a saved model "
                        f"and not a registry version: {e}") from None
    meta = ArtifactMeta.load(artifact) if (artifact / META).is_file() else None
    version = f"{meta.name}/{meta.version}" if meta is not None and meta.version else ""
    weights = artifact / TORCH_DIR
    if not (weights / _HEADS_CONFIG).is_file():
        run_dir = (meta.extra.get("run_dir") if meta is not None else None) or ""
        hint = (f"init_from its training run ({run_dir}) if it still exists, or re-export that run"
                if run_dir else "re-export its training run")
        raise UserError(f"init_from {ref!r}: {artifact} holds only the ONNX graphs, not the torch weights "
                        f"({TORCH_DIR}/) that fine-tuning starts from (it was exported before they were kept); "
                        f"{hint} with 'callintent export RUN' and adapt the new version")
    return InitSource(ref, artifact.absolute(), weights.absolute(), version, _existing(artifact / TRAIN_CONFIG))


def resolve_init(config: TrainConfig, registry_root: str | Path | None = None
                 ) -> tuple[TrainConfig, InitSource | None]:
    """Find ``config.init_from`` and fill in ``replay_files`` from its recorded training config.

    Args:
        config: The run config.
        registry_root: Registry root for references; None = the default registry.

    Returns:
        The config (with ``replay_files`` filled in when replay needs them) and the source, or
        ``(config, None)`` for a run that trains from ``base_model``.

    Raises:
        UserError: see :func:`find_init_source`; replay asked for but nothing recorded to replay, or a
            recorded file that is not there.
    """
    if not config.init_from:
        return config, None
    source = find_init_source(config.init_from, registry_root)
    logger.info("init_from %s: %s%s", config.init_from, source.weights_dir,
                f" ({source.version})" if source.version else "")
    if config.replay_rows and not config.replay_files:
        config = replace(config, replay_files=recorded_training_files(source))
    for name in config.replay_files:
        if not Path(name).is_file():
            where = f" (recorded in {source.recorded_config})" if source.recorded_config else ""
            raise UserError(f"{name}: replay file not found{where}; run from the directory the model was "
                            f"trained in, or set replay_files to the data to replay")
    return config, source


def recorded_training_files(source: InitSource) -> tuple[str, ...]:
    """The files a model was trained on: its recorded ``train_files`` then ``replay_files``.

    Raises:
        UserError: the model has no recorded training config, or it names no files.
    """
    if source.recorded_config is None:
        raise UserError(f"init_from {source.ref!r}: {source.path} has no recorded training config to replay from; "
                        f"set replay_files to the data it was trained on")
    raw = _recorded(source)
    files = [*(raw.get("train_files") or []), *(raw.get("replay_files") or [])]
    if not files or not all(isinstance(f, str) and f for f in files):
        raise UserError(f"{source.recorded_config}: no train_files recorded to replay from; set replay_files")
    return tuple(dict.fromkeys(files))


def replay_data_config(source: InitSource, fallback: DataConfig) -> DataConfig:
    """How the replay files are split: the ``init_from`` model's recorded ``data`` settings, so its
    train rows are replayed into train and its held-out rows stay out of train; ``fallback`` when
    nothing is recorded.

    Raises:
        UserError: a recorded ``data`` section this code cannot read.
    """
    from callintent.config import ConfigError, load_config

    raw = _recorded(source).get("data")
    if not raw:
        return fallback
    try:
        return load_config(None, DataConfig, raw)
    except ConfigError as e:
        raise UserError(f"{source.recorded_config}: its data section does not load here ({e})") from None


def _recorded(source: InitSource) -> dict[str, Any]:
    import yaml

    if source.recorded_config is None:
        return {}
    raw = yaml.safe_load(source.recorded_config.read_text(encoding="utf-8"))
    return raw if isinstance(raw, dict) else {}


def sample_per_class(labels: Sequence[str], n: int, seed: int) -> list[int]:
    """Indices of ``n`` rows, the same number per class where the classes have them (seeded).

    A class with fewer rows than its share gives all it has and the rest goes to the other classes,
    so the sample has ``min(n, len(labels))`` rows. Leftovers of an uneven division go to the first
    classes in ``CLASS_NAMES`` order.

    Args:
        labels: Class name per row.
        n: Rows to draw.
        seed: Seed of the draw.

    Returns:
        Sorted row indices.
    """
    rng = np.random.default_rng(seed)
    classes = sorted(set(labels), key=lambda c: CLASS_INDEX.get(c, len(CLASS_INDEX)))
    pools = {c: rng.permutation([i for i, label in enumerate(labels) if label == c]).tolist() for c in classes}
    taken = dict.fromkeys(classes, 0)
    remaining = min(n, len(labels))
    open_classes = list(classes)
    while remaining > 0 and open_classes:
        share, extra = divmod(remaining, len(open_classes))
        for i, c in enumerate(open_classes):
            take = min(share + (i < extra), len(pools[c]) - taken[c])
            taken[c] += take
            remaining -= take
        open_classes = [c for c in open_classes if taken[c] < len(pools[c])]
    return sorted(i for c in classes for i in pools[c][:taken[c]])


def mix_replay(config: TrainConfig, source: InitSource | None, dsd: Any) -> tuple[Any, AdaptationRecord | None]:
    """Add ``replay_rows`` rows of the replay files to train, and their share to validation.

    Args:
        config: The run config (after :func:`resolve_init`).
        source: Where the run starts; None = not an adaptation run (``dsd`` is returned as it is).
        dsd: The customer's ``DatasetDict`` (train and validation non-empty).

    Returns:
        ``(dataset_dict, record)``; test is never touched (it stays the customer's).
    """
    from datasets import Dataset, DatasetDict

    from data.dataset import load_labeled

    if source is None:
        return dsd, None
    new_train, new_validation = len(dsd["train"]), len(dsd["validation"]) if "validation" in dsd else 0
    record = AdaptationRecord(init_from=config.init_from, path=str(source.path), version=source.version,
                              replay_files=tuple(config.replay_files), new_train=new_train,
                              new_validation=new_validation)
    if not config.replay_rows or not new_train:
        return dsd, record
    pool = load_labeled(list(config.replay_files), replay_data_config(source, config.data))
    if len(pool["train"]) == 0:
        raise UserError(f"replay_files {list(config.replay_files)}: no train rows to replay")
    train_idx = sample_per_class(pool["train"]["label"], config.replay_rows, config.seed)
    # Validation replay comes from the pool's own validation rows, never from rows replayed in train.
    val_pool = pool["validation"] if len(pool["validation"]) else pool["train"].select(
        sorted(set(range(len(pool["train"]))) - set(train_idx)))
    n_val = round(config.replay_rows * new_validation / new_train)
    val_idx = sample_per_class(val_pool["label"], n_val, config.seed + 1)

    out = dict(dsd)
    counts: dict[str, dict[str, int]] = {}
    for split, rows, idx in (("train", pool["train"], train_idx), ("validation", val_pool, val_idx)):
        if split not in out:
            continue
        picked = rows.select(idx)
        columns = out[split].column_names
        replay = [{k: row[k] for k in columns} for row in picked]
        out[split] = Dataset.from_list(out[split].to_list() + replay, features=out[split].features)
        labels = picked["label"]
        counts[split] = {c: labels.count(c) for c in CLASS_NAMES if c in labels}
    record = replace(record, replay_train=counts.get("train", {}), replay_validation=counts.get("validation", {}))
    logger.info("replay: %d train rows %s, %d validation rows %s, from %s", len(train_idx), record.replay_train,
                len(val_idx), record.replay_validation, ", ".join(config.replay_files))
    return DatasetDict(out), record


def initial_model(config: TrainConfig, source: InitSource | None) -> IntentModel:
    """The model training starts from: ``source``'s saved model, or ``base_model`` with fresh heads.

    Args:
        config: The run config (its ``max_length`` and ``classifier_dropout`` apply either way).
        source: From :func:`resolve_init`; None = fresh heads on ``config.base_model``.

    Raises:
        UserError: an encoder that does not load, or a saved model whose classes or signals are not
            this code's.
    """
    from training.model import IntentModel, IntentModelConfig

    if source is None:
        return IntentModel.from_encoder(config.base_model, IntentModelConfig(
            max_length=config.max_length, classifier_dropout=config.classifier_dropout))
    model = IntentModel.from_pretrained(source.weights_dir)
    saved = model.intent_config
    if saved.classes != CLASS_NAMES or saved.signals != SIGNAL_NAMES:
        raise UserError(f"init_from {config.init_from!r}: {source.weights_dir} predicts classes {list(saved.classes)} "
                        f"and signals {list(saved.signals)}, this code {list(CLASS_NAMES)} and {list(SIGNAL_NAMES)}")
    if saved.max_length != config.max_length:
        logger.info("init_from model was trained with max_length %d; adapting with %d", saved.max_length,
                    config.max_length)
    model.intent_config = replace(saved, max_length=config.max_length, classifier_dropout=config.classifier_dropout)
    model.dropout.p = config.classifier_dropout
    return model


def _existing(path: Path) -> Path | None:
    return path.absolute() if path.is_file() else None
