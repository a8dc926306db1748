"""The checksum manifest of a registry version: sha256 per file, written once at register time.

The file is ``checksums.sha256`` in the format ``sha256sum`` writes and checks
(``<hex digest>  <relative path>``, one line per file, sorted), so an operator can also run
``sha256sum -c checksums.sha256`` inside a version directory. It covers every file of the
artifact except itself and ``evaluation/`` (which evaluation rewrites after registration).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MANIFEST = "checksums.sha256"
#: Folders a manifest does not cover (relative to the version directory).
UNCOVERED = ("evaluation",)

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def covered_files(directory: Path) -> list[str]:
    """Relative POSIX paths of the files a manifest of ``directory`` covers, sorted."""
    out = []
    for path in directory.rglob("*"):
        rel = path.relative_to(directory).as_posix()
        if path.is_file() and rel != MANIFEST and rel.split("/")[0] not in UNCOVERED:
            out.append(rel)
    return sorted(out)


def write_manifest(directory: Path) -> Path:
    """Write ``<directory>/checksums.sha256`` for the files it holds now.

    Returns:
        The manifest path.
    """
    lines = [f"{file_sha256(directory / rel)}  {rel}\n" for rel in covered_files(directory)]
    path = directory / MANIFEST
    path.write_text("".join(lines), encoding="utf-8")
    return path


def parse_manifest(text: str, where: str) -> dict[str, str]:
    """``{relative path: hex digest}`` from manifest text.

    Raises:
        ValueError: a line that is not ``<64 hex>  <path>`` or a path that leaves the directory
            (the message names ``where`` and the line).
    """
    entries: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, rel = line.partition("  ")
        if (not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest)
                or not rel or rel.startswith("/") or ".." in rel.split("/")):
            raise ValueError(f"{where}:{lineno}: not a sha256sum line: {line[:80]!r}")
        entries[rel] = digest
    return entries


def mismatches(directory: Path, entries: dict[str, str]) -> list[str]:
    """Files of ``directory`` that are missing or whose sha256 differs from ``entries`` (sorted)."""
    bad = []
    for rel, digest in sorted(entries.items()):
        path = directory / rel
        if not path.is_file() or file_sha256(path) != digest:
            bad.append(rel)
    return bad
