"""What QA should label next: the logged calls a label would teach the model most, a batch at a time.

Active learning over the call log's exports (``callintent calls export``):

1. **Rescore** every call that no person has labeled with the given model (its logged
   probabilities came from whichever model served the call, which may not be this one).
2. **Uncertainty** = 1 − *margin*, the margin being the gap between the two highest calibrated
   class probabilities. The margin rather than entropy because the label QA gives answers
   exactly "which of these two classes?": a call at 0.45 / 0.45 / 0.05 / 0.05 is the one to ask
   about, while entropy ranks a call spread thinly over all four classes above it although a
   label moves the boundary between the two competing classes no more. It is also the quantity
   the decision policy's abstention rule looks at, so the calls the service would abstain on are
   the ones labeled first.
3. **Diversity**, greedily: take the call with the highest ``uncertainty − diversity_weight ×
   (its highest similarity to a call already taken)``; every call whose similarity to the one
   just taken exceeds ``max_similarity`` (and every exact duplicate, compared as
   ``data.dataset.normalise_transcript`` text) leaves the pool for this batch. Similarity is the
   cosine of character 3–5-gram TF-IDF vectors fitted on the pool (robust to ASR spelling and
   filler words; the shared greeting boilerplate gets a low IDF). So one batch never holds two
   near-identical calls, and among equally uncertain calls the ones unlike those already taken
   come first. Calls QA has labeled count as taken before the first pick: a copy of a labeled
   call is not offered again.

Calls a person has labeled (``label_source: "qa"`` in the export) and the ``call_id``s of
``--exclude`` files (corrections from ``review-import``, or earlier batches still with QA) are
skipped. The chosen calls are written in the review-file format of ``--export-errors``
(:func:`evaluation.review.review_row`), with an empty ``label`` (no person has labeled them), so
every ``corrected_label`` QA fills in — the model's own class included — becomes a correction
that ``callintent calls export --corrections`` turns into a QA label.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from callintent.errors import UserError
from data.call_log import ExportedCall
from data.dataset import normalise_transcript, read_records

if TYPE_CHECKING:
    import numpy as np

    from models.scores import IntentScores

logger = logging.getLogger(__name__)


class Scorer(Protocol):
    """What selection needs of a model: :class:`models.predictor.IntentPredictor` is one."""

    model_id: str

    def predict(self, texts: Sequence[str], *, evidence: bool = True) -> list[IntentScores]: ...


@dataclass(frozen=True)
class SelectionConfig:
    """How a labeling batch is chosen.

    Attributes:
        n: Calls in the batch (at most).
        max_similarity: A call whose TF-IDF cosine similarity to a chosen call is above this is
            never chosen with it (1.0 = only exact duplicates are kept apart). 0.7 keeps apart
            rewordings and filler-word variants of one request (≈ 0.75–0.95) while two different
            requests after the same greeting stay below it (≈ 0.5).
        diversity_weight: How much similarity to the calls already chosen lowers a call's rank
            (0 = pure uncertainty order among the calls that are not near-duplicates).
        score_batch: Calls per scoring step (one progress-bar tick each).
    """

    n: int = 50
    max_similarity: float = 0.7
    diversity_weight: float = 0.3
    score_batch: int = 256

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n must be a positive integer, got {self.n!r}")
        if not 0.0 <= self.max_similarity <= 1.0:
            raise ValueError(f"max_similarity must be in [0, 1], got {self.max_similarity!r}")
        if not self.diversity_weight >= 0.0:
            raise ValueError(f"diversity_weight must be >= 0, got {self.diversity_weight!r}")
        if isinstance(self.score_batch, bool) or not isinstance(self.score_batch, int) or self.score_batch < 1:
            raise ValueError(f"score_batch must be a positive integer, got {self.score_batch!r}")


@dataclass(frozen=True)
class Candidate:
    """An unlabeled logged call, rescored.

    Attributes:
        call: The export row.
        scores: The model's verdict now.
        margin: Top-1 minus top-2 calibrated class probability.
    """

    call: ExportedCall
    scores: IntentScores
    margin: float

    @property
    def uncertainty(self) -> float:
        """1 − margin: 1 for a dead heat between two classes, 0 for a certain call."""
        return 1.0 - self.margin


@dataclass(frozen=True)
class Selection:
    """A labeling batch and how it was drawn.

    Attributes:
        chosen: The calls for QA, in the order chosen (most informative first).
        model_id: The model that scored them.
        calls: Calls in the exports.
        qa_labeled: Calls skipped because a person labeled them (``label_source: "qa"``).
        excluded: Calls skipped because an ``--exclude`` file names them.
        candidates: Calls scored (``calls − qa_labeled − excluded``).
        near_duplicates: Candidates passed over as (near-)duplicates of a chosen or QA-labeled call.
    """

    chosen: tuple[Candidate, ...]
    model_id: str
    calls: int
    qa_labeled: int
    excluded: int
    candidates: int
    near_duplicates: int


def margin(probabilities: Sequence[float]) -> float:
    """Gap between the two highest probabilities (1.0 with a single class)."""
    top = sorted(probabilities, reverse=True)
    return float(top[0] - top[1]) if len(top) > 1 else 1.0


def read_excluded_ids(paths: Iterable[str | Path]) -> set[str]:
    """``call_id``s of files whose calls must not be offered again.

    Args:
        paths: Corrections ``.jsonl`` (``review-import``) or review files (``.csv``/``.jsonl``
            from ``--export-errors`` or an earlier labeling batch); only ``call_id`` is read.

    Returns:
        The ids.

    Raises:
        UserError: a missing or unreadable file, or a row without ``call_id`` (named by ``file:line``).
    """
    ids: set[str] = set()
    for path in paths:
        for record in read_records(path):
            call_id = record.data.get("call_id") if isinstance(record.data, dict) else None
            if record.parse_error or not isinstance(call_id, str | int) or not str(call_id).strip():
                raise UserError(f"{record.location}: --exclude rows need a call_id"
                                + (f" ({record.parse_error})" if record.parse_error else ""))
            ids.add(str(call_id).strip())
    return ids


def score_candidates(scorer: Scorer, calls: Sequence[ExportedCall], *, batch: int = 256,
                     progress: bool | None = None) -> list[Candidate]:
    """Rescore calls with ``scorer``, a batch at a time, with a progress bar.

    Args:
        scorer: The model.
        calls: The calls.
        batch: Calls per ``predict`` call.
        progress: Show the bar (None = only on a terminal, as tqdm decides).

    Returns:
        One candidate per call, in input order.
    """
    from tqdm import tqdm

    out: list[Candidate] = []
    disable = None if progress is None else not progress
    with tqdm(total=len(calls), desc="scoring", unit="call", disable=disable) as bar:
        for start in range(0, len(calls), batch):
            chunk = calls[start:start + batch]
            for call, scores in zip(chunk, scorer.predict([c.transcript for c in chunk], evidence=False)):
                out.append(Candidate(call=call, scores=scores, margin=margin(list(scores.probabilities.values()))))
            bar.update(len(chunk))
    return out


def text_vectors(texts: Sequence[str]) -> Any:
    """L2-normalised character 3–5-gram TF-IDF rows (a sparse matrix; row dot products are cosines)."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
    except ImportError as e:
        raise RuntimeError("choosing calls for labeling requires scikit-learn "
                           "(pip install 'callintent[eval]')") from e

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True,
                                 preprocessor=normalise_transcript)
    try:
        return vectorizer.fit_transform(texts)
    except ValueError:  # not one n-gram in any text (all one or two characters): nothing is similar
        import scipy.sparse

        return scipy.sparse.csr_matrix((len(texts), 1))


