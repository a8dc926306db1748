"""``callintent data transcribe``: recordings -> labeled opening transcripts (JSONL), cached."""

from __future__ import annotations

import argparse
import logging

from callintent.errors import UserError

EPILOG = """\
examples:
  callintent data transcribe calls.jsonl --out data/generated/calls_asr.jsonl
  callintent data transcribe recordings/ --out unlabeled.jsonl --asr-model models/whisper-small-ct2 --beam-size 5

A manifest row is {"audio": "rel/path.wav", "label": "buying", ...}; audio paths are relative to
the manifest. Rows that fail (unreadable, silent, no speech) go to OUT_STEM.errors.jsonl."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``transcribe`` subcommand to ``callintent data``."""
    p = subparsers.add_parser(
        "transcribe", help="transcribe the first 30 s of labeled recordings into labeled JSONL",
        description=__doc__.split(":", 1)[1].strip(), epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("manifest", metavar="MANIFEST_OR_DIR", help=".jsonl/.csv manifest or a directory of audio files")
    p.add_argument("--out", required=True, help="labeled JSONL to write")
    p.add_argument("--errors-out", default=None, help="JSONL of failed rows (default: OUT_STEM.errors.jsonl)")
    p.add_argument("--asr-model", default="", metavar="DIR",
                   help="faster-whisper (CTranslate2) model directory (default: bundled tiny.en)")
    p.add_argument("--cache-dir", default=".cache/asr", help="transcription cache (default: %(default)s)")
    p.add_argument("--cut", type=float, default=30.0, metavar="SECONDS",
                   help="length of the opening to transcribe (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: %(default)s)")
    p.add_argument("--compute-type", default="int8", help="CTranslate2 compute type (default: %(default)s)")
    p.add_argument("--beam-size", type=int, default=1, help="beam width, 1 = greedy (default: %(default)s)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for ASR, 0 = library default")
    p.add_argument("--no-vad", action="store_true", help="do not skip non-speech with Silero VAD")
    p.set_defaults(data_run=run)


def run(args: argparse.Namespace) -> int:
    """Run the batch; prints a summary. Exit 0 if any row was transcribed (or none given), else 1."""
    from speech.asr import AsrConfig
    from data.transcribe import transcribe_manifest

    if not getattr(args, "verbose", False):
        # faster-whisper logs every call at INFO ("Processing audio with duration …"), which
        # drowns the progress bar in a batch.
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    try:
        config = AsrConfig(model_path=args.asr_model, device=args.device, compute_type=args.compute_type,
                           cpu_threads=args.threads, beam_size=args.beam_size, vad=not args.no_vad)
        if not args.cut > 0:
            raise ValueError(f"--cut must be > 0, got {args.cut}")
    except ValueError as e:
        raise UserError(str(e)) from None
    report = transcribe_manifest(args.manifest, args.out, asr_config=config, cache_dir=args.cache_dir,
                                 cut_seconds=args.cut, errors_out=args.errors_out)
    print(f"wrote {report.ok} rows to {report.out}")
    print(report.summary())
    if report.errors:
        print(f"{report.errors} failed rows (with reasons) in {report.errors_out}")
    return 0 if report.ok or not report.total else 1
