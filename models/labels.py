"""The label schema: the one place intent classes and buying-intent signals are defined.

Every stage (data validation, training heads, export metadata, evaluation, serving) reads the
order and the definitions from here, so a class or signal can never mean two things.
This module must stay dependency-free: serving imports it.
(The length of the opening itself, ``OPENING_SECONDS``, is a fact of the audio: :mod:`speech.transcript`.)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Label:
    """A named label with a plain-language definition.

    Attributes:
        name: Machine name used in data files, model outputs and APIs.
        definition: One sentence a QA analyst can apply by hand.
        examples: Short example phrases.
    """

    name: str
    definition: str
    examples: tuple[str, ...] = ()


INTENT_CLASSES: tuple[Label, ...] = (
    Label(
        "buying",
        "High commercial intent: the caller wants a price, quote, appointment, purchase or new service.",
        ("saw your ad for water heaters, what would a 50 gallon install cost", "can someone come out tomorrow"),
    ),
    Label(
        "service",
        "Existing customer: order or job status, billing, support, change, cancel or complaint.",
        ("checking on my order", "my bill is wrong", "reset my password"),
    ),
    Label(
        "informational",
        "A question with no purchase step yet: hours, location, general policy.",
        ("what time do you close on Saturday",),
    ),
    Label(
        "noise",
        "Wrong number, spam or robocall, vendor or solicitor, silence or hang-up.",
        ("press 1 about your car's extended warranty",),
    ),
)

SIGNALS: tuple[Label, ...] = (
    Label("ad_reference", "The caller mentions an ad, promo, mailer or where they saw the business.", ("saw you on facebook",)),
    Label("price_inquiry", "The caller asks what something costs.", ("how much is", "what do you charge")),
    Label("quote_request", "The caller asks for a quote or estimate.", ("can I get an estimate",)),
    Label("appointment_request", "The caller asks to book, schedule or have someone come out.", ("can someone come tomorrow",)),
    Label("specific_need", "The caller names a concrete job or product.", ("a 50 gallon water heater",)),
    Label("urgency", "The caller says it is urgent: today, emergency, as soon as possible.", ("it's an emergency",)),
    Label("existing_customer", "The caller says they already are a customer or refers to an existing account or order.", ("my account", "my order")),
)

CLASS_NAMES: tuple[str, ...] = tuple(label.name for label in INTENT_CLASSES)
SIGNAL_NAMES: tuple[str, ...] = tuple(label.name for label in SIGNALS)
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}
SIGNAL_INDEX: dict[str, int] = {name: i for i, name in enumerate(SIGNAL_NAMES)}

#: The class whose probability is reported as ``buying_intent``.
BUYING = "buying"

#: A 30-second opening holds about 75 words at a brisk 150 wpm; 150 leaves room for fast talkers.
DEFAULT_MAX_WORDS = 150


def definitions_markdown() -> str:
    """Render the schema as a markdown table (model cards, reports, docs)."""
    rows = ["| kind | name | definition |", "|---|---|---|"]
    rows += [f"| class | `{c.name}` | {c.definition} |" for c in INTENT_CLASSES]
    rows += [f"| signal | `{s.name}` | {s.definition} |" for s in SIGNALS]
    return "\n".join(rows)
