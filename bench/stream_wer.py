"""Streaming against offline: word error rate, decodes and ASR CPU of live calls, and time to decision.

Each clip (the real recordings with reference transcripts, the same through a telephone line,
and optionally re-rendered labeled calls: see :mod:`bench.asr_frontier`) is transcribed twice
by the same Whisper weights:

* **offline**: one standard decode of the whole clip (``SpeechRecognizer.transcribe``, 30 s
  encoder window), what ``callintent data transcribe`` does;
* **streamed**: played through :class:`serving.live_call.LiveCall` in 20 ms frames with the
  service's live settings (``ServeConfig``: stream config, live ASR config at one thread,
  decodes through the :class:`serving.asr_batcher.BatchingTranscriber`), on a simulated clock so
  the stream never lags and the result does not depend on the machine's load. The ``final``
  event's words are the streamed transcript.

Besides the two WERs it reports, per audio set, the decodes per call, the steps the VAD gate
skipped, and the **CPU seconds per second of streamed audio** (process CPU time while
streaming, one ASR thread: ASR, scoring and the rest): the steadiest capacity figure on a shared
machine (2 cores / that figure bounds the real-time calls a 2-core server can hold). The registry's production
intent model scores the stream and the serving policy decides, as in the service: the mean
**time to decision** is the audio seconds heard when the ``decision`` event came.

Appends a dated entry under "## Streaming vs offline ASR" in BENCHMARKS.md.

    python -m bench.stream_wer --librivox /tmp/ps/librivox --registry models/registry
    python -m bench.stream_wer --checkout ../before --no-write      # another checkout's LiveCall
    python -m bench.stream_wer --set decode_interval_seconds=1.5    # a stream setting changed
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HEADING = "## Streaming vs offline ASR"
#: Audio per insert: Twilio's media frames and the bench clients' frames.
FRAME_SECONDS = 0.02


@dataclass(frozen=True)
class StreamRow:
    """One audio set, offline vs streamed."""

    set: str
    clips: int
    audio_seconds: float
    offline_wer: float
    stream_wer: float
    decodes: float
    vad_skips: float
    cpu_per_audio_second: float
    decision_seconds: float | None

    @property
    def ratio(self) -> float:
        return self.stream_wer / self.offline_wer if self.offline_wer else float("inf")


@dataclass(frozen=True)
class Streamed:
    """What one streamed clip gave."""

    text: str
    decodes: int
    vad_skips: int
    cpu_seconds: float
    decision_seconds: float | None


class _Clock:
    """The stream's clock stands at the end of the audio fed so far (no lag, no load dependence)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def stream_clip(audio: Any, *, asr: Any, scorer: Any, policy: Any, stream: Any) -> Streamed:
    """Play ``audio`` through a ``LiveCall`` frame by frame; return its final transcript and counters."""
    from serving.live_call import LiveCall
    from speech.audio import SAMPLE_RATE

    clock = _Clock()
    call = LiveCall("bench", {"source": "bench"}, asr=asr, scorer=scorer, policy=policy, config=stream, clock=clock)
    call.start()
    frame = round(FRAME_SECONDS * SAMPLE_RATE)
    events = []
    started = time.process_time()
    for i in range(0, len(audio), frame):
        chunk = audio[i:i + frame]
        clock.now = (i + chunk.size) / SAMPLE_RATE
        call.insert(chunk, arrived_at=clock.now)
        if call.ready():
            events += call.step()
    events += call.finish()
    cpu = time.process_time() - started
    final = events[-1]
    decided = [e for e in events if e.type == "decision"]
    return Streamed(text=" ".join(w.text for w in final.words), decodes=final.totals.decodes,
                    vad_skips=final.totals.vad_skips, cpu_seconds=cpu,
                    decision_seconds=decided[0].audio_seconds if decided else None)


