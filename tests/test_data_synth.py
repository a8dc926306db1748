"""The built-in corpus generator: determinism, exact spans, label rules, ASR rendering, timings, CLI."""

from __future__ import annotations

import json
import re
import statistics

import pytest

from callintent.cli import build_parser, main
from callintent.errors import UserError
from speech.transcript import OPENING_SECONDS
from models.labels import CLASS_NAMES, DEFAULT_MAX_WORDS, SIGNAL_NAMES
from data.synth import (
    CLASS_SHARES,
    DEFAULT_ASR_NOISE,
    REGISTER_SHARES,
    REGISTERS,
    SynthCall,
    corpus_stats,
    generate_corpus,
    spell_number,
    write_jsonl,
)

PUNCTUATION = re.compile(r"[.,?!;:\"()]")


@pytest.fixture(scope="module")
def corpus() -> list[SynthCall]:
    return generate_corpus(1500, 0, asr_noise=0.3)


def test_same_seed_gives_identical_file_and_other_seed_differs(tmp_path):
    a = write_jsonl(generate_corpus(300, 7, asr_noise=0.3), tmp_path / "a.jsonl").read_bytes()
    b = write_jsonl(generate_corpus(300, 7, asr_noise=0.3), tmp_path / "b.jsonl").read_bytes()
    c = write_jsonl(generate_corpus(300, 8, asr_noise=0.3), tmp_path / "c.jsonl").read_bytes()
    assert a == b
    assert a != c
    assert len(a.splitlines()) == 300


def test_asr_noise_renders_the_same_calls(corpus):
    clean = generate_corpus(1500, 0)
    assert [c.label for c in clean] == [c.label for c in corpus]
    assert [c.scenario for c in clean] == [c.scenario for c in corpus]
    same = [a.transcript == b.transcript for a, b in zip(clean, corpus) if not b.asr_noise]
    assert same and all(same)


def test_spans_point_at_their_text_and_signals_match_spans(corpus):
    for call in corpus:
        assert call.label in CLASS_NAMES
        assert set(call.signals) <= set(SIGNAL_NAMES)
        assert list(call.signals) == [s for s in SIGNAL_NAMES if s in call.signals]  # schema order
        for span in call.spans:
            assert call.transcript[span.start:span.end] == span.text, call.call_id
            assert span.text == span.text.strip() and span.text
            assert span.signal in call.signals
        assert {s.signal for s in call.spans} == set(call.signals), call.call_id


