"""How much each render voice makes tiny.en mishear: WER per voice on real openings through a phone line.

Renders overstate ASR errors when the voice is espeak-ng's robot (tiny.en WER ~0.58 on espeak renders
of the corpus vs ~0.06 on real recordings). This bench speaks the same seeded sample of real
openings (``../shared/data``: SGD validation and CLINC test rows) in every voice of
:mod:`data.voices` that is installed — espeak-ng (its render voices, cycled over the sample) and
each natural voice — puts each clip through the same telephone channel (drawn per row, so every
voice meets the same line) and transcribes it with the serving ASR. It also times each synthesiser
alone (real-time factor: synthesis seconds per second of speech, one thread, in wall time and in
CPU time — the CPU figure holds on a shared machine) and gives the WER of the clean synthesised clip
too (the voice alone, before the line). ``--rtf-only`` times the synthesisers without the ASR. Appends a dated entry
under "## Render voices" in BENCHMARKS.md.

``--people LIBRIVOX`` calibrates the voices against people instead: every voice speaks the
transcripts of the real recordings (``../shared/audio`` and the LibriVox clips of Debian's
``pocketsphinx-testdata``), and the person's recording and each voice's clip go through the same
``--lines`` telephone lines drawn per recording. A voice whose WER through those lines is far above
the person's makes renders overstate what the line costs real callers.

    nice -n 10 python -m bench.voices [--n 60] [--seed 0] [--voices espeak natural] [--rtf-only] [--no-write]
    nice -n 10 python -m bench.voices --people /usr/share/pocketsphinx/test/data/librivox --lines 6
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.benchmarks_file import REPO, publish, table_entry, word_error_rate

HEADING = "## Render voices"
REAL_DIR = REPO.parent / "shared" / "data"
#: Held-out splits only (the tests read SGD's train rows).
SOURCES = (("sgd_openings.jsonl", "validation"), ("clinc_openings.jsonl", "test"))


@dataclass(frozen=True)
class VoiceResult:
    """One voice over the sample."""

    voice: str
    sex: str
    accent: str
    n: int
    wer_clean: float | None
    wer: float | None
    rtf: float
    rtf_cpu: float


def sample_rows(real_dir: Path, n: int, seed: int) -> list[dict]:
    """A seeded sample of ``n`` held-out real openings, half from each source."""
    rng = random.Random(seed)
    rows: list[dict] = []
    for k, (name, split) in enumerate(SOURCES):
        pool = [json.loads(line) for line in (real_dir / name).read_text(encoding="utf-8").splitlines() if line.strip()]
        pool = [r for r in pool if r.get("split") == split and r.get("transcript", "").strip()]
        take = n // len(SOURCES) + (1 if k < n % len(SOURCES) else 0)
        rows.extend(rng.sample(pool, min(take, len(pool))))
    return rows


def measure(name: str, rows: Sequence[dict], recognizer: object | None, seed: int, work: Path) -> VoiceResult:
    """WER (clean clip, through the phone line) and the synthesiser's real-time factors for one voice group.

    ``name`` is a voice, or ``espeak`` for espeak-ng's render voices cycled over the rows; without a
    ``recognizer`` only the synthesis is timed.
    """
    from data.channel import ChannelConfig, draw_channel_plan
    from data.render import RenderPlan, Turn, Voice, render_call_audio
    from speech.audio import decode_audio

    names = voice_names(name, len(rows))
    rtf, rtf_cpu = synthesis_cost(names, rows, work)
    if recognizer is None:
        return _result(name, names, len(rows), None, None, rtf, rtf_cpu)
    clean = [recognizer.transcribe_timed(decode_audio(work / f"synth{i}.wav"))[0].text  # type: ignore[attr-defined]
             for i in range(len(rows))]
    hypotheses = []
    for i, (row, voice) in enumerate(zip(rows, names, strict=True)):
        one = Voice(voice, 175, 50)
        plan = RenderPlan(agent=one, caller=one, channel=draw_channel_plan(row["call_id"], seed, ChannelConfig()))
        line = render_call_audio((Turn(row["transcript"]),), work / f"line{i}.wav", plan)
        heard, _ = recognizer.transcribe_timed(decode_audio(line))  # type: ignore[attr-defined]
        hypotheses.append(heard.text)
    references = [r["transcript"] for r in rows]
    return _result(name, names, len(rows), word_error_rate(references, clean), word_error_rate(references, hypotheses),
                   rtf, rtf_cpu)


@dataclass(frozen=True)
class PeopleResult:
    """One voice (or the people themselves) on the recordings' words, clean and through the lines."""

    voice: str
    clips: int
    wer_clean: float
    wer_line: float
    person_line: float

    @property
    def ratio(self) -> float:
        """WER through the lines against the person's on the same words and lines."""
        return self.wer_line / max(self.person_line, 1e-9)


