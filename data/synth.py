"""The built-in labeled corpus: synthetic call openings with exact intent labels and signal spans.

Calls are composed from interchangeable parts — openers, introductions, neutral context, intent
frames, objects, times, fillers, restarts and closers — drawn in random order with optional parts,
over 17 industries. Every signal phrase is inserted by the generator as its own piece and recorded
as a span, so signal labels are exact rather than guessed.

Real openings come in more than one voice, so each call is voiced in a *register* drawn from a
seeded distribution per class (:data:`REGISTER_SHARES`): ``classic`` (an agent greeting and a
caller turn of a few sentences, sometimes an agent acknowledgement or question and the caller's
answer; about 40 words), ``rambling`` (the same scripts with restarts, self-corrections and
asides), ``short`` (maybe a greeting, then one short sentence: "I lost my debit card."),
``typed`` (a terse typed-style request as an IVR, chat or voice-assistant transcript: no
greeting, no fillers, often lower case and unpunctuated: "card declined", "quote for a new
roof"), ``cut_off`` (a short request cut off mid-sentence) and ``greeting_only`` (the caller
greets and says nothing more). The register is written to each row (``register``).

Label rules (the class is decided by the scenario, never by which words happen to appear):

* ``buying`` — the caller wants something *new* from the business: a price, quote, appointment,
  purchase or sign-up, or states a need for a product or job ("I'm looking for a tankless water
  heater", "I'm calling about the gray sectional"). Confusable cases that stay ``buying``:
  an existing customer asking the price of an add-on or booking a new visit (with
  ``existing_customer``); an existing customer with a new problem in something the business did
  not sell or do ("we've used you before; my toilet keeps running, can someone come out") — a new
  job; an informational question that turns into a booking ("are you open Saturday? because I'd
  like to bring it in"); following up on a quote not received yet ("checking on the estimate you
  were going to send me", with ``quote_request``); a service matter followed by a new purchase in
  the same call — buying wins.
* ``service`` — the caller deals with something they already have from this business: status,
  billing, refunds, account changes, rescheduling, confirming or cancelling an existing booking,
  complaints, and problems with a product or job this business sold or did ("my AC stopped
  working — you guys put it in last year") — even when the caller asks someone to come back out
  (``appointment_request``) or says it is urgent.
* ``informational`` — a question with no purchase step and no stated need: hours, location,
  policies (returns, cancellation, warranty), rates and fees asked as policy ("do you charge for
  estimates", "what's the overdraft fee", "what's your hourly rate"), "do you accept X"
  (insurance, cards, walk-ins, pets), eligibility ("do I qualify for the tax credit"), service
  area ("do you come out to Salem", "do you deliver to Dover"), asking *whether* the business
  offers something ("do you guys do tankless water heaters?" carries ``specific_need`` but stays
  informational); an ad mention followed only by such a question; an existing customer's general
  question, including one about the terms of what they have ("what's the interest rate on my
  savings account", "does my policy cover flood damage": ``existing_customer`` span, still
  informational — their own balance, bill or order status would be service). The line with
  buying: the price of a concrete job or product the caller wants ("what's your rate for a car
  loan", "how much for a brake job") is buying; a fee or rate as policy, with nothing to buy
  named, is informational.
* ``noise`` — wrong numbers, robocalls, vendors and solicitors, recruiters, surveys, another
  business's automated appointment reminder dialled to this number, personal calls for staff,
  pocket dials, silence, a caller who greets and never says more in the whole opening (a hang-up
  or dead air), and callers cut off before saying anything usable ("I was calling about-
  hello? hello?"). Robocall and vendor scripts deliberately use sales and customer words
  ("free quote", "special offer", "your account", "your card ending in", "your Amazon order",
  "your loan", "merchant services", "google"); a wrong-number caller may name a service or ask
  for an appointment — with the business they meant to call ("is this the pharmacy? I need a
  refill").
* A question cut off mid-sentence keeps the class its words show: the cut only takes words
  after the request, or the end of an object after a request span ("how much is a tank-"), so
  what is left still shows the class.
* Negated requests ("I'm not looking for a quote or anything", "I'm not a customer yet") carry
  no signal and don't change the class.
* The opening is the first 30 s. About 8% of non-noise callers (:data:`LONG_OPENING_SHARE`)
  introduce themselves and give background first, and the window may close before (part of)
  their request: the row keeps the call's class, so some openings are genuinely undecided —
  as in real traffic, where a model should be unsure of them.

Signal rules (definitions in :mod:`models.labels`; spans only ever cover caller words):

* Signals are literal: a caller phrase meeting a signal's definition is a span in every class.
  Robocall and vendor scripts *offer* ("press 1 for your free quote") and so never carry
  signals; a wrong-number caller's "I need to make an appointment" is an ``appointment_request``
  although the call is noise — the class says what the call is, signals what was said.
* ``price_inquiry`` is asking what something *would cost to buy* (including add-ons). Amounts on a
  bill or charge the caller already has ("my bill says $230", "how much do I still owe", "I was
  quoted $400 but billed $520") are not price inquiries, and "quoted" there is no quote request;
  nor are fees and rates asked as policy ("is there a restocking fee", "what's the APR on your
  credit cards").
* ``quote_request`` is asking for a quote or estimate (or one not received yet); asking
  *whether* estimates are free is not.
* ``appointment_request`` is asking for a new visit or booking, in any class (a service caller's
  "can someone come back out"). Moving, confirming or cancelling an existing booking is not one;
  the booking ("my appointment") is then an ``existing_customer`` span.
* ``specific_need`` names the concrete product, job or problem the call is about ("a 50 gallon
  water heater", "my AC stopped working"). A reference to something the caller already bought
  here ("the water heater you installed") is an ``existing_customer`` span instead.
* ``existing_customer`` is the caller saying they are a customer, or referring to their account,
  order, booking or a purchase/job from this business.
* ``urgency`` is an explicit statement of urgency ("it's an emergency", "today if possible",
  "asap"); "tomorrow" or "next week" is not.
* ``ad_reference`` is where the caller saw or heard of the business (ad, mailer, radio,
  billboard, TV, google, yelp, a referral); ``source`` agrees with it 80% of the time (tracking
  is imperfect in real call data too).

``--asr-noise`` renders a fraction of the rows as telephone-ASR output (lower case, no
punctuation, numbers spelled out or kept as digits, dropped words, homophone substitutions and
fillers). Noise is applied piece by piece before the transcript is assembled, and signal pieces
only change form (case, punctuation, numbers), so every span still points at its words.

A typed-register row is a single caller turn with simulated timings like any other row (the
schema is the same for every register). The transcript is the turns joined by single spaces, and
``words`` are its whitespace tokens with
simulated times (a per-speaker speaking rate, pauses after punctuation and between turns, all
inside the 30-second opening).
"""

from __future__ import annotations

import json
import logging
import random
import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callintent.errors import UserError
from data import synth_lexicon as lex
from data.dataset import normalise_transcript
from speech.transcript import OPENING_SECONDS
from models.labels import CLASS_NAMES, DEFAULT_MAX_WORDS, SIGNAL_INDEX
from speech.transcript import Word

logger = logging.getLogger(__name__)

#: Share of each class in a generated corpus (rounded to whole rows, remainder to ``buying``).
CLASS_SHARES: dict[str, float] = {"buying": 0.40, "service": 0.30, "informational": 0.15, "noise": 0.15}

#: Default share of telephone-ASR rows for ``callintent data synth`` (the library default is 0).
DEFAULT_ASR_NOISE = 0.3

#: Openings longer than this are redrawn: 30 s of speech at a natural rate holds about 90-100 words.
MAX_OPENING_WORDS = min(100, DEFAULT_MAX_WORDS)

#: Share of non-noise calls whose caller talks slowly with a long preamble, so the opening is cut at
#: 30 s, sometimes before the request: real openings that don't reveal the intent yet.
LONG_OPENING_SHARE = 0.08

#: How an opening is voiced, as a share within each class:
#:
#: * ``classic``: the agent's greeting and a caller turn of a few sentences (about 40 words);
#: * ``rambling``: the same scripts with restarts, self-corrections and asides;
#: * ``short``: maybe a greeting, then one short sentence ("I lost my debit card.");
#: * ``typed``: a terse typed-style request, no greeting, no fillers ("card declined");
#: * ``cut_off``: a short request cut off mid-sentence, after the words that show its class;
#: * ``greeting_only``: the caller greets and says nothing more: a hang-up or dead air, noise only.
REGISTER_SHARES: dict[str, dict[str, float]] = {
    **{label: {"classic": 0.46, "rambling": 0.1, "short": 0.17, "typed": 0.17, "cut_off": 0.1}
       for label in ("buying", "service", "informational")},
    "noise": {"classic": 0.5, "rambling": 0.0, "short": 0.16, "typed": 0.1, "cut_off": 0.0,
              "greeting_only": 0.24},
}
REGISTERS: tuple[str, ...] = ("classic", "rambling", "short", "typed", "cut_off", "greeting_only")

#: Sources that come with a campaign name; the others (referral, organic, direct) have none.
_TRACKED_SOURCES = ("google_ads", "facebook_ads", "radio", "direct_mail", "billboard", "tv", "yelp")
_ALL_SOURCES = (*_TRACKED_SOURCES, "referral", "organic", "direct")
_PUNCT = (",", ".", "?", "!")


class SynthError(UserError, ValueError):
    """A corpus generation argument is invalid; the message names it."""


@dataclass(frozen=True)
class Span:
    """Where a signal's words are in the transcript (``transcript[start:end] == text``)."""

    signal: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Turn:
    """One speaker turn of the opening."""

    speaker: str  # "agent" | "caller"
    text: str


@dataclass(frozen=True)
class SynthCall:
    """One generated call opening with its labels.

    Attributes:
        call_id: ``synth-000000`` style id, the row index in the corpus.
        transcript: The turns joined by single spaces.
        label: Intent class (one of ``CLASS_NAMES``).
        signals: Signals present, in ``SIGNAL_NAMES`` order (exactly the signals of ``spans``).
        spans: Character spans of every signal phrase.
        turns: Agent and caller turns in order.
        words: The transcript's whitespace tokens with simulated start/end seconds.
        source: Ad source the call was tracked to (``google_ads``, ``referral``, ``direct`` ...).
        campaign: Campaign name for tracked sources, ``""`` otherwise.
        industry: Industry machine name.
        scenario: ``<class>.<scenario>`` that produced the call (for slicing errors).
        asr_noise: Whether the row was rendered as telephone-ASR text.
        register: How the opening is voiced (one of :data:`REGISTERS`).
    """

    call_id: str
    transcript: str
    label: str
    signals: tuple[str, ...]
    spans: tuple[Span, ...]
    turns: tuple[Turn, ...]
    words: tuple[Word, ...]
    source: str
    campaign: str
    industry: str
    scenario: str
    asr_noise: bool
    register: str = "classic"

    def to_json(self) -> dict[str, Any]:
        """The labeled-example JSON object of docs/ARCHITECTURE.md (plus turns, words, scenario)."""
        return {
            "call_id": self.call_id,
            "transcript": self.transcript,
            "label": self.label,
            "signals": list(self.signals),
            "spans": [{"signal": s.signal, "start": s.start, "end": s.end, "text": s.text}
                      for s in self.spans],
            "source": self.source,
            "campaign": self.campaign,
            "industry": self.industry,
            "scenario": self.scenario,
            "asr_noise": self.asr_noise,
            "register": self.register,
            "turns": [{"speaker": t.speaker, "text": t.text} for t in self.turns],
            "words": [{"text": w.text, "start": w.start, "end": w.end, "speaker": w.speaker}
                      for w in self.words],
        }


