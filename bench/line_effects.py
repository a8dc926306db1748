"""What each effect of the telephone line costs: the same calls heard with one effect taken away at a time.

The "WER by condition" slices of ``bench.asr_gap`` compare different calls (a call at 5 dB SNR is
also a different text in a different voice), so they show directions, not causes. Here every
variant hears the *same* sampled calls in the *same* voices through the *same* drawn line
(``data.channel.draw_channel_plan`` makes every draw whether or not it is used, so switching an
effect off leaves the rest of the line as it was), with one effect removed: noise, packet loss,
clipping, the low-rate codecs, all three impairments, or the whole channel (8 kHz μ-law, as renders
were before the channel model). Each call is transcribed once by the serving ASR (one-shot, cached
in the ASR cache like ``render-asr``) and scored by the intent model on its clean text and on what
the ASR heard. Appends a dated entry under "## Audio-to-text gap" in BENCHMARKS.md.

    nice -n 10 python -m bench.line_effects --registry models/registry --n 60 \\
        --data data/generated/corpus.jsonl --data ../shared/data/clinc_openings.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.asr_gap import HEADING
from bench.benchmarks_file import publish, table_entry
from data.channel import ChannelConfig

_FULL = ChannelConfig()
#: The variants, in table order: key → (name, the line's distribution; None = 8 kHz μ-law, no channel).
VARIANTS: dict[str, tuple[str, ChannelConfig | None]] = {
    "line": ("the line (every effect)", _FULL),
    "no-noise": ("without noise", dataclasses.replace(_FULL, noise_probability=0.0)),
    "no-loss": ("without packet loss", dataclasses.replace(_FULL, loss_probability=0.0)),
    "no-clip": ("without clipping", dataclasses.replace(_FULL, clip_probability=0.0)),
    "mulaw": ("μ-law for every call (no GSM, AMR-NB)", dataclasses.replace(_FULL, codecs=("mulaw",))),
    "codec-only": ("without noise, loss and clipping", dataclasses.replace(
        _FULL, noise_probability=0.0, loss_probability=0.0, clip_probability=0.0)),
    "no-channel": ("no channel (8 kHz μ-law only)", None),
}


@dataclass(frozen=True)
class EffectRow:
    """One variant of the line on one data file's sample."""

    data: str
    voices: str
    variant: str
    calls: int
    wer: float
    accuracy_clean: float
    accuracy_asr: float
    f1_clean: float
    f1_asr: float
    ece_asr: float

    @property
    def drop(self) -> float:
        return self.f1_clean - self.f1_asr


def measure(predictor: object, data: Path, *, n: int, seed: int, voices: Sequence[str], cache_dir: str,
            split: str = "auto", variants: Sequence[str] = tuple(VARIANTS)) -> list[EffectRow]:
    """Every variant of the line on one class-balanced sample of ``data``."""
    from tqdm import tqdm

    from data.render import DEFAULT_VOICES, RenderConfig, TelephoneEar, plan_for
    from data.voices import resolve_voices
    from evaluation.evalset import load_eval_set
    from evaluation.metrics import word_error_rate
    from evaluation.robustness import sampled_calls, score_column

    calls = sampled_calls(load_eval_set([data], split=split), n, seed)
    ear = TelephoneEar(cache_dir=cache_dir)
    spoken_in = resolve_voices(tuple(voices), DEFAULT_VOICES)
    labels = [call.label_id for call in calls]
    texts = [call.text for call in calls]
    clean = score_column("clean", labels, predictor.predict(texts, evidence=False))  # type: ignore[attr-defined]
    rows = []
    for key in variants:
        name, channel = VARIANTS[key]
        render = RenderConfig(seed=seed, cache_dir=cache_dir, voices=spoken_in, channel=channel)
        heard = [ear.hear(call.turns, plan_for(call.call_id, render))[0].text
                 for call in tqdm(calls, desc=name, unit="call", disable=None)]
        asr = score_column("oneshot", labels, predictor.predict(heard, evidence=False))  # type: ignore[attr-defined]
        wer = word_error_rate(texts, heard)
        rows.append(EffectRow(data.name, ", ".join(spoken_in), name, len(calls), wer, clean.accuracy, asr.accuracy,
                              clean.macro_f1, asr.macro_f1, asr.ece))
        print(rows[-1], flush=True)
    return rows


def markdown(rows: Sequence[EffectRow], *, model: str, command: str) -> str:
    """The dated BENCHMARKS.md entry: one row per data file and variant."""
    return table_entry(
        f"{model}: what each effect of the line costs (same calls, one-shot ASR)", command,
        ("data", "voices", "line", "calls", "WER", "accuracy text / ASR", "macro-F1 text", "macro-F1 ASR", "drop",
         "ECE ASR"),
        [(r.data, r.voices, r.variant, str(r.calls), f"{r.wer:.3f}", f"{r.accuracy_clean:.3f} / {r.accuracy_asr:.3f}",
          f"{r.f1_clean:.3f}", f"{r.f1_asr:.3f}", f"**{r.drop:+.3f}**", f"{r.ece_asr:.3f}") for r in rows])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.line_effects", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data", type=Path, action="append", required=True,
                        help="labeled .jsonl/.csv/.parquet (repeatable; each sampled on its own)")
    parser.add_argument("--split", default="auto", help="split to sample (default auto: test when there is one)")
    parser.add_argument("--n", type=int, default=60, help="calls sampled per file (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="sample, voice and channel seed (default %(default)s)")
    parser.add_argument("--voices", nargs="+", default=["natural"],
                        help="render voices: natural (default), espeak, or names (data/voices.py)")
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(VARIANTS),
                        help="lines to hear the calls through (default: all, in this order)")
    parser.add_argument("--asr-cache", default=".cache/asr", help="one-shot ASR cache (default %(default)s)")
    parser.add_argument("--registry", default=None, help="registry root (with --model)")
    parser.add_argument("--model", default="production", help="registry reference (default %(default)s)")
    parser.add_argument("--model-dir", type=Path, default=None, help="an exported model directory instead")
    parser.add_argument("--no-write", action="store_true", help="print only; don't append to BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be at least 1, got {args.n}")

    from models.predictor import IntentPredictor
    from models.registry import Registry

    predictor = IntentPredictor.load(args.model_dir or Registry(args.registry).resolve(args.model))
    rows = [row for path in args.data for row in measure(predictor, path, n=args.n, seed=args.seed,
                                                           voices=args.voices, cache_dir=args.asr_cache,
                                                           split=args.split, variants=args.variants)]
    command = shlex.join(["python", "-m", "bench.line_effects", *(argv if argv is not None else sys.argv[1:])])
    publish(HEADING, markdown(rows, model=predictor.model_id, command=command), write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
