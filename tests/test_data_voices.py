"""data.voices: the Piper runner's phoneme ids, the voice catalog and its draw, the espeak-ng fallback, real synthesis."""

from __future__ import annotations

import wave

import numpy as np
import pytest

import data.voices as voices
from data.render import RenderConfig, RenderPlan, Turn, Voice, asr_row, plan_for, render_call_audio
from data.voices import PiperConfig, describe, phonemize, resolve_voices, synthesize

TINY = {"phoneme_type": "espeak", "audio": {"sample_rate": 16000}, "espeak": {"voice": "en-us"},
        "inference": {"noise_scale": 0.5, "length_scale": 1.2, "noise_w": 0.7},
        "phoneme_id_map": {"_": [0], "^": [1], "$": [2], " ": [3], "h": [10], "a": [11], "ɪ": [12], "ˈ": [13],
                           ",": [14], "e": [20, 21]}}


def _read(path):
    with wave.open(str(path)) as w:
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768


def test_piper_config_maps_phonemes_to_ids_with_bos_pad_eos():
    config = PiperConfig.from_json(TINY)
    assert (config.sample_rate, config.noise_scale, config.length_scale, config.noise_w) == (16000, 0.5, 1.2, 0.7)
    # ^ _ then each phoneme followed by _, then $; a multi-id phoneme keeps all its ids; unknown "z" is dropped.
    assert config.phoneme_ids("hˈa, z") == [1, 0, 10, 0, 13, 0, 11, 0, 14, 0, 3, 0, 2]
    assert config.phoneme_ids("e") == [1, 0, 20, 21, 0, 2]
    # NFD: a precomposed "é" is "e" + U+0301; the combining accent has no id here and is dropped.
    assert config.phoneme_ids("\u00e9") == [1, 0, 20, 21, 0, 2]
    with pytest.raises(ValueError, match="BOS"):
        PiperConfig.from_json({**TINY, "phoneme_id_map": {"_": [0], "a": [1]}})
    with pytest.raises(ValueError, match="espeak"):
        PiperConfig.from_json({**TINY, "phoneme_type": "text"})


def test_phonemize_keeps_clause_punctuation_and_splits_sentences():
    sentences = phonemize("Hi, thanks for calling. Can I get a quote for 4,500 feet?")
    assert len(sentences) == 2
    assert sentences[0].startswith("h") and ", " in sentences[0] and sentences[0].endswith(".")
    assert sentences[1].endswith("?") and "θˈaʊzənd" in sentences[1]  # 4,500 read as one number


def test_catalog_names_engines_sexes_and_accents():
    assert (describe("piper:joe").engine, describe("piper:joe").sex) == ("piper", "male")
    assert (describe("flite:slt").sex, describe("flite:awb").accent) == ("female", "scottish")
    assert (describe("en-us+f3").engine, describe("en-us+f3").sex, describe("en-gb-scotland").accent) == \
        ("espeak", "female", "scottish")
    with pytest.raises(voices.VoiceError, match="unknown voice"):
        describe("piper:nobody")
    with pytest.raises(ValueError, match="unknown voice"):
        RenderConfig(voices=("flite:nobody", "en-us"))


def test_draw_is_seeded_and_gives_agent_and_caller_different_voices():
    config = RenderConfig(voices=("piper:joe", "flite:slt", "flite:rms", "flite:awb"), seed=7)
    plans = {cid: plan_for(cid, config) for cid in map(str, range(40))}
    assert all(plan_for(cid, config) == plan for cid, plan in plans.items())  # same seed, same voices
    assert all(p.agent.name != p.caller.name for p in plans.values())
    assert {p.agent.name for p in plans.values()} | {p.caller.name for p in plans.values()} == set(config.voices)
    other = {cid: plan_for(cid, RenderConfig(voices=config.voices, seed=8)) for cid in plans}
    assert sum(other[c].agent != plans[c].agent for c in plans) > 10  # another seed, another draw


def test_natural_means_the_voices_like_people_and_the_others_only_when_none_of_those_is_installed(monkeypatch):
    espeak = ("en-us", "en-gb+f3")
    monkeypatch.setattr(voices, "is_installed", lambda name: True)
    assert resolve_voices("natural", espeak) == ("piper:joe", "festival:slt")
    assert all(not describe(v).like_people for v in ("flite:slt", "flite:rms", "flite:awb"))
    assert resolve_voices(["natural", "flite:awb"], espeak) == ("piper:joe", "festival:slt", "flite:awb")  # named
    monkeypatch.setattr(voices, "is_installed", lambda name: name in ("festival:slt", "flite:rms", "en-us"))
    assert resolve_voices("natural", espeak) == ("festival:slt",)  # piper:joe reported missing, no Flite stand-in
    monkeypatch.setattr(voices, "is_installed", lambda name: name.startswith("flite:"))
    assert resolve_voices("natural", espeak) == ("flite:slt", "flite:rms", "flite:awb")


