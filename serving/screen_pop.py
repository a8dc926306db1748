"""What an agent reads on the screen-pop: the verdict in plain words, and the next step per route.

``headline`` turns scores and metadata into one line, e.g. "Likely buyer — asked for a price,
saw your Facebook ad". The next steps are one line per route, editable in the policy YAML under
its own top-level key (read here; :class:`serving.policy.DecisionPolicy` skips it)::

    next_steps:
      priority_sales: "Quote today and offer the earliest appointment."
      standard: "Answer the question; offer a quote if the caller is shopping."
      screen: "Likely spam or a wrong number: confirm briefly, then end the call."
      undetermined: "Ask how you can help before routing."
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from callintent.config import ConfigError
from models.labels import BUYING
from models.scores import SignalScore
from serving.policy import DEFAULT_POLICY_PATH, ROUTES

#: The policy file's key read here.
NEXT_STEPS_KEY = "next_steps"
#: Longest next-step line (it is one line on a screen).
MAX_STEP_CHARS = 300

#: The class in plain words, by how sure the model is.
_SURE, _UNSURE = 0.75, 0.5
_CLASS_WORDS = {
    "buying": ("Likely buyer", "Possible buyer"),
    "service": ("Existing customer needing service", "Possibly a service call"),
    "informational": ("Looking for information", "Possibly an information request"),
    "noise": ("Likely spam or a wrong number", "Possibly spam or a wrong number"),
}
#: Each signal as the agent would say it.
_SIGNAL_WORDS = {
    "price_inquiry": "asked for a price",
    "quote_request": "asked for a quote",
    "appointment_request": "wants an appointment",
    "specific_need": "named what they need",
    "urgency": "it is urgent",
    "existing_customer": "is an existing customer",
}
#: Ad sources as people write them (anything else: the source with ``_``/``-`` as spaces, title case).
_SOURCE_WORDS = {"facebook": "Facebook", "facebook_ads": "Facebook", "fb": "Facebook", "google_ads": "Google",
                 "google": "Google", "bing_ads": "Bing", "instagram": "Instagram", "tiktok": "TikTok",
                 "yelp": "Yelp", "lead_vendor": "lead vendor"}


def source_words(source: str) -> str:
    """A metadata source as people write it: ``facebook_ads`` → ``Facebook``."""
    key = source.strip().lower()
    if key in _SOURCE_WORDS:
        return _SOURCE_WORDS[key]
    words = key.replace("-", " ").replace("_", " ").split()
    if words and words[-1] in ("ads", "ad"):
        words = words[:-1]
    return " ".join(w.capitalize() for w in words)


def headline(label: str | None, confidence: float, signals: Sequence[SignalScore], metadata: Mapping[str, str]) -> str:
    """The verdict in plain words: the class (hedged by ``confidence``), then what the caller did.

    Args:
        label: The most probable class (None before the first words were scored).
        confidence: Its probability.
        signals: The present signals.
        metadata: Call metadata (``source`` names the ad the caller saw).

    Returns:
        e.g. ``"Likely buyer — asked for a price, saw your Facebook ad"``.
    """
    if label is None:
        return "Listening…"
    sure, unsure = _CLASS_WORDS.get(label, (label.capitalize(), f"Possibly {label}"))
    head = sure if confidence >= _SURE else unsure if confidence >= _UNSURE else f"Not sure yet ({unsure.lower()}?)"
    names = [s.name for s in signals if s.present]
    said = [_SIGNAL_WORDS[n] for n in names if n in _SIGNAL_WORDS]
    if "ad_reference" in names:
        where = source_words(metadata.get("source", ""))
        said.append(f"saw your {where} ad" if where else "mentioned your ad")
    elif label == BUYING and metadata.get("source"):
        said.append(f"came from {source_words(metadata['source'])}")
    return f"{head} — {', '.join(said)}" if said else head


def load_next_steps(path: str | Path | None = None) -> dict[str, str]:
    """The ``next_steps`` section of a policy file (``None`` → the built-in policy).

    Returns:
        Route → one line; routes the file leaves out have no suggestion.

    Raises:
        ConfigError: unreadable file, a key that is not a route, or a value that is not one line of text.
    """
    path = DEFAULT_POLICY_PATH if path is None else Path(path)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    section = loaded.get(NEXT_STEPS_KEY, {}) if isinstance(loaded, dict) else {}
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: {NEXT_STEPS_KEY} must be a mapping of route to one line of text")
    steps = {}
    for route, line in section.items():
        if route not in ROUTES:
            raise ConfigError(f"{path}: unknown key '{NEXT_STEPS_KEY}.{route}' (routes: {', '.join(ROUTES)})")
        if not isinstance(line, str) or not line.strip() or "\n" in line.strip() or len(line) > MAX_STEP_CHARS:
            raise ConfigError(f"{path}: {NEXT_STEPS_KEY}.{route} must be one line of text "
                              f"(1..{MAX_STEP_CHARS} characters)")
        steps[route] = line.strip()
    return steps


__all__ = ["NEXT_STEPS_KEY", "headline", "load_next_steps", "source_words"]
