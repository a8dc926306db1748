"""The promotion gate: policy loading, each rule on constructed metric pairs, gate.json and the registry."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from model_fixtures import build_tiny_artifact

from callintent.cli import main
from callintent.config import ConfigError, load_config
from evaluation.config import DEFAULT_GATE_PATH, GatePolicy, load_gate_policy
from evaluation.gate import GateMetrics, apply_gate, write_gate
from models.registry import Registry, RegistryError

GOOD = GateMetrics(n=500, macro_f1=0.92, accuracy=0.93, ece=0.02, buying_recall=0.95, buying_precision=0.90,
                   signal_macro_f1=0.85)
#: Every rule on, so each can be tripped alone.
STRICT = GatePolicy(min_examples=100, macro_f1_min=0.80, accuracy_min=0.85, ece_max=0.05, buying_recall_min=0.90,
                    buying_precision_min=0.80, macro_f1_max_drop=0.01, accuracy_max_drop=0.01,
                    buying_recall_max_drop=0.0, buying_precision_max_drop=0.02, ece_max_rise=0.02,
                    signal_macro_f1_max_drop=0.02)


def failed_rules(result) -> list[str]:
    return [c.rule for c in result.checks if not c.passed]


def test_shipped_policy_loads_with_the_documented_values():
    policy = load_gate_policy()
    assert DEFAULT_GATE_PATH.is_file()
    assert policy.ece_max == 0.05
    assert policy.macro_f1_max_drop == 0.01
    assert policy.buying_recall_max_drop == 0.0
    assert policy.require_comparison is True


def test_policy_rejects_unknown_keys_and_bad_values(tmp_path):
    path = tmp_path / "gate.yaml"
    path.write_text("macro_f1_maxdrop: 0.01\n")
    with pytest.raises(ConfigError, match="unknown key 'macro_f1_maxdrop'"):
        load_gate_policy(path)
    path.write_text("ece_max: 1.5\n")
    with pytest.raises(ConfigError, match="ece_max must be a number between 0 and 1"):
        load_gate_policy(path)
    path.write_text("macro_f1_min: null\n")
    assert load_config(path, GatePolicy).macro_f1_min is None  # null turns a rule off
    with pytest.raises(ValueError, match="min_examples"):
        GatePolicy(min_examples=-1)


def test_good_model_passes_every_rule_alone_and_against_an_equal_baseline():
    alone = apply_gate(STRICT, GOOD)
    assert alone.passed and alone.compared_to is None
    assert {c.rule for c in alone.checks} == {"min_examples", "macro_f1_min", "accuracy_min", "buying_recall_min",
                                              "buying_precision_min", "ece_max"}
    compared = apply_gate(STRICT, GOOD, GOOD, compared_to="intent/v1")
    assert compared.passed and compared.compared_to == "intent/v1"
    assert "buying_recall_max_drop" in {c.rule for c in compared.checks}
    assert compared.reasons == tuple(c.message for c in compared.checks)  # passed: says what it checked


@pytest.mark.parametrize("change, rule", [
    (dict(n=99), "min_examples"),
    (dict(macro_f1=0.79), "macro_f1_min"),
    (dict(accuracy=0.84), "accuracy_min"),
    (dict(ece=0.051), "ece_max"),
    (dict(buying_recall=0.89), "buying_recall_min"),
    (dict(buying_recall=None), "buying_recall_min"),   # no buying calls: cannot be judged -> fail
    (dict(buying_precision=0.79), "buying_precision_min"),
])
def test_each_floor_fails_alone(change, rule):
    result = apply_gate(STRICT, replace(GOOD, **change))
    assert not result.passed
    assert failed_rules(result) == [rule]
    assert len(result.reasons) == 1


@pytest.mark.parametrize("change, rule", [
    (dict(macro_f1=0.92 - 0.011), "macro_f1_max_drop"),
    (dict(accuracy=0.93 - 0.011), "accuracy_max_drop"),
    (dict(buying_recall=0.949), "buying_recall_max_drop"),      # any drop at all
    (dict(buying_precision=0.90 - 0.021), "buying_precision_max_drop"),
    (dict(ece=0.02 + 0.0201), "ece_max_rise"),
    (dict(signal_macro_f1=0.85 - 0.021), "signal_macro_f1_max_drop"),
])
def test_each_tolerance_fails_alone_against_the_baseline(change, rule):
    result = apply_gate(STRICT, replace(GOOD, **change), GOOD, compared_to="intent/v1")
    assert not result.passed
    assert failed_rules(result) == [rule]
    assert "intent/v1" in result.reasons[0]
    # the same candidate without a baseline passes: tolerances need a comparison
    assert apply_gate(STRICT, replace(GOOD, **change)).passed


@pytest.mark.parametrize("change", [
    dict(macro_f1=0.92 - 0.009), dict(buying_recall=0.95), dict(ece=0.02 + 0.019),
    dict(macro_f1=0.99, buying_recall=1.0),   # improvements always pass
])
def test_changes_within_tolerance_pass(change):
    assert apply_gate(STRICT, replace(GOOD, **change), GOOD, compared_to="intent/v1").passed


def test_rules_set_to_null_are_off_and_missing_signal_metrics_skip_the_signal_rule():
    off = replace(STRICT, macro_f1_min=None, macro_f1_max_drop=None)
    bad = replace(GOOD, macro_f1=0.1)
    assert apply_gate(off, bad, GOOD).passed
    assert apply_gate(STRICT, replace(GOOD, signal_macro_f1=None), GOOD).passed


def test_uncompared_production_fails_when_comparison_is_required():
    result = apply_gate(STRICT, GOOD, uncompared_production="intent/v1")
    assert failed_rules(result) == ["require_comparison"]
    assert "--compare production" in result.reasons[0]
    assert apply_gate(replace(STRICT, require_comparison=False), GOOD, uncompared_production="intent/v1").passed


# ----------------------------------------------------------------------------- registry integration


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    return build_tiny_artifact(tmp_path_factory.mktemp("gate-artifact") / "a")


def test_gate_json_is_what_promote_reads(tmp_path, artifact):
    registry = Registry(tmp_path / "reg")
    v1 = registry.register(artifact)
    v2 = registry.register(artifact)
    passed = apply_gate(STRICT, GOOD)
    path = write_gate(registry.resolve(v1), passed, policy=STRICT, metrics={"data": {"n": 500}, "macro_f1": 0.92})
    raw = json.loads(path.read_text())
    assert raw["passed"] is True and raw["compared_to"] is None and raw["reasons"]
    assert raw["policy"]["ece_max"] == 0.05 and raw["data"] == {"n": 500}
    assert json.loads((path.parent / "metrics.json").read_text())["macro_f1"] == 0.92
    registry.promote(v1)
    assert registry.aliases()["production"] == "v1"

    failed = apply_gate(STRICT, replace(GOOD, buying_recall=0.90), GOOD, compared_to=v1)
    write_gate(registry.resolve(v2), failed, policy=STRICT)
    with pytest.raises(RegistryError, match=r"failed the promotion gate against intent/v1: buying recall 0\.950 → 0\.900"):
        registry.promote(v2)
    assert registry.aliases()["production"] == "v1"


def _data(path: Path) -> Path:
    rows = [("b1", "hi I saw your ad, how much does a new roof cost", "buying"),
            ("b2", "I need a quote for a furnace install", "buying"),
            ("b3", "can I book an appointment today", "buying"),
            ("s1", "checking on my order", "service"),
            ("s2", "my bill is wrong, please cancel my account", "service"),
            ("i1", "what are your hours on saturday", "informational"),
            ("i2", "where are you located, are you open late", "informational"),
            ("n1", "press one, wrong number robot", "noise")]
    path.write_text("".join(json.dumps({"call_id": c, "transcript": t, "label": lab, "signals": None,
                                        "split": "test"}) + "\n" for c, t, lab in rows))
    return path


def test_cli_writes_the_gate_and_promote_uses_it(tmp_path, artifact, capsys):
    root = tmp_path / "reg"
    registry = Registry(root)
    v1 = registry.register(artifact)
    data = _data(tmp_path / "calls.jsonl")
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text("min_examples: 5\nmacro_f1_min: 0.5\nece_max: 0.5\nbuying_recall_min: 0.5\n")
    strict = tmp_path / "strict.yaml"
    strict.write_text("min_examples: 100\n")
    common = ["evaluate", "--data", str(data), "--registry", str(root), "--bootstrap", "50",
              "--latency-iterations", "1"]

    assert main([*common, "--model", "candidate", "--out", str(tmp_path / "r1"), "--gate", str(strict)]) == 0
    out = capsys.readouterr().out
    assert "gate: FAIL" in out and "evaluated on 8 calls (< 100 needed)" in out
    gate_file = root / "intent" / "v1" / "evaluation" / "gate.json"
    assert json.loads(gate_file.read_text())["passed"] is False
    assert (gate_file.parent / "metrics.json").is_file()
    with pytest.raises(RegistryError, match="failed the promotion gate"):
        registry.promote(v1)
    # --fail-on-gate turns the verdict into the exit code
    assert main([*common, v1, "--out", str(tmp_path / "r2"), "--gate", str(strict), "--fail-on-gate"]) == 1
    capsys.readouterr()

    assert main([*common, "--model", v1, "--out", str(tmp_path / "r3"), "--gate", str(lenient)]) == 0
    assert "gate: PASS" in capsys.readouterr().out
    # an exploratory run (here: a strict what-if gate) reports FAIL but leaves the verdict alone
    recorded = gate_file.read_text()
    assert main([*common, "--model", v1, "--out", str(tmp_path / "r3b"), "--gate", str(strict), "--no-record"]) == 0
    out = capsys.readouterr().out
    assert "gate: FAIL" in out and "gate not recorded (--no-record)" in out
    assert gate_file.read_text() == recorded and (tmp_path / "r3b" / "report.html").is_file()
    registry.promote(v1)
    assert registry.aliases()["production"] == "v1"

    # a new version evaluated without comparing to production fails (require_comparison)...
    v2 = registry.register(artifact)
    assert main([*common, "--model", v2, "--out", str(tmp_path / "r4"), "--gate", str(lenient)]) == 0
    assert "not compared with production intent/v1" in capsys.readouterr().out
    with pytest.raises(RegistryError, match="not compared with production"):
        registry.promote(v2)
    # ...and passes once compared; the gate records what it was compared with
    assert main([*common, "--model", v2, "--compare", "production", "--out", str(tmp_path / "r5"),
                 "--gate", str(lenient)]) == 0
    assert "gate: PASS (compared with intent/v1)" in capsys.readouterr().out
    assert json.loads((root / "intent" / "v2" / "evaluation" / "gate.json").read_text())["compared_to"] == "intent/v1"
    registry.promote(v2)
    assert registry.aliases()["production"] == "v2"


def test_cli_artifact_outside_the_registry_writes_no_gate(tmp_path, artifact, capsys):
    data = _data(tmp_path / "calls.jsonl")
    assert main(["evaluate", "--model", str(artifact), "--data", str(data), "--out", str(tmp_path / "r"),
                 "--bootstrap", "0", "--latency-iterations", "0", "--registry", str(tmp_path / "reg")]) == 0
    assert "gate not recorded" in capsys.readouterr().out
    assert not (artifact / "evaluation").exists()
    assert main(["evaluate", "--data", str(data), "--out", str(tmp_path / "r")]) == 2
    assert "which model?" in capsys.readouterr().err
