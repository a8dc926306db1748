"""render-asr: labeled openings spoken by espeak-ng, put on an 8 kHz telephone line, transcribed by tiny.en, cached."""

from __future__ import annotations

import json
import wave
from dataclasses import replace

import numpy as np
import pytest

from callintent.cli import main
from speech.audio import decode_audio
from data.channel import CODECS, ChannelConfig, ChannelPlan, draw_channel_plan
from data.render import (
    RenderConfig, RenderError, RenderPlan, Turn, Voice, plan_for, render_cache_key, render_call_audio,
    render_call_tracks, render_rows, turns_of,
)

ROWS = [
    {"call_id": "r1", "transcript": "Thanks for calling. Hi, can I get a quote for a new roof?", "label": "buying",
     "signals": ["quote_request"], "spans": [{"signal": "quote_request", "start": 30, "end": 41,
                                              "text": "get a quote"}],
     "turns": [{"speaker": "agent", "text": "Thanks for calling."},
               {"speaker": "caller", "text": "Hi, can I get a quote for a new roof?"}],
     "words": [{"text": "Thanks", "start": 0.1, "end": 0.4}], "source": "google_ads", "split": "test"},
    {"call_id": "r2", "transcript": "my bill is wrong this month", "label": "service", "signals": None,
     "industry": "utilities", "split": "test"},
]


def test_plan_is_drawn_per_call_and_stable():
    config = RenderConfig(voices=("en-us", "en-gb", "en-us+f3"), rates=(140, 190), pitches=(30, 70), seed=3)
    plans = {cid: plan_for(cid, config) for cid in ("a", "b", "c", "d", "e", "f")}
    assert plan_for("c", config) == plans["c"]  # order and batch do not matter
    assert all(p.agent.name != p.caller.name for p in plans.values())  # two speakers, two voices
    assert len({(p.agent, p.caller) for p in plans.values()}) > 1  # varied across calls
    assert plan_for("c", RenderConfig(voices=config.voices, rates=config.rates, pitches=config.pitches, seed=4)) \
        != plans["c"] or plan_for("d", RenderConfig(voices=config.voices, seed=4)) != plans["d"]
    assert plans["a"].voice_for("caller") == plans["a"].caller and plans["a"].voice_for(None) == plans["a"].agent


def test_turns_are_used_only_when_they_spell_the_transcript():
    assert turns_of(ROWS[0]) == (Turn("Thanks for calling.", "agent"),
                                 Turn("Hi, can I get a quote for a new roof?", "caller"))
    edited = {**ROWS[0], "transcript": "Thanks for calling. Hi, can I get a price?"}
    assert turns_of(edited) == (Turn("Thanks for calling. Hi, can I get a price?"),)
    assert turns_of(ROWS[1]) == (Turn("my bill is wrong this month"),)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="voices"):
        RenderConfig(voices=())
    with pytest.raises(ValueError, match="rates"):
        RenderConfig(rates=(20,))
    with pytest.raises(ValueError, match="pitches"):
        RenderConfig(pitches=(120,))
    with pytest.raises(ValueError, match="noise_db"):
        RenderConfig(noise_db=6.0)


def test_two_voices_on_a_mulaw_line_with_and_without_noise(tmp_path):
    turns = (Turn("good morning", "agent"), Turn("I need a plumber", "caller"))
    a, b = Voice("en-us", 170, 40), Voice("en-gb+f3", 150, 70)
    clean = render_call_audio(turns, tmp_path / "clean.wav", RenderPlan(agent=a, caller=b, gap_seconds=1.0))
    noisy = render_call_audio(turns, tmp_path / "noisy.wav", RenderPlan(agent=a, caller=b, gap_seconds=1.0,
                                                                        noise_db=-30.0))
    header = clean.read_bytes()[:64]
    assert header[:4] == b"RIFF" and header[20:22] == (7).to_bytes(2, "little")  # WAVE_FORMAT_MULAW
    assert int.from_bytes(header[24:28], "little") == 8000
    with pytest.raises(wave.Error):
        wave.open(str(clean))  # the stdlib reads PCM only
    x, y = decode_audio(clean), decode_audio(noisy)
    assert abs(len(x) - len(y)) < 160 and 2.0 < len(x) / 16000 < 6.0
    # Somewhere in the second of silence between the turns: a clean line is silent, the noisy one is not.
    rms = lambda a: float(np.sqrt(np.mean(a ** 2)))  # noqa: E731
    windows = [x[i:i + 1600] for i in range(0, len(x) - 1600, 800)]
    quiet = min(range(len(windows)), key=lambda k: rms(windows[k]))
    assert rms(windows[quiet]) < 1e-3
    assert rms(y[quiet * 800:quiet * 800 + 1600]) > 0.005
    assert not list(tmp_path.glob(".*"))  # temporary parts cleaned up
    with pytest.raises(RenderError, match="espeak-ng, voice 'nosuchvoice'"):
        render_call_audio(turns, tmp_path / "bad.wav", RenderPlan(agent=Voice("nosuchvoice"), caller=b))


