"""The QA report: renders in headless Chromium with no console errors, self-contained, escaped, complete."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from model_fixtures import build_tiny_artifact
from robustness_fakes import KeywordModel, ScriptedEar

from evaluation.compare import compare
from evaluation.config import EvalConfig, GatePolicy
from evaluation.evalset import load_eval_set
from evaluation.evaluate import CORRECTIONS_KEY, evaluate_model, resolve_model
from evaluation.gate import GateMetrics, apply_gate
from evaluation.report import highlight, write_report
from evaluation.robustness import RobustnessConfig, robustness_check
from models.artifact import ArtifactMeta
from models.scores import Evidence, IntentScores, SignalScore
from serving.policy import DecisionPolicy

INJECTION = "I saw your ad <script>document.title='pwned'</script> <img src=\"http://example.com/x.png\"> how much"

ROWS = [
    # (call_id, transcript, label, signals, source, industry)
    ("b1", "hi I saw your ad, how much does a new roof cost", "buying",
     ["ad_reference", "price_inquiry", "specific_need"], "google_ads", "home"),
    ("b2", "I need a quote for a furnace install today", "buying", ["quote_request", "specific_need", "urgency"],
     "google_ads", "home"),
    ("b3", "hello is anybody there", "buying", [], "direct", "retail"),           # no keyword: misclassified
    ("b4", "what is the price to book an appointment", "buying", ["price_inquiry", "appointment_request"],
     "facebook", "home"),
    ("s1", "checking on my order", "service", ["existing_customer"], "direct", "retail"),
    ("s2", "how much is left on my account bill", "service", ["existing_customer", "price_inquiry"], "direct",
     "telecom"),
    ("s3", INJECTION, "service", None, "direct", "telecom"),                      # buying keywords: misclassified
    ("i1", "what are your hours on saturday", "informational", [], "clinc150", "retail"),   # a real-text set
    ("i2", "where are you located, are you open late", "informational", None, "clinc150", "retail"),
    ("n1", "press one, this is a robot", "noise", [], "robocall", "auto"),
    ("n2", "sorry wrong number", "noise", [], "direct", "auto"),
    ("n3", "can you schedule a furnace estimate", "noise", [], "robocall", "auto"),  # misclassified
]


def chromium(url: str, profile: Path) -> tuple[str, list[str]]:
    """``(dumped DOM after scripts ran, console lines)`` of ``url`` in headless Chromium."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed; .ci/run installs it (apt-get install chromium)")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
           "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           "--dump-dom", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    return proc.stdout, console


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    a1 = build_tiny_artifact(tmp / "a1", seed=0)
    a2 = build_tiny_artifact(tmp / "a2", seed=1, temperature=1.5)
    meta = ArtifactMeta.load(a2)
    ArtifactMeta(**{**meta.__dict__, "extra": {**meta.extra, CORRECTIONS_KEY: 3}, "abstain_margin": 0.3}).save(a2)
    data = tmp / "calls.jsonl"
    data.write_text("".join(json.dumps({"call_id": c, "transcript": t, "label": lab, "signals": sig, "source": src,
                                        "industry": ind, "split": "test"}) + "\n"
                            for c, t, lab, sig, src, ind in ROWS))
    config = EvalConfig(bootstrap_samples=100, latency_iterations=2, small_slice=5)
    eval_set = load_eval_set([data])
    candidate = evaluate_model(resolve_model(a2), eval_set, config)
    baseline = evaluate_model(resolve_model(a1), eval_set, config)
    comparison = compare(candidate, baseline)
    policy = GatePolicy(min_examples=5)
    gate = apply_gate(policy, GateMetrics.from_evaluation(candidate), GateMetrics.from_evaluation(baseline),
                      compared_to="intent/v1")
    # Robustness on scripted renders (the real ASR path is tested in test_evaluation_robustness.py): the
    # one-shot ear drops each call's first word; the stream hears "buy" in place of "bill" (and an
    # injection attempt, which the page must escape), and the buying calls say "buy" early on.
    script = {t: (" ".join(t.split()[1:]), ("I want to buy " if label == "buying" else "")
                  + t.replace("bill", "buy <b>bold</b>"), 0.5, 6.0) for _, t, label, *_ in ROWS}
    ear = ScriptedEar(script)
    robustness = robustness_check(KeywordModel(), eval_set, DecisionPolicy.from_yaml(None), RobustnessConfig(n=12),
                                  ear=ear, live_asr=ear.live_asr(), progress=False)
    files = write_report(tmp / "out", candidate, comparison=comparison, gate=gate, gate_policy=policy,
                         robustness=robustness)
    dom, console = chromium(files.html.as_uri(), tmp / "profile")
    return {"files": files, "dom": dom, "console": console, "candidate": candidate, "comparison": comparison,
            "gate": gate, "tmp": tmp, "robustness": robustness}


