"""Fine-tune the intent model with the Hugging Face ``Trainer``, then calibrate it on validation.

Phases, top to bottom in :func:`train`: load and tokenize the data → build the model → train with
evaluation each epoch on validation macro-F1 (early stopping, best checkpoint kept) → calibrate
on validation → score validation and test → write the run directory::

    <output_dir>/best/              IntentModel.save_pretrained: encoder, tokenizer, heads
    <output_dir>/calibration.json   temperature, signal thresholds, buying threshold, ECE
    <output_dir>/metrics.json       per-epoch validation macro-F1, validation/test metrics, wall time
    <output_dir>/train_config.yaml  the resolved TrainConfig
    <output_dir>/eval_data/         the validation and test splits (export scores exactly these)

Runs on CPU, or on CUDA when present (``device: auto``). Several GPUs need no code change::

    torchrun --nproc_per_node 4 -m training --config training/configs/default.yaml
    accelerate launch -m training --config training/configs/default.yaml

(``batch_size`` is then per device; only the main process writes the run directory.)
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments, set_seed

from callintent.config import dump_config
from callintent.errors import UserError
from models.calibration import sigmoid, softmax
from models.labels import CLASS_NAMES
from data.sources import data_sources
from training.adapt import AdaptationRecord, initial_model, mix_replay, resolve_init
from training.calibrate import Calibration, fit_calibration
from training.config import TrainConfig, require_train_files
from training.features import IntentCollator, encode_dataset
from training.metrics import split_metrics
from training.model import IntentModel, intent_loss

logger = logging.getLogger(__name__)

BEST_DIR = "best"
METRICS_FILE = "metrics.json"
TRAIN_CONFIG_FILE = "train_config.yaml"
EVAL_DATA_DIR = "eval_data"
_CHECKPOINTS_DIR = "checkpoints"

#: Trainer batch keys that are targets, not model inputs (also what evaluation hands to metrics).
_LABEL_NAMES = ["labels", "signal_labels", "signal_mask"]


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of training.

    Attributes:
        epoch: 1-based epoch number.
        val_macro_f1: Validation macro-F1 after the epoch (argmax, uncalibrated = same argmax).
        val_loss: Validation loss.
        train_loss: Mean training loss logged during the epoch (None if nothing was logged).
        train_seconds: Wall time of the epoch's training steps.
        eval_seconds: Wall time of the evaluation.
    """

    epoch: int
    val_macro_f1: float
    val_loss: float
    train_loss: float | None
    train_seconds: float
    eval_seconds: float


@dataclass(frozen=True)
class RunResult:
    """What a training run produced (also written as ``metrics.json``).

    Attributes:
        output_dir: The run directory.
        epochs: Per-epoch records.
        best_epoch: Epoch whose weights were kept.
        stopped_early: Whether early stopping ended training before ``epochs``.
        validation: Calibrated metrics of the best model on validation.
        test: Calibrated metrics on test (empty when the test split is empty).
        calibration: The fitted calibration.
        data_fingerprint: ``data.dataset.fingerprint`` of the loaded data.
        split_sizes: Rows per split (``train`` counts the rows actually trained on).
        device: Device the model trained on.
        wall_seconds: Total wall time of :func:`train`.
        base_model: The encoder fine-tuned from.
        corrections_applied: QA corrections merged into the data.
        augmentation: ``asr_train`` / ``asr_validation`` (rows switched to ASR text),
            ``tagged_train`` / ``tagged_validation`` (rows written speaker-tagged) and
            ``prefix_copies`` (truncated copies added to train), ``noised_train`` (train rows
            rewritten by the ASR-noise model); None when none was asked for.
        call_log_rows: Rows that are real calls from the service's call log (``{"total", "train",
            "qa_labeled"}``; see :func:`call_log_rows`).
        mix: What source-aware sampling drew (``{"loaded", "drawn", "class_shares"}``, counts per
            ``<file>/<class>``; see :mod:`training.sampling`); None when ``mix`` is off.
        adaptation: Where an ``init_from`` run started and what it replayed; None for a run
            from ``base_model``.
    """

    output_dir: str
    epochs: tuple[EpochRecord, ...]
    best_epoch: int
    stopped_early: bool
    validation: dict[str, float]
    test: dict[str, float]
    calibration: Calibration
    data_fingerprint: str
    split_sizes: dict[str, int]
    device: str
    wall_seconds: float
    base_model: str = ""
    corrections_applied: int = 0
    augmentation: dict[str, int] | None = None
    call_log_rows: dict[str, int] | None = None
    mix: dict[str, Any] | None = None
    adaptation: AdaptationRecord | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def load_training_data(config: TrainConfig) -> tuple[Any, int]:
    """Load and split ``config.train_files`` with ``config.data``, applying ``correction_files``.

    Returns:
        The ``DatasetDict`` and the number of corrections applied.

    Raises:
        UserError: a file is missing (with how to create the built-in corpus when it is that one),
            or the data is invalid.
    """
    from data.dataset import load_labeled_with_report

    require_train_files(config)
    dsd, report = load_labeled_with_report(list(config.train_files), config.data,
                                           corrections=list(config.correction_files) or None)
    if config.correction_files:
        logger.info("applied %d QA corrections from %s", report.corrections_applied, ", ".join(config.correction_files))
    return dsd, report.corrections_applied