def test_two_channel_tracks_hold_one_speaker_each_on_the_calls_clock(tmp_path):
    turns = (Turn("good morning", "agent"), Turn("I need a plumber today please", "caller"))
    plan = RenderPlan(agent=Voice("en-us", 170, 40), caller=Voice("en-gb+f3", 150, 70), gap_seconds=1.0, channels=2)
    tracks = render_call_tracks(turns, tmp_path, plan)
    mono = decode_audio(render_call_audio(turns, tmp_path / "mono.wav", plan))
    caller, agent = decode_audio(tracks["caller"]), decode_audio(tracks["agent"])
    assert abs(len(caller) - len(mono)) < 160 and abs(len(agent) - len(mono)) < 160  # one clock
    rms = lambda a: float(np.sqrt(np.mean(a ** 2)))  # noqa: E731
    greeting = 16000 * 1  # the agent's "good morning" lies in the first second
    assert rms(agent[:greeting]) > 0.01 and rms(caller[:greeting]) < 1e-3
    tail = slice(len(mono) - 16000, len(mono))  # the caller's last second
    assert rms(caller[tail]) > 0.01 and rms(agent[tail]) < 1e-3
    assert not list(tmp_path.glob(".*"))
    # a two-channel render is cached apart from a mono one of the same call
    from speech.asr import AsrConfig

    mono_plan = RenderPlan(agent=plan.agent, caller=plan.caller, gap_seconds=1.0)
    assert render_cache_key(turns, plan, "m", 30.0, AsrConfig()) != render_cache_key(turns, mono_plan, "m", 30.0,
                                                                                      AsrConfig())
    with pytest.raises(ValueError, match="channels"):
        RenderConfig(channels=3)



def test_a_channel_plan_puts_the_tracks_through_the_telephone_channel(tmp_path):
    from speech.asr import AsrConfig

    turns = (Turn("good morning", "agent"), Turn("I need a plumber today please", "caller"))
    line = ChannelPlan(codec="gsm", crosstalk_db=-20.0, echo_delay_ms=0.0, seed=1)
    plan = RenderPlan(agent=Voice("en-us", 170, 40), caller=Voice("en-gb+f3", 150, 70), gap_seconds=1.0, channels=2,
                      channel=line)
    tracks = render_call_tracks(turns, tmp_path, plan)
    header = tracks["caller"].read_bytes()[:64]
    assert header[20:22] == (1).to_bytes(2, "little") and int.from_bytes(header[24:28], "little") == 8000  # PCM16
    caller, agent = decode_audio(tracks["caller"]), decode_audio(tracks["agent"])
    rms = lambda a: float(np.sqrt(np.mean(a ** 2)))  # noqa: E731
    greeting = slice(0, 16000)  # the agent speaks, the caller is silent: what the caller's track has is echo
    assert abs(20 * np.log10(rms(caller[greeting]) / rms(agent[greeting])) - -20.0) < 2.0
    assert not list(tmp_path.glob(".*"))
    plain = RenderPlan(agent=plan.agent, caller=plan.caller, gap_seconds=1.0, channels=2)
    keys = {render_cache_key(turns, p, "m", 30.0, AsrConfig()) for p in (plan, plain, replace(plan, channel=replace(
        line, codec="amr-nb-4.75")))}
    assert len(keys) == 3  # a changed channel re-renders
    with pytest.raises(ValueError, match="noise_db"):
        RenderConfig(noise_db=-30.0)  # pink noise belongs to the μ-law-only line…
    assert plan_for("a", RenderConfig(noise_db=-30.0, channel=None)).channel is None  # …which stays reachable
    assert plan_for("a", RenderConfig(channels=2)).channel == draw_channel_plan("a", 0, ChannelConfig(),
                                                                                two_channel=True)