def test_natural_falls_back_to_espeak_when_no_natural_voice_is_installed(monkeypatch):
    espeak = ("en-us", "en-gb+f3")
    monkeypatch.setattr(voices, "is_installed", lambda name: describe(name).engine == "espeak")
    assert resolve_voices("natural", espeak) == espeak
    assert resolve_voices(["piper:joe", "flite:slt"], espeak) == espeak
    assert resolve_voices(["piper:joe", "en-029"], espeak) == ("en-029",)  # absent ones dropped
    monkeypatch.setattr(voices, "is_installed", lambda name: name in ("flite:slt", "en-us"))
    assert resolve_voices("natural", espeak) == ("flite:slt",)
    assert resolve_voices(["natural", "espeak"], espeak) == ("flite:slt", "en-us", "en-gb+f3")
    monkeypatch.setattr(voices, "is_installed", lambda name: False)
    with pytest.raises(voices.VoiceError, match="not installed"):
        synthesize("piper:joe", "hello", voices.Path("unused.wav"))


def test_piper_voice_speaks_22k_audio_of_plausible_length(tmp_path):
    text = "Thanks for calling, how can I help you today?"  # ~9 words: 2-4 s at a person's pace
    normal = synthesize("piper:joe", text, tmp_path / "joe.wav")
    slow = synthesize("piper:joe", text, tmp_path / "slow.wav", wpm=120)
    rate, audio = _read(normal)
    _, slower = _read(slow)
    assert rate == 22050
    assert 1.5 < len(audio) / rate < 4.5
    assert float(np.sqrt(np.mean(audio ** 2))) > 0.03  # speech, not silence
    # 175/120 = 1.46 times the speech; silences at the ends do not stretch and VITS draws its
    # durations with noise (measured 1.24-1.33 over runs).
    assert 1.12 < len(slower) / len(audio) < 1.6


def test_flite_voices_speak_at_the_render_rate_and_pitch_shift(tmp_path):
    text = "I would like a quote for a new roof please."
    rate, slt = _read(synthesize("flite:slt", text, tmp_path / "slt.wav"))
    _, rms = _read(synthesize("flite:rms", text, tmp_path / "rms.wav"))
    assert rate == 22050 and 1.5 < len(slt) / rate < 5.0 and float(np.sqrt(np.mean(slt ** 2))) > 0.02

    def f0(x):  # median pitch from the autocorrelation peak of voiced 40 ms frames
        frame, found = int(0.04 * rate), []
        for i in range(0, len(x) - frame, frame):
            w = x[i:i + frame] - x[i:i + frame].mean()
            if np.sqrt(np.mean(w ** 2)) < 0.05:
                continue
            ac = np.correlate(w, w, "full")[frame - 1:]
            lo, hi = rate // 400, rate // 70
            found.append(rate / (lo + int(np.argmax(ac[lo:hi]))))
        return float(np.median(found))

    assert f0(slt) > 1.3 * f0(rms)  # the female voice is higher than the male one
    _, high = _read(synthesize("flite:rms", text, tmp_path / "high.wav", pitch=75))  # +300 cents
    assert 1.08 < f0(high) / f0(rms) < 1.35


def test_a_call_in_natural_voices_goes_on_the_line_and_its_row_names_them(tmp_path):
    plan = RenderPlan(agent=Voice("piper:joe", 175, 50), caller=Voice("flite:slt", 160, 50), gap_seconds=0.3)
    out = render_call_audio((Turn("Acme roofing, good morning.", "agent"), Turn("Hi, I need a quote.", "caller")),
                            tmp_path / "call.wav", plan)
    assert out.stat().st_size > 8000 * 1.5  # μ-law 8 kHz, one byte a sample, over 1.5 s

    class Heard:
        text, words, audio_seconds = "hi", (), 2.0

    row = asr_row({"call_id": "c", "transcript": "x", "label": "buying"}, Heard(), plan, "tiny.en")
    assert row["render"]["agent"] == {"name": "piper:joe", "wpm": 175, "pitch": 50, "engine": "piper",
                                      "sex": "male", "accent": "us"}
    assert row["render"]["caller"]["sex"] == "female"


def test_festival_hts_voice_speaks_at_the_render_rate_and_follows_the_speaking_rate(tmp_path):
    text = "Hi, I would like to book a table for four on Friday."
    rate, normal = _read(synthesize("festival:slt", text, tmp_path / "fest.wav"))
    _, slow = _read(synthesize("festival:slt", text, tmp_path / "slow.wav", wpm=140))
    assert rate == 22050 and 1.5 < len(normal) / rate < 5.0 and float(np.sqrt(np.mean(normal ** 2))) > 0.02
    assert 1.1 < len(slow) / len(normal) < 1.4  # 175/140 = 1.25 times as long