def group_names(files: tuple[str, ...]) -> list[str]:
    """The source group of each file, in order: its stem, or its path where two files share a stem."""
    stems = [Path(f).stem for f in files]
    return [stem if stems.count(stem) == 1 else name for name, stem in zip(files, stems)]


def source_groups(files: tuple[str, ...]) -> dict[str, str]:
    """``call_id -> group`` for every row of ``files``: the group is the file's stem
    (``corpus``, ``sgd_openings``), or its path where two files share a stem."""
    from data.dataset import read_records

    groups: dict[str, str] = {}
    for name, group in zip(files, group_names(files)):
        for record in read_records(name):
            if isinstance(record.data, dict) and record.data.get("call_id") is not None:
                groups[str(record.data["call_id"])] = group
    return groups


def mix_training_rows(config: TrainConfig, train_rows: Any) -> tuple[Any, dict[str, Any] | None]:
    """Draw the training split source-aware (``config.mix``; :mod:`training.sampling`).

    Returns:
        The drawn split (or ``train_rows`` unchanged when the mix is off) and the draw's counts.
    """
    from dataclasses import asdict

    from datasets import Dataset

    from training.sampling import draw_training_rows

    if not config.mix.enabled:
        return train_rows, None
    by_call = source_groups(config.train_files)
    rows = train_rows.to_list()
    missing = [r["call_id"] for r in rows if r["call_id"] not in by_call]
    if missing:
        raise UserError(f"mix: {len(missing)} training rows (e.g. {missing[0]!r}) come from no file in train_files; "
                        f"source-aware sampling needs to know each row's file")
    groups = [by_call[r["call_id"]] for r in rows]
    weights = dict(zip(group_names(config.train_files), config.mix.weights))
    try:
        drawn, report = draw_training_rows(rows, groups, config.mix, weights, config.seed)
    except ValueError as e:
        raise UserError(str(e)) from None
    logger.info("source-aware mix: %d training rows drawn from %d (class shares %s); per file/class %s",
                len(drawn), len(rows), report.class_shares,
                ", ".join(f"{k} {report.loaded.get(k, 0)}->{v}" for k, v in report.drawn.items()))
    return Dataset.from_list(list(drawn), features=train_rows.features), asdict(report)