def against_people(names: Sequence[str], librivox: Path | None, lines: int, seed: int,
                   recognizer: object, work: Path) -> list[PeopleResult]:
    """Each voice against the people of the real recordings: same words, same drawn lines."""
    from bench.asr_frontier import recordings, through_line
    from data.voices import synthesize
    from speech.audio import decode_audio

    def heard(audio) -> str:  # noqa: ANN001
        return recognizer.transcribe_timed(audio)[0].text  # type: ignore[attr-defined]

    def on_line(audio, name: str, k: int):  # noqa: ANN001, ANN202
        return through_line(audio, name, seed + k)

    people = recordings(librivox)
    refs = [c.reference for c in people]
    line_refs = [c.reference for c in people for _ in range(lines)]
    person_line = word_error_rate(line_refs, [heard(on_line(c.audio, c.name, k)) for c in people for k in range(lines)])
    out = [PeopleResult("person (the recordings)", len(people), word_error_rate(refs, [heard(c.audio) for c in people]),
                        person_line, person_line)]
    for voice in names:
        spoken = [decode_audio(synthesize(voice, c.reference, work / f"{c.name}.wav"), max_seconds=30.0) for c in people]
        clean = word_error_rate(refs, [heard(a) for a in spoken])
        line = word_error_rate(line_refs, [heard(on_line(a, c.name, k)) for a, c in zip(spoken, people, strict=True)
                                           for k in range(lines)])
        out.append(PeopleResult(voice, len(people), clean, line, person_line))
        print(out[-1], flush=True)
    return out


def people_markdown(results: Sequence[PeopleResult], *, command: str, lines: int) -> str:
    return table_entry(
        "a person vs each voice: the same words through the same lines", command,
        ("speaker", "clips × lines", "WER clean", "WER on the lines", "× the person's"),
        [(r.voice, f"{r.clips} × {lines}", f"{r.wer_clean:.3f}", f"**{r.wer_line:.3f}**", f"{r.ratio:.2f}")
         for r in results])


def voice_names(name: str, n: int) -> list[str]:
    """The voice of each row: ``name``, or espeak-ng's render voices cycled for ``espeak``."""
    from data.render import DEFAULT_VOICES

    return [DEFAULT_VOICES[i % len(DEFAULT_VOICES)] if name == "espeak" else name for i in range(n)]


def synthesis_cost(names: Sequence[str], rows: Sequence[dict], work: Path) -> tuple[float, float]:
    """Synthesise every row into ``work/synth<i>.wav``; real-time factors (wall, CPU) over all of them.

    CPU time counts this process and its finished children (Flite, Festival, espeak-ng and sox run
    as subprocesses), so it holds on a shared machine where wall time does not.
    """
    import os

    from data.voices import synthesize

    synthesize(names[0], "Hello.", work / "warm.wav")  # loads a Piper model once, outside the timing
    wall = cpu = speech_seconds = 0.0
    for i, (row, voice) in enumerate(zip(rows, names, strict=True)):
        wav = work / f"synth{i}.wav"
        before, started = os.times(), time.perf_counter()
        synthesize(voice, row["transcript"], wav)
        wall += time.perf_counter() - started
        after = os.times()
        cpu += sum(after[:4]) - sum(before[:4])  # user, system, children's user and system
        speech_seconds += (wav.stat().st_size - 44) / 2 / 22050  # 16-bit mono at SYNTH_RATE
    return wall / max(speech_seconds, 1e-9), cpu / max(speech_seconds, 1e-9)


