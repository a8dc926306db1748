"""speech.asr and data.transcribe: the recognizer contract (with a fake Whisper), the batch pipeline
and its cache, and — marked integration — the real bundled tiny.en on real and synthetic speech."""

from __future__ import annotations

import json
import re
import subprocess
import wave
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import SHARED_AUDIO, require_tool, speak

from callintent.cli import main
from callintent.config import ConfigError, load_config
from callintent.errors import UserError
from speech.asr import AsrConfig, AsrModelError, SpeechRecognizer, asr_model_id, cut_words
from speech.audio import SAMPLE_RATE, decode_audio
from data.transcribe import ManifestError, read_manifest, transcribe_manifest
from speech.transcript import Word

# Reference transcripts from shared/audio/SOURCES.md.
OSR_SENTENCES = (
    "A gold ring will please most any girl. The long journey home took a year. She saw a cat in the "
    "neighbor's house. A pink shell was found on the sandy beach. Small children came to see him. The grass "
    "and bushes were wet with dew. The blind man counted his old coins. A severe storm tore down the barn. "
    "She called his name many times. When you hear the bell, come quickly."
)
# What is said in the first 30 s of the OSR file: decoding the whole file once gives "she" 29.17 s,
# "called" 29.73 s, "his" 29.99 s, "name" 30.19 s, so the opening ends inside sentence 9 after "his"
# (test_cut_is_exact re-checks this boundary on every run).
OSR_FIRST_30S = OSR_SENTENCES.split(" name many times.")[0]
JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def normalise(text: str) -> str:
    """Lowercase, drop punctuation (keep apostrophes inside words), single spaces."""
    return " ".join(re.sub(r"[^a-z0-9']+", " ", text.lower()).split())


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    return jiwer.wer(normalise(reference), normalise(hypothesis))


