"""IntentPredictor on the tiny keyword artifact: loading, validation, batching, truncation, evidence."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from model_fixtures import build_tiny_artifact

from callintent.errors import UserError
from models.labels import CLASS_NAMES, SIGNAL_NAMES
from models.artifact import META, ONNX_INT8, TOKENIZER
from models.predictor import ArtifactError, IntentPredictor, _evidence

REPO = Path(__file__).resolve().parents[1]

BUYING_TEXT = "hi I saw your ad, how much does a new roof cost?"
TEXTS = [
    BUYING_TEXT,
    "checking on my order from last week",
    "what are your hours on saturday",
    "hello",
    "it's an emergency, can you install furnaces today",
    "",
]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    return build_tiny_artifact(tmp_path_factory.mktemp("tiny") / "artifact", max_length=32)


@pytest.fixture(scope="module")
def fp32(artifact) -> IntentPredictor:
    return IntentPredictor.load(artifact, variant="fp32", threads=1)


@pytest.fixture(scope="module")
def int8(artifact) -> IntentPredictor:
    return IntentPredictor.load(artifact, variant="int8", threads=1)


def _copy(artifact: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(artifact, tmp_path / "copy"))


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_scores_are_calibrated_distributions_with_schema_names(artifact, variant):
    predictor = IntentPredictor.load(artifact, variant=variant, threads=1)
    results = predictor.predict(TEXTS)
    assert len(results) == len(TEXTS)
    for scores in results:
        assert list(scores.probabilities) == list(CLASS_NAMES)
        assert sum(scores.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert scores.label == max(scores.probabilities, key=scores.probabilities.get)
        assert scores.buying_intent == scores.probabilities["buying"]
        assert [s.name for s in scores.signals] == list(SIGNAL_NAMES)
        assert all(0.0 <= s.probability <= 1.0 for s in scores.signals)
        assert scores.model == "intent/unregistered"
    # The fixture's keywords drive the heads, so the verdicts are known.
    assert [r.label for r in results[:3]] == ["buying", "service", "informational"]
    assert {s.name for s in results[0].present_signals} == {"ad_reference", "price_inquiry", "specific_need"}
    assert {s.name for s in results[1].present_signals} == {"existing_customer"}
    assert results[3].present_signals == ()


def test_fp32_and_int8_agree(fp32, int8):
    c32, s32 = fp32.predict_arrays(TEXTS)
    c8, s8 = int8.predict_arrays(TEXTS)
    assert c32.shape == c8.shape == (len(TEXTS), len(CLASS_NAMES))
    assert s32.shape == s8.shape == (len(TEXTS), len(SIGNAL_NAMES))
    assert c32.dtype == np.float32
    np.testing.assert_allclose(c8, c32, atol=0.05)
    np.testing.assert_allclose(s8, s32, atol=0.05)
    assert (c8.argmax(1) == c32.argmax(1)).all()


def test_predict_arrays_matches_predict(fp32):
    class_probs, signal_probs = fp32.predict_arrays(TEXTS)
    for i, scores in enumerate(fp32.predict(TEXTS, evidence=False)):
        assert list(scores.probabilities.values()) == pytest.approx(class_probs[i].tolist())
        assert [s.probability for s in scores.signals] == pytest.approx(signal_probs[i].tolist())


def test_batch_equals_one_by_one(fp32, int8):
    for predictor, atol in ((fp32, 1e-5), (int8, 0.02)):
        together_c, together_s = predictor.predict_arrays(TEXTS)
        alone = [predictor.predict_arrays([t]) for t in TEXTS]
        np.testing.assert_allclose(together_c, np.concatenate([a[0] for a in alone]), atol=atol)
        np.testing.assert_allclose(together_s, np.concatenate([a[1] for a in alone]), atol=atol)
    batch = fp32.predict(TEXTS)
    single = [fp32.predict([t])[0] for t in TEXTS]
    assert [r.label for r in batch] == [r.label for r in single]
    assert [[(e.start, e.end) for s in r.signals for e in s.evidence] for r in batch] == \
           [[(e.start, e.end) for s in r.signals for e in s.evidence] for r in single]


def test_chunked_runs_equal_one_run(artifact, fp32):
    small_batches = IntentPredictor.load(artifact, variant="fp32", threads=1, batch_size=2)
    np.testing.assert_allclose(small_batches.predict_arrays(TEXTS)[0], fp32.predict_arrays(TEXTS)[0],
                               atol=1e-5)


def test_spinning_off_is_set_on_the_session_and_scores_the_same(artifact, fp32):
    quiet = IntentPredictor.load(artifact, variant="fp32", threads=1, spinning=False)
    options = quiet._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(RuntimeError, match="allow_spinning"):  # the default: ONNX Runtime's own (spinning)
        fp32._session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
    np.testing.assert_allclose(quiet.predict_arrays(TEXTS)[0], fp32.predict_arrays(TEXTS)[0], atol=1e-6)


class _RecordingSession:
    """Wraps an ONNX session and records the input shapes of every run."""

    def __init__(self, session):
        self.session, self.shapes = session, []

    def run(self, names, feeds):
        self.shapes.append(feeds["input_ids"].shape)
        # Padding must be masked out: the mask is 1 exactly on the real tokens, left-aligned.
        mask = feeds["attention_mask"]
        assert (np.diff(mask, axis=1) <= 0).all()
        return self.session.run(names, feeds)

    def get_providers(self):
        return self.session.get_providers()


def test_pads_to_longest_in_batch_not_max_length(artifact):
    predictor = IntentPredictor.load(artifact, variant="fp32", threads=1)
    recorder = _RecordingSession(predictor._session)
    predictor._session = recorder
    predictor.predict(["hello", "checking on my order"])  # [CLS] checking on my order [SEP] = 6 tokens
    assert recorder.shapes == [(2, 6)]
    assert predictor.meta.max_length == 32


def test_padding_does_not_change_scores(fp32):
    short = "checking on my order"
    long = "hi I saw your ad on facebook, how much would it cost to install a new furnace today"
    alone = fp32.predict_arrays([short])
    padded = fp32.predict_arrays([short, long])  # short is padded to long's length here
    np.testing.assert_allclose(padded[0][0], alone[0][0], atol=1e-6)
    np.testing.assert_allclose(padded[1][0], alone[1][0], atol=1e-6)


def test_long_text_is_truncated_to_max_length(fp32):
    filler = " ".join(["okay"] * 1000)
    late = fp32.predict([f"{filler} how much does it cost"])[0]
    early = fp32.predict([f"how much does it cost {filler}"])[0]
    # max_length is 32 tokens: a keyword after 1000 words never reaches the model.
    assert not late.signals[SIGNAL_NAMES.index("price_inquiry")].present
    price = early.signals[SIGNAL_NAMES.index("price_inquiry")]
    assert price.present
    assert {e.text for e in price.evidence} == {"much", "cost"}
    assert sum(early.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_empty_and_blank_texts_score_without_error(fp32):
    results = fp32.predict(["", "   ", "\n"])
    assert len(results) == 3
    for scores in results:
        assert sum(scores.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert all(not s.evidence for s in scores.signals)
    assert fp32.predict([]) == []
    c, s = fp32.predict_arrays([])
    assert c.shape == (0, len(CLASS_NAMES)) and s.shape == (0, len(SIGNAL_NAMES))


def test_rejects_a_bare_string(fp32):
    with pytest.raises(TypeError, match="not one string"):
        fp32.predict("how much")


def _is_word_boundary(text: str, i: int) -> bool:
    return i == 0 or i == len(text) or not (text[i - 1].isalnum() and text[i].isalnum())


def test_evidence_spans_are_word_aligned_spans_of_the_input(artifact, tmp_path):
    everything = build_tiny_artifact(tmp_path / "zero", signal_thresholds={s: 0.0 for s in SIGNAL_NAMES},
                                     max_length=32)
    predictor = IntentPredictor.load(everything, variant="fp32", threads=1)
    texts = ["Hi, I saw your AD — how MUCH for a furnaces install?", "it's urgent!! call me back today",
             "order #12345, account 99-77"]
    for text, scores in zip(texts, predictor.predict(texts)):
        assert all(s.present for s in scores.signals)  # threshold 0 forces every signal on
        for signal in scores.signals:
            assert 1 <= len(signal.evidence) <= 3
            scores_ = [e.score for e in signal.evidence]
            assert scores_ == sorted(scores_, reverse=True)
            for e in signal.evidence:
                assert 0 <= e.start < e.end <= len(text)
                assert e.text == text[e.start:e.end]
                assert e.text == e.text.strip()
                assert _is_word_boundary(text, e.start) and _is_word_boundary(text, e.end), e
                assert 0.0 <= e.score <= signal.probability + 1e-6

    none = build_tiny_artifact(tmp_path / "never", signal_thresholds={s: 1.01 for s in SIGNAL_NAMES})
    for scores in IntentPredictor.load(none, variant="fp32").predict(texts):
        assert scores.present_signals == ()
        assert all(s.evidence == () for s in scores.signals)


def test_evidence_only_for_present_signals_and_on_the_keywords(fp32):
    scores = fp32.predict([BUYING_TEXT])[0]
    for signal in scores.signals:
        assert bool(signal.evidence) == signal.present
    by_name = {s.name: s for s in scores.signals}
    assert [e.text for e in by_name["ad_reference"].evidence] == ["ad"]
    assert {e.text for e in by_name["price_inquiry"].evidence} == {"much", "cost"}
    assert [e.text for e in by_name["specific_need"].evidence] == ["roof"]
    assert all(s.evidence == () for s in fp32.predict([BUYING_TEXT], evidence=False)[0].signals)


def test_evidence_merges_neighbouring_words_and_completes_subwords(fp32):
    tokenizer = fp32._tokenizer
    text = "can you install furnaces, then how much"
    encoding = tokenizer.encode(text)
    tokens = encoding.tokens
    probs = np.zeros(len(tokens), np.float32)
    probs[tokens.index("furnace")] = 0.9   # "##s" stays below the threshold: the word is still whole
    probs[tokens.index("how")] = 0.6
    probs[tokens.index("much")] = 0.8      # adjacent to "how": one span
    probs[tokens.index("can")] = 0.7
    probs[tokens.index("install")] = 0.4   # below threshold
    spans = _evidence(text, encoding, probs, 0.5)
    assert [(e.text, round(e.score, 2)) for e in spans] == \
           [("furnaces", 0.9), ("how much", 0.8), ("can", 0.7)]
    probs[tokens.index("install")] = 0.55  # a fourth span: only the three strongest are kept
    probs[tokens.index("you")] = 0.0
    assert len(_evidence(text, encoding, probs, 0.5)) == 3


def test_concurrent_calls_match_sequential(int8):
    expected = int8.predict_arrays(TEXTS)[0]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: int8.predict_arrays(TEXTS)[0], range(16)))
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-6)


def test_registered_version_names_the_model(artifact, tmp_path):
    import dataclasses

    from models.artifact import ArtifactMeta

    copy = _copy(artifact, tmp_path)
    dataclasses.replace(ArtifactMeta.load(copy), version="v7").save(copy)
    assert IntentPredictor.load(copy).predict(["hi"])[0].model == "intent/v7"


def test_cuda_request_falls_back_to_cpu_when_unavailable(artifact):
    import onnxruntime as ort

    predictor = IntentPredictor.load(artifact, providers=["CUDAExecutionProvider"])
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert predictor.providers[0] == "CUDAExecutionProvider"
    else:
        assert predictor.providers == ("CPUExecutionProvider",)


# ---------------------------------------------------------------- artifact validation

def test_missing_tokenizer_is_named(artifact, tmp_path):
    copy = _copy(artifact, tmp_path)
    (copy / TOKENIZER).unlink()
    with pytest.raises(ArtifactError, match="missing tokenizer.json"):
        IntentPredictor.load(copy)


def test_missing_int8_graph_suggests_fp32(artifact, tmp_path):
    copy = _copy(artifact, tmp_path)
    (copy / ONNX_INT8).unlink()
    with pytest.raises(ArtifactError, match=r"missing model\.int8\.onnx.*variant='fp32' is present"):
        IntentPredictor.load(copy, variant="int8")
    assert IntentPredictor.load(copy, variant="fp32").predict(["hi"])


def test_not_an_artifact(tmp_path):
    with pytest.raises(UserError, match="not found"):
        IntentPredictor.load(tmp_path / "nope")
    with pytest.raises(UserError, match="no artifact.json"):
        IntentPredictor.load(tmp_path)


def test_class_mismatch_is_named(artifact, tmp_path):
    copy = _copy(artifact, tmp_path)
    raw = json.loads((copy / META).read_text())
    raw["classes"] = ["buying", "service", "informational", "spam"]
    (copy / META).write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match=r"classes .* do not match models.labels"
                                            r".*not in the schema: \['spam'\].*missing: \['noise'\]"):
        IntentPredictor.load(copy)


def test_signal_order_mismatch_is_named(artifact, tmp_path):
    copy = _copy(artifact, tmp_path)
    raw = json.loads((copy / META).read_text())
    raw["signals"] = list(reversed(raw["signals"]))
    (copy / META).write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="signals .* different order"):
        IntentPredictor.load(copy)


def test_unknown_threshold_signal_and_bad_variant(artifact, tmp_path):
    with pytest.raises(ArtifactError, match="variant must be one of"):
        IntentPredictor.load(artifact, variant="fp16")
    copy = _copy(artifact, tmp_path)
    raw = json.loads((copy / META).read_text())
    raw["signal_thresholds"]["discount"] = 0.5
    (copy / META).write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match=r"signal_thresholds has unknown signals \['discount'\]"):
        IntentPredictor.load(copy)


def test_abstain_margin_old_artifacts_and_bad_values(artifact, tmp_path):
    copy = _copy(artifact, tmp_path)
    raw = json.loads((copy / META).read_text())
    raw.pop("abstain_margin", None)                      # an artifact exported before the rule
    (copy / META).write_text(json.dumps(raw))
    assert IntentPredictor.load(copy, variant="fp32").meta.abstain_margin is None
    raw["abstain_margin"] = 0.12
    (copy / META).write_text(json.dumps(raw))
    assert IntentPredictor.load(copy, variant="fp32").meta.abstain_margin == 0.12
    for bad in (1.5, -0.1, "high", True):
        raw["abstain_margin"] = bad
        (copy / META).write_text(json.dumps(raw))
        with pytest.raises(ArtifactError, match="abstain_margin must be a probability margin"):
            IntentPredictor.load(copy, variant="fp32")


def test_margin_of_a_result_matches_the_array_margin(fp32):
    from models.uncertainty import margin_of, probability_margin

    probs, _ = fp32.predict_arrays(TEXTS)
    margins = probability_margin(probs)
    for result, margin in zip(fp32.predict(TEXTS), margins):
        assert margin_of(result.probabilities) == pytest.approx(margin, abs=1e-6)
    assert ((margins >= 0) & (margins <= 1)).all()
    assert margin_of({"a": 0.5, "b": 0.3, "c": 0.2}) == pytest.approx(0.2)


def test_graph_with_wrong_outputs_is_refused(artifact, tmp_path):
    import onnx

    copy = _copy(artifact, tmp_path)
    model = onnx.load(copy / "model.onnx")
    model.graph.output[0].name = "logits"
    for node in model.graph.node:
        node.output[:] = ["logits" if o == "class_probs" else o for o in node.output]
    onnx.save(model, copy / "model.onnx")
    with pytest.raises(ArtifactError, match=r"lacks outputs \['class_probs'\]"):
        IntentPredictor.load(copy, variant="fp32")


def test_models_package_imports_no_training_stack():
    code = ("import models.predictor, models.registry, models.cli, models.artifact, models.scores, models.metrics, "
            "models.calibration, models.uncertainty, sys; "
            "bad = {'torch', 'transformers', 'datasets', 'pandas', 'sklearn'} & "
            "set(m.split('.')[0] for m in sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_predictor_runs_without_the_training_stack(artifact):
    """Load and score in a process where importing torch & co. would fail."""
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {{'torch', 'transformers', 'datasets', 'pandas', 'sklearn'}}:
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
from models.predictor import IntentPredictor
scores = IntentPredictor.load({str(artifact)!r}).predict(['how much for a roof'])[0]
assert scores.label == 'buying', scores
"""
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
