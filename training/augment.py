"""Training rows closer to what serving scores: ASR text instead of clean text, and partial openings.

Two pure transforms on ``data.dataset`` rows (plain dicts with its columns), both driven by
:class:`training.config.TrainConfig`:

* :func:`mix_asr_text` — a seeded share of rows take the transcript that the serving ASR made of
  their rendered speech (``callintent data render-asr`` output, matched by ``call_id``). Labels stay
  the clean row's (corrections included); spans go (their offsets point into the clean text), so
  the token-level loss of a present signal is masked while the sequence-level signal labels stay.
* :func:`prefix_copies` — extra copies of a row cut at a few seconds into the call (the words that
  started before the cut, from the row's ``words`` timings), so the model also learns what a live
  stream sees at 5 or 10 s: often only a greeting, for which the honest answer is uncertainty.
  A copy keeps the call's label; its signals are those whose spans lie inside the prefix, or
  unlabeled (masked) when the row's present signals have no spans to tell.
* :func:`tag_speakers` — a seeded share of rows with speaker ``turns`` are written as
  speaker-tagged text (``agent: … caller: …``, :mod:`speech.speakers`), the form serving scores for
  a two-channel call; spans move with the text. Prefix copies of a tagged row are tagged too.
* :func:`asr_noise` — a seeded share of rows rewritten as the ASR might have heard them, drawn
  from an ASR-noise model learned from rendered pairs (:mod:`data.asr_noise`): ASR-like text
  without rendering audio. Labels and signals stay; a row whose text changed drops its spans.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callintent.errors import UserError
from data.asr_noise import AsrNoiseModel
from data.jsonl import read_objects
from models.labels import SIGNAL_NAMES
from speech.speakers import TaggedText, has_speakers, tag_row, tag_words

#: ``extra["text_form"]`` of a row written as speaker-tagged text.
SPEAKER_TAGGED = "speaker_tagged"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AsrText:
    """What the serving ASR heard for one call.

    Attributes:
        transcript: The ASR text.
        words: Its words with timings (``{"text", "start", "end", ...}`` dicts, as rendered).
        asr_model: The ASR model id.
        audio_seconds: Length of the rendered opening.
        reference: The labeled text that was spoken (``reference_transcript`` of a render), or None
            when the file does not say. A row whose transcript is not this text is another call
            under the same id (a corpus generated with another seed or size): it keeps its text.
    """

    transcript: str
    words: tuple[dict[str, Any], ...]
    asr_model: str = ""
    audio_seconds: float | None = None
    reference: str | None = None


def read_asr_texts(paths: Iterable[str | Path]) -> dict[str, AsrText]:
    """ASR transcripts by ``call_id`` from ``render-asr`` (or ``data transcribe``) JSONL files.

    Args:
        paths: JSONL files (``.jsonl.gz`` too); a later file's row replaces an earlier one's with the
            same id.

    Returns:
        ``call_id`` → ASR text (rows with an empty transcript are skipped).

    Raises:
        UserError: a missing file, or a line that is not a JSON object with ``call_id`` and
            ``transcript`` (named as ``file:line``).
    """
    out: dict[str, AsrText] = {}
    missing = "ASR text file not found (asr_files; make it with 'callintent data render-asr')"
    for path, line_no, row in read_objects(paths, missing=missing):
        if not isinstance(row.get("call_id"), str) or not isinstance(row.get("transcript"), str):
            raise UserError(f"{path}:{line_no}: expected a JSON object with call_id and transcript")
        if not row["transcript"].strip():
            continue
        words = row.get("words") if isinstance(row.get("words"), list) else []
        seconds = row.get("audio_seconds")
        reference = row.get("reference_transcript")
        out[row["call_id"]] = AsrText(
            transcript=row["transcript"], words=tuple(w for w in words if isinstance(w, dict)),
            asr_model=str(row.get("asr_model") or ""),
            audio_seconds=float(seconds) if isinstance(seconds, (int, float)) else None,
            reference=reference if isinstance(reference, str) else None)
    return out


def mix_asr_text(rows: Sequence[Mapping[str, Any]], asr: Mapping[str, AsrText], share: float,
                 seed: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Replace the transcript of a seeded ``share`` of the rows that have an ASR version.

    Each row's draw depends only on (seed, call_id), so the same calls switch whatever the order.
    An ASR version whose ``reference`` is not the row's transcript was made from another call that
    had the same id: the row keeps its text (counted in the log, never switched).

    Args:
        rows: ``data.dataset`` rows.
        asr: ASR texts by call id (:func:`read_asr_texts`).
        share: Probability in [0, 1] that a row with an ASR version takes it.
        seed: Seed of the draws.

    Returns:
        ``(rows, switched)``: new row dicts (unchanged ones copied) and how many switched.
    """
    out, switched, stale = [], 0, 0
    for row in rows:
        heard = asr.get(row["call_id"])
        if heard is not None and heard.reference is not None and heard.reference != row["transcript"]:
            stale += 1
            heard = None
        if heard is None or _draw(seed, "asr", row["call_id"]).random() >= share:
            out.append(dict(row))
            continue
        extra = json.loads(row.get("extra") or "{}")
        extra.update({"words": list(heard.words), "asr_model": heard.asr_model, "text_source": "asr",
                      "reference_transcript": row["transcript"]})
        if heard.audio_seconds is not None:
            extra["audio_seconds"] = heard.audio_seconds
        out.append({**row, "transcript": heard.transcript, "spans": "[]", "extra": json.dumps(extra)})
        switched += 1
    if stale:
        logger.warning("%d rows kept their text: their call_id's ASR version was rendered from other words "
                       "(an ASR file made from another corpus)", stale)
    return out, switched