# --- building blocks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Piece:
    """A run of words; ``signal`` marks it as that signal's span."""

    text: str
    signal: str | None = None


Sentence = list[_Piece]


@dataclass
class _Draft:
    """A turn before rendering: sentences of pieces."""

    speaker: str
    sentences: list[Sentence]
    typed: bool = False  # typed text: no capitalisation


_SLOT = re.compile(r"\{(\w+)\}")


class _Call:
    """Random choices for one call: the industry, the caller, and slot fillers."""

    def __init__(self, rng: random.Random, industry: lex.Industry) -> None:
        self.rng = rng
        self.ind = industry
        self.first = rng.choice(lex.FIRST_NAMES)
        self.last = rng.choice(lex.LAST_NAMES)
        self.agent = rng.choice(lex.AGENT_NAMES)
        self.biz = rng.choice(industry.businesses)
        self.source = "direct"
        self.ad_mentioned = False
        self.introduced = False  # the caller already said hello and their name

    # choices
    def pick(self, seq: Sequence[Any]) -> Any:
        return self.rng.choice(seq)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    # slots
    def slot(self, name: str) -> str:
        """A random value for a named slot (recursively formatted)."""
        r = self.rng
        values: dict[str, Callable[[], str]] = {
            "first": lambda: self.first,
            "last": lambda: self.last,
            "name": lambda: r.choice(lex.FIRST_NAMES),
            "surname": lambda: r.choice(lex.LAST_NAMES),
            "beds": lambda: str(r.randint(2, 5)),
            "agent": lambda: self.agent,
            "biz": lambda: self.biz,
            "street": lambda: r.choice(lex.STREETS),
            "town": lambda: r.choice(lex.TOWNS),
            "state": lambda: r.choice(lex.STATES),
            "road": lambda: r.choice(lex.ROADS),
            "radio": lambda: r.choice(lex.RADIO),
            "day": lambda: r.choice(lex.DAYS),
            "month": lambda: r.choice(lex.MONTHS),
            "ordinal": lambda: _ordinal(r.randint(1, 28)),
            "hour": lambda: str(r.randint(1, 11)),
            "n": lambda: str(r.choice((2, 3, 4, 5, 6, 10, 12, 15))),
            "num": lambda: str(r.choice((r.randint(10, 99), r.randint(100, 999), r.randint(1000, 9999)))),
            "zip": lambda: str(r.randint(10000, 99999)),
            "digits": lambda: str(r.randint(10000, 9999999)),
            "phone": lambda: f"555-{r.randint(100, 199):04d}",
            "letter": lambda: r.choice("ABCDEFGHJKLMNPRSTW"),
            "price": lambda: self.money(r.choice((r.randint(30, 400), r.randint(100, 2500)))),
            "price2": lambda: self.money(r.choice((r.randint(30, 400), r.randint(100, 2500)))),
            "dayref": lambda: r.choice(lex.DAYREFS),
            "when": lambda: r.choice(lex.WHEN),
            "when_past": lambda: r.choice(lex.WHEN_PAST),
            "other": lambda: r.choice(lex.OTHER_PLACES),
            "lender": lambda: r.choice(lex.LENDERS),
            "vendor": lambda: r.choice(lex.VENDOR_NAMES),
            "trade": lambda: r.choice(lex.TRADES),
            "deal": lambda: r.choice(self.ind.deals),
            "payment": lambda: r.choice(lex.PAYMENTS),
        }
        if name not in values:
            raise KeyError(f"unknown slot {{{name}}}")
        return self.fmt(values[name]())

    def fmt(self, template: str) -> str:
        """Fill every ``{slot}`` in a plain template."""
        return _SLOT.sub(lambda m: self.slot(m.group(1)), template)

    def fill(self, template: str, **pieces: _Piece | str) -> Sentence:
        """Split a template into pieces; named slots take the given pieces, others random text."""
        out: Sentence = []
        pos = 0
        for m in _SLOT.finditer(template):
            if m.start() > pos:
                out.append(_Piece(self.fmt(template[pos:m.start()])))
            value = pieces.get(m.group(1))
            if value is None:
                out.append(_Piece(self.slot(m.group(1))))
            elif isinstance(value, _Piece):
                out.append(value)
            else:
                out.append(_Piece(self.fmt(value)))
            pos = m.end()
        if pos < len(template):
            out.append(_Piece(self.fmt(template[pos:])))
        return [p for p in (_Piece(p.text.strip(), p.signal) for p in out) if p.text]

    def sig(self, signal: str, template: str) -> _Piece:
        assert signal in SIGNAL_INDEX, signal
        return _Piece(self.fmt(template), signal)

    # domain values
    def money(self, amount: int, unit: str = "") -> str:
        style = self.rng.random()
        if style < 0.6:
            text = f"${amount:,}"
        elif style < 0.85:
            text = f"{amount:,} dollars"
        else:
            text = f"{amount} bucks"
        return f"{text} {unit}" if unit else text

    def product(self) -> tuple[lex.Product, str]:
        product = self.pick(self.ind.products)
        return product, self.fmt(self.pick(product.names))

    def price_of(self, product: lex.Product) -> str | None:
        low, high = product.price
        if high == 0:
            return None
        amount = self.rng.randint(low, high)
        step = 5 if amount < 300 else 50 if amount < 3000 else 500
        amount = max(step, round(amount / step) * step)
        if amount < 300 and self.rng.random() < 0.5:
            amount -= 1  # "$79", "$149": how prices are advertised
        return self.money(amount, product.unit)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _s(*parts: Sentence | _Piece | str | None, end: str = ".") -> Sentence:
    """Concatenate parts into one sentence ending in ``end`` ('' for none); None parts are skipped."""
    out: Sentence = []
    for part in parts:
        if part is None:
            continue
        if isinstance(part, str):
            if part:
                out.append(_Piece(part))
        elif isinstance(part, _Piece):
            out.append(part)
        else:
            out.extend(part)
    if end:
        out.append(_Piece(end))
    return out


# --- shared caller phrases ---------------------------------------------------------------------------


def _opener(c: _Call) -> Sentence | None:
    """"Hi, my name is Sarah." or "Hey." or nothing."""
    if c.introduced:
        return None
    parts: list[str] = []
    if c.chance(0.7):
        parts.append(c.pick(lex.OPENERS))
    if c.chance(0.3):
        parts.append(c.fmt(c.pick(lex.INTRODUCTIONS)))
    if not parts:
        return None
    return _s(", ".join(parts))


def _context(c: _Call, p: float = 0.25) -> Sentence | None:
    return _s(c.fmt(c.pick(lex.CONTEXT))) if c.chance(p) else None


def _closer(c: _Call, p: float = 0.3) -> Sentence | None:
    if not c.chance(p):
        return None
    text = c.pick(lex.CLOSERS)
    return _s(text, end="?" if text.startswith(("is ", "can ", "who ")) else ".")


def _ad(c: _Call, p: float) -> Sentence | None:
    """An ad or referral mention, recorded as an ad_reference span; sets the call's source."""
    if not c.chance(p):
        return None
    c.ad_mentioned = True
    if c.chance(0.25):
        c.source = c.pick(("facebook_ads", "google_ads", "direct_mail", "radio", "tv"))
        ad = c.sig("ad_reference", c.pick(lex.AD_WITH_DEAL))
        deal = c.sig("specific_need", c.pick(c.ind.deals))
        return _s(c.pick(("", "so", "yeah,")), ad, deal, end=c.pick((".", ",")))
    phrase, source = c.pick(lex.AD_REFERENCES)
    c.source = source
    return _s(c.pick(("", "", "so", "yeah,", "hi,")), c.sig("ad_reference", phrase),
              c.pick(("", "and", "", "so")), end=c.pick((".", ",", "")))


def _need(c: _Call, name: str) -> Sentence:
    return c.fill(c.pick(lex.NEED_FRAMES), need=c.sig("specific_need", name))


def _price_question(c: _Call, name: str | None) -> Sentence:
    """A price_inquiry span, before the object when ``name`` is given, else about "that"."""
    if name is not None:
        return _s(c.sig("price_inquiry", c.pick(lex.PRICE_BEFORE)), c.sig("specific_need", name), end="?")
    lead = c.pick(("", "", "and", "so", "um,", "just roughly,"))
    return _s(lead, c.sig("price_inquiry", c.pick(lex.PRICE_AFTER)), end="?")


def _quote(c: _Call, name: str | None) -> Sentence:
    if name is not None and c.chance(0.5):
        return _s(c.sig("quote_request", c.pick(lex.QUOTE_ON)), c.sig("specific_need", name),
                  end=c.pick(("?", ".")))
    text = c.pick(lex.QUOTES)
    lead = c.pick(("", "", "and", "so", "basically"))
    return _s(lead, c.sig("quote_request", text), end="?" if text.startswith(("can", "could")) else ".")


def _appointment(c: _Call, *, urgent: bool = False, lead: bool = True) -> Sentence:
    if c.chance(0.7):
        frame = c.pick(lex.APPOINTMENT_FRAMES)
        ask = c.sig("appointment_request", frame.format(visit=c.pick(c.ind.visits)))
    else:
        ask = c.sig("appointment_request", c.pick(lex.APPOINTMENT_GENERIC))
    when: _Piece | str | None = None
    if urgent:
        when = c.sig("urgency", c.pick(("today", "today if possible", "as soon as possible", "asap",
                                        "this afternoon", "tonight", "right away")))
    elif c.chance(0.45):
        when = c.fmt(c.pick(lex.WHEN))
    question = ask.text.startswith(("can", "could", "is", "do", "when", "what"))
    return _s(c.pick(("", "", "so", "and")) if lead else None, ask, when, end="?" if question else ".")


def _urgency(c: _Call) -> Sentence:
    return _s(c.pick(("", "and", "", "because")), c.sig("urgency", c.pick(lex.URGENCY)), end=".")


def _existing(c: _Call) -> Sentence:
    return _s(c.pick(("", "", "so", "well,")), c.sig("existing_customer", c.pick(lex.EXISTING)), end=".")