def write_tone_wav(path: Path, seconds: float, rate: int = 8000, amplitude: float = 0.3) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    pcm = np.round(amplitude * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


# ---------------------------------------------------------------------------------------- fake Whisper


class FakeWhisper:
    """Stands in for ``faster_whisper.WhisperModel``: one segment per second of audio, each holding
    the word ``w<second>`` from second+0.2 to second+0.7, produced lazily and counted."""

    instances = 0
    calls: list[dict] = []
    script: list[str] | None = None  # words to say instead of w0, w1, … (one per second)
    non_speech: frozenset[int] = frozenset()  # seconds whose segment Whisper marks as not speech
    silent = False  # what the (patched) Silero gate hears: nothing, when true

    def __init__(self, path: str, **kwargs) -> None:
        FakeWhisper.instances += 1
        self.init_kwargs = kwargs
        self.segments_pulled = 0

    def transcribe(self, audio: np.ndarray, **kwargs):
        FakeWhisper.calls.append({"samples": len(audio), **kwargs})

        def segments():
            for second in range(int(np.ceil(len(audio) / SAMPLE_RATE))):
                self.segments_pulled += 1
                text = FakeWhisper.script[second] if FakeWhisper.script else f"w{second}"
                word = SimpleNamespace(word=f" {text}", start=second + 0.2, end=second + 0.7, probability=0.9)
                unsure = second in FakeWhisper.non_speech
                yield SimpleNamespace(start=float(second), end=second + 1.0, words=[word],
                                      no_speech_prob=0.9 if unsure else 0.01, avg_logprob=-1.5 if unsure else -0.2)

        return segments(), SimpleNamespace(language="en")


@pytest.fixture
def fake_whisper(monkeypatch):
    import faster_whisper

    FakeWhisper.instances = 0
    FakeWhisper.calls = []
    FakeWhisper.script = None
    FakeWhisper.non_speech = frozenset()
    FakeWhisper.silent = False
    monkeypatch.setattr(faster_whisper, "WhisperModel", FakeWhisper)
    monkeypatch.setattr("speech.asr._no_speech", lambda audio: FakeWhisper.silent)
    return FakeWhisper


# ---------------------------------------------------------------------------------------- config and loading


def test_asr_config_defaults_and_file_loading():
    config = AsrConfig()
    assert (config.model_path, config.device, config.compute_type, config.cpu_threads, config.beam_size,
            config.vad, config.language) == ("", "cpu", "int8", 0, 1, True, "en")
    loaded = load_config(None, AsrConfig, ["beam_size=5", "vad=false", "model_path=/models/small"])
    assert (loaded.beam_size, loaded.vad, loaded.model_path) == (5, False, "/models/small")
    with pytest.raises(ConfigError, match="beam_size"):
        load_config(None, AsrConfig, ["beam_size=0"])


@pytest.mark.parametrize(
    ("field", "value"),
    [("device", "tpu"), ("compute_type", "int4"), ("cpu_threads", -1), ("beam_size", 0), ("beam_size", True),
     ("vad", "yes"), ("language", ""), ("model_path", None)],
)
def test_asr_config_rejects_bad_values_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        AsrConfig(**{field: value})


def test_bad_model_directories_are_user_errors_naming_the_path(tmp_path):
    with pytest.raises(AsrModelError, match=re.escape(str(tmp_path / "no-such-model"))) as info:
        SpeechRecognizer(AsrConfig(model_path=str(tmp_path / "no-such-model")))
    assert isinstance(info.value, UserError)
    with pytest.raises(AsrModelError, match="missing model.bin, config.json, tokenizer.json"):
        SpeechRecognizer(AsrConfig(model_path=str(tmp_path)))
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "model.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    (garbage / "config.json").write_text("{}")
    (garbage / "tokenizer.json").write_text("{}")
    with pytest.raises(AsrModelError, match=f"{re.escape(str(garbage))}: cannot load"):
        SpeechRecognizer(AsrConfig(model_path=str(garbage)))


def test_model_id_follows_the_weights(tmp_path):
    model = tmp_path / "whisper-small-ct2"
    model.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (model / name).write_text("{}")
    (model / "model.bin").write_bytes(b"weights v1")
    first = asr_model_id(AsrConfig(model_path=str(model)))
    assert re.fullmatch(r"whisper-small-ct2@[0-9a-f]{12}", first)
    (model / "model.bin").write_bytes(b"weights v2, retrained")
    assert asr_model_id(AsrConfig(model_path=str(model))) != first
    assert asr_model_id(AsrConfig()).startswith("tiny.en@")


def test_cut_words_keeps_words_that_start_before_the_cut():
    words = [Word("a", 28.0, 28.5), Word("straddles", 29.9, 30.6), Word("at", 30.0, 30.2), Word("late", 31.0, 31.5)]
    assert [w.text for w in cut_words(words, 30.0)] == ["a", "straddles"]
    assert cut_words([], 30.0) == ()


# ---------------------------------------------------------------------------------------- recognizer (fake model)


def test_recognizer_decodes_only_the_opening_with_the_contract_options(fake_whisper):
    recognizer = SpeechRecognizer(AsrConfig(beam_size=2, vad=False, cpu_threads=2))
    assert fake_whisper.instances == 1
    model = recognizer._model
    assert model.init_kwargs == {"device": "cpu", "compute_type": "int8", "cpu_threads": 2, "num_workers": 1,
                                 "local_files_only": True}

    audio = np.zeros(40 * SAMPLE_RATE, np.float32)
    transcript = recognizer.transcribe(audio, cut_seconds=30.0, offset=12.5)

    call = fake_whisper.calls[-1]
    assert call["samples"] == 30 * SAMPLE_RATE  # the array was sliced before decoding
    assert call == {"samples": 30 * SAMPLE_RATE, "language": "en", "beam_size": 2, "word_timestamps": True,
                    "condition_on_previous_text": False, "vad_filter": False, "without_timestamps": False,
                    "temperature": 0.0,  # one greedy pass: no sampled fallback re-decodes
                    "max_new_tokens": 16 + 8 * 30}  # a hallucination loop stops at 8 tokens per second
    recognizer.transcribe(audio[:2 * SAMPLE_RATE])
    assert fake_whisper.calls[-1]["max_new_tokens"] == 16 + 8 * 2
    assert [w.text for w in transcript.words] == [f"w{i}" for i in range(30)]
    assert transcript.words[0] == Word("w0", 12.7, 13.2, 0.9)  # shifted by the offset
    assert (transcript.audio_seconds, transcript.cut_seconds, transcript.language) == (30.0, 30.0, "en")
    assert recognizer.last_decode_seconds > 0

    short, seconds = recognizer.transcribe_timed(np.zeros(int(2.5 * SAMPLE_RATE), np.float32), cut_seconds=30.0)
    assert short.audio_seconds == 2.5 and [w.text for w in short.words] == ["w0", "w1", "w2"] and seconds > 0


def test_one_decoding_rule_silero_gates_whole_clips_and_whisper_drops_non_speech_segments(fake_whisper):
    recognizer = SpeechRecognizer(AsrConfig(vad=True))
    audio = np.zeros(4 * SAMPLE_RATE, np.float32)
    fake_whisper.non_speech = frozenset({1, 3})
    assert [w.text for w in recognizer.transcribe(audio).words] == ["w0", "w2"]
    assert fake_whisper.calls[-1]["vad_filter"] is False  # the clip is never cut to Silero's stretches
    fake_whisper.silent = True
    calls = len(fake_whisper.calls)
    assert recognizer.transcribe(audio).words == () and len(fake_whisper.calls) == calls  # no speech: no decode
    assert [w.text for w in SpeechRecognizer(AsrConfig(vad=False)).transcribe(audio).words] == ["w0", "w2"]


def test_recognizer_is_lazy_and_validates_input(fake_whisper):
    recognizer = SpeechRecognizer()
    words = recognizer.words(np.zeros(20 * SAMPLE_RATE, np.float32))
    assert next(words).text == "w0"
    assert recognizer._model.segments_pulled == 1  # segments are decoded only as they are consumed

    calls = len(fake_whisper.calls)
    empty = recognizer.transcribe(np.zeros(0, np.float32))
    assert empty.words == () and empty.audio_seconds == 0.0 and len(fake_whisper.calls) == calls
    with pytest.raises(ValueError, match="1-D"):
        recognizer.transcribe(np.zeros((2, 100), np.float32))
    with pytest.raises(ValueError, match="dtype int16"):
        recognizer.transcribe(np.zeros(100, np.int16))
    with pytest.raises(ValueError, match="cut_seconds"):
        recognizer.transcribe(np.zeros(100, np.float32), cut_seconds=0)


# ---------------------------------------------------------------------------------------- batch pipeline (fake model)


@pytest.fixture
def mixed_manifest(tmp_path) -> Path:
    """2 good recordings, 1 corrupt, 1 silent, with label fields."""
    write_tone_wav(tmp_path / "good1.wav", 3.0)
    write_tone_wav(tmp_path / "good2.wav", 42.0)  # longer than the opening
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x01\x00\x00WAVEjunkjunk" + bytes(range(200)))
    write_tone_wav(tmp_path / "silent.wav", 2.0, amplitude=0.0)
    rows = [
        {"call_id": "c1", "audio": "good1.wav", "label": "buying", "signals": ["price_inquiry"], "source": "google_ads"},
        {"call_id": "c2", "audio": "good2.wav", "label": "service", "transcript": "a human transcript"},
        {"call_id": "c3", "audio": "corrupt.wav", "label": "noise"},
        {"call_id": "c4", "audio": "silent.wav", "label": "noise"},
    ]
    manifest = tmp_path / "calls.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_batch_writes_labeled_rows_reports_errors_and_caches(tmp_path, mixed_manifest, fake_whisper, monkeypatch):
    out, cache = tmp_path / "out" / "calls_asr.jsonl", tmp_path / "cache"
    report = transcribe_manifest(mixed_manifest, out, cache_dir=cache)

    assert (report.total, report.ok, report.cached, report.errors) == (4, 2, 0, 2)
    rows = read_jsonl(out)
    assert [r["call_id"] for r in rows] == ["c1", "c2"]
    first, second = rows
    assert first["transcript"] == "w0 w1 w2" and first["label"] == "buying"
    assert first["signals"] == ["price_inquiry"] and first["source"] == "google_ads"
    assert first["words"][0] == {"text": "w0", "start": 0.2, "end": 0.7, "probability": 0.9}
    assert first["audio_seconds"] == 3.0 and first["asr_model"].startswith("tiny.en@")
    assert second["audio_seconds"] == 30.0 and len(second["words"]) == 30  # only the opening
    assert second["reference_transcript"] == "a human transcript"
    errors = read_jsonl(report.errors_out)
    assert report.errors_out == tmp_path / "out" / "calls_asr.errors.jsonl"
    assert [(e["call_id"], e["line"]) for e in errors] == [("c3", 3), ("c4", 4)]
    assert "corrupt.wav: cannot decode audio" in errors[0]["error"] and errors[0]["label"] == "noise"
    assert "silent.wav: silent audio" in errors[1]["error"]
    assert fake_whisper.instances == 1 and len(fake_whisper.calls) == 2

    # Rerun: everything transcribable comes from the cache; the model is never even built.
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded although every recording was cached")

    monkeypatch.setattr("data.transcribe.SpeechRecognizer", no_model)
    again = transcribe_manifest(mixed_manifest, out, cache_dir=cache)
    assert (again.ok, again.cached, again.errors) == (2, 2, 2)
    assert read_jsonl(out) == rows
    assert len(fake_whisper.calls) == 2

    # A different cut is a different opening: cache miss.
    monkeypatch.undo()
    import faster_whisper

    monkeypatch.setattr(faster_whisper, "WhisperModel", FakeWhisper)
    monkeypatch.setattr("speech.asr._no_speech", lambda audio: FakeWhisper.silent)
    shorter = transcribe_manifest(mixed_manifest, tmp_path / "short.jsonl", cache_dir=cache, cut_seconds=10.0)
    assert (shorter.ok, shorter.cached) == (2, 0)
    assert [len(r["words"]) for r in read_jsonl(tmp_path / "short.jsonl")] == [3, 10]


def test_batch_from_csv_and_directory(tmp_path, fake_whisper):
    audio_dir = tmp_path / "recordings"
    (audio_dir / "2024-05-01").mkdir(parents=True)
    write_tone_wav(audio_dir / "2024-05-01" / "a.wav", 1.5)
    write_tone_wav(audio_dir / "b.wav", 2.5)
    (audio_dir / "notes.txt").write_text("not audio")
    report = transcribe_manifest(audio_dir, tmp_path / "dir.jsonl", cache_dir=tmp_path / "cache")
    assert (report.total, report.ok) == (2, 2)
    assert [r["call_id"] for r in read_jsonl(tmp_path / "dir.jsonl")] == ["2024-05-01/a", "b"]

    csv_path = tmp_path / "calls.csv"
    csv_path.write_text("call_id,audio,label,signals,campaign\n"
                        "x1,recordings/b.wav,buying,ad_reference;price_inquiry,spring\n"
                        "x2,recordings/2024-05-01/a.wav,noise,,\n")
    report = transcribe_manifest(csv_path, tmp_path / "csv.jsonl", cache_dir=tmp_path / "cache")
    assert (report.ok, report.cached) == (2, 2)  # same audio bytes as the directory run
    rows = read_jsonl(tmp_path / "csv.jsonl")
    assert rows[0]["signals"] == ["ad_reference", "price_inquiry"] and rows[0]["campaign"] == "spring"
    assert "signals" not in rows[1] and "campaign" not in rows[1]  # empty cells = missing (unlabeled)


def test_bad_manifests_name_file_and_line(tmp_path):
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text('{"audio": "a.wav"}\n{not json\n{"label": "buying"}\n[1, 2]\n')
    with pytest.raises(ManifestError) as info:
        read_manifest(manifest)
    message = str(info.value)
    assert f"{manifest}:2: not valid JSON" in message
    assert f"{manifest}:3: missing 'audio'" in message
    assert f"{manifest}:4: expected a JSON object" in message
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "missing.jsonl")
    with pytest.raises(ManifestError, match="unsupported manifest type '.txt'"):
        (tmp_path / "m.txt").write_text("x")
        read_manifest(tmp_path / "m.txt")
    with pytest.raises(ManifestError, match="no audio files"):
        (tmp_path / "empty").mkdir()
        read_manifest(tmp_path / "empty")
    (tmp_path / "h.csv").write_text("path,label\na.wav,buying\n")
    with pytest.raises(ManifestError, match=r"h.csv:1: CSV header must include an 'audio' column"):
        read_manifest(tmp_path / "h.csv")
    with pytest.raises(ManifestError, match="overwrite the manifest"):
        transcribe_manifest(manifest, manifest)


