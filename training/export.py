"""Export a training run to a calibrated ONNX artifact (fp32 + int8), verified before it is kept.

:func:`export_run` turns ``<run>/best`` + ``<run>/calibration.json`` into the artifact directory
described in ``models/artifact.py``:

1. wrap the model so the graph outputs exactly the contract (``class_probs`` with the temperature
   inside, ``signal_probs``, ``token_signal_probs``) with dynamic batch and sequence axes;
2. export fp32 ``model.onnx`` and check parity against torch on a probe batch of varied lengths
   (padding included) — over ``parity_atol`` the export fails;
3. quantize to ``model.int8.onnx`` (onnxruntime dynamic quantization, int8 weights) and score
   validation and test with both graphs through :class:`models.predictor.IntentPredictor` (the
   serving path) — losing more than ``int8_max_f1_drop`` validation macro-F1 fails the export;
4. write ``tokenizer.json`` (truncation at ``max_length``), ``artifact.json``, ``train_config.yaml``
   and ``MODEL_CARD.md``, and keep the torch checkpoint in ``torch/`` (``keep_torch``) so the
   version can be fine-tuned further (``init_from``, :mod:`training.adapt`).

Registration (``models.registry.Registry.register``) is the caller's step (see ``export_cli``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from callintent.errors import UserError
from models.labels import CLASS_NAMES, SIGNAL_NAMES, definitions_markdown
from models.artifact import (
    INPUT_NAMES, MODEL_CARD, ONNX_FP32, ONNX_INT8, OUTPUT_NAMES, TOKENIZER, TORCH_DIR, TRAIN_CONFIG,
    ArtifactMeta,
)
from training.calibrate import Calibration
from training.metrics import split_metrics
from training.model import IntentModel
from training.train import BEST_DIR, EVAL_DATA_DIR, METRICS_FILE, TRAIN_CONFIG_FILE

logger = logging.getLogger(__name__)

#: Default export output inside the run directory.
ARTIFACT_DIR = "artifact"

#: Probe texts for the parity check: varied lengths (so the batch is padded), every class, and
#: one long enough to be truncated at small ``max_length``.
DEFAULT_PROBES: tuple[str, ...] = (
    "hi I saw your ad on facebook, how much would a new fifty gallon water heater cost installed",
    "yeah hi I'm calling to check on my order, it was supposed to arrive tuesday and my account says pending",
    "what time do you close on saturday",
    "press one to hear about your car's extended warranty",
    "",
    "uh hi um can someone come out today it's kind of an emergency the basement is flooding and we need a "
    "plumber as soon as possible, can I get a quote first, I'm at 42 oak street and we got your mailer",
    "hello?",
    "I'd like to schedule an appointment for a furnace tune-up next week, are you open on weekends",
)


class ExportError(UserError):
    """The export did not produce a trustworthy artifact (parity or int8 accuracy)."""


class ParityError(ExportError):
    """The ONNX graph's outputs differ from torch by more than the tolerance."""


class Int8AccuracyError(ExportError):
    """The int8 graph loses more validation macro-F1 than allowed."""


