"""The call log feeds training: export -> data.dataset.load_labeled -> tiny training -> export, and the
model card counts the real calls it learned from."""

from __future__ import annotations

import json

from calllog_fixtures import record
from test_training import _TEMPLATES, tiny_config

from serving.calllog.records import Outcome
from serving.calllog.store import open_store


def test_exported_calls_load_train_and_are_counted_in_the_model_card(tmp_path, tiny_encoder_dir, capsys):
    from callintent.cli import main
    from data.dataset import load_labeled
    from training.export import export_run
    from training.train import train

    url = f"sqlite:///{tmp_path / 'calls.db'}"
    store = open_store(url)
    fillers = ("", " thanks", " okay", " please", " hello", " right")
    calls = []
    for k, filler in enumerate(fillers):
        for i, (text, label, found) in enumerate(_TEMPLATES):
            calls.append(record(f"log-{k}-{i}", label, source="google" if i % 2 else "facebook", minute=k * 10 + i,
                                transcript=text + filler, signals=tuple(s for s, _ in found)))
    calls.append(record("log-off", "buying", transcript=None))  # call_log.transcript: off — cannot be exported
    store.write_calls(calls)
    store.record_outcome(Outcome("log-0-0", True, revenue=300.0))
    store.close()
    fixes = tmp_path / "corrections.jsonl"
    fixes.write_text(json.dumps({"call_id": "log-1-6", "label": "noise", "signals": []}) + "\n", encoding="utf-8")

    out = tmp_path / "calls.jsonl"
    assert main(["calls", "export", "--db", url, "--out", str(out), "--since", "2026-11-01",
                 "--corrections", str(fixes)]) == 0
    printed = capsys.readouterr().out
    assert "wrote 48 labeled calls" in printed and "1 QA-labeled, 47 model-labeled" in printed
    assert "skipped 1 without a logged transcript" in printed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 48 and {r["origin"] for r in rows} == {"call_log"}
    assert sum(r["label_source"] == "qa" for r in rows) == 1

    dsd = load_labeled([out])  # the labeled-example contract: no row rejected
    assert sum(len(split) for split in dsd.values()) == 48
    corrected = [r for split in dsd.values() for r in split if r["call_id"] == "log-1-6"]
    assert corrected[0]["label"] == "noise" and json.loads(corrected[0]["extra"])["label_source"] == "qa"

    run_dir = tmp_path / "run"
    result = train(tiny_config(tiny_encoder_dir, run_dir, epochs=2), dsd)
    assert result.call_log_rows == {"total": 48, "train": len(dsd["train"]), "qa_labeled": 1}
    artifact = export_run(run_dir, tmp_path / "artifact")
    meta = json.loads((artifact.artifact_dir / "artifact.json").read_text())
    assert meta["extra"]["call_log_rows"]["total"] == 48
    card = (artifact.artifact_dir / "MODEL_CARD.md").read_text()
    assert (f"Real calls from the call log: 48 ({len(dsd['train'])} in train; 1 labeled by QA, "
            "47 with the logged model's own label)") in card


def test_model_card_says_when_no_real_calls_were_used():
    from training.export import _call_log_line

    assert _call_log_line({}) == "Real calls from the call log: 0 (no rows with `origin: call_log`)."