def tag_speakers(rows: Sequence[Mapping[str, Any]], share: float, seed: int = 0
                 ) -> tuple[list[dict[str, Any]], int]:
    """Write a seeded ``share`` of the rows that have speaker turns as speaker-tagged text.

    A row qualifies when its ``turns`` (in ``extra``) spell its transcript and every turn has a
    speaker of :data:`speech.speakers.SPEAKERS`, or, for ASR text, when its ``words`` all have a
    speaker (``render-asr --channels 2``; a mono rendering has none). Evidence spans move to
    their tagged offsets; the row's ``words`` keep their speakers, so prefix copies are tagged too.

    Args:
        rows: ``data.dataset`` rows.
        share: Probability in [0, 1] that a qualifying row is tagged.
        seed: Seed of the draws (per call id, so the same calls are tagged whatever the order).

    Returns:
        ``(rows, tagged)``: new row dicts and how many were tagged.
    """
    out, tagged = [], 0
    for row in rows:
        extra = json.loads(row.get("extra") or "{}")
        text = _tagged_transcript(row, extra)
        if text is None or _draw(seed, "speakers", row["call_id"]).random() >= share:
            out.append(dict(row))
            continue
        spans = []
        for span in json.loads(row.get("spans") or "[]"):
            moved = text.from_source(int(span["start"]), int(span["end"]))
            if moved is not None:
                spans.append({**span, "start": moved[0], "end": moved[1], "text": text.text[moved[0]:moved[1]]})
        extra["text_form"] = SPEAKER_TAGGED
        out.append({**row, "transcript": text.text, "spans": json.dumps(spans), "extra": json.dumps(extra)})
        tagged += 1
    return out, tagged


