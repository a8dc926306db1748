"""Speaker-tagged text: how a model trained with ``speaker_tags`` reads who said what.

A two-channel call (stereo PCM, Twilio's inbound and outbound tracks) knows which words are the
caller's and which the agent's. The tagged form writes each change of speaker as a tag word::

    agent: thank you for calling harbor view, how can I help? caller: hi, I saw your ad for ...

The tags are plain words (``caller:``, ``agent:``), so any tokenizer reads them without new
vocabulary and any local encoder can be fine-tuned on them. A model trained on a mix of tagged
and plain text reads both: tagged text for two-channel calls, plain text for mono audio and for
text with no speakers.

:class:`TaggedText` keeps where each run of words came from, so character spans map both ways:
training moves evidence spans from the plain transcript into the tagged text
(:meth:`TaggedText.from_source`), and serving moves the model's evidence back to offsets in one
speaker's transcript (:meth:`TaggedText.to_source`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

#: The speakers of a two-channel call.
SPEAKERS = ("caller", "agent")


def tag_of(speaker: str) -> str:
    """The tag word written before a run of ``speaker``'s words."""
    return f"{speaker}:"


@dataclass(frozen=True)
class Piece:
    """A run of one speaker's text inside a :class:`TaggedText`.

    Attributes:
        speaker: Whose words.
        start: First character in the tagged text (inclusive).
        end: Last character in the tagged text (exclusive).
        source: Where the same characters start in the source text the piece came from (the
            plain transcript for :func:`tag_turns`, the speaker's own transcript for
            :func:`tag_words`).
    """

    speaker: str
    start: int
    end: int
    source: int


@dataclass(frozen=True)
class TaggedText:
    """Speaker-tagged text and the map from its runs back to their sources.

    Attributes:
        text: The tagged text.
        pieces: The runs of words in order (tags lie between them).
    """

    text: str
    pieces: tuple[Piece, ...]

    def to_source(self, start: int, end: int) -> tuple[str, int, int] | None:
        """Where a span of :attr:`text` lies in its speaker's source text.

        A span that starts inside a tag begins at the next run; a span running past the end
        of its run is cut there (a span never covers two speakers).

        Returns:
            ``(speaker, start, end)`` in source offsets, or None when the span covers only tags.
        """
        k = max(bisect.bisect_right([p.start for p in self.pieces], start) - 1, 0)
        for piece in self.pieces[k:]:
            if piece.end <= start:
                continue
            if piece.start >= end:
                return None
            lo, hi = max(start, piece.start), min(end, piece.end)
            return piece.speaker, piece.source + lo - piece.start, piece.source + hi - piece.start
        return None

    def from_source(self, start: int, end: int) -> tuple[int, int] | None:
        """Where a span of the source text lies in :attr:`text` (sources must not overlap).

        Returns:
            ``(start, end)`` in tagged offsets (cut at the end of the run holding ``start``), or
            None when no run holds ``start``.
        """
        for piece in self.pieces:
            length = piece.end - piece.start
            if piece.source <= start < piece.source + length:
                return piece.start + start - piece.source, piece.start + min(end - piece.source, length)
        return None


def tag(parts: Iterable[tuple[str, str, int]]) -> TaggedText:
    """Join ``(speaker, text, source offset)`` parts in order, writing a tag at each change of speaker.

    Consecutive parts of one speaker join with a space and no tag; they share a :class:`Piece`
    when they are also consecutive in the source (one space apart).

    Raises:
        ValueError: a speaker that is not one of :data:`SPEAKERS`.
    """
    chunks: list[str] = []
    pieces: list[Piece] = []
    length = 0
    speaker: str | None = None
    for who, text, source in parts:
        text = text.strip()
        if not text:
            continue
        if who not in SPEAKERS:
            raise ValueError(f"speaker must be one of {list(SPEAKERS)}, got {who!r}")
        sep = " " if chunks else ""
        if who != speaker:
            chunks.append(f"{sep}{tag_of(who)}")
            length += len(sep) + len(tag_of(who))
            sep = " "
            speaker = who
        start = length + len(sep)
        chunks.append(sep + text)
        length = start + len(text)
        last = pieces[-1] if pieces else None
        if last is not None and last.speaker == who and last.end + 1 == start and \
                last.source + (last.end - last.start) + 1 == source:
            pieces[-1] = Piece(who, last.start, length, last.source)
        else:
            pieces.append(Piece(who, start, length, source))
    return TaggedText("".join(chunks), tuple(pieces))


def tag_turns(turns: Sequence[Mapping[str, Any]]) -> TaggedText | None:
    """Tag a labeled row's ``turns`` (``{"speaker", "text"}``); sources index the plain transcript.

    The plain transcript is the turns' texts joined by single spaces (how the corpus writes it),
    so a span of the row's ``transcript`` maps with :meth:`TaggedText.from_source`.

    Returns:
        The tagged text, or None when a turn has no text or a speaker outside :data:`SPEAKERS`.
    """
    parts, offset = [], 0
    for turn in turns:
        if not isinstance(turn, Mapping) or turn.get("speaker") not in SPEAKERS or not isinstance(turn.get("text"), str):
            return None
        text = turn["text"].strip()
        if not text:
            continue
        parts.append((turn["speaker"], text, offset))
        offset += len(text) + 1
    return tag(parts) if parts else None


