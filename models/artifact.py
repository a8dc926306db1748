"""The exported model artifact: its files and the metadata that travels with them.

An artifact directory is self-describing (one path loads it). Training's export writes it,
the registry stores it, evaluation and serving read it through :class:`models.predictor.IntentPredictor`.

Layout of ``models/registry/<name>/<version>/``::

    model.onnx          fp32 graph; outputs calibrated probabilities (temperature is inside the graph)
    model.int8.onnx     the same graph after onnxruntime dynamic int8 quantization
    tokenizer.json      Hugging Face `tokenizers` file (fast tokenizer, with offsets)
    artifact.json       ArtifactMeta below
    train_config.yaml   the resolved training config
    MODEL_CARD.md       intended use, data, metrics, limits
    checksums.sha256    sha256 of every file above (registry versions only; models/checksums.py)
    torch/              the torch checkpoint (IntentModel.save_pretrained, safetensors) that the
                        graphs were exported from, so ``init_from`` can fine-tune this version
                        further (training only; serving never reads it, and the serving image
                        leaves it out). Artifacts exported before it was kept lack it.

ONNX graph contract (both variants):
    inputs:  input_ids [batch, seq] int64, attention_mask [batch, seq] int64
    outputs: class_probs [batch, n_classes] float32   calibrated softmax(logits / T)
             signal_probs [batch, n_signals] float32  sigmoid(max over tokens of token logits)
             token_signal_probs [batch, seq, n_signals] float32  per-token sigmoid, the evidence
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from callintent.errors import UserError

ONNX_FP32 = "model.onnx"
ONNX_INT8 = "model.int8.onnx"
TOKENIZER = "tokenizer.json"
META = "artifact.json"
TRAIN_CONFIG = "train_config.yaml"
MODEL_CARD = "MODEL_CARD.md"
TORCH_DIR = "torch"

INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAMES = ("class_probs", "signal_probs", "token_signal_probs")

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ArtifactMeta:
    """Everything a runtime needs besides the graph and the tokenizer.

    Attributes:
        name: Registry model name (e.g. ``intent``).
        version: Registry version (e.g. ``v3``); empty before registration.
        classes: Class names in output order (must equal ``models.labels.CLASS_NAMES``).
        signals: Signal names in output order (must equal ``models.labels.SIGNAL_NAMES``).
        max_length: Token budget the model was trained with; longer input is truncated.
        temperature: Class-head temperature fitted on validation (already inside the graph;
            stored for the record).
        signal_thresholds: Per-signal probability above which a signal is reported as present.
        buying_threshold: Operating point for ``buying_intent`` chosen on validation.
        base_model: Path or name of the encoder the model was fine-tuned from.
        data_fingerprint: Hash of the training data (see ``data.dataset.fingerprint``).
        metrics: Validation/test metrics at export (fp32 and int8).
        created_at: ISO time of export.
        extra: Free-form provenance (git commit, corrections used, real calls used…).
        speaker_tags: The model was trained on speaker-tagged text too (``agent: … caller: …``,
            :mod:`speech.speakers`): serving gives it both speakers of a two-channel call, tagged.
        abstain_margin: Calibrated ``p(top1) − p(top2)`` below which the decision policy routes a
            call ``undetermined`` (:mod:`models.uncertainty`), chosen on validation; 0 = never.
            None (artifacts exported before the rule): the policy decides as it did then.
    """

    classes: tuple[str, ...]
    signals: tuple[str, ...]
    max_length: int
    temperature: float = 1.0
    signal_thresholds: dict[str, float] = field(default_factory=dict)
    buying_threshold: float = 0.5
    name: str = "intent"
    version: str = ""
    base_model: str = ""
    data_fingerprint: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    speaker_tags: bool = False
    abstain_margin: float | None = None

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / META
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> ArtifactMeta:
        path = Path(directory) / META
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"{directory}: not a model artifact (no {META})") from None
        return cls.from_json(text, str(path))

    @classmethod
    def from_json(cls, text: str, where: str) -> ArtifactMeta:
        """Metadata from the text of an ``artifact.json`` (``where`` names it in errors)."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{where}: corrupt artifact metadata: {e}") from None
        if raw.get("format_version") != FORMAT_VERSION:
            raise UserError(f"{where}: artifact format {raw.get('format_version')} is not supported "
                            f"(this callintent reads format {FORMAT_VERSION})")
        raw["classes"] = tuple(raw["classes"])
        raw["signals"] = tuple(raw["signals"])
        return cls(**raw)