def augment_splits(config: TrainConfig, splits: dict[str, Any]) -> dict[str, int] | None:
    """Apply ``asr_mix`` (train and validation), ``spoken_frame`` (train), ``speaker_tags`` (train and
    validation), ``prefix_seconds`` (train) and ``asr_noise_share`` (train) in place on ``splits``,
    in that order.

    Validation takes ASR and tagged text too, so early stopping and calibration see the text
    serving scores; it gets no prefix copies (model selection stays on whole openings), and test
    is left as loaded (the run's test metrics stay comparable with earlier runs). Prefix copies
    are cut from the switched rows, so some copies are ASR text and some are tagged. ASR noise
    comes last, as an ASR would hear the final text: it may noise framed, tagged (the tags are
    kept) and prefix-copy rows, never rows already on rendered ASR text.

    Returns:
        Counts of what changed, or None when no option is set.
    """
    from datasets import Dataset

    from training.augment import asr_noise, mix_asr_text, prefix_copies, read_asr_texts, spoken_frame, tag_speakers

    if not (config.asr_mix > 0 or config.speaker_tags > 0 or config.prefix_seconds or config.spoken_frame > 0
            or config.asr_noise_share > 0):
        return None
    counts = {"asr_train": 0, "asr_validation": 0, "framed_train": 0, "tagged_train": 0, "tagged_validation": 0,
              "prefix_copies": 0, "noised_train": 0}
    if config.asr_mix > 0:
        asr = read_asr_texts(config.asr_files)
        for name in ("train", "validation"):
            rows, counts[f"asr_{name}"] = mix_asr_text(splits[name].to_list(), asr, config.asr_mix, config.seed)
            splits[name] = Dataset.from_list(rows, features=splits[name].features)
        if not counts["asr_train"]:
            logger.warning("asr_mix %.2f switched no training row: no call_id of %s is in the training split",
                           config.asr_mix, ", ".join(config.asr_files))
    if config.spoken_frame > 0:
        rows, counts["framed_train"] = spoken_frame(splits["train"].to_list(), config.spoken_frame, config.seed)
        splits["train"] = Dataset.from_list(rows, features=splits["train"].features)
    if config.speaker_tags > 0:
        for name in ("train", "validation"):
            rows, counts[f"tagged_{name}"] = tag_speakers(splits[name].to_list(), config.speaker_tags, config.seed)
            splits[name] = Dataset.from_list(rows, features=splits[name].features)
        if not counts["tagged_train"]:
            logger.warning("speaker_tags %.2f tagged no training row: no row has speaker turns that spell its "
                           "transcript (a 'turns' list of {speaker: caller|agent, text})", config.speaker_tags)
    if config.prefix_seconds:
        rows = splits["train"].to_list()
        copies = prefix_copies(rows, config.prefix_seconds, config.prefix_copies, config.seed)
        counts["prefix_copies"] = len(copies)
        splits["train"] = Dataset.from_list(rows + copies, features=splits["train"].features)
    if config.asr_noise_share > 0:
        from data.asr_noise import AsrNoiseModel

        model = AsrNoiseModel.load(config.asr_noise)
        rows, counts["noised_train"] = asr_noise(splits["train"].to_list(), model, config.asr_noise_share, config.seed,
                                                 strength=config.asr_noise_strength)
        splits["train"] = Dataset.from_list(rows, features=splits["train"].features)
    logger.info("augmentation: %d train / %d validation rows on ASR text, %d typed train rows framed as calls, "
                "%d / %d speaker-tagged, %d prefix copies added to train, %d train rows ASR-noised",
                counts["asr_train"], counts["asr_validation"], counts["framed_train"], counts["tagged_train"],
                counts["tagged_validation"], counts["prefix_copies"], counts["noised_train"])
    return counts


def call_log_rows(dsd: Any) -> dict[str, int]:
    """How many rows are real calls from the service's call log (``origin: "call_log"`` in ``extra``).

    Args:
        dsd: The ``DatasetDict`` (every split counts).

    Returns:
        ``{"total", "train", "qa_labeled"}``: all call-log rows, those in the train split, and those
        whose label a person corrected (``label_source: "qa"``; the rest carry the logged model's label).
    """
    import json

    counts = {"total": 0, "train": 0, "qa_labeled": 0}
    for split, rows in dsd.items():
        for raw in rows["extra"]:
            extra = json.loads(raw or "{}")
            if extra.get("origin") != "call_log":
                continue
            counts["total"] += 1
            counts["train"] += split == "train"
            counts["qa_labeled"] += extra.get("label_source") == "qa"
    return counts


