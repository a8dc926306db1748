"""Few-label adaptation: init_from a trained model, replay its data, export keeps torch weights.

The constructed shift: two "domains" that say the same four intents with disjoint words (domain A:
price / bill / hours / contest …; domain B: estimate / broken / parking / prize …) inside the same
filler talk. A tiny random encoder trained on A knows nothing of B's words; adapting it on a few
B rows (plus a replay of A) must lift B's held-out macro-F1 well above where it started while A's
stays high.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from callintent.config import ConfigError, load_config
from callintent.errors import UserError
from models.labels import CLASS_INDEX, CLASS_NAMES

DOMAIN_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "a": {"buying": ("price", "quote", "buy", "purchase"), "service": ("bill", "payment", "account", "password"),
          "informational": ("hours", "located", "directions", "open"),
          "noise": ("contest", "survey", "lottery", "robot")},
    "b": {"buying": ("estimate", "install", "booking", "sale"), "service": ("broken", "complaint", "cancel", "repair"),
          "informational": ("parking", "menu", "policy", "address"),
          "noise": ("prize", "vacation", "casino", "recorded")},
}
FILLER = ("hi", "hello", "yes", "um", "so", "i", "was", "calling", "about", "the", "my", "please", "thanks",
          "okay", "well", "just", "wanted", "to", "ask")


def domain_rows(domain: str, per_class: int, seed: int, prefix: str = "") -> list[dict]:
    """Labeled rows of one domain: filler talk with two of the class's words in it."""
    rng = random.Random(f"{domain}-{seed}")
    rows = []
    for label, words in DOMAIN_WORDS[domain].items():
        for i in range(per_class):
            text = [rng.choice(FILLER) for _ in range(rng.randint(3, 7))]
            for word in rng.sample(words, 2):
                text.insert(rng.randint(0, len(text)), word)
            rows.append({"call_id": f"{prefix}{domain}{seed}-{label}-{i}", "transcript": " ".join(text),
                         "label": label, "signals": None, "source": f"domain-{domain}"})
    return rows


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def macro_f1(weights_dir: Path, rows: list[dict]) -> float:
    """Macro-F1 of a saved model (torch) on rows."""
    import torch
    from sklearn.metrics import f1_score

    from training.model import IntentModel

    model = IntentModel.from_pretrained(weights_dir)
    enc = model.tokenizer([r["transcript"] for r in rows], padding=True, truncation=True, max_length=32,
                          return_tensors="pt", return_token_type_ids=False)
    with torch.no_grad():
        predicted = model(enc["input_ids"], enc["attention_mask"]).class_logits.argmax(dim=1).numpy()
    truth = np.array([CLASS_INDEX[r["label"]] for r in rows])
    return float(f1_score(truth, predicted, average="macro"))


def small_config(out: Path, **overrides):
    from training.config import TrainConfig

    values = dict(output_dir=str(out), max_length=32, epochs=15, learning_rate=2e-3, batch_size=8,
                  eval_batch_size=64, warmup_ratio=0.0, early_stopping_patience=0, device="cpu", log_every=20,
                  seed=0, signal_pos_weight_max=0.0)
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def domains(tmp_path_factory) -> dict[str, Path | list[dict]]:
    root = tmp_path_factory.mktemp("domains")
    return {
        "a_train": write_jsonl(domain_rows("a", 40, 0), root / "a_train.jsonl"),
        "a_heldout": domain_rows("a", 15, 1),
        "b_few": write_jsonl(domain_rows("b", 8, 0), root / "b_few.jsonl"),
        "b_heldout": domain_rows("b", 15, 1),
    }


@pytest.fixture(scope="module")
def base_run(tiny_encoder_dir, domains, tmp_path_factory) -> Path:
    """The tiny encoder trained on domain A only, from its file (so the run records what to replay)."""
    from data.dataset import DataConfig
    from training.train import train

    out = tmp_path_factory.mktemp("base-run")
    train(small_config(out, base_model=str(tiny_encoder_dir), train_files=(str(domains["a_train"]),),
                       data=DataConfig(val_fraction=0.2, test_fraction=0.0)))
    return out


@pytest.fixture(scope="module")
def registry(base_run, tmp_path_factory) -> Path:
    """A registry whose production is the base run, exported (with its torch weights)."""
    from models.registry import Registry
    from training.export import export_run

    root = tmp_path_factory.mktemp("registry")
    exported = export_run(base_run, base_run / "artifact")
    registry = Registry(root)
    ref = registry.register(exported.artifact_dir)
    registry.promote(ref, "production", force=True, reason="test base")
    return root


@pytest.fixture(scope="module")
def adapted(registry, domains, tmp_path_factory):
    """Adapt production (the base) on 8 rows per class of domain B, replaying 32 rows of domain A."""
    from data.dataset import DataConfig
    from training.train import train

    out = tmp_path_factory.mktemp("adapted")
    mp = pytest.MonkeyPatch()
    mp.setenv("CALLINTENT_REGISTRY", str(registry))
    try:
        config = small_config(out, init_from="production", train_files=(str(domains["b_few"]),), replay_rows=32,
                              epochs=20, data=DataConfig(val_fraction=0.25, test_fraction=0.0))
        return config, train(config)
    finally:
        mp.undo()


