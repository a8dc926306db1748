"""Callback terms for missed calls: the ``callbacks:`` section of ``serving/configs/policy.yaml``.

A missed call (no audio) or a voicemail is logged with an *intent segment* — the voicemail's
class (``buying``, ``service``, ``informational``, ``noise``), or ``unknown`` when there was no
voicemail or the model abstained — and this policy gives that segment its callback terms: a
priority (1 = first), an SLA (call back within it; none = no callback owed) and the queue that
owns it. The deadline is ``missed_at + sla`` on the wall clock.

Business hours (a time zone, weekdays, opening and closing time) split the callback report into
calls missed inside and outside them; ``delay_buckets`` are the edges of the report's "conversion
after callback by delay" table, and ``revenue_per_conversion`` is the value the revenue-at-risk
range assumes per converted call (``callintent report callbacks --revenue-per-conversion``
overrides it). The section has its own loader, :func:`load_callback_policy` (the decision policy
skips it: ``serving.policy.OTHER_SECTIONS``); the service and the report read it from the same
file, so both use one set of terms.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from models.labels import CLASS_NAMES

#: The segment of a missed call without a voicemail, or whose voicemail the model abstained on.
UNKNOWN = "unknown"
#: Every intent segment a missed call can have.
INTENT_SEGMENTS = (*CLASS_NAMES, UNKNOWN)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def parse_duration(text: str, name: str) -> float:
    """``"15m"`` / ``"4h"`` / ``"1d"`` / ``"90s"`` -> seconds.

    Raises:
        ValueError: naming ``name`` and the accepted forms.
    """
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not match or float(match[1]) <= 0:
        raise ValueError(f"{name} must be a positive duration such as 15m, 4h, 1d or 90s, got {text!r}")
    return float(match[1]) * _SECONDS[match[2]]


def format_duration(seconds: float) -> str:
    """Seconds in the largest unit that divides them (``900`` -> ``"15m"``)."""
    for unit in ("d", "h", "m"):
        if seconds % _SECONDS[unit] == 0:
            return f"{int(seconds // _SECONDS[unit])}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class IntentTerms:
    """The callback terms of one intent segment.

    Attributes:
        priority: 1 = call back first; None = no callback owed (with ``sla`` None).
        sla: Call back within this (``15m``, ``4h``, ``1d``); None = no SLA, no deadline.
        queue: The team that owns these callbacks (shown with SLA breaches).
    """

    priority: int | None = None
    sla: str | None = None
    queue: str = ""

    def __post_init__(self) -> None:
        if self.priority is not None and self.priority < 1:
            raise ValueError(f"priority must be >= 1 (1 = first) or null, got {self.priority!r}")
        if self.sla is not None:
            parse_duration(self.sla, "sla")
        if (self.priority is None) != (self.sla is None):
            raise ValueError("priority and sla are set together (a callback owed) or both null (none owed)")

    @property
    def sla_seconds(self) -> float | None:
        return None if self.sla is None else parse_duration(self.sla, "sla")


@dataclass(frozen=True)
class BusinessHours:
    """When the business answers its phones.

    Attributes:
        timezone: IANA zone the hours are in (``America/New_York``).
        days: Open weekdays (``mon`` … ``sun``).
        open: Opening time, ``"HH:MM"`` (quoted in YAML).
        close: Closing time, ``"HH:MM"``, after ``open``.
    """

    timezone: str = "UTC"
    days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    open: str = "09:00"
    close: str = "17:00"

    def __post_init__(self) -> None:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"business_hours.timezone must be an IANA time zone such as Europe/London, "
                             f"got {self.timezone!r}") from None
        bad = [d for d in self.days if d not in WEEKDAYS]
        if bad:
            raise ValueError(f"business_hours.days must be among {list(WEEKDAYS)}, got {bad[0]!r}")
        for name in ("open", "close"):
            if not isinstance(getattr(self, name), str) or not _CLOCK.match(getattr(self, name)):
                raise ValueError(f"business_hours.{name} must be a quoted \"HH:MM\" time, got {getattr(self, name)!r}")
        if self.close <= self.open:
            raise ValueError(f"business_hours.close ({self.close}) must be after open ({self.open})")

    def contains(self, when: dt.datetime) -> bool:
        """Whether ``when`` (naive UTC, or aware) falls inside business hours."""
        import zoneinfo

        aware = when if when.tzinfo is not None else when.replace(tzinfo=dt.timezone.utc)
        local = aware.astimezone(zoneinfo.ZoneInfo(self.timezone))
        return WEEKDAYS[local.weekday()] in self.days and self.open <= local.strftime("%H:%M") < self.close

    def describe(self) -> str:
        return f"{'/'.join(self.days)} {self.open}–{self.close} {self.timezone}"


def _default_intents() -> dict[str, IntentTerms]:
    return {
        "buying": IntentTerms(priority=1, sla="15m", queue="sales"),
        UNKNOWN: IntentTerms(priority=2, sla="1h", queue="sales"),
        "service": IntentTerms(priority=3, sla="4h", queue="support"),
        "informational": IntentTerms(priority=4, sla="1d", queue="front_desk"),
        "noise": IntentTerms(),
    }


@dataclass(frozen=True)
class CallbackTerms:
    """The terms a missed call was given. Attributes: intent, priority, sla_seconds, due_at
    (naive UTC; None = no callback owed), queue."""

    intent: str
    priority: int | None
    sla_seconds: float | None
    due_at: dt.datetime | None
    queue: str


@dataclass(frozen=True)
class CallbackPolicy:
    """The ``callbacks:`` section of the policy file.

    Attributes:
        intents: Terms per intent segment (every one of :data:`INTENT_SEGMENTS`; a segment left
            out gets no callback).
        business_hours: See :class:`BusinessHours`.
        delay_buckets: Upper edges of the report's callback-delay buckets, ascending; the first
            bucket (up to the first edge) is the reference the revenue-at-risk range compares
            late callbacks with, so make it the buying SLA.
        revenue_per_conversion: Value of one converted call for the revenue-at-risk range; None =
            the mean revenue of the converted high-intent misses in the report window.
    """

    intents: dict[str, IntentTerms] = field(default_factory=_default_intents)
    business_hours: BusinessHours = field(default_factory=BusinessHours)
    delay_buckets: tuple[str, ...] = ("15m", "1h", "4h", "1d")
    revenue_per_conversion: float | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.intents) - set(INTENT_SEGMENTS))
        if unknown:
            raise ValueError(f"callbacks.intents: unknown intent segment {unknown[0]!r} "
                             f"(known: {', '.join(INTENT_SEGMENTS)})")
        edges = [parse_duration(b, "callbacks.delay_buckets[]") for b in self.delay_buckets]
        if not edges or edges != sorted(set(edges)):
            raise ValueError("callbacks.delay_buckets must be at least one duration, strictly ascending")
        if self.revenue_per_conversion is not None and self.revenue_per_conversion < 0:
            raise ValueError(f"callbacks.revenue_per_conversion must be >= 0, got {self.revenue_per_conversion!r}")

    @property
    def bucket_edges(self) -> tuple[float, ...]:
        """``delay_buckets`` in seconds."""
        return tuple(parse_duration(b, "delay_buckets") for b in self.delay_buckets)

    def terms(self, intent: str, missed_at: dt.datetime) -> CallbackTerms:
        """The callback terms of a call of ``intent`` missed at ``missed_at`` (naive UTC)."""
        if intent not in INTENT_SEGMENTS:
            raise ValueError(f"intent must be one of {INTENT_SEGMENTS}, got {intent!r}")
        terms = self.intents.get(intent, IntentTerms())
        seconds = terms.sla_seconds
        due = None if seconds is None else missed_at + dt.timedelta(seconds=seconds)
        return CallbackTerms(intent, terms.priority, seconds, due, terms.queue)


#: The policy file's section this module reads.
CALLBACKS_KEY = "callbacks"


@dataclass(frozen=True)
class _Section:
    """The policy file as this loader sees it: only its ``callbacks:`` section."""

    callbacks: CallbackPolicy = field(default_factory=CallbackPolicy)


def load_callback_policy(path: str | Path | None = None) -> CallbackPolicy:
    """The ``callbacks:`` section of a policy file (``None`` -> ``serving/configs/policy.yaml``);
    built-in terms (the defaults above) when the file has none.

    Raises:
        ConfigError: unreadable file, unknown key, wrong type or a bad value (named, e.g.
            ``callbacks.intents.buying.sla``).
    """
    from serving.policy import load_policy_section

    return load_policy_section(path, CALLBACKS_KEY, _Section).callbacks


__all__ = ["CALLBACKS_KEY", "INTENT_SEGMENTS", "UNKNOWN", "BusinessHours", "CallbackPolicy", "CallbackTerms",
           "IntentTerms", "format_duration", "load_callback_policy", "parse_duration"]
