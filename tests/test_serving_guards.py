"""Hallucination and drift guards of live calls, each provoked by audio against a real server
(tiny keyword model, bundled tiny.en): silence, hold music, a looped phrase, a long pause.

The lag bound (skip ahead and say so) is provoked with a slow fake decoder in
test_serving_live_call.py; conditioning on earlier text is off by contract (test_speech_asr.py).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.server_harness import (  # noqa: F401 (live_server, serving_tmp: fixtures)
    CLEAR_SPEECH, close_of, collect_until_close, decoded, live_server, pcm16_frames, recv_json, run, serving_tmp,
    spoken,
)

pytestmark = pytest.mark.integration


def stream(server, call_id: str, audio: np.ndarray, *, pace: float = 0.0) -> tuple[list[dict], tuple]:
    """Play ``audio`` as a call (``pace`` seconds of wall time per 20 ms frame; 0 = as fast as possible)."""
    import websockets

    frames = pcm16_frames(audio)

    async def call():
        async with websockets.connect(f"{server.ws}/v1/stream") as ws:
            await ws.send(json.dumps({"type": "start", "call_id": call_id, "encoding": "pcm16", "sample_rate": 16000}))
            assert (await recv_json(ws))["type"] == "started"
            events: list[dict] = []
            task = asyncio.create_task(collect_until_close(ws, timeout=90, events=events))
            t0 = time.monotonic()
            for i, frame in enumerate(frames):
                if pace:
                    await asyncio.sleep(max(0.0, t0 + i * pace - time.monotonic()))
                await ws.send(frame)
            await ws.send(json.dumps({"type": "stop"}))
            await task
            return events, close_of(ws)

    return run(call())


def hold_music(path: Path, seconds: int = 8) -> np.ndarray:
    """A plucked arpeggio, the kind of hold music Whisper writes ". . . ." or "♪" over."""
    notes = " : ".join(f"synth 0.4 pluck {n}" for n in ("C4", "E4", "G4", "C5", "G4", "E4"))
    subprocess.run(f"sox -n -r 8000 -c 1 {path} {notes} repeat {int(seconds / 2.4)}", shell=True, check=True,
                   capture_output=True)
    return decoded(path)


def test_silence_is_never_decoded(live_server):
    events, (code, _) = stream(live_server, "silence-1", np.zeros(8 * 16000, np.float32))
    final = events[-1]
    assert code == 1000 and final["type"] == "final"
    assert [e for e in events if e["type"] == "partial"] == []
    assert final["transcript"]["words"] == []
    assert final["totals"]["decodes"] == 0 and final["totals"]["vad_skips"] >= 1


def test_hold_music_yields_no_words(live_server, tmp_path):
    music = hold_music(tmp_path / "hold.wav")
    assert np.abs(music).max() > 0.1  # loud: the energy gate lets it through to the ASR
    events, (code, _) = stream(live_server, "music-1", music)
    final = events[-1]
    assert code == 1000 and final["type"] == "final"
    assert final["totals"]["decodes"] >= 1  # the ASR did hear it …
    assert final["transcript"]["words"] == [], final["transcript"]  # … and wrote nothing
    assert all(e["transcript"]["text"] == "" for e in events if e["type"] == "partial")


def test_a_looped_phrase_is_cut_to_one_copy(live_server, tmp_path):
    audio = decoded(spoken("hello? hello? hello? hello? is anybody there?", tmp_path))
    events, (code, _) = stream(live_server, "loop-1", audio)
    final = events[-1]
    words = [w["text"].lower().strip("?,.!") for w in final["transcript"]["words"]]
    assert code == 1000 and words, final
    assert words.count("hello") <= 2, words  # four hellos heard, the guard keeps one (two is speech)
    assert final["totals"]["dropped_words"] >= 2
    partials = [e for e in events if e["type"] == "partial"]
    assert sum(p["dropped_words"] for p in partials) >= final["totals"]["dropped_words"] > 0


def test_silence_keeps_a_call_alive_across_a_long_pause(live_server, tmp_path):
    """A 4 s pause (longer than the server's 3 s idle timeout) sent as silence frames in real time."""
    first = decoded(spoken("hello", tmp_path, name="a.wav"))
    second = decoded(spoken(CLEAR_SPEECH, tmp_path, name="b.wav"))
    audio = np.concatenate([first, np.zeros(4 * 16000, np.float32), second])
    t0 = time.monotonic()
    events, (code, reason) = stream(live_server, "pause-1", audio, pace=0.02)
    assert time.monotonic() - t0 > 4.0
    final = events[-1]
    assert code == 1000 and final["type"] == "final", (code, reason)
    text = final["transcript"]["text"].lower()
    assert "hello" in text and "roof" in text, text
    assert final["totals"]["vad_skips"] >= 1  # the pause itself cost no decode