def _owned(c: _Call) -> _Piece:
    return c.sig("existing_customer", c.pick(c.ind.owned))


def _account(c: _Call) -> _Piece:
    return c.sig("existing_customer", c.pick(c.ind.account_refs))


# --- scenarios: each returns the caller's sentences (and, rarely, agent lines) --------------------------


@dataclass(frozen=True)
class _AgentSays:
    """An agent line inside a scenario (the wrong-number correction)."""

    sentence: Sentence


Script = list["Sentence | _AgentSays | None"]


def _detail(c: _Call, p: float = 0.25) -> Sentence | None:
    return _s(c.fmt(c.pick(lex.DETAILS))) if c.chance(p) else None


def _research(c: _Call, p: float) -> Sentence | None:
    return _s(c.pick(lex.RESEARCH)) if c.chance(p) else None


def _capability(c: _Call, name: str) -> Sentence:
    return c.fill(c.pick(lex.CAPABILITY), need=c.sig("specific_need", name)) + [_Piece("?")]


def _existing_clause(c: _Call) -> Sentence:
    clauses = lex.EXISTING_CLAUSES[lex.EXISTING_CLAUSE_KIND.get(c.ind.name, "account")]
    return _s(c.pick(("", "", "and", "and um,", "oh and")), c.sig("existing_customer", c.pick(clauses)))


def _fault(c: _Call) -> _Piece:
    return c.sig("specific_need", c.pick(c.ind.faults))


def _info_question(c: _Call) -> Sentence:
    """A general question: hours, location and the like, or (half the time) a rate, fee, policy,
    "do you accept X", eligibility or service-area question."""
    if c.chance(0.5):
        policy = c.pick((*lex.INFO_POLICY, *lex.INFO_AREA, *c.ind.policies, *c.ind.policies))
        return _s(c.fmt(policy), end="?")
    return _s(c.fmt(c.pick((*lex.INFO_GENERIC, *c.ind.info, *c.ind.info))), end="?")


def _buying_price(c: _Call) -> Script:
    product, name = c.product()
    out: Script = [_opener(c), _ad(c, 0.3), _context(c), _research(c, 0.12)]
    style = c.rng.random()
    if style < 0.3:
        out += [_s(_need(c, name), end=c.pick((".", ","))), _detail(c, 0.2), _price_question(c, None)]
    elif style < 0.55:
        out.append(_price_question(c, name))
    elif style < 0.75:
        out.append(_need(c, name) + [_Piece(","), c.sig("price_inquiry", c.pick(lex.PRICE_AFTER)),
                                     _Piece("?")])
    else:  # opens like an informational capability question
        out += [_capability(c, name), _detail(c, 0.2), _price_question(c, None)]
    price = c.price_of(product)
    if price and c.chance(0.2):
        out.append(_s(c.pick(("somebody told me it's around", "I was seeing online it's like",
                              "my budget is about", "another company quoted me", "last time I paid")), price))
    out += [_urgency(c) if c.chance(0.12) else None, _appointment(c) if c.chance(0.15) else None,
            _detail(c, 0.2), _closer(c)]
    return out


def _buying_quote(c: _Call) -> Script:
    product, name = c.product()
    out: Script = [_opener(c), _ad(c, 0.3), _context(c), _research(c, 0.08)]
    style = c.rng.random()
    if style < 0.4:
        out += [_s(_need(c, name)), _detail(c, 0.25), _quote(c, None)]
    elif style < 0.75:
        out.append(_quote(c, name))
    else:
        out += [_capability(c, name), _quote(c, None)]
    price = c.price_of(product)
    if price and c.chance(0.15):
        out.append(_s(c.pick(("another company quoted me", "I already got one for", "the last guy wanted")),
                      price))
    out += [_detail(c, 0.3), _urgency(c) if c.chance(0.15) else None,
            _appointment(c) if c.chance(0.2) else None, _closer(c)]
    return out


def _buying_appointment(c: _Call) -> Script:
    out: Script = [_opener(c), _ad(c, 0.2), _context(c)]
    if c.chance(0.5):
        problems = c.ind.faults if c.ind.fixes_for_anyone and c.chance(0.5) else c.ind.new_problems
        out.append(_s(c.pick(("", "so", "yeah,", "well,")), c.sig("specific_need", c.pick(problems)),
                      end=c.pick((".", ","))))
    else:
        _, name = c.product()
        out.append(_s(_need(c, name)))
    out.append(_detail(c, 0.25))
    urgent = c.chance(0.3)
    out.append(_appointment(c, urgent=urgent))
    out += [_urgency(c) if not urgent and c.chance(0.12) else None,
            _price_question(c, None) if c.chance(0.15) else None, _detail(c, 0.15), _closer(c)]
    return out


def _buying_purchase(c: _Call) -> Script:
    product, name = c.product()
    out: Script = [_opener(c), _ad(c, 0.3), _context(c)]
    out.append(c.fill(c.pick(lex.PURCHASE_FRAMES), need=c.sig("specific_need", name)) + [_Piece(".")])
    price = c.price_of(product)
    if price and c.chance(0.3):
        out.append(_s(c.pick(("you quoted me", "the website says", "I saw it listed for", "the ad said")),
                      price))
    if c.chance(0.35):
        out.append(_s(c.pick(("what do I need to do", "how do we get started", "what's the next step",
                              "do you need my information", "can I pay over the phone",
                              "how does that work")), end="?"))
    out += [_detail(c, 0.3), _appointment(c) if c.chance(0.2) else None, _closer(c)]
    return out


def _buying_addon(c: _Call) -> Script:
    """Existing customer buying something new: buying with existing_customer."""
    out: Script = [_opener(c), _context(c, 0.15)]
    how = c.rng.random()
    if how < 0.4:
        out.append(_existing(c))
    elif how < 0.7:
        acct = c.pick(c.ind.account_refs)
        out.append(_s(c.sig("existing_customer",
                            f"{acct} {c.pick(('is with you guys', 'is with you', 'is here'))}")))
    else:
        out.append(_s(c.pick(("you guys did", "I got", "you did")), _owned(c)))
    addon = c.sig("specific_need", c.pick(c.ind.addons))
    wants = c.pick(("I wanted to add", "I'm thinking about adding", "I'm interested in", "I'd like to get",
                    "I was wondering about", "now I want", "I need to add"))
    style = c.rng.random()
    if style < 0.45:
        out += [_s(wants, addon), _detail(c, 0.2), _price_question(c, None)]
    elif style < 0.65:
        asks = ("how much would it be to add", "what would you charge for", "how much is it for",
                "what's the price for", "how much extra for")
        ask = c.sig("price_inquiry", c.pick(asks))
        out.append(_s(ask, addon, end="?"))
    elif style < 0.8:
        out += [_s(wants, addon), _quote(c, None)]
    else:
        out += [_s(wants, addon), _appointment(c)]
    out.append(_closer(c))
    return out


def _buying_existing_visit(c: _Call) -> Script:
    """Existing customer booking a new visit: buying (rescheduling one would be service)."""
    existing = c.sig("existing_customer", c.pick(lex.EXISTING_NEW_VISIT))
    out: Script = [_opener(c), _context(c, 0.2), _s(c.pick(("", "so", "yeah,")), existing)]
    if c.chance(0.6):
        _, name = c.product()
        out.append(_s(c.pick(("I need", "I'm due for", "I'd like", "I want to get", "this time it's for")),
                      c.sig("specific_need", name)))
    out += [_appointment(c, urgent=c.chance(0.15)), _detail(c, 0.25), _closer(c)]
    return out


def _buying_info_to_booking(c: _Call) -> Script:
    """Starts like an informational call, turns into a booking."""
    out: Script = [_opener(c), _ad(c, 0.2), _context(c, 0.15), _info_question(c)]
    if c.chance(0.3):
        out.append(_info_question(c))
    out.append(_s(c.pick(lex.INFO_TO_BOOKING), _appointment(c, urgent=c.chance(0.15), lead=False), end=""))
    if c.chance(0.4):
        _, name = c.product()
        out.append(_s(c.pick(("it's for", "I need", "we're looking at", "this would be for")),
                      c.sig("specific_need", name)))
    out += [_detail(c, 0.2), _closer(c)]
    return out


def _buying_new_problem(c: _Call) -> Script:
    """A fresh problem with something the business did not sell: a new job."""
    out: Script = [_opener(c), _ad(c, 0.15), _context(c)]
    problems = c.ind.faults if c.ind.fixes_for_anyone and c.chance(0.6) else c.ind.new_problems
    out.append(_s(c.pick(("", "so", "yeah,", "um,")), c.sig("specific_need", c.pick(problems))))
    out.append(_detail(c, 0.3))
    roll = c.rng.random()
    if roll < 0.45:
        out.append(_appointment(c, urgent=c.chance(0.35)))
    elif roll < 0.7:
        out.append(_price_question(c, None))
    elif roll < 0.85:
        out.append(_quote(c, None))
    else:
        out += [_s(c.pick(("can you help me", "is that something you can take care of",
                           "can you guys do that", "what are my options")), end="?"), _appointment(c)]
    out += [_urgency(c) if c.chance(0.2) else None, _closer(c)]
    return out


def _buying_pending_quote(c: _Call) -> Script:
    """Follows up on a quote not yet received: sounds like a status call, but still pre-purchase."""
    out: Script = [_opener(c), _context(c)]
    out.append(c.fill(c.pick(lex.STATUS_FRAMES), item=c.sig("quote_request", c.pick(lex.PENDING_QUOTES)))
               + [_Piece(c.pick(("?", ".")))])
    if c.chance(0.4):
        _, name = c.product()
        out.append(_s(c.pick(("it's for", "it was for", "this is for")), c.sig("specific_need", name)))
    out += [_s(c.fmt(c.pick(lex.ITEM_IDS))) if c.chance(0.3) else None, _detail(c, 0.2),
            _appointment(c) if c.chance(0.2) else None, _closer(c)]
    return out


def _buying_existing_repair(c: _Call) -> Script:
    """A customer of other work with a new problem: a new job, so buying (unless they did the thing)."""
    if not c.ind.fixes_for_anyone:
        return _buying_existing_visit(c)
    out: Script = [_opener(c), _context(c, 0.15), _existing(c),
                   _s(c.pick(("", "so", "this time", "and")), _fault(c))]
    roll = c.rng.random()
    out.append(_appointment(c, urgent=c.chance(0.3)) if roll < 0.6 else _price_question(c, None) if roll < 0.8
               else _quote(c, None))
    out += [_detail(c, 0.2), _closer(c)]
    return out


def _buying_short_need(c: _Call) -> Script:
    """A terse caller: "Hi, I need a water heater." and little else."""
    need = c.sig("specific_need", c.product()[1])
    frame = c.pick(("I need", "I'm looking for", "we need", "I'm trying to get", "I need to get", "yeah,",
                    "calling about"))
    out: Script = [_opener(c), _s(frame, need, c.fmt(c.pick(lex.WHEN)) if c.chance(0.3) else None)]
    out += [_urgency(c) if c.chance(0.2) else None, _closer(c, 0.4)]
    return out