def spoken_frame(rows: Sequence[Mapping[str, Any]], share: float, seed: int = 0
                 ) -> tuple[list[dict[str, Any]], int]:
    """Frame a seeded ``share`` of the typed rows as the opening of a call (see the module docstring).

    A row qualifies when it has neither speaker ``turns`` nor ``words`` timings in ``extra``. The
    framed row gets ``turns`` (the agent's greeting, if any, then the caller's words), so it can be
    speaker-tagged as well; ``extra["framed"]`` keeps the text as it was.

    Args:
        rows: ``data.dataset`` rows.
        share: Probability in [0, 1] that a qualifying row is framed.
        seed: Seed of the draws (per call id).

    Returns:
        ``(rows, framed)``: new row dicts and how many were framed.
    """
    from data import synth_lexicon as lex

    out, framed = [], 0
    for row in rows:
        extra = json.loads(row.get("extra") or "{}")
        rng = _draw(seed, "frame", row["call_id"])
        if extra.get("turns") or extra.get("words") or extra.get("framed") or rng.random() >= share:
            out.append(dict(row))
            continue
        text = row["transcript"]
        greeting = opener = ""
        style = rng.choice(("agent+caller", "agent+caller", "agent", "caller", "caller?"))
        if style.startswith("agent"):
            businesses = [b for ind in lex.INDUSTRIES if ind.name == row.get("industry") for b in ind.businesses]
            biz = rng.choice(businesses or [b for ind in lex.INDUSTRIES for b in ind.businesses])
            greeting = _sentence(rng.choice(lex.GREETINGS).format(biz=biz, agent=rng.choice(lex.AGENT_NAMES)))
        if style != "agent":
            opener = _sentence(rng.choice(lex.OPENERS), "?" if style == "caller?" else ".")
        caller = " ".join(p for p in (opener, text) if p)
        transcript = " ".join(p for p in (greeting, caller) if p)
        shift = len(transcript) - len(text)
        spans = [{**span, "start": int(span["start"]) + shift, "end": int(span["end"]) + shift}
                 for span in json.loads(row.get("spans") or "[]")]
        turns = ([{"speaker": "agent", "text": greeting}] if greeting else []) + [{"speaker": "caller", "text": caller}]
        extra.update({"turns": turns, "framed": text})
        out.append({**row, "transcript": transcript, "spans": json.dumps(spans), "extra": json.dumps(extra)})
        framed += 1
    return out, framed


def asr_noise(rows: Sequence[Mapping[str, Any]], model: AsrNoiseModel, share: float, seed: int = 0,
              strength: float = 1.0) -> tuple[list[dict[str, Any]], int]:
    """Rewrite a seeded ``share`` of the rows as the ASR might have heard them (module docstring).

    Rows already on ASR text (``extra["text_source"] == "asr"``) are left alone. Each row's draws
    depend only on (seed, call_id). A row whose text changed keeps its label and signals, drops
    its ``spans`` (their character offsets no longer hold, so its token-level signal loss is
    masked), and records the text it was made from as ``extra["reference_transcript"]`` with
    ``extra["text_source"] = "asr_noise"``; its ``words`` timings are dropped (they spell the clean text).

    Args:
        rows: ``data.dataset`` rows.
        model: The ASR-noise model (:meth:`data.asr_noise.AsrNoiseModel.load`).
        share: Probability in [0, 1] that a row is noised.
        seed: Seed of the draws.
        strength: Scales the model's error rates (1 = as learned).

    Returns:
        ``(rows, noised)``: new row dicts and how many changed text.
    """
    out, noised = [], 0
    for row in rows:
        extra = json.loads(row.get("extra") or "{}")
        rng = _draw(seed, "asr_noise", row["call_id"])
        if extra.get("text_source") in ("asr", "asr_noise") or rng.random() >= share:
            out.append(dict(row))
            continue
        text = model.apply(row["transcript"], rng, strength)
        if text == row["transcript"]:
            out.append(dict(row))
            continue
        extra.pop("words", None)
        extra.update({"text_source": "asr_noise", "reference_transcript": row["transcript"]})
        out.append({**row, "transcript": text, "spans": "[]", "extra": json.dumps(extra)})
        noised += 1
    return out, noised


def _sentence(text: str, end: str = ".") -> str:
    """``text`` capitalised and ended as a sentence (as the corpus writes a turn)."""
    text = text[:1].upper() + text[1:]
    return text if text[-1:] in ".?!" else text + end


