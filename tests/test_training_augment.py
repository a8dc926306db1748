"""Training on what serving scores: ASR text mixed in by call_id, and prefix-truncated copies from word timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callintent.config import ConfigError, load_config
from models.labels import CLASS_INDEX, SIGNAL_INDEX, SIGNAL_NAMES
from training.augment import mix_asr_text, prefix_copies, read_asr_texts

TEXT = "thanks for calling hi I saw your ad how much is a new roof"


def timed_row(call_id: str = "c1", text: str = TEXT, label: str = "buying",
              found: list[tuple[str, str]] | None = (("ad_reference", "saw your ad"), ("price_inquiry", "how much")),
              seconds_per_word: float = 0.5) -> dict:
    """A ``data.dataset`` row whose ``extra.words`` spell ``text``, one word every ``seconds_per_word`` (from then)."""
    spans = []
    for signal, phrase in found or []:
        start = text.index(phrase)
        spans.append({"signal": signal, "start": start, "end": start + len(phrase), "text": phrase})
    signals = sorted({s for s, _ in found or []})
    words = [{"text": w, "start": (k + 1) * seconds_per_word, "end": (k + 1) * seconds_per_word + 0.4}
             for k, w in enumerate(text.split())]
    return {"call_id": call_id, "transcript": text, "label": label, "label_id": CLASS_INDEX[label],
            "signals": signals, "signal_labels": [1.0 if s in signals else 0.0 for s in SIGNAL_NAMES],
            "signals_labeled": found is not None, "spans": json.dumps(spans), "source": "", "campaign": "",
            "industry": "", "extra": json.dumps({"words": words})}


def test_prefix_copy_keeps_the_spans_said_before_the_cut():
    row = timed_row()
    # Words start every 0.5 s from 0.5 s: by 4.5 s the first 8 ("... I saw your ad") have started.
    (copy,) = prefix_copies([row], [4.5])
    assert copy["transcript"] == "thanks for calling hi I saw your ad"
    assert copy["call_id"] == "c1#4.5s" and copy["label"] == "buying"
    assert copy["signals"] == ["ad_reference"] and copy["signals_labeled"] is True
    assert copy["signal_labels"][SIGNAL_INDEX["ad_reference"]] == 1.0
    assert copy["signal_labels"][SIGNAL_INDEX["price_inquiry"]] == 0.0  # not said yet
    (span,) = json.loads(copy["spans"])
    assert copy["transcript"][span["start"]:span["end"]] == "saw your ad"
    extra = json.loads(copy["extra"])
    assert extra["prefix_seconds"] == 4.5 and len(extra["words"]) == 8
    # Cut-offs that keep nothing or everything make no copy.
    assert prefix_copies([row], [0.5, 60.0]) == []


def test_prefix_copies_are_seeded_distinct_and_masked_when_unknown():
    rows = [timed_row(f"c{i}") for i in range(20)]
    picks = prefix_copies(rows, [1.0, 2.0, 3.0, 4.0], copies=2, seed=1)
    assert len(picks) == 40
    per_row = {}
    for c in picks:
        base, t = c["call_id"].split("#")
        per_row.setdefault(base, set()).add(t)
    assert all(len(ts) == 2 for ts in per_row.values())  # two different cut-offs per row
    assert len({frozenset(ts) for ts in per_row.values()}) > 1  # not the same two for every row
    assert prefix_copies(rows, [1.0, 2.0, 3.0, 4.0], copies=2, seed=1) == picks
    assert len(prefix_copies(rows[:1], [1.0, 2.0], copies=5)) == 2  # capped at the usable cut-offs

    # A present signal without a span: whether it was said before the cut is unknown -> unlabeled copy.
    no_span = {**timed_row(), "spans": "[]"}
    (copy,) = prefix_copies([no_span], [2.0])
    assert copy["signals_labeled"] is False and copy["signal_labels"] == [0.0] * len(SIGNAL_NAMES)
    # Rows without timings give nothing.
    assert prefix_copies([{**timed_row(), "extra": "{}"}], [2.0]) == []


def test_asr_mix_switches_text_by_call_id_and_drops_spans(tmp_path):
    rows = [timed_row(f"c{i}") for i in range(40)]
    asr_file = tmp_path / "asr.jsonl"
    asr_file.write_text("".join(json.dumps({"call_id": f"c{i}", "transcript": f"thanks for calling I sure your ad {i}",
                                            "label": "noise", "words": [{"text": "thanks", "start": 0.2, "end": 0.5}],
                                            "asr_model": "tiny.en@x", "audio_seconds": 9.5}) + "\n"
                                for i in range(30)))
    asr = read_asr_texts([asr_file])
    assert len(asr) == 30 and asr["c3"].asr_model == "tiny.en@x"

    everything, switched = mix_asr_text(rows, asr, 1.0)
    assert switched == 30  # only the rows that have an ASR version
    c3 = next(r for r in everything if r["call_id"] == "c3")
    assert c3["transcript"] == "thanks for calling I sure your ad 3"
    assert c3["label"] == "buying" and c3["signals"] == ["ad_reference", "price_inquiry"]  # the clean row's labels
    assert c3["spans"] == "[]"
    extra = json.loads(c3["extra"])
    assert extra["text_source"] == "asr" and extra["reference_transcript"] == TEXT and extra["audio_seconds"] == 9.5
    assert next(r for r in everything if r["call_id"] == "c35")["transcript"] == TEXT

    half, n = mix_asr_text(rows, asr, 0.5, seed=7)
    assert 5 < n < 25 and mix_asr_text(list(reversed(rows)), asr, 0.5, seed=7)[1] == n  # per-call draws
    assert mix_asr_text(rows, asr, 0.0)[1] == 0

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"call_id": "x", "transcript": "hi"}\n{"call_id": 3}\n')
    with pytest.raises(Exception, match="bad.jsonl:2: expected a JSON object with call_id and transcript"):
        read_asr_texts([bad])


def test_asr_mix_reads_gzip_and_keeps_rows_whose_id_names_another_call(tmp_path):
    import gzip

    rows = [timed_row("same"), timed_row("other")]
    asr_file = tmp_path / "asr.jsonl.gz"
    with gzip.open(asr_file, "wt", encoding="utf-8") as f:
        for call_id, reference in (("same", TEXT), ("other", "a different call that had this id")):
            f.write(json.dumps({"call_id": call_id, "transcript": f"heard {call_id}", "reference_transcript": reference}) + "\n")
    asr = read_asr_texts([asr_file])
    assert asr["same"].reference == TEXT

    out, switched = mix_asr_text(rows, asr, 1.0)
    assert switched == 1
    assert [r["transcript"] for r in out] == ["heard same", TEXT]  # the stale version is never used


def test_config_options_are_validated(tmp_path):
    from training.config import TrainConfig

    with pytest.raises(ValueError, match="asr_mix > 0 needs asr_files"):
        TrainConfig(asr_mix=0.5)
    with pytest.raises(ValueError, match="asr_mix must be"):
        TrainConfig(asr_mix=1.5, asr_files=("a.jsonl",))
    with pytest.raises(ValueError, match="prefix_seconds"):
        TrainConfig(prefix_seconds=(-1.0,))
    with pytest.raises(ValueError, match="prefix_copies"):
        TrainConfig(prefix_copies=0)
    path = tmp_path / "c.yaml"
    path.write_text("asr_files: [asr.jsonl]\nasr_mix: 0.5\nprefix_seconds: [5, 10]\nprefix_copies: 2\n")
    config = load_config(path, TrainConfig)
    assert config.prefix_seconds == (5, 10) and config.asr_files == ("asr.jsonl",) and config.prefix_copies == 2
    with pytest.raises(ConfigError, match="prefix_seconds"):
        load_config(path, TrainConfig, ["prefix_seconds=[0]"])


def test_tiny_training_run_with_asr_mix_and_prefix_copies(tiny_encoder_dir, tmp_path):
    from datasets import Dataset, DatasetDict

    from test_training import tiny_config
    from training.train import train

    texts = [(TEXT, "buying", [("ad_reference", "saw your ad")]),
             ("hello I am calling about my bill it is wrong again", "service", []),
             ("hi what time do you open on saturday morning please", "informational", []),
             ("press one now about your car warranty offer today", "noise", [])]
    rows = [timed_row(f"{label}{k}", text, label, found) for k in range(3) for text, label, found in texts]
    ds = Dataset.from_list(rows)
    asr_file = tmp_path / "asr.jsonl"
    asr_file.write_text("".join(json.dumps({"call_id": r["call_id"], "transcript": r["transcript"].upper(),
                                            "words": json.loads(r["extra"])["words"]}) + "\n" for r in rows[:6]))
    config = tiny_config(tiny_encoder_dir, tmp_path / "run", epochs=1, asr_files=(str(asr_file),), asr_mix=1.0,
                         prefix_seconds=(2.0, 4.0), prefix_copies=2)
    result = train(config, DatasetDict(train=ds, validation=ds, test=ds))
    # The 6 rows with an ASR version switch in train and in validation; each of the 12 training
    # rows (10-11 words, one every 0.5 s) gets copies at 2 s and 4 s.
    assert result.augmentation == {"asr_train": 6, "asr_validation": 6, "framed_train": 0, "tagged_train": 0,
                                   "tagged_validation": 0, "prefix_copies": 24, "noised_train": 0}
    assert result.split_sizes == {"train": 36, "validation": 12, "test": 12}
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["augmentation"]["prefix_copies"] == 24


# -- speaker tags --------------------------------------------------------------------------------

TURNS = [("agent", "thanks for calling apex roofing how can I help"), ("caller", "hi I saw your ad"),
         ("caller", "how much is a new roof"), ("agent", "let me check")]


def turns_row(call_id: str = "t1", turns=TURNS, label: str = "buying",
              found=(("ad_reference", "saw your ad"), ("price_inquiry", "how much"))) -> dict:
    """A corpus-like row: ``turns`` spell the transcript, ``words`` carry speakers (one every 0.5 s)."""
    text = " ".join(t for _, t in turns)
    row = timed_row(call_id, text, label, list(found) if found is not None else None)
    words = [{"text": w, "start": (k + 1) * 0.5, "end": (k + 1) * 0.5 + 0.4, "speaker": s}
             for k, (s, w) in enumerate((s, w) for s, t in turns for w in t.split())]
    row["extra"] = json.dumps({"words": words, "turns": [{"speaker": s, "text": t} for s, t in turns]})
    return row


def test_tagged_rows_keep_their_labels_and_spans_point_at_the_same_words():
    from training.augment import SPEAKER_TAGGED, tag_speakers

    (row,), n = tag_speakers([turns_row()], share=1.0)
    assert n == 1
    assert row["transcript"] == ("agent: thanks for calling apex roofing how can I help "
                                 "caller: hi I saw your ad how much is a new roof agent: let me check")
    assert row["label"] == "buying" and row["signals"] == ["ad_reference", "price_inquiry"]
    spans = json.loads(row["spans"])
    assert [row["transcript"][s["start"]:s["end"]] for s in spans] == ["saw your ad", "how much"]
    assert json.loads(row["extra"])["text_form"] == SPEAKER_TAGGED


def test_tagging_is_seeded_per_call_and_skips_rows_it_cannot_tag():
    from training.augment import tag_speakers

    rows = [turns_row(f"t{i}") for i in range(40)]
    tagged, n = tag_speakers(rows, share=0.5, seed=3)
    assert 10 < n < 30  # about half
    again, _ = tag_speakers(list(reversed(rows)), share=0.5, seed=3)
    assert {r["call_id"] for r in tagged if r["transcript"].startswith("agent:")} == \
        {r["call_id"] for r in again if r["transcript"].startswith("agent:")}
    plain = timed_row("p1")  # no turns
    extra = json.loads(turns_row("a1")["extra"])
    mono_words = [{k: v for k, v in w.items() if k != "speaker"} for w in extra["words"]]
    mono_asr = {**turns_row("a1"), "extra": json.dumps({**extra, "words": mono_words, "text_source": "asr"})}
    respelled = {**turns_row("r1"), "transcript": "something else entirely"}
    out, n = tag_speakers([plain, mono_asr, respelled], share=1.0)
    assert n == 0 and [r["transcript"] for r in out] == [plain["transcript"], mono_asr["transcript"],
                                                         "something else entirely"]
    # ASR text of a two-channel rendering: its words' speakers tell who said what
    two_channel = {**turns_row("a2"), "extra": json.dumps({**extra, "turns": [], "text_source": "asr"})}
    (tagged_asr,), n = tag_speakers([two_channel], share=1.0)
    assert n == 1 and tagged_asr["transcript"].startswith("agent: thanks for calling") and \
        "caller: hi I saw your ad" in tagged_asr["transcript"]


def test_prefix_copies_of_a_tagged_row_are_tagged_with_their_spans():
    from training.augment import tag_speakers

    (row,), _ = tag_speakers([turns_row()], share=1.0)
    # words every 0.5 s from 0.5 s: by 7.5 s the 14 words up to "saw your ad" have started
    (copy,) = prefix_copies([row], [7.5])
    assert copy["transcript"] == "agent: thanks for calling apex roofing how can I help caller: hi I saw your ad"
    assert copy["signals"] == ["ad_reference"] and copy["signals_labeled"] is True
    (span,) = json.loads(copy["spans"])
    assert copy["transcript"][span["start"]:span["end"]] == "saw your ad"


def test_a_model_trained_with_speaker_tags_is_marked_for_serving(tiny_encoder_dir, tmp_path):
    from datasets import Dataset, DatasetDict

    from models.artifact import ArtifactMeta
    from serving.live_call import PredictorScorer
    from test_training import tiny_config
    from training.export import export_run
    from training.train import train

    rows = [turns_row(f"b{k}") for k in range(3)] + [
        turns_row(f"s{k}", [("agent", "thanks for calling"), ("caller", "my bill is wrong again")], "service", ())
        for k in range(3)]
    ds = Dataset.from_list(rows)
    config = tiny_config(tiny_encoder_dir, tmp_path / "run", epochs=1, speaker_tags=0.5)
    result = train(config, DatasetDict(train=ds, validation=ds, test=ds))
    assert 0 < result.augmentation["tagged_train"] < 6
    assert result.augmentation["tagged_train"] == result.augmentation["tagged_validation"]  # same seeded draws
    artifact = export_run(tmp_path / "run", tmp_path / "artifact").artifact_dir
    meta = ArtifactMeta.load(artifact)
    assert meta.speaker_tags is True
    assert f"{result.augmentation['tagged_train']} speaker-tagged" in (artifact / "MODEL_CARD.md").read_text()

    class Predictor:  # what serving wraps: the artifact's metadata decides
        pass

    Predictor.meta = meta
    assert PredictorScorer(Predictor()).speaker_tags is True


def typed_row(call_id: str, text: str = "i lost my card and need a new one", spans=()) -> dict:
    return {"call_id": call_id, "transcript": text, "label": "service", "label_id": CLASS_INDEX["service"],
            "signals": None, "signals_labeled": False, "signal_labels": [0.0] * len(SIGNAL_NAMES),
            "spans": json.dumps(list(spans)), "source": "clinc150", "campaign": "", "industry": "banking",
            "extra": "{}"}


def test_spoken_frame_puts_a_greeting_before_typed_rows_and_keeps_label_and_spans():
    from training.augment import spoken_frame

    text = "how much would a new water heater cost"
    span = {"start": 0, "end": 8, "signal": "price_inquiry", "text": "how much"}
    rows = [typed_row(f"r{i}", text, [span]) for i in range(200)] + [timed_row("timed")] + [turns_row("spoken")]
    out, framed = spoken_frame(rows, 0.5, seed=1)
    assert 70 <= framed <= 130  # about half of the 200 typed rows; spoken rows never
    assert out[-2] == rows[-2] and out[-1] == rows[-1]
    changed = [(a, b) for a, b in zip(rows, out) if a != b]
    assert len(changed) == framed
    for before, after in changed:
        assert after["transcript"].endswith(text) and len(after["transcript"]) > len(text)
        assert after["label"] == before["label"] and after["signals_labeled"] == before["signals_labeled"]
        (moved,) = json.loads(after["spans"])
        assert after["transcript"][moved["start"]:moved["end"]] == "how much"
        extra = json.loads(after["extra"])
        assert extra["framed"] == text
        assert extra["turns"][-1]["speaker"] == "caller" and extra["turns"][-1]["text"].endswith(text)
        assert " ".join(t["text"] for t in extra["turns"]) == after["transcript"]
    # Agent greetings and caller openers both occur, and some callers open with a question ("Hello?").
    starts = {json.loads(a["extra"])["turns"][0]["speaker"] for _, a in changed}
    assert starts == {"agent", "caller"}
    assert any(json.loads(a["extra"])["turns"][-1]["text"].split(" ")[0].endswith("?") or "? " in a["transcript"]
               for _, a in changed)
    again, _ = spoken_frame(rows, 0.5, seed=1)
    assert again == out
    # Framed rows have turns now: a second pass frames only the rest, never a row twice.
    assert spoken_frame(out, 1.0, seed=2)[1] == 200 - framed


def test_shipped_asr_cache_has_no_test_row_and_matches_the_real_sets():
    """data/asr/: the real-set rows are the ASR text of data/real's own train/validation rows."""
    from data.jsonl import read_objects

    repo = Path(__file__).resolve().parents[1]
    real = {row["call_id"]: row for _, _, row in read_objects(sorted((repo / "data/real").glob("*.jsonl")), missing="missing")}
    files = sorted((repo / "data/asr").glob("*.jsonl.gz"))
    assert [f.name for f in files] == ["corpus_natural.jsonl.gz", "real_natural.jsonl.gz"]
    rows = [row for _, _, row in read_objects(files, missing="missing")]
    assert len(rows) > 2500 and {r["split"] for r in rows} == {"train", "validation"}
    asr = read_asr_texts(files)
    matched = 0
    for row in rows:
        assert asr[row["call_id"]].words and row["render"]["channel"]["codec"]
        if row["call_id"] in real:
            source = real[row["call_id"]]
            assert source["split"] == row["split"] != "test"
            assert asr[row["call_id"]].reference == source["transcript"]
            matched += 1
    assert matched > 1000
