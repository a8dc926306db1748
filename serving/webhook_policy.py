"""Which webhook events go to which endpoints: the ``webhooks:`` section of the policy file.

The business decides this next to the routing thresholds (``serving/configs/policy.yaml``),
per route and per segment; *where* the endpoints are and how they are signed is deployment
configuration (``webhooks.endpoints`` in ``serve.yaml``, :class:`serving.config.WebhookConfig`).

Every rule that matches an event adds its endpoints (rules are not first-match: a CRM and a
paging service may both want priority calls); an endpoint gets each event once. Event types are
an open set of names: ``decision`` and ``final`` come from scoring, ``callback_due`` from the
missed-call flow, and a new producer needs no change here.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


from callintent.config import ConfigError
from serving.policy import load_policy_section

#: What an event type or endpoint name may look like.
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class WebhookRule:
    """Send events of these types, for these routes and segments, to these endpoints.

    Attributes:
        endpoints: Endpoint names from ``webhooks.endpoints`` in ``serve.yaml``.
        events: Event types (``decision``, ``final``, ``callback_due``…).
        routes: Decision routes (``priority_sales``…); empty = every route, including events
            with no decision (a missed call without audio).
        segments: Policy segment names, ``*``/``?`` globs allowed, case-insensitive (``default``
            is the segment of calls no segment matched); empty = every segment.
    """

    endpoints: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("endpoints", "events"):
            values = getattr(self, name)
            if not values:
                raise ValueError(f"{name} must name at least one")
            bad = [v for v in values if not NAME.match(v)]
            if bad:
                raise ValueError(f"{name}: {bad[0]!r} is not a name (lower-case letters, digits, _ and -)")

    def matches(self, event_type: str, route: str, segment: str) -> bool:
        if event_type not in self.events:
            return False
        if self.routes and route not in self.routes:
            return False
        return not self.segments or any(fnmatch.fnmatchcase(segment.lower(), s.lower()) for s in self.segments)


@dataclass(frozen=True)
class WebhookRoutes:
    """The ``webhooks:`` section of the policy file.

    Attributes:
        rules: Every matching rule adds its endpoints.
    """

    rules: tuple[WebhookRule, ...] = ()

    def endpoints_for(self, event_type: str, *, route: str = "", segment: str = "") -> tuple[str, ...]:
        """The endpoints an event goes to, each once, in rule order."""
        out: dict[str, None] = {}
        for rule in self.rules:
            if rule.matches(event_type, route, segment):
                out.update(dict.fromkeys(rule.endpoints))
        return tuple(out)

    @property
    def endpoint_names(self) -> frozenset[str]:
        return frozenset(name for rule in self.rules for name in rule.endpoints)

    def check_endpoints(self, configured: Iterable[str], where: str = "policy webhooks") -> None:
        """Fail at start when a rule names an endpoint ``serve.yaml`` does not configure.

        Raises:
            ConfigError: naming the endpoint and the configured ones.
        """
        known = set(configured)
        unknown = sorted(self.endpoint_names - known)
        if unknown:
            raise ConfigError(f"{where}: endpoint {unknown[0]!r} is not configured (webhooks.endpoints in the service "
                              f"config has {sorted(known) or 'none'})")


#: The policy file's section this module reads.
WEBHOOKS_KEY = "webhooks"


@dataclass(frozen=True)
class _Section:
    """The policy file as this loader sees it: only its ``webhooks:`` section."""

    webhooks: WebhookRoutes = field(default_factory=WebhookRoutes)


def load_webhook_routes(path: str | Path | None = None) -> WebhookRoutes:
    """Read ``webhooks:`` from the policy file (None = the shipped ``policy.yaml``); missing = no rules.

    Raises:
        ConfigError: unknown key, bad name or empty list (the message names ``webhooks.…``).
    """
    return load_policy_section(path, WEBHOOKS_KEY, _Section).webhooks


__all__ = ["NAME", "WEBHOOKS_KEY", "WebhookRoutes", "WebhookRule", "load_webhook_routes"]