def _buying_mixed(c: _Call) -> Script:
    """A service matter, then a new purchase in the same call: buying wins."""
    first = c.pick((_service_status, _service_billing, _service_account, _service_reschedule))(c)
    first = [item for item in first if item][:3]
    product_name = c.pick(c.ind.addons) if c.chance(0.5) else c.product()[1]
    out: Script = [*first, _s(c.pick(lex.WHILE_I_HAVE_YOU), ",", end="") if c.chance(0.6) else None]
    roll = c.rng.random()
    if roll < 0.4:
        out.append(_s(c.pick(("I wanted to ask about", "I'm interested in", "I want to add", "I need")),
                      c.sig("specific_need", product_name), end="."))
        out.append(_price_question(c, None))
    elif roll < 0.6:
        out.append(_price_question(c, product_name))
    elif roll < 0.8:
        out.append(_quote(c, product_name))
    else:
        out += [_s(c.pick(("I need", "we need", "I'd like")), c.sig("specific_need", product_name)),
                _appointment(c)]
    return out


def _service_support(c: _Call) -> Script:
    """A problem with something this business sold or did: service, even with a visit request or urgency."""
    out: Script = [_opener(c), _context(c), _existing(c) if c.chance(0.15) else None]
    if c.chance(0.5):
        out.append(_s(c.pick(("", "so", "yeah,")), _owned(c), c.pick(c.ind.problems)))
    else:  # same words as a new job, plus who did the work
        fault = _s(c.pick(("", "so", "yeah,", "um,")), _fault(c), end=c.pick((".", ",")))
        clause = _existing_clause(c)
        out += [fault, clause] if c.chance(0.6) else [clause, fault]
    out.append(_detail(c, 0.2))
    roll = c.rng.random()
    if roll < 0.4:
        if c.chance(0.5):
            out.append(_s(c.sig("appointment_request", c.pick(lex.COME_BACK)), end="?"))
        else:
            out.append(_appointment(c))
    elif roll < 0.6:
        asks = ["what can you guys do about it", "can you look into it", "can you help me with that"]
        if lex.EXISTING_CLAUSE_KIND.get(c.ind.name) == "thing":
            asks += ["isn't that under warranty", "is that covered", "can you fix it"]
        out.append(_s(c.pick(asks), end="?"))
    if c.chance(0.2):
        out.append(_s(c.sig("urgency", c.pick(lex.SERVICE_URGENCY))))
    out.append(_closer(c))
    return out


def _service_status(c: _Call) -> Script:
    out: Script = [_opener(c), _context(c), _existing(c) if c.chance(0.25) else None]
    out.append(c.fill(c.pick(lex.STATUS_FRAMES), item=c.sig("existing_customer", c.pick(c.ind.status_items)))
               + [_Piece(c.pick(("?", ".")))])
    if c.chance(0.4):
        out.append(_s(c.fmt(c.pick(lex.ITEM_IDS))))
    if c.chance(0.2):
        out.append(_s(c.pick(("it's been", "it's already been")), c.fmt("{n}"), c.pick(("weeks", "days"))))
    out += [_detail(c, 0.2), _closer(c)]
    return out


def _service_billing(c: _Call) -> Script:
    """Bill amounts are mentioned, but nobody asks what something would cost."""
    out: Script = [_opener(c), _context(c), _existing(c) if c.chance(0.2) else None]
    out.append(c.fill(c.pick(lex.BILLING), acct=_account(c)) + [_Piece(c.pick((".", "?")))])
    if c.chance(0.3):
        out.append(_s(c.pick(("can you look into that", "can somebody explain that", "I need that fixed",
                              "can you take that off", "I want that credited back")), end="?"))
    out += [_detail(c, 0.2), _closer(c)]
    return out


def _service_refund(c: _Call) -> Script:
    out: Script = [_opener(c), _context(c)]
    out.append(c.fill(c.pick(lex.REFUNDS), owned=_owned(c)) + [_Piece(".")])
    if c.chance(0.5):
        out.append(_s(c.pick(("it", "it just", "the thing")), c.pick(c.ind.problems)))
    out += [_detail(c, 0.2), _closer(c)]
    return out


def _service_reschedule(c: _Call) -> Script:
    out: Script = [_opener(c), _context(c)]
    if c.chance(0.3):
        out.append(_s(c.sig("existing_customer", c.pick(lex.EXISTING_NEW_VISIT))))
    booking = c.sig("existing_customer", c.pick(c.ind.bookings))
    out.append(c.fill(c.pick(lex.RESCHEDULE), booking=booking) + [_Piece(".")])
    if c.chance(0.4):
        out.append(_s(c.fmt(c.pick(lex.ITEM_IDS))))
    if c.chance(0.2):
        out.append(_s(c.pick(("do you have anything", "is there anything open", "what else do you have")),
                      c.fmt(c.pick(lex.WHEN)), end="?"))
    out += [_detail(c, 0.2), _closer(c)]
    return out


def _service_account(c: _Call) -> Script:
    out: Script = [_opener(c), _context(c), _existing(c) if c.chance(0.25) else None]
    task = c.fill(c.pick(c.ind.account_tasks), acct=_account(c))
    lead = c.pick(("I need to", "I want to", "I'm trying to", "I'd like to", "can you help me"))
    out.append(_s(lead, task))
    if c.chance(0.35):
        out.append(_s(c.pick(("I tried doing it online", "the website won't let me",
                              "the app keeps giving me an error", "I've been trying all morning"))))
    out += [_detail(c, 0.2), _closer(c)]
    return out


def _service_complaint(c: _Call) -> Script:
    out: Script = [_opener(c), _context(c)]
    out.append(c.fill(c.pick(lex.COMPLAINTS), owned=_owned(c),
                      item=c.sig("existing_customer", c.pick(c.ind.status_items))) + [_Piece(".")])
    if c.chance(0.3):
        out.append(_s(c.pick(("I'd like to talk to a manager", "this is the second time",
                              "I'm really frustrated", "I want this resolved"))))
    if c.chance(0.15):
        out.append(_s(c.sig("urgency", c.pick(lex.SERVICE_URGENCY))))
    out += [_detail(c, 0.2), _closer(c)]
    return out


def _info_general(c: _Call) -> Script:
    ask = _s(c.fmt(c.pick(lex.INFO_NEEDS))) if c.chance(0.3) else _info_question(c)
    out: Script = [_opener(c), _context(c), _research(c, 0.1), ask]
    if c.chance(0.35):
        out.append(_s(c.pick(("and", "also,", "oh, and", "")), _info_question(c)))
    out += [_detail(c, 0.2), _closer(c)]
    return out


def _info_capability(c: _Call) -> Script:
    """Asks whether they offer a product (specific_need), with no purchase step."""
    _, name = c.product()
    out: Script = [_opener(c), _context(c), _research(c, 0.3), _capability(c, name)]
    if c.chance(0.3):
        out.append(_info_question(c))
    out += [_detail(c, 0.2), _closer(c)]
    return out


def _info_after_ad(c: _Call) -> Script:
    out: Script = [_opener(c), _ad(c, 1.0), _info_question(c), _research(c, 0.3), _detail(c, 0.2), _closer(c)]
    return out


def _info_research(c: _Call) -> Script:
    out: Script = [_opener(c), _context(c), _s(c.pick(lex.RESEARCH))]
    if c.chance(0.4):
        _, name = c.product()
        out.append(_s(c.pick(("we might think about", "at some point we might look at", "maybe down the road",
                              "eventually I'd like to learn about")), c.sig("specific_need", name)))
    out += [_info_question(c), _detail(c, 0.2), _closer(c)]
    return out


_BRACKETED = re.compile(r"\[([^\]]+)\]")


def _terms_question(c: _Call) -> Sentence:
    """An existing customer's general question about the terms of what they have (informational):
    the bracketed words of :attr:`~data.synth_lexicon.Industry.terms` become an existing_customer span."""
    template = c.pick(c.ind.terms)
    out: Sentence = []
    pos = 0
    for m in _BRACKETED.finditer(template):
        out += c.fill(template[pos:m.start()])
        out.append(c.sig("existing_customer", m.group(1)))
        pos = m.end()
    out += c.fill(template[pos:])
    return out + [_Piece("?")]


def _info_terms(c: _Call) -> Script:
    """An existing customer asks about the terms of their plan, card or lease: informational."""
    if not c.ind.terms:
        return _info_policy(c)
    out: Script = [_opener(c), _context(c, 0.2), _existing(c) if c.chance(0.3) else None, _terms_question(c)]
    if c.chance(0.25):
        out.append(_s(c.pick(("and", "also,", "oh, and")), _info_question(c)))
    out += [_detail(c, 0.15), _closer(c)]
    return out


def _info_policy(c: _Call) -> Script:
    """Rates and fees as policy, returns/cancellation/warranty, "do you accept", eligibility, area."""
    ask = _s(c.fmt(c.pick((*c.ind.policies, *lex.INFO_POLICY, *lex.INFO_AREA))), end="?")
    out: Script = [_opener(c), _context(c), _research(c, 0.15), ask]
    if c.chance(0.3):
        out.append(_s(c.pick(("and", "also,", "oh, and", "")), _info_question(c)))
    out += [_detail(c, 0.15), _closer(c)]
    return out


def _info_existing(c: _Call) -> Script:
    """An existing customer with a general question (not about their account): informational."""
    out: Script = [_opener(c), _context(c, 0.15), _existing(c), _info_question(c)]
    if c.chance(0.3):
        out.append(_info_question(c))
    out += [_detail(c, 0.15), _closer(c)]
    return out


def _noise_wrong_number(c: _Call) -> Script:
    out: Script = [_opener(c) if c.chance(0.5) else None, _s(c.fmt(c.pick(lex.WRONG_TARGETS)), end="?")]
    if c.chance(0.5):
        text, signal = c.pick(lex.WRONG_REQUESTS)
        out.append(_s(_Piece(text, signal), end="?" if text.startswith(("how", "can")) else "."))
    if c.chance(0.6):
        out.append(_AgentSays(_s(c.fmt(c.pick(lex.AGENT_WRONG)))))
        if c.chance(0.7):
            out.append(_s(c.pick(lex.CALLER_WRONG_ACK)))
    else:
        out.append(_s(c.pick(lex.WRONG_NUMBER_ENDS)))
    return out


