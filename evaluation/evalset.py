"""The labeled calls an evaluation scores: loaded through ``data.dataset`` and held as plain arrays.

Loading goes through :func:`data.dataset.load_labeled_with_report`, so evaluation data is
validated exactly like training data and corrections override rows by ``call_id`` the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from callintent.errors import UserError

if TYPE_CHECKING:
    import numpy as np

    from data.dataset import DataConfig
    from speech.transcript import Word

logger = logging.getLogger(__name__)

#: Split orders for ``split="all"``.
_ALL_SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class CallTiming:
    """When each word of a call was said (from the row's ``words``).

    Attributes:
        words: The words in time order (ASR words, or the corpus's simulated timings).
        audio_seconds: Length of the opening's audio (the row's ``audio_seconds``, else the last
            word's end): where a live stream would stop and decide.
        asr_model: The ASR that produced the words (``""`` for simulated or unknown timings).
        tagged: The call is scored as speaker-tagged text (its prefixes are tagged too).
    """

    words: tuple[Word, ...]
    audio_seconds: float
    asr_model: str = ""
    tagged: bool = False


@dataclass(frozen=True)
class EvalSet:
    """Labeled calls to evaluate, column-wise, in a fixed order (every model sees the same order).

    Attributes:
        call_ids: Call ids.
        transcripts: Opening transcripts (what the model scores).
        labels: Labeled class names.
        label_ids: ``[n]`` int64 class indices (``CLASS_NAMES`` order).
        signal_labels: ``[n, n_signals]`` float32 multi-hot labels (zeros where unlabeled).
        signals_labeled: ``[n]`` bool: the row's signals are labeled (only these count for signals).
        signals: Labeled signal names per call (empty for unlabeled rows).
        source, campaign, industry: Slicing fields (``""`` when the row has none).
        split: Which split was evaluated (``test``, ``validation``, ``train`` or ``all``).
        files: The labeled files read.
        fingerprint: ``data.dataset.fingerprint`` of the evaluated rows.
        corrections_applied: Correction rows merged into these files while loading.
        timings: Per call, its word timings (None for a row without ``words``); empty when no
            row has any.
        text_form: ``plain`` (the transcripts as labeled), ``tagged`` or ``caller`` (see
            :data:`TEXT_FORMS`).
        converted: Per call, whether its text was rewritten into ``text_form`` (its speakers
            are known); empty when none was.
    """

    call_ids: tuple[str, ...]
    transcripts: tuple[str, ...]
    labels: tuple[str, ...]
    label_ids: np.ndarray
    signal_labels: np.ndarray
    signals_labeled: np.ndarray
    signals: tuple[tuple[str, ...], ...]
    source: tuple[str, ...]
    campaign: tuple[str, ...]
    industry: tuple[str, ...]
    split: str
    files: tuple[str, ...]
    fingerprint: str
    corrections_applied: int = 0
    timings: tuple[CallTiming | None, ...] = ()
    text_form: str = "plain"
    converted: tuple[bool, ...] = ()

    @property
    def converted_calls(self) -> int:
        """Calls whose text is in :attr:`text_form` (0 = the labeled text throughout)."""
        return sum(self.converted)

    @property
    def has_timings(self) -> bool:
        """Whether any call carries word timings (time cut-offs can be evaluated)."""
        return any(t is not None for t in self.timings)

    def __len__(self) -> int:
        return len(self.call_ids)

    def subset(self, indices: Sequence[int]) -> EvalSet:
        """The calls at ``indices`` (in that order), e.g. the robustness sample."""
        import numpy as np

        idx = np.asarray(list(indices), dtype=np.int64)
        pick = (lambda values: tuple(values[i] for i in idx))  # noqa: E731 (local one-liner)
        return EvalSet(
            call_ids=pick(self.call_ids), transcripts=pick(self.transcripts), labels=pick(self.labels),
            label_ids=self.label_ids[idx], signal_labels=self.signal_labels[idx],
            signals_labeled=self.signals_labeled[idx], signals=pick(self.signals), source=pick(self.source),
            campaign=pick(self.campaign), industry=pick(self.industry), split=self.split, files=self.files,
            fingerprint=self.fingerprint, corrections_applied=self.corrections_applied,
            timings=pick(self.timings) if self.timings else (),
            text_form=self.text_form, converted=pick(self.converted) if self.converted else (),
        )


def load_eval_set(
    paths: str | Path | Iterable[str | Path],
    *,
    split: str = "auto",
    corrections: Sequence[str | Path] | None = None,
    config: DataConfig | None = None,
    text_form: str = "plain",
) -> EvalSet:
    """Load labeled files and pick the rows to evaluate.

    Args:
        paths: Labeled ``.jsonl``/``.csv``/``.parquet`` files.
        split: ``test``, ``validation``, ``train``, ``all``, or ``auto`` = ``test`` when the data
            has a non-empty test split (its own ``split`` column, else the loader's seeded split,
            the same one training makes with the default settings) and ``all`` otherwise.
        corrections: Correction files (override rows by ``call_id``).
        config: Loader settings (default ``DataConfig()``, as training uses).
        text_form: ``plain`` (as labeled), or a two-channel call's text as serving gives it to a
            model: ``tagged`` (``agent: … caller: …``, a model trained with ``speaker_tags``) or
            ``caller`` (the caller's words only, any other model). Only rows whose speakers are
            known are rewritten (``turns`` that spell the transcript, or ``words`` that all carry a
            speaker: ``render-asr --channels 2``), their word timings with them; other rows (a
            mono ASR rendering, most real data) stay as labeled.

    Returns:
        The evaluation set.

    Raises:
        UserError: unreadable or invalid data, or the chosen split is empty.
    """
    import numpy as np
    from datasets import DatasetDict, concatenate_datasets

    from data.dataset import DataConfig, fingerprint, load_labeled_with_report

    dsd, report = load_labeled_with_report(paths, config or DataConfig(), corrections=corrections or None)
    if split == "auto":
        split = "test" if len(dsd["test"]) > 0 else "all"
    if split == "all":
        chosen = [s for s in _ALL_SPLITS if len(dsd[s]) > 0]
        dataset = concatenate_datasets([dsd[s] for s in chosen])
    elif split in dsd:
        dataset = dsd[split]
    else:
        raise UserError(f"unknown split {split!r} (use test, validation, train, all or auto)")
    if len(dataset) == 0:
        counts = ", ".join(f"{s} {len(dsd[s])}" for s in _ALL_SPLITS)
        raise UserError(f"{', '.join(report.files)}: the {split!r} split is empty ({counts}); "
                        "use --split all or another split")
    rows = dataset.to_dict()
    if text_form not in TEXT_FORMS:
        raise UserError(f"text form must be one of {list(TEXT_FORMS)}, got {text_form!r}")
    transcripts, converted = list(rows["transcript"]), [False] * len(dataset)
    if text_form != "plain":
        transcripts, converted = _two_channel_texts(transcripts, rows["extra"], text_form)
    eval_set = EvalSet(
        call_ids=tuple(rows["call_id"]),
        transcripts=tuple(transcripts),
        labels=tuple(rows["label"]),
        label_ids=np.asarray(rows["label_id"], dtype=np.int64),
        signal_labels=np.asarray(rows["signal_labels"], dtype=np.float32).reshape(len(dataset), -1),
        signals_labeled=np.asarray(rows["signals_labeled"], dtype=bool),
        signals=tuple(tuple(s) for s in rows["signals"]),
        source=tuple(rows["source"]),
        campaign=tuple(rows["campaign"]),
        industry=tuple(rows["industry"]),
        split=split,
        files=report.files,
        fingerprint=fingerprint(DatasetDict({split: dataset})),
        corrections_applied=report.corrections_applied,
        timings=_timings(rows["extra"], converted, text_form),
        text_form=text_form,
        converted=tuple(converted) if any(converted) else (),
    )
    logger.info("evaluating %d calls (%s split of %s; %d with labeled signals%s)", len(eval_set), split,
                ", ".join(report.files), int(eval_set.signals_labeled.sum()),
                f"; {eval_set.converted_calls} as two-channel text, {text_form}" if text_form != "plain" else "")
    if text_form != "plain" and not eval_set.converted_calls:
        logger.warning("two-channel text: no row tells its speakers apart (turns that spell the transcript, or "
                       "words with speakers); every call is scored as labeled")
    return eval_set


#: How a call's text can be scored (``load_eval_set(text_form=…)``).
TEXT_FORMS = ("plain", "tagged", "caller")


def _two_channel_texts(transcripts: Sequence[str], extras: Sequence[str], form: str) -> tuple[list[str], list[bool]]:
    """Each row's text as a two-channel call gives it (``form``), where its speakers are known."""
    import json

    from speech.speakers import caller_words_of, tag_row

    out, converted = [], []
    for transcript, extra in zip(transcripts, extras):
        data = json.loads(extra or "{}")
        if form == "tagged":
            tagged = tag_row(transcript, data.get("turns"), data.get("words"))
            text = None if tagged is None else tagged.text
        else:
            text = caller_words_of(transcript, data.get("turns"), data.get("words"))
        out.append(transcript if text is None else text)
        converted.append(text is not None)
    return out, converted


def _timings(extras: Sequence[str], converted: Sequence[bool], form: str) -> tuple[CallTiming | None, ...]:
    """Word timings from the rows' ``extra`` JSON (``words``, ``audio_seconds``, ``asr_model``);
    a converted row's timings take its form when every word has a speaker (tagged prefixes, or
    the caller's words only).

    A row whose ``words`` are missing or malformed gets None (scored on full text only), so
    one odd row never stops a report.
    """
    import json

    from speech.speakers import has_speakers
    from speech.transcript import Word

    out: list[CallTiming | None] = []
    for extra, two_channel in zip(extras, converted):
        data = json.loads(extra or "{}")
        try:
            words = tuple(Word(text=str(w["text"]), start=float(w["start"]), end=float(w["end"]),
                               probability=float(w.get("probability", 1.0)), speaker=w.get("speaker"))
                          for w in data.get("words") or ())
        except (TypeError, KeyError, ValueError):
            words = ()
        if not words:
            out.append(None)
            continue
        seconds = data.get("audio_seconds")  # the call's end, whoever spoke last
        seconds = float(seconds) if isinstance(seconds, (int, float)) and seconds > 0 else max(w.end for w in words)
        if two_channel and form == "caller" and has_speakers(words):
            words = tuple(w for w in words if w.speaker == "caller")
            if not words:
                out.append(None)
                continue
        out.append(CallTiming(words=tuple(sorted(words, key=lambda w: w.start)), audio_seconds=seconds,
                              asr_model=str(data.get("asr_model") or ""),
                              tagged=two_channel and form == "tagged" and has_speakers(words)))
    return tuple(out) if any(t is not None for t in out) else ()
