"""A compact ASR-noise model: how the serving ASR garbles clean text, learned from rendered pairs.

``callintent data render-asr`` rows carry the labeled text (``reference_transcript``) and what the
ASR heard (``transcript``). :meth:`AsrNoiseModel.learn` aligns the two word by word and keeps

* per word (normalised: lowercase, punctuation stripped), for words seen at least ``min_count``
  times: how often it was deleted and what it was heard as (the ASR's spelling, e.g. ``quote`` →
  ``vote``, ``okay`` → ``OK``, ``anyway`` → ``any way``); rarer words back off to the global
  deletion rate and are never substituted (nothing says what they would become);
* merges of two words into one (``a lot`` → ``alot``, ``every day`` → ``everyday``), per word pair;
* the insertion rate per word and which words get inserted.

:meth:`AsrNoiseModel.apply` draws a noisy version of a text from these statistics, deterministic
given the ``random.Random`` it is handed, so training can turn clean rows into ASR-like ones at no
render cost (``TrainConfig.asr_noise``). Numbers stay plausible: an outcome that spells digits is
kept only where its source spells the same digits, and inserted words never hold digits, so the
noise never invents a price or a phone number. Speaker tags (``caller:``, ``agent:``) are never
touched. The model is a small JSON file (:meth:`save` / :meth:`load`).
"""

from __future__ import annotations

import difflib
import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callintent.errors import UserError
from data.jsonl import read_objects
from speech.speakers import SPEAKERS, tag_of

#: Format version written into the JSON file.
FORMAT_VERSION = 1

#: An outcome's key for "the word was dropped".
DELETED = ""

_SPEAKER_TAGS = frozenset(tag_of(s) for s in SPEAKERS)
_NON_WORD = re.compile(r"[^\w']+")
_DIGITS = re.compile(r"\d")
# Leading / trailing punctuation of a surface token (moved onto whatever replaces the word).
_EDGES = re.compile(r"^(\W*)(.*?)(\W*)$", re.S)


def normalise_word(token: str) -> str:
    """The matching form of a word: lowercase, punctuation stripped (apostrophes inside kept)."""
    return _NON_WORD.sub("", token.lower()).strip("'_")


def _digits(text: str) -> str:
    return "".join(_DIGITS.findall(text))


def _plausible(heard: str, source: str) -> bool:
    """Whether an outcome invents no digits: it spells none, or the same ones as its source."""
    digits = _digits(heard)
    return not digits or digits == _digits(source)


def _core(surface: str) -> str:
    """A surface token without its leading/trailing punctuation (``"Vote."`` → ``"Vote"``)."""
    return _EDGES.match(surface).group(2)  # type: ignore[union-attr]


@dataclass(frozen=True)
class Outcomes:
    """What the ASR made of one source unit (a word, or a word pair for merges).

    Attributes:
        seen: Occurrences of the unit in the reference texts.
        heard: Non-identity outcome → count: the ASR's spelling (lowercased when the case only
            came from the sentence position), or :data:`DELETED`.
    """

    seen: int
    heard: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class NoiseSummary:
    """What a model was learned from.

    Attributes:
        pairs: (reference, ASR) pairs aligned.
        words: Reference words aligned.
        wer: Word error rate of the pairs ((substituted + deleted + inserted) / words; a merge
            counts as a substitution plus a deletion, as a plain alignment would count it).
        substitution_rate: Substituted reference words per reference word.
        deletion_rate: Deleted reference words per reference word.
        insertion_rate: Inserted words per reference word.
        merge_rate: Word pairs heard as one word, per reference word.
    """

    pairs: int = 0
    words: int = 0
    wer: float = 0.0
    substitution_rate: float = 0.0
    deletion_rate: float = 0.0
    insertion_rate: float = 0.0
    merge_rate: float = 0.0

    def line(self) -> str:
        """One line for a CLI."""
        return (f"{self.pairs} pairs, {self.words} reference words aligned: WER {self.wer:.3f} "
                f"(substitutions {self.substitution_rate:.3f}, deletions {self.deletion_rate:.3f}, "
                f"insertions {self.insertion_rate:.3f}, merges {self.merge_rate:.3f} per word)")


