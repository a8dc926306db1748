"""Robustness: clean text vs 8 kHz telephone ASR of the same calls (espeak-ng -> sox μ-law -> faster-whisper)."""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest
from model_fixtures import build_tiny_artifact

from callintent.cli import main
from speech.audio import decode_audio
from data.render import render_telephone_audio
from evaluation.evalset import load_eval_set
from evaluation.robustness import (
    RobustnessClassRow, RobustnessConfig, robustness_check, sample_indices,
)
from models.predictor import IntentPredictor

ROWS = [
    ("b1", "hi I saw your ad, how much does a new roof cost", "buying"),
    ("s1", "I am checking on my order", "service"),
    ("i1", "what are your hours on saturday", "informational"),
    ("b2", "can I get a quote for a new furnace", "buying"),
    ("s2", "my bill is wrong", "service"),
]


def test_sample_is_class_balanced_and_seeded():
    labels = [0] * 10 + [1] * 3 + [2] * 1
    sample = sample_indices(labels, 5, seed=1)
    assert sample == sorted(sample) and len(set(sample)) == 5
    picked = [labels[i] for i in sample]
    assert picked.count(1) == 2 and picked.count(2) == 1 and picked.count(0) == 2  # classes take turns
    assert sample_indices(labels, 5, seed=1) == sample
    assert sample_indices(labels, 5, seed=2) != sample
    assert len(sample_indices(labels, 100)) == len(labels)


def test_telephone_audio_is_8khz_mulaw(tmp_path):
    wav = render_telephone_audio("can someone come out tomorrow", tmp_path / "call.wav", voice="en-gb", wpm=180)
    with open(wav, "rb") as f:
        header = f.read(64)
    assert header[:4] == b"RIFF" and header[20:22] == (7).to_bytes(2, "little")  # WAVE_FORMAT_MULAW
    with pytest.raises(wave.Error):  # the stdlib reads PCM only: proof it is not PCM
        wave.open(str(wav))
    audio = decode_audio(wav)
    assert 1.0 < len(audio) / 16000 < 4.0 and np.abs(audio).max() > 0.05
    assert not (tmp_path / "call.txt").exists()  # temporary text file cleaned up


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="n must be"):
        RobustnessConfig(n=0)
    with pytest.raises(ValueError, match="speeds"):
        RobustnessConfig(speeds=(20,))
    assert RobustnessClassRow("buying", 3, 0.9, 0.6).drop == pytest.approx(0.3)
    assert RobustnessClassRow("noise", 0, None, None).drop is None


@pytest.mark.integration
def test_robustness_report_with_real_asr_and_cache(tmp_path, capsys):
    artifact = build_tiny_artifact(tmp_path / "artifact")
    data = tmp_path / "calls.jsonl"
    data.write_text("".join(json.dumps({"call_id": c, "transcript": t, "label": lab, "signals": None}) + "\n"
                            for c, t, lab in ROWS))
    cache = tmp_path / "asr-cache"
    out = tmp_path / "report"
    assert main(["evaluate", "--model", str(artifact), "--data", str(data), "--split", "all", "--out", str(out),
                 "--robustness", "--robustness-n", "3", "--asr-cache", str(cache), "--bootstrap", "0",
                 "--latency-iterations", "0", "--registry", str(tmp_path / "reg")]) == 0
    assert "robustness (3 calls as phone audio)" in capsys.readouterr().out
    doc = json.loads((out / "metrics.json").read_text())["robustness"]
    assert doc["n"] == 3 and doc["asr_model"].startswith("tiny.en@") and doc["asr_cached"] == 0
    assert set(doc["per_class"]) == {"buying", "service", "informational", "noise"}
    buying = doc["per_class"]["buying"]
    assert buying["drop"] == pytest.approx(buying["f1_clean"] - buying["f1_asr"])
    html = (out / "report.html").read_text()
    assert 'id="robustness-table"' in html and 'id="fig-robustness"' in html
    assert len(list(cache.rglob("*.json"))) == 3

    # Second run: every transcript comes from the cache, with the same words.
    eval_set = load_eval_set([data], split="all")
    again = robustness_check(IntentPredictor.load(artifact), eval_set, RobustnessConfig(n=3, cache_dir=str(cache)))
    assert again.cached == 3
    assert again.macro_f1_asr == pytest.approx(doc["macro_f1_asr"], abs=1e-5)  # JSON keeps 6 digits
    # The ASR heard real words of the text (telephone tiny.en on espeak is rough, but not empty).
    assert all(e.asr_text.strip() for e in again.examples)
    assert any(set(e.asr_text.lower().split()) & set(e.clean_text.lower().split()) for e in again.examples)
