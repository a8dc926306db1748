"""Building call-log records by hand for the call-log tests (no model, no server)."""

from __future__ import annotations

import datetime as dt

from models.labels import CLASS_NAMES, SIGNAL_NAMES
from serving.calllog.records import CallRecord, SignalValue

#: Inside the report window of the tests: [WINDOW_START, WINDOW_END).
WINDOW_START = dt.datetime(2026, 11, 10)
WINDOW_END = dt.datetime(2026, 11, 11)


def record(call_id: str, label: str, *, source: str = "", campaign: str = "", minute: int = 0,
           decision_seconds: float | None = None, transcript: str | None = "hello there",
           signals: tuple[str, ...] = (), channel: str = "stream", logged_at: dt.datetime | None = None,
           industry: str = "") -> CallRecord:
    """A logged call with probability 0.9 on ``label`` and ``signals`` present."""
    probabilities = {c: (0.9 if c == label else 0.1 / (len(CLASS_NAMES) - 1)) for c in CLASS_NAMES}
    metadata = {k: v for k, v in (("source", source), ("campaign", campaign), ("industry", industry)) if v}
    return CallRecord(
        call_id=call_id, logged_at=logged_at or WINDOW_START + dt.timedelta(minutes=minute), channel=channel,
        source=source, campaign=campaign, metadata=metadata, model="intent/v7", label=label,
        probabilities=probabilities, buying_intent=probabilities["buying"],
        signals=tuple(SignalValue(s, 0.95 if s in signals else 0.05, s in signals) for s in SIGNAL_NAMES),
        route="priority_sales" if label == "buying" else "standard", decision_label=label, confidence=0.9,
        reasons=(f"{label} 0.90",), segment="default", decision_seconds=decision_seconds,
        early=decision_seconds is not None, audio_seconds=None if decision_seconds is None else 30.0,
        transcript=transcript, transcript_mode="off" if transcript is None else "redacted",
    )