def _noise_robocall(c: _Call) -> Script:
    """Recorded sales pitch: sales words ("free quote", "special offer") but no caller need."""
    out: Script = [_s(c.fmt(c.pick(lex.ROBO_OPENINGS)), ",", c.pick(lex.ROBO_LINKS), c.pick(lex.ROBO_TOPICS))]
    out += [_s(c.fmt(c.pick(lex.ROBO_OFFERS))) for _ in range(c.rng.randint(1, 2))]
    out.append(_s(c.fmt(c.pick(lex.ROBO_ACTIONS))))
    if c.chance(0.4):
        out.append(_s(c.fmt(c.pick(lex.ROBO_ACTIONS))))
    return out


def _noise_vendor(c: _Call) -> Script:
    hello = _s(c.pick(("hi", "hey", "good morning", "hi there", "yes, hello")), end=",")
    hello = hello if c.chance(0.6) else None
    pitches = (*lex.VENDOR_PITCHES, *lex.VENDOR_PITCHES_MORE)
    out: Script = [hello, _s(c.fmt(c.pick(lex.VENDOR_INTROS))), _s(c.fmt(c.pick(pitches)))]
    if c.chance(0.3):
        out.append(_s(c.fmt(c.pick(pitches))))
    out.append(_s(c.pick(lex.VENDOR_ASKS), end="?"))
    return out


def _noise_robo_account(c: _Call) -> Script:
    """A scam or collection robocall about "your account", "your card", "your order": noise."""
    out: Script = [_s(c.fmt(c.pick(lex.ROBO_ACCOUNT)))]
    if c.chance(0.5):
        out.append(_s(c.fmt(c.pick(lex.ROBO_OFFERS))))
    out.append(_s(c.fmt(c.pick(lex.ROBO_ACTIONS))))
    return out


def _noise_reminder(c: _Call) -> Script:
    """Another business's automated appointment reminder, dialled to this number."""
    return [_s(c.fmt(c.pick(lex.REMINDER_MISDIALS))), _s(c.fmt(c.pick(lex.REMINDER_ACTIONS)))]


def _noise_recruiter(c: _Call) -> Script:
    hello = _s(c.pick(("hi", "hey", "good morning", "hi there")), end=",") if c.chance(0.5) else None
    out: Script = [hello, _s(c.fmt(c.pick(lex.RECRUITER_LINES)))]
    if c.chance(0.6):
        out.append(_s(c.pick(lex.VENDOR_ASKS), end="?"))
    return out


def _noise_wrong_service(c: _Call) -> Script:
    """A wrong number that names a service or another business ("is this the pharmacy? I need a refill")."""
    target, request, signal = c.pick(lex.WRONG_SERVICE)
    out: Script = [_opener(c) if c.chance(0.4) else None, _s(c.fmt(target), end="?")]
    if request:
        out.append(_spoken_piece(c.sig(signal, request) if signal else _Piece(c.fmt(request))))
    if c.chance(0.6):
        out.append(_AgentSays(_s(c.fmt(c.pick(lex.AGENT_WRONG)))))
        if c.chance(0.7):
            out.append(_s(c.pick(lex.CALLER_WRONG_ACK)))
    return out


def _spoken_piece(piece: _Piece) -> Sentence:
    """One piece as a sentence, ended with "?" when it asks."""
    asks = piece.text.startswith(("how", "can", "could", "is", "do", "what"))
    return _s(piece, end="?" if asks else ".")


def _noise_other(c: _Call) -> Script:
    bank = c.pick((lex.POCKET_DIALS, lex.PERSONAL, lex.SURVEYS))
    return [_s(c.fmt(c.pick(bank)))]


def _spoken(text: str) -> Sentence:
    """A line ended with "?" when it asks (or calls out "hello"), else "."."""
    asks = text.split(" ")[-1] in ("hello", "there", "me") or text.startswith(("can ", "is ", "are "))
    return _s(text, end="?" if asks else ".")


def _noise_dropped(c: _Call) -> Script:
    """Starts like a real caller and is cut off: nothing usable, so noise (and no signal)."""
    out: Script = [_opener(c), _s(c.pick(lex.DROPPED_STARTS) + "-", end="")]
    if c.chance(0.6):
        out.append(_AgentSays(_spoken(c.pick(lex.AGENT_SILENCE))))
    out.append(_spoken(c.pick(lex.DROPPED_ENDS)))
    return out


def _noise_silence(c: _Call) -> Script:
    out: Script = [_spoken(c.pick(lex.SILENCE))]
    if c.chance(0.7):
        out.append(_AgentSays(_spoken(c.pick(lex.AGENT_SILENCE))))
        if c.chance(0.4):
            out.append(_spoken(c.pick(("hello", "hello? hello", "can you hear me"))))
    return out


#: class -> scenario name -> (builder, weight within the class).
SCENARIOS: dict[str, dict[str, tuple[Callable[[_Call], Script], float]]] = {
    "buying": {
        "price": (_buying_price, 0.2), "quote": (_buying_quote, 0.14),
        "appointment": (_buying_appointment, 0.13),
        "purchase": (_buying_purchase, 0.08), "addon_existing": (_buying_addon, 0.12),
        "existing_new_visit": (_buying_existing_visit, 0.07),
        "info_to_booking": (_buying_info_to_booking, 0.1),
        "new_problem": (_buying_new_problem, 0.13), "pending_quote": (_buying_pending_quote, 0.06),
        "existing_repair": (_buying_existing_repair, 0.07), "mixed_service_first": (_buying_mixed, 0.08),
        "short_need": (_buying_short_need, 0.05),
    },
    "service": {
        "support": (_service_support, 0.24), "status": (_service_status, 0.16),
        "billing": (_service_billing, 0.17),
        "refund": (_service_refund, 0.08), "reschedule": (_service_reschedule, 0.13),
        "account": (_service_account, 0.14), "complaint": (_service_complaint, 0.08),
    },
    "informational": {
        "general": (_info_general, 0.32), "capability": (_info_capability, 0.22),
        "policy": (_info_policy, 0.2),
        "after_ad": (_info_after_ad, 0.12),
        "research": (_info_research, 0.12), "existing": (_info_existing, 0.1), "terms": (_info_terms, 0.12),
    },
    "noise": {
        "wrong_number": (_noise_wrong_number, 0.14), "robocall": (_noise_robocall, 0.14),
        "vendor": (_noise_vendor, 0.16), "silence": (_noise_silence, 0.1), "dropped": (_noise_dropped, 0.12),
        "other": (_noise_other, 0.1), "robo_account": (_noise_robo_account, 0.14),
        "reminder_misdial": (_noise_reminder, 0.07), "recruiter": (_noise_recruiter, 0.06),
        "wrong_service": (_noise_wrong_service, 0.12),
    },
}


# --- registers: one short sentence, typed requests, cut-off questions, greetings with no content ---------
#
# A core is the caller's whole request in one short sentence, following the class rules above.
# The short, cut-off and typed registers voice a core; the classic and rambling registers voice a
# scenario script.


def _core_buy_price(c: _Call) -> Sentence:
    return _price_question(c, c.product()[1])


def _core_buy_quote(c: _Call) -> Sentence:
    return _quote(c, c.product()[1]) if c.chance(0.7) else _s(_need(c, c.product()[1]), ",", _quote(c, None))


def _core_buy_need(c: _Call) -> Sentence:
    return _s(_need(c, c.product()[1]), c.fmt(c.pick(lex.WHEN)) if c.chance(0.25) else None)


def _core_buy_purchase(c: _Call) -> Sentence:
    return c.fill(c.pick(lex.PURCHASE_FRAMES), need=c.sig("specific_need", c.product()[1])) + [_Piece(".")]


def _core_buy_book(c: _Call) -> Sentence:
    if c.chance(0.5):
        _, name = c.product()
        frame = c.pick(("can I book {need}", "I'd like to book {need}", "I want to schedule {need}",
                        "can I get an appointment for {need}", "I need to set up {need}",
                        "can you fit me in for {need}"))
        lead, _, rest = frame.partition("{need}")
        ask = c.sig("appointment_request", lead.strip())
        when = c.fmt(c.pick(lex.WHEN)) if c.chance(0.5) else None
        return _s(ask, c.sig("specific_need", name), rest.strip() or None, when,
                  end="?" if lead.startswith("can") else ".")
    return _appointment(c, urgent=c.chance(0.2), lead=False)


def _core_buy_problem(c: _Call) -> Sentence:
    """A new job: a fault the business is hired to fix, and a visit, price or quote."""
    problems = c.ind.faults if c.ind.fixes_for_anyone and c.chance(0.5) else c.ind.new_problems
    problem = c.sig("specific_need", c.pick(problems))
    roll = c.rng.random()
    ask = (_appointment(c, urgent=c.chance(0.3), lead=False) if roll < 0.5 else _price_question(c, None)
           if roll < 0.75 else _quote(c, None))
    return _s(problem, ",", ask, end="")


def _core_service_status(c: _Call) -> Sentence:
    return c.fill(c.pick(lex.STATUS_FRAMES), item=c.sig("existing_customer", c.pick(c.ind.status_items))) + [
        _Piece(c.pick(("?", ".")))]


def _core_service_billing(c: _Call) -> Sentence:
    return c.fill(c.pick(lex.BILLING), acct=_account(c)) + [_Piece(c.pick((".", "?")))]


def _core_service_account(c: _Call) -> Sentence:
    lead = c.pick(("I need to", "I want to", "I'm trying to", "I'd like to", "can you help me", "I have to",
                   "how do I", "how can I"))
    task = c.fill(c.pick(c.ind.account_tasks), acct=_account(c))
    return _s(lead, task, end="?" if lead.startswith(("how", "can")) else ".")


def _core_service_change(c: _Call) -> Sentence:
    booking = c.sig("existing_customer", c.pick(c.ind.bookings))
    return c.fill(c.pick(lex.RESCHEDULE), booking=booking) + [_Piece(".")]


def _core_service_problem(c: _Call) -> Sentence:
    """Something this business sold is wrong: "the router you sent me keeps dropping"."""
    if not c.ind.fixes_for_anyone and c.chance(0.5):
        # Only a customer could have this problem with this business ("I lost my debit card").
        return _s(_fault(c))
    if c.chance(0.5):
        return c.fill(c.pick(lex.REFUNDS), owned=_owned(c)) + [_Piece(".")]
    return _s(_owned(c), c.pick(c.ind.problems))


def _core_info_question(c: _Call) -> Sentence:
    return _info_question(c)


def _core_info_policy(c: _Call) -> Sentence:
    return _s(c.fmt(c.pick((*c.ind.policies, *lex.INFO_POLICY, *lex.INFO_AREA))), end="?")


def _core_info_terms(c: _Call) -> Sentence:
    return _terms_question(c) if c.ind.terms else _core_info_policy(c)


def _core_info_capability(c: _Call) -> Sentence:
    return _capability(c, c.product()[1])


def _core_noise_wrong(c: _Call) -> Sentence:
    if c.chance(0.5):
        target, request, signal = c.pick(lex.WRONG_SERVICE)
        if request:
            return _s(c.fmt(target), "?", c.sig(signal, request) if signal else c.fmt(request), end="")
        return _s(c.fmt(target), end="?" if target.startswith("is") else ".")
    return _spoken_piece(_Piece(c.fmt(c.pick(lex.WRONG_TARGETS))))


