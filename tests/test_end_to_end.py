"""The whole product on real models: built-in corpus → MiniLM fine-tune → ONNX → registry → live call.

This is the path of the README's first command (``callintent bootstrap`` then ``callintent serve``),
shrunk to fit the test budget: a smaller corpus, one short epoch and shorter sequences, but the real
bundled MiniLM encoder, the real export checks (parity, int8 margin), the real faster-whisper
tiny.en and a real ``bentoml serve`` process. A caller speaking (espeak-ng, 8 kHz telephone audio)
about a price and an appointment must get a ``buying`` decision before the audio ends.
"""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import pytest

from tests.conftest import speak
from tests.server_harness import Server, start_server

pytestmark = pytest.mark.integration

#: Training settings that keep this test to a couple of minutes on 2 CPU cores.
E2E_OVERRIDES = (
    "epochs=2",
    "max_length=64",
    "batch_size=16",
    "max_train_examples=1000",
    "learning_rate=1.5e-4",
    "log_every=20",
    "prefix_seconds=[]",  # the default's partial-opening copies would double the rows (and this test's time)
    "mix.weights=[]",     # one small corpus file: no source-aware draw over the default's three files
)

BUYING_CALL = (
    "Hi, I saw your ad on Facebook. How much would it cost to replace my water heater? "
    "Can someone come out tomorrow morning?"
)


@pytest.fixture(scope="module")
def e2e_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def trained_registry(e2e_root: Path) -> Path:
    """A registry whose production model was built by the bootstrap path on a small corpus."""
    from training.bootstrap import ensure_default_model
    from training.export import ExportConfig
    from data.synth import DEFAULT_ASR_NOISE, generate_corpus, write_jsonl

    corpus = e2e_root / "corpus.jsonl"
    write_jsonl(generate_corpus(1600, seed=0, asr_noise=DEFAULT_ASR_NOISE), corpus)
    overrides = (f"train_files=[{corpus}]", f"output_dir={e2e_root / 'run'}", *E2E_OVERRIDES)
    # The int8 gate is the shipped one but for its tolerance: this 2-epoch model on 1,000 rows is
    # validated on ~160 rows, where one row is ~0.6 points of macro-F1, and int8 kernels differ
    # by CPU (0.015 lost on an AVX512-VNNI/AMX Xeon, under 0.01 on AMD EPYC). The gate's own
    # behaviour is tested in test_export.py; the default model passes it at 0.01.
    ref = ensure_default_model(e2e_root / "registry", overrides=overrides,
                               export=ExportConfig(int8_max_f1_drop=0.03))
    assert ref == "intent/v1"
    return e2e_root / "registry"


@pytest.fixture(scope="module")
def e2e_server(e2e_root: Path, trained_registry: Path) -> Server:
    server = start_server("e2e", e2e_root, registry=trained_registry)
    yield server
    server.stop()


def test_bootstrap_builds_once_then_reuses(trained_registry: Path, monkeypatch) -> None:
    from training.bootstrap import ensure_default_model
    from models.registry import Registry
    import training.train

    def must_not_train(*args, **kwargs):
        raise AssertionError("bootstrap retrained although a production model exists")

    monkeypatch.setattr(training.train, "train", must_not_train)
    assert ensure_default_model(trained_registry) == "intent/v1"
    registry = Registry(trained_registry)
    info = registry.show("production")
    assert info.ref == "intent/v1"
    history = registry.history("intent")
    assert any(entry.forced and "bootstrap" in entry.reason for entry in history)


def test_trained_model_learned_the_corpus(trained_registry: Path) -> None:
    """Held-out synthetic calls (a fresh seed, never trained on) are mostly classified right."""
    from models.labels import CLASS_NAMES
    from data.synth import generate_corpus
    from models.predictor import IntentPredictor
    from models.registry import Registry
    from sklearn.metrics import f1_score

    predictor = IntentPredictor.load(Registry(trained_registry).resolve("production"), variant="int8")
    calls = [c.to_json() for c in generate_corpus(300, seed=12345)]
    scores = predictor.predict([c["transcript"] for c in calls], evidence=False)
    macro_f1 = f1_score([c["label"] for c in calls], [s.label for s in scores], labels=list(CLASS_NAMES),
                        average="macro")
    assert macro_f1 >= 0.75, f"macro-F1 {macro_f1:.3f} on held-out synthetic calls"

    # This short run sees only ~80 ad mentions, too few for ad_reference; the default model's
    # per-signal F1 is in its evaluation report. The common signals must be there, with evidence.
    [result] = predictor.predict([BUYING_CALL])
    assert result.label == "buying"
    present = {s.name: s for s in result.present_signals}
    assert "price_inquiry" in present, sorted(present)
    for signal in present.values():
        for ev in signal.evidence:
            assert BUYING_CALL[ev.start:ev.end] == ev.text


def test_live_buying_call_is_decided_before_the_audio_ends(e2e_server: Server, tmp_path: Path) -> None:
    from serving.client import CallIntentClient

    audio = speak(BUYING_CALL, tmp_path / "buying.wav", pad_seconds=1.0)
    with wave.open(str(audio)) as w:
        audio_seconds = w.getnframes() / w.getframerate()

    with CallIntentClient(e2e_server.url, timeout=120) as client:
        events = list(client.stream(audio, realtime=True, metadata={"source": "facebook"}))

    types = [e["type"] for e in events]
    assert types[0] == "started" and types[-1] == "final", types
    assert types.count("decision") == 1, types
    decision_event = events[types.index("decision")]
    decision = decision_event["decision"]
    assert decision["label"] == "buying", decision
    assert decision["route"] == "priority_sales", decision
    assert decision["early"] is True, decision
    assert decision["audio_seconds"] < audio_seconds - 0.5, (decision["audio_seconds"], audio_seconds)
    partials = [e for e in events if e["type"] == "partial"]
    assert partials and all(e["latency_ms"] >= 0 for e in partials)
    final = events[-1]
    assert final["label"] == "buying"
    heard = final["transcript"]["text"].lower()
    assert "how much" in heard and "tomorrow" in heard, heard


def test_stream_cli_prints_the_decision(e2e_server: Server, tmp_path: Path) -> None:
    audio = speak(BUYING_CALL, tmp_path / "cli.wav", encoding="u-law")
    done = subprocess.run(
        [sys.executable, "-m", "callintent", "stream", str(audio), "--url", e2e_server.url.replace("http", "ws")],
        capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "decision: priority_sales" in done.stdout.lower(), done.stdout