def class_weight_vector(config: TrainConfig, labels: np.ndarray) -> list[float] | None:
    """Cross-entropy class weights for ``config.class_weights`` (None = unweighted).

    Args:
        config: The run config.
        labels: Class index of every training row.

    Returns:
        One weight per class in ``CLASS_NAMES`` order, or None.
    """
    if config.class_weights == "none":
        return None
    if config.class_weights == "balanced":
        from sklearn.utils.class_weight import compute_class_weight

        present = np.unique(labels)
        weights = dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=labels)))
        # A class with no training rows never appears in the loss; its weight does not matter.
        return [float(weights.get(i, 1.0)) for i in range(len(CLASS_NAMES))]
    return [float(w) for w in config.class_weights]


def signal_pos_weight_vector(config: TrainConfig, signal_labels: np.ndarray, labeled: np.ndarray) -> list[float] | None:
    """Per-signal positive weights for the signal BCEs: negatives/positives, clipped to
    ``[1, config.signal_pos_weight_max]`` (None when the setting is 0 or no row is labeled).

    Args:
        config: The run config.
        signal_labels: Multi-hot signals of every training row ``[rows, n_signals]``.
        labeled: Whether each row's signals are labeled ``[rows]``.
    """
    if not config.signal_pos_weight_max or not labeled.any():
        return None
    rows = signal_labels[labeled.astype(bool)]
    positives = rows.sum(axis=0)
    ratio = (len(rows) - positives) / np.maximum(positives, 1.0)
    return np.clip(ratio, 1.0, config.signal_pos_weight_max).astype(float).tolist()


class IntentTrainer(Trainer):
    """``Trainer`` with the joint class + signal + token loss of :func:`training.model.intent_loss`."""

    def __init__(self, *args: Any, class_weights: list[float] | None, signal_weight: float, token_weight: float,
                 signal_pos_weight: list[float] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.class_weights = torch.tensor(class_weights) if class_weights is not None else None
        self.signal_pos_weight = torch.tensor(signal_pos_weight) if signal_pos_weight is not None else None
        self.signal_weight = signal_weight
        self.token_weight = token_weight

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        output = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        loss = intent_loss(
            output, labels=inputs["labels"], signal_labels=inputs["signal_labels"],
            signal_mask=inputs["signal_mask"], token_targets=inputs["token_targets"],
            token_mask=inputs["token_mask"], attention_mask=inputs["attention_mask"],
            class_weights=self.class_weights, signal_weight=self.signal_weight, token_weight=self.token_weight,
            signal_pos_weight=self.signal_pos_weight,
        )
        if return_outputs:
            # Evaluation gathers these (in this order) as EvalPrediction.predictions.
            return loss.total, {"class_logits": output.class_logits, "signal_logits": output.signal_logits}
        return loss.total


class _EpochLog(TrainerCallback):
    """Records each epoch's validation macro-F1, losses and wall times, and logs them."""

    def __init__(self) -> None:
        self.records: list[EpochRecord] = []
        self._epoch_start = self._eval_start = time.perf_counter()
        self._train_seconds = 0.0
        self._logged_steps = 0

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._epoch_start = time.perf_counter()
        self._logged_steps = len(state.log_history)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._train_seconds = time.perf_counter() - self._epoch_start
        self._eval_start = time.perf_counter()

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None,
                    **kwargs: Any) -> None:
        metrics = metrics or {}
        losses = [e["loss"] for e in state.log_history[self._logged_steps:] if "loss" in e]
        record = EpochRecord(
            epoch=int(round(state.epoch or 0)),
            val_macro_f1=float(metrics.get("eval_macro_f1", 0.0)),
            val_loss=float(metrics.get("eval_loss", 0.0)),
            train_loss=float(np.mean(losses)) if losses else None,
            train_seconds=round(self._train_seconds, 2),
            eval_seconds=round(time.perf_counter() - self._eval_start, 2),
        )
        self.records.append(record)
        logger.info("epoch %d: validation macro-F1 %.4f, loss %.4f (train %.0fs, eval %.0fs)", record.epoch,
                    record.val_macro_f1, record.val_loss, record.train_seconds, record.eval_seconds)