def choose_diverse(uncertainty: Sequence[float] | np.ndarray, texts: Sequence[str], *, n: int,
                   max_similarity: float, diversity_weight: float,
                   known: Sequence[str] = ()) -> tuple[list[int], int]:
    """Greedy uncertainty-plus-diversity choice of ``n`` texts, near-duplicates never together.

    Args:
        uncertainty: ``[m]`` uncertainty per text (higher = more informative).
        texts: The ``m`` texts.
        n: Most texts to choose.
        max_similarity: Cosine above which a text leaves the pool once a similar one is chosen.
        diversity_weight: Penalty per unit of similarity to the closest chosen text.
        known: Texts QA has labeled already: they count as chosen before the first pick (their
            near-duplicates are passed over; a label on a copy of a labeled call teaches nothing).

    Returns:
        ``(indices in the order chosen, texts passed over as near-duplicates of a chosen or known one)``.
        Ties go to the earlier text.
    """
    import numpy as np

    m = len(texts)
    if m == 0:
        return [], 0
    vectors = text_vectors([*texts, *known])
    pool, labeled = vectors[:m], vectors[m:]
    keys = [normalise_transcript(t) for t in texts]
    by_key: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        by_key.setdefault(key, []).append(i)
    uncertainty = np.asarray(uncertainty, dtype=np.float64)
    closest = np.zeros(m)  # highest similarity to any chosen (or known) text so far
    available = np.ones(m, dtype=bool)
    if len(known):
        # In slices of the pool: a whole pool x labeled product could be too large to hold at once.
        for start in range(0, m, 2048):
            block = pool[start:start + 2048] @ labeled.T
            closest[start:start + 2048] = block.max(axis=1).toarray().ravel()
        known_keys = {normalise_transcript(t) for t in known}
        available &= np.round(closest, 6) <= max_similarity
        available &= np.asarray([key not in known_keys for key in keys])
    chosen: list[int] = []
    while len(chosen) < n and available.any():
        value = np.where(available, uncertainty - diversity_weight * closest, -np.inf)
        i = int(np.argmax(value))
        chosen.append(i)
        available[i] = False
        similarity = (pool @ pool[i].T).toarray().ravel()
        closest = np.maximum(closest, similarity)
        # Rounding keeps a text exactly at the threshold in the pool whatever floating point made of it.
        available &= np.round(similarity, 6) <= max_similarity
        available[by_key[keys[i]]] = False  # exact duplicates even when TF-IDF sees no n-gram in them
    passed_over = m - len(chosen) - int(available.sum())
    return chosen, passed_over


