"""The live floor: the calls open now, and an in-process feed of their events for subscribers.

Live sessions (:class:`serving.sessions.EventSocket`) publish every event they send their caller
here, and end their call here when the session ends (with or without a ``final`` event). The
subscriber feeds (``GET /v1/calls/live``, ``GET /v1/calls/live/events``, ``GET
/v1/calls/{call_id}/events``) and through them the pages ``/live`` and ``/live/calls/{call_id}``
read it. The events are the ones the caller gets (:class:`serving.live_call.StreamEvent`, the
same wire format); the floor keeps one :class:`FloorCall` summary per call beside them.

Only redacted text reaches the floor: events are redacted by the live call when the service
redacts (``redact_pii``, the default); when it does not, the floor redacts them itself
(:func:`redacted_event`), so a page never shows a card or phone number whatever the setting.

Publishing never waits for a subscriber: each has a bounded queue, and one that falls
:data:`MAX_PENDING` events behind is cut off (its feed ends; a browser's EventSource
reconnects and starts again from a fresh snapshot). A live call is never slowed by a viewer.

The floor is per worker process (``workers: 1`` by default): with more workers, each sees the
calls it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from models.scores import IntentScores, SignalScore
from serving.live_call import SCORED_SPEAKER, StreamEvent
from serving.policy import Decision
from serving.redact import redact, redact_scores, redact_words

logger = logging.getLogger(__name__)

#: Events a subscriber may fall behind before its feed is cut off.
MAX_PENDING = 256
#: Points of the buying-probability series kept per call (one per decode: ~1 per second).
MAX_POINTS = 240
#: Ended calls kept for a screen-pop that opens (or reconnects) after the end.
KEEP_ENDED = 200
KEEP_ENDED_SECONDS = 300.0
#: Metadata shown on the floor (the rest may be telephony ids or caller details).
SHOWN_METADATA = ("source", "campaign")

#: What a subscriber's feed ends with when it fell too far behind.
OVERFLOW = object()


@dataclass(frozen=True)
class FloorCall:
    """One call on the floor, as its latest event left it (immutable: a new one per change).

    Attributes:
        call_id: The call.
        channel: The protocol: ``stream`` or ``twilio``.
        metadata: Source and campaign (redacted), as far as the call sent them.
        started_at: Unix time the call started.
        updated_at: Unix time of the latest change.
        model: The scoring model.
        audio_seconds: Call audio heard so far.
        series: ``(audio_seconds, buying_intent)`` after each scored decode.
        scores: The latest scores (None before the first decode); evidence indexes ``transcript``.
        transcript: The scored text so far, redacted.
        decision: The routing decision once made.
        ended: The call is over.
    """

    call_id: str
    channel: str
    metadata: Mapping[str, str]
    started_at: float
    updated_at: float
    model: str = ""
    audio_seconds: float = 0.0
    series: tuple[tuple[float, float], ...] = ()
    scores: IntentScores | None = None
    transcript: str = ""
    decision: Decision | None = None
    ended: bool = False

    @property
    def source(self) -> str:
        return self.metadata.get("source", "")

    @property
    def campaign(self) -> str:
        return self.metadata.get("campaign", "")

    @property
    def present_signals(self) -> tuple[SignalScore, ...]:
        """Present signals, with the caller's evidence only (what the transcript shows)."""
        if self.scores is None:
            return ()
        return tuple(dataclasses.replace(s, evidence=tuple(e for e in s.evidence if e.speaker in (None, SCORED_SPEAKER)))
                     for s in self.scores.signals if s.present)


class Subscription:
    """A subscriber's queue of ``(kind, payload)`` items: ``("event", StreamEvent)``,
    ``("call", FloorCall)`` and ``("ended", FloorCall)``; :data:`OVERFLOW` when cut off.

    Args:
        call_id: The one call followed, or None for every call.
    """

    def __init__(self, call_id: str | None) -> None:
        self.call_id = call_id
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.cut_off = False

    def offer(self, item: Any) -> bool:
        """Queue ``item``; False (and the feed ends) when the subscriber is too far behind."""
        if self.cut_off:
            return False
        if self.queue.qsize() >= MAX_PENDING:
            self.cut_off = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(OVERFLOW)
            return False
        self.queue.put_nowait(item)
        return True

    async def get(self) -> Any:
        return await self.queue.get()


