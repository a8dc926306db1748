"""Accuracy at time cut-offs and the serving decision, replayed through LiveCall, on hand-computed cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
from model_fixtures import build_tiny_artifact

from callintent.cli import main
from callintent.errors import UserError
from models.labels import CLASS_INDEX, CLASS_NAMES, SIGNAL_NAMES
from speech.asr import cut_words
from speech.speakers import tag_words
from speech.transcript import OpeningTranscript, Word
from evaluation.evalset import CallTiming, EvalSet, load_eval_set
from evaluation.timecuts import ScriptedTranscriber, TimecutConfig, evaluate_timecuts
from models.registry import Registry
from models.scores import IntentScores, SignalScore
from serving.live_call import LiveCall, PredictorScorer, StreamConfig
from serving.policy import DecisionPolicy, PolicyConfig, Segment

SR = 16000


class KeywordScorer:
    """Scores by the words heard so far: 'price' -> buying 0.95, 'bill' -> service 0.92,
    'hours' -> informational 0.60, anything else -> informational 0.34 (below the 0.40 abstain floor)."""

    model_id = "fake/v0"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.evidence: set[bool] = set()

    def predict(self, texts, *, evidence=True):
        self.calls.append(list(texts))
        self.evidence.add(evidence)
        return [self._one(t) for t in texts]

    @staticmethod
    def _one(text: str) -> IntentScores:
        if "price" in text:
            probs = {"buying": 0.95, "service": 0.02, "informational": 0.02, "noise": 0.01}
        elif "bill" in text:
            probs = {"buying": 0.02, "service": 0.92, "informational": 0.04, "noise": 0.02}
        elif "hours" in text:
            probs = {"buying": 0.2, "service": 0.1, "informational": 0.6, "noise": 0.1}
        else:
            probs = {"buying": 0.33, "service": 0.2, "informational": 0.34, "noise": 0.13}
        label = max(CLASS_NAMES, key=lambda c: probs[c])
        signals = tuple(SignalScore(name, 0.0, False) for name in SIGNAL_NAMES)
        return IntentScores(label=label, probabilities=probs, buying_intent=probs["buying"], signals=signals,
                            model="fake/v0")


# (call_id, label, [(word, start)], audio_seconds, source)
CALLS = [
    ("A", "buying", [("hi", 0.5), ("price", 7.2)], 15.0, "web"),
    ("B", "service", [("my", 2.0), ("bill", 3.0)], 10.0, "web"),
    ("C", "informational", [("what", 1.0), ("hours", 12.0)], 20.0, "fast"),
    ("D", "buying", [("um", 1.0)], 6.0, "web"),
    ("E", "noise", [("price", 2.0)], 8.0, "web"),
]


def make_eval_set(calls=CALLS) -> EvalSet:
    n = len(calls)
    timings = tuple(CallTiming(words=tuple(Word(w, s, s + 0.3) for w, s in words), audio_seconds=audio)
                    for _, _, words, audio, _ in calls)
    return EvalSet(
        call_ids=tuple(c[0] for c in calls), transcripts=tuple(" ".join(w for w, _ in c[2]) for c in calls),
        labels=tuple(c[1] for c in calls), label_ids=np.asarray([CLASS_INDEX[c[1]] for c in calls]),
        signal_labels=np.zeros((n, len(SIGNAL_NAMES)), np.float32), signals_labeled=np.zeros(n, bool),
        signals=((),) * n, source=tuple(c[4] for c in calls), campaign=("",) * n, industry=("",) * n,
        split="test", files=("calls.jsonl",), fingerprint="x", timings=timings,
    )


def test_the_scripted_asr_hears_the_words_that_started_in_the_audio_it_is_given():
    words = (Word("a", 0.5, 1.2), Word("b", 1.0, 1.5), Word("c", 2.0, 2.4), Word("d", 2.9, 3.4))
    asr = ScriptedTranscriber({0.0: words})
    heard = lambda seconds, offset=0.0, cut=30.0: [  # noqa: E731
        w.text for w in asr.transcribe(np.zeros(round(seconds * SR), np.float32), offset=offset, cut_seconds=cut).words]
    assert heard(1.0) == ["a"]  # "b" starts exactly at 1.0: not yet
    assert heard(1.01) == ["a", "b"]
    assert heard(0.5) == []
    # A decode from 1.5 s (after a stable word) hears what started since, and a word still sounding then.
    assert heard(1.5, offset=1.5) == ["c", "d"] and heard(1.0, offset=1.3) == ["b", "c"]
    assert heard(2.0, offset=1.5, cut=1.0) == ["c"]  # cut_seconds: nothing that starts past the window
    assert asr.decodes[-1] == (1.5, 2.0)
    with pytest.raises(ValueError, match="no channel"):
        asr.transcribe(np.full(SR, 0.5, np.float32))


def test_metrics_at_each_cutoff_are_the_hand_computed_ones():
    scorer = KeywordScorer()
    result = evaluate_timecuts(scorer, make_eval_set(), DecisionPolicy())

    # LiveCall scores one transcript at a time, without evidence, and a call's transcript again only
    # once it changed: A "hi", "hi price"; B "", "my", "my bill"; C "", "what", "what hours"; D "", "um"; E "", "price".
    assert all(len(batch) == 1 for batch in scorer.calls) and scorer.evidence == {False}
    assert len(scorer.calls) == 12
    at5 = result.at(5)
    # 5 s: predictions A inf, B serv, C inf, D inf, E buy against buy, serv, inf, buy, noise.
    # F1: buying 0, service 1, informational 0.5 (P 1/3, R 1), noise 0 -> macro 0.375.
    assert at5.macro_f1 == pytest.approx(0.375)
    assert at5.accuracy == pytest.approx(2 / 5)
    assert at5.buying_recall == 0.0 and at5.buying_precision == 0.0
    # ECE: bin (0.3, 0.4] holds A, C, D (conf 0.34, 1 of 3 right); bin (0.9, 1] B and E (0.935, 1 of 2).
    assert at5.ece == pytest.approx(3 / 5 * abs(1 / 3 - 0.34) + 2 / 5 * abs(0.5 - 0.935))
    assert at5.with_words == 5 and result.at(1).with_words == 1
    # 10 s: A has said "price" (7.2 s). buying P 1/2 R 1/2, service 1, informational 2/3, noise 0.
    at10 = result.at(10)
    assert at10.macro_f1 == pytest.approx((0.5 + 1 + 2 / 3 + 0) / 4)
    assert at10.buying_recall == pytest.approx(0.5) and at10.buying_precision == pytest.approx(0.5)
    # C's "hours" (12 s) keeps it informational; D's call ended at 6 s: nothing changes after 10 s.
    assert result.at(30).macro_f1 == pytest.approx(at10.macro_f1)
    assert [c.seconds for c in result.cutoffs] == [5, 10, 15, 20, 30]
    assert len(result.curve) == 30 and result.n == 5 and result.skipped == 0
    assert result.timing_source == "simulated"


def test_replayed_decisions_time_and_abstentions():
    result = evaluate_timecuts(KeywordScorer(), make_eval_set(), DecisionPolicy())
    by_id = {d.call_id: d for d in result.decisions}
    # A: "price" at 7.2 s -> first step with it is 8 s, P(buying) 0.95 >= early 0.90.
    assert (by_id["A"].route, by_id["A"].seconds, by_id["A"].early, by_id["A"].correct) == (
        "priority_sales", 8.0, True, True)
    # B and E: confident from 3 s, but no early decision before min_audio_seconds (4 s).
    assert (by_id["B"].route, by_id["B"].seconds, by_id["B"].early) == ("standard", 4.0, True)
    assert (by_id["E"].decided, by_id["E"].seconds, by_id["E"].correct) == ("buying", 4.0, False)
    # C: informational 0.60 never reaches 0.90 -> decided at the end of its audio (20 s), right.
    assert (by_id["C"].route, by_id["C"].seconds, by_id["C"].early, by_id["C"].correct) == (
        "standard", 20.0, False, True)
    # D: top class 0.34 < abstain_below 0.40 when its audio ends (6 s) -> undetermined, with the reason.
    d = by_id["D"]
    assert (d.route, d.seconds, d.abstained, d.correct) == ("undetermined", 6.0, True, None)
    assert "abstain_below" in d.reasons[0]

    s = result.summary
    assert (s.early, s.early_wrong, s.at_end, s.at_end_wrong, s.abstained) == (3, 1, 2, 0, 1)
    assert s.early_wrong_rate == pytest.approx(1 / 3)
    assert s.decided_wrong_rate == pytest.approx(1 / 4)  # abstentions are neither right nor wrong
    assert s.buying_seconds == (8.0, 6.0) and s.median_buying_seconds == pytest.approx(7.0)
    assert (s.buying_calls, s.buying_early, s.buying_priority) == (2, 1, 1)
    doc = result.to_json()
    assert doc["decisions"]["buying"]["median_seconds_to_decision"] == pytest.approx(7.0)
    assert doc["cutoffs"]["5"]["macro_f1"] == pytest.approx(0.375)


class SpokenWordsASR:
    """An ASR for LiveCall driven directly (not the replay's): the script words that started in
    [offset, end of the audio it is given), whatever the audio holds."""

    def __init__(self, words) -> None:
        self.words = words

    def transcribe(self, audio, *, cut_seconds: float = 30.0, offset: float = 0.0) -> OpeningTranscript:
        end = offset + min(len(audio) / SR, cut_seconds)
        return OpeningTranscript(tuple(w for w in self.words if offset <= w.start < end), audio_seconds=len(audio) / SR)


def drive_live_call(call_id, words, audio_seconds, metadata, policy, chunk_seconds=0.1):
    """A LiveCall as the service runs one: the default StreamConfig (VAD gate on), audio at speech level
    (-20 dBFS noise) in 100 ms chunks stamped by a clock, the service's scorer adapter."""
    clock = [0.0]
    call = LiveCall(call_id, metadata, asr=SpokenWordsASR(words), scorer=PredictorScorer(KeywordScorer()),
                    policy=policy, config=StreamConfig(), clock=lambda: clock[0])
    call.start()
    rng = np.random.default_rng(0)
    sent, total, chunk = 0, round(audio_seconds * SR), round(chunk_seconds * SR)
    while sent < total:
        n = min(chunk, total - sent)
        sent += n
        clock[0] = sent / SR
        call.insert((rng.standard_normal(n) * 0.1).astype(np.float32), arrived_at=clock[0])
        if call.ready():
            call.step()
    call.finish()
    return call.decision


def test_timecuts_and_a_live_call_driven_directly_decide_at_the_same_moment():
    policy = DecisionPolicy()
    eval_set = make_eval_set()
    result = evaluate_timecuts(KeywordScorer(), eval_set, policy)
    for decision, timing, source in zip(result.decisions, eval_set.timings, eval_set.source):
        live = drive_live_call(decision.call_id, timing.words, timing.audio_seconds, {"source": source}, policy)
        assert (decision.route, decision.decided, decision.seconds, decision.early, decision.reasons) == (
            live.route, live.label, live.audio_seconds, live.early, live.reasons), decision.call_id


def test_the_replay_decides_as_the_stream_does_at_its_last_step_and_deadline():
    # F says "price" in its last second: the stream's step at 15.0 s decides early, before the stop.
    calls = [*CALLS, ("F", "buying", [("hi", 0.5), ("price", 14.5)], 15.0, "web")]
    eval_set = make_eval_set(calls)
    plain = evaluate_timecuts(KeywordScorer(), eval_set, DecisionPolicy())
    by_id = {d.call_id: d for d in plain.decisions}
    assert (by_id["F"].route, by_id["F"].seconds, by_id["F"].early) == ("priority_sales", 15.0, True)
    assert drive_live_call("F", eval_set.timings[-1].words, 15.0, {"source": "web"}, DecisionPolicy()).early

    # A stream deadline at 10 s: C ("hours" at 12 s) and F ("price" at 14.5 s) are decided then,
    # undetermined (0.34 < 0.40); the calls decided earlier or ending sooner are not affected.
    result = evaluate_timecuts(KeywordScorer(), eval_set, DecisionPolicy(),
                               stream=StreamConfig(decision_deadline_seconds=10.0))
    by_id = {d.call_id: d for d in result.decisions}
    assert (by_id["C"].route, by_id["C"].seconds, by_id["C"].early) == ("undetermined", 10.0, True)
    assert (by_id["F"].route, by_id["F"].seconds, by_id["F"].early) == ("undetermined", 10.0, True)
    assert (by_id["A"].seconds, by_id["D"].seconds, by_id["D"].early) == (8.0, 6.0, False)
    assert result.summary.abstained == 3
    # The curve is what the stream showed, decided or not: the deadline does not change it.
    assert [c.to_json() for c in result.curve] == [c.to_json() for c in plain.curve]


class TaggedKeywordScorer(KeywordScorer):
    meta = type("Meta", (), {"speaker_tags": True})


def test_a_speaker_tagged_call_is_replayed_on_two_channels():
    words = (Word("thanks", 0.5, 0.8, speaker="agent"), Word("calling", 1.0, 1.3, speaker="agent"),
             Word("whats", 4.0, 4.3, speaker="caller"), Word("price", 5.2, 5.5, speaker="caller"),
             Word("sure", 5.4, 5.6, speaker="agent"))
    eval_set = make_eval_set(CALLS[:1])
    eval_set = EvalSet(**{**eval_set.__dict__, "timings": (CallTiming(words, 8.0, tagged=True),)})
    scorer = TaggedKeywordScorer()
    result = evaluate_timecuts(scorer, eval_set, DecisionPolicy())
    # Each speaker's words come from their own channel and are scored tagged, in time order.
    assert ["agent: thanks", "agent: thanks calling", "agent: thanks calling caller: whats",
            "agent: thanks calling caller: whats price agent: sure"] == [t for (t,) in scorer.calls]
    assert (result.decisions[0].route, result.decisions[0].seconds) == ("priority_sales", 6.0)
    assert result.at(1).with_words == 1 and result.curve[0].with_words == 1
    with pytest.raises(ValueError, match="speaker-tagged"):
        evaluate_timecuts(KeywordScorer(), eval_set, DecisionPolicy())


def test_policy_segment_is_chosen_from_the_call_metadata():
    fast = Segment(name="fast", match={"source": "fast"}, priority_threshold=0.6, screen_threshold=0.6,
                   early_threshold=0.6)
    result = evaluate_timecuts(KeywordScorer(), make_eval_set(), DecisionPolicy(PolicyConfig(segments=(fast,))))
    c = next(d for d in result.decisions if d.call_id == "C")
    # Its segment decides early at 0.60: "hours" starts at 12 s, so the 13 s step.
    assert (c.seconds, c.early, c.route) == (13.0, True, "standard")
    assert result.summary.early == 4


def test_config_validation_and_missing_timings():
    with pytest.raises(ValueError, match="cutoffs"):
        TimecutConfig(cutoffs=(5.5,))
    with pytest.raises(ValueError, match="cutoffs"):
        TimecutConfig(cutoffs=(45.0,))
    with pytest.raises(ValueError, match="step_seconds"):
        TimecutConfig(step_seconds=0)
    assert TimecutConfig(step_seconds=2.5, cutoffs=(5, 10)).steps[:3] == (2.5, 5.0, 7.5)
    untimed = make_eval_set()
    from dataclasses import replace

    with pytest.raises(ValueError, match="word timings"):
        evaluate_timecuts(KeywordScorer(), replace(untimed, timings=()), DecisionPolicy())
    partly = replace(untimed, timings=(None,) + untimed.timings[1:])
    result = evaluate_timecuts(KeywordScorer(), partly, DecisionPolicy())
    assert (result.n, result.skipped) == (4, 1)


def test_evaluate_cli_adds_the_sections_for_rows_with_words(tmp_path, capsys):
    artifact = build_tiny_artifact(tmp_path / "artifact")
    rows = []
    for call_id, label, words, audio, source in CALLS * 3:
        rows.append({"call_id": f"{call_id}{len(rows)}", "transcript": " ".join(w for w, _ in words) + f" n{len(rows)}",
                     "label": label, "signals": None, "source": source,
                     "words": [{"text": w, "start": s, "end": s + 0.3} for w, s in words]
                     + [{"text": f"n{len(rows)}", "start": 2.5, "end": 2.8}],
                     "audio_seconds": audio, "asr_model": "tiny.en@test"})
    data = tmp_path / "asr.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    eval_set = load_eval_set(data, split="all")
    assert eval_set.has_timings and eval_set.timings[0].asr_model == "tiny.en@test"
    assert eval_set.timings[0].audio_seconds == 15.0

    out = tmp_path / "report"
    assert main(["evaluate", str(artifact), "--data", str(data), "--split", "all", "--out", str(out),
                 "--bootstrap", "0", "--latency-iterations", "0", "--registry", str(tmp_path / "reg")]) == 0
    printed = capsys.readouterr().out
    assert "over time (15 calls, asr timings): macro-F1 5 s" in printed
    doc = json.loads((out / "metrics.json").read_text())["timecuts"]
    assert set(doc["cutoffs"]) == {"5", "10", "15", "20", "30"} and doc["n"] == 15
    assert doc["decisions"]["n"] == 15
    assert doc["decisions"]["early"] + doc["decisions"]["at_end"] == 15
    html = (out / "report.html").read_text()
    for anchor in ('id="timecuts-table"', 'id="fig-timecuts"', 'id="fig-decision-time"', 'id="card-median-decision"'):
        assert anchor in html

    # Off on request; and asked for on data without timings -> a one-line user error (exit 2).
    assert main(["evaluate", str(artifact), "--data", str(data), "--split", "all", "--out", str(tmp_path / "r2"),
                 "--no-timecuts", "--bootstrap", "0", "--latency-iterations", "0",
                 "--registry", str(tmp_path / "reg")]) == 0
    assert "timecuts" not in json.loads((tmp_path / "r2" / "metrics.json").read_text())
    plain = tmp_path / "plain.jsonl"
    plain.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "words"}) + "\n" for r in rows))
    assert main(["evaluate", str(artifact), "--data", str(plain), "--split", "all", "--out", str(tmp_path / "r3"),
                 "--timecuts", "--bootstrap", "0", "--latency-iterations", "0",
                 "--registry", str(tmp_path / "reg")]) == 2
    assert "needs word timings" in capsys.readouterr().err