@dataclass(frozen=True)
class AsrNoiseModel:
    """Word substitution, deletion, insertion and merge statistics of an ASR (see the module docstring).

    Attributes:
        words: Normalised word → its outcomes (only words seen at least ``min_count`` times).
        merges: ``"w1 w2"`` (normalised) → outcomes of the pair heard as one word.
        deletion_rate: Global share of reference words deleted (the back-off for rare words).
        insertion_rate: Inserted words per reference word.
        inserted: Inserted word (the ASR's spelling) → count.
        min_count: Occurrences a word needs for its own statistics.
        summary: What the model was learned from.
    """

    words: dict[str, Outcomes]
    merges: dict[str, Outcomes]
    deletion_rate: float
    insertion_rate: float
    inserted: dict[str, int]
    min_count: int = 3
    summary: NoiseSummary = field(default_factory=NoiseSummary)

    def __post_init__(self) -> None:
        for name in ("deletion_rate", "insertion_rate"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
        if not isinstance(self.min_count, int) or self.min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1, got {self.min_count!r}")

    # ---------------------------------------------------------------------------------- learning

    @classmethod
    def learn(cls, pairs: Iterable[tuple[str, str]], *, min_count: int = 3, max_words: int = 3000,
              max_outcomes: int = 8, max_inserted: int = 200) -> AsrNoiseModel:
        """Learn the statistics from (reference text, ASR text) pairs.

        Args:
            pairs: ``(reference, heard)`` texts.
            min_count: Occurrences a word (or a merged pair) needs to get its own statistics.
            max_words: Keep at most this many words, the most frequent (caps the file size).
            max_outcomes: Keep at most this many outcomes per word, the most frequent.
            max_inserted: Keep at most this many inserted words, the most frequent.

        Returns:
            The model, with a :class:`NoiseSummary` of the pairs.
        """
        if not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
        seen: Counter[str] = Counter()
        heard: dict[str, Counter[str]] = {}
        pair_seen: Counter[str] = Counter()
        merged: dict[str, Counter[str]] = {}
        inserted: Counter[str] = Counter()
        n_pairs = n_sub = n_del = n_ins = n_merge = 0
        for reference, asr_text in pairs:
            ref = _tokens(reference)
            hyp = _tokens(asr_text)
            n_pairs += 1
            pair_seen.update(f"{a[0]} {b[0]}" for a, b in zip(ref, ref[1:]))
            for op, src, out in _align(ref, hyp):
                if op == "merge":
                    key = f"{src[0][0]} {src[1][0]}"
                    n_merge += 1
                    if _plausible(out, key):
                        merged.setdefault(key, Counter())[out] += 1
                    continue
                if op == "insert":
                    n_ins += 1
                    if not _digits(out):
                        inserted[out] += 1
                    continue
                word, surface = src[0]
                seen[word] += 1
                if op == "equal":
                    continue
                if op == "delete":
                    n_del += 1
                    heard.setdefault(word, Counter())[DELETED] += 1
                    continue
                n_sub += 1
                # A digit-spelling outcome is kept only where the source spells the same digits:
                # "twenty" heard once as "$25" must not turn "twenty minutes" into "$25 minutes".
                if _plausible(out, surface):
                    heard.setdefault(word, Counter())[_case_free(out, surface)] += 1
        n_words = sum(seen.values()) + 2 * n_merge
        kept = [w for w, n in seen.most_common() if n >= min_count][:max_words]
        words = {w: Outcomes(seen[w], dict(heard.get(w, Counter()).most_common(max_outcomes))) for w in kept}
        merges = {k: Outcomes(pair_seen[k], dict(c.most_common(max_outcomes)))
                  for k, c in sorted(merged.items()) if sum(c.values()) >= min_count}

        def rate(count: int) -> float:
            return count / n_words if n_words else 0.0

        summary = NoiseSummary(pairs=n_pairs, words=n_words, wer=rate(n_sub + n_del + n_ins + 2 * n_merge),
                               substitution_rate=rate(n_sub), deletion_rate=rate(n_del),
                               insertion_rate=rate(n_ins), merge_rate=rate(n_merge))
        return cls(words=words, merges=merges, deletion_rate=rate(n_del), insertion_rate=min(1.0, rate(n_ins)),
                   inserted=dict(inserted.most_common(max_inserted)), min_count=min_count, summary=summary)

    # ---------------------------------------------------------------------------------- applying

    def apply(self, text: str, rng: random.Random, strength: float = 1.0) -> str:
        """A noisy version of ``text``, as the ASR might have heard it.

        Args:
            text: Clean text (speaker tags ``caller:`` / ``agent:`` are kept as they are).
            rng: Source of the draws; the same generator state gives the same output.
            strength: Scales every error probability (0 = ``text`` unchanged, 1 = as learned).

        Returns:
            The noisy text, words joined by single spaces; ``text`` itself (the same string)
            when no word changed.
        """
        if not strength > 0:
            return text
        tokens = text.split()
        out: list[str] = []
        changed = False
        i = 0
        while i < len(tokens):
            token = tokens[i]
            word = normalise_word(token)
            if not word or token.lower() in _SPEAKER_TAGS:
                out.append(token)
                i += 1
                continue
            nxt = normalise_word(tokens[i + 1]) if i + 1 < len(tokens) else ""
            merge = self.merges.get(f"{word} {nxt}") if nxt and tokens[i + 1].lower() not in _SPEAKER_TAGS else None
            drawn = self._draw(merge, None, rng, strength) if merge else None
            if drawn is not None:
                out.append(_dress(drawn, token, tokens[i + 1]))
                changed = True
                i += 2
            else:
                drawn = self._draw(self.words.get(word), self.deletion_rate, rng, strength)
                if drawn is None:
                    out.append(token)
                else:
                    changed = True
                    if drawn != DELETED:
                        out.append(_dress(drawn, token, token))
                i += 1
            if self.inserted and rng.random() < min(1.0, self.insertion_rate * strength):
                words, counts = zip(*self.inserted.items())
                out.append(rng.choices(words, weights=counts)[0])
                changed = True
        return " ".join(out) if changed else text

    def _draw(self, outcomes: Outcomes | None, backoff: float | None, rng: random.Random,
              strength: float) -> str | None:
        """One outcome for a unit: None = heard right, :data:`DELETED`, or the ASR's spelling."""
        if outcomes is None:
            if backoff is None:
                return None
            return DELETED if rng.random() < min(1.0, backoff * strength) else None
        # Smooth toward the global deletion rate with min_count pseudo-occurrences, so a word seen
        # 3 times and never deleted is not taken as never deleted.
        prior = float(self.min_count)
        denominator = outcomes.seen + prior
        probs = {k: c / denominator for k, c in outcomes.heard.items() if k != DELETED}
        if backoff is not None:
            probs[DELETED] = (outcomes.heard.get(DELETED, 0) + prior * backoff) / denominator
        probs = {k: p * strength for k, p in probs.items()}
        total = sum(probs.values())
        if total > 1.0:
            probs = {k: p / total for k, p in probs.items()}
        r = rng.random()
        for outcome, p in probs.items():
            if r < p:
                return outcome
            r -= p
        return None

    # ---------------------------------------------------------------------------------- files

    def to_json(self) -> dict[str, Any]:
        """The model as a JSON-ready dict (the file format)."""
        return {
            "format": "callintent-asr-noise", "version": FORMAT_VERSION, "min_count": self.min_count,
            "deletion_rate": self.deletion_rate, "insertion_rate": self.insertion_rate,
            "summary": vars(self.summary),
            "words": {w: [o.seen, o.heard] for w, o in self.words.items()},
            "merges": {k: [o.seen, o.heard] for k, o in self.merges.items()},
            "inserted": self.inserted,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AsrNoiseModel:
        """Read :meth:`to_json`'s dict.

        Raises:
            ValueError: not an ASR-noise model, or a version this code does not read.
        """
        if not isinstance(data, Mapping) or data.get("format") != "callintent-asr-noise":
            raise ValueError("not an ASR-noise model (expected format 'callintent-asr-noise')")
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"ASR-noise model version {data.get('version')!r}; this code reads {FORMAT_VERSION}")
        try:
            return cls(
                words={w: Outcomes(int(n), {str(k): int(c) for k, c in h.items()}) for w, (n, h) in data["words"].items()},
                merges={k: Outcomes(int(n), {str(o): int(c) for o, c in h.items()})
                        for k, (n, h) in data["merges"].items()},
                deletion_rate=float(data["deletion_rate"]), insertion_rate=float(data["insertion_rate"]),
                inserted={str(k): int(c) for k, c in data["inserted"].items()}, min_count=int(data["min_count"]),
                summary=NoiseSummary(**data.get("summary", {})))
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"malformed ASR-noise model: {e}") from None

    def save(self, path: str | Path) -> Path:
        """Write the model as compact JSON; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n",
                        encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> AsrNoiseModel:
        """Read a model written by :meth:`save` (``path`` as :func:`resolve_model_path` finds it).

        Raises:
            UserError: the file is missing or is not an ASR-noise model (named).
        """
        found = resolve_model_path(path)
        if found is None:
            raise UserError(f"{path}: ASR-noise model not found (make one with 'callintent data learn-asr-noise')")
        path = found
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, ValueError) as e:
            raise UserError(f"{path}: {e}") from None


def resolve_model_path(path: str | Path) -> Path | None:
    """Where an ASR-noise model file is: ``path`` itself, or (relative) under the package root,
    so ``data/asr_noise.json`` finds the file shipped in the installed package too. None = nowhere."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_absolute():
        packaged = Path(__file__).resolve().parents[1] / path
        if packaged.is_file():
            return packaged
    return None