def _core_noise_robo(c: _Call) -> Sentence:
    if c.chance(0.5):
        return _s(c.fmt(c.pick(lex.ROBO_ACCOUNT)), ",", c.fmt(c.pick(lex.ROBO_ACTIONS)))
    return _s(c.fmt(c.pick(lex.ROBO_OPENINGS)), ",", c.pick(lex.ROBO_LINKS), c.pick(lex.ROBO_TOPICS))


def _core_noise_vendor(c: _Call) -> Sentence:
    pitch = c.pick((*lex.VENDOR_PITCHES, *lex.VENDOR_PITCHES_MORE, *lex.RECRUITER_LINES))
    return _s(c.fmt(pitch), ",", c.pick(lex.VENDOR_ASKS), end="?")


def _core_noise_reminder(c: _Call) -> Sentence:
    return _s(c.fmt(c.pick(lex.REMINDER_MISDIALS)))


#: class -> core name -> (builder, weight within the class).
CORES: dict[str, dict[str, tuple[Callable[[_Call], Sentence], float]]] = {
    "buying": {"price": (_core_buy_price, 0.22), "quote": (_core_buy_quote, 0.14),
               "need": (_core_buy_need, 0.16), "purchase": (_core_buy_purchase, 0.12),
               "book": (_core_buy_book, 0.22),
               "new_problem": (_core_buy_problem, 0.14)},
    "service": {"status": (_core_service_status, 0.2), "billing": (_core_service_billing, 0.22),
                "account": (_core_service_account, 0.2), "change_booking": (_core_service_change, 0.16),
                "problem": (_core_service_problem, 0.22)},
    "informational": {"question": (_core_info_question, 0.35), "policy": (_core_info_policy, 0.3),
                      "terms": (_core_info_terms, 0.18), "capability": (_core_info_capability, 0.17)},
    "noise": {"wrong": (_core_noise_wrong, 0.35), "robo": (_core_noise_robo, 0.3),
              "vendor": (_core_noise_vendor, 0.25), "reminder": (_core_noise_reminder, 0.1)},
}


def _typed_core(c: _Call, label: str) -> tuple[str, Sentence]:
    """A terse typed request of ``label`` ("card declined", "quote for a new roof"): (name, sentence)."""
    if label == "buying":
        lead, signal = c.pick(lex.TYPED_BUYING)
        when = c.fmt(c.pick(lex.WHEN)) if c.chance(0.25) else None
        need = c.sig("specific_need", c.product()[1])
        return "typed_buy", _s(c.sig(signal, lead) if signal else lead, need, when, end="")
    if label == "service":
        if c.chance(0.35):
            return "typed_plain", _s(c.pick(lex.TYPED_SERVICE_PLAIN), end="")
        existing = {"acct": _account(c), "item": c.sig("existing_customer", c.pick(c.ind.status_items)),
                    "booking": c.sig("existing_customer", c.pick(c.ind.bookings)), "owned": _owned(c)}
        if c.chance(0.3):  # an account task as an assistant request: "how do I update the card on my account"
            task = c.fill(c.pick(c.ind.account_tasks), acct=existing["acct"])
            return "typed_task", _s(c.pick(lex.TYPED_LEADS), task, end="")
        request = c.fill(c.pick(lex.TYPED_SERVICE), **existing)
        if request[0].signal is None and request[0].text.split()[0] in _TYPED_VERBS and c.chance(0.4):
            request = _s(c.pick(lex.TYPED_LEADS), request, end="")
        return "typed_account", request
    if label == "informational":
        if c.chance(0.4):
            question = c.fmt(c.pick((*c.ind.policies, *lex.INFO_POLICY, *c.ind.info)))
            if question.startswith(("what", "how", "where", "is there")) and c.chance(0.5):
                question = f"{c.pick(lex.TYPED_ASK_LEADS)} {question}"
            return "typed_policy", _s(question, end="")
        return "typed_info", _s(c.fmt(c.pick(lex.TYPED_INFO)), end="")
    return "typed_noise", _s(c.fmt(c.pick(lex.TYPED_NOISE)), end="")


#: Verbs a typed service request starts with, which can follow a lead ("please cancel ...").
_TYPED_VERBS = frozenset({"cancel", "check", "pay", "make", "update", "dispute", "reschedule", "move",
                          "return", "close", "confirm", "change"})


def _typed(sentence: Sentence, c: _Call) -> Sentence:
    """The sentence as typed text: usually no end punctuation, often all lower case."""
    out = list(sentence)
    while out and out[-1].text in (".", ","):
        out.pop()
    if out and out[-1].text == "?" and c.chance(0.6):
        out.pop()
    if c.chance(0.5):
        out = [_Piece(p.text.lower(), p.signal) for p in out]
    return out


def _brief(c: _Call, label: str, register: str) -> tuple[str, list[_Draft]]:
    """An opening in the short, typed, cut-off or greeting-only register: (scenario, turns).

    * ``short``: maybe a greeting, then one short caller sentence ("I lost my debit card.").
    * ``typed``: one terse caller line and no agent, like an IVR, chat or voice-assistant
      transcript ("card declined", "quote for a new roof", "do you accept Apple Pay").
    * ``cut_off``: a short request that goes on and is cut mid-sentence; the cut only takes words
      after the request, or the end of its object, so what is left still shows the class.
    * ``greeting_only``: the caller greets and never gets to a request: a hang-up or dead air,
      always noise.
    """
    if register == "greeting_only":
        turns = _greeting(c)
        turns.append(_Draft("caller", [_spoken(c.fmt(c.pick(lex.GREETING_ONLY)))]))
        if c.chance(0.5):
            turns.append(_Draft("agent", [_s(c.pick(lex.GREETING_ONLY_AGENT), end="")]))
            if c.chance(0.6):
                follow = _s(c.pick(lex.GREETING_ONLY_FOLLOW), end=c.pick((".", "...")))
                turns.append(_Draft("caller", [follow]))
        return "greeting_only", turns
    if register == "typed":
        if c.chance(0.5):
            name, core = _typed_core(c, label)
        else:
            name = _weighted(c.rng, CORES[label])
            core = CORES[label][name][0](c)
        return name, [_Draft("caller", [_typed(core, c)], typed=True)]
    name = _weighted(c.rng, CORES[label])
    core = [p for p in CORES[label][name][0](c) if p.text]
    turns = _greeting(c, p_greet=0.6 if register == "short" else 0.75)
    opener = _s(c.pick(lex.OPENERS), ",", end="") if c.chance(0.35) else []
    if register == "cut_off":
        core = _cut(c, core)
    turns.append(_Draft("caller", [[*opener, *core]]))
    if register == "cut_off" and c.chance(0.4):
        turns.append(_Draft("agent", [_spoken(c.pick(lex.AGENT_CUT))]))
    return name, turns


def _cut(c: _Call, core: Sentence) -> Sentence:
    """The core cut off mid-sentence, keeping the words that show its class.

    Either the object at the end of the request is cut in the middle ("can I get a quote on a
    tankless-": the span it was is gone, the request's own span stays), or the caller goes on
    past the request and is cut in that continuation ("do you accept Cigna, or do I need to-").
    """
    words = [p for p in core if p.text not in _PUNCT]
    last = words[-1] if words else None
    head = core[:core.index(last)] if last is not None else []
    # The object goes only when a request span stays in front of it ("how much is a tank-"); after
    # a plain frame ("I'm calling about my-") too little would be left to tell the class.
    if (last is not None and last.signal in ("specific_need", "existing_customer")
            and any(p.signal in ("price_inquiry", "quote_request", "appointment_request") for p in head)
            and len(last.text.split()) >= 2 and c.chance(0.5)):
        tokens = last.text.split()
        keep = c.rng.randint(1, len(tokens) - 1)
        return [*head, _Piece(" ".join(tokens[:keep]) + "-")]
    body = list(core)
    while body and body[-1].text in _PUNCT:
        body.pop()
    tail = c.pick(lex.CUT_TAILS).split()
    keep = c.rng.randint(1, len(tail))
    return [*body, _Piece(","), _Piece(" ".join(tail[:keep]) + "-")]


# --- dialogue: greeting, interjections ------------------------------------------------------------------


#: Scenarios whose caller never negates another class's words (scripts, misdials, no content).
_NO_NEGATION = frozenset({"silence", "dropped", "robocall", "wrong_number", "other", "robo_account",
                          "reminder_misdial", "wrong_service"})


def _greeting(c: _Call, *, p_notice: float = 0.08, p_greet: float = 1.0) -> list[_Draft]:
    """The agent's greeting turn (sometimes after a recording notice), or none."""
    greeting: list[Sentence] = []
    if c.chance(p_notice):
        greeting.append(_s(c.pick(lex.RECORDING_NOTICES)))
    if c.chance(p_greet):
        text = c.fmt(c.pick(lex.GREETINGS))
        greeting.append(_s(text, end="?" if "help" in text or "do for you" in text else "."))
    return [_Draft("agent", greeting)] if greeting else []