# ---------------------------------------------------------------------------------------- real tiny.en


@pytest.fixture(scope="module")
def recognizer() -> SpeechRecognizer:
    # Two threads: the CI machine has two cores; more would only contend.
    return SpeechRecognizer(AsrConfig(cpu_threads=2))


@pytest.mark.integration
def test_word_error_rate_on_real_recordings(recognizer):
    osr = recognizer.transcribe(decode_audio(SHARED_AUDIO / "OSR_us_000_0034_8k.wav"), cut_seconds=30.0)
    jfk = recognizer.transcribe(decode_audio(SHARED_AUDIO / "jfk.flac"))  # 44.1 kHz stereo
    osr_wer, jfk_wer = wer(OSR_FIRST_30S, osr.text), wer(JFK, jfk.text)
    # Measured with tiny.en int8 greedy: 0.032 (gold->golden, his->it at the cut) and 0.000.
    assert osr_wer < 0.15, f"OSR WER {osr_wer:.3f}: {osr.text}"
    assert jfk_wer < 0.15, f"JFK WER {jfk_wer:.3f}: {jfk.text}"
    assert jfk.audio_seconds == 11.0 and jfk.words[-1].end <= 11.0


@pytest.mark.integration
def test_cut_is_exact(recognizer):
    audio = decode_audio(SHARED_AUDIO / "OSR_us_000_0034_8k.wav")
    cut = recognizer.transcribe(audio, cut_seconds=30.0)
    full = recognizer.transcribe(audio, cut_seconds=60.0)

    assert cut.audio_seconds == 30.0 and full.audio_seconds == pytest.approx(35.55, abs=0.01)
    assert cut.words and all(w.start < 30.0 for w in cut.words)
    tail = [normalise(w.text) for w in full.words if w.start >= 30.0]
    head = [normalise(w.text) for w in full.words if w.start < 30.0]
    # The boundary the OSR_FIRST_30S reference assumes: sentence 9 is cut around "his"/"name".
    assert head[-2:] in (["called", "his"], ["she", "called"]) and tail[0] in ("his", "name")
    assert {"name", "many", "times", "bell", "quickly"} <= set(tail)
    assert not {"name", "many", "times", "bell", "quickly"} & set(normalise(cut.text).split())
    assert wer(" ".join(head), cut.text) < 0.1  # the cut decode agrees with the full one up to 30 s