def _compute_metrics(eval_pred: Any) -> dict[str, float]:
    class_logits, signal_logits = eval_pred.predictions
    labels, signal_labels, signal_mask = eval_pred.label_ids
    m = split_metrics(labels, softmax(class_logits), sigmoid(signal_logits), signal_labels, signal_mask)
    return {k: m[k] for k in ("macro_f1", "accuracy", "signal_micro_f1") if k in m}


def _predict(trainer: Trainer, dataset: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(class_logits, signal_probs, labels, signal_labels, signal_mask)`` of a split."""
    out = trainer.predict(dataset)
    class_logits, signal_logits = out.predictions
    labels, signal_labels, signal_mask = out.label_ids
    return class_logits, sigmoid(signal_logits), labels, signal_labels, signal_mask


def _training_arguments(config: TrainConfig, output_dir: Path) -> TrainingArguments:
    import dataclasses

    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    # Names that changed across transformers releases (pyproject allows a range): a float
    # warmup_steps below 1 is a share of all steps in 5.x, warmup_ratio before; the length-grouped
    # sampler is train_sampling_strategy in recent 5.x, group_by_length before.
    sampling = "group_by_length" if config.group_by_length else "random"
    version_specific = {
        **({"warmup_ratio": config.warmup_ratio} if "warmup_ratio" in known else {"warmup_steps": config.warmup_ratio}),
        **({"train_sampling_strategy": sampling} if "train_sampling_strategy" in known
           else {"group_by_length": config.group_by_length}),
    }
    return TrainingArguments(
        output_dir=str(output_dir / _CHECKPOINTS_DIR),
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        weight_decay=config.weight_decay,
        lr_scheduler_type="linear",
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        save_only_model=True,
        load_best_model_at_end=True,
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        logging_strategy="steps",
        logging_steps=config.log_every,
        report_to="none",
        seed=config.seed,
        use_cpu=config.device == "cpu",
        label_names=list(_LABEL_NAMES),
        remove_unused_columns=False,
        length_column_name="length",  # for group_by_length (see TrainConfig)
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        **version_specific,
    )


def train(config: TrainConfig, dataset: Any | None = None) -> RunResult:
    """Train, calibrate and write a run directory.

    Args:
        config: The run config.
        dataset: A ``DatasetDict`` with the ``data.dataset`` columns; None = load
            ``config.train_files`` with ``config.data``.

    Returns:
        The run's results (also in ``<output_dir>/metrics.json``).

    Raises:
        UserError: missing/invalid data, empty train or validation split, unusable base model,
            or ``device: cuda`` without CUDA.
    """
    from datasets import DatasetDict

    from data.dataset import fingerprint

    started = time.perf_counter()
    config, init_source = resolve_init(config)  # init_from: the model to adapt, the data to replay
    if config.device == "cuda" and not torch.cuda.is_available():
        raise UserError("device is 'cuda' but torch sees no CUDA device (use device=auto or cpu)")
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    output_dir = Path(config.output_dir)

    # -- data
    dsd, corrections_applied = (dataset, 0) if dataset is not None else load_training_data(config)
    for split in ("train", "validation"):
        if split not in dsd or len(dsd[split]) == 0:
            raise UserError(f"the {split} split is empty: training needs labeled rows in train and validation "
                            f"(see data.val_fraction, or the files' split column)")
    dsd, adaptation = mix_replay(config, init_source, dsd)
    data_fingerprint = fingerprint(dsd)
    train_rows = dsd["train"]
    if config.max_train_examples and config.max_train_examples < len(train_rows):
        train_rows = train_rows.shuffle(seed=config.seed).select(range(config.max_train_examples))
    train_rows, mix = mix_training_rows(config, train_rows)
    splits = {"train": train_rows, "validation": dsd["validation"], "test": dsd.get("test", dsd["validation"].select([]))}
    augmentation = augment_splits(config, splits)
    sizes = {name: len(ds) for name, ds in splits.items()}
    logger.info("data %s…: train %d, validation %d, test %d", data_fingerprint[:12], *sizes.values())

    # -- model (seeded before the heads are initialised, so the run is reproducible)
    set_seed(config.seed)
    model = initial_model(config, init_source)
    tokenizer = model.tokenizer
    encoded = encode_dataset(DatasetDict(splits), tokenizer, config.max_length)

    # -- train
    epoch_log = _EpochLog()
    callbacks: list[TrainerCallback] = [epoch_log]
    if config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = IntentTrainer(
        model=model,
        args=_training_arguments(config, output_dir),
        train_dataset=encoded["train"],
        eval_dataset=encoded["validation"],
        data_collator=IntentCollator(tokenizer.pad_token_id or 0),
        compute_metrics=_compute_metrics,
        callbacks=callbacks,
        class_weights=class_weight_vector(config, np.asarray(splits["train"]["label_id"])),
        signal_weight=config.signal_loss_weight,
        token_weight=config.token_loss_weight,
        signal_pos_weight=signal_pos_weight_vector(config, np.asarray(splits["train"]["signal_labels"], dtype=float),
                                                   np.asarray(splits["train"]["signals_labeled"])),
    )
    device = str(trainer.args.device)
    logger.info("training on %s (%d process(es)) from %s", device, trainer.args.world_size,
                model.intent_config.base_model)
    trainer.train()  # ends with the best epoch's weights loaded (load_best_model_at_end)

    # -- calibrate on validation, then score validation and test with the calibration
    val_logits, val_signals, val_labels, val_signal_labels, val_mask = _predict(trainer, encoded["validation"])
    val_rows = splits["validation"]
    calibration = fit_calibration(val_logits, val_labels, val_signals, val_signal_labels, val_mask,
                                  buying_precision_target=config.buying_precision_target,
                                  sources=data_sources(val_rows["call_id"], val_rows["source"], val_rows["extra"]),
                                  abstain_target_accuracy=config.abstain_target_accuracy,
                                  abstain_max_share=config.abstain_max_share,
                                  min_temperature=config.min_temperature)

    def scored(logits: np.ndarray, signals: np.ndarray, labels: np.ndarray, signal_labels: np.ndarray,
               mask: np.ndarray) -> dict[str, float]:
        return split_metrics(labels, softmax(logits, calibration.temperature), signals, signal_labels, mask,
                             signal_thresholds=calibration.thresholds(),
                             buying_threshold=calibration.buying_threshold)

    validation = scored(val_logits, val_signals, val_labels, val_signal_labels, val_mask)
    test = scored(*_predict(trainer, encoded["test"])) if len(encoded["test"]) else {}

    records = tuple(epoch_log.records)
    best = max(records, key=lambda r: r.val_macro_f1) if records else None
    result = RunResult(
        output_dir=str(output_dir),
        epochs=records,
        best_epoch=best.epoch if best else 0,
        stopped_early=bool(records) and records[-1].epoch < config.epochs,
        validation=validation,
        test=test,
        calibration=calibration,
        data_fingerprint=data_fingerprint,
        split_sizes=sizes,
        device=device,
        wall_seconds=round(time.perf_counter() - started, 1),
        base_model=model.intent_config.base_model,
        corrections_applied=corrections_applied,
        augmentation=augmentation,
        call_log_rows=call_log_rows(dsd),
        mix=mix,
        adaptation=adaptation,
    )
    if trainer.is_world_process_zero():
        _write_run(output_dir, config, model, calibration, result, splits)
    logger.info("run written to %s: best epoch %d, validation macro-F1 %.4f%s (%.0fs)", output_dir,
                result.best_epoch, validation.get("macro_f1", 0.0),
                f", test macro-F1 {test['macro_f1']:.4f}" if test else "", result.wall_seconds)
    return result


def _write_run(output_dir: Path, config: TrainConfig, model: IntentModel, calibration: Calibration,
               result: RunResult, splits: dict[str, Any]) -> None:
    import json

    from datasets import DatasetDict

    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir / BEST_DIR)
    calibration.save(output_dir)
    dump_config(config, output_dir / TRAIN_CONFIG_FILE)
    DatasetDict({"validation": splits["validation"], "test": splits["test"]}).save_to_disk(
        str(output_dir / EVAL_DATA_DIR))
    (output_dir / METRICS_FILE).write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    # The best weights now live in best/; epoch checkpoints (with optimizer state) are only bulk.
    shutil.rmtree(output_dir / _CHECKPOINTS_DIR, ignore_errors=True)