def select_for_labeling(calls: Sequence[ExportedCall], scorer: Scorer, config: SelectionConfig = SelectionConfig(),
                        *, exclude: Iterable[str] = (), progress: bool | None = None) -> Selection:
    """Choose the batch of logged calls QA should label next.

    Args:
        calls: The export rows (:func:`data.call_log.read_call_log_export`).
        scorer: The model to rescore them with.
        config: Batch size and diversity settings.
        exclude: ``call_id``s never to offer (already corrected, or with QA now).
        progress: Scoring progress bar (None = on a terminal only).

    Returns:
        The batch and the counts behind it.

    Raises:
        UserError: no calls, or no call left to label (all labeled, excluded, or copies of labeled ones).
    """
    if not calls:
        raise UserError("the export holds no calls (export some with 'callintent calls export')")
    excluded_ids = set(exclude)
    qa_labeled = sum(c.qa_labeled for c in calls)
    pool = [c for c in calls if not c.qa_labeled and c.call_id not in excluded_ids]
    excluded = len(calls) - qa_labeled - len(pool)
    if not pool:
        raise UserError(f"nothing left to label: of {len(calls)} calls, {qa_labeled} have a QA label and "
                        f"{excluded} are excluded")
    candidates = score_candidates(scorer, pool, batch=config.score_batch, progress=progress)
    indices, passed_over = choose_diverse([c.uncertainty for c in candidates], [c.transcript for c in pool],
                                          n=config.n, max_similarity=config.max_similarity,
                                          diversity_weight=config.diversity_weight,
                                          known=[c.transcript for c in calls if c.qa_labeled])
    if not indices:
        raise UserError(f"nothing left to label: of {len(calls)} calls, {qa_labeled} have a QA label, "
                        f"{excluded} are excluded and the other {len(pool)} are near-duplicates of labeled calls")
    selection = Selection(chosen=tuple(candidates[i] for i in indices), model_id=scorer.model_id, calls=len(calls),
                          qa_labeled=qa_labeled, excluded=excluded, candidates=len(pool),
                          near_duplicates=passed_over)
    logger.info("chose %d of %d unlabeled calls for labeling (%d near-duplicates passed over)",
                len(selection.chosen), selection.candidates, passed_over)
    return selection


def labeling_rows(selection: Selection) -> list[dict[str, Any]]:
    """The batch as review rows (:func:`evaluation.review.review_row`), most informative first."""
    from evaluation.review import review_row

    rows = []
    for rank, candidate in enumerate(selection.chosen, start=1):
        call = candidate.call
        logged = f"; logged as {call.label} by {call.model}" if call.model else ""
        rows.append(review_row(call_id=call.call_id, transcript=call.transcript, label="", scores=candidate.scores,
                               signals=None, source=call.source, campaign=call.campaign, industry=call.industry,
                               model=selection.model_id, note=f"#{rank}: margin {candidate.margin:.3f}{logged}"))
    return rows


def write_labeling_file(selection: Selection, path: str | Path) -> Path:
    """Write the batch as a review file (``.csv`` or ``.jsonl``) for QA to fill ``corrected_label``.

    Returns:
        The path written.
    """
    from evaluation.review import write_review_file

    return write_review_file(labeling_rows(selection), path)
