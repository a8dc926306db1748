"""PII redaction for transcripts: card numbers, phone numbers, emails and SSNs become tags.

Callers read numbers and addresses out loud in the opening of a call, and telephone ASR writes
them down either as digits ("4111 1111 1111 1111", "(555) 123-4567") or as words ("five five
five, one two three…", "john at gmail dot com"). Both forms are found here and replaced by
``[CARD]``, ``[PHONE]``, ``[SSN]``, ``[EMAIL]`` (and ``[NUMBER]`` for a long spoken digit run
that fits none of those, e.g. 8 or 12 digits: it is still somebody's number).

What is deliberately *not* redacted, because the classifier's evidence and the agent need it:
prices ("$1,299", "1,299 dollars"), quantities ("50 gallon"), dates ("3/15/2024",
"2024-03-15"), times ("10:30"), zip codes ("90210", "90210-1234") and street numbers
("1234 Main Street"). Written digits are only redacted in the shapes PII takes (3-3-4 phone,
3-2-4 SSN, 13–19 digit card, …); spoken digits are redacted from 7 in a row, because nobody reads
out a price or a date digit by digit.

The model scores the original text; its evidence spans are character offsets into that text.
:meth:`Redaction.map_span` moves a span onto the redacted text (a span touching PII grows to
cover the whole tag), and :func:`redact_scores` does it for a whole :class:`IntentScores`.
A :class:`Redaction` keeps only offsets and tags, never the redacted characters themselves.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from speech.speakers import TaggedText
from speech.transcript import Word
from models.scores import Evidence, IntentScores

CARD = "[CARD]"
PHONE = "[PHONE]"
EMAIL = "[EMAIL]"
SSN = "[SSN]"
NUMBER = "[NUMBER]"
TAGS = (CARD, PHONE, EMAIL, SSN, NUMBER)

#: Spoken digit runs shorter than this are left alone ("two one ton units", "one two three").
MIN_SPOKEN_DIGITS = 7


@dataclass(frozen=True)
class Replacement:
    """One redacted span.

    Attributes:
        start: Start offset of the PII in the original text (inclusive).
        end: End offset in the original text (exclusive).
        tag: The tag that replaced it (``"[PHONE]"`` …).
        redacted_start: Offset of the tag in the redacted text.
    """

    start: int
    end: int
    tag: str
    redacted_start: int

    @property
    def redacted_end(self) -> int:
        return self.redacted_start + len(self.tag)


@dataclass(frozen=True)
class Redaction:
    """A redacted text and where its tags came from.

    Attributes:
        text: The text with every PII span replaced by its tag.
        replacements: The replaced spans in text order (offsets only; no PII is kept).
        original_length: Length of the text that was redacted (bounds :meth:`map_span`).
    """

    text: str
    replacements: tuple[Replacement, ...] = ()
    original_length: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.replacements)

    def map_span(self, start: int, end: int) -> tuple[int, int]:
        """Map ``[start, end)`` in the original text to the redacted text.

        A span that overlaps a replaced span grows to cover the whole tag, so evidence on
        "call me at 555…" shows as "call me at [PHONE]" and never half a tag.

        Args:
            start: Start offset in the original text.
            end: End offset in the original text (``start <= end <= original_length``).

        Returns:
            ``(start, end)`` in :attr:`text`.

        Raises:
            ValueError: offsets out of range or reversed.
        """
        if not 0 <= start <= end <= self.original_length:
            raise ValueError(f"span ({start}, {end}) is outside the original text of length {self.original_length}")
        new_start = self._map(start, is_end=False)
        new_end = self._map(end, is_end=True)
        return new_start, max(new_start, new_end)

    def map_offset(self, offset: int) -> int:
        """Map one position (e.g. the stable/unstable boundary); inside PII it moves to the tag start."""
        if not 0 <= offset <= self.original_length:
            raise ValueError(f"offset {offset} is outside the original text of length {self.original_length}")
        return self._map(offset, is_end=False)

    def _map(self, pos: int, *, is_end: bool) -> int:
        shift = 0
        for r in self.replacements:
            if is_end and r.start < pos <= r.end:
                return r.redacted_end
            if not is_end and r.start <= pos < r.end:
                return r.redacted_start
            if pos < r.end:
                break
            shift = r.redacted_end - r.end
        return pos + shift


def redact(text: str, *, open_ended: bool = False) -> Redaction:
    """Replace card numbers, phone numbers, emails and SSNs in ``text`` with tags.

    Args:
        text: A transcript (any casing, digits or spoken numbers).
        open_ended: The text is a live partial transcript that may continue: a run of 3 or more
            digits at its very end may be the first digits of a number still being read out,
            so it becomes ``[NUMBER]`` until later words show what it is (otherwise each
            partial would leak a few more digits of a phone or card number).

    Returns:
        The :class:`Redaction` (``.text`` is safe to show and log).
    """
    spans: list[tuple[int, int, str]] = []
    finders = [_find_emails, _find_spoken_runs, _find_written_numbers]
    if open_ended:
        finders.append(_find_trailing_digits)
    # Emails first (their local part may hold digits), then spoken runs (which may contain
    # written groups), then written digits; a later finder never overrides an earlier one.
    for finder in finders:
        for start, end, tag in finder(text):
            if not any(start < e and s < end for s, e, _ in spans):
                spans.append((start, end, tag))
    spans.sort()
    parts: list[str] = []
    replacements: list[Replacement] = []
    cursor = 0
    length = 0
    for start, end, tag in spans:
        parts.append(text[cursor:start])
        length += start - cursor
        replacements.append(Replacement(start, end, tag, length))
        parts.append(tag)
        length += len(tag)
        cursor = end
    parts.append(text[cursor:])
    return Redaction("".join(parts), tuple(replacements), len(text))


def redact_scores(text: str, scores: IntentScores) -> tuple[str, IntentScores]:
    """Redact ``text`` and move the evidence spans of ``scores`` (computed on ``text``) onto it.

    Args:
        text: The text the scores were computed on.
        scores: The classifier output for ``text``.

    Returns:
        ``(redacted_text, scores)`` where every evidence span indexes ``redacted_text`` and its
        ``text`` is the redacted slice.
    """
    redaction = redact(text)
    if not redaction.changed:
        return text, scores
    return redaction.text, map_scores(redaction, scores)


def map_scores(redaction: Redaction, scores: IntentScores) -> IntentScores:
    """Move the evidence spans of ``scores`` through an existing :class:`Redaction`."""
    signals = []
    for signal in scores.signals:
        evidence = []
        for ev in signal.evidence:
            start, end = redaction.map_span(min(ev.start, redaction.original_length),
                                            min(ev.end, redaction.original_length))
            evidence.append(Evidence(start=start, end=end, text=redaction.text[start:end], score=ev.score))
        signals.append(dataclasses.replace(signal, evidence=_dedupe(evidence)))
    return dataclasses.replace(scores, signals=tuple(signals))


def map_tagged_scores(scores: IntentScores, tagged: TaggedText, texts: Mapping[str, str],
                      redactions: Mapping[str, Redaction | None]) -> IntentScores:
    """Move the evidence of ``scores`` (made on speaker-tagged text) into each speaker's transcript.

    Args:
        scores: Scores whose evidence offsets index ``tagged.text``.
        tagged: The tagged text that was scored (its pieces' sources index ``texts``).
        texts: Each speaker's transcript as heard.
        redactions: Each speaker's redaction of its transcript (None: shown unredacted).

    Returns:
        The scores with every evidence span carrying its ``speaker`` and offsets into that
        speaker's (redacted) transcript; spans over tags only are dropped.
    """
    signals = []
    for signal in scores.signals:
        evidence = []
        for ev in signal.evidence:
            located = tagged.to_source(ev.start, ev.end)
            if located is None:
                continue
            speaker, start, end = located
            redaction = redactions.get(speaker)
            if redaction is None:
                shown = texts[speaker]
            else:
                start, end = redaction.map_span(min(start, redaction.original_length),
                                                min(end, redaction.original_length))
                shown = redaction.text
            evidence.append(Evidence(start=start, end=end, text=shown[start:end], score=ev.score, speaker=speaker))
        signals.append(dataclasses.replace(signal, evidence=_dedupe(evidence)))
    return dataclasses.replace(scores, signals=tuple(signals))


def redact_words(words: Sequence[Word]) -> tuple[Word, ...]:
    """Redact a timed word list: words that make up one PII item merge into one tag word.

    "my number is five five five one two three four five six seven" becomes
    ``my number is [PHONE]`` with the tag word spanning the first to the last digit's time.

    Args:
        words: ASR words in order.

    Returns:
        The redacted words (the same objects where nothing changed).
    """
    if not words:
        return ()
    bounds = []
    cursor = 0
    for w in words:
        bounds.append((cursor, cursor + len(w.text)))
        cursor += len(w.text) + 1
    redaction = redact(" ".join(w.text for w in words))
    if not redaction.changed:
        return tuple(words)
    rep_starts = [r.start for r in redaction.replacements]

    def touching(start: int, end: int) -> set[int]:
        hits = set()
        i = max(0, bisect.bisect_right(rep_starts, start) - 1)
        for j in range(i, len(redaction.replacements)):
            r = redaction.replacements[j]
            if r.start >= end:
                break
            if r.end > start:
                hits.add(j)
        return hits

    groups: list[tuple[list[int], set[int]]] = []
    for i, (start, end) in enumerate(bounds):
        hits = touching(start, end)
        if groups and hits and groups[-1][1] & hits:
            groups[-1][0].append(i)
            groups[-1][1].update(hits)
        else:
            groups.append(([i], hits))
    out: list[Word] = []
    for members, hits in groups:
        first, last = words[members[0]], words[members[-1]]
        if not hits:
            out.append(first)
            continue
        start, end = redaction.map_span(bounds[members[0]][0], bounds[members[-1]][1])
        out.append(Word(text=redaction.text[start:end], start=first.start, end=last.end,
                        probability=min(words[i].probability for i in members), speaker=first.speaker))
    return tuple(out)


def contains_pii(text: str) -> bool:
    """True when :func:`redact` would change ``text`` (for log guards and tests)."""
    return redact(text).changed


# ---------------------------------------------------------------------------------------------
# Finders: each yields (start, end, tag) spans of the original text.

_TLDS = r"(?:com|net|org|edu|gov|mil|io|co|us|info|biz|me|ca|uk|ai|app|dev)"
_PROVIDERS = (r"(?:gmail|yahoo|hotmail|outlook|aol|icloud|comcast|msn|live|protonmail|verizon|att|sbcglobal"
              r"|bellsouth|ymail)")
_DOT = r"(?:\s*\.\s*|\s+(?:dot|period)\s+)"
_LOCAL_PART = r"[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}"  # 64: the longest local part (RFC 5321)
# Repetitions are bounded (real addresses have a few parts) so matching stays linear in the text.
_SPOKEN_LOCAL = rf"{_LOCAL_PART}(?:\s+(?:dot|underscore|dash|hyphen)\s+{_LOCAL_PART}){{0,3}}"
_AT = r"(?:\s+at\s+|\s*@\s*)"
_LABEL = r"[A-Za-z0-9][A-Za-z0-9\-]{0,62}"

_WRITTEN_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9.\-]{1,253}\.[A-Za-z]{2,}")
_SPOKEN_EMAIL = re.compile(
    rf"\b(?P<local>{_SPOKEN_LOCAL}){_AT}(?:{_LABEL}(?:{_DOT}{_LABEL}){{0,3}}{_DOT}{_TLDS}|{_PROVIDERS})\b",
    re.IGNORECASE,
)
#: Words that precede "at" in ordinary speech ("visit us at acme dot com" is a website, not an email).
_NOT_LOCAL = frozenset({
    "us", "me", "you", "him", "her", "them", "it", "we", "i", "look", "looking", "visit", "online", "here",
    "there", "is", "was", "be", "site", "website", "web", "find", "check", "out", "go", "page", "and", "or",
    "email", "e-mail", "mail", "address", "reach", "contact", "that", "this", "up", "on", "in", "call",
    "calling", "shop", "order", "apply", "book", "signup", "available", "located", "listed", "posted",
})


def _find_emails(text: str) -> Iterable[tuple[int, int, str]]:
    for m in _WRITTEN_EMAIL.finditer(text):
        yield m.start(), m.end(), EMAIL
    for m in _SPOKEN_EMAIL.finditer(text):
        local = m.group("local")
        if local.lower() in _NOT_LOCAL:
            continue
        yield m.start(), m.end(), EMAIL


_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
}
_REPEATERS = {"double": 2, "triple": 3}
#: Hesitations that may sit inside a read-out number without ending it.
_FILLERS = frozenset({"uh", "um", "er", "erm", "ah", "hmm"})
_TOKEN = re.compile(r"[A-Za-z]+|\d+")
#: What may separate the tokens of one read-out number.
_RUN_GAP = re.compile(r"[\s,.\-]*")


def _find_spoken_runs(text: str) -> Iterable[tuple[int, int, str]]:
    """Runs of spoken digits ("four one one one…", "double five", "oh") with optional written groups."""
    tokens = [(m.start(), m.end(), m.group().lower()) for m in _TOKEN.finditer(text)]
    i = 0
    while i < len(tokens):
        run = _spoken_run_at(text, tokens, i)
        if run is None:
            i += 1
            continue
        end_index, digits, spoken, span = run
        if len(digits) >= MIN_SPOKEN_DIGITS and (spoken or _read_out(text[span[0]:span[1]])):
            yield span[0], span[1], _tag_for_digit_count(digits)
        i = end_index


#: Digit-group lengths of a phone, SSN or card number read out in groups ("555, 123, 4567").
_READ_OUT_SHAPES = frozenset({(3, 4), (3, 3, 4), (1, 3, 3, 4), (3, 2, 4), (4, 4, 4, 4), (4, 6, 5)})


def _read_out(span: str) -> bool:
    """Numerals the ASR wrote with commas (and periods) between them, as it writes a number read out
    digit by digit ("5, 5, 5, 1, 2, 3…", "5 .5, 1, 2…") or in the groups of a phone, SSN or card
    number. Written numbers without those separators are :func:`_find_written_numbers`' job."""
    if "," not in span:
        return False  # "2019 2020 2021", "(555) 123-4567": written numbers, judged elsewhere
    groups = tuple(len(g) for g in re.findall(r"\d+", span))
    return all(n == 1 for n in groups) or groups in _READ_OUT_SHAPES


#: Digits at the end of a partial transcript that are held back as a possible number.
MIN_TRAILING_DIGITS = 3


def _find_trailing_digits(text: str) -> Iterable[tuple[int, int, str]]:
    """A digit run (spoken or written) that reaches the end of the text: maybe a number in progress."""
    tokens = [(m.start(), m.end(), m.group().lower()) for m in _TOKEN.finditer(text)]
    last_alnum = len(text)
    while last_alnum and not text[last_alnum - 1].isalnum():
        last_alnum -= 1
    i = 0
    while i < len(tokens):
        run = _spoken_run_at(text, tokens, i, max_written=None)
        if run is None:
            i += 1
            continue
        end_index, digits, _, (start, end) = run
        before = text[start - 1] if start else " "
        if end >= last_alnum and len(digits) >= MIN_TRAILING_DIGITS and before not in _CURRENCY:
            yield start, end, NUMBER
        i = end_index


def _spoken_run_at(text: str, tokens: list[tuple[int, int, str]], i: int, max_written: int | None = 4):
    """The digit run starting at token ``i``: (next token index, digits, has spoken words, span)."""
    digits = ""
    spoken = False
    start = end = None
    j = i
    last_digit_index = i - 1
    while j < len(tokens):
        s, e, word = tokens[j]
        if j > i and _RUN_GAP.fullmatch(text, tokens[j - 1][1], s) is None:
            break
        if word.isdigit():
            if max_written is not None and len(word) > max_written:
                break  # a zip code or a long written number is not part of a read-out run
            value, consumed = word, 1
        elif word in _DIGIT_WORDS:
            if word == "oh" and not digits:
                j += 1  # "oh, five five five…" — no US number starts with a spoken "oh"
                continue
            value, consumed, spoken = _DIGIT_WORDS[word], 1, True
        elif word in _REPEATERS and j + 1 < len(tokens) and _RUN_GAP.fullmatch(text, e, tokens[j + 1][0]):
            nxt = tokens[j + 1][2]
            digit = _DIGIT_WORDS.get(nxt) or (nxt if nxt.isdigit() and len(nxt) == 1 else None)
            if digit is None:
                break
            value, consumed, spoken = digit * _REPEATERS[word], 2, True
        elif word in _FILLERS and digits:
            j += 1
            continue
        else:
            break
        if start is None:
            start = s
        digits += value
        j += consumed
        end = tokens[j - 1][1]
        last_digit_index = j - 1
    if start is None:
        return None
    return max(last_digit_index + 1, i + 1), digits, spoken, (start, end)


def _tag_for_digit_count(digits: str) -> str:
    n = len(digits)
    if n == 9:
        return SSN
    if n in (7, 10) or (n == 11 and digits[0] == "1"):
        return PHONE
    if 13 <= n <= 19:
        return CARD
    return NUMBER


#: The longest PII number (a 19-digit card).
_MAX_PII_DIGITS = 19
#: Digit groups joined by the separators phone, card and SSN numbers are written with.
_WRITTEN_RUN = re.compile(r"\+?\(?\d+(?:(?:[ ().\-]{1,3})\d+)*")
_CURRENCY = "$£€¥"


def _find_written_numbers(text: str) -> Iterable[tuple[int, int, str]]:
    for m in _WRITTEN_RUN.finditer(text):
        start, end = m.span()
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        after2 = text[end + 1] if end + 1 < len(text) else " "
        after_digit = before in ",." and start >= 2 and text[start - 2].isdigit()  # "1,299", "3.5"
        if before in _CURRENCY or before.isalnum() or before in "/:" or after_digit:
            continue  # a price, part of a word/code, a date or time, or a number's second group
        if after.isalnum() or after in "/:%" or (after in ",." and after2.isdigit()):
            continue
        groups = [(g.start(), g.end()) for g in re.finditer(r"\d+", text[start:end])]
        groups = [(start + s, start + e) for s, e in groups]
        yield from _classify_groups(text, groups, plus=text[start] == "+")


def _classify_groups(text: str, groups: list[tuple[int, int]], *, plus: bool) -> Iterable[tuple[int, int, str]]:
    """Find PII-shaped windows of consecutive digit groups ("room 12 555-123-4567" → the phone)."""
    i = 0
    while i < len(groups):
        # No PII item has more than 19 digits, so no window needs more than 19 groups.
        for j in range(min(len(groups), i + _MAX_PII_DIGITS), i, -1):
            window = groups[i:j]
            seps = [text[window[k][1]:window[k + 1][0]] for k in range(len(window) - 1)]
            tag = _written_tag([text[s:e] for s, e in window], seps, plus=plus and i == 0)
            if tag:
                start = window[0][0]
                if start > 0 and text[start - 1] == "(":
                    start -= 1
                if i == 0 and plus:
                    start = text.rfind("+", 0, start + 1)
                yield start, window[-1][1], tag
                i = j
                break
        else:
            i += 1


def _written_tag(groups: list[str], seps: list[str], *, plus: bool) -> str | None:
    digits = "".join(groups)
    lens = [len(g) for g in groups]
    if len(groups) >= MIN_SPOKEN_DIGITS and all(n == 1 for n in lens):
        return _tag_for_digit_count(digits)  # digits read one by one: "4 1 1 1 1 …"
    if 13 <= len(digits) <= 19 and all(s.strip() in ("", "-") for s in seps):
        # One unbroken 13–19 digit number is a card whatever its checksum (ASR errors break
        # Luhn); grouped digits must also look like a card, so "2019 2020 2021 2022" stays.
        if len(groups) == 1 or _luhn_ok(digits) or _card_prefix(digits):
            return CARD
    national = lens
    if len(groups) > 1 and groups[0] == "1":  # "+1 555 123 4567", "1-800-555-1234"
        national = lens[1:]
        seps = seps[1:]
    if national in ([3, 3, 4], [10]) or (lens == [11] and digits[0] == "1"):
        return PHONE
    if national == [3, 4] and seps[-1].strip() in ("-", ".") and len(seps[-1].strip()) == 1:
        return PHONE
    if lens == [9] or (lens == [3, 2, 4] and all(s in ("-", " ") for s in seps)):
        return SSN
    return None


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_prefix(digits: str) -> bool:
    """Issuer prefixes of the major networks (Visa, Mastercard, Amex, Discover, JCB, Diners)."""
    two = int(digits[:2])
    four = int(digits[:4])
    return (digits[0] == "4" or 51 <= two <= 55 or 2221 <= four <= 2720 or two in (34, 37, 35, 36, 38, 30)
            or digits.startswith(("6011", "65")) or 644 <= int(digits[:3]) <= 649)


def _dedupe(evidence: list[Evidence]) -> tuple[Evidence, ...]:
    """Two evidence spans inside one phone number map to the same tag: report it once."""
    seen: set[tuple[str | None, int, int]] = set()
    out = []
    for ev in evidence:
        if (ev.speaker, ev.start, ev.end) not in seen:
            seen.add((ev.speaker, ev.start, ev.end))
            out.append(ev)
    return tuple(out)


__all__ = [
    "CARD", "EMAIL", "NUMBER", "PHONE", "SSN", "TAGS", "Redaction", "Replacement", "contains_pii",
    "map_scores", "map_tagged_scores", "redact", "redact_scores", "redact_words",
]