@dataclass(frozen=True)
class ExportConfig:
    """How a run becomes an artifact.

    Attributes:
        opset: ONNX opset of the exported graph.
        parity_atol: Largest allowed |ONNX fp32 − torch| over all three outputs on the probe
            batch (probabilities, so 1e-4 is far below anything that changes a decision).
        int8_max_f1_drop: Largest allowed validation macro-F1 loss of int8 against fp32.
            Negative values demand that int8 be *better* (useful only to test the check).
        int8_per_channel: Quantize weights per output channel (more accurate for transformers,
            same speed).
        int8_op_types: ONNX op types whose weights are quantized: ``MatMul`` (nearly all encoder
            compute) and ``Gather`` (the embedding tables: MiniLM's int8 graph is 23 MB instead of
            59 MB, at no measured macro-F1 cost).
        probe_texts: Texts of the parity probe batch.
        keep_torch: Copy the run's torch checkpoint (``best/``, safetensors) into the artifact's
            ``torch/`` so ``init_from`` can adapt this version to a customer's calls later
            (~90 MB for MiniLM-L6; serving never reads it).
    """

    opset: int = 17
    parity_atol: float = 1e-4
    int8_max_f1_drop: float = 0.01
    int8_per_channel: bool = True
    int8_op_types: tuple[str, ...] = ("MatMul", "Gather")
    probe_texts: tuple[str, ...] = DEFAULT_PROBES
    keep_torch: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.opset, bool) or not isinstance(self.opset, int) or not 14 <= self.opset <= 23:
            raise ValueError(f"opset must be an integer in [14, 23], got {self.opset!r}")
        if not isinstance(self.parity_atol, (int, float)) or isinstance(self.parity_atol, bool) \
                or not 0 < self.parity_atol < 1:
            raise ValueError(f"parity_atol must be a number in (0, 1), got {self.parity_atol!r}")
        if not isinstance(self.int8_max_f1_drop, (int, float)) or isinstance(self.int8_max_f1_drop, bool) \
                or not -1 <= self.int8_max_f1_drop <= 1:
            raise ValueError(f"int8_max_f1_drop must be a number in [-1, 1], got {self.int8_max_f1_drop!r}")
        if not isinstance(self.int8_per_channel, bool):
            raise ValueError(f"int8_per_channel must be true or false, got {self.int8_per_channel!r}")
        if not self.int8_op_types or not all(isinstance(t, str) and t for t in self.int8_op_types):
            raise ValueError(f"int8_op_types must be a non-empty list of ONNX op types, got {self.int8_op_types!r}")
        if len(self.probe_texts) < 2 or not all(isinstance(t, str) for t in self.probe_texts):
            raise ValueError("probe_texts must be at least 2 texts (of different lengths, so the batch is padded)")
        if not isinstance(self.keep_torch, bool):
            raise ValueError(f"keep_torch must be true or false, got {self.keep_torch!r}")


@dataclass(frozen=True)
class ExportResult:
    """A finished export.

    Attributes:
        artifact_dir: The staged artifact directory.
        meta: Its metadata (as written to ``artifact.json``).
        parity_max_abs_diff: Largest |ONNX fp32 − torch| on the probe batch.
        int8_f1_drop: Validation macro-F1 of fp32 minus int8.
        int8_argmax_agreement: Share of probe texts where int8 and fp32 pick the same class.
    """

    artifact_dir: Path
    meta: ArtifactMeta
    parity_max_abs_diff: float
    int8_f1_drop: float
    int8_argmax_agreement: float


class ExportGraph(nn.Module):
    """The model as the artifact graph sees it: ids + mask in, the three calibrated outputs out.

    Args:
        model: The trained intent model (eval mode).
        temperature: Class-head temperature; applied inside the graph.
    """

    def __init__(self, model: IntentModel, temperature: float) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(input_ids, attention_mask)
        return (torch.softmax(out.class_logits / self.temperature, dim=-1),
                torch.sigmoid(out.signal_logits),
                torch.sigmoid(out.token_signal_logits))