def test_two_channel_text_forms_and_each_model_reads_its_own(tmp_path, capsys):
    turns = [{"speaker": "agent", "text": "thanks for calling"}, {"speaker": "caller", "text": "whats the price"}]
    words = [{"text": w, "start": 1.0 + i, "end": 1.3 + i, "speaker": s}
             for i, (s, w) in enumerate((t["speaker"], w) for t in turns for w in t["text"].split())]
    rows = [{"call_id": f"t{i}", "transcript": "thanks for calling whats the price", "label": "buying", "signals": None,
             "turns": turns, "words": words} for i in range(3)]
    rows.append({"call_id": "p0", "transcript": "my bill is wrong", "label": "service", "signals": None,
                 "words": [{"text": w, "start": float(i), "end": i + 0.3} for i, w in enumerate("my bill is wrong".split())]})
    data = tmp_path / "calls.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))

    plain = load_eval_set(data, split="all")
    assert plain.converted_calls == 0 and "thanks for calling whats the price" in plain.transcripts
    tagged = load_eval_set(data, split="all", text_form="tagged")
    assert tagged.converted_calls == 3 and tagged.text_form == "tagged"
    by_id = dict(zip(tagged.call_ids, tagged.transcripts))
    assert by_id["t0"] == "agent: thanks for calling caller: whats the price"
    assert by_id["p0"] == "my bill is wrong"  # speakers unknown: as labeled
    timing = tagged.timings[tagged.call_ids.index("t0")]
    assert timing.tagged and tag_words(cut_words(timing.words, 4.5)).text == "agent: thanks for calling caller: whats"
    assert tagged.subset([tagged.call_ids.index("t0")]).converted_calls == 1
    caller = load_eval_set(data, split="all", text_form="caller")
    assert dict(zip(caller.call_ids, caller.transcripts))["t0"] == "whats the price"
    timing = caller.timings[caller.call_ids.index("t0")]
    assert not timing.tagged and [w.text for w in cut_words(timing.words, 4.5)] == ["whats"]
    assert cut_words(timing.words, 3.5) == ()
    with pytest.raises(UserError, match="text form"):
        load_eval_set(data, split="all", text_form="stereo")

    # --two-channel: the tagged candidate reads tagged text, the plain baseline the caller's words
    registry = Registry(tmp_path / "reg")
    plain_ref = registry.register(build_tiny_artifact(tmp_path / "plain"))
    tagged_ref = registry.register(build_tiny_artifact(tmp_path / "tagged", speaker_tags=True))
    out = tmp_path / "report"
    args = ["evaluate", str(tagged_ref), "--data", str(data), "--split", "all", "--out", str(out), "--bootstrap", "0",
            "--latency-iterations", "0", "--registry", str(tmp_path / "reg"), "--no-timecuts", "--no-record"]
    assert main([*args, "--two-channel", "--compare", str(plain_ref)]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert (doc["data"]["text_form"], doc["data"]["two_channel_calls"]) == ("tagged", 3)
    assert doc["baseline"]["data"]["text_form"] == "caller"
    html = (out / "report.html").read_text()
    assert "speaker-tagged (“agent: … caller: …”)</strong>" in html and "the caller&#39;s words" in html
    capsys.readouterr()
    assert main([*args, "--two-channel", "--robustness"]) == 2
    assert "without --two-channel" in capsys.readouterr().err