def measure(clips: Sequence[Any], *, registry: str | None, overrides: Sequence[str],
            asr_overrides: Sequence[str] = ()) -> list[StreamRow]:
    """Offline and streamed WER, decodes, CPU and time to decision per audio set."""
    import dataclasses

    from bench.benchmarks_file import word_error_rate
    from models.predictor import IntentPredictor
    from models.registry import Registry
    from serving.asr_batcher import BatchingTranscriber
    from serving.config import ServeConfig
    from serving.live_call import PredictorScorer
    from serving.policy import DecisionPolicy
    from speech.asr import AsrConfig, SpeechRecognizer

    serve = ServeConfig()
    stream = dataclasses.replace(serve.stream, redact_pii=False, **dict(_parse(o) for o in overrides))
    offline = SpeechRecognizer(AsrConfig(model_path=serve.asr.model_path, cpu_threads=1))
    live = SpeechRecognizer(dataclasses.replace(serve.asr, cpu_threads=1, **dict(_parse(o) for o in asr_overrides)))
    batcher = BatchingTranscriber(live, max_batch=serve.live_batch_size, workers=1)
    # As the service loads it (an older checkout's config may not have every setting).
    spinning = {"spinning": serve.model_spinning} if hasattr(serve, "model_spinning") else {}
    predictor = IntentPredictor.load(Registry(registry).resolve(serve.model), variant=serve.variant,
                                     threads=serve.model_threads, **spinning)
    scorer = PredictorScorer(predictor)
    policy = DecisionPolicy.from_yaml(None, model_abstain_margin=predictor.meta.abstain_margin)
    live.transcribe_many([clips[0].audio[:16000 * 5]])  # warm-up: the first decodes allocate
    offline.transcribe(clips[0].audio[:16000 * 5])
    rows = []
    try:
        for s in dict.fromkeys(c.set for c in clips):
            members = [c for c in clips if c.set == s]
            offline_texts = [offline.transcribe(c.audio).text for c in members]
            streamed = [stream_clip(c.audio[:round(stream.window_seconds * 16000)], asr=batcher, scorer=scorer,
                                    policy=policy, stream=stream) for c in members]
            for c, o, st in zip(members, offline_texts, streamed):
                print(f"{s} / {c.name}: {st.decodes} decodes, {st.vad_skips} VAD skips, {st.cpu_seconds:.2f} CPU s\n"
                      f"  offline:  {o}\n  streamed: {st.text}", flush=True)
            audio = sum(min(len(c.audio) / 16000, stream.window_seconds) for c in members)
            decisions = [st.decision_seconds for st in streamed if st.decision_seconds is not None]
            rows.append(StreamRow(
                set=s, clips=len(members), audio_seconds=audio,
                offline_wer=word_error_rate([c.reference for c in members], [t or "(none)" for t in offline_texts]),
                stream_wer=word_error_rate([c.reference for c in members], [st.text or "(none)" for st in streamed]),
                decodes=sum(st.decodes for st in streamed) / len(members),
                vad_skips=sum(st.vad_skips for st in streamed) / len(members),
                cpu_per_audio_second=sum(st.cpu_seconds for st in streamed) / audio,
                decision_seconds=sum(decisions) / len(decisions) if decisions else None))
    finally:
        batcher.close()
    return rows


def _parse(item: str) -> tuple[str, Any]:
    import yaml

    key, sep, value = item.partition("=")
    if not sep:
        raise SystemExit(f"--set and --asr take KEY=VALUE, got {item!r}")
    return key.strip(), yaml.safe_load(value)


def markdown(rows: Sequence[StreamRow], *, command: str, label: str) -> str:
    from bench.benchmarks_file import machine

    def fmt(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = "\n".join(
        f"| {r.set} | {r.clips} | {r.audio_seconds:.0f} | {r.offline_wer:.3f} | {r.stream_wer:.3f} | {r.ratio:.2f} | "
        f"{r.decodes:.1f} | {r.vad_skips:.1f} | {r.cpu_per_audio_second:.3f} | {fmt(r.decision_seconds, 1)} |"
        for r in rows)
    return (f"### {dt.date.today().isoformat()} — {label}\n\n"
            f"Machine: {machine()}. Command: `{command}`\n\n"
            "| audio | clips | seconds | offline WER | streamed WER | ratio | decodes / call | VAD skips / call | "
            "CPU s / audio s | decision at audio s |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n"
            f"{lines}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stream_wer", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--librivox", type=Path, default=None, help="pocketsphinx-testdata's librivox folder")
    parser.add_argument("--rendered", type=Path, default=None, help="a render-asr output (labeled calls to re-render)")
    parser.add_argument("--corpus", type=Path, default=None, help="the corpus the rendered calls came from (turns)")
    parser.add_argument("--renders", type=Path, default=None,
                        help="keep the rendered calls' audio here and reuse it (compare runs on the same audio)")
    parser.add_argument("--calls", type=int, default=8, help="rendered calls to use (default %(default)s)")
    parser.add_argument("--registry", default=None,
                        help="registry with the intent model (default $CALLINTENT_REGISTRY or models/registry)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="stream setting override, e.g. decode_interval_seconds=1.5 (repeatable)")
    parser.add_argument("--asr", action="append", default=[], metavar="KEY=VALUE",
                        help="live ASR setting override, e.g. encoder_min_seconds=6 (repeatable)")
    parser.add_argument("--checkout", type=Path, default=None, metavar="DIR",
                        help="stream with another checkout's serving and speech code (to compare)")
    parser.add_argument("--label", default="the default live settings", help="entry title")
    parser.add_argument("--no-write", action="store_true", help="print only; don't append to BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.checkout is not None:
        # Before anything imports serving or speech: their modules then come from the other checkout.
        sys.path.insert(0, str(args.checkout.resolve()))
    from bench.asr_frontier import phone_line, recordings, rendered_calls

    clips = recordings(args.librivox)
    clips += phone_line(clips)
    with tempfile.TemporaryDirectory() as work:
        if args.rendered is not None:
            renders = args.renders or Path(work)
            renders.mkdir(parents=True, exist_ok=True)
            clips += rendered_calls(args.rendered, args.corpus, args.calls, renders)
        rows = measure(clips, registry=args.registry, overrides=args.set, asr_overrides=args.asr)
    if args.checkout is not None:
        import serving.live_call

        assert Path(serving.live_call.__file__).resolve().is_relative_to(args.checkout.resolve())
    command = shlex.join(["python", "-m", "bench.stream_wer", *(argv if argv is not None else sys.argv[1:])])
    from bench.benchmarks_file import publish

    publish(HEADING, markdown(rows, command=command, label=args.label), write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