# ---------------------------------------------------------------------------------------------
# Adaptation on a constructed shift


def test_adaptation_lifts_the_new_domain_and_replay_keeps_the_old(base_run, adapted, domains):
    config, result = adapted
    before_b = macro_f1(base_run / "best", domains["b_heldout"])
    after_b = macro_f1(Path(config.output_dir) / "best", domains["b_heldout"])
    before_a = macro_f1(base_run / "best", domains["a_heldout"])
    after_a = macro_f1(Path(config.output_dir) / "best", domains["a_heldout"])
    # Measured: A 1.00 -> 1.00, B 0.15 -> 0.93.
    assert before_a >= 0.95  # the base learned domain A ...
    assert before_b <= 0.5  # ... and B's words mean nothing to it
    assert after_b >= 0.8 and after_b >= before_b + 0.4, (before_b, after_b)
    assert after_a >= 0.9, (before_a, after_a)


def test_adaptation_run_records_its_source_and_replay(registry, adapted, domains):
    config, result = adapted
    record = result.adaptation
    assert record is not None and record.init_from == "production" and record.version == "intent/v1"
    assert record.path == str((registry / "intent" / "v1").absolute())
    assert record.replay_files == (str(domains["a_train"]),)  # the base run's recorded train_files
    assert record.new_train == 24 and record.new_validation == 8
    assert record.replay_train == {c: 8 for c in CLASS_NAMES}
    # validation replay in the same proportion as train: round(32 * 8 / 24) = 11, the odd rows first
    assert record.replay_validation == {"buying": 3, "service": 3, "informational": 3, "noise": 2}
    assert result.split_sizes["train"] == 24 + 32 and result.split_sizes["validation"] == 8 + 11
    # The run's config names what was replayed, so adapting this model again replays it too.
    from training.config import TrainConfig

    written = load_config(Path(config.output_dir) / "train_config.yaml", TrainConfig)
    assert written.init_from == "production" and written.replay_files == (str(domains["a_train"]),)
    metrics = json.loads((Path(config.output_dir) / "metrics.json").read_text())
    assert metrics["adaptation"]["replay_train"] == {c: 8 for c in CLASS_NAMES}


def test_replayed_rows_come_from_the_base_runs_train_split(base_run, adapted, domains):
    from data.dataset import DataConfig, load_labeled
    from training.adapt import find_init_source, mix_replay
    from training.export import load_eval_data

    from dataclasses import replace

    config = replace(adapted[0], init_from=str(base_run), replay_files=(str(domains["a_train"]),))
    source = find_init_source(str(base_run))
    original = load_labeled([str(domains["a_train"])], DataConfig(val_fraction=0.2, test_fraction=0.0))
    customer = load_labeled([str(domains["b_few"])], DataConfig(val_fraction=0.25, test_fraction=0.0))
    mixed, record = mix_replay(config, source, customer)
    replay_train = set(mixed["train"]["call_id"]) - set(customer["train"]["call_id"])
    replay_val = set(mixed["validation"]["call_id"]) - set(customer["validation"]["call_id"])
    assert len(replay_train) == 32 and replay_train <= set(original["train"]["call_id"])
    assert len(replay_val) == 11 and replay_val <= set(original["validation"]["call_id"])
    assert mixed["test"]["call_id"] == customer["test"]["call_id"]
    again, _ = mix_replay(config, source, customer)
    assert again["train"]["call_id"] == mixed["train"]["call_id"]  # seeded
    # The adaptation run's saved validation split is that very mix.
    saved = load_eval_data(Path(adapted[0].output_dir) / "eval_data")
    assert set(saved) == {"validation"}  # test_fraction 0: the empty test split is left out
    assert sorted(saved["validation"]["call_id"]) == sorted(mixed["validation"]["call_id"])


def test_export_of_an_adapted_run_says_where_it_came_from(adapted, tmp_path):
    from models.artifact import ArtifactMeta
    from training.export import export_run

    config, _ = adapted
    result = export_run(config.output_dir, tmp_path / "artifact")
    meta = ArtifactMeta.load(result.artifact_dir)
    assert meta.extra["adapted_from"]["version"] == "intent/v1"
    assert (result.artifact_dir / "torch" / "heads.safetensors").is_file()
    card = (result.artifact_dir / "MODEL_CARD.md").read_text()
    assert "Adapted from `intent/v1` (init_from `production`): 24 new training rows plus 32 replay rows" in card


# ---------------------------------------------------------------------------------------------
# Sampling