@pytest.mark.integration
def test_telephone_mulaw_speech(recognizer, tmp_path):
    text = "Hi there, I need a new water heater installed. Can you tell me the price?"
    ulaw_wav = speak(text, tmp_path / "call.wav", encoding="u-law")  # 8 kHz μ-law in a WAV header
    raw_ul = tmp_path / "call.ul"  # the same call as headerless μ-law, as telephony systems dump it
    subprocess.run([require_tool("sox"), str(ulaw_wav), "-t", "ul", str(raw_ul)], check=True)

    for audio in (decode_audio(ulaw_wav), decode_audio(raw_ul), decode_audio(raw_ul.read_bytes(), encoding="mulaw")):
        heard = normalise(recognizer.transcribe(audio).text)
        assert "water heater" in heard and "price" in heard, heard


@pytest.mark.integration
def test_offset_shifts_word_times_and_decoding_is_faster_than_real_time(recognizer):
    jfk = decode_audio(SHARED_AUDIO / "jfk.flac")
    plain = recognizer.transcribe(jfk)
    shifted = recognizer.transcribe(jfk, offset=90.0)
    assert [w.text for w in shifted.words] == [w.text for w in plain.words]
    assert [w.start for w in shifted.words] == pytest.approx([w.start + 90.0 for w in plain.words], abs=1e-6)

    window = decode_audio(SHARED_AUDIO / "OSR_us_000_0034_8k.wav", max_seconds=30.0)
    _, seconds = recognizer.transcribe_timed(window)
    # Measured ~0.03 on 2 cores (beam 1, int8); live streaming needs it far below 1.
    assert seconds / 30.0 < 0.5, f"real-time factor {seconds / 30.0:.3f}"