def reference_outputs(model: IntentModel, temperature: float, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the graph must compute, from the torch model directly (independent of :class:`ExportGraph`).

    Returns:
        ``(class_probs, signal_probs, token_signal_probs)`` as float32 arrays.
    """
    with torch.no_grad():
        out = model(input_ids, attention_mask)
        return (torch.softmax(out.class_logits.double() / temperature, dim=-1).float().numpy(),
                torch.sigmoid(out.signal_logits).numpy(),
                torch.sigmoid(out.token_signal_logits).numpy())


def export_run(run_dir: str | Path, out_dir: str | Path | None = None, config: ExportConfig = ExportConfig(), *,
               name: str = "intent") -> ExportResult:
    """Export a finished training run to a verified artifact directory.

    Args:
        run_dir: The training run directory (``callintent train`` output).
        out_dir: Where to stage the artifact; default ``<run_dir>/artifact``. An existing artifact
            there is replaced; any other non-empty directory is refused.
        config: Export settings.
        name: Model name recorded in the metadata (the registry sets it again on registration).

    Returns:
        The export result.

    Raises:
        UserError: not a finished run, or ``out_dir`` is a non-artifact directory.
        ParityError: ONNX fp32 differs from torch by more than ``config.parity_atol``.
        Int8AccuracyError: int8 loses more than ``config.int8_max_f1_drop`` validation macro-F1.
        (After either, ``out_dir`` is removed.)
    """
    run_dir = Path(run_dir)
    for needed in (BEST_DIR, METRICS_FILE, TRAIN_CONFIG_FILE, EVAL_DATA_DIR):
        if not (run_dir / needed).exists():
            raise UserError(f"{run_dir}: not a finished training run (no {needed}); run 'callintent train' first")
    out = _prepare_out_dir(Path(out_dir) if out_dir is not None else run_dir / ARTIFACT_DIR)
    try:
        return _export(run_dir, out, config, name)
    except ExportError:
        # A failed export must leave nothing that looks like an artifact (and could be registered).
        shutil.rmtree(out, ignore_errors=True)
        raise


def _export(run_dir: Path, out: Path, config: ExportConfig, name: str) -> ExportResult:
    model = IntentModel.from_pretrained(run_dir / BEST_DIR)
    calibration = Calibration.load(run_dir)
    run_metrics = json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8"))
    eval_data = load_eval_data(run_dir / EVAL_DATA_DIR)
    max_length = model.intent_config.max_length

    # 1-3. fp32 graph, parity against torch, int8 graph
    parity, agreement = write_graphs(model, calibration.temperature, out, config)

    # 4. the rest of the artifact; metrics are measured through the serving predictor
    write_tokenizer(model.tokenizer, max_length, out / TOKENIZER)
    shutil.copyfile(run_dir / TRAIN_CONFIG_FILE, out / TRAIN_CONFIG)
    if config.keep_torch:
        # The very weights the graphs came from (not a re-save), so adapting this version starts
        # exactly where serving is.
        shutil.copytree(run_dir / BEST_DIR, out / TORCH_DIR)
    meta = ArtifactMeta(
        classes=tuple(model.intent_config.classes),
        signals=tuple(model.intent_config.signals),
        max_length=max_length,
        temperature=float(calibration.temperature),
        signal_thresholds=calibration.thresholds(),
        buying_threshold=float(calibration.buying_threshold),
        abstain_margin=calibration.abstain_margin,
        name=name,
        base_model=model.intent_config.base_model,
        data_fingerprint=run_metrics.get("data_fingerprint", ""),
        speaker_tags=bool((run_metrics.get("augmentation") or {}).get("tagged_train")),
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        extra={"run_dir": str(run_dir.resolve()), "best_epoch": run_metrics.get("best_epoch"),
               "split_sizes": run_metrics.get("split_sizes", {}),
               "corrections_applied": run_metrics.get("corrections_applied", 0),
               "call_log_rows": run_metrics.get("call_log_rows") or {"total": 0, "train": 0, "qa_labeled": 0},
               "opset": config.opset, "parity_max_abs_diff": parity, "int8_probe_argmax_agreement": agreement,
               **({"adapted_from": run_metrics["adaptation"]} if run_metrics.get("adaptation") else {})},
    )
    meta.save(out)
    # Scored through the serving predictor, so the metrics are those of what serving runs.
    scores = {variant: _score_splits(out, variant, eval_data, meta) for variant in ("fp32", "int8")}
    fp32_f1 = scores["fp32"]["validation"].get("macro_f1", 0.0)
    int8_f1 = scores["int8"]["validation"].get("macro_f1", 0.0)
    drop = fp32_f1 - int8_f1
    if drop > config.int8_max_f1_drop:
        raise Int8AccuracyError(f"{out / ONNX_INT8}: int8 validation macro-F1 {int8_f1:.4f} is {drop:.4f} below fp32 "
                                f"{fp32_f1:.4f} (allowed int8_max_f1_drop={config.int8_max_f1_drop:g})")
    logger.info("validation macro-F1: fp32 %.4f, int8 %.4f (drop %.4f, allowed %g)", fp32_f1, int8_f1, drop,
                config.int8_max_f1_drop)
    meta = replace(meta, metrics={
        **scores,
        "calibration": {"temperature": calibration.temperature, "ece_before": calibration.ece_before,
                        "ece_after": calibration.ece_after, "buying_threshold": calibration.buying_threshold,
                        "abstain_margin": calibration.abstain_margin,
                        "abstain_coverage": calibration.abstain_coverage,
                        "abstain_accuracy": calibration.abstain_accuracy,
                        "ece_by_source": {name: {"rows": sc.rows, "ece_before": sc.ece_before,
                                                 "ece_after": sc.ece_after}
                                          for name, sc in calibration.sources.items()}},
        "training": {"best_epoch": run_metrics.get("best_epoch"), "wall_seconds": run_metrics.get("wall_seconds")},
    })
    meta.save(out)
    (out / MODEL_CARD).write_text(model_card(meta, calibration, run_metrics), encoding="utf-8")
    logger.info("artifact staged in %s", out)
    return ExportResult(out, meta, parity, drop, agreement)


def load_eval_data(directory: Path) -> dict[str, Any]:
    """A run's saved validation and test splits, leaving out empty ones.

    ``datasets`` saves an empty split (``data.test_fraction: 0``, the adaptation default) with no
    data file and then cannot load the whole ``DatasetDict`` back, so each split is loaded alone.

    Returns:
        Split name -> ``Dataset`` for the non-empty splits.
    """
    from datasets import Dataset

    splits = json.loads((directory / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
    out = {}
    for split in splits:
        state = json.loads((directory / split / "state.json").read_text(encoding="utf-8"))
        if state.get("_data_files"):
            out[split] = Dataset.load_from_disk(str(directory / split))
    return out


def write_graphs(model: IntentModel, temperature: float, out: Path, config: ExportConfig = ExportConfig()
                 ) -> tuple[float, float]:
    """Write ``model.onnx`` (verified against torch) and ``model.int8.onnx`` into ``out``.

    Args:
        model: The intent model (eval mode), tokenizer attached.
        temperature: Class-head temperature to put inside the graph.
        out: Output directory (exists).
        config: Export settings (opset, parity tolerance, quantization).

    Returns:
        ``(parity_max_abs_diff, int8_probe_argmax_agreement)``.

    Raises:
        ParityError: the fp32 graph differs from torch by more than ``config.parity_atol``.
    """
    probe = model.tokenizer(list(config.probe_texts), truncation=True, max_length=model.intent_config.max_length,
                            padding=True, return_tensors="pt", return_token_type_ids=False)
    reference = reference_outputs(model, temperature, probe["input_ids"], probe["attention_mask"])
    with _eager_attention(model.encoder):
        _export_graph(ExportGraph(model, temperature).eval(), probe, out / ONNX_FP32, config)
    parity = _max_abs_diff(out / ONNX_FP32, probe, reference)
    if parity > config.parity_atol:
        raise ParityError(f"{out / ONNX_FP32}: ONNX and torch outputs differ by up to {parity:.2e} on the probe "
                          f"batch (tolerance parity_atol={config.parity_atol:g}); the graph is not exported faithfully")
    logger.info("fp32 graph matches torch within %.2e on %d probe texts", parity, len(config.probe_texts))
    _quantize(out / ONNX_FP32, out / ONNX_INT8, config)
    return parity, _argmax_agreement(out / ONNX_FP32, out / ONNX_INT8, probe)


def _prepare_out_dir(out: Path) -> Path:
    if out.exists() and any(out.iterdir()):
        if not (out / "artifact.json").is_file() and not (out / ONNX_FP32).is_file():
            raise UserError(f"{out}: exists and is not an artifact directory; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _export_graph(graph: ExportGraph, probe: Any, path: Path, config: ExportConfig) -> None:
    """Trace ``graph`` into an ONNX file with dynamic batch and sequence axes.

    torch's TorchScript-based exporter (``dynamo=False``): on torch 2.13 it needs no extra package,
    exports in a second and matches torch to ~1e-6. The ``torch.export``-based exporter (needs
    ``onnxscript``) also matches, but its graph quantizes into an int8 model ~3x slower at batch 1
    on CPU here (measured with bench/classifier_latency.py).
    """
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
            "class_probs": {0: "batch"}, "signal_probs": {0: "batch"}, "token_signal_probs": {0: "batch", 1: "seq"}}
    with warnings.catch_warnings():
        # The tracer warns about shape-derived Python values in transformers' mask code; the probe
        # batch is padded so the traced graph keeps the masking path, and the parity check proves it.
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (probe["input_ids"], probe["attention_mask"]), str(path), dynamo=False,
                          input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES), dynamic_axes=axes,
                          opset_version=config.opset)


@contextlib.contextmanager
def _eager_attention(encoder: Any) -> Iterator[None]:
    """Trace the encoder with its plain (eager) attention, then restore the original implementation.

    The eager path masks with one additive mask; the SDPA path traces into boolean ``Where`` ops
    over every [batch, heads, seq, seq] score tensor, which cost ~15% of int8 CPU time at batch 1.
    Same math: the parity check compares the graph against the model as trained.
    """
    original = getattr(encoder.config, "_attn_implementation", None)
    switch = original not in (None, "eager") and hasattr(encoder, "set_attn_implementation")
    if switch:
        encoder.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            encoder.set_attn_implementation(original)


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _feed(probe: Any) -> dict[str, np.ndarray]:
    return {name: probe[name].numpy().astype(np.int64) for name in INPUT_NAMES}


def _max_abs_diff(path: Path, probe: Any, reference: tuple[np.ndarray, ...]) -> float:
    outputs = _session(path).run(list(OUTPUT_NAMES), _feed(probe))
    real = probe["attention_mask"].numpy().astype(bool)
    diffs = [np.abs(outputs[0] - reference[0]).max(), np.abs(outputs[1] - reference[1]).max(),
             # Token outputs are compared on real tokens: padding positions are never read.
             np.abs(outputs[2] - reference[2])[real].max()]
    return float(max(diffs))


def _quantize(fp32: Path, int8: Path, config: ExportConfig) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs a "consider pre-processing" warning on the root logger
    try:
        quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, per_channel=config.int8_per_channel,
                         op_types_to_quantize=list(config.int8_op_types))
    finally:
        root.setLevel(level)


def _argmax_agreement(fp32: Path, int8: Path, probe: Any) -> float:
    a = _session(fp32).run([OUTPUT_NAMES[0]], _feed(probe))[0].argmax(axis=1)
    b = _session(int8).run([OUTPUT_NAMES[0]], _feed(probe))[0].argmax(axis=1)
    return float((a == b).mean())


def write_tokenizer(tokenizer: Any, max_length: int, path: Path) -> None:
    """Write the artifact's ``tokenizer.json`` from a Hugging Face fast tokenizer.

    Args:
        tokenizer: The model's fast tokenizer.
        max_length: Truncation length configured in the file.
        path: Output file.
    """
    from tokenizers import Tokenizer

    # A copy of the fast tokenizer's backend: truncation configured, padding left to the runtime
    # (it pads each batch to its longest text).
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.enable_truncation(max_length=max_length)
    backend.save(str(path))


def _score_splits(artifact: Path, variant: str, eval_data: Any, meta: ArtifactMeta) -> dict[str, dict[str, float]]:
    from models.predictor import IntentPredictor

    predictor = IntentPredictor.load(artifact, variant=variant)
    scores: dict[str, dict[str, float]] = {}
    for split in ("validation", "test"):
        if split not in eval_data or len(eval_data[split]) == 0:
            continue
        ds = eval_data[split]
        class_probs, signal_probs = predictor.predict_arrays(list(ds["transcript"]))
        scores[split] = split_metrics(
            np.asarray(ds["label_id"]), class_probs, signal_probs, np.asarray(ds["signal_labels"]),
            np.asarray(ds["signals_labeled"], dtype=np.float32), signal_thresholds=meta.signal_thresholds,
            buying_threshold=meta.buying_threshold)
    return scores


def _call_log_line(counts: dict[str, int]) -> str:
    """The model card's count of real calls from the service's call log (``callintent calls export``)."""
    total = counts.get("total", 0)
    if not total:
        return "Real calls from the call log: 0 (no rows with `origin: call_log`)."
    qa = counts.get("qa_labeled", 0)
    return (f"Real calls from the call log: {total} ({counts.get('train', 0)} in train; {qa} labeled by QA, "
            f"{total - qa} with the logged model's own label).")


def _mix_line(mix: dict[str, Any] | None) -> str:
    """The model card's line on the source-aware draw of the training split (``training/sampling.py``)."""
    if not mix:
        return "Training rows: every loaded training row once (no source-aware mix)."
    files: dict[str, int] = {}
    for cell, n in mix.get("drawn", {}).items():
        group = cell.rsplit("/", 1)[0]
        files[group] = files.get(group, 0) + n
    shares = ", ".join(f"{c} {s:.2f}" for c, s in mix.get("class_shares", {}).items())
    return (f"Training rows drawn source-aware: {', '.join(f'{g} {n}' for g, n in files.items())} "
            f"(class shares {shares}; per file and class in `metrics.json` of the run).")


def _augmentation_line(counts: dict[str, int]) -> str:
    """The model card's line on what training added or rewrote (``training/augment.py``)."""
    reads = ("Reads speaker-tagged text too: a two-channel call is scored with both speakers' words, tagged."
             if counts.get("tagged_train") else "Reads plain text: a two-channel call is scored on the caller's words.")
    if not counts:
        return f"Training text: as loaded (no ASR text, speaker tags or prefix copies). {reads}"
    return (f"Training text: {counts.get('asr_train', 0)} train rows on ASR text, "
            f"{counts.get('framed_train', 0)} typed rows framed as a call's opening, "
            f"{counts.get('tagged_train', 0)} speaker-tagged (`agent: … caller: …`), "
            f"{counts.get('prefix_copies', 0)} partial-opening copies added, "
            f"{counts.get('noised_train', 0)} train rows rewritten by the ASR-noise model. {reads}")


def _abstain_line(calibration: Calibration) -> str:
    """The model card's line on the abstention margin (``undetermined`` route)."""
    if calibration.abstain_margin is None:
        return "Abstention margin: not fitted (the policy's `abstain_below` alone decides `undetermined`)."
    if not calibration.abstain_target_accuracy:
        return "Abstention margin: off (`abstain_target_accuracy: 0`): the margin never routes `undetermined`."
    return (f"Abstention margin {calibration.abstain_margin:.3f}: a call whose calibrated p(top1) − p(top2) is "
            f"below it routes `undetermined`. Chosen on validation as the smallest margin whose decided rows "
            f"reach accuracy {calibration.abstain_target_accuracy:g} (abstaining on at most "
            f"{100 * calibration.abstain_max_share:.0f}%), each data source weighing the same: it decides "
            f"{100 * calibration.abstain_coverage:.1f}% of validation at accuracy {calibration.abstain_accuracy:.3f}.")


def _source_calibration_table(calibration: Calibration) -> str:
    """The model card's ECE per data source of the validation rows (empty without figures)."""
    if not calibration.sources:
        return ""
    rows = [f"| {name} | {sc.rows} | {sc.accuracy:.4f} | {sc.ece_before:.4f} | {sc.ece_after:.4f} | "
            f"{100 * sc.decided_share:.1f}% |" for name, sc in calibration.sources.items()]
    return ("\nValidation by data source (the temperature weighs each source equally):\n\n"
            "| source | rows | accuracy | ECE before | ECE after | decided |\n|---|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n")


def _adaptation_line(adaptation: dict[str, Any] | None) -> str:
    """The model card's line on where training started (``init_from``, :mod:`training.adapt`)."""
    if not adaptation:
        return "Trained from the base encoder (fresh heads)."
    replay = adaptation.get("replay_train") or {}
    replay_validation = sum((adaptation.get("replay_validation") or {}).values())
    return (f"Adapted from `{adaptation.get('version') or adaptation.get('path')}` (init_from "
            f"`{adaptation.get('init_from')}`): {adaptation.get('new_train', 0)} new training rows plus "
            f"{sum(replay.values())} replay rows of its earlier training data "
            f"({', '.join(f'{k} {v}' for k, v in replay.items()) or 'none'}); validation: "
            f"{adaptation.get('new_validation', 0)} new + {replay_validation} replay rows.")


def model_card(meta: ArtifactMeta, calibration: Calibration, run_metrics: dict[str, Any]) -> str:
    """``MODEL_CARD.md``: intended use, data, metrics, calibration, limits, label definitions.

    Args:
        meta: The artifact metadata (with metrics).
        calibration: The run's calibration.
        run_metrics: The run's ``metrics.json``.

    Returns:
        Markdown text.
    """
    sizes = run_metrics.get("split_sizes", {})
    rows = []
    for variant in ("fp32", "int8"):
        for split in ("validation", "test"):
            m = meta.metrics.get(variant, {}).get(split)
            if m:
                rows.append(f"| {variant} | {split} | {m['n']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | "
                            f"{m['buying_f1']:.4f} | {m.get('signal_micro_f1', float('nan')):.4f} | {m['ece']:.4f} |")
    epochs = ", ".join(f"{e['epoch']}: {e['val_macro_f1']:.4f}" for e in run_metrics.get("epochs", []))
    thresholds = ", ".join(f"`{k}` {v:.3f}" for k, v in meta.signal_thresholds.items())
    return f"""# Intent model `{meta.name}{'/' + meta.version if meta.version else ''}`

## Intended use
Scores the **opening 30 seconds** of an inbound phone call (transcript text, up to {meta.max_length}
tokens; longer text is truncated) into one of {len(CLASS_NAMES)} intent classes with calibrated
probabilities, `buying_intent` = P(buying), and {len(SIGNAL_NAMES)} buying-intent signals with the
words that triggered them. Intended for routing and prioritising calls and for QA review, with a person
able to see why (signals and evidence). Not intended for decisions about individuals beyond call routing,
for languages other than English, or for whole-call transcripts.

## Model
- Base encoder: `{meta.base_model}`, fine-tuned jointly: mean-pooled softmax class head + token-level
  sigmoid signal head with max pooling (evidence = the tokens that fire).
- Graphs: `model.onnx` (fp32) and `model.int8.onnx` (dynamic int8 weights, per-channel). Export opset
  {meta.extra.get('opset')}; ONNX fp32 matches torch within {meta.extra.get('parity_max_abs_diff', 0):.1e}.
- Created {meta.created_at}.

## Data
- Fingerprint: `{meta.data_fingerprint}`
- Rows: train {sizes.get('train', '?')}, validation {sizes.get('validation', '?')}, test {sizes.get('test', '?')}.
- QA corrections used: {meta.extra.get('corrections_applied', 0)} (rows overridden by `call_id` from `correction_files`).
- {_call_log_line(meta.extra.get('call_log_rows') or {})}
- {_mix_line(run_metrics.get('mix'))}
- {_augmentation_line(run_metrics.get('augmentation') or {})}
- {_adaptation_line(run_metrics.get('adaptation'))}
- Validation macro-F1 per epoch: {epochs or 'n/a'} (best epoch {run_metrics.get('best_epoch')}).

## Metrics
| graph | split | n | accuracy | macro-F1 | buying F1 | signal micro-F1 | ECE |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

## Calibration
- Temperature {calibration.temperature:.3f} (inside the graph), fitted on validation (each data source
  weighing the same): ECE
  {calibration.ece_before:.4f} → {calibration.ece_after:.4f}, NLL {calibration.nll_before:.4f} → {calibration.nll_after:.4f}.
- Buying operating threshold: {calibration.buying_threshold:.3f}
  ({'precision target ' + format(calibration.buying_precision_target, 'g') if calibration.buying_precision_target else 'max buying-vs-rest F1'} on validation).
- Signal thresholds (max F1 on validation): {thresholds}.
- {_abstain_line(calibration)}
{_source_calibration_table(calibration)}

## Limits
- Trained on the data above: metrics hold for calls like it. A built-in synthetic corpus is not real
  traffic; measure on your own labeled calls (`callintent evaluate`) before promoting.
- Sees text only: ASR errors on the audio path lower accuracy (see the robustness section of the QA report).
- Transcripts beyond {meta.max_length} tokens are truncated; signals said later are not seen.
- Calibration is fitted on validation data of the same distribution; it drifts with traffic.

## Labels
{definitions_markdown()}
"""
