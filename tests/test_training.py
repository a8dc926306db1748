"""Training: token targets from spans, the joint loss, calibration, a reproducible run, config errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from callintent.config import ConfigError, load_config
from models.labels import CLASS_INDEX, CLASS_NAMES, SIGNAL_INDEX, SIGNAL_NAMES

# ---------------------------------------------------------------------------------------------
# A small labeled set in the exact data.dataset columns (shared with test_export.py)

_TEMPLATES = (
    ("hi I saw your ad, how much is a new roof", "buying",
     [("ad_reference", "saw your ad"), ("price_inquiry", "how much"), ("specific_need", "new roof")]),
    ("can someone come out today, it's an emergency", "buying",
     [("appointment_request", "can someone come out"), ("urgency", "emergency")]),
    ("checking on my order, it has not arrived", "service", [("existing_customer", "my order")]),
    ("my bill is wrong this month", "service", [("existing_customer", "my bill")]),
    ("what time do you close on saturday", "informational", []),
    ("where are you located", "informational", []),
    ("press one about your extended warranty", "noise", []),
    ("sorry wrong number", "noise", []),
)


def labeled_row(call_id: str, text: str, label: str, found: list[tuple[str, str]] | None) -> dict:
    """One row as ``data.dataset.load_labeled`` produces it; ``found=None`` = signals unlabeled."""
    spans = []
    for signal, phrase in found or []:
        start = text.index(phrase)
        spans.append({"signal": signal, "start": start, "end": start + len(phrase), "text": phrase})
    signals = sorted({s for s, _ in found or []})
    return {"call_id": call_id, "transcript": text, "label": label, "label_id": CLASS_INDEX[label],
            "signals": signals, "signal_labels": [1.0 if s in signals else 0.0 for s in SIGNAL_NAMES],
            "signals_labeled": found is not None, "spans": json.dumps(spans), "source": "test", "campaign": "",
            "industry": "", "extra": "{}"}


def make_dataset(copies: int = 2, *, unlabeled_signals: bool = True):
    """``DatasetDict`` whose validation and test hold the training rows (to test memorisation)."""
    from datasets import Dataset, DatasetDict

    fillers = ("", " thanks", " okay", " please")
    rows = [labeled_row(f"c{k}-{i}", text + fillers[k % len(fillers)], label, found)
            for k in range(copies) for i, (text, label, found) in enumerate(_TEMPLATES)]
    if unlabeled_signals:  # rows without signal labels (e.g. real text) must not train the signal head
        rows.append(labeled_row("u-1", "I need a restaurant reservation", "buying", None))
    ds = Dataset.from_list(rows)
    return DatasetDict(train=ds, validation=ds, test=ds)


def tiny_config(encoder: Path, out: Path, **overrides):
    from training.config import TrainConfig

    values = dict(base_model=str(encoder), output_dir=str(out), epochs=12, learning_rate=2e-3, batch_size=4,
                  eval_batch_size=16, warmup_ratio=0.0, max_length=32, early_stopping_patience=0, device="cpu",
                  log_every=2, seed=0)
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def tiny_run(tiny_encoder_dir, tmp_path_factory):
    """One short training run on the handful of rows (shared by the tests below)."""
    from training.train import train

    out = tmp_path_factory.mktemp("run")
    config = tiny_config(tiny_encoder_dir, out)
    return config, train(config, make_dataset())


# ---------------------------------------------------------------------------------------------
# Features


def test_token_targets_cover_exactly_the_span_tokens(tiny_encoder_dir):
    from transformers import AutoTokenizer

    from training.features import parse_spans, token_signal_targets

    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_dir)
    row = labeled_row("a", "hi I saw your ad, how much is a new roof", "buying",
                      [("ad_reference", "saw your ad"), ("price_inquiry", "how much")])
    enc = tokenizer(row["transcript"], return_offsets_mapping=True)
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    targets, known = token_signal_targets(enc["offset_mapping"], parse_spans(row["spans"]), row["signals"], True)

    ad = [t for t, y in zip(tokens, targets[:, SIGNAL_INDEX["ad_reference"]]) if y]
    price = [t for t, y in zip(tokens, targets[:, SIGNAL_INDEX["price_inquiry"]]) if y]
    assert ad == ["saw", "your", "ad"]
    assert price == ["how", "much"]
    assert targets.sum() == 5  # nothing else, special tokens included
    # Absent signals are known to be 0 everywhere; present ones with spans are known too.
    assert known.tolist() == [1.0] * len(SIGNAL_NAMES)


def test_token_targets_masked_when_unknown(tiny_encoder_dir):
    from transformers import AutoTokenizer

    from training.features import CharSpan, token_signal_targets

    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_dir)
    text = "hello there I saw your ad for a new roof"
    enc = tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=5)
    start = text.index("saw your ad")
    span = CharSpan("ad_reference", start, start + len("saw your ad"))

    # Unlabeled row: nothing is known.
    _, known = token_signal_targets(enc["offset_mapping"], [span], ["ad_reference"], False)
    assert known.sum() == 0
    # The span was cut off by truncation: that signal's token targets are unknown, the others known.
    targets, known = token_signal_targets(enc["offset_mapping"], [span], ["ad_reference", "urgency"], True)
    assert targets.sum() == 0
    assert known[SIGNAL_INDEX["ad_reference"]] == 0
    assert known[SIGNAL_INDEX["urgency"]] == 0  # present but no span at all
    assert known[SIGNAL_INDEX["price_inquiry"]] == 1


def test_collator_pads_to_the_longest_row(tiny_encoder_dir):
    from transformers import AutoTokenizer

    from training.features import IntentCollator, encode_dataset

    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_dir)
    encoded = encode_dataset(make_dataset(1), tokenizer, max_length=32)["train"]
    batch = IntentCollator(tokenizer.pad_token_id)([encoded[0], encoded[4]])
    lengths = [len(encoded[0]["input_ids"]), len(encoded[4]["input_ids"])]
    assert batch["input_ids"].shape == (2, max(lengths))
    assert batch["attention_mask"].sum(dim=1).tolist() == lengths
    assert batch["token_targets"].shape == (2, max(lengths), len(SIGNAL_NAMES))
    assert batch["labels"].tolist() == [CLASS_INDEX["buying"], CLASS_INDEX["informational"]]
    # Padding positions carry no targets.
    assert batch["token_targets"][batch["attention_mask"] == 0].sum() == 0


# ---------------------------------------------------------------------------------------------
# Loss


def _fake_output(batch: int = 3, seq: int = 5, seed: int = 0):
    import torch

    from training.model import IntentOutput

    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, seq, len(SIGNAL_NAMES), generator=g)
    return IntentOutput(torch.randn(batch, len(CLASS_NAMES), generator=g), tokens.max(dim=1).values, tokens)


def _loss(output, **overrides):
    import torch

    from training.model import intent_loss

    n, seq = output.token_signal_logits.shape[:2]
    kwargs = dict(labels=torch.tensor([0, 1, 3][:n]), signal_labels=torch.zeros(n, len(SIGNAL_NAMES)),
                  signal_mask=torch.ones(n), token_targets=torch.zeros(n, seq, len(SIGNAL_NAMES)),
                  token_mask=torch.ones(n, len(SIGNAL_NAMES)), attention_mask=torch.ones(n, seq, dtype=torch.long))
    kwargs.update(overrides)
    return intent_loss(output, **kwargs)


def test_signal_loss_is_masked_for_unlabeled_rows():
    import torch

    output = _fake_output()
    unlabeled = dict(signal_mask=torch.zeros(3), token_mask=torch.zeros(3, len(SIGNAL_NAMES)))
    a = _loss(output, **unlabeled)
    b = _loss(output, **unlabeled, signal_labels=torch.ones(3, len(SIGNAL_NAMES)),
              token_targets=torch.ones(3, 5, len(SIGNAL_NAMES)))
    assert float(a.signal) == 0.0 and float(a.token) == 0.0
    assert torch.equal(a.total, b.total)  # the labels of masked rows cannot matter
    assert float(_loss(output).signal) > 0.1  # labeled rows do count

    # Mask one row: the loss equals the loss of the other two rows alone.
    part = _loss(output, signal_mask=torch.tensor([1.0, 1.0, 0.0]))
    pair = _fake_output()
    pair.signal_logits = pair.signal_logits[:2]
    assert float(part.signal) == pytest.approx(float(
        torch.nn.functional.binary_cross_entropy_with_logits(pair.signal_logits, torch.zeros(2, len(SIGNAL_NAMES)))))


def test_token_loss_ignores_padding():
    import torch

    output = _fake_output()
    mask = torch.ones(3, 5, dtype=torch.long)
    mask[:, 3:] = 0
    a = _loss(output, attention_mask=mask)
    noisy_targets = torch.zeros(3, 5, len(SIGNAL_NAMES))
    noisy_targets[:, 3:] = 1.0  # targets on padding must not count
    b = _loss(output, attention_mask=mask, token_targets=noisy_targets)
    assert float(a.token) == pytest.approx(float(b.token))
    assert float(_loss(output, token_targets=noisy_targets).token) != pytest.approx(float(a.token))


def test_class_weights_change_the_loss(tmp_path):
    import torch

    from training.train import class_weight_vector

    output = _fake_output()
    plain = _loss(output)
    weighted = _loss(output, class_weights=torch.tensor([5.0, 1.0, 1.0, 1.0]))
    unit = _loss(output, class_weights=torch.ones(4))
    assert float(unit.classification) == pytest.approx(float(plain.classification))
    assert float(weighted.classification) != pytest.approx(float(plain.classification))

    labels = np.array([0] * 6 + [1] * 2 + [2] * 2 + [3] * 2)
    config = tiny_config(tmp_path, tmp_path, class_weights="balanced")
    # sklearn "balanced": n / (n_classes * count)
    assert class_weight_vector(config, labels) == pytest.approx([12 / 24, 12 / 8, 12 / 8, 12 / 8])
    assert class_weight_vector(tiny_config(tmp_path, tmp_path), labels) is None
    explicit = tiny_config(tmp_path, tmp_path, class_weights=(2.0, 1.0, 1.0, 0.5))
    assert class_weight_vector(explicit, labels) == [2.0, 1.0, 1.0, 0.5]


# ---------------------------------------------------------------------------------------------
# Calibration


def test_temperature_scaling_recovers_overconfidence():
    from models.calibration import fit_temperature, softmax
    from models.metrics import expected_calibration_error
    from training.calibrate import fit_calibration

    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(3000, 4)) * 2.0
    labels = np.array([rng.choice(4, p=p) for p in softmax(true_logits)])
    overconfident = true_logits * 3.0  # a model whose logits are 3x too large: T should come out ~3
    assert fit_temperature(overconfident, labels) == pytest.approx(3.0, rel=0.1)

    cal = fit_calibration(overconfident, labels, np.zeros((3000, 7)), np.zeros((3000, 7)), np.ones(3000))
    assert cal.ece_after < cal.ece_before / 2
    assert cal.ece_after == pytest.approx(expected_calibration_error(labels, softmax(overconfident, cal.temperature)))


def test_thresholds_maximise_f1_and_default_without_positives():
    from training.calibrate import DEFAULT_THRESHOLD, best_threshold

    scores = np.array([0.1, 0.2, 0.35, 0.4, 0.7, 0.9])
    truth = np.array([0, 0, 1, 0, 1, 1])
    t = best_threshold(scores, truth)
    # F1 is best taking 0.35 and up (P=3/4, R=1); the threshold sits between 0.2 and 0.35.
    assert 0.2 < t <= 0.35
    # A precision target of 1.0 needs the threshold above 0.4 (P=1, R=2/3).
    assert 0.4 < best_threshold(scores, truth, precision_target=1.0) <= 0.7
    assert best_threshold(scores, np.zeros(6)) == DEFAULT_THRESHOLD


def test_threshold_prefers_the_middle_among_near_equal_f1():
    from training.calibrate import best_threshold

    # 100 positives scored 0.6-1.0, one stray positive at 0.05, negatives at 0.01: taking the stray
    # gains < 0.01 validation F1 — noise — so the threshold stays away from the tail.
    scores = np.concatenate([np.linspace(0.6, 1.0, 100), [0.05], [0.01] * 50])
    truth = np.concatenate([np.ones(101), np.zeros(50)])
    assert best_threshold(scores, truth, f1_tolerance=0.0) < 0.05
    assert 0.05 < best_threshold(scores, truth) <= 0.61


def test_signal_thresholds_only_use_labeled_rows():
    from training.calibrate import fit_calibration

    n = 8
    probs = np.zeros((n, len(SIGNAL_NAMES)))
    truth = np.zeros((n, len(SIGNAL_NAMES)))
    j = SIGNAL_INDEX["urgency"]
    probs[:, j] = [0.9, 0.8, 0.3, 0.2, 0.95, 0.95, 0.95, 0.95]
    truth[:, j] = [1, 1, 0, 0, 0, 0, 0, 0]
    mask = np.array([1, 1, 1, 1, 0, 0, 0, 0])  # the high-scoring negatives are unlabeled rows
    cal = fit_calibration(np.zeros((n, 4)), np.zeros(n, dtype=int), probs, truth, mask)
    assert 0.3 < cal.signal_thresholds["urgency"] <= 0.8
    assert cal.signal_thresholds["price_inquiry"] == 0.5  # no positives


# ---------------------------------------------------------------------------------------------
# Training runs (tiny encoder)


def test_tiny_model_memorises_a_handful_of_examples(tiny_run):
    _, result = tiny_run
    assert result.validation["accuracy"] == 1.0  # validation = the training rows
    losses = [e.train_loss for e in result.epochs if e.train_loss is not None]
    assert losses[-1] < 0.6 * losses[0]
    assert result.validation["signal_micro_f1"] > 0.7
    assert len(result.epochs) == 12 and result.best_epoch >= 1


def test_run_directory_is_self_describing(tiny_run):
    import torch

    from training.calibrate import Calibration
    from training.config import TrainConfig
    from training.model import IntentModel

    config, result = tiny_run
    out = Path(config.output_dir)
    assert {"best", "metrics.json", "calibration.json", "train_config.yaml", "eval_data"} <= {
        p.name for p in out.iterdir()}
    assert not (out / "checkpoints").exists()
    assert load_config(out / "train_config.yaml", TrainConfig) == config

    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["val_macro_f1"] for e in metrics["epochs"]] == [e.val_macro_f1 for e in result.epochs]
    assert len(metrics["data_fingerprint"]) == 64
    assert metrics["split_sizes"] == {"train": 17, "validation": 17, "test": 17}
    assert metrics["test"]["macro_f1"] == result.test["macro_f1"]
    assert Calibration.load(out) == result.calibration

    model = IntentModel.from_pretrained(out / "best")
    enc = model.tokenizer(["I saw your ad, how much is a new roof", "sorry wrong number"], padding=True,
                          return_tensors="pt", return_token_type_ids=False)
    with torch.no_grad():
        output = model(enc["input_ids"], enc["attention_mask"])
    predicted = [CLASS_NAMES[i] for i in output.class_logits.argmax(dim=1).tolist()]
    assert predicted == ["buying", "noise"]
    # Sequence signal logit = max over real tokens of the token logits.
    real = enc["attention_mask"][1].bool()
    assert torch.allclose(output.signal_logits[1], output.token_signal_logits[1][real].max(dim=0).values)


def test_same_config_twice_gives_identical_metrics(tiny_encoder_dir, tmp_path):
    from training.train import train

    runs = [train(tiny_config(tiny_encoder_dir, tmp_path / name, epochs=3), make_dataset(1)) for name in "ab"]
    a, b = runs
    assert [(e.val_macro_f1, e.val_loss, e.train_loss) for e in a.epochs] == \
           [(e.val_macro_f1, e.val_loss, e.train_loss) for e in b.epochs]
    assert a.calibration == b.calibration
    assert a.validation == b.validation
    other = train(tiny_config(tiny_encoder_dir, tmp_path / "c", epochs=3, seed=1), make_dataset(1))
    assert [e.val_loss for e in other.epochs] != [e.val_loss for e in a.epochs]


def test_empty_validation_split_is_a_user_error(tiny_encoder_dir, tmp_path):
    from callintent.errors import UserError
    from training.train import train

    dsd = make_dataset(1)
    dsd["validation"] = dsd["validation"].select([])
    with pytest.raises(UserError, match="validation split is empty"):
        train(tiny_config(tiny_encoder_dir, tmp_path), dsd)


# ---------------------------------------------------------------------------------------------
# Config and CLI


@pytest.mark.parametrize(("override", "message"), [
    ("epochz=3", "unknown key 'epochz'"),
    ("data.val_fractionn=0.2", "val_fractionn"),
    ("epochs=three", "epochs must be an integer"),
    ("learning_rate=0", "learning_rate must be a number in (0, 1]"),
    ("class_weights=heavy", "class_weights must be one of"),
    ("class_weights=[1, 2]", "class_weights must be 4 positive numbers"),
    ("device=tpu", "device must be one of"),
    ("data.val_fraction=2", "val_fraction must be a number between 0 and 1"),
])
def test_config_errors_name_the_key(override, message):
    from training.cli import DEFAULT_CONFIG
    from training.config import TrainConfig

    with pytest.raises(ConfigError) as e:
        load_config(DEFAULT_CONFIG, TrainConfig, [override])
    assert message in str(e.value)


def test_shipped_configs_load():
    from training.cli import DEFAULT_CONFIG
    from training.config import TrainConfig

    default = load_config(DEFAULT_CONFIG, TrainConfig)
    tiny = load_config(DEFAULT_CONFIG.with_name("tiny.yaml"), TrainConfig)
    assert default.base_model == "" and default.max_length <= 128
    assert tiny.epochs == 1 and tiny.max_train_examples > 0


def test_cli_reports_a_bad_key_and_exits_2(capsys):
    from training.cli import main

    assert main(["epochz=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'epochz'" in err and err.count("\n") == 1


def test_cli_says_how_to_make_the_missing_corpus(capsys, tmp_path, monkeypatch):
    from callintent.cli import main

    monkeypatch.chdir(tmp_path)  # no data/generated/corpus.jsonl here
    assert main(["train"]) == 2
    assert "callintent data synth" in capsys.readouterr().err
    assert main(["train", "train_files=[elsewhere.jsonl]", "mix.weights=[]"]) == 2
    assert "elsewhere.jsonl: training file not found" in capsys.readouterr().err
    # Overriding the default's three files with one, and keeping its three mix weights, says how to fix it.
    assert main(["train", "train_files=[elsewhere.jsonl]"]) == 2
    err = capsys.readouterr().err
    assert "mix.weights has 3 weights but train_files has 1 files" in err and "mix.weights=[]" in err


def test_correction_files_override_rows_and_are_counted(tmp_path):
    """QA corrections (the evaluation review loop) change training labels and are counted."""
    import json

    from callintent.config import load_config
    from training.config import TrainConfig
    from training.train import load_training_data

    rows = [{"call_id": f"c{i}", "transcript": f"call number {i} about {'a quote' if i % 2 else 'my bill'}",
             "label": "buying" if i % 2 else "service", "signals": [], "split": "train" if i < 16 else "validation"}
            for i in range(20)]
    base = tmp_path / "base.jsonl"
    base.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    fixes = tmp_path / "fixes.jsonl"
    fixes.write_text(json.dumps({"call_id": "c3", "label": "informational"}) + "\n", encoding="utf-8")

    config = load_config(None, TrainConfig, {"train_files": [str(base)], "correction_files": [str(fixes)]})
    dsd, applied = load_training_data(config)
    assert applied == 1
    fixed = [r for r in dsd["train"] if r["call_id"] == "c3"]
    assert fixed and fixed[0]["label"] == "informational"

    plain, none_applied = load_training_data(load_config(None, TrainConfig, {"train_files": [str(base)]}))
    assert none_applied == 0
    assert [r for r in plain["train"] if r["call_id"] == "c3"][0]["label"] == "buying"


def test_signal_pos_weight_counts_labeled_rows_and_clips():
    import numpy as np

    from callintent.config import load_config
    from training.config import TrainConfig
    from training.train import signal_pos_weight_vector

    labels = np.zeros((40, 7))
    labels[:2, 0] = 1      # rare: 2 of 40 -> 38/2 = 19, clipped to the max
    labels[:20, 1] = 1     # balanced: 20/20 -> 1
    labeled = np.ones(40, dtype=bool)
    labeled[30:] = False   # unlabeled rows do not count as negatives
    labels[30:, 0] = 0
    weights = signal_pos_weight_vector(load_config(None, TrainConfig, {"signal_pos_weight_max": 10.0}), labels, labeled)
    assert weights[0] == 10.0
    assert weights[1] == 1.0
    assert weights[2] == 10.0  # never seen: weight capped, no division by zero
    assert signal_pos_weight_vector(load_config(None, TrainConfig, {"signal_pos_weight_max": 0.0}), labels, labeled) is None


def test_signal_pos_weight_raises_the_cost_of_missing_a_positive():
    import torch

    from training.model import IntentOutput, intent_loss

    batch, seq, n = 2, 4, 7
    out = IntentOutput(torch.zeros(batch, 4), torch.full((batch, n), -2.0), torch.full((batch, seq, n), -2.0))
    kwargs = dict(labels=torch.tensor([0, 1]), signal_labels=torch.ones(batch, n), signal_mask=torch.ones(batch),
                  token_targets=torch.zeros(batch, seq, n), token_mask=torch.zeros(batch, n),
                  attention_mask=torch.ones(batch, seq, dtype=torch.long))
    plain = intent_loss(out, **kwargs)
    weighted = intent_loss(out, **kwargs, signal_pos_weight=torch.full((n,), 5.0))
    assert torch.isclose(weighted.signal, plain.signal * 5.0)