def prefix_copies(rows: Sequence[Mapping[str, Any]], seconds: Sequence[float], copies: int = 1,
                  seed: int = 0) -> list[dict[str, Any]]:
    """Copies of rows cut at ``seconds`` into the call (only the copies; see the module docstring).

    Args:
        rows: ``data.dataset`` rows; those without ``words`` timings in ``extra`` give no copies.
        seconds: Cut-offs to draw from.
        copies: Copies per row, each at a different cut-off (at most the number of cut-offs that
            give a non-empty prefix shorter than the whole opening).
        seed: Seed of the draws (per call id).

    Returns:
        The new rows; ``call_id`` is ``"<id>#<t>s"`` and ``extra`` records ``prefix_seconds``.
    """
    out = []
    for row in rows:
        extra = json.loads(row.get("extra") or "{}")
        words = _timed_words(extra.get("words"))
        if not words:
            continue
        usable = [t for t in sorted(set(seconds)) if 0 < sum(1 for w in words if w[1] < t) < len(words)]
        if not usable:
            continue
        picks = _draw(seed, "prefix", row["call_id"]).sample(usable, min(copies, len(usable)))
        for t in sorted(picks):
            out.append(_cut(row, extra, words, t))
    return out


# --------------------------------------------------------------------------------------------------


def _tagged_transcript(row: Mapping[str, Any], extra: Mapping[str, Any]) -> TaggedText | None:
    """The row's tagged text when its turns (clean text) or its words' speakers (ASR text of a
    two-channel rendering) spell its transcript, else None."""
    if extra.get("text_form") == SPEAKER_TAGGED:
        return None
    turns = None if extra.get("text_source") == "asr" else extra.get("turns")  # an ASR row's turns are the clean text's
    return tag_row(row["transcript"], turns, extra.get("words"))


def _join_words(words: Sequence[dict], tagged: bool) -> str:
    return tag_words(words).text if tagged else " ".join(w["text"] for w in words)


def _cut(row: Mapping[str, Any], extra: dict[str, Any], words: list[tuple[str, float, dict]], t: float
         ) -> dict[str, Any]:
    kept = [w for w in words if w[1] < t]
    tagged = extra.get("text_form") == SPEAKER_TAGGED and has_speakers(w[2] for w in words)
    text = _join_words([w[2] for w in kept], tagged)
    spans = json.loads(row.get("spans") or "[]")
    signals: list[str] = list(row.get("signals") or [])
    labeled = bool(row.get("signals_labeled"))
    # The prefix is a true prefix of the transcript only when the words spell it; then spans that
    # end inside it keep their offsets.
    spelled = _join_words([w[2] for w in words], tagged) == row["transcript"]
    if labeled and spelled and all(any(s["signal"] == name for s in spans) for name in signals):
        spans = [s for s in spans if s["end"] <= len(text)]
        signals = sorted({s["signal"] for s in spans})
    else:
        # Which present signals were said before the cut is unknown: mask the signal losses.
        spans, labeled = [], False
    return {**row, "call_id": f"{row['call_id']}#{t:g}s", "transcript": text, "spans": json.dumps(spans),
            "signals": signals if labeled else [], "signals_labeled": labeled,
            "signal_labels": [1.0 if labeled and s in signals else 0.0 for s in SIGNAL_NAMES],
            "extra": json.dumps({**extra, "words": [w[2] for w in kept], "prefix_seconds": t})}


def _timed_words(words: Any) -> list[tuple[str, float, dict]]:
    """``(text, start, word dict)`` in time order; empty when the timings are missing or malformed."""
    if not isinstance(words, list):
        return []
    out = []
    for w in words:
        if not isinstance(w, dict) or not isinstance(w.get("text"), str) or not isinstance(w.get("start"), (int, float)):
            return []
        out.append((w["text"], float(w["start"]), w))
    return sorted(out, key=lambda w: w[1])


def _draw(seed: int, purpose: str, call_id: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{purpose}:{call_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))