@pytest.mark.integration
def test_transcribe_cli_end_to_end(tmp_path, monkeypatch, capsys):
    (tmp_path / "calls").mkdir()
    (tmp_path / "calls" / "jfk.flac").write_bytes((SHARED_AUDIO / "jfk.flac").read_bytes())
    wav = speak("Hello, I saw your ad. How much is a new roof?", tmp_path / "roof.wav", encoding="u-law")
    subprocess.run([require_tool("sox"), str(wav), "-t", "ul", str(tmp_path / "calls" / "roof.ul")], check=True)
    (tmp_path / "calls" / "broken.mp3").write_bytes(b"ID3" + bytes(500))
    write_tone_wav(tmp_path / "calls" / "quiet.wav", 3.0, amplitude=0.001)  # -63 dBFS
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"audio": f"calls/{name}", "label": label}) + "\n" for name, label in
                                [("jfk.flac", "informational"), ("roof.ul", "buying"), ("broken.mp3", "noise"),
                                 ("quiet.wav", "noise")]))
    out = tmp_path / "asr.jsonl"
    args = ["data", "transcribe", str(manifest), "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
            "--threads", "2"]

    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "4 recordings: 2 ok (0 cached, 2 transcribed), 2 errors" in printed
    rows = read_jsonl(out)
    assert [r["label"] for r in rows] == ["informational", "buying"]
    assert wer(JFK, rows[0]["transcript"]) < 0.15
    assert "roof" in normalise(rows[1]["transcript"]) and rows[1]["audio_seconds"] == pytest.approx(3.0, abs=1.5)
    errors = read_jsonl(tmp_path / "asr.errors.jsonl")
    assert ["broken.mp3" in errors[0]["error"], "silent audio" in errors[1]["error"]] == [True, True]

    monkeypatch.setattr("data.transcribe.SpeechRecognizer", lambda *a, **k: pytest.fail("model loaded on rerun"))
    assert main(args) == 0
    assert "2 ok (2 cached, 0 transcribed), 2 errors" in capsys.readouterr().out
    assert read_jsonl(out) == rows

    assert main(["data", "transcribe", str(manifest), "--out", str(out), "--asr-model", str(tmp_path / "nope")]) == 2
    assert "nope: ASR model directory does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- hallucination guards


