"""The runtime intent predictor: an ONNX Runtime session plus a ``tokenizers`` tokenizer, nothing else.

Evaluation and serving score text only through :class:`IntentPredictor`, so both see exactly
what the exported graph computes (calibrated probabilities; the temperature is inside the graph).
No torch, no transformers: this module must load in the serving image.

Texts are tokenized without padding and padded per batch to the longest text in that batch
(not to ``max_length``): a 12-word opening then costs 12-word compute. Large inputs are sorted
by length and run in chunks of ``batch_size`` so one long text does not pad all the others.

The fp32 graph gives the same scores for a text whatever else is in its batch. The int8 graph
quantizes activations dynamically over the whole batch tensor, so its scores can move slightly
(up to ~1e-2 on the test fixture) with the batch's other texts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callintent.errors import UserError
from models.labels import BUYING, CLASS_NAMES, SIGNAL_NAMES
from models.artifact import INPUT_NAMES, META, ONNX_FP32, ONNX_INT8, OUTPUT_NAMES, TOKENIZER, ArtifactMeta
from models.scores import Evidence, IntentScores, SignalScore

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

#: variant name -> graph file in the artifact directory.
VARIANTS: dict[str, str] = {"int8": ONNX_INT8, "fp32": ONNX_FP32}

#: Most evidence spans reported per signal (the strongest ones).
MAX_EVIDENCE_SPANS = 3

#: Threshold used for a signal the artifact has no threshold for.
DEFAULT_SIGNAL_THRESHOLD = 0.5

#: Characters that stay inside a word when letters or digits are on both sides ("don't", "50-gallon").
_WORD_JOINERS = "'’-"


class ArtifactError(UserError):
    """The directory is not a usable model artifact (missing file, wrong schema, wrong graph)."""


def validate_artifact(directory: str | Path, *, variants: Sequence[str] = ("fp32", "int8")) -> ArtifactMeta:
    """Check that ``directory`` holds a complete artifact for this code's label schema.

    Cheap (no ONNX session): reads ``artifact.json`` and checks that the files exist.

    Args:
        directory: The artifact directory.
        variants: Graph variants that must be present (keys of :data:`VARIANTS`).

    Returns:
        The artifact's metadata.

    Raises:
        ArtifactError: not a directory, a file missing, classes/signals/thresholds that do not
            match ``models.labels``, a bad ``max_length`` or ``abstain_margin``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: model artifact directory not found")
    try:
        meta = ArtifactMeta.load(directory)
    except UserError as e:
        raise ArtifactError(str(e)) from None
    except (TypeError, KeyError) as e:
        raise ArtifactError(f"{directory / META}: invalid artifact metadata: {e}") from None
    required = [TOKENIZER, *(VARIANTS[v] for v in variants)]
    missing = [f for f in required if not (directory / f).is_file()]
    if missing:
        raise ArtifactError(f"{directory}: incomplete model artifact, missing {', '.join(missing)}")
    _check_names(directory, "classes", meta.classes, CLASS_NAMES)
    _check_names(directory, "signals", meta.signals, SIGNAL_NAMES)
    unknown = sorted(set(meta.signal_thresholds) - set(SIGNAL_NAMES))
    if unknown:
        raise ArtifactError(f"{directory / META}: signal_thresholds has unknown signals {unknown} "
                            f"(known: {list(SIGNAL_NAMES)})")
    margin = meta.abstain_margin
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float))
                               or not 0.0 <= margin <= 1.0):
        raise ArtifactError(f"{directory / META}: abstain_margin must be a probability margin in [0, 1] or null, "
                            f"got {margin!r}")
    if not isinstance(meta.max_length, int) or meta.max_length < 2:
        raise ArtifactError(f"{directory / META}: max_length must be an integer >= 2, "
                            f"got {meta.max_length!r}")
    return meta


