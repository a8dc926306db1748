"""The ASR-noise model (data/asr_noise.py): learned from (clean, ASR) pairs, applied as training augmentation."""

from __future__ import annotations

import json
import random

import pytest

from callintent.errors import UserError
from data.asr_noise import DELETED, AsrNoiseModel
from models.labels import CLASS_INDEX, SIGNAL_NAMES
from training.augment import asr_noise

VOCAB = ("need", "price", "roof", "service", "today", "could", "send", "someone", "over", "check", "water",
         "heater", "appointment", "tomorrow", "morning", "really", "broken", "install", "new", "window")
FILLERS = ("um", "uh")
SUB_RATE, DEL_RATE, INS_RATE = 0.3, 0.05, 0.02


def planted_pairs(n: int, seed: int = 1) -> list[tuple[str, str]]:
    """Sentences of VOCAB words plus 'quote'; the 'ASR' hears quote as vote 30 % of the time,
    drops any other outcome's word 5 % of the time and inserts a filler after 2 % of words."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        ref = rng.sample(VOCAB, 9) + ["quote"]
        rng.shuffle(ref)
        heard = []
        for word in ref:
            if word == "quote" and rng.random() < SUB_RATE:
                heard.append("vote")
            elif rng.random() >= DEL_RATE:
                heard.append(word)
            if rng.random() < INS_RATE:
                heard.append(rng.choice(FILLERS))
        pairs.append((" ".join(ref), " ".join(heard)))
    return pairs


@pytest.fixture(scope="module")
def planted() -> AsrNoiseModel:
    return AsrNoiseModel.learn(planted_pairs(1500), min_count=3)


def test_learning_recovers_planted_substitution_deletion_and_insertion(planted):
    quote = planted.words["quote"]
    assert quote.seen == 1500
    assert abs(quote.heard["vote"] / quote.seen - SUB_RATE) < 0.04
    # Deletions: 5 % of every word that was not substituted.
    expected_del = DEL_RATE * (1 - SUB_RATE / len(VOCAB + ("quote",)))
    assert abs(planted.deletion_rate - expected_del) < 0.01
    assert abs(planted.summary.deletion_rate - expected_del) < 0.01
    assert abs(planted.insertion_rate - INS_RATE) < 0.006
    # A word dropped next to an inserted filler reads as a substitution by the filler (as in any
    # WER alignment); nothing else was planted, so other outcomes stay that rare.
    assert planted.inserted.keys() >= set(FILLERS)
    assert sum(c for w, c in planted.inserted.items() if w not in FILLERS) < 0.05 * sum(planted.inserted.values())
    spurious = sum(c for o in planted.words.values() for h, c in o.heard.items()
                   if h not in (DELETED, "vote", *FILLERS))
    assert spurious == 0
    assert planted.summary.substitution_rate < SUB_RATE / 10 + 0.003
    assert abs(planted.summary.wer - (planted.summary.substitution_rate + planted.summary.deletion_rate
                                      + planted.summary.insertion_rate)) < 1e-9


def test_applying_reproduces_the_learned_rates(planted):
    """Noise drawn from the model, learned again, gives back the model's rates."""
    rng = random.Random(5)
    clean = [ref for ref, _ in planted_pairs(1500, seed=2)]
    again = AsrNoiseModel.learn([(text, planted.apply(text, rng)) for text in clean])
    # The learned probability is smoothed toward the global deletion rate by min_count pseudo-counts.
    assert abs(again.words["quote"].heard["vote"] / again.words["quote"].seen - SUB_RATE) < 0.04
    assert abs(again.deletion_rate - planted.deletion_rate) < 0.01
    assert abs(again.insertion_rate - planted.insertion_rate) < 0.006