def _words(text: str) -> tuple[Word, ...]:
    return tuple(Word(t, i * 0.5, i * 0.5 + 0.4) for i, t in enumerate(text.split()))


@pytest.mark.parametrize(("heard", "kept", "dropped"), [
    ("a gold ring, a gold ring, a gold ring, a gold ring.", "a gold ring,", 9),  # a loop: one copy stays
    ("hello? hello? hello? is anybody there", "hello? is anybody there", 2),
    ("no no I saw your ad", "no no I saw your ad", 0),  # said twice is speech, not a loop
    ("thank you . . . ♪ ♪ …", "thank you", 6),  # punctuation and music symbols are not words
    ("how much is it how much is it", "how much is it how much is it", 0),
    ("i want i want i want a quote for a roof", "i want a quote for a roof", 4),
    ("", "", 0),
])
def test_guard_words_cuts_loops_and_non_words(heard: str, kept: str, dropped: int) -> None:
    from speech.asr import guard_words

    words = _words(heard)
    out, removed = guard_words(words)
    assert " ".join(w.text for w in out) == kept
    assert removed == dropped == len(words) - len(out)
    assert all(w in words for w in out) and list(out) == sorted(out, key=lambda w: w.start)  # words kept as heard


def test_recognizer_transcript_carries_the_guard_count(fake_whisper) -> None:
    recognizer = SpeechRecognizer(AsrConfig(vad=False))
    fake_whisper.script = ["yes", "yes", "yes", "yes", "."]
    transcript = recognizer.transcribe(np.zeros(5 * SAMPLE_RATE, np.float32))
    assert [w.text for w in transcript.words] == ["yes"] and transcript.dropped_words == 4