def _result(name: str, names: Sequence[str], n: int, wer_clean: float | None, wer: float | None, rtf: float,
            rtf_cpu: float) -> VoiceResult:
    from data.voices import describe

    about = describe(name) if name != "espeak" else None
    return VoiceResult(voice=f"espeak-ng ({len(set(names))} render voices)" if about is None else name,
                       sex="mixed" if about is None else about.sex, accent="mixed" if about is None else about.accent,
                       n=n, wer_clean=wer_clean, wer=wer, rtf=rtf, rtf_cpu=rtf_cpu)


def markdown(results: Sequence[VoiceResult], *, command: str, n: int) -> str:
    def f(x: float | None, bold: bool = False) -> str:
        return "—" if x is None else f"**{x:.3f}**" if bold else f"{x:.3f}"

    what = "synthesis only" if all(r.wer is None for r in results) else "tiny.en, phone channel"
    return table_entry(
        f"{what}, {n} real openings", command,
        ("voice", "sex", "accent", "clips", "WER clean", "WER phone", "synthesis RTF (wall)", "synthesis RTF (CPU)"),
        [(r.voice, r.sex, r.accent, str(r.n), f(r.wer_clean), f(r.wer, True), f"{r.rtf:.3f}", f"{r.rtf_cpu:.3f}")
         for r in results])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.voices", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, default=60, help="real openings in the sample (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="sample and channel seed (default %(default)s)")
    parser.add_argument("--voices", nargs="+", default=["espeak", "natural"],
                        help="espeak, natural, or voice names (default: %(default)s)")
    parser.add_argument("--real-dir", type=Path, default=REAL_DIR, help="the real-text sets (default: %(default)s)")
    parser.add_argument("--rtf-only", action="store_true", help="time the synthesisers only (no ASR, no WER)")
    parser.add_argument("--people", type=Path, default=None, metavar="LIBRIVOX",
                        help="calibrate against the real recordings instead (pocketsphinx-testdata's librivox directory)")
    parser.add_argument("--lines", type=int, default=6, help="telephone lines drawn per recording (default %(default)s)")
    parser.add_argument("--no-write", action="store_true", help="print only; don't append to BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.lines < 1:
        parser.error(f"--lines must be at least 1, got {args.lines}")

    from data.voices import available
    from speech.asr import AsrConfig, SpeechRecognizer

    groups: list[str] = []
    for item in args.voices:
        groups.extend(available() if item == "natural" else [item])
    command = shlex.join(["python", "-m", "bench.voices", *(argv if argv is not None else sys.argv[1:])])
    if args.people is not None:
        recognizer = SpeechRecognizer(AsrConfig(cpu_threads=1))
        names = [v for v in dict.fromkeys(groups) if v != "espeak"] + (["en-us"] if "espeak" in groups else [])
        with tempfile.TemporaryDirectory(prefix="bench-voices-") as tmp:
            people = against_people(names, args.people, args.lines, args.seed, recognizer, Path(tmp))
        publish(HEADING, people_markdown(people, command=command, lines=args.lines), write=not args.no_write)
        return 0
    rows = sample_rows(args.real_dir, args.n, args.seed)
    recognizer = None if args.rtf_only else SpeechRecognizer(AsrConfig(cpu_threads=1))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-voices-") as tmp:
        for name in dict.fromkeys(groups):
            results.append(measure(name, rows, recognizer, args.seed, Path(tmp)))
            print(results[-1], flush=True)
    publish(HEADING, markdown(results, command=command, n=len(rows)), write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
