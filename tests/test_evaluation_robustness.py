"""Robustness: the same labeled calls scored from clean text, one-shot ASR and a live stream of their phone audio."""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest
from model_fixtures import build_tiny_artifact
from robustness_fakes import KeywordModel, ScriptedEar

from callintent.cli import main
from data.render import render_telephone_audio
from evaluation.evalset import load_eval_set
from evaluation.metrics import word_error_rate
from evaluation.robustness import (
    RobustnessConfig, conditions_of, robustness_check, sample_indices, wer_by_condition,
)
from models.labels import CLASS_INDEX
from models.metrics import classification_metrics, expected_calibration_error
from serving.policy import DecisionPolicy
from speech.audio import decode_audio

ROWS = [
    ("b1", "hi I saw your ad, how much does a new roof cost", "buying"),
    ("s1", "I am checking on my order", "service"),
    ("i1", "what are your hours on saturday", "informational"),
    ("b2", "can I get a quote for a new furnace", "buying"),
    ("s2", "my bill is wrong", "service"),
]

# Labeled text -> (one-shot ASR text, live-streamed text, when the streamed words start, audio seconds).
SCRIPT = {
    "I want to buy a new roof": ("I want to buy a new roof", "I want to buy a new roof", 5.0, 12.0),
    "can I get a quote on the bill": ("I get a quote on the bill", "can I get a quote on the buy", 0.5, 12.0),
    "what are your hours today": ("what are your bill today", "what are your ours today", 0.5, 8.0),
    "I need to buy a furnace soon": ("I need to a furnace soon", "need to buy a furnace soon", 9.0, 14.0),
}
LABELS = {"I want to buy a new roof": "buying", "can I get a quote on the bill": "service",
          "what are your hours today": "informational", "I need to buy a furnace soon": "buying"}


def _write(path, rows):
    path.write_text("".join(json.dumps({"call_id": c, "transcript": t, "label": lab, "signals": None}) + "\n"
                            for c, t, lab in rows))
    return path


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    """The check run on scripted renders: every column's text and the stream's decisions are known."""
    data = _write(tmp_path_factory.mktemp("robust") / "calls.jsonl",
                  [(f"c{k}", text, LABELS[text]) for k, text in enumerate(SCRIPT)])
    eval_set = load_eval_set([data], split="all")
    ear, model = ScriptedEar(SCRIPT), KeywordModel()
    result = robustness_check(model, eval_set, DecisionPolicy.from_yaml(None), RobustnessConfig(n=10),
                              ear=ear, live_asr=ear.live_asr(), progress=False)
    return result, ear, model


def test_three_columns_score_their_own_transcripts(scripted):
    result, ear, _ = scripted
    assert result.n == 4 and result.failed == 0 and sorted(ear.rendered) == sorted(SCRIPT)
    by_text = {c.clean_text: c for c in result.calls}
    for text, (oneshot, streamed, _, _) in SCRIPT.items():
        call = by_text[text]
        assert (call.oneshot_text, call.streamed_text) == (oneshot, streamed)
    # The keyword model: clean text all right; one-shot loses the buying keyword of the 4th call and
    # hears "bill" for "hours"; the stream hears "buy" for "bill" and "ours" for "hours".
    expected = {"clean": ["buying", "service", "informational", "buying"],
                "oneshot": ["buying", "service", "service", "noise"],
                "streamed": ["buying", "buying", "noise", "buying"]}
    labels = [CLASS_INDEX[LABELS[t]] for t in SCRIPT]
    texts = {"clean": list(SCRIPT), "oneshot": [v[0] for v in SCRIPT.values()],
             "streamed": [v[1] for v in SCRIPT.values()]}
    for name, predicted in expected.items():
        column = result.column(name)
        truth = classification_metrics(labels, [CLASS_INDEX[p] for p in predicted])
        assert column.accuracy == pytest.approx(truth.accuracy)
        assert column.macro_f1 == pytest.approx(truth.macro_f1)
        probs = [[s.probabilities[c] for c in CLASS_INDEX] for s in KeywordModel().predict(texts[name])]
        assert column.ece == pytest.approx(expected_calibration_error(labels, np.asarray(probs)), abs=1e-6)
    assert [by_text[t].streamed_prediction for t in SCRIPT] == expected["streamed"]
    assert result.column("clean").accuracy == 1.0 and result.column("streamed").accuracy == 0.5
    refs = list(SCRIPT)
    assert result.wer_oneshot == pytest.approx(word_error_rate(refs, [v[0] for v in SCRIPT.values()]))
    assert result.wer_streamed == pytest.approx(word_error_rate(refs, [v[1] for v in SCRIPT.values()]))
    assert result.changed == 2
    doc = result.to_json()
    assert doc["columns"]["streamed"]["accuracy"] == 0.5 and doc["per_class"]["buying"]["f1_clean"] == 1.0


def test_time_to_decision_comes_from_the_live_stream(scripted):
    result, _, _ = scripted
    by_text = {c.clean_text: c for c in result.calls}
    # "buy" starts at 6.5 s and 10.0 s into the streamed scripts. The stream decodes once a second
    # and hears a word once the audio it decodes covers the word's start, so the keyword is first
    # scored at 7 s and 11 s, and the policy (early at P >= 0.90 after >= 4 s) decides there.
    first, second = by_text["I want to buy a new roof"], by_text["I need to buy a furnace soon"]
    assert (first.decision.seconds, first.decision.early, first.decision.route) == (7.0, True, "priority_sales")
    assert (second.decision.seconds, second.decision.early) == (11.0, True)
    d = result.decisions
    assert (d.buying_calls, d.buying_early, d.buying_priority) == (2, 2, 2)
    assert result.buying_early_seconds == (7.0, 11.0) and result.median_buying_early_seconds == 9.0
    # A call whose stream never hears a keyword decides at the end of its audio, not early.
    unsure = by_text["what are your hours today"]
    assert (unsure.decision.seconds, unsure.decision.early) == (8.0, False)
    assert all(c.decodes >= 4 for c in result.calls)