class LiveFloor:
    """The open calls of this worker and their subscribers (used on the event loop only).

    Args:
        events_redacted: The events published are already redacted (the service's
            ``redact_pii``); when False the floor redacts them.
        clock: Wall clock (Unix seconds).
    """

    def __init__(self, *, events_redacted: bool = True, clock: Callable[[], float] = time.time) -> None:
        self.events_redacted = events_redacted
        self._clock = clock
        self._open: dict[str, FloorCall] = {}
        self._ended: OrderedDict[str, FloorCall] = OrderedDict()
        self._subscribers: set[Subscription] = set()

    # -- reading ---------------------------------------------------------------------------------

    def calls(self) -> list[FloorCall]:
        """The open calls, oldest first."""
        return sorted(self._open.values(), key=lambda c: c.started_at)

    def get(self, call_id: str) -> FloorCall | None:
        """An open call, or one that ended in the last :data:`KEEP_ENDED_SECONDS`."""
        self._forget_old()
        return self._open.get(call_id) or self._ended.get(call_id)

    @contextlib.contextmanager
    def subscribe(self, call_id: str | None = None) -> Iterator[Subscription]:
        """Follow one call (``call_id``) or the whole floor (None) while the block runs."""
        subscription = Subscription(call_id)
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    # -- publishing ------------------------------------------------------------------------------

    def publish(self, channel: str, event: StreamEvent) -> None:
        """Take one event a live call sent its caller (``started``, ``partial``, ``decision``,
        ``final``; ``error`` events are not published)."""
        if event.type == "error":
            return
        if event.type == "started":  # the floor shows source and campaign, never telephony ids
            event = dataclasses.replace(event, metadata=shown_metadata(event.metadata))
        if not self.events_redacted:
            event = redacted_event(event)
        now = self._clock()
        call = self._open.get(event.call_id)
        if event.type == "started" or call is None:
            if call is None and event.type != "started":
                return  # a call this floor never saw start (cannot happen in one worker)
            call = FloorCall(event.call_id, channel, shown_metadata(event.metadata), started_at=now, updated_at=now,
                             model=event.model)
        else:
            call = dataclasses.replace(call, updated_at=now, audio_seconds=max(call.audio_seconds, event.audio_seconds),
                                       model=event.model or call.model)
            if event.scores is not None:
                series = call.series
                if event.type == "partial":
                    series = (series + ((round(event.audio_seconds, 2), round(event.scores.buying_intent, 4)),))[-MAX_POINTS:]
                call = dataclasses.replace(call, scores=event.scores, transcript=event.text, series=series)
            if event.decision is not None:
                call = dataclasses.replace(call, decision=event.decision)
        self._open[call.call_id] = call
        self._fan_out(call, ("event", event))
        self._fan_out(call, ("call", call))
        if event.type == "final":
            self.end(call.call_id)

    def end(self, call_id: str) -> None:
        """The call's session ended: it leaves the floor (idempotent; kept a while for late viewers)."""
        call = self._open.pop(call_id, None)
        if call is None:
            return
        call = dataclasses.replace(call, ended=True, updated_at=self._clock())
        self._ended[call_id] = call
        self._forget_old()
        self._fan_out(call, ("ended", call))

    def _fan_out(self, call: FloorCall, item: tuple[str, Any]) -> None:
        for subscription in list(self._subscribers):
            if subscription.call_id is None and item[0] == "event":
                continue  # the floor gets summaries, not every transcript update twice
            if subscription.call_id in (None, call.call_id) and not subscription.offer(item):
                logger.warning("live feed subscriber fell %d events behind: cut off", MAX_PENDING)
                self._subscribers.discard(subscription)

    def _forget_old(self) -> None:
        horizon = self._clock() - KEEP_ENDED_SECONDS
        while self._ended and (len(self._ended) > KEEP_ENDED
                               or next(iter(self._ended.values())).updated_at < horizon):
            self._ended.popitem(last=False)


def shown_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """The metadata a page may show: :data:`SHOWN_METADATA`, each value redacted."""
    return {k: redact(str(metadata[k])).text for k in SHOWN_METADATA if metadata.get(k)}


def redacted_event(event: StreamEvent) -> StreamEvent:
    """``event`` with its texts PII-redacted (for a service that runs with ``redact_pii: false``).

    The scored text is redacted as a whole (stable + unstable become one stable text, so a
    number read across the seam is found), evidence moves onto it, reasons and words are redacted.
    """
    changes: dict[str, Any] = {"metadata": {k: redact(str(v)).text for k, v in event.metadata.items()},
                               "speaker_text": {}}
    if event.scores is not None:
        text, scores = redact_scores(event.text, event.scores)
        changes.update(scores=scores, stable=text, unstable="")
    else:
        changes.update(stable=redact(event.text).text if event.text else "", unstable="")
    if event.words:
        changes["words"] = redact_words(event.words)
    if event.decision is not None:
        changes["decision"] = dataclasses.replace(
            event.decision, reasons=tuple(redact(r).text for r in event.decision.reasons))
    return dataclasses.replace(event, **changes)


__all__ = ["FloorCall", "LiveFloor", "MAX_PENDING", "OVERFLOW", "Subscription", "redacted_event", "shown_metadata"]
