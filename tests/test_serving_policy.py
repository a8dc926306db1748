"""Decision policy: segment matching, thresholds, early decisions, reasons, config validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from callintent.config import ConfigError
from models.labels import CLASS_NAMES
from models.scores import Evidence, IntentScores, SignalScore
from serving.policy import DEFAULT_POLICY_PATH, DecisionPolicy, PolicyConfig, Segment, Thresholds


def scores(buying: float = 0.1, service: float = 0.0, informational: float = 0.0, noise: float = 0.0,
           evidence: dict[str, str] | None = None) -> IntentScores:
    probs = {"buying": buying, "service": service, "informational": informational, "noise": noise}
    rest = 1.0 - sum(probs.values())
    if rest > 1e-9:  # spread what is left so the given classes keep their values
        spare = [c for c in CLASS_NAMES if probs[c] == 0.0]
        for c in spare:
            probs[c] = rest / len(spare)
    label = max(probs, key=probs.get)
    evidence = evidence or {}
    signals = tuple(
        SignalScore(name, 0.9, True, (Evidence(0, len(text), text, 0.9),) if text else ())
        for name, text in evidence.items()
    )
    return IntentScores(label, probs, probs["buying"], signals, "intent/v1")


@pytest.fixture(scope="module")
def policy() -> DecisionPolicy:
    return DecisionPolicy.from_yaml()


def test_default_policy_file_loads_and_is_documented(policy: DecisionPolicy) -> None:
    assert DEFAULT_POLICY_PATH.is_file()
    assert DEFAULT_POLICY_PATH.read_text().count("#") > 10
    assert policy.config.default == Thresholds(0.80, 0.70, 0.90, 4.0, 0.40)
    assert [s.name for s in policy.config.segments] == ["google_ads", "spring_campaigns", "lead_vendors"]


@pytest.mark.parametrize(("metadata", "segment", "priority"), [
    ({"source": "google_ads"}, "google_ads", 0.65),
    ({"source": "GOOGLE_ADS", "campaign": "x"}, "google_ads", 0.65),
    ({"campaign": "Spring-HVAC"}, "spring_campaigns", 0.70),
    ({"source": "google_ads", "campaign": "spring-hvac"}, "google_ads", 0.65),  # first match wins
    ({"source": "lead_vendor"}, "lead_vendors", 0.80),  # inherits the default priority threshold
    ({"source": "organic"}, "default", 0.80),
    ({}, "default", 0.80),
])
def test_segment_matching(policy: DecisionPolicy, metadata: dict, segment: str, priority: float) -> None:
    name, thresholds = policy.segment_for(metadata)
    assert name == segment
    assert thresholds.priority_threshold == priority


def test_any_metadata_key_can_select_a_segment() -> None:
    config = PolicyConfig(segments=(Segment("spanish", match={"language": "es", "industry": "home*"},
                                            priority_threshold=0.5),))
    policy = DecisionPolicy(config)
    assert policy.segment_for({"language": "es", "industry": "home_services"})[0] == "spanish"
    assert policy.segment_for({"language": "es"})[0] == "default"  # every key must match


def test_priority_sales_depends_on_segment_threshold(policy: DecisionPolicy) -> None:
    s = scores(buying=0.70, service=0.2, evidence={"price_inquiry": "how much would it cost"})
    paid = policy.decide(s, {"source": "google_ads"})
    assert paid.route == "priority_sales" and paid.label == "buying" and paid.segment == "google_ads"
    assert paid.confidence == pytest.approx(0.70) and paid.buying_intent == pytest.approx(0.70)
    assert paid.reasons[0] == "buying_intent 0.70 >= 0.65 (segment google_ads)"
    assert "signal price_inquiry: 'how much would it cost'" in paid.reasons
    assert paid.audio_seconds is None and paid.early is False
    organic = policy.decide(s, {"source": "organic"})
    assert organic.route == "standard" and organic.segment == "default"
    assert organic.reasons[0] == "buying_intent 0.70 < 0.80 (segment default)"


def test_threshold_is_inclusive(policy: DecisionPolicy) -> None:
    assert policy.decide(scores(buying=0.80, service=0.2), {}).route == "priority_sales"
    assert policy.decide(scores(buying=0.79, service=0.21), {}).route == "standard"


def test_screen_on_noise(policy: DecisionPolicy) -> None:
    spam = scores(noise=0.62, service=0.3)
    assert policy.decide(spam, {}).route == "standard"  # 0.62 < 0.70
    decision = policy.decide(spam, {"source": "lead_vendor"})
    assert decision.route == "screen" and decision.label == "noise"
    assert decision.reasons[0] == "P(noise) 0.62 >= screen_threshold 0.55 (segment lead_vendors)"


def test_standard_for_service_names_the_class(policy: DecisionPolicy) -> None:
    decision = policy.decide(scores(service=0.85, evidence={"existing_customer": "my order"}), {})
    assert decision.route == "standard" and decision.label == "service"
    assert decision.confidence == pytest.approx(0.85)
    assert "most likely service 0.85" in decision.reasons
    assert "signal existing_customer: 'my order'" in decision.reasons


def test_abstain_routes_undetermined_with_reason(policy: DecisionPolicy) -> None:
    unsure = scores(buying=0.30, service=0.30, informational=0.25, noise=0.15)
    decision = policy.decide(unsure, {})
    assert decision.route == "undetermined"
    assert decision.reasons[0] == "top class buying 0.30 < abstain_below 0.40 (segment default)"
    assert policy.decide(scores(buying=0.41, service=0.39), {}).route == "standard"


def test_signal_without_evidence_reports_probability(policy: DecisionPolicy) -> None:
    decision = policy.decide(scores(buying=0.9, evidence={"urgency": ""}), {})
    assert "signal urgency (0.90)" in decision.reasons


def test_early_decision_waits_for_audio_and_confidence(policy: DecisionPolicy) -> None:
    sure = scores(buying=0.95, evidence={"price_inquiry": "how much"})
    assert policy.early_decision(sure, {}, audio_seconds=3.9) is None  # min_audio_seconds 4
    assert policy.early_decision(scores(buying=0.89), {}, audio_seconds=10.0) is None  # early 0.90
    decision = policy.early_decision(sure, {}, audio_seconds=6.0)
    assert decision is not None
    assert (decision.route, decision.early, decision.audio_seconds) == ("priority_sales", True, 6.0)
    assert decision.reasons[0] == "buying_intent 0.95 >= early_threshold 0.90 at 6.0 s (segment default)"
    assert "signal price_inquiry: 'how much'" in decision.reasons
    # a segment with a lower early threshold decides sooner
    assert policy.early_decision(scores(buying=0.86), {"source": "google_ads"}, 5.0).route == "priority_sales"
    # a segment with a longer minimum waits
    assert policy.early_decision(sure, {"source": "lead_vendor"}, 5.0) is None


@pytest.mark.parametrize(("kwargs", "route", "label"), [
    ({"noise": 0.93}, "screen", "noise"),
    ({"service": 0.91}, "standard", "service"),
    ({"informational": 0.95}, "standard", "informational"),
])
def test_early_decision_for_other_classes(policy: DecisionPolicy, kwargs: dict, route: str, label: str) -> None:
    decision = policy.early_decision(scores(buying=0.0, **kwargs), {}, 8.0)
    assert decision is not None and (decision.route, decision.label) == (route, label)
    assert decision.reasons[0].startswith(f"P({label}) 0.9")


def test_decide_marks_stream_timing(policy: DecisionPolicy) -> None:
    decision = policy.decide(scores(buying=0.5, service=0.5), {}, audio_seconds=30.0)
    assert decision.audio_seconds == 30.0 and decision.early is False
    assert decision.to_json()["audio_seconds"] == 30.0


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "message"), [
    ("default:\n  priority_treshold: 0.8\n", "'default.priority_treshold'"),
    ("defaults: {}\n", "unknown key 'defaults'"),
    ("segments:\n  - name: a\n    match: {source: x}\n    colour: red\n", "colour'"),
    ("default:\n  priority_threshold: 1.5\n  early_threshold: 1.5\n", "priority_threshold must be a probability"),
    ("default:\n  early_threshold: 0.5\n", "early_threshold must be >="),
    ("default:\n  abstain_below: 0.75\n", "abstain_below must be <="),
    ("default:\n  min_audio_seconds: -1\n", "min_audio_seconds must be >= 0"),
    ("segments:\n  - name: a\n    match: {}\n", "match must name at least one"),
    ("segments:\n  - name: default\n    match: {source: x}\n", "reserved"),
    ("segments:\n  - {name: a, match: {source: x}}\n  - {name: a, match: {source: y}}\n", "unique"),
    ("segments:\n  - {name: a, match: {source: x}, early_threshold: 0.6}\n", "segments[a]: early_threshold"),
    ("default:\n  priority_threshold: high\n", "must be a number"),
    ("default:\n  abstain_margin: 1.5\n", "abstain_margin must be a probability margin"),
    ("segments:\n  - {name: a, match: {source: x}, abstain_margin: -0.1}\n", "segments[a]: abstain_margin"),
])
def test_bad_policy_files_are_rejected_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        DecisionPolicy.from_yaml(write(tmp_path, text))
    assert message in str(info.value)
    assert "policy.yaml" in str(info.value)
    if message.startswith("'") or "unknown" in message:
        assert "unknown key" in str(info.value)


def test_segment_override_file(tmp_path: Path) -> None:
    policy = DecisionPolicy.from_yaml(write(tmp_path, (
        "default: {priority_threshold: 0.9, early_threshold: 0.95}\n"
        "segments:\n  - {name: vip, match: {campaign: 'vip-*'}, priority_threshold: 0.5}\n")))
    assert policy.decide(scores(buying=0.6, service=0.4), {"campaign": "vip-2024"}).route == "priority_sales"
    assert policy.decide(scores(buying=0.6, service=0.4), {"campaign": "other"}).route == "standard"


# ---------------------------------------------------------------------------- abstention margin


def margin_scores(margin: float) -> IntentScores:
    """Buying ahead of service by ``margin``, the two sharing 0.9 (informational and noise 0.05 each)."""
    return scores(buying=(0.9 + margin) / 2, service=(0.9 - margin) / 2, informational=0.05, noise=0.05)


def test_abstains_more_as_the_margin_shrinks() -> None:
    policy = DecisionPolicy(model_abstain_margin=0.10)
    margins = [0.40, 0.25, 0.15, 0.11, 0.101, 0.099, 0.05, 0.02, 0.0]
    routes = [policy.decide(margin_scores(m), {}).route for m in margins]
    # every top class is >= abstain_below (0.45), so only the margin abstains: below 0.10, never above
    assert routes == ["standard"] * 5 + ["undetermined"] * 4
    # the threshold itself is decided (abstain only when the margin is below it); exact binary fractions
    exact = scores(buying=0.5, service=0.25, informational=0.125, noise=0.125)
    assert DecisionPolicy(model_abstain_margin=0.25).decide(exact, {}).route == "standard"
    # and over thresholds: a higher margin abstains on a superset of the calls
    calls = [margin_scores(m) for m in np.linspace(0.0, 0.8, 41)]
    abstained = [{i for i, c in enumerate(calls) if DecisionPolicy(model_abstain_margin=t).decide(c, {}).route
                  == "undetermined"} for t in (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)]
    assert abstained[0] == set()
    assert all(a <= b for a, b in zip(abstained, abstained[1:]))
    assert [len(a) for a in abstained] == sorted(len(a) for a in abstained) and len(abstained[-1]) == 40


def test_margin_reason_names_the_margin_and_threshold() -> None:
    decision = DecisionPolicy(model_abstain_margin=0.12).decide(margin_scores(0.04), {"source": "x"})
    assert decision.route == "undetermined" and decision.label == "buying"
    assert decision.reasons[0] == ("margin 0.040 (buying 0.47 - service 0.43) < abstain_margin 0.120 "
                                   "(model, segment default)")


def test_policy_file_overrides_the_model_margin(tmp_path: Path) -> None:
    path = write(tmp_path, "default: {abstain_margin: 0.3}\n"
                           "segments:\n  - {name: paid, match: {source: paid}, abstain_margin: 0}\n")
    policy = DecisionPolicy.from_yaml(path, model_abstain_margin=0.05)
    unsure = margin_scores(0.2)
    decision = policy.decide(unsure, {})
    assert decision.route == "undetermined"
    assert decision.reasons[0].endswith("< abstain_margin 0.300 (policy, segment default)")
    assert policy.decide(unsure, {"source": "paid"}).route == "standard"   # 0 = off for the segment
    assert policy.abstain_margin(policy.segment_for({"source": "paid"})[1]) == (0.0, "policy")


def test_without_a_model_margin_decisions_are_as_before() -> None:
    # An artifact exported before the rule carries no margin: a near tie still routes on abstain_below only.
    old = DecisionPolicy.from_yaml(model_abstain_margin=None)
    assert old.abstain_margin(old.config.default) == (0.0, "none")
    near_tie = scores(buying=0.46, service=0.44)
    assert old.decide(near_tie, {}).route == "standard"
    assert old.decide(scores(buying=0.30, service=0.30, informational=0.25, noise=0.15), {}).route == "undetermined"
    assert DecisionPolicy.from_yaml(model_abstain_margin=0.05).decide(near_tie, {}).route == "undetermined"
    for buying in np.linspace(0.0, 1.0, 21):
        s = scores(buying=float(buying), service=float(1.0 - buying) * 0.7)
        a, b = old.decide(s, {}), DecisionPolicy.from_yaml().decide(s, {})
        assert (a.route, a.reasons) == (b.route, b.reasons)


def test_no_early_decision_below_the_margin() -> None:
    policy = DecisionPolicy(model_abstain_margin=0.85)
    sure_but_close = scores(buying=0.91, service=0.09)         # margin 0.82 < 0.85
    assert policy.early_decision(sure_but_close, {}, audio_seconds=10.0) is None
    assert policy.decide(sure_but_close, {}, audio_seconds=30.0).route == "undetermined"
    assert policy.early_decision(scores(buying=0.95), {}, audio_seconds=10.0).route == "priority_sales"


def test_model_margin_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="model_abstain_margin"):
        DecisionPolicy(model_abstain_margin=1.5)