def test_merges_are_learned_and_applied_with_surface_form_and_punctuation():
    pairs = [("I need a lot of help with my quote.", "I need alot of help with my vote.")] * 4
    pairs += [("Quote me a lot today", "Vote me a lot today")] * 4
    model = AsrNoiseModel.learn(pairs, min_count=3)
    assert model.merges["a lot"].heard == {"alot": 4} and model.merges["a lot"].seen == 8
    assert model.words["quote"].heard == {"vote": 8}  # sentence-start capital is the position's, not the word's
    outs = {model.apply("Quote, a lot.", random.Random(s), strength=5.0) for s in range(40)}
    assert "Vote, alot." in outs
    assert all(o.split()[0] in ("Quote,", "Vote,") for o in outs)


def test_numbers_are_never_invented():
    pairs = [("twenty people at noon", "$20 people at noon 4"), ("it is 25 dollars", "it is twenty five dollars"),
             ("call 555 0108", "call 5550108")] * 5
    model = AsrNoiseModel.learn(pairs, min_count=3)
    assert "twenty" not in model.words or not any(any(c.isdigit() for c in o) for o in model.words["twenty"].heard)
    assert all(not any(c.isdigit() for c in w) for w in model.inserted)
    assert model.merges["555 0108"].heard == {"5550108": 5}  # same digits: allowed
    rng = random.Random(0)
    for _ in range(200):
        noisy = model.apply("twenty people at noon", rng, strength=3.0)
        assert not any(c.isdigit() for c in noisy), noisy


def test_apply_is_deterministic_by_rng_and_identity_at_strength_zero(planted):
    text = "caller: could you send someone over to check the quote today agent: sure"
    a = [planted.apply(text, random.Random(s), strength=3.0) for s in range(30)]
    b = [planted.apply(text, random.Random(s), strength=3.0) for s in range(30)]
    assert a == b
    assert len(set(a)) > 5
    assert all(o.split()[0] == "caller:" and "agent:" in o.split() for o in a)  # speaker tags are never touched
    assert planted.apply(text, random.Random(0), strength=0.0) is text


def test_save_load_round_trip_is_compact(planted, tmp_path):
    path = planted.save(tmp_path / "noise.json")
    loaded = AsrNoiseModel.load(path)
    assert loaded == planted
    text = "send someone over to check the quote"
    assert [loaded.apply(text, random.Random(s)) for s in range(20)] == [planted.apply(text, random.Random(s))
                                                                          for s in range(20)]
    assert path.stat().st_size < 5_000
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(UserError, match="not an ASR-noise model"):
        AsrNoiseModel.load(bad)
    with pytest.raises(UserError, match="not found"):
        AsrNoiseModel.load(tmp_path / "missing.json")


def test_vocabulary_is_capped_by_frequency():
    model = AsrNoiseModel.learn(planted_pairs(200), min_count=3, max_words=5)
    assert len(model.words) == 5 and "quote" in model.words  # quote is in every sentence