def read_pairs(paths: Iterable[str | Path]) -> list[tuple[str, str]]:
    """(reference, ASR) text pairs from ``render-asr`` / ``data transcribe`` JSONL files.

    Rows without a non-empty ``reference_transcript`` and ``transcript`` are skipped.

    Raises:
        UserError: a missing file or a line that is not JSON (named as ``file:line``).
    """
    pairs = []
    for _, _, row in read_objects(paths, missing="rendered file not found (make it with 'callintent data render-asr')"):
        ref, heard = row.get("reference_transcript"), row.get("transcript")
        if isinstance(ref, str) and isinstance(heard, str) and ref.strip() and heard.strip():
            pairs.append((ref, heard))
    return pairs


# --------------------------------------------------------------------------------------------------
# Alignment

_Token = tuple[str, str]  # (normalised, surface)


def _tokens(text: str) -> list[_Token]:
    return [(w, t) for t in text.split() if (w := normalise_word(t)) and t.lower() not in _SPEAKER_TAGS]


def _align(ref: list[_Token], hyp: list[_Token]) -> list[tuple[str, list[_Token], str]]:
    """Word alignment as ``(op, source tokens, heard surface)``; op is equal, substitute, delete,
    insert (no source) or merge (two source tokens heard as one word).

    difflib anchors the long runs of matching words; the short stretches between them are aligned
    by edit distance with merges (and splits, kept as a substitution by a two-word spelling).
    """
    out: list[tuple[str, list[_Token], str]] = []
    matcher = difflib.SequenceMatcher(None, [w for w, _ in ref], [w for w, _ in hyp], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out.extend(("equal", [r], h[1]) for r, h in zip(ref[i1:i2], hyp[j1:j2]))
        elif tag == "delete":
            out.extend(("delete", [r], "") for r in ref[i1:i2])
        elif tag == "insert":
            out.extend(("insert", [], _core(h[1])) for h in hyp[j1:j2])
        else:
            out.extend(_align_stretch(ref[i1:i2], hyp[j1:j2]))
    return out


def _align_stretch(ref: list[_Token], hyp: list[_Token]) -> list[tuple[str, list[_Token], str]]:
    """Edit-distance alignment of a short mismatched stretch (deletion and insertion cost 1; a
    substitution 1 to 1.5, less for words that look alike; a merge or split whose letters agree 0.9)."""
    n, m = len(ref), len(hyp)
    inf = float("inf")
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    back: list[list[str]] = [[""] * (m + 1) for _ in range(n + 1)]
    cost[0][0] = 0.0
    for i in range(n + 1):
        for j in range(m + 1):
            here = cost[i][j]
            if here == inf:
                continue
            steps = []
            if i < n and j < m:
                same = ref[i][0] == hyp[j][0]
                steps.append((i + 1, j + 1, "equal" if same else "substitute",
                              0.0 if same else _substitution_cost(ref[i][0], hyp[j][0])))
            if i < n:
                steps.append((i + 1, j, "delete", 1.0))
            if j < m:
                steps.append((i, j + 1, "insert", 1.0))
            if i + 1 < n and j < m and ref[i][0] + ref[i + 1][0] == hyp[j][0]:
                steps.append((i + 2, j + 1, "merge", 0.9))
            if i < n and j + 1 < m and hyp[j][0] + hyp[j + 1][0] == ref[i][0]:
                steps.append((i + 1, j + 2, "split", 0.9))
            for ni, nj, op, c in steps:
                if here + c < cost[ni][nj]:
                    cost[ni][nj], back[ni][nj] = here + c, op
    ops: list[tuple[str, list[_Token], str]] = []
    i, j = n, m
    while i or j:
        op = back[i][j]
        if op in ("equal", "substitute"):
            ops.append((op, [ref[i - 1]], _core(hyp[j - 1][1])))
            i, j = i - 1, j - 1
        elif op == "delete":
            ops.append((op, [ref[i - 1]], ""))
            i -= 1
        elif op == "insert":
            ops.append((op, [], _core(hyp[j - 1][1])))
            j -= 1
        elif op == "merge":
            ops.append((op, [ref[i - 2], ref[i - 1]], _core(hyp[j - 1][1])))
            i, j = i - 2, j - 1
        else:  # split: one word heard as two, a substitution by a two-word spelling
            ops.append(("substitute", [ref[i - 1]], f"{_core(hyp[j - 2][1])} {_core(hyp[j - 1][1])}"))
            i, j = i - 1, j - 2
    return ops[::-1]


def _substitution_cost(ref_word: str, heard: str) -> float:
    """1 plus up to 0.5 for unlike spellings: among alignments with as many errors, the one that
    pairs look-alike words wins ("quote uh" for "quote" pairs quote with vote, not with uh)."""
    return 1.5 - 0.5 * difflib.SequenceMatcher(None, ref_word, heard, autojunk=False).ratio()


def _case_free(heard: str, source_surface: str) -> str:
    """The ASR's spelling, lowercased at the start when the capital only came from the position
    (both words capitalised at a sentence start); a proper noun heard for a lowercase word keeps it."""
    src = _core(source_surface)
    if heard[:1].isupper() and src[:1].isupper() and heard[1:2].islower():
        return heard[:1].lower() + heard[1:]
    return heard


def _dress(heard: str, first: str, last: str) -> str:
    """``heard`` with the leading punctuation of ``first`` and the trailing punctuation of ``last``,
    capitalised when ``first`` was (a sentence start stays one)."""
    lead = _EDGES.match(first).group(1)  # type: ignore[union-attr]
    trail = _EDGES.match(last).group(3)  # type: ignore[union-attr]
    if _core(first)[:1].isupper() and heard[:1].islower():
        heard = heard[:1].upper() + heard[1:]
    return f"{lead}{heard}{trail}"
