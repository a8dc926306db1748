"""Batch: a manifest of labeled call recordings -> labeled opening transcripts (JSONL).

Each recording's first 30 s is transcribed by :class:`speech.asr.SpeechRecognizer` and written as a
labeled example (the manifest's label fields kept) plus ``words`` with timings, ``audio_seconds``
and ``asr_model``. ASR is the slow step, so results are cached on disk by the audio's content hash
and everything that changes the words (model weights, cut, VAD, beam, compute type, language): a
rerun after adding recordings or fixing labels only transcribes what is new. A recording that
cannot be decoded, is silent, or yields no words goes to a separate errors file and the batch
continues.

Manifest forms:

* ``.jsonl``: one JSON object per line with ``audio`` (path, relative to the manifest's folder or
  absolute) and any label fields (``call_id``, ``label``, ``signals``, ``source``…); optional
  ``encoding``/``sample_rate`` for raw headerless audio.
* ``.csv``: the same columns; empty cells are treated as missing, ``signals`` may be a JSON list
  or names separated by ``;``, ``,`` or ``|``.
* a directory: every audio file under it (recursively), unlabeled, ``call_id`` = relative path
  without the extension.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callintent.errors import UserError
from data.jsonl import json_objects
from speech.asr import DECODE_VERSION, AsrConfig, SpeechRecognizer, asr_model_id
from speech.audio import AudioError, decode_audio, is_silent, loudest_dbfs
from speech.transcript import OPENING_SECONDS
from speech.transcript import OpeningTranscript, Word

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(".cache/asr")

#: Extensions picked up when the manifest is a directory.
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".webm", ".au", ".aiff",
                              ".aif", ".ul", ".ulaw", ".mulaw"})

#: Bumped when the cached value's meaning changes, so old entries stop matching.
CACHE_VERSION = 1

_MAX_LISTED_PROBLEMS = 10


class ManifestError(UserError):
    """The manifest cannot be read; the message says ``file:line: problem``."""


@dataclass(frozen=True)
class ManifestRow:
    """One recording to transcribe.

    Attributes:
        line: 1-based line in the manifest (0 for a directory listing).
        audio: Resolved audio path.
        record: The manifest row's fields as read (``audio`` as written in the manifest).
        call_id: The row's ``call_id``, or one derived from the audio path.
    """

    line: int
    audio: Path
    record: dict[str, Any]
    call_id: str


@dataclass(frozen=True)
class TranscribeReport:
    """What a batch did.

    Attributes:
        out: The labeled JSONL written (one row per transcribed recording).
        errors_out: The JSONL of rows that failed, each with ``error``.
        total: Manifest rows.
        ok: Rows written to ``out`` (fresh + cached).
        cached: Of ``ok``, rows whose words came from the cache (no ASR run).
        errors: Rows written to ``errors_out``.
        audio_seconds: Seconds of audio transcribed in this run (cache misses only).
        decode_seconds: Wall seconds spent in ASR in this run.
        wall_seconds: Wall seconds of the whole batch.
    """

    out: Path
    errors_out: Path
    total: int
    ok: int
    cached: int
    errors: int
    audio_seconds: float
    decode_seconds: float
    wall_seconds: float

    def summary(self) -> str:
        """One line for people: counts, and the real-time factor when anything was transcribed."""
        line = (f"{self.total} recordings: {self.ok} ok ({self.cached} cached, {self.ok - self.cached} transcribed), "
                f"{self.errors} errors, {self.wall_seconds:.1f} s")
        if self.audio_seconds > 0:
            line += f"; ASR real-time factor {self.decode_seconds / self.audio_seconds:.3f}"
        return line


def transcribe_manifest(
    manifest: str | Path,
    out: str | Path,
    *,
    asr_config: AsrConfig = AsrConfig(),
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    cut_seconds: float = OPENING_SECONDS,
    errors_out: str | Path | None = None,
    recognizer: SpeechRecognizer | None = None,
) -> TranscribeReport:
    """Transcribe the opening of every recording in ``manifest`` into labeled JSONL.

    Args:
        manifest: A ``.jsonl``/``.csv`` manifest or a directory of audio files (module docstring).
        out: Output JSONL; written to a temporary file and renamed at the end.
        asr_config: Which ASR model and decoding options; the model is loaded only when a
            recording is not in the cache.
        cache_dir: Where transcriptions are cached (created if missing).
        cut_seconds: Length of the opening to transcribe.
        errors_out: JSONL for failed rows; default ``<out stem>.errors.jsonl`` beside ``out``.
            Always rewritten, so it reflects this run only.
        recognizer: An already loaded recognizer to reuse (its config then replaces ``asr_config``).

    Returns:
        Counts and timings; also logged as one summary line.

    Raises:
        ManifestError: the manifest is missing, malformed or empty.
        AsrModelError: the ASR model directory is invalid.
        ValueError: ``cut_seconds`` is not positive.
    """
    if not cut_seconds > 0:
        raise ValueError(f"cut_seconds must be > 0, got {cut_seconds!r}")
    started = time.perf_counter()
    manifest, out = Path(manifest), Path(out)
    errors_out = Path(errors_out) if errors_out is not None else out.with_name(f"{_stem(out)}.errors.jsonl")
    if out.resolve() == manifest.resolve():
        raise ManifestError(f"{out}: the output would overwrite the manifest")
    rows = read_manifest(manifest)
    if recognizer is not None:
        asr_config = recognizer.config
    model_id = asr_model_id(asr_config)  # validates the model dir before any work
    cache = TranscriptCache(Path(cache_dir))
    out.parent.mkdir(parents=True, exist_ok=True)
    errors_out.parent.mkdir(parents=True, exist_ok=True)

    from tqdm import tqdm

    ok = cached = errors = 0
    audio_seconds = decode_seconds = 0.0
    tmp_out, tmp_err = out.with_name(out.name + ".tmp"), errors_out.with_name(errors_out.name + ".tmp")
    with tmp_out.open("w", encoding="utf-8") as fout, tmp_err.open("w", encoding="utf-8") as ferr:
        progress = tqdm(rows, desc="transcribe", unit="call", disable=None)
        for row in progress:
            try:
                key = cache_key(_file_sha256(row.audio), model_id, cut_seconds, asr_config)
                transcript = cache.get(key)
                hit = transcript is not None
                if transcript is None:
                    audio = decode_audio(row.audio, encoding=row.record.get("encoding") or None,
                                         sample_rate=_sample_rate(row),
                                         max_seconds=cut_seconds)
                    if is_silent(audio):
                        raise AudioError(f"{row.audio}: silent audio (loudest 50 ms at "
                                         f"{loudest_dbfs(audio):.1f} dBFS, below -50 dBFS)")
                    if recognizer is None:
                        recognizer = SpeechRecognizer(asr_config)
                    transcript, seconds = recognizer.transcribe_timed(audio, cut_seconds=cut_seconds)
                    audio_seconds += transcript.audio_seconds
                    decode_seconds += seconds
                    cache.put(key, transcript)
                if not transcript.words:
                    raise AudioError(f"{row.audio}: no speech recognised in the first {cut_seconds:g} s")
            except AudioError as e:
                errors += 1
                logger.warning("%s:%d: %s", manifest, row.line, e)
                ferr.write(json.dumps({**row.record, "call_id": row.call_id, "line": row.line, "error": str(e)},
                                      ensure_ascii=False) + "\n")
            else:
                ok += 1
                cached += hit
                fout.write(json.dumps(labeled_row(row, transcript, model_id), ensure_ascii=False) + "\n")
            progress.set_postfix(ok=ok, cached=cached, errors=errors, refresh=False)
        progress.close()
    os.replace(tmp_out, out)
    os.replace(tmp_err, errors_out)
    report = TranscribeReport(out=out, errors_out=errors_out, total=len(rows), ok=ok, cached=cached, errors=errors,
                              audio_seconds=round(audio_seconds, 3), decode_seconds=round(decode_seconds, 3),
                              wall_seconds=round(time.perf_counter() - started, 3))
    logger.info("%s -> %s: %s", manifest, out, report.summary())
    return report


def labeled_row(row: ManifestRow, transcript: OpeningTranscript, model_id: str) -> dict[str, Any]:
    """The output example: manifest fields + ASR transcript, words, audio length and model.

    A ``transcript`` already in the manifest (e.g. a human one) is kept as ``reference_transcript``.
    """
    record = dict(row.record)
    out: dict[str, Any] = {"call_id": row.call_id, "transcript": transcript.text}
    reference = record.pop("transcript", None)
    record.pop("call_id", None)
    out.update(record)
    if reference is not None:
        out["reference_transcript"] = reference
    out["words"] = [{"text": w.text, "start": w.start, "end": w.end, "probability": w.probability}
                    for w in transcript.words]
    out["audio_seconds"] = round(transcript.audio_seconds, 3)
    out["asr_model"] = model_id
    return out


def read_manifest(manifest: str | Path) -> list[ManifestRow]:
    """Read a JSONL/CSV manifest or list a directory of audio files.

    Raises:
        ManifestError: all problems found (up to 10 listed), each as ``file:line: problem``.
    """
    manifest = Path(manifest)
    if manifest.is_dir():
        return _list_directory(manifest)
    if not manifest.is_file():
        raise ManifestError(f"{manifest}: manifest not found (give a .jsonl or .csv file, or a directory of audio)")
    suffix = manifest.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        records = json_objects(manifest)
    elif suffix == ".csv":
        records = _read_csv(manifest)
    else:
        raise ManifestError(f"{manifest}: unsupported manifest type {suffix or '(none)'!r}; use .jsonl, .csv "
                            "or a directory of audio files")
    rows, problems = [], []
    for line, record in records:
        if isinstance(record, str):
            problems.append(f"{manifest}:{line}: {record}")
            continue
        audio = record.get("audio")
        if not isinstance(audio, str) or not audio.strip():
            problems.append(f"{manifest}:{line}: missing 'audio' (path of the recording)")
            continue
        path = Path(audio).expanduser()
        path = path if path.is_absolute() else manifest.parent / path
        call_id = record.get("call_id")
        call_id = str(call_id) if call_id not in (None, "") else Path(audio).with_suffix("").as_posix()
        rows.append(ManifestRow(line=line, audio=path, record=record, call_id=call_id))
    if problems:
        more = f"\n… and {len(problems) - _MAX_LISTED_PROBLEMS} more" if len(problems) > _MAX_LISTED_PROBLEMS else ""
        raise ManifestError("\n".join(problems[:_MAX_LISTED_PROBLEMS]) + more)
    if not rows:
        raise ManifestError(f"{manifest}: no rows")
    return rows


def cache_key(audio_sha256: str, model_id: str, cut_seconds: float, config: AsrConfig) -> str:
    """The cache key: everything that changes the words of a recording's opening.

    Beyond the audio, model and cut, the decoding rule (``speech.asr.DECODE_VERSION``) and the
    options that change output (VAD, beam, compute type, language) are part of it; device and thread count are not (same words).
    """
    parts = {"v": CACHE_VERSION, "audio": audio_sha256, "model": model_id, "cut": float(cut_seconds),
             "decode": DECODE_VERSION, "vad": config.vad, "beam": config.beam_size, "compute_type": config.compute_type,
             "language": config.language}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class TranscriptCache:
    """Opening transcripts on disk, one small JSON file per key (``<dir>/<key[:2]>/<key>.json``).

    Writes are atomic (temp file + rename), so an interrupted run or two runs at once never leave
    a half-written entry; an unreadable entry counts as a miss.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> OpeningTranscript | None:
        path = self._path(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return OpeningTranscript(
                words=tuple(Word(text=w["text"], start=w["start"], end=w["end"], probability=w["probability"],
                                 speaker=w.get("speaker")) for w in data["words"]),
                audio_seconds=data["audio_seconds"], cut_seconds=data["cut_seconds"], language=data["language"],
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            logger.warning("%s: ignoring unreadable ASR cache entry (%s)", path, e)
            return None

    def put(self, key: str, transcript: OpeningTranscript) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"words": [{"text": w.text, "start": w.start, "end": w.end, "probability": w.probability,
                           **({"speaker": w.speaker} if w.speaker is not None else {})} for w in transcript.words],
                "audio_seconds": transcript.audio_seconds, "cut_seconds": transcript.cut_seconds,
                "language": transcript.language}
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)