def test_wer_by_condition_groups_rows():
    refs = ["a b c d", "a b", "a b c d", "x y"]
    oneshot = ["a b c d", "a", "a b", "x y z"]
    streamed = ["a b c", "a b", "", "x y"]
    conditions = [(("codec", "gsm"), ("voice", "v1")), (("codec", "mulaw"), ("voice", "v1")),
                  (("codec", "gsm"), ("voice", "v2")), (("codec", "mulaw"), ("voice", "v2"))]
    got = {(c.factor, c.value): c for c in wer_by_condition(refs, oneshot, streamed, conditions)}
    assert list(got) == [("codec", "gsm"), ("codec", "mulaw"), ("voice", "v1"), ("voice", "v2")]
    assert got["codec", "gsm"].calls == 2
    assert got["codec", "gsm"].wer_oneshot == pytest.approx(2 / 8)  # 0 + 2 deletions over 8 words
    assert got["codec", "gsm"].wer_streamed == pytest.approx(5 / 8)
    assert got["codec", "mulaw"].wer_oneshot == pytest.approx(2 / 4)
    assert got["voice", "v1"].wer_streamed == pytest.approx(1 / 6)
    assert got["voice", "v2"].wer_oneshot == pytest.approx(3 / 6)


def test_conditions_come_from_the_render_parameters():
    plan = {"channel": {"codec": "gsm", "snr_db": 12.3, "noise": "babble", "loss_rate": 0.05}}
    assert conditions_of(plan, "en-gb") == (("codec", "gsm"), ("snr", "10-15 dB"), ("packet_loss", "heavy"),
                                            ("voice", "en-gb"))
    quiet = {"channel": {"codec": "amr-nb-4.75", "snr_db": None, "noise": None, "loss_rate": 0.01}}
    assert dict(conditions_of(quiet, "v"))["snr"] == "quiet"
    assert dict(conditions_of(quiet, "v"))["packet_loss"] == "light"
    loud = {"channel": {"codec": "mulaw", "snr_db": 24.9, "loss_rate": 0.0}}
    assert dict(conditions_of(loud, "v"))["snr"] == "20+ dB"
    assert conditions_of({"channel": None}, "v")[:3] == (("codec", "mulaw"), ("snr", "quiet"), ("packet_loss", "none"))


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
    with pytest.raises(ValueError, match="cut_seconds"):
        RobustnessConfig(cut_seconds=31)
    with pytest.raises(ValueError, match="frame_seconds"):
        RobustnessConfig(frame_seconds=0)


@pytest.mark.integration
def test_robustness_report_with_real_asr_and_live_stream(tmp_path, capsys):
    """Two calls rendered through the channel, transcribed once by tiny.en and streamed through LiveCall."""
    artifact = build_tiny_artifact(tmp_path / "artifact")
    data = _write(tmp_path / "calls.jsonl", ROWS)
    cache = tmp_path / "asr-cache"
    out = tmp_path / "report"
    assert main(["evaluate", "--model", str(artifact), "--data", str(data), "--split", "all", "--out", str(out),
                 "--robustness", "--robustness-n", "2", "--asr-cache", str(cache), "--bootstrap", "0",
                 "--latency-iterations", "0", "--no-record", "--registry", str(tmp_path / "reg")]) == 0
    printed = capsys.readouterr().out
    assert "robustness (2 calls rendered as phone calls" in printed and "live-streamed ASR" in printed
    doc = json.loads((out / "metrics.json").read_text())["robustness"]
    assert doc["n"] == 2 and doc["asr_model"].startswith("tiny.en@") and doc["oneshot_cached"] == 0
    assert set(doc["columns"]) == {"clean", "oneshot", "streamed"}
    assert doc["wer"]["oneshot"] >= 0.0 and doc["wer"]["streamed"] >= 0.0
    assert sum(v["calls"] for v in doc["wer_by_condition"]["codec"].values()) == 2
    html = (out / "report.html").read_text()
    assert 'id="robustness-columns"' in html and 'id="fig-robustness"' in html
    assert len(list(cache.rglob("*.json"))) == 2  # one-shot transcripts cached

    # Again on one of those calls: its one-shot transcript comes from the cache; the stream runs again.
    from models.predictor import IntentPredictor

    eval_set = load_eval_set([data], split="all")
    again = robustness_check(IntentPredictor.load(artifact), eval_set, DecisionPolicy.from_yaml(None),
                             RobustnessConfig(n=1, cache_dir=str(cache)), progress=False)
    assert again.n == 1 and again.cached == 1

    def words(text: str) -> set[str]:
        return set(text.lower().replace(",", "").replace(".", "").split())

    # The live stream heard real words of what was said.
    heard = [c.streamed_text for c in again.calls]
    assert any(words(c.streamed_text) & words(c.clean_text) for c in again.calls), heard
    for call in again.calls:
        assert call.decodes >= 1 and 0 < call.decision.seconds <= call.audio_seconds + 1e-6