def _check_names(directory: Path, field: str, got: Sequence[str], expected: Sequence[str]) -> None:
    if tuple(got) == tuple(expected):
        return
    extra = [n for n in got if n not in expected]
    absent = [n for n in expected if n not in got]
    detail = []
    if extra:
        detail.append(f"not in the schema: {extra}")
    if absent:
        detail.append(f"missing: {absent}")
    if not detail:
        detail.append("same names in a different order")
    raise ArtifactError(f"{directory / META}: artifact {field} {list(got)} do not match models.labels "
                        f"{list(expected)} ({'; '.join(detail)})")


@dataclass(frozen=True)
class _Batch:
    """Model outputs for a list of texts, in input order, token outputs trimmed to real tokens."""

    class_probs: np.ndarray        # [n, n_classes]
    signal_probs: np.ndarray       # [n, n_signals]
    token_probs: list[np.ndarray]  # n x [n_tokens_i, n_signals]
    encodings: list[Any]           # tokenizers.Encoding per text (offsets, special-token mask)


class IntentPredictor:
    """Calibrated intent scores for opening transcripts from an exported ONNX artifact.

    Build it with :meth:`load`. Safe to call from several threads at once: ONNX Runtime sessions
    allow concurrent ``run`` and the tokenizer is configured once at load and only read after.

    Attributes:
        meta: The artifact metadata.
        directory: The artifact directory.
        variant: ``"int8"`` or ``"fp32"``.
        model_id: ``"<name>/<version>"`` (``"<name>/unregistered"`` before registration).
        providers: The ONNX Runtime execution providers in use.
        batch_size: Most texts per ONNX run.
    """

    def __init__(self, *, session: Any, tokenizer: Any, meta: ArtifactMeta, directory: Path, variant: str,
                 batch_size: int, pad_id: int) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self._pad_id = pad_id
        self.meta = meta
        self.directory = directory
        self.variant = variant
        self.batch_size = batch_size
        self.model_id = f"{meta.name}/{meta.version or 'unregistered'}"
        self.providers: tuple[str, ...] = tuple(session.get_providers())
        # Thresholds in schema order; a missing entry means the default.
        self._thresholds = tuple(float(meta.signal_thresholds.get(s, DEFAULT_SIGNAL_THRESHOLD))
                                 for s in meta.signals)

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        variant: str = "int8",
        threads: int = 0,
        providers: Sequence[str] | None = None,
        batch_size: int = 32,
        spinning: bool = True,
    ) -> IntentPredictor:
        """Open an artifact directory for scoring.

        Args:
            directory: Artifact directory (a registry version dir or an export output).
            variant: ``"int8"`` (default; smaller and faster on CPU) or ``"fp32"``.
            threads: ONNX Runtime intra-op threads; 0 lets ONNX Runtime choose (all cores).
            providers: Execution providers in preference order, e.g.
                ``["CUDAExecutionProvider"]``; unavailable ones are skipped with a warning and
                ``CPUExecutionProvider`` is always the fallback. None = CPU only.
            batch_size: Most texts per ONNX run (bounds memory; larger inputs are chunked).
            spinning: ONNX Runtime's intra-op threads spin-wait for work between runs (its
                default: a little less latency). False when other work needs the cores: a
                server's live ASR loses the CPU those idle threads burn.

        Returns:
            A ready predictor.

        Raises:
            ArtifactError: unknown variant, incomplete artifact, schema mismatch, or a graph whose
                inputs/outputs do not follow the contract in ``models/artifact.py``.
        """
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as e:  # pragma: no cover - both are core dependencies
            raise RuntimeError("IntentPredictor requires onnxruntime and tokenizers") from e

        if variant not in VARIANTS:
            raise ArtifactError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        if threads < 0:
            raise ArtifactError(f"threads must be >= 0, got {threads}")
        if batch_size < 1:
            raise ArtifactError(f"batch_size must be >= 1, got {batch_size}")
        directory = Path(directory)
        try:
            meta = validate_artifact(directory, variants=(variant,))
        except ArtifactError as e:
            other = "fp32" if variant == "int8" else "int8"
            if VARIANTS[variant] in str(e) and (directory / VARIANTS[other]).is_file():
                raise ArtifactError(f"{e} (variant={other!r} is present)") from None
            raise

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1  # the graph is one chain; parallelism is inside ops
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # ORT's own warnings (e.g. unused initializers) are noise here
        chosen = _choose_providers(providers, ort.get_available_providers())
        graph = directory / VARIANTS[variant]
        try:
            session = ort.InferenceSession(str(graph), sess_options=options, providers=chosen)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise ArtifactError(f"{graph}: ONNX Runtime cannot load the graph: {e}") from None
        _check_graph(graph, session, meta)

        tokenizer_path = directory / TOKENIZER
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as e:  # tokenizers raises a bare Exception for bad files
            raise ArtifactError(f"{tokenizer_path}: cannot read tokenizer: {e}") from None
        pad_id = _pad_id(tokenizer)
        # Padding happens per batch in _encode (to the longest text there), so the tokenizer never pads.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=meta.max_length)
        logger.info("loaded %s/%s (%s, %s) from %s", meta.name, meta.version or "unregistered", variant,
                    ",".join(session.get_providers()), directory)
        return cls(session=session, tokenizer=tokenizer, meta=meta, directory=directory, variant=variant,
                   batch_size=batch_size, pad_id=pad_id)

    def predict(self, texts: Sequence[str], *, evidence: bool = True) -> list[IntentScores]:
        """Score opening transcripts.

        An empty or whitespace-only text is scored like any other (the model sees only its
        special tokens); rejecting empty input is the caller's policy, not the model's.

        Args:
            texts: The transcripts; longer than ``meta.max_length`` tokens are truncated.
            evidence: Add character spans of the words behind each present signal.

        Returns:
            One :class:`IntentScores` per text, in input order.
        """
        batch = self._run(texts)
        results = []
        for i, text in enumerate(_as_texts(texts)):
            probabilities = {name: float(p) for name, p in zip(self.meta.classes, batch.class_probs[i])}
            signals = []
            for j, name in enumerate(self.meta.signals):
                probability = float(batch.signal_probs[i, j])
                present = probability >= self._thresholds[j]
                spans: tuple[Evidence, ...] = ()
                if present and evidence:
                    spans = _evidence(text, batch.encodings[i], batch.token_probs[i][:, j],
                                      self._thresholds[j])
                signals.append(SignalScore(name=name, probability=probability, present=present,
                                           evidence=spans))
            label = self.meta.classes[int(batch.class_probs[i].argmax())]
            results.append(IntentScores(label=label, probabilities=probabilities,
                                        buying_intent=probabilities[BUYING], signals=tuple(signals),
                                        model=self.model_id))
        return results

    def predict_arrays(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Raw calibrated probabilities for evaluation.

        Args:
            texts: The transcripts.

        Returns:
            ``(class_probs [n, n_classes], signal_probs [n, n_signals])`` float32, input order,
            columns in ``meta.classes`` / ``meta.signals`` order.
        """
        batch = self._run(texts)
        return batch.class_probs, batch.signal_probs

    def _run(self, texts: Sequence[str]) -> _Batch:
        import numpy as np

        texts = _as_texts(texts)
        n_classes, n_signals = len(self.meta.classes), len(self.meta.signals)
        if not texts:
            return _Batch(np.zeros((0, n_classes), np.float32), np.zeros((0, n_signals), np.float32), [], [])
        encodings = self._tokenizer.encode_batch(texts)
        class_probs = np.empty((len(texts), n_classes), np.float32)
        signal_probs = np.empty((len(texts), n_signals), np.float32)
        token_probs: list[np.ndarray] = [np.empty(0)] * len(texts)
        # Longest first, so each chunk pads to a length close to its own texts'.
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            width = len(encodings[chunk[0]].ids)
            input_ids = np.full((len(chunk), width), self._pad_id, dtype=np.int64)
            attention_mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                ids = encodings[i].ids
                input_ids[row, :len(ids)] = ids
                attention_mask[row, :len(ids)] = 1
            feeds = {INPUT_NAMES[0]: input_ids, INPUT_NAMES[1]: attention_mask}
            outputs = self._session.run(list(OUTPUT_NAMES), feeds)
            for row, i in enumerate(chunk):
                class_probs[i] = outputs[0][row]
                signal_probs[i] = outputs[1][row]
                token_probs[i] = outputs[2][row, :len(encodings[i].ids)]
        return _Batch(class_probs, signal_probs, token_probs, encodings)


def _as_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string (wrap it in a list)")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] must be a string, got {type(text).__name__}")
    return out


def _choose_providers(requested: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    chosen = []
    for provider in requested or ():
        if provider in available:
            chosen.append(provider)
        else:
            logger.warning("execution provider %s is not available (have %s); skipping it",
                           provider, ", ".join(available))
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def _check_graph(graph: Path, session: Any, meta: ArtifactMeta) -> None:
    inputs = tuple(i.name for i in session.get_inputs())
    outputs = {o.name: o for o in session.get_outputs()}
    if set(inputs) != set(INPUT_NAMES):
        raise ArtifactError(f"{graph}: graph inputs {list(inputs)} do not follow the artifact contract "
                            f"{list(INPUT_NAMES)}")
    missing = [name for name in OUTPUT_NAMES if name not in outputs]
    if missing:
        raise ArtifactError(f"{graph}: graph lacks outputs {missing} (has {sorted(outputs)})")
    for name, width in (("class_probs", len(meta.classes)), ("signal_probs", len(meta.signals)),
                        ("token_signal_probs", len(meta.signals))):
        last = outputs[name].shape[-1] if outputs[name].shape else None
        if isinstance(last, int) and last != width:
            raise ArtifactError(f"{graph}: output {name} has {last} columns but the artifact names {width}")


def _pad_id(tokenizer: Any) -> int:
    padding = tokenizer.padding
    if padding and padding.get("pad_id") is not None:
        return int(padding["pad_id"])
    for token in ("[PAD]", "<pad>"):
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return int(token_id)
    return 0  # any id works: the attention mask hides padding


def _evidence(text: str, encoding: Any, probs: np.ndarray, threshold: float) -> tuple[Evidence, ...]:
    """Word-aligned character spans of the tokens at or above ``threshold``, strongest first.

    Args:
        text: The scored text (offsets index into it).
        encoding: Its ``tokenizers.Encoding`` (truncated, unpadded).
        probs: Per-token probability of one signal, one value per token of ``encoding``.
        threshold: The signal's presence threshold.

    Returns:
        At most :data:`MAX_EVIDENCE_SPANS` spans, by descending score.
    """
    hits: list[tuple[int, int, float]] = []
    for (start, end), special, p in zip(encoding.offsets, encoding.special_tokens_mask, probs):
        if special or end <= start or p < threshold:
            continue
        start, end = _word_bounds(text, start, end)
        hits.append((start, end, float(p)))
    if not hits:
        return ()
    hits.sort()
    merged = [list(hits[0])]
    for start, end, score in hits[1:]:
        last = merged[-1]
        # Overlapping pieces of one word, or neighbouring words with only spaces between them.
        if start <= last[1] or not text[last[1]:start].strip():
            last[1] = max(last[1], end)
            last[2] = max(last[2], score)
        else:
            merged.append([start, end, score])
    merged.sort(key=lambda span: (-span[2], span[0]))
    return tuple(Evidence(start=s, end=e, text=text[s:e], score=score)
                 for s, e, score in merged[:MAX_EVIDENCE_SPANS])


def _word_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen ``text[start:end]`` to whole words (a sub-word piece, or a word cut by truncation)."""

    def inside(i: int) -> bool:  # is text[i] part of the word around it?
        if text[i].isalnum():
            return True
        return (text[i] in _WORD_JOINERS and 0 < i < len(text) - 1
                and text[i - 1].isalnum() and text[i + 1].isalnum())

    if not any(c.isalnum() for c in text[start:end]):
        return start, end  # a punctuation token stays itself
    while start > 0 and inside(start - 1):
        start -= 1
    while end < len(text) and inside(end):
        end += 1
    return start, end