def test_json_rows_follow_the_labeled_example_format(corpus, tmp_path):
    path = write_jsonl(corpus[:50], tmp_path / "out" / "corpus.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["call_id"] for r in rows[:3]] == ["synth-000000", "synth-000001", "synth-000002"]
    for row, call in zip(rows, corpus):
        required = {"call_id", "transcript", "label", "signals", "spans", "source", "campaign", "industry",
                    "turns", "words"}
        assert required <= set(row)
        assert row["transcript"] == call.transcript
        for span in row["spans"]:
            assert row["transcript"][span["start"]:span["end"]] == span["text"]
        assert {t["speaker"] for t in row["turns"]} <= {"agent", "caller"}
        assert row["campaign"] == "" or row["source"] not in ("direct", "organic", "referral")


def test_class_balance_industries_and_lengths(corpus):
    stats = corpus_stats(corpus)
    for label, share in CLASS_SHARES.items():
        assert abs(stats["classes"][label] / len(corpus) - share) < 0.01, label
    assert len(stats["industries"]) >= 10
    assert min(stats["industries"].values()) > 0.03 * len(corpus)  # no industry starved
    assert len({c.transcript for c in corpus}) == len(corpus)  # no duplicate transcripts
    lengths = [len(c.transcript.split()) for c in corpus]
    assert max(lengths) <= DEFAULT_MAX_WORDS
    assert 25 <= statistics.median(lengths) <= 90
    assert stats["words"]["p95"] <= 90


def test_every_signal_and_scenario_kind_occurs(corpus):
    stats = corpus_stats(corpus)
    assert set(stats["signals"]) == set(SIGNAL_NAMES)
    assert all(count >= 30 for count in stats["signals"].values()), stats["signals"]
    assert len(stats["scenarios"]) >= 25


def test_confusable_cases_follow_the_documented_rules(corpus):
    by = lambda scenario: [c for c in corpus if c.scenario == scenario]  # noqa: E731
    # Existing customer buying an add-on: buying with existing_customer.
    addon = by("buying.addon_existing")
    assert addon and all(c.label == "buying" and "existing_customer" in c.signals for c in addon
                         if not _cut(c))
    # Robocalls, vendors, recruiters and reminder misdials use sales and customer words but are
    # noise without signals.
    scripts = (by("noise.robocall") + by("noise.vendor") + by("noise.robo_account") + by("noise.recruiter")
               + by("noise.reminder_misdial"))
    assert all(c.label == "noise" and c.signals == () for c in scripts)
    assert any(re.search(r"quote|special offer|special rate", c.transcript, re.I) for c in scripts)
    # Billing calls mention amounts but never ask a price.
    billing = by("service.billing")
    assert all("price_inquiry" not in c.signals for c in billing)
    assert any(re.search(r"\$\d|dollars|bucks", c.transcript) for c in billing)
    # Service callers may ask for someone to come back out: still service.
    support = by("service.support")
    assert any("appointment_request" in c.signals for c in support)
    assert all(c.label == "service" for c in support)
    # An informational question that turns into a booking is buying.
    booking = by("buying.info_to_booking")
    assert sum("appointment_request" in c.signals for c in booking) > 0.8 * len(booking)
    # Capability questions are informational even when they name a product.
    capability = by("informational.capability")
    assert any("specific_need" in c.signals for c in capability)
    purchase_steps = {"price_inquiry", "quote_request", "appointment_request"}
    assert not any(purchase_steps & set(c.signals) for c in capability)
    for kind in ("noise.wrong_number", "noise.silence"):
        assert by(kind)


def test_asr_rows_are_lowercase_without_punctuation(corpus):
    asr = [c for c in corpus if c.asr_noise]
    assert 0.25 < len(asr) / len(corpus) < 0.35
    for call in asr:
        assert call.transcript == call.transcript.lower()
        assert not PUNCTUATION.search(call.transcript), call.transcript
        assert "$" not in call.transcript
    clean = [c for c in corpus if not c.asr_noise and c.register != "typed"]  # typed text may have none
    assert all(PUNCTUATION.search(c.transcript) or c.transcript.endswith("-") for c in clean)
    # Spans survive the rendering (checked exactly in test_spans_...); most rows keep signals.
    assert sum(bool(c.spans) for c in asr) > 0.6 * len(asr)


def test_words_are_the_transcript_tokens_with_monotonic_times(corpus):
    for call in corpus:
        assert " ".join(w.text for w in call.words) == call.transcript
        assert " ".join(t.text for t in call.turns) == call.transcript
        assert call.turns[0].speaker in ("agent", "caller")
        assert any(t.speaker == "caller" for t in call.turns)
        previous_end = 0.0
        for word in call.words:
            assert word.speaker in ("agent", "caller")
            assert previous_end <= word.start < word.end, call.call_id
            previous_end = word.end
        assert call.words[-1].end <= OPENING_SECONDS
    # A natural pace: roughly 1.5-4 words per second of speech on average.
    rates = [len(c.words) / (c.words[-1].end - c.words[0].start) for c in corpus]
    assert 1.5 < statistics.mean(rates) < 4.0


def test_each_register_appears_with_its_share_in_each_class(corpus):
    stats = corpus_stats(corpus)
    assert set(stats["registers"]) == set(REGISTERS) and sum(stats["registers"].values()) == len(corpus)
    for label, shares in REGISTER_SHARES.items():
        rows = [c for c in corpus if c.label == label]
        for register, share in shares.items():
            got = sum(c.register == register for c in rows) / len(rows)
            assert abs(got - share) < 0.05, (label, register, got, share)
    # The classic register stays the largest share; a greeting with no content stays small and noise.
    assert 0.4 < stats["registers"]["classic"] / len(corpus) < 0.55
    greeting_only = [c for c in corpus if c.register == "greeting_only"]
    assert 0.01 < len(greeting_only) / len(corpus) < 0.06
    assert all(c.label == "noise" and not c.signals for c in greeting_only)


def _caller_words(call: SynthCall) -> int:
    return sum(len(t.text.split()) for t in call.turns if t.speaker == "caller")


def test_short_registers_are_short_and_classic_ones_long(corpus):
    by = lambda register: [c for c in corpus if c.register == register]  # noqa: E731
    typed = by("typed")
    assert all(len(c.turns) == 1 and c.turns[0].speaker == "caller" for c in typed)  # no agent, one line
    assert statistics.mean(len(c.words) for c in typed) < 9 and max(len(c.words) for c in typed) <= 22
    assert sum(c.transcript == c.transcript.lower() for c in typed if not c.asr_noise) > 0.3 * len(typed)
    short = by("short")
    assert statistics.mean(_caller_words(c) for c in short) < 12
    assert max(_caller_words(c) for c in short) <= 25
    assert all(sum(t.speaker == "caller" for t in c.turns) == 1 for c in short)
    assert max(_caller_words(c) for c in by("greeting_only")) <= 16
    classic = by("classic")
    assert statistics.median(len(c.words) for c in classic) >= 35
    mean_words = lambda rows: statistics.mean(len(c.words) for c in rows)  # noqa: E731
    assert mean_words(corpus) < 0.85 * mean_words(classic)
    # Rambling callers restart and correct themselves far more often than classic ones.
    restarts = lambda rows: sum(bool(re.search(r"\w- ", c.transcript)) for c in rows) / len(rows)  # noqa
    clean = lambda rows: [c for c in rows if not c.asr_noise]  # noqa: E731  (ASR text has no dashes)
    assert restarts(clean(by("rambling"))) > 0.8 and restarts(clean(classic)) < 0.4


def test_cut_off_questions_stop_mid_sentence_after_the_words_that_show_the_class(corpus):
    cut = [c for c in corpus if c.register == "cut_off" and not c.asr_noise]
    assert cut and {c.label for c in cut} == {"buying", "service", "informational"}
    for call in cut:
        last_caller = [t for t in call.turns if t.speaker == "caller"][-1]
        assert last_caller.text.endswith("-"), call.transcript
        assert len(last_caller.text.split()) >= 3
    # Buying requests always carry evidence, and the cut never takes all of it; service requests
    # mostly do (a bill amount is no signal: "I got charged $80 and I don't know what it's for").
    for call in cut:
        if call.label == "buying":
            assert {"price_inquiry", "quote_request", "appointment_request",
                    "specific_need"} & set(call.signals)
    service = [c for c in cut if c.label == "service"]
    evidence = sum(bool({"existing_customer", "specific_need"} & set(c.signals)) for c in service)
    assert evidence > 0.8 * len(service)


def test_informational_goes_beyond_hours_and_location(corpus):
    info = [c.transcript.lower() for c in corpus if c.label == "informational"]
    topics = {
        "fees and rates": r"\bfees?\b|\bcharge\b|\brates?\b|\bapr\b|\bdeposit\b|\bcommission\b",
        "policies": r"polic(y|ies)|warranty|refund|return|cancel",
        "do you accept": r"(accept|take) (apple pay|cash|checks|credit|venmo|zelle|paypal|cigna|aetna|"
                         r"medicare|"
                         r"medicaid|my insurance|debit|american express|personal|a credit|walk-ins|section 8|"
                         r"payments|tips|gift cards|careCredit|united|payment plans|trade-ins)",
        "eligibility": r"qualif|eligible",
        "service area": r"do you (serve|service|deliver to|come out to|install in|pick up from|tow from|"
                        r"cover|"
                        r"see patients from|handle cases|move to|manage rentals|write policies)|"
                        r"service area|coverage in|in your area|how far out",
    }
    for topic, pattern in topics.items():
        hits = sum(bool(re.search(pattern, text)) for text in info)
        assert hits >= 0.03 * len(info), (topic, hits, len(info))
    place = r"hours|open|close|located|address|directions|location"
    hours_or_place = sum(bool(re.search(place, t)) for t in info)
    assert hours_or_place < 0.35 * len(info)
    # Every industry asks such questions.
    industries = {c.industry for c in corpus if c.label == "informational"
                  and c.scenario.split(".")[1] in ("policy", "terms", "typed_policy")}
    assert len(industries) >= 15


def test_noise_includes_callers_with_business_words(corpus):
    noise = [c for c in corpus if c.label == "noise"]
    words = r"\b(account|card|order|warranty|loan|appointment|insurance|google|quote|refill|billing|hiring|" \
            r"payment|prescription|balance|merchant)\b"
    business = [c for c in noise if re.search(words, c.transcript.lower())]
    assert len(business) > 0.25 * len(noise)
    scenarios = {c.scenario for c in noise}
    assert {"noise.robo_account", "noise.reminder_misdial", "noise.recruiter", "noise.wrong_service",
            "noise.vendor", "noise.greeting_only"} <= scenarios


def test_service_has_terse_typed_requests(corpus):
    typed = [c for c in corpus if c.label == "service" and c.register == "typed"]
    terse = [c for c in typed if len(c.words) <= 4]
    assert len(terse) > 0.2 * len(typed)
    assert len({normalise(c.transcript) for c in terse}) > 0.9 * len(terse)  # unique, not a few fixed lines


def normalise(text: str) -> str:
    return PUNCTUATION.sub("", text.lower())


def test_spell_number():
    assert spell_number(0) == "zero"
    assert spell_number(21) == "twenty one"
    assert spell_number(4500) == "four thousand five hundred"
    assert spell_number(250_000) == "two hundred fifty thousand"


def test_bad_arguments_raise_user_errors():
    with pytest.raises(UserError, match="n must"):
        generate_corpus(0)
    with pytest.raises(UserError, match="asr_noise"):
        generate_corpus(10, asr_noise=1.5)


def test_cli_writes_the_corpus(tmp_path, capsys):
    out = tmp_path / "gen" / "corpus.jsonl"
    rc = main(["data", "synth", "--n", "40", "--seed", "3", "--out", str(out), "--no-progress", "--stats"])
    assert rc == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 40
    printed = capsys.readouterr().out
    assert "wrote 40 calls" in printed and "buying=16" in printed and "service=12" in printed
    assert '"industries"' in printed  # --stats
    assert main(["data", "synth", "--n", "5", "--asr-noise", "2", "--out", str(out), "--no-progress"]) == 2
    defaults = build_parser().parse_args(["data", "synth"])
    assert defaults.asr_noise == DEFAULT_ASR_NOISE and defaults.n == 6000 and defaults.seed == 0
    assert str(defaults.out) == "data/generated/corpus.jsonl"


def test_tfidf_baseline_learns_but_does_not_memorise():
    from bench.baseline_tfidf import corpus_baseline

    _, result = corpus_baseline(1500, 0)
    assert 0.6 < result.macro_f1 < 0.98, result
    assert min(result.per_class_f1.values()) > 0.5, result.per_class_f1


def _cut(call: SynthCall) -> bool:
    """The 30-second window ended early in this opening (its request may be missing)."""
    return call.words[-1].end > OPENING_SECONDS - 1.0