def _dialogue(c: _Call, label: str, scenario: str, *, long: bool = False, rambling: bool = False
              ) -> list[_Draft]:
    """The whole opening as turns: greeting, the scenario's caller turn(s), agent interjections.

    ``long`` adds a preamble: the caller introduces themselves, the agent asks how to help, and
    the caller gives background before getting to the point. ``rambling`` voices the caller with
    restarts, self-corrections and an aside, and lets the agent get fewer words in.
    """
    turns = _greeting(c, p_notice=0.3 if long else 0.08, p_greet=0.7 if scenario == "robocall" else 1.0)

    background: Script = []
    if long:
        turns.append(_Draft("caller", [_s(c.pick(lex.OPENERS), ",", c.fmt(c.pick(lex.INTRODUCTIONS)))]))
        prompt = c.fmt(c.pick(lex.AGENT_PROMPTS))
        turns.append(_Draft("agent", [_s(prompt, end="?" if "how" in prompt or "what" in prompt else ".")]))
        c.introduced = True
        picks = c.rng.sample((*lex.CONTEXT, *lex.DETAILS), c.rng.randint(1, 3))
        background = [_s(c.fmt(text)) for text in picks]
    script = [*background, *(item for item in SCENARIOS[label][scenario][0](c) if item)]
    if rambling and label != "noise" and c.chance(0.5):
        # An aside before the point: the caller thinks out loud.
        script.insert(c.rng.randint(0, min(1, len(script))), _s(c.fmt(c.pick((*lex.CONTEXT, *lex.DETAILS)))))
    if scenario not in _NO_NEGATION and c.chance(0.18):
        # Another class's words, negated: "I'm not looking for a quote" in an informational call.
        negation = _s(c.pick(("", "", "and", "but", "so", "and no,")), c.pick(lex.NEGATIONS[label]))
        script.insert(c.rng.randint(1 if len(script) > 1 else 0, len(script)), negation)
    caller: list[Sentence] = []
    explicit_agent = False
    for item in script:
        if isinstance(item, _AgentSays):
            explicit_agent = True
            if caller:
                turns.append(_Draft("caller", caller))
            turns.append(_Draft("agent", [item.sentence]))
            caller = []
        else:
            sentence = _disfluent(c, item, rambling=rambling)
            if sentence:
                caller.append(sentence)
    if not caller:
        return turns
    # The agent interjects: a neutral acknowledgement or question splits the caller's turn.
    # Only after a full sentence with some content ("Hello, yes." is not worth an answer).
    cuts = [i for i in range(1, len(caller)) if caller[i - 1][-1].text in (".", "?", "!")
            and sum(len(p.text.split()) for s in caller[:i] for p in s) >= 6]
    if not explicit_agent and cuts and label != "noise" and c.chance(0.15 if rambling else 0.35):
        cut = c.pick(cuts)
        turns.append(_Draft("caller", caller[:cut]))
        rest = caller[cut:]
        roll = c.rng.random()
        if roll < 0.5:
            turns.append(_Draft("agent", [_s(c.pick(lex.AGENT_ACKS))]))
        elif roll < 0.82:
            question, answers = c.pick(lex.AGENT_QUESTIONS)
            turns.append(_Draft("agent", [_s(question, end="?")]))
            rest = [_s(c.fmt(c.pick(answers))), *rest]
        else:
            turns.append(_Draft("agent", [_s(c.pick(lex.CUSTOMER_QUESTIONS), end="?")]))
            existing = label == "service" or (label == "buying" and c.chance(0.3)) or (
                label == "informational" and c.chance(0.3))
            answer = (c.sig("existing_customer", c.pick(lex.EXISTING_ANSWERS)) if existing
                      else _Piece(c.pick(lex.NEW_ANSWERS)))
            rest = [_s(answer), *rest]
        turns.append(_Draft("caller", rest))
    else:
        turns.append(_Draft("caller", caller))
    if label != "noise" and not rambling and c.chance(0.35):
        # The call goes on inside the window: the agent takes details, the caller gives them.
        question, answers = c.pick(lex.AGENT_QUESTIONS)
        turns.append(_Draft("agent", [_s(c.pick(lex.AGENT_ACKS), ",", question, end="?")]))
        answer = [_s(c.fmt(c.pick(answers)))]
        if c.chance(0.4):
            answer.append(_s(c.fmt(c.pick(lex.DETAILS))))
        turns.append(_Draft("caller", answer))
    if label != "noise" and c.chance(0.12):
        turns.append(_Draft("agent", [_s(c.pick(lex.AGENT_WRAPS))]))
    return turns


def _disfluent(c: _Call, sentence: Sentence, *, rambling: bool = False) -> Sentence:
    """Sprinkle fillers and restarts between pieces (never inside a signal span).

    A ``rambling`` caller fills, restarts and corrects themselves far more often.
    """
    out = list(sentence)
    if c.chance(0.55 if rambling else 0.22):
        at = c.rng.randint(0, max(0, len(out) - 2))
        filler = c.pick(lex.FILLERS)
        out[at:at] = [_Piece(filler), _Piece(",")] if at == 0 else [_Piece(","), _Piece(filler), _Piece(",")]
    if rambling and len(out) > 2 and c.chance(0.45):
        # A self-correction between two pieces: "I need- no wait, sorry, we need a quote".
        at = c.rng.randint(1, len(out) - 2)
        if out[at].text not in _PUNCT:
            stub = c.pick(("uh-", "the-", "a-", "I-", "we-", "my-", "it-", "so-"))
            out.insert(at, _Piece(f"{stub} {c.pick(lex.SELF_CORRECTIONS)}"))
    if c.chance(0.35 if rambling else 0.08):
        out.insert(0, _Piece(c.pick(lex.RESTARTS)))
    # A punctuation piece can't open a sentence.
    while out and out[0].text in _PUNCT:
        out.pop(0)
    return out


# --- rendering -----------------------------------------------------------------------------------------


def _render_clean(sentence: Sentence, capitalize: bool) -> Sentence:
    """Capitalise the sentence's first letter (the piece may be a signal span)."""
    out = list(sentence)
    if not capitalize:
        return out
    for i, piece in enumerate(out):
        if piece.text and piece.text not in _PUNCT:
            out[i] = _Piece(piece.text[0].upper() + piece.text[1:], piece.signal)
            break
    return out


_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
         "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                  "nine": "ninth", "twelve": "twelfth"}