@pytest.mark.integration
def test_render_asr_cli_writes_asr_rows_and_caches(tmp_path, capsys):
    data = tmp_path / "calls.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    out, cache = tmp_path / "asr.jsonl", tmp_path / "cache"
    args = ["data", "render-asr", "--in", str(data), "--out", str(out), "--cache-dir", str(cache),
            "--voices", "en-us", "en-gb", "--rates", "150", "--pitches", "50", "--channel", "mulaw"]
    assert main(args) == 0
    assert "2 calls: 2 ok (0 cached, 2 rendered and transcribed), 0 errors" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["call_id"] for r in rows] == ["r1", "r2"]
    first = rows[0]
    assert first["label"] == "buying" and first["signals"] == ["quote_request"] and first["split"] == "test"
    assert first["source"] == "google_ads" and "spans" not in first and "turns" not in first
    assert first["reference_transcript"] == ROWS[0]["transcript"]
    assert first["asr_model"].startswith("tiny.en@")
    assert first["render"]["agent"]["name"] != first["render"]["caller"]["name"]
    assert "get a quote" in first["transcript"].lower()  # ASR errors elsewhere are the point
    assert first["transcript"] == " ".join(w["text"] for w in first["words"])
    starts = [w["start"] for w in first["words"]]
    assert starts == sorted(starts) and starts[-1] > 1.0 and first["audio_seconds"] > starts[-1]
    assert rows[1]["signals"] is None and "wrong this month" in rows[1]["transcript"].lower()
    assert first["render"]["channel"] is None  # --channel mulaw: the μ-law-only line

    # Re-run: every call from the cache, same output.
    before = out.read_text()
    assert main(args) == 0
    assert "2 ok (2 cached, 0 rendered and transcribed)" in capsys.readouterr().out
    assert out.read_text() == before

    # The default telephone channel is a different render (nothing from the cache), drawn per call and
    # kept with each row. Its words are not asserted: losing some is what the channel is for.
    assert main([*args[:-2], "--out", str(tmp_path / "phone.jsonl")]) == 0
    assert "2 ok (0 cached, 2 rendered and transcribed)" in capsys.readouterr().out
    phone = [json.loads(line) for line in (tmp_path / "phone.jsonl").read_text().splitlines()]
    assert all(r["render"]["channel"]["codec"] in CODECS for r in phone)
    assert phone[0]["render"]["channel"] != phone[1]["render"]["channel"]

    # A voice espeak-ng does not have: each row fails with the reason, the batch does not.
    report = render_rows(rows[:1], tmp_path / "bad.jsonl", RenderConfig(voices=("nosuchvoice",),
                                                                          cache_dir=str(cache)))
    assert (report.ok, report.errors) == (0, 1)
    error = json.loads((tmp_path / "bad.errors.jsonl").read_text())
    assert error["call_id"] == "r1" and "nosuchvoice" in error["error"]


@pytest.mark.integration
def test_two_channel_render_gives_words_with_their_speakers(tmp_path, capsys):
    from evaluation.evalset import load_eval_set

    data = tmp_path / "calls.jsonl"
    data.write_text(json.dumps(ROWS[0]) + "\n")
    out = tmp_path / "asr2.jsonl"
    assert main(["data", "render-asr", "--in", str(data), "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                 "--voices", "en-us", "en-gb", "--rates", "150", "--pitches", "50", "--channels", "2",
                 "--channel", "mulaw"]) == 0  # clean tracks: the phone channel may echo the agent into the caller's
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["render"]["channels"] == 2
    words = row["words"]
    said = {w["speaker"]: " ".join(x["text"] for x in words if x["speaker"] == w["speaker"]).lower() for w in words}
    assert "thanks" in said["agent"] and "quote" not in said["agent"]
    assert "quote" in said["caller"] and "thanks" not in said["caller"]
    assert row["transcript"] == " ".join(w["text"] for w in words)  # merged by time
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    # evaluation reads the words' speakers as a two-channel call's tagged text
    (tagged,) = load_eval_set(out, split="all", text_form="tagged").transcripts
    assert tagged.startswith("agent: ") and " caller: " in tagged
    (caller,) = load_eval_set(out, split="all", text_form="caller").transcripts
    assert caller == " ".join(w["text"] for w in words if w["speaker"] == "caller")