# --------------------------------------------------------------------------------------------------


def _stem(path: Path) -> str:
    return path.name[: -len(path.suffix)] if path.suffix else path.name


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise AudioError(f"{path}: no such audio file") from None
    except OSError as e:
        raise AudioError(f"{path}: cannot read audio file: {e.strerror or e}") from None
    return digest.hexdigest()


def _sample_rate(row: ManifestRow) -> int | None:
    value = row.record.get("sample_rate")
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise AudioError(f"{row.audio}: sample_rate must be an integer, got {value!r}") from None


def _read_csv(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "audio" not in reader.fieldnames:
            yield 1, f"CSV header must include an 'audio' column, got {reader.fieldnames}"
            return
        for record in reader:
            cleaned = {k: v for k, v in record.items() if k is not None and v not in (None, "")}
            if "signals" in cleaned:
                cleaned["signals"] = _csv_list(cleaned["signals"])
            if "spans" in cleaned and cleaned["spans"].lstrip().startswith("["):
                try:
                    cleaned["spans"] = json.loads(cleaned["spans"])
                except json.JSONDecodeError as e:
                    yield reader.line_num, f"spans is not a JSON list: {e.msg}"
                    continue
            yield reader.line_num, cleaned


def _csv_list(cell: str) -> list[str] | str:
    cell = cell.strip()
    if cell.startswith("["):
        try:
            value = json.loads(cell)
        except json.JSONDecodeError:
            return cell  # leave it for the dataset validator to report with its line
        return value
    return [s.strip() for s in re.split(r"[;,|]", cell) if s.strip()]


def _list_directory(directory: Path) -> list[ManifestRow]:
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise ManifestError(f"{directory}: no audio files (extensions {', '.join(sorted(AUDIO_EXTENSIONS))})")
    stems = [p.relative_to(directory).with_suffix("").as_posix() for p in files]
    clashes = {s for s, n in Counter(stems).items() if n > 1}
    rows = []
    for path, stem in zip(files, stems):
        relative = path.relative_to(directory).as_posix()
        # "a.wav" and "a.mp3" would share the id "a"; keep the extension only where they clash.
        call_id = relative if stem in clashes else stem
        rows.append(ManifestRow(line=0, audio=path, record={"audio": relative}, call_id=call_id))
    return rows