def spell_number(n: int) -> str:
    """English words for a non-negative integer below a billion ("four thousand five hundred").

    Args:
        n: The number.

    Returns:
        The words, space separated, without "and" or hyphens (how ASR writes them).
    """
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + spell_number(n % 100))
    for size, word in ((1_000_000, "million"), (1000, "thousand")):
        if n >= size:
            rest = "" if n % size == 0 else " " + spell_number(n % size)
            return spell_number(n // size) + " " + word + rest
    raise ValueError(f"n must be below a billion, got {n}")


def _spell_ordinal(n: int) -> str:
    words = spell_number(n).split()
    last = words[-1]
    words[-1] = _ORDINAL_WORDS.get(last, last[:-1] + "ieth" if last.endswith("y") else last + "th")
    return " ".join(words)


_HOMOPHONES: dict[str, tuple[str, ...]] = {
    "there": ("their", "they're"), "their": ("there",), "to": ("too", "two"), "too": ("to",),
    "for": ("four",), "right": ("write",), "new": ("knew",), "no": ("know",), "know": ("no",),
    "hear": ("here",), "here": ("hear",), "by": ("buy", "bye"), "week": ("weak",), "our": ("hour", "are"),
    "would": ("wood",),
    "your": ("you're",), "you're": ("your",), "it's": ("its",), "then": ("than",), "than": ("then",),
    "wait": ("weight",), "sale": ("sail",), "meet": ("meat",), "see": ("sea",), "one": ("won",),
    "guys": ("guy's",), "and": ("an", "in"), "i'm": ("im",), "just": ("jus",), "weather": ("whether",),
    "been": ("bin",), "a": ("uh",), "of": ("have",), "you": ("ya",), "hi": ("high",), "wood": ("would",),
}
_ASR_FILLERS = ("um", "uh", "uh", "hmm", "ah")
_MONEY = re.compile(r"^\$([\d,]+)$")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
_ORD = re.compile(r"^(\d+)(st|nd|rd|th)$")
_INT = re.compile(r"^[\d,]+$")


def _asr_token(token: str, spell: bool) -> list[str]:
    """One clean token as telephone-ASR words (lower case, no punctuation, numbers normalised)."""
    token = token.strip(",.?!;:\"()")
    if not token:
        return []
    if m := _MONEY.match(token):
        amount = int(m.group(1).replace(",", ""))
        return [*(spell_number(amount).split() if spell else [str(amount)]), "dollars"]
    if m := _CLOCK.match(token):
        hour, minute = int(m.group(1)), int(m.group(2))
        if spell:
            return [*spell_number(hour).split(), *([] if minute == 0 else spell_number(minute).split())]
        return [str(hour)] if minute == 0 else [str(hour), m.group(2)]
    if m := _ORD.match(token):
        return _spell_ordinal(int(m.group(1))).split() if spell else [token.lower()]
    if _INT.match(token):
        digits = token.replace(",", "")
        if not spell:
            return [digits]
        if len(digits) >= 5:  # ids, zip codes, phone parts are read digit by digit
            return [_ONES[int(d)] for d in digits]
        if len(digits) == 4 and digits[:2] in ("19", "20") and digits[2] != "0":  # "twenty twenty one"
            return [*spell_number(int(digits[:2])).split(), *spell_number(int(digits[2:])).split()]
        return spell_number(int(digits)).split()
    words: list[str] = []
    for part in token.replace("-", " ").split():
        if part.isdigit() or _INT.match(part):
            words += _asr_token(part, spell)
        else:
            cleaned = re.sub(r"[^\w']", "", part.lower()).strip("'")
            if cleaned:
                words.append(cleaned)
    return words


def _render_asr(sentence: Sentence, rng: random.Random, spell: bool) -> Sentence:
    """The sentence as telephone-ASR output; signal pieces only change form, never lose words."""
    out: Sentence = []
    for piece in sentence:
        words = [w for tok in piece.text.split() for w in _asr_token(tok, spell)]
        if piece.signal is None:
            noisy: list[str] = []
            for w in words:
                roll = rng.random()
                if roll < 0.04:
                    continue  # dropped by the recogniser
                if roll < 0.07:
                    noisy.append(rng.choice(_ASR_FILLERS))
                if w in _HOMOPHONES and rng.random() < 0.15:
                    w = rng.choice(_HOMOPHONES[w])
                noisy.append(w)
            words = noisy
        if words:
            out.append(_Piece(" ".join(words), piece.signal))
    return out


def _assemble(drafts: list[_Draft], *, asr: bool, rng: random.Random | None = None
              ) -> tuple[str, list[Span], list[Turn]]:
    """Join the turns' pieces into the transcript, recording each signal piece's offsets.

    Args:
        drafts: The turns.
        asr: Render as telephone-ASR text (needs ``rng``) instead of clean text.
        rng: Random stream for the ASR rendering.
    """
    assert rng is not None or not asr
    spell = asr and rng is not None and rng.random() < 0.6
    transcript = ""
    spans: list[Span] = []
    turns: list[Turn] = []
    for draft in drafts:
        turn_start = len(transcript) + (1 if transcript else 0)
        capitalize = True
        for sentence in draft.sentences:
            if asr and rng is not None:
                rendered = _render_asr(sentence, rng, spell)
            else:
                rendered = _render_clean(sentence, capitalize and not draft.typed)
            # The next sentence starts with a capital only after a full stop (not after "so yeah,").
            capitalize = bool(sentence) and sentence[-1].text in (".", "?", "!")
            for piece in rendered:
                text = piece.text
                at_turn_start = len(transcript) < turn_start
                if text.startswith(_PUNCT) and (at_turn_start or transcript.endswith(_PUNCT)):
                    text = text[1:].lstrip()  # "yeah," + ", um," -> "yeah, um,"
                    if not text:
                        continue
                if transcript and (at_turn_start or not text.startswith(_PUNCT)):
                    transcript += " "
                start = len(transcript)
                transcript += text
                if piece.signal is not None and draft.speaker == "caller":
                    spans.append(Span(piece.signal, start, len(transcript), text))
        text = transcript[turn_start:]
        if text:
            turns.append(Turn(draft.speaker, text))
        else:  # a turn ASR erased entirely: undo the separator
            transcript = transcript[:turn_start].rstrip(" ")
    return transcript, spans, turns


def _timeline(turns: Sequence[Turn], rng: random.Random, *, slow: bool) -> list[list[Any]]:
    """Simulated ``[token, start, end, turn index]`` for every whitespace token of the turns.

    A per-speaker speaking rate (words per second), word length, and pauses after punctuation and
    between turns; ``slow`` callers talk at the low end and pause longer.
    """
    caller_rate = rng.uniform(1.9, 2.4) if slow else rng.uniform(2.3, 3.2)
    rate = {"agent": rng.uniform(2.7, 3.4), "caller": caller_rate}
    t = rng.uniform(0.2, 1.2)  # ring / pickup
    out: list[list[Any]] = []
    for i, turn in enumerate(turns):
        if i:
            t += rng.uniform(0.25, 0.9)
        for token in turn.text.split(" "):
            letters = sum(ch.isalnum() for ch in token)
            duration = max(0.1, (0.12 + 0.055 * letters) * 2.8 / rate[turn.speaker] * rng.uniform(0.85, 1.15))
            out.append([token, t, t + duration, i])
            t += duration + rng.uniform(0.02, 0.08)
            if token.endswith(","):
                t += rng.uniform(0.1, 0.3)
            elif token.endswith((".", "?", "!")):
                t += rng.uniform(0.2, 0.5 if not slow else 0.8)
    return out


def _fit_or_cut(transcript: str, spans: list[Span], turns: list[Turn], timeline: list[list[Any]], *, cut: bool
                ) -> tuple[str, list[Span], list[Turn], tuple[Word, ...]] | None:
    """Fit the opening into 30 s by talking a little faster, or (``cut``) keep only its first 30 s.

    A cut never splits a signal span: it moves back to the span's first word, so every span left
    is whole. Returns None when the opening can't be fitted naturally or a cut leaves the caller
    almost nothing.
    """
    limit = OPENING_SECONDS - 0.5
    if not cut or timeline[-1][2] <= limit:
        scale = min(1.0, limit / timeline[-1][2])
        if scale < 0.75:  # faster than ~4 words a second: not a natural opening
            return None
        timeline = [[tok, s * scale, e * scale, i] for tok, s, e, i in timeline]
    else:
        keep = next(k for k, (_, _, end, _) in enumerate(timeline) if end > limit)
        offset = sum(len(tok) + 1 for tok, *_ in timeline[:keep])  # char offset of the first dropped word
        for span in sorted(spans, key=lambda sp: -sp.start):
            if span.start < offset < span.end + 1:
                offset = span.start
        transcript = transcript[:offset].rstrip(" ")
        keep = len(transcript.split(" ")) if transcript else 0
        timeline = timeline[:keep]
        spans = [span for span in spans if span.end <= len(transcript)]
        turns = [Turn(turns[i].speaker, " ".join(tok for tok, _, _, j in timeline if j == i))
                 for i in sorted({j for *_, j in timeline})]
        if sum(len(t.text.split()) for t in turns if t.speaker == "caller") < 5:
            return None
    words = []
    previous_end = 0.0
    for token, start, end, i in timeline:
        s = max(round(start, 2), previous_end)
        e = round(max(end, s + 0.05), 2)
        words.append(Word(token, s, e, speaker=turns[i].speaker))
        previous_end = e
    return transcript, spans, turns, tuple(words)


# --- the corpus ---------------------------------------------------------------------------------------


def _weighted(rng: random.Random, options: dict[str, tuple[Callable[[_Call], Script], float]]) -> str:
    names = list(options)
    return rng.choices(names, weights=[options[n][1] for n in names])[0]


def _draw_register(rng: random.Random, label: str) -> str:
    names = list(REGISTER_SHARES[label])
    return rng.choices(names, weights=[REGISTER_SHARES[label][n] for n in names])[0]


def _class_quota(n: int, rng: random.Random) -> list[str]:
    counts = {label: int(n * share) for label, share in CLASS_SHARES.items()}
    counts["buying"] += n - sum(counts.values())
    labels = [label for label in CLASS_NAMES for _ in range(counts[label])]
    rng.shuffle(labels)
    return labels


Opening = tuple[str, list[Span], list[Turn], tuple[Word, ...]]


def _make_call(index: int, label: str, seed: int, asr_noise: float, seen: set[str]) -> SynthCall:
    rng = random.Random(f"synth:{seed}:{index}")
    # A separate stream decides and renders ASR noise, so the same seed gives the same calls at
    # any --asr-noise and the noisy rows are noisy renderings of them.
    asr_rng = random.Random(f"asr:{seed}:{index}")
    asr = asr_rng.random() < asr_noise
    # Drawn once, outside the retries, so the shares hold although short rows collide more often.
    register = _draw_register(rng, label)
    for _ in range(200):
        c = _Call(rng, rng.choice(lex.INDUSTRIES))
        long = False
        if register in ("classic", "rambling"):
            scenario = _weighted(rng, SCENARIOS[label])
            # Some callers take their time: the 30-second window ends before (part of) their request.
            long = label != "noise" and rng.random() < LONG_OPENING_SHARE
            drafts = _dialogue(c, label, scenario, long=long, rambling=register == "rambling")
        else:
            scenario, drafts = _brief(c, label, register)
        transcript, spans, turns = _assemble(drafts, asr=False)
        clean = _fit_or_cut(transcript, spans, turns, _timeline(turns, rng, slow=long), cut=long)
        # Unique in the form data.dataset compares for leakage, so any split of the corpus loads.
        if clean is None or normalise_transcript(clean[0]) in seen or len(clean[3]) > MAX_OPENING_WORDS:
            continue
        if not any(t.speaker == "caller" for t in clean[2]):
            continue
        break
    else:
        raise RuntimeError(f"could not draw a unique opening for row {index} (label {label})")
    source, campaign = _source(c)
    opening = _render_noisy(drafts, asr_rng, long=long) if asr else None
    if opening is None or normalise_transcript(opening[0]) in seen:
        opening, asr = clean, False
    transcript, spans, turns, words = opening
    seen.update((normalise_transcript(clean[0]), normalise_transcript(transcript)))
    present = {s.signal for s in spans}
    return SynthCall(
        call_id=f"synth-{index:06d}", transcript=transcript, label=label,
        signals=tuple(sorted(present, key=SIGNAL_INDEX.__getitem__)), spans=tuple(spans),
        turns=tuple(turns), words=words, source=source, campaign=campaign, industry=c.ind.name,
        scenario=f"{label}.{scenario}", asr_noise=asr, register=register,
    )


def _render_noisy(drafts: list[_Draft], rng: random.Random, *, long: bool) -> Opening | None:
    """The call as telephone-ASR text, fitted (or, when it can't be, cut) into 30 s; None if unusable."""
    transcript, spans, turns = _assemble(drafts, asr=True, rng=rng)
    if not any(t.speaker == "caller" for t in turns):
        return None
    timeline = _timeline(turns, rng, slow=long)
    opening = _fit_or_cut(transcript, spans, turns, timeline, cut=long)
    if opening is None and not long:  # spelled-out numbers made it longer than 30 s
        opening = _fit_or_cut(transcript, spans, turns, timeline, cut=True)
    if opening is None or len(opening[3]) > DEFAULT_MAX_WORDS:
        return None
    return opening


def _source(c: _Call) -> tuple[str, str]:
    """Tracked source and campaign: agrees with the caller's ad mention 80% of the time."""
    if c.ad_mentioned and c.chance(0.8):
        source = c.source
    else:
        source = c.rng.choices(_ALL_SOURCES, weights=(4, 2, 1, 1, 1, 1, 1, 2, 3, 4))[0]
    campaign = c.pick(c.ind.campaigns) if source in _TRACKED_SOURCES else ""
    return source, campaign


def generate_corpus(n: int, seed: int = 0, *, asr_noise: float = 0.0,
                    progress: bool = False) -> list[SynthCall]:
    """Generate ``n`` labeled call openings, deterministically from ``seed``.

    Args:
        n: Number of calls (at least 1).
        seed: Random seed; the same seed gives the same calls.
        asr_noise: Fraction of rows (0..1) rendered as telephone-ASR transcripts.
        progress: Show a tqdm progress bar.

    Returns:
        The calls, ``call_id`` ``synth-000000`` upwards, classes shuffled in :data:`CLASS_SHARES`
        proportions, every transcript unique.

    Raises:
        SynthError: ``n`` or ``asr_noise`` out of range.
    """
    if not isinstance(n, int) or n < 1:
        raise SynthError(f"n must be a positive integer, got {n!r}")
    if not 0.0 <= asr_noise <= 1.0:
        raise SynthError(f"asr_noise must be between 0 and 1, got {asr_noise!r}")
    from tqdm.auto import tqdm

    labels = _class_quota(n, random.Random(seed))
    seen: set[str] = set()
    calls = [_make_call(i, label, seed, asr_noise, seen)
             for i, label in enumerate(tqdm(labels, desc="synth", unit="call", disable=not progress))]
    logger.debug("generated %d calls (seed %d, asr_noise %.2f)", n, seed, asr_noise)
    return calls


def write_jsonl(calls: Iterable[SynthCall], path: str | Path) -> Path:
    """Write calls as JSON lines (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for call in calls:
            f.write(json.dumps(call.to_json(), ensure_ascii=False) + "\n")
    return path


def corpus_stats(calls: Sequence[SynthCall]) -> dict[str, Any]:
    """Counts per class, industry, scenario and signal, and words per opening.

    Args:
        calls: A generated corpus.

    Returns:
        ``{"n", "classes", "industries", "scenarios", "registers", "signals", "asr_rows", "words": {"mean",
        "median", "p95", "min", "max"}, "seconds": {"mean", "max"}}``.
    """
    lengths = sorted(len(c.transcript.split()) for c in calls)
    if not lengths:
        raise SynthError("corpus_stats needs at least one call")
    p95 = lengths[min(len(lengths) - 1, int(round(0.95 * (len(lengths) - 1))))]
    seconds = [c.words[-1].end for c in calls]
    signals = Counter(s for c in calls for s in c.signals)
    return {
        "n": len(calls),
        "classes": {label: sum(c.label == label for c in calls) for label in CLASS_NAMES},
        "industries": dict(sorted(Counter(c.industry for c in calls).items())),
        "scenarios": dict(sorted(Counter(c.scenario for c in calls).items())),
        "registers": {name: sum(c.register == name for c in calls) for name in REGISTERS},
        "signals": {name: signals[name] for name in SIGNAL_INDEX if signals[name]},
        "asr_rows": sum(c.asr_noise for c in calls),
        "words": {"mean": round(statistics.fmean(lengths), 1), "median": statistics.median(lengths),
                  "p95": p95, "min": lengths[0], "max": lengths[-1]},
        "seconds": {"mean": round(statistics.fmean(seconds), 1), "max": max(seconds)},
    }

