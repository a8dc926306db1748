"""One ASR for many live calls: the calls' pending decodes run together as one batch.

Every live call re-decodes its recent audio about once a second. Decoded one by one, N calls
cost N decodes; Whisper's decoder is token-by-token, and a batch of clips advances all of them
in one step for little more than the cost of one, so the batch costs a fraction of the sum
(BENCHMARKS.md). :class:`BatchingTranscriber` is a drop-in :class:`serving.live_call.Transcriber`:
a call's decode thread submits its clip and blocks; a worker takes every clip waiting (up to
``max_batch``) and decodes them with :meth:`speech.asr.SpeechRecognizer.transcribe_many`.

Nothing waits to fill a batch: a worker starts as soon as one clip is queued, and the clips
that arrive while it decodes form the next batch. One call alone therefore pays no batching
delay, and under load the batch grows by itself.

If a batch fails, each of its clips is decoded again on its own, so one bad clip (or a bug it
triggers) fails one call, never the others in its batch.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from speech.asr import SpeechRecognizer
from speech.transcript import OpeningTranscript

logger = logging.getLogger(__name__)


@dataclass
class _Clip:
    audio: np.ndarray
    cut_seconds: float
    offset: float
    result: Future = field(default_factory=Future)


_STOP = object()


class BatchingTranscriber:
    """Batches concurrent :meth:`transcribe` calls from different threads (see the module docstring).

    Args:
        recognizer: The loaded ASR; each worker uses it from its own thread.
        max_batch: Most clips decoded together (1 = no batching, one clip per decode).
        workers: Worker threads, each decoding one batch at a time (match the recognizer's
            ``num_workers``; with 2 a batch is prepared while the other decodes).
        on_batch: Called with each batch's size (metrics).
    """

    def __init__(self, recognizer: SpeechRecognizer, *, max_batch: int = 8, workers: int = 1,
                 on_batch: Callable[[int], None] | None = None) -> None:
        if max_batch < 1 or workers < 1:
            raise ValueError(f"max_batch and workers must be >= 1, got {max_batch}, {workers}")
        self.recognizer = recognizer
        self.max_batch = max_batch
        self._on_batch = on_batch
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        # Makes "not closed? then queue the clip" one step against close(): a clip queued after
        # the stop markers would wait forever for a worker that has exited.
        self._closing = threading.Lock()
        self._workers = [threading.Thread(target=self._work, name=f"asr-batch-{i}", daemon=True)
                         for i in range(workers)]
        for worker in self._workers:
            worker.start()

    def transcribe(self, audio: np.ndarray, *, cut_seconds: float = 30.0, offset: float = 0.0) -> OpeningTranscript:
        """Decode one clip with whatever else is waiting; blocks until its transcript is ready.

        Raises:
            RuntimeError: the transcriber was closed.
            Exception: whatever decoding this clip raised.
        """
        clip = _Clip(np.asarray(audio, dtype=np.float32), cut_seconds, offset)
        with self._closing:
            if self._closed:
                raise RuntimeError("the ASR batcher is closed")
            self._queue.put(clip)  # before any stop marker: a worker decodes it before it exits
        return clip.result.result()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers after the clips already queued (later :meth:`transcribe` calls raise)."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
            for _ in self._workers:
                self._queue.put(_STOP)
        for worker in self._workers:
            worker.join(timeout)

    # -- workers ---------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True  # finish this batch, then exit
                    break
                batch.append(item)
            self._decode(batch)
            if stop:
                return

    def _decode(self, batch: list[_Clip]) -> None:
        if self._on_batch is not None:
            self._on_batch(len(batch))
        try:
            results = self._transcribe(batch)
        except Exception as error:
            if len(batch) == 1:
                logger.exception("live ASR decode failed")
                batch[0].result.set_exception(error)
                return
            logger.exception("batched live ASR decode of %d clips failed; decoding them one by one", len(batch))
            for clip in batch:
                self._decode([clip])
            return
        for clip, transcript in zip(batch, results):
            clip.result.set_result(transcript)

    def _transcribe(self, batch: list[_Clip]) -> list[OpeningTranscript]:
        return self.recognizer.transcribe_many([c.audio for c in batch], offsets=[c.offset for c in batch],
                                               cut_seconds=[c.cut_seconds for c in batch])