def test_cli_learns_and_summarises(tmp_path, capsys):
    from callintent.cli import main

    rendered = tmp_path / "rendered.jsonl"
    rendered.write_text("".join(json.dumps({"call_id": f"c{i}", "reference_transcript": ref, "transcript": heard})
                                + "\n" for i, (ref, heard) in enumerate(planted_pairs(300))))
    out = tmp_path / "noise.json"
    assert main(["data", "learn-asr-noise", "--in", str(rendered), "--out", str(out), "--min-count", "4"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("300 pairs, 3000 reference words aligned: WER ") and str(out) in line
    assert AsrNoiseModel.load(out).min_count == 4


# -- training augmentation --------------------------------------------------------------------------

def row(call_id: str, text: str = "could you send someone over to check the quote today", **extra) -> dict:
    start = text.index("send someone")
    spans = [{"signal": SIGNAL_NAMES[0], "start": start, "end": start + 12, "text": "send someone"}]
    return {"call_id": call_id, "transcript": text, "label": "service", "label_id": CLASS_INDEX["service"],
            "signals": [SIGNAL_NAMES[0]], "signal_labels": [1.0] + [0.0] * (len(SIGNAL_NAMES) - 1),
            "signals_labeled": True, "spans": json.dumps(spans), "source": "", "campaign": "", "industry": "",
            "extra": json.dumps(extra)}


def loud(planted: AsrNoiseModel) -> AsrNoiseModel:
    """The planted model with 'quote' always heard as 'vote', so every drawn row changes."""
    words = dict(planted.words)
    words["quote"] = type(words["quote"])(seen=10, heard={"vote": 10_000})
    return AsrNoiseModel(words=words, merges={}, deletion_rate=planted.deletion_rate, insertion_rate=0.0,
                         inserted={}, min_count=planted.min_count)


def test_augmentation_noises_the_share_keeps_labels_and_drops_spans_of_changed_rows(planted):
    model = loud(planted)
    rows = [row(f"c{i}") for i in range(400)] + [row("asr", text_source="asr")]
    out, noised = asr_noise(rows, model, share=0.3, seed=7)
    changed = [(a, b) for a, b in zip(rows, out) if a["transcript"] != b["transcript"]]
    assert noised == len(changed) and 90 <= noised <= 150  # 30 % of 400, drawn per call
    for before, after in changed:
        assert after["spans"] == "[]"
        assert {k: after[k] for k in ("label", "label_id", "signals", "signal_labels", "signals_labeled")} == {
            k: before[k] for k in ("label", "label_id", "signals", "signal_labels", "signals_labeled")}
        assert json.loads(after["extra"])["reference_transcript"] == before["transcript"]
    assert all(a == b for a, b in zip(rows, out) if a["transcript"] == b["transcript"])
    assert out[-1] == rows[-1]  # rendered ASR text is not noised again
    # Per call id, not per position: the same calls change in any order and with the same seed.
    again, _ = asr_noise(rows[::-1], model, share=0.3, seed=7)
    assert {r["call_id"]: r["transcript"] for r in again} == {r["call_id"]: r["transcript"] for r in out}
    other, _ = asr_noise(rows, model, share=0.3, seed=8)
    assert [r["transcript"] for r in other] != [r["transcript"] for r in out]


def test_training_noises_the_train_split_only_and_counts_it(planted, tmp_path):
    from datasets import Dataset

    from training.config import TrainConfig
    from training.train import augment_splits

    path = loud(planted).save(tmp_path / "noise.json")
    config = TrainConfig(asr_noise=str(path), asr_noise_share=1.0, seed=3)
    splits = {name: Dataset.from_list([row(f"{name}{i}") for i in range(20)]) for name in ("train", "validation", "test")}
    before = {name: split.to_list() for name, split in splits.items()}
    counts = augment_splits(config, splits)
    assert counts["noised_train"] == 20
    assert all("vote" in r["transcript"] and r["spans"] == "[]" for r in splits["train"].to_list())
    assert splits["validation"].to_list() == before["validation"] and splits["test"].to_list() == before["test"]
    quiet = TrainConfig(asr_noise=str(path), asr_noise_share=1.0, asr_noise_strength=0.0, seed=3)
    splits = {name: Dataset.from_list(rows) for name, rows in before.items()}
    assert augment_splits(quiet, splits)["noised_train"] == 0, "strength 0 must leave every row as it was"
    assert splits["train"].to_list() == before["train"]


@pytest.mark.parametrize(("values", "field"), [({"asr_noise_share": 0.5}, "asr_noise"),
                                               ({"asr_noise": "n.json", "asr_noise_strength": 1.5},
                                                "asr_noise_strength"),
                                               ({"asr_noise": "n.json", "asr_noise_share": 1.5}, "asr_noise_share"),
                                               ({"asr_noise": 3}, "asr_noise")])
def test_bad_config_names_the_field(values, field):
    from training.config import TrainConfig

    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        TrainConfig(**values)


def test_a_missing_noise_model_fails_before_training(tmp_path):
    from training.config import TrainConfig, require_train_files

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("")
    config = TrainConfig(train_files=(str(corpus),), asr_noise=str(tmp_path / "none.json"), asr_noise_share=0.2)
    with pytest.raises(UserError, match="asr_noise"):
        require_train_files(config)