def tag_row(transcript: str, turns: Any, words: Any = None) -> TaggedText | None:
    """A labeled row's tagged text: from its ``turns`` when they spell its ``transcript``, else
    from its ``words`` when every word has a speaker and they spell it (an ASR rendering of a
    two-channel call); None when neither does.

    Only then do the row's spans (offsets into ``transcript``, from turns) map into the tagged text.
    """
    if isinstance(turns, list) and turns:
        tagged = tag_turns(turns)
        if tagged is not None and " ".join(t["text"].strip() for t in turns if t["text"].strip()) == transcript:
            return tagged
    if isinstance(words, list) and has_speakers(words) and all(isinstance(w, Mapping) for w in words) and \
            " ".join(str(w.get("text", "")).strip() for w in words) == transcript:
        return tag_words(words)
    return None


def caller_words_of(transcript: str, turns: Any, words: Any = None) -> str | None:
    """What a model that does not read tags gets from a two-channel call: the caller's words.

    Known from the row's ``turns`` (when they spell its transcript) or its ``words``' speakers
    (when every word has one and they spell it), as :func:`tag_row` decides.

    Returns:
        The caller's words joined ("" when the caller said nothing), or None when the row does
        not tell the speakers apart.
    """
    tagged = tag_row(transcript, turns, words)
    if tagged is None:
        return None
    return " ".join(tagged.text[p.start:p.end] for p in tagged.pieces if p.speaker == "caller")


class _SpokenWord(Protocol):
    text: str
    speaker: str | None


class _TimedWord(Protocol):
    text: str
    start: float


def tag_words(words: Sequence[_SpokenWord | Mapping[str, Any]]) -> TaggedText:
    """Tag time-ordered words of both speakers; sources index each speaker's own transcript.

    A speaker's transcript is their words joined by single spaces, in order (what a two-channel
    stream shows per speaker), so :meth:`TaggedText.to_source` gives offsets into it.

    Args:
        words: :class:`speech.transcript.Word` objects or ``{"text", "speaker"}`` dicts, in the
            order they were said.

    Raises:
        ValueError: a word without a speaker of :data:`SPEAKERS`.
    """
    cursor = {s: 0 for s in SPEAKERS}
    parts = []
    for w in words:
        text, speaker = (w.get("text"), w.get("speaker")) if isinstance(w, Mapping) else (w.text, w.speaker)
        text = (text or "").strip()
        if not text:
            continue
        if speaker not in cursor:
            raise ValueError(f"every word needs a speaker of {list(SPEAKERS)} to be tagged, got {speaker!r}")
        parts.append((speaker, text, cursor[speaker]))
        cursor[speaker] += len(text) + 1
    return tag(parts)


def interleave(channels: Mapping[str, Sequence[_TimedWord]]) -> TaggedText:
    """Tag the words of separately transcribed speakers, interleaved by start time.

    Each speaker's words stay in their own order whatever their times (a decode may place a
    word's start a little before the previous one's), and sources index each speaker's own
    transcript, their words joined by single spaces.

    Args:
        channels: Speaker → that speaker's words in order (objects with ``text`` and ``start``).
    """
    parts = []
    for speaker, words in channels.items():
        offset = 0
        for k, w in enumerate(words):
            parts.append((w.start, k, speaker, w.text, offset))
            offset += len(w.text) + 1
    # By time; a speaker's own words in order (k), the earlier speaker of SPEAKERS first on a tie.
    parts.sort(key=lambda p: (p[0], SPEAKERS.index(p[2]) if p[2] in SPEAKERS else len(SPEAKERS), p[1]))
    order = {speaker: sorted((p for p in parts if p[2] == speaker), key=lambda p: p[1]) for speaker in channels}
    ordered = []
    cursor = {speaker: 0 for speaker in channels}
    for p in parts:  # emit each speaker's next word in its own order at the time slot of this one
        speaker = p[2]
        ordered.append(order[speaker][cursor[speaker]])
        cursor[speaker] += 1
    return tag((speaker, text, offset) for _, _, speaker, text, offset in ordered)


def merge_speakers(heard: Mapping[str, Any]) -> Any:
    """Separately transcribed speakers' openings as one (``speech.transcript.OpeningTranscript``):
    every word tagged with its speaker, all in time order (one speaker's words keep their order).

    Args:
        heard: Speaker → that speaker's ``OpeningTranscript`` (one channel each).
    """
    from dataclasses import replace

    from speech.transcript import OpeningTranscript

    words = [replace(w, speaker=s) for s, t in heard.items() for w in t.words]
    words.sort(key=lambda w: (w.start, SPEAKERS.index(w.speaker) if w.speaker in SPEAKERS else len(SPEAKERS)))
    first = next(iter(heard.values()))
    return OpeningTranscript(words=tuple(words), audio_seconds=max(t.audio_seconds for t in heard.values()),
                             cut_seconds=first.cut_seconds, language=first.language,
                             dropped_words=sum(t.dropped_words for t in heard.values()))


def has_speakers(words: Iterable[Any]) -> bool:
    """True when every word (a ``Word`` or a dict) has a speaker of :data:`SPEAKERS`, and there is one."""
    seen = False
    for w in words:
        speaker = w.get("speaker") if isinstance(w, Mapping) else getattr(w, "speaker", None)
        if speaker not in SPEAKERS:
            return False
        seen = True
    return seen


__all__ = ["Piece", "SPEAKERS", "TaggedText", "has_speakers", "interleave", "merge_speakers", "tag", "caller_words_of", "tag_of", "tag_row", "tag_turns", "tag_words"]