def test_sample_per_class_is_even_and_redistributes_a_short_class():
    from training.adapt import sample_per_class

    labels = ["buying"] * 50 + ["service"] * 50 + ["informational"] * 3 + ["noise"] * 50
    idx = sample_per_class(labels, 40, seed=0)
    counts = {c: sum(labels[i] == c for i in idx) for c in CLASS_NAMES}
    # informational has 3; its unused share goes to the others (37 = 13 + 12 + 12, first classes first)
    assert counts == {"buying": 13, "service": 12, "informational": 3, "noise": 12}
    assert idx == sorted(set(idx))
    assert sample_per_class(labels, 40, seed=0) == idx
    assert sample_per_class(labels, 40, seed=1) != idx
    assert len(sample_per_class(labels, 10_000, seed=0)) == len(labels)
    assert sample_per_class(labels, 0, seed=0) == []


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(("override", "message"), [
    ("replay_rows=-1", "replay_rows must be an integer >= 0"),
    ("replay_rows=many", "replay_rows must be an integer"),
    ("base_model=/some/encoder", "set base_model or init_from, not both"),
    ("init_from=''", "replay_rows > 0 needs init_from"),
    ("replay_rows=0", "replay_files is set but replay_rows is 0"),
    ("init_from=[production]", "init_from must be"),
])
def test_adaptation_config_errors_name_the_key(override, message):
    from training.adapt_cli import ADAPT_CONFIG
    from training.config import TrainConfig

    extra = ["replay_files=[old.jsonl]"] if override == "replay_rows=0" else []
    with pytest.raises(ConfigError) as e:
        load_config(ADAPT_CONFIG, TrainConfig, [*extra, override])
    assert message in str(e.value)


def test_shipped_adapt_config_loads():
    from training.adapt_cli import ADAPT_CONFIG
    from training.config import TrainConfig

    config = load_config(ADAPT_CONFIG, TrainConfig)
    assert config.init_from == "production" and config.replay_rows > 0 and config.replay_files == ()
    assert config.base_model == "" and config.data.test_fraction == 0.0


def test_init_from_a_missing_version_is_a_clear_cli_error(tmp_path, capsys, domains):
    from callintent.cli import main

    code = main(["adapt", "--from", "intent/v7", "--data", str(domains["b_few"]), "--registry",
                 str(tmp_path / "empty-registry"), f"output_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "init_from 'intent/v7': not a training run directory" in err and "has no versions" in err
    assert not (tmp_path / "run").exists()


def test_init_from_an_onnx_only_artifact_says_to_re_export(tmp_path):
    from model_fixtures import build_tiny_artifact

    from models.registry import Registry
    from training.adapt import find_init_source

    registry = Registry(tmp_path / "registry")
    ref = registry.register(build_tiny_artifact(tmp_path / "old"))
    with pytest.raises(UserError) as e:
        find_init_source(ref, registry.root)
    message = str(e.value)
    assert "holds only the ONNX graphs, not the torch weights (torch/)" in message
    assert "callintent export RUN" in message


def test_init_from_a_run_without_recorded_files_needs_replay_files(base_run, tmp_path):
    import shutil

    from training.adapt import find_init_source, resolve_init

    run = tmp_path / "run"
    shutil.copytree(base_run / "best", run / "best")  # weights, but no train_config.yaml
    config = small_config(tmp_path / "out", init_from=str(run), replay_rows=8)
    with pytest.raises(UserError, match="no recorded training config to replay from; set replay_files"):
        resolve_init(config)
    assert find_init_source(str(run)).weights_dir == (run / "best").absolute()
    missing = small_config(tmp_path / "out", init_from=str(run), replay_rows=8, replay_files=("gone.jsonl",))
    with pytest.raises(UserError, match="gone.jsonl: replay file not found"):
        resolve_init(missing)


# ---------------------------------------------------------------------------------------------
# The learning-curve benchmark's draw


def test_learning_curve_draws_nested_rows_per_class_without_their_split():
    from bench.learning_curve import draw_pool, epochs_for

    rows = [{"call_id": f"{label}-{i}", "transcript": f"t {label} {i}", "label": label, "split": "train"}
            for label in ("buying", "service", "informational") for i in range(40)]
    eight, sixteen = draw_pool(rows, 8, seed=0), draw_pool(rows, 16, seed=0)
    assert {label: sum(r["label"] == label for r in eight) for label in ("buying", "service", "informational")} == \
           {"buying": 8, "service": 8, "informational": 8}
    assert {r["call_id"] for r in eight} < {r["call_id"] for r in sixteen}  # more labels, not other labels
    assert all("split" not in r for r in sixteen)
    assert draw_pool(rows, 8, seed=1) != eight and draw_pool(list(reversed(rows)), 8, seed=0) == eight
    # ~60 steps in whole epochs: 36 rows = 3 steps per epoch -> 20 epochs, capped at 15; at least 3
    assert epochs_for(60, 36, 16, 15) == 15
    assert epochs_for(60, 288, 16, 15) == 4  # 18 steps per epoch
    assert epochs_for(60, 5000, 16, 15) == 3