def test_renders_in_chromium_without_console_errors(report):
    assert report["console"] == []
    assert 'data-ready="1"' in report["dom"]  # the inline script ran to the end


def test_console_error_detection_works(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    _, console = chromium(page.as_uri(), tmp_path / "profile")
    assert any("Uncaught ReferenceError" in line for line in console)


def test_plots_and_tables_are_in_the_dom(report):
    dom = report["dom"]
    images = re.findall(r'<img src="(data:image/png;base64,[^"]+)"', dom)
    # class F1, 2 confusion matrices, PR curve, reliability, risk-coverage, signal F1, robustness
    assert len(images) >= 4 and len(images) == 8
    assert all(len(src) > 2000 for src in images)
    for key in ("class-f1", "buying-pr", "reliability", "risk-coverage", "signal-f1", "robustness"):
        assert f'id="fig-{key}"' in dom
    for table in ("errors-table", "class-table", "signal-table", "slice-table", "latency-table",
                  "source-calibration-table",
                  "comparison-table", "flips-table", "gate-table", "robustness-table", "robustness-examples",
                  "robustness-columns", "robustness-conditions", "robustness-decisions"):
        assert f'id="{table}"' in dom
    errors = report["candidate"].error_indices
    assert len(errors) >= 3
    body = dom.split('id="errors-table"')[1].split("</table>")[0]
    rows = re.findall(r'<tr data-call-id="([^"]+)"', body)
    assert sorted(rows) == sorted(report["candidate"].data.call_ids[i] for i in errors)
    assert {"b3", "s3", "n3"} <= set(rows)


def test_every_figure_has_a_plain_explanation(report):
    dom = report["dom"]
    captions = re.findall(r"<figure[^>]*>.*?<figcaption>(.*?)</figcaption>", dom, flags=re.S)
    assert len(captions) == 8
    assert all(len(re.sub("<[^>]+>", "", c)) > 60 for c in captions)


def test_self_contained_and_escaped(report):
    html = report["files"].html.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', html), "no external resources"
    dom = report["dom"]
    assert len(re.findall(r"<script\b", dom)) == 1           # only the report's own script
    assert "<title>Call intent report" in dom                 # injected script did not run
    assert "&lt;script&gt;document.title" in dom              # shown as text
    assert "buy &lt;b&gt;bold&lt;/b&gt;" in dom               # ASR text escaped too
    assert not re.search(r'<img src="http', dom)


def test_robustness_section_shows_the_three_columns_wer_and_decisions(report):
    r, dom = report["robustness"], report["dom"]
    section = dom.split('id="robustness"')[1].split('<h2 id=')[0]
    columns = re.findall(r'<tr data-column="(\w+)"><td>[^<]+</td><td class="n">([\d.]+)</td><td class="n">([\d.]+)</td>'
                         r'<td class="n">([\d.]+)</td>', section)
    assert [c[0] for c in columns] == ["clean", "oneshot", "streamed"]
    for name, f1, accuracy, ece in columns:
        column = r.column(name)
        assert (f1, accuracy, ece) == (f"{column.macro_f1:.3f}", f"{column.accuracy:.3f}", f"{column.ece:.3f}")
    # The scripts make the columns differ: one-shot drops words, the stream hears "buy" for "bill".
    assert len({c[1] for c in columns}) > 1
    assert f"{r.wer_oneshot:.3f}" in section and f"{r.wer_streamed:.3f}" in section
    rows = re.findall(r'<tr data-factor="(\w+)"><td>[^<]+</td><td>([^<]+)</td><td class="n">(\d+)</td>'
                      r'<td class="n">([\d.a-z/]+)</td><td class="n">([\d.a-z/]+)</td>', section)
    assert [(f, v, int(n)) for f, v, n, _, _ in rows] == [(c.factor, c.value, c.calls) for c in r.conditions]
    assert all(sum(int(n) for f, _, n, _, _ in rows if f == factor) == r.n for factor in ("codec", "voice"))
    decisions = section.split('id="robustness-decisions"')[1].split("</table>")[0]
    cells = re.findall(r'<td class="n">([^<]*)</td>', decisions)
    d = r.decisions
    assert cells[:2] == [str(d.buying_calls), str(d.buying_early)] and d.buying_calls == 4
    assert cells[2] == f"{r.median_buying_early_seconds:.1f}" == "4.0"  # "buy" at 1.5 s; no early decision before 4 s
    doc = json.loads(report["files"].metrics.read_text())["robustness"]
    assert doc["columns"]["streamed"]["macro_f1"] == pytest.approx(r.column("streamed").macro_f1, abs=1e-6)
    assert doc["decisions"]["buying"]["decided_early"] == d.buying_early


def test_evidence_is_highlighted(report):
    dom = report["dom"]
    body = dom.split('id="errors-table"')[1]
    row = body.split('data-call-id="n3"')[1].split("</tr>")[0]
    marked = re.findall(r'<mark title="([^"]+)">([^<]+)</mark>', row)
    assert ("appointment_request", "schedule") in marked
    assert ("quote_request", "estimate") in marked


def test_highlight_parts_rebuild_the_text_and_merge_overlaps():
    text = "how much for a roof"
    scores = IntentScores(label="buying", probabilities={}, buying_intent=0.9, model="m", signals=(
        SignalScore("price_inquiry", 0.9, True, (Evidence(4, 8, "much", 0.9),)),
        SignalScore("specific_need", 0.9, True, (Evidence(6, 19, "ch for a roof", 0.9), Evidence(15, 19, "roof", 0.9))),
        SignalScore("urgency", 0.9, False, (Evidence(0, 3, "how", 0.9),)),   # not present: not marked
    ))
    parts = highlight(text, scores)
    assert "".join(p.text for p in parts) == text
    assert [(p.text, p.signals) for p in parts] == [
        ("how ", ()), ("mu", ("price_inquiry",)), ("ch", ("price_inquiry", "specific_need")),
        (" for a roof", ("specific_need",))]
    assert highlight("", scores) == ()


def test_search_filter_from_the_url(report):
    dom, console = chromium(report["files"].html.as_uri() + "#q=b3", report["tmp"] / "profile2")
    assert console == []
    body = dom.split('id="errors-table"')[1].split("</table>")[0]
    shown = re.findall(r'<tr data-call-id="([^"]+)">', body)
    hidden = re.findall(r'<tr data-call-id="([^"]+)" hidden="">', body)
    assert shown == ["b3"] and len(hidden) >= 2
    assert re.search(r'data-count-for="errors-table">1 of \d+ shown', dom)


def test_comparison_and_gate_sections(report):
    dom = report["dom"]
    comparison = report["comparison"]
    flips = dom.split('id="flips-table"')[1].split("</table>")[0]
    assert sorted(re.findall(r'<tr data-call-id="([^"]+)"', flips)) == sorted(f.call_id for f in comparison.flips)
    assert re.search(r'<td class="n (better|worse|same)">[+-]\d', dom)  # deltas coloured
    assert ("PASS" if report["gate"].passed else "FAIL") in dom.split('id="gate-banner"')[1][:200]


def test_report_header_says_how_many_corrections_the_model_used(report):
    section = report["dom"].split('id="corrections"')[1].split("</p>")[0]
    assert re.search(r"Label corrections used to train this model:\s*<strong>3</strong>", section)
    assert report["candidate"].model.corrections_used == 3


def test_metrics_json(report):
    doc = json.loads(report["files"].metrics.read_text())
    candidate = report["candidate"]
    assert doc["accuracy"] == pytest.approx(candidate.classes.accuracy, abs=1e-6)
    assert doc["macro_f1_ci"][0] <= doc["macro_f1"] <= doc["macro_f1_ci"][1]
    assert set(doc["per_class"]) == {"buying", "service", "informational", "noise"}
    assert doc["confusion_matrix"]["matrix"] == [list(r) for r in candidate.classes.confusion]
    assert doc["signals"]["rows"] == 10                    # 12 calls, s3 and i2 have signals: null
    assert doc["misclassified"] == len(candidate.error_indices)
    assert set(doc["latency_ms"]) == {"batch_1", "batch_32"}
    assert doc["latency_ms"]["batch_1"]["p50"] > 0
    assert doc["model"]["corrections_used"] == 3
    small = [s for s in doc["slices"] if s["small"]]
    assert small and all(s["n"] < 5 for s in small)
    assert doc["comparison"]["flips"]["total"] == len(report["comparison"].flips)
    assert doc["gate"]["passed"] == report["gate"].passed
    assert doc["baseline"]["model"]["id"] == "intent/unregistered"


def test_risk_coverage_and_ece_per_source_in_metrics_and_report(report):
    doc = json.loads(report["files"].metrics.read_text())
    candidate = report["candidate"]
    rc = doc["risk_coverage"]
    assert rc["by"] == "margin" and rc["threshold"] == 0.3 and doc["model"]["abstain_margin"] == 0.3
    coverage = [p["coverage"] for p in rc["points"]]
    assert coverage == sorted(coverage) and coverage[-1] == 1.0
    assert rc["points"][-1]["accuracy"] == pytest.approx(doc["accuracy"], abs=1e-6)
    assert rc["accuracy_at_coverage"]["1"] == pytest.approx(doc["accuracy"], abs=1e-6)
    # the operating point is what the serving policy would decide: margin >= the artifact's 0.3
    probs = candidate.scored.class_probs
    top2 = np.sort(probs, axis=1)[:, -2:]
    decided = top2[:, 1] - top2[:, 0] >= 0.3
    right = candidate.scored.pred_ids == candidate.data.label_ids
    assert rc["coverage_at_threshold"] == pytest.approx(decided.mean(), abs=1e-6)
    assert rc["accuracy_at_threshold"] == pytest.approx(right[decided].mean(), abs=1e-6)
    # the most confident call alone
    best = int(np.argmax(top2[:, 1] - top2[:, 0]))
    assert rc["points"][0]["accuracy"] == float(right[best])
    # ECE per data source (10 calls without a known data set, 2 CLINC150 rows), also per slice of the table
    by_source = {s["value"]: s for s in doc["slices"] if s["field"] == "data_source"}
    assert {k: v["n"] for k, v in by_source.items()} == {"other": 10, "clinc150": 2}
    assert all(s["ece"] is not None for s in doc["slices"])
    table = report["dom"].split('id="source-calibration-table"')[1].split("</table>")[0]
    assert "clinc150" in table and f"{by_source['clinc150']['ece']:.3f}" in table
    assert "abstention margin chosen on validation" in report["dom"]


def test_evaluation_never_imports_torch_or_transformers(report, tmp_path):
    """Evaluation scores through the ONNX predictor only (one calibration implementation, shared with serving)."""
    import sys

    tmp = report["tmp"]
    code = (
        "import sys\n"
        "from callintent.cli import main\n"
        f"rc = main(['evaluate', '--model', {str(tmp / 'a2')!r}, '--compare', {str(tmp / 'a1')!r}, "
        f"'--data', {str(tmp / 'calls.jsonl')!r}, '--out', {str(tmp_path / 'out')!r}, '--bootstrap', '20', "
        f"'--latency-iterations', '1', '--registry', {str(tmp_path / 'reg')!r}])\n"
        "assert rc == 0, rc\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "HEAVY []" in proc.stdout
    assert (tmp_path / "out" / "report.html").is_file()
