"""Labeled rows → model inputs and targets: tokens, token-level signal labels from spans, batches.

The token-level signal head learns *where* a signal is said (the evidence serving shows), so every
token gets a target per signal when the row tells us: a signal labeled absent is 0 on every token;
a signal labeled present is 1 on the tokens its character spans overlap and 0 elsewhere; a present
signal without spans (or whose spans were truncated away) is masked, as is everything in rows
whose signals are unlabeled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.labels import SIGNAL_INDEX, SIGNAL_NAMES

if TYPE_CHECKING:
    import numpy as np
    import torch
    from datasets import DatasetDict


@dataclass(frozen=True)
class CharSpan:
    """A signal's evidence in the transcript, as character offsets.

    Attributes:
        signal: Signal name.
        start: First character (inclusive).
        end: Last character (exclusive).
    """

    signal: str
    start: int
    end: int


def parse_spans(spans_json: str) -> list[CharSpan]:
    """Read the dataset's ``spans`` column (a JSON list of ``{signal, start, end, ...}``)."""
    return [CharSpan(s["signal"], int(s["start"]), int(s["end"])) for s in json.loads(spans_json or "[]")]


def token_signal_targets(
    offsets: Sequence[tuple[int, int]],
    spans: Sequence[CharSpan],
    signals: Sequence[str],
    signals_labeled: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-token signal targets of one tokenized row, and which signals they are known for.

    Args:
        offsets: The fast tokenizer's character offsets per token; ``(0, 0)`` marks special tokens.
        spans: The row's evidence spans.
        signals: The signals labeled present in the row.
        signals_labeled: False when the row's signals are unlabeled (everything masked).

    Returns:
        ``(targets [n_tokens, n_signals] float32, known [n_signals] float32)``: ``known[j]`` is 1
        when every token's target for signal ``j`` is trustworthy.
    """
    import numpy as np

    targets = np.zeros((len(offsets), len(SIGNAL_NAMES)), dtype=np.float32)
    known = np.zeros(len(SIGNAL_NAMES), dtype=np.float32)
    if not signals_labeled:
        return targets, known
    starts = np.array([a for a, _ in offsets], dtype=np.int64)
    ends = np.array([b for _, b in offsets], dtype=np.int64)
    real = ends > starts  # special tokens have empty (0, 0) offsets
    present = set(signals)
    for span in spans:
        if span.signal in SIGNAL_INDEX:
            targets[real & (starts < span.end) & (ends > span.start), SIGNAL_INDEX[span.signal]] = 1.0
    for j, name in enumerate(SIGNAL_NAMES):
        # A present signal with no surviving span token has unknown token targets: the span was
        # not annotated, or truncation cut it off.
        known[j] = 1.0 if name not in present or targets[:, j].any() else 0.0
    return targets, known


def encode_dataset(dsd: DatasetDict, tokenizer: Any, max_length: int) -> DatasetDict:
    """Tokenize every split and add the targets :class:`IntentCollator` batches.

    Args:
        dsd: Splits with the ``data.dataset`` columns.
        tokenizer: A Hugging Face *fast* tokenizer (offsets are needed for token targets).
        max_length: Truncation length.

    Returns:
        The splits with ``input_ids``, ``labels``, ``signal_mask``, ``token_targets``,
        ``token_mask`` and ``length`` added (original columns kept).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("training needs a fast tokenizer (character offsets map spans to tokens)")

    def encode(batch: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
        enc = tokenizer(batch["transcript"], truncation=True, max_length=max_length,
                        return_offsets_mapping=True, return_attention_mask=False, return_token_type_ids=False)
        out: dict[str, list[Any]] = {"token_targets": [], "token_mask": []}
        for offsets, spans, signals, labeled in zip(enc["offset_mapping"], batch["spans"], batch["signals"],
                                                    batch["signals_labeled"]):
            targets, known = token_signal_targets(offsets, parse_spans(spans), signals, labeled)
            out["token_targets"].append(targets.tolist())
            out["token_mask"].append(known.tolist())
        out["input_ids"] = enc["input_ids"]
        out["length"] = [len(ids) for ids in enc["input_ids"]]
        out["labels"] = list(batch["label_id"])
        out["signal_mask"] = [1.0 if labeled else 0.0 for labeled in batch["signals_labeled"]]
        return out

    return dsd.map(encode, batched=True, desc="tokenizing")


class IntentCollator:
    """Pads a list of encoded rows to the longest one (dynamic padding) into model tensors.

    Args:
        pad_id: The tokenizer's padding token id.
    """

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        n, n_signals = len(rows), len(SIGNAL_NAMES)
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((n, width), dtype=torch.long)
        token_targets = torch.zeros((n, width, n_signals), dtype=torch.float32)
        for i, r in enumerate(rows):
            k = len(r["input_ids"])
            input_ids[i, :k] = torch.as_tensor(r["input_ids"], dtype=torch.long)
            attention_mask[i, :k] = 1
            token_targets[i, :k] = torch.as_tensor(r["token_targets"], dtype=torch.float32)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": torch.as_tensor([r["labels"] for r in rows], dtype=torch.long),
            "signal_labels": torch.as_tensor([r["signal_labels"] for r in rows], dtype=torch.float32),
            "signal_mask": torch.as_tensor([r["signal_mask"] for r in rows], dtype=torch.float32),
            "token_targets": token_targets,
            "token_mask": torch.as_tensor([r["token_mask"] for r in rows], dtype=torch.float32),
        }

