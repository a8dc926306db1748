"""Play an audio file into a running server as a live call and watch the decision arrive.

``callintent stream call.wav --realtime`` sends the file as 20 ms frames (16 kHz PCM16, 8 kHz
μ-law with ``--encoding mulaw``, or Twilio Media Streams messages with ``--twilio``), prints the
transcript on one updating line as partials arrive, the routing decision as soon as it is made,
and a summary when the call ends. ``--json`` prints every event as one JSON line instead.
``--speakers caller,agent`` sends a stereo recording as a two-channel call (one speaker per
channel, in that order).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Any, TextIO

ENV_API_KEY = "CALLINTENT_API_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", metavar="FILE", help="audio file (wav, flac, mp3, ogg, …)")
    parser.add_argument("--url", default="ws://127.0.0.1:3000",
                        help="server URL, ws:// or http:// (default %(default)s)")
    parser.add_argument("--realtime", action="store_true", help="send audio at real-time speed, like a phone call")
    parser.add_argument("--twilio", action="store_true", help="speak Twilio Media Streams to /v1/twilio")
    parser.add_argument("--api-key", default=None, help=f"API key (default ${ENV_API_KEY})")
    parser.add_argument("--frame-ms", type=int, default=20, help="audio per message (default %(default)s)")
    parser.add_argument("--encoding", choices=("pcm16", "mulaw"), default="pcm16",
                        help="generic protocol: 16 kHz PCM16 or 8 kHz μ-law (default %(default)s)")
    parser.add_argument("--speakers", default=None, metavar="CALLER,AGENT",
                        help="a stereo recording as a two-channel call: the speaker of each channel in order, "
                             "caller,agent or agent,caller")
    parser.add_argument("--call-id", default=None, help="call id (default: generated)")
    parser.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                        help="call metadata, e.g. --meta source=google_ads (repeatable)")
    parser.add_argument("--json", action="store_true", help="print every event as a JSON line")


def run(args: argparse.Namespace) -> int:
    from callintent.errors import UserError
    from serving.client import CallIntentClient

    metadata = {}
    for item in args.meta:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--meta {item!r}: expected KEY=VALUE")
        metadata[key] = value
    url = args.url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
    api_key = args.api_key or os.environ.get(ENV_API_KEY) or None
    view = _EventPrinter(sys.stdout, as_json=args.json)
    with CallIntentClient(url, api_key=api_key) as client:
        try:
            for event in client.stream(args.audio, realtime=args.realtime, twilio=args.twilio,
                                       frame_ms=args.frame_ms, encoding=args.encoding, call_id=args.call_id,
                                       metadata=metadata,
                                       speakers=args.speakers.split(",") if args.speakers else None):
                view.show(event)
        finally:
            view.end_line()
    return 0


class _EventPrinter:
    """Partials on one rewritten line; decision, errors and the summary on their own lines."""

    def __init__(self, out: TextIO, *, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json
        self.width = max(40, shutil.get_terminal_size((100, 20)).columns - 1)
        self.open_line = False
        self.tty = out.isatty()

    def show(self, event: dict[str, Any]) -> None:
        if self.as_json:
            print(json.dumps(event), file=self.out, flush=True)
            return
        kind = event.get("type")
        if kind == "started":
            self._line(f"call {event.get('call_id')} started (model {event.get('model')})")
        elif kind == "partial":
            text = event.get("transcript", {}).get("text", "")
            status = f"[{event.get('audio_seconds', 0):5.1f}s {event.get('label', '?'):>13} " \
                     f"buying {event.get('buying_intent', 0):.2f}] "
            self._partial(status + text)
        elif kind == "decision":
            d = event.get("decision", {})
            when = "early, " if d.get("early") else ""
            self._line(f">>> DECISION: {str(d.get('route', '?')).upper()} ({when}at {event.get('audio_seconds', 0):.1f} s"
                       f" of audio; {d.get('label')} {d.get('confidence', 0):.2f}, buying_intent "
                       f"{d.get('buying_intent', 0):.2f})")
            for reason in d.get("reasons", []):
                self._line(f"    - {reason}")
        elif kind == "final":
            totals = event.get("totals", {})
            self._line(f"final transcript: {event.get('transcript', {}).get('text', '')}")
            self._line(f"call ended: {totals.get('audio_seconds', 0):.1f} s of audio, {totals.get('decodes', 0)} "
                       f"decodes, update latency mean {_fmt(totals.get('latency_ms_mean'))} ms / p95 "
                       f"{_fmt(totals.get('latency_ms_p95'))} ms")
        elif kind == "error":
            err = event.get("error", {})
            self._line(f"error {err.get('code')}: {err.get('message')}")

    def end_line(self) -> None:
        if self.open_line:
            print(file=self.out, flush=True)
            self.open_line = False

    def _partial(self, text: str) -> None:
        if not self.tty:
            print(text, file=self.out, flush=True)  # pipes and logs get one line per partial
            return
        shown = text if len(text) <= self.width else "…" + text[-(self.width - 1):]
        self.out.write("\r\x1b[2K" + shown)
        self.out.flush()
        self.open_line = True

    def _line(self, text: str) -> None:
        self.end_line()
        print(text, file=self.out, flush=True)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.0f}"
