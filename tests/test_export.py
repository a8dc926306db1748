"""Export: ONNX parity with torch, int8 behaviour and margin check, artifact contents, CLI + registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_training import make_dataset, tiny_config

from callintent.config import ConfigError, load_config
from models.labels import CLASS_NAMES, SIGNAL_NAMES


@pytest.fixture(scope="module")
def run_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    from training.train import train

    out = tmp_path_factory.mktemp("export-run")
    # Unweighted signal BCE: this handful of rows has one or two positives per signal, and the
    # assertions below need the memorised signals; positive weighting is tested in test_training.
    train(tiny_config(tiny_encoder_dir, out, epochs=10, signal_pos_weight_max=0.0), make_dataset())
    return out


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    from training.export import export_run

    return export_run(run_dir, tmp_path_factory.mktemp("artifact") / "intent")


def test_export_writes_the_contract_artifact(exported, run_dir):
    import onnx

    from models.artifact import INPUT_NAMES, OUTPUT_NAMES, ArtifactMeta
    from training.calibrate import Calibration

    out = exported.artifact_dir
    assert {p.name for p in out.iterdir()} == {"model.onnx", "model.int8.onnx", "tokenizer.json", "artifact.json",
                                              "train_config.yaml", "MODEL_CARD.md", "torch"}
    # torch/ is the run's best/ as it was (init_from fine-tunes from it), byte for byte
    assert {p.name: p.read_bytes() for p in (out / "torch").iterdir()} == {
        p.name: p.read_bytes() for p in (run_dir / "best").iterdir()}
    graph = onnx.load(str(out / "model.onnx")).graph
    assert [i.name for i in graph.input] == list(INPUT_NAMES)
    assert [o.name for o in graph.output] == list(OUTPUT_NAMES)
    dims = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in graph.output}
    assert dims["class_probs"] == ["batch", len(CLASS_NAMES)]
    assert dims["token_signal_probs"] == ["batch", "seq", len(SIGNAL_NAMES)]

    meta = ArtifactMeta.load(out)
    calibration = Calibration.load(run_dir)
    assert meta.temperature == calibration.temperature
    assert meta.signal_thresholds == calibration.thresholds()
    assert meta.buying_threshold == calibration.buying_threshold
    assert meta.max_length == 32 and meta.classes == CLASS_NAMES and meta.signals == SIGNAL_NAMES
    assert meta.data_fingerprint == json.loads((run_dir / "metrics.json").read_text())["data_fingerprint"]
    for variant in ("fp32", "int8"):
        assert set(meta.metrics[variant]) == {"validation", "test"}
    assert meta.metrics["fp32"]["validation"]["macro_f1"] == 1.0
    tokenizer = json.loads((out / "tokenizer.json").read_text())
    assert tokenizer["truncation"]["max_length"] == 32 and tokenizer["padding"] is None
    card = (out / "MODEL_CARD.md").read_text()
    assert meta.data_fingerprint in card and "| int8 | validation |" in card and "`existing_customer`" in card
    assert meta.speaker_tags is False and "Reads plain text" in card
    # The abstention margin travels in the artifact; ECE per data source in the metrics and the card.
    assert calibration.abstain_margin is not None and meta.abstain_margin == calibration.abstain_margin
    assert calibration.abstain_target_accuracy == 0.95 and f"Abstention margin {meta.abstain_margin:.3f}" in card
    assert set(calibration.sources) == {"other"}        # the test rows are no built-in corpus or real-text set
    by_source = meta.metrics["calibration"]["ece_by_source"]
    assert by_source["other"]["rows"] == calibration.n_validation
    assert by_source["other"]["ece_after"] == calibration.sources["other"].ece_after
    assert f"| other | {calibration.n_validation} |" in card


def test_onnx_matches_torch_through_the_serving_predictor(exported, run_dir):
    import torch

    from models.predictor import IntentPredictor
    from training.calibrate import Calibration
    from training.model import IntentModel

    assert exported.parity_max_abs_diff < 1e-4
    model = IntentModel.from_pretrained(run_dir / "best")
    temperature = Calibration.load(run_dir).temperature
    texts = ["I saw your ad, how much is a new roof", "checking on my order", "hi", "where are you located"]
    predictor = IntentPredictor.load(exported.artifact_dir, variant="fp32")
    class_probs, signal_probs = predictor.predict_arrays(texts)
    enc = model.tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt",
                          return_token_type_ids=False)
    with torch.no_grad():
        out = model(enc["input_ids"], enc["attention_mask"])
    np.testing.assert_allclose(class_probs, torch.softmax(out.class_logits / temperature, -1).numpy(), atol=1e-4)
    np.testing.assert_allclose(signal_probs, torch.sigmoid(out.signal_logits).numpy(), atol=1e-4)
    scores = predictor.predict(texts[:1])[0]
    assert scores.label == "buying"
    assert "ad_reference" in {s.name for s in scores.present_signals}
    # Evidence comes from token_signal_probs of the same graph, mapped back onto the text.
    for signal in scores.present_signals:
        assert signal.evidence
        assert all(texts[0][e.start:e.end] == e.text for e in signal.evidence)


def test_int8_loads_and_agrees_with_fp32(exported):
    from models.predictor import IntentPredictor
    from training.export import DEFAULT_PROBES

    assert exported.int8_argmax_agreement >= 0.75
    texts = list(DEFAULT_PROBES) + ["sorry wrong number", "my bill is wrong this month"]
    fp32, _ = IntentPredictor.load(exported.artifact_dir, variant="fp32").predict_arrays(texts)
    int8, _ = IntentPredictor.load(exported.artifact_dir, variant="int8").predict_arrays(texts)
    assert (fp32.argmax(1) == int8.argmax(1)).mean() >= 0.75
    assert not np.array_equal(fp32, int8)  # it really is a different (quantized) graph
    size = {v: (exported.artifact_dir / f).stat().st_size for v, f in (("fp32", "model.onnx"),
                                                                       ("int8", "model.int8.onnx"))}
    assert size["int8"] < size["fp32"]
    assert exported.int8_f1_drop <= 0.01


def test_a_broken_graph_fails_the_parity_check(run_dir, tmp_path, monkeypatch):
    import training.export as export_mod

    class WrongTemperature(export_mod.ExportGraph):
        """The bug the check exists for: the graph applies a different temperature than calibrated."""

        def __init__(self, model, temperature):
            super().__init__(model, temperature * 3.0)

    monkeypatch.setattr(export_mod, "ExportGraph", WrongTemperature)
    with pytest.raises(export_mod.ParityError, match="parity_atol"):
        export_mod.export_run(run_dir, tmp_path / "broken")
    assert not (tmp_path / "broken").exists()  # nothing left that could be registered


def test_int8_margin_check_fails_when_no_loss_is_allowed(run_dir, tmp_path):
    from training.export import ExportConfig, Int8AccuracyError, export_run

    with pytest.raises(Int8AccuracyError, match="int8_max_f1_drop=-0.5"):
        export_run(run_dir, tmp_path / "strict", ExportConfig(int8_max_f1_drop=-0.5))
    assert not (tmp_path / "strict").exists()


def test_export_without_torch_weights_when_asked(run_dir, tmp_path):
    from training.export import ExportConfig, export_run

    result = export_run(run_dir, tmp_path / "lean", ExportConfig(keep_torch=False))
    assert not (result.artifact_dir / "torch").exists()
    assert (result.artifact_dir / "model.int8.onnx").is_file()


@pytest.mark.parametrize(("override", "message"), [
    ("parity_atoll=1", "unknown key 'parity_atoll'"),
    ("parity_atol=0", "parity_atol must be a number in (0, 1)"),
    ("int8_per_channel=maybe", "int8_per_channel must be true or false"),
    ("opset=7", "opset must be an integer in [14, 23]"),
    ("keep_torch=maybe", "keep_torch must be true or false"),
])
def test_export_config_errors_name_the_key(override, message):
    from training.export import ExportConfig

    with pytest.raises(ConfigError) as e:
        load_config(None, ExportConfig, [override])
    assert message in str(e.value)


def test_export_refuses_what_is_not_a_run(tmp_path):
    from callintent.errors import UserError
    from training.export import export_run

    with pytest.raises(UserError, match="not a finished training run"):
        export_run(tmp_path)


def test_export_cli_stages_and_registers(run_dir, tmp_path, capsys):
    from callintent.cli import main
    from models.registry import Registry

    registry = tmp_path / "registry"
    assert main(["export", str(run_dir), "--out", str(tmp_path / "staged"), "--registry", str(registry)]) == 0
    out = capsys.readouterr().out
    assert "registered intent/v1" in out
    assert [v.version for v in Registry(registry).versions()] == ["v1"]
    assert (registry / "intent" / "v1" / "model.int8.onnx").is_file()

    assert main(["export", str(run_dir), "parity_atol=2", "--out", str(tmp_path / "staged"), "--no-register"]) == 2
    assert "parity_atol must be a number" in capsys.readouterr().err


def test_latency_benchmark_reports_every_runtime(exported, run_dir, capsys):
    from bench.classifier_latency import main

    assert main(["--model", str(exported.artifact_dir), "--run", str(run_dir), "--iterations", "3",
                 "--no-write"]) == 0
    out = capsys.readouterr().out
    for runtime in ("torch eager fp32", "ONNX fp32", "ONNX int8", "predictor int8"):
        assert f"| {runtime}" in out
    assert "| ONNX int8 | 32 × 128 |" in out
    assert "int8 batch-1 p50 =" in out and "validation macro-F1: fp32 1.0000" in out
