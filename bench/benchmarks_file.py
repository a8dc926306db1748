"""What bench scripts share: BENCHMARKS.md (every script appends its dated entry to its own ``## …``
section), the machine's CPU name, a dated table entry, and the one word error rate the ASR figures are given in."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path

from evaluation.metrics import word_error_rate  # noqa: F401 (the one WER, re-exported for bench scripts)

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "BENCHMARKS.md"


def append_section(heading: str, entry: str, path: Path = BENCHMARKS) -> None:
    """Append ``entry`` at the end of the ``heading`` section of BENCHMARKS.md (created as needed)."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    start = text.find(heading)
    if start < 0:
        text = text.rstrip("\n") + f"\n\n{heading}\n\n" + entry
    else:
        nxt = text.find("\n## ", start + len(heading))
        end = len(text) if nxt < 0 else nxt + 1
        text = text[:end].rstrip("\n") + "\n\n" + entry + ("\n" + text[end:] if nxt >= 0 else "")
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (the platform's answer elsewhere)."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine() -> str:
    """CPU model and count, e.g. ``Intel(R) Xeon(R) … x2``."""
    return f"{cpu_model()} x{os.cpu_count()}"


def table_entry(title: str, command: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A dated BENCHMARKS.md entry: ``### <today> — title``, the machine and command, one table."""
    table = "\n".join("| " + " | ".join(cells) + " |" for cells in (header, ["---"] * len(header), *rows))
    return (f"### {dt.date.today().isoformat()} — {title}\n\n"
            f"Machine: {machine()}. Command: `{command}`\n\n{table}\n")


def publish(heading: str, entry: str, *, write: bool) -> None:
    """Print a bench entry and, unless ``write`` is false, append it to its BENCHMARKS.md section."""
    print(entry)
    if write:
        append_section(heading, entry)
        print(f"appended to {BENCHMARKS}")
