"""serving.asr_batcher: live calls' decodes batched across threads (fake recognizer), and the
recognizer's batched decode itself (real tiny.en)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import jiwer
import numpy as np
import pytest

from speech.audio import SAMPLE_RATE, decode_audio
from speech.transcript import OpeningTranscript, Word
from serving.asr_batcher import BatchingTranscriber
from tests.conftest import SHARED_AUDIO


class FakeRecognizer:
    """Each clip 'says' one word: its first sample value; a clip starting with -1 is poison."""

    def __init__(self, seconds_per_batch: float = 0.05) -> None:
        self.batches: list[int] = []
        self.seconds_per_batch = seconds_per_batch
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # set once a batch has reached the recognizer

    def transcribe_many(self, clips, *, offsets, cut_seconds):
        self.entered.set()
        self.gate.wait(5)
        self.batches.append(len(clips))
        time.sleep(self.seconds_per_batch)
        if any(clip[0] == -1 for clip in clips):
            raise RuntimeError("poisoned clip")
        return [OpeningTranscript((Word(f"w{int(clip[0])}", offset, offset + 0.2),), audio_seconds=len(clip) / SAMPLE_RATE,
                                  cut_seconds=cut)
                for clip, offset, cut in zip(clips, offsets, cut_seconds)]


def clip(value: float) -> np.ndarray:
    return np.full(SAMPLE_RATE // 2, value, dtype=np.float32)


def test_concurrent_calls_are_decoded_together_and_each_gets_its_own_transcript() -> None:
    fake = FakeRecognizer()
    sizes: list[int] = []
    batcher = BatchingTranscriber(fake, max_batch=8, workers=1, on_batch=sizes.append)
    try:
        fake.gate.clear()  # hold the worker so the other calls' clips queue up behind the first
        with ThreadPoolExecutor(6) as pool:
            def submit(i: int):
                return pool.submit(batcher.transcribe, clip(i), cut_seconds=30.0 - i, offset=float(i))

            futures = [submit(0)]
            assert fake.entered.wait(5)  # the first clip is in the recognizer before the others arrive
            futures += [submit(i) for i in range(1, 6)]
            time.sleep(0.3)
            fake.gate.set()
            results = [f.result(5) for f in futures]
    finally:
        batcher.close()
    assert [r.words[0].text for r in results] == [f"w{i}" for i in range(6)]
    assert [r.words[0].start for r in results] == [float(i) for i in range(6)]
    assert [r.cut_seconds for r in results] == [30.0 - i for i in range(6)]
    assert fake.batches == sizes and sum(sizes) == 6
    assert sizes[0] == 1 and sizes[1] == 5  # the first ran alone (no waiting), the rest together


def test_max_batch_bounds_each_batch() -> None:
    fake = FakeRecognizer()
    batcher = BatchingTranscriber(fake, max_batch=2, workers=1)
    try:
        fake.gate.clear()
        with ThreadPoolExecutor(7) as pool:
            futures = [pool.submit(batcher.transcribe, clip(i)) for i in range(7)]
            time.sleep(0.3)
            fake.gate.set()
            assert sorted(f.result(5).words[0].text for f in futures) == sorted(f"w{i}" for i in range(7))
    finally:
        batcher.close()
    assert max(fake.batches) == 2 and sum(fake.batches) == 7


def test_a_failing_clip_fails_only_its_own_call() -> None:
    fake = FakeRecognizer()
    batcher = BatchingTranscriber(fake, max_batch=8, workers=1)
    try:
        fake.gate.clear()
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(batcher.transcribe, clip(v)) for v in (1, -1, 2, 3)]
            time.sleep(0.3)
            fake.gate.set()
            outcomes = []
            for f in futures:
                try:
                    outcomes.append(f.result(5).words[0].text)
                except RuntimeError as e:
                    outcomes.append(str(e))
    finally:
        batcher.close()
    assert outcomes == ["w1", "poisoned clip", "w2", "w3"]


def test_closed_batcher_refuses_new_clips() -> None:
    batcher = BatchingTranscriber(FakeRecognizer(), max_batch=4, workers=2)
    assert batcher.transcribe(clip(5)).words[0].text == "w5"
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.transcribe(clip(1))


def test_a_clip_submitted_while_close_runs_never_waits_forever() -> None:
    """The race of close(): a call's thread passes the "closed?" check, and close() puts the stop
    markers and the workers exit before its clip reaches the queue. That clip must get its
    transcript or RuntimeError("closed") at once, not wait for a worker that is gone."""
    batcher = BatchingTranscriber(FakeRecognizer(), max_batch=4, workers=2)
    put = batcher._queue.put
    closer = threading.Thread(target=batcher.close)

    def put_after_close_ran(item, *args, **kwargs):
        # Preempt the submitting thread right before its put: close() runs meanwhile, as far as
        # it can get (all the way, unless transcribe() holds it off until the clip is queued).
        if not closer.is_alive() and closer.ident is None:
            closer.start()
            closer.join(0.5)
        put(item, *args, **kwargs)

    batcher._queue.put = put_after_close_ran
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(batcher.transcribe, clip(7))
        try:
            assert future.result(timeout=2).words[0].text == "w7"  # queued before the stop markers: decoded
        except RuntimeError as e:
            assert "closed" in str(e)  # or refused: either way at once
        finally:
            closer.join(5)
            # Without the fix the clip waits forever: unblock the pool's thread so the test can end.
            for item in list(batcher._queue.queue):
                waiting = getattr(item, "result", None)  # a clip (not a stop marker)
                if waiting is not None and not waiting.done():
                    waiting.set_exception(RuntimeError("test cleanup"))
    assert not closer.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.transcribe(clip(1))


@pytest.mark.integration
def test_batched_decode_matches_single_decodes_on_real_speech() -> None:
    from speech.asr import AsrConfig, SpeechRecognizer

    recognizer = SpeechRecognizer(AsrConfig(encoder_min_seconds=10.0))
    jfk = decode_audio(SHARED_AUDIO / "jfk.flac")
    osr = decode_audio(SHARED_AUDIO / "OSR_us_000_0034_8k.wav")
    clips = [jfk, osr[:8 * SAMPLE_RATE], np.zeros(3 * SAMPLE_RATE, np.float32), jfk[:50]]
    batched = recognizer.transcribe_many(clips, offsets=[0.0, 12.0, 0.0, 0.0], cut_seconds=[30.0, 5.0, 30.0, 30.0])
    reference = "and so my fellow americans ask not what your country can do for you ask what you can do for your country"
    heard = " ".join(w.text.lower().strip(".,?!") for w in batched[0].words)
    assert jiwer.wer(reference, heard) <= 0.1, heard
    single = recognizer.transcribe(jfk)
    assert [w.text for w in batched[0].words] == [w.text for w in single.words]
    # offset moves word times onto the call's clock; cut keeps words starting before 5 s
    assert batched[1].words and all(12.0 <= w.start < 17.0 for w in batched[1].words)
    assert batched[1].audio_seconds == pytest.approx(5.0) and batched[1].cut_seconds == 5.0
    assert "gold ring" in batched[1].text.lower()
    assert batched[2].words == () and batched[3].words == ()  # silence and a 3 ms clip: nothing heard


def test_clip_of_seek_finds_the_clip_when_faster_whisper_truncates_its_offset() -> None:
    from speech.asr import clip_of_seek

    for first in (4640, 128100, 176000):  # 0.29 s is 28.999… frames: seek 28, not 29
        starts = [0.0, first / SAMPLE_RATE * 100, (first + 50_000) / SAMPLE_RATE * 100]
        seeks = [int(int(s / 100 * SAMPLE_RATE) / SAMPLE_RATE * 100) for s in starts]  # faster-whisper's arithmetic
        assert [clip_of_seek(seek, starts) for seek in seeks] == [0, 1, 2]
    assert clip_of_seek(0, [0.0]) == 0


@pytest.mark.integration
def test_batched_decode_with_a_clip_start_between_frames() -> None:
    # A first clip of 128100 samples puts the second at 800.625 frames, which faster-whisper reports
    # as seek 800: looking that up as round(800.625) = 801 once raised KeyError and the batch fell back
    # to single decodes.
    from speech.asr import AsrConfig, SpeechRecognizer

    recognizer = SpeechRecognizer(AsrConfig(encoder_min_seconds=10.0))
    jfk = decode_audio(SHARED_AUDIO / "jfk.flac")
    osr = decode_audio(SHARED_AUDIO / "OSR_us_000_0034_8k.wav")
    first, second = recognizer.transcribe_many([jfk[:128100], osr[:8 * SAMPLE_RATE]], offsets=[0.0, 0.0],
                                               cut_seconds=[30.0, 30.0])
    assert "americans" in first.text.lower() and "gold ring" not in first.text.lower()
    assert "gold ring" in second.text.lower() and "americans" not in second.text.lower()
