"""The live-call state machine, driven by a scripted fake ASR, a keyword scorer and a fake clock.

No model, no sleeping: the fake ASR "hears" the words of a script whose end lies inside the audio
it is given (and mishears the last ones, as a real decoder guesses at a cut-off word), and
advances the injected clock by a configurable decode cost, so latency and lag are exact numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest

from callintent.config import ConfigError, load_config
from speech.transcript import OpeningTranscript, Word
from models.scores import Evidence, IntentScores, SignalScore
from serving.policy import DecisionPolicy, PolicyConfig, Thresholds
from serving.live_call import LiveCall, StablePrefix, StreamConfig, StreamInputError, StreamStateError

SR = 16000


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def script(text: str, start: float = 0.3, step: float = 0.5, length: float = 0.35) -> list[tuple[str, float, float]]:
    """Word i of ``text`` spoken at start + i*step for ``length`` seconds."""
    return [(w, round(start + i * step, 3), round(start + i * step + length, 3)) for i, w in enumerate(text.split())]


class FakeASR:
    """Returns the script words fully inside [offset, offset + len(audio)).

    Words ending in the last ``guess_seconds`` of the audio come back misheard (``"<word>_"``, which
    no normalisation equates with the word), so consecutive hypotheses disagree on the tail exactly
    as a real decoder's do.
    """

    def __init__(self, words, clock: Clock | None = None, cost=lambda seconds: 0.0, guess_seconds: float = 0.6,
                 during=None) -> None:
        self.words = words
        self.clock = clock
        self.cost = cost
        self.guess_seconds = guess_seconds
        self.during = during
        self.calls: list[tuple[float, float]] = []

    def transcribe(self, audio, *, cut_seconds: float = 30.0, offset: float = 0.0) -> OpeningTranscript:
        seconds = len(audio) / SR
        end = offset + seconds
        self.calls.append((round(offset, 3), round(seconds, 3)))
        if self.during is not None:
            self.during()
        if self.clock is not None:
            self.clock.t += self.cost(seconds)
        out = []
        for text, s, e in self.words:
            if s >= offset - 1e-9 and e <= end + 1e-9 and s - offset < cut_seconds:
                out.append(Word(text + "_" if e > end - self.guess_seconds else text, s, e))
        return OpeningTranscript(tuple(out), audio_seconds=seconds)


SIGNAL_WORDS = {"price_inquiry": "how much", "ad_reference": "ad", "existing_customer": "my order"}


class KeywordScorer:
    """Confident when it sees a keyword phrase, unsure (top class 0.35) otherwise."""

    def __init__(self, clock: Clock | None = None, cost: float = 0.0) -> None:
        self.clock = clock
        self.cost = cost
        self.texts: list[str] = []

    def score(self, texts):
        out = []
        for text in texts:
            self.texts.append(text)
            if self.clock is not None:
                self.clock.t += self.cost
            low = text.lower()
            if "how much" in low:
                probs = {"buying": 0.95, "service": 0.03, "informational": 0.01, "noise": 0.01}
            elif "my order" in low:
                probs = {"buying": 0.02, "service": 0.93, "informational": 0.03, "noise": 0.02}
            elif "warranty" in low:
                probs = {"buying": 0.01, "service": 0.01, "informational": 0.01, "noise": 0.97}
            else:
                probs = {"buying": 0.35, "service": 0.30, "informational": 0.20, "noise": 0.15}
            signals = []
            for name, phrase in SIGNAL_WORDS.items():
                i = f" {low} ".find(f" {phrase} ")
                evidence = (Evidence(i, i + len(phrase), text[i:i + len(phrase)], 0.9),) if i >= 0 else ()
                signals.append(SignalScore(name, 0.9 if evidence else 0.1, bool(evidence), evidence))
            out.append(IntentScores(max(probs, key=probs.get), probs, probs["buying"], tuple(signals), "intent/v7"))
        return out


POLICY = DecisionPolicy(PolicyConfig(default=Thresholds(priority_threshold=0.8, screen_threshold=0.7,
                                                        early_threshold=0.9, min_audio_seconds=4.0,
                                                        abstain_below=0.4)))


def tone(seconds: float, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SR), dtype=np.float32)


def make_call(words, *, clock: Clock | None = None, asr_cost=lambda s: 0.0, score_cost: float = 0.0,
              metadata=None, policy: DecisionPolicy = POLICY,
              **config) -> tuple[LiveCall, FakeASR, KeywordScorer, Clock]:
    clock = clock or Clock()
    asr = FakeASR(words, clock, asr_cost)
    scorer = KeywordScorer(clock, score_cost)
    call = LiveCall("call-1", metadata or {"source": "test"}, asr=asr, scorer=scorer, policy=policy,
                    config=StreamConfig(**config), clock=clock)
    return call, asr, scorer, clock


def run_realtime(call: LiveCall, clock: Clock, audio: np.ndarray, chunk_seconds: float = 0.5) -> list:
    """Audio arrives in real time in chunks; a blocking step delays the inserts that arrive meanwhile."""
    size = round(chunk_seconds * SR)
    chunks = [audio[i:i + size] for i in range(0, len(audio), size)]
    t0 = clock()
    arrivals = [t0 + (i + 1) * chunk_seconds for i in range(len(chunks))]
    events = [call.start()]
    i = 0
    while i < len(chunks):
        clock.t = max(clock.t, arrivals[i])
        while i < len(chunks) and arrivals[i] <= clock():
            call.insert(chunks[i], arrived_at=arrivals[i])
            i += 1
        if call.ready():
            events += call.step()
    return events


def of(events, kind: str) -> list:
    return [e for e in events if e.type == kind]


ROOF = script("hi I saw your ad and I wanted to know how much a new roof would cost for my house")


# -- stable prefix ---------------------------------------------------------------------------


def w(text: str, start: float) -> Word:
    return Word(text, start, start + 0.3)


def test_local_agreement_commits_only_what_two_hypotheses_share() -> None:
    prefix = StablePrefix(2)
    assert prefix.update([w("hi", 0), w("eye", 0.5)]) == ()
    assert prefix.stable_text == "" and prefix.unstable_text == "hi eye"
    new = prefix.update([w("Hi,", 0), w("I", 0.5), w("saw", 1.0)])
    assert [x.text for x in new] == ["Hi,"]  # "hi" == "Hi," ignoring case/punctuation; "eye" != "I"
    assert prefix.unstable_text == "I saw"
    new = prefix.update([w("hi", 0), w("I", 0.5), w("saw", 1.0), w("your", 1.5)])
    assert [x.text for x in new] == ["I", "saw"]
    assert prefix.stable_text == "Hi, I saw" and prefix.unstable_text == "your"


def test_committed_words_never_change_when_asr_rewrites_them() -> None:
    prefix = StablePrefix(2)
    prefix.update([w("I", 0), w("saw", 0.5)])
    prefix.update([w("I", 0), w("saw", 0.5), w("your", 1.0)])
    assert prefix.stable_text == "I saw"
    # the ASR now re-spells a committed word: the stable text stays, the new tail is aligned by time
    prefix.update([w("eye", 0), w("sore", 0.5), w("your", 1.0), w("ad", 1.5)])
    prefix.update([w("eye", 0), w("sore", 0.5), w("your", 1.0), w("ad", 1.5)])
    assert prefix.stable_text == "I saw your ad"


def test_a_word_after_a_stretched_stable_word_is_not_lost_when_decodes_slide() -> None:
    # Whisper stretched "you" (said at 7.24 s) over the pause up to 8.3 s; "ask" starts at 8.08 s.
    prefix = StablePrefix(2)
    for _ in range(2):
        prefix.update([w("do", 6.8), w("for", 7.0), Word("you", 7.24, 8.3)])
    assert prefix.stable_text == "do for you"
    # a slid decode starts after the stable words: it hears "you" again (jittered) and then "ask"
    for _ in range(2):
        prefix.update([Word("you.", 7.3, 7.5), Word("ask", 8.08, 8.3), Word("what", 8.66, 8.9)])
    assert prefix.stable_text == "do for you ask what"  # "you" not doubled, "ask" not dropped


def test_agreement_of_three_needs_three_hypotheses() -> None:
    prefix = StablePrefix(3)
    prefix.update([w("a", 0)])
    prefix.update([w("a", 0), w("b", 0.5)])
    assert prefix.stable_text == ""
    prefix.update([w("a", 0), w("b", 0.5), w("c", 1.0)])
    assert prefix.stable_text == "a"
    prefix.update([w("a", 0), w("b", 0.5), w("c", 1.0)])
    assert prefix.stable_text == "a b"
    assert prefix.flush() and prefix.stable_text == "a b c" and prefix.unstable_text == ""


def test_agreement_of_one_commits_everything() -> None:
    prefix = StablePrefix(1)
    prefix.update([w("a", 0), w("b", 0.5)])
    assert prefix.stable_text == "a b" and prefix.unstable_text == ""


def test_stream_stable_text_only_grows_and_never_holds_a_misheard_word() -> None:
    call, asr, _, clock = make_call(ROOF, decode_window_seconds=30.0)  # no sliding: see the window test
    events = run_realtime(call, clock, tone(10.0))
    partials = of(events, "partial")
    assert len(partials) == 10 and len(asr.calls) == 10
    assert all(c[0] == 0.0 for c in asr.calls)  # every decode re-reads the buffer from 0
    stables = [p.stable for p in partials]
    for before, after in zip(stables, stables[1:]):
        assert after.startswith(before)
    assert "_" not in " ".join(stables)
    assert any("_" in p.unstable for p in partials)  # the tail was guessed and then corrected
    last = partials[-1]
    assert last.stable == "hi I saw your ad and I wanted to know how much a new roof would"
    assert last.unstable == "cost for my_"
    assert last.text == last.stable + " " + last.unstable


# -- timing ----------------------------------------------------------------------------------


def test_latency_is_measured_from_arrival_of_the_newest_audio() -> None:
    call, asr, scorer, clock = make_call(ROOF, asr_cost=lambda s: 0.25, score_cost=0.05)
    call.start()
    call.insert(tone(0.5), arrived_at=100.5)
    call.insert(tone(0.5), arrived_at=101.0)
    clock.t = 101.2  # the server got round to it 200 ms after the newest audio arrived
    (partial,) = call.step()
    assert partial.type == "partial"
    assert partial.latency_ms == pytest.approx(200 + 250 + 50)
    assert partial.decode_ms == pytest.approx(250) and partial.score_ms == pytest.approx(50)
    assert partial.audio_seconds == pytest.approx(1.0)
    assert partial.to_json()["latency_ms"] == 500.0


# -- decisions -------------------------------------------------------------------------------


def test_decision_is_emitted_once_as_soon_as_the_scorer_is_confident() -> None:
    call, _, _, clock = make_call(ROOF)
    events = run_realtime(call, clock, tone(12.0))
    events += call.finish()
    decisions = of(events, "decision")
    assert len(decisions) == 1
    decision = decisions[0].decision
    # "much" ends at 0.3 + 11*0.5 + 0.35 = 6.15 s: the first decode that hears it is at 7 s
    first_heard = next(p for p in of(events, "partial") if "how much" in p.text)
    assert first_heard.audio_seconds == 7.0
    assert (decision.route, decision.early, decision.audio_seconds) == ("priority_sales", True, 7.0)
    index = events.index(decisions[0])
    assert events[index - 1] is first_heard  # right after the partial that made it
    assert "signal price_inquiry: 'how much'" in decision.reasons
    final = events[-1]
    assert final.type == "final" and final.decision == decision
    assert final.totals.decision_audio_seconds == 7.0


def test_no_early_decision_before_min_audio_seconds() -> None:
    call, _, _, clock = make_call(script("how much is a roof"))
    events = run_realtime(call, clock, tone(6.0))
    decision = of(events, "decision")[0]
    # confident from the 2 s decode on, but the policy waits for 4 s of audio
    assert any("how much" in p.text for p in of(events, "partial") if p.audio_seconds < 4.0)
    assert decision.audio_seconds == 4.0 and decision.decision.early


def test_the_model_abstention_margin_holds_back_live_decisions_as_on_rest() -> None:
    # The stream decides through the same DecisionPolicy as /score: with the artifact's margin above the
    # call's (service 0.93 - informational 0.03 = 0.90), no early decision, and undetermined at 30 s.
    policy = DecisionPolicy(POLICY.config, model_abstain_margin=0.95)
    call, _, scorer, clock = make_call(script("hi I am checking on my order"), policy=policy)
    events = run_realtime(call, clock, tone(31.0))
    decisions = of(events, "decision")
    assert len(decisions) == 1
    d = decisions[0].decision
    assert (d.route, d.early, d.audio_seconds) == ("undetermined", False, 30.0)
    assert d.reasons[0] == ("margin 0.900 (service 0.93 - informational 0.03) < abstain_margin 0.950 "
                            "(model, segment default)")
    rest = policy.decide(scorer.score(["hi I am checking on my order"])[0], {"source": "test"})
    assert (rest.route, rest.reasons[0]) == (d.route, d.reasons[0])
    # without the model margin the same call decides early, as before
    call, _, _, clock = make_call(script("hi I am checking on my order"))
    early = of(run_realtime(call, clock, tone(31.0)), "decision")[0].decision
    assert (early.route, early.early) == ("standard", True)


def test_decision_is_forced_at_the_end_of_the_window() -> None:
    words = script(" ".join(["so"] * 50), step=0.55)
    call, asr, _, clock = make_call(words)
    events = run_realtime(call, clock, tone(31.0))
    decisions = of(events, "decision")
    assert len(decisions) == 1
    d = decisions[0]
    assert d.window_complete and d.audio_seconds == 30.0
    assert (d.decision.route, d.decision.early, d.decision.audio_seconds) == ("undetermined", False, 30.0)
    assert "abstain_below" in d.decision.reasons[0]
    last_partial = of(events, "partial")[-1]
    assert last_partial.window_complete and last_partial.audio_seconds == 30.0
    assert last_partial.unstable == ""  # the last decode commits everything
    assert call.window_complete and not call.ready()
    decodes = len(asr.calls)
    call.insert(tone(2.0))
    assert not call.ready() and call.step() == [] and len(asr.calls) == decodes
    final = call.finish()
    assert [e.type for e in final] == ["final"]
    assert final[0].totals.ignored_seconds == pytest.approx(3.0)
    assert final[0].totals.audio_seconds == pytest.approx(33.0)
    assert final[0].totals.opening_seconds == pytest.approx(30.0)
    assert all(w.start < 30.0 for w in final[0].words)


def test_decision_deadline_before_the_window() -> None:
    call, _, _, clock = make_call(script("so " * 30), decision_deadline_seconds=10.0)
    events = run_realtime(call, clock, tone(12.0))
    (d,) = of(events, "decision")
    assert d.audio_seconds == 10.0 and d.decision.early and d.decision.route == "undetermined"


def test_finish_decodes_the_rest_decides_and_reports_totals() -> None:
    call, asr, _, clock = make_call(script("hello there so um"), asr_cost=lambda s: 0.1)
    events = run_realtime(call, clock, tone(2.0))
    call.insert(tone(0.4), arrived_at=clock())  # less than one decode interval: no step for it
    assert not call.ready()
    end = call.finish()
    assert [e.type for e in end] == ["partial", "decision", "final"]
    assert end[0].audio_seconds == pytest.approx(2.4)
    final = end[-1]
    assert final.decision.route == "undetermined" and not final.decision.early
    assert final.decision.audio_seconds == pytest.approx(2.4)
    # the last decode's tail is committed as heard (the fake mishears the final word)
    assert [w.text for w in final.words] == ["hello", "there", "so", "um_"]
    assert final.text == "hello there so um_"
    totals = final.totals
    assert totals.decodes == len(asr.calls) == 3
    latencies = [p.latency_ms for p in of(events + end, "partial")]
    assert totals.latency_ms_mean == pytest.approx(np.mean(latencies))
    assert totals.latency_ms_p95 == pytest.approx(np.percentile(latencies, 95))
    assert totals.audio_seconds == pytest.approx(2.4)
    assert call.finish() == []
    with pytest.raises(StreamStateError, match="after finish"):
        call.insert(tone(0.1))
    with pytest.raises(StreamStateError, match="after finish"):
        call.step()


def test_service_call_is_decided_early_as_standard() -> None:
    call, _, _, clock = make_call(script("hi I am checking on my order from last week"))
    events = run_realtime(call, clock, tone(8.0))
    (d,) = of(events, "decision")
    assert (d.decision.route, d.decision.label) == ("standard", "service")


# -- VAD gate --------------------------------------------------------------------------------


def test_silence_is_not_decoded() -> None:
    call, asr, _, clock = make_call(ROOF)
    events = run_realtime(call, clock, silence(5.0))
    assert asr.calls == [] and of(events, "partial") == []
    end = call.finish()
    assert [e.type for e in end] == ["decision", "final"]
    assert end[-1].totals.vad_skips == 5 and end[-1].totals.decodes == 0
    assert end[-1].totals.latency_ms_mean is None


def test_pause_after_speech_gets_one_settling_decode_then_none() -> None:
    words = script("hi I saw your ad")  # ends at 2.65 s
    call, asr, _, clock = make_call(words)
    audio = np.concatenate([tone(3.0), silence(5.0), tone(1.0)])
    events = run_realtime(call, clock, audio)
    decoded_at = [round(o + s, 1) for o, s in asr.calls]
    # speech: 1, 2, 3 s; over the pause one decode hears "ad" whole; no speech came after it, so a
    # second decode would read the same words again: none runs until speech resumes at 9 s
    assert decoded_at == [1.0, 2.0, 3.0, 4.0, 9.0]
    partials = of(events, "partial")
    assert partials[2].unstable.endswith("ad_")  # "ad" was cut off at 3 s
    assert partials[3].stable == "hi I saw your" and partials[3].unstable == "ad"  # heard whole, not yet agreed
    # the silent step at 5 s committed "ad" as the pause decode heard it; the decode at 9 s starts
    # after the stable words instead of re-reading them
    assert partials[4].stable == "hi I saw your ad"
    assert asr.calls[-1][0] == 2.65
    end = call.finish()
    assert end[-1].totals.vad_skips == 4 and end[-1].totals.decodes == 5
    assert [w.text for w in end[-1].words] == ["hi", "I", "saw", "your", "ad"]


def test_silence_after_speech_triggers_no_decode_and_the_final_has_every_word() -> None:
    words = script("hi I saw your ad") + script("how much is a roof", start=10.3)
    call, asr, _, clock = make_call(words)
    audio = np.concatenate([tone(3.0), silence(7.0), tone(3.0), silence(5.0)])
    events = run_realtime(call, clock, audio) + call.finish()
    decoded_at = [round(o + s, 1) for o, s in asr.calls]
    # one decode over each pause, none for the rest of it
    assert decoded_at == [1.0, 2.0, 3.0, 4.0, 11.0, 12.0, 13.0, 14.0]
    final = events[-1]
    assert final.totals.decodes == 8 and final.totals.vad_skips == 10
    assert [w.text for w in final.words] == "hi I saw your ad how much is a roof".split()
    partials = of(events, "partial")
    for before, after in zip(partials, partials[1:]):
        assert after.stable.startswith(before.stable)


def test_stable_words_are_not_re_read_after_a_pause() -> None:
    # speech without silence (a noisy line: the gate stays open), with a gap between two phrases
    words = script("hi I saw your ad") + script("how much is a new roof for my house", start=6.3)
    call, asr, _, clock = make_call(words, stable_context_seconds=2.0)
    events = run_realtime(call, clock, tone(12.0)) + call.finish()
    # the gap emptied the unstable tail at 5 s: the next decodes start after "ad" (2.65 s), the
    # stable word that ends at least 2 s before that decode's end (until the decode window slides)
    offsets = [offset for offset, _ in asr.calls]
    assert offsets[:5] == [0.0] * 5 and offsets[5:10] == [2.65] * 5
    assert [w.text for w in events[-1].words] == "hi I saw your ad how much is a new roof for my house".split()

    # without it the same call re-reads from 0 until the decode window slides, and hears the same words
    full, asr_full, _, clock_full = make_call(words, stable_context_seconds=None)
    events_full = run_realtime(full, clock_full, tone(12.0)) + full.finish()
    assert [w.text for w in events_full[-1].words] == [w.text for w in events[-1].words]
    assert [o for o, _ in asr_full.calls][:8] == [0.0] * 8
    assert sum(s for _, s in asr.calls) < 0.9 * sum(s for _, s in asr_full.calls)  # audio re-read


def test_vad_gate_can_be_turned_off() -> None:
    call, asr, _, clock = make_call(ROOF, vad_gate=False)
    run_realtime(call, clock, silence(3.0))
    assert len(asr.calls) == 3


# -- lag -------------------------------------------------------------------------------------


def slow(seconds: float) -> float:
    """A decoder slower than real time on long buffers: 0.6 s per audio second + 0.2 s."""
    return 0.6 * seconds + 0.2


def test_lagging_decoder_skips_ahead_and_keeps_every_word() -> None:
    words = script(" ".join(f"w{i}" for i in range(40)))  # 40 words over 20 s
    call, asr, _, clock = make_call(words, asr_cost=slow, max_lag_seconds=3.0)
    events = run_realtime(call, clock, tone(22.0)) + call.finish()
    partials = of(events, "partial")
    lagging = [p for p in partials if p.lagging]
    assert lagging, "the slow decoder must trigger a skip"
    first = lagging[0]
    assert first.lag_seconds > 3.0 and first.skipped_seconds > 0
    skipped_calls = [c for c in asr.calls if c[0] > 0]
    assert skipped_calls and max(s for _, s in skipped_calls) < 8.0  # decodes are short again
    final = events[-1]
    assert final.totals.lag_skips == len(lagging)
    # words before the skip point were committed as heard; nothing lost, nothing doubled
    assert [w.text for w in final.words] == [f"w{i}" for i in range(40)]
    for before, after in zip(partials, partials[1:]):
        assert after.stable.startswith(before.stable)

    # the same decoder without the lag bound falls further and further behind
    unbounded, _, _, clock2 = make_call(words, asr_cost=slow, max_lag_seconds=1000.0)
    events2 = run_realtime(unbounded, clock2, tone(22.0)) + unbounded.finish()
    assert not any(p.lagging for p in of(events2, "partial"))
    assert max(p.latency_ms for p in partials) < max(p.latency_ms for p in of(events2, "partial"))
    assert final.totals.latency_ms_p95 < events2[-1].totals.latency_ms_p95


def test_decode_window_slides_past_stable_words_and_keeps_every_word() -> None:
    words = script(" ".join(f"w{i}" for i in range(40)))  # 40 words over 20 s
    call, asr, _, clock = make_call(words, decode_window_seconds=6.0, stable_context_seconds=None)
    events = run_realtime(call, clock, tone(22.0)) + call.finish()
    partials = of(events, "partial")
    offsets = [offset for offset, _ in asr.calls]
    assert offsets == sorted(offsets) and offsets[-1] > 10.0  # later decodes start well into the call
    # a decode re-reads at most the window plus the audio that arrived since the last one
    assert max(seconds for _, seconds in asr.calls) <= 6.0 + 1.0 + 1e-6
    word_ends = {round(e, 3) for _, _, e in words}
    assert {o for o in offsets if o > 0} <= word_ends  # decodes resume exactly after a stable word
    assert not any(p.lagging for p in partials)
    assert partials[-1].skipped_seconds == offsets[-1]
    # nothing lost, nothing doubled, stable text only grows
    assert [w.text for w in events[-1].words] == [f"w{i}" for i in range(40)]
    for before, after in zip(partials, partials[1:]):
        assert after.stable.startswith(before.stable)

    # a window as long as the opening re-reads everything from 0, every time
    full, asr_full, _, clock_full = make_call(words, decode_window_seconds=30.0)
    run_realtime(full, clock_full, tone(22.0))
    assert {offset for offset, _ in asr_full.calls} == {0.0}
    assert max(seconds for _, seconds in asr_full.calls) == pytest.approx(22.0)


# -- protocol --------------------------------------------------------------------------------


def test_step_re_entry_raises() -> None:
    call, asr, _, _ = make_call(ROOF)
    errors = []

    def reenter() -> None:
        try:
            call.step()
        except StreamStateError as e:
            errors.append(e)

    asr.during = reenter
    call.insert(tone(1.0))
    events = call.step()
    assert [e.type for e in events] == ["partial"]
    assert len(errors) == 1 and "re-entered" in str(errors[0])


def test_concurrent_step_from_another_thread_raises() -> None:
    call, asr, _, _ = make_call(ROOF)
    entered, release = threading.Event(), threading.Event()

    def block() -> None:
        entered.set()
        release.wait(5)

    asr.during = block
    call.insert(tone(1.0))
    worker = threading.Thread(target=call.step)
    worker.start()
    assert entered.wait(5)
    with pytest.raises(StreamStateError, match="re-entered"):
        call.step()
    with pytest.raises(StreamStateError, match="re-entered"):
        call.finish()
    call.insert(tone(1.0))  # insert stays allowed while a step runs
    release.set()
    worker.join(5)
    assert call.ready() and [e.type for e in call.step()] == ["partial"]


def test_events_are_redacted_by_default() -> None:
    words = script("my number is five five five one two three four five six seven and how much is it")
    call, _, scorer, clock = make_call(words)
    events = run_realtime(call, clock, tone(10.0)) + call.finish()
    assert any("five five five one two three four" in t for t in scorer.texts)  # the model sees the original
    wire = json.dumps([e.to_json() for e in events])
    assert "[PHONE]" in wire
    assert "five five five" not in wire and "four five six" not in wire
    final = events[-1]
    assert [w.text for w in final.words][:4] == ["my", "number", "is", "[PHONE]"]
    phone = final.words[3]
    assert (phone.start, phone.end) == (words[3][1], words[12][2])
    price = next(s for s in final.scores.signals if s.name == "price_inquiry")
    assert price.evidence[0].text == "how much" == final.text[price.evidence[0].start:price.evidence[0].end]
    (d,) = of(events, "decision")
    assert "signal price_inquiry: 'how much'" in d.decision.reasons
    ev = next(s for s in d.scores.signals if s.name == "price_inquiry").evidence[0]
    assert d.text[ev.start:ev.end] == "how much"


def test_pii_read_across_the_stable_boundary_is_redacted() -> None:
    words = script("call five five five one two three four five six seven")
    call, _, _, clock = make_call(words)
    partials = of(run_realtime(call, clock, tone(6.0)), "partial")
    for p in partials:
        assert "five five five one" not in p.stable + " " + p.unstable
    straddling = [p for p in partials if "[PHONE]" in p.unstable]
    assert straddling and all("[PHONE]" not in p.stable for p in straddling)


def test_redaction_can_be_disabled() -> None:
    words = script("my number is five five five one two three four five six seven")
    call, _, _, clock = make_call(words, redact_pii=False)
    events = run_realtime(call, clock, tone(7.0)) + call.finish()
    assert "five five five one two three four five six seven" in events[-1].text


def test_wire_format() -> None:
    call, _, _, clock = make_call(ROOF, metadata={"source": "google_ads", "campaign": "spring"})
    events = run_realtime(call, clock, tone(7.0)) + call.finish() + [call.error("too many calls", code="capacity")]
    wire = [e.to_json() for e in events]
    json.dumps(wire)  # serialisable
    assert [m["seq"] for m in wire] == list(range(len(wire)))
    assert all(m["call_id"] == "call-1" for m in wire)
    assert all(m["model"] == "intent/v7" for m in wire[1:])
    started = wire[0]
    assert started["type"] == "started" and started["metadata"] == {"source": "google_ads", "campaign": "spring"}
    assert started["config"]["sample_rate"] == 16000 and started["config"]["window_seconds"] == 30.0
    partial = next(m for m in wire if m["type"] == "partial" and m["signals"])
    assert set(partial) >= {"transcript", "label", "probabilities", "buying_intent", "signals", "latency_ms",
                            "decode_ms", "score_ms", "lagging", "lag_seconds", "skipped_seconds",
                            "window_complete", "audio_seconds"}
    assert set(partial["transcript"]) == {"stable", "unstable", "text"}
    assert set(partial["probabilities"]) == {"buying", "service", "informational", "noise"}
    signal = partial["signals"][0]
    assert set(signal) == {"name", "probability", "evidence"} and set(signal["evidence"][0]) == {
        "text", "start", "end", "score"}
    decision = next(m for m in wire if m["type"] == "decision")
    assert set(decision["decision"]) == {"route", "label", "buying_intent", "confidence", "reasons", "segment",
                                         "audio_seconds", "early"}
    final = wire[-2]
    assert final["type"] == "final" and set(final["transcript"]) == {"text", "words"}
    assert set(final["transcript"]["words"][0]) == {"text", "start", "end", "probability"}
    assert final["totals"]["decodes"] == 7 and final["decision"]["route"] == "priority_sales"
    assert wire[-1]["error"] == {"code": "capacity", "message": "too many calls"}


def test_start_twice_raises() -> None:
    call, *_ = make_call(ROOF)
    call.start()
    with pytest.raises(StreamStateError):
        call.start()


@pytest.mark.parametrize(("audio", "message"), [
    (np.zeros(10, dtype=np.int16), "float"),
    (np.zeros((2, 10), dtype=np.float32), "1-D"),
    (np.array([0.0, np.nan], dtype=np.float32), "NaN"),
    ([0.0, 0.1], "numpy array"),
])
def test_bad_audio_is_a_user_error(audio, message: str) -> None:
    call, *_ = make_call(ROOF)
    with pytest.raises(StreamInputError, match=message):
        call.insert(audio)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"sample_rate": 8000}, "sample_rate"),
    ({"decode_interval_seconds": 0}, "decode_interval_seconds"),
    ({"window_seconds": 31}, "window_seconds"),
    ({"stable_agreement": 0}, "stable_agreement"),
    ({"max_lag_seconds": 0.5}, "max_lag_seconds"),
    ({"decode_window_seconds": 1.0}, "decode_window_seconds"),
    ({"decision_deadline_seconds": 40}, "decision_deadline_seconds"),
    ({"vad_threshold_dbfs": 3}, "vad_threshold_dbfs"),
])
def test_stream_config_validation_names_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        load_config(None, StreamConfig, overrides)


def test_stream_config_from_overrides() -> None:
    cfg = load_config(None, StreamConfig, ["decode_interval_seconds=0.5", "stable_agreement=3", "redact_pii=false"])
    assert (cfg.decode_interval_seconds, cfg.stable_agreement, cfg.redact_pii) == (0.5, 3, False)


def test_serving_core_imports_no_ml_stack() -> None:
    code = ("import sys, serving.live_call, serving.policy, serving.redact, serving.twilio; "
            "bad = [m for m in ('torch', 'transformers', 'datasets', 'pandas', 'sklearn') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# -- real tiny.en ----------------------------------------------------------------------------

JFK = "and so my fellow americans ask not what your country can do for you ask what you can do for your country"


@pytest.mark.integration
def test_real_asr_stream_matches_the_reference_and_stable_text_only_grows() -> None:
    import re

    from conftest import SHARED_AUDIO

    from speech.asr import AsrConfig, SpeechRecognizer
    from speech.audio import decode_audio

    audio = decode_audio(SHARED_AUDIO / "jfk.flac")  # 11 s
    call = LiveCall("jfk", {}, asr=SpeechRecognizer(AsrConfig(cpu_threads=2)), scorer=KeywordScorer(),
                    policy=POLICY, config=StreamConfig())
    events = [call.start()]
    for i in range(0, len(audio), 320):  # 20 ms frames, as fast as the decoder allows
        call.insert(audio[i:i + 320])
        if call.ready():
            events += call.step()
    events += call.finish()
    partials = of(events, "partial")
    assert len(partials) == 11
    for before, after in zip(partials, partials[1:]):
        assert after.stable.startswith(before.stable)
    words = re.sub(r"[^a-z' ]+", " ", events[-1].text.lower()).split()
    assert words == JFK.split(), events[-1].text
    final = events[-1]
    assert final.totals.decodes == 11 and final.decision is not None
    assert [w.start for w in final.words] == sorted(w.start for w in final.words)


# -- two channels ----------------------------------------------------------------------------


class ChannelASR:
    """A FakeASR per speaker, told apart by loudness (caller tone 0.3, agent tone 0.1)."""

    def __init__(self, caller_words, agent_words) -> None:
        self.caller = FakeASR(caller_words)
        self.agent = FakeASR(agent_words)

    def transcribe(self, audio, *, cut_seconds: float = 30.0, offset: float = 0.0) -> OpeningTranscript:
        asr = self.caller if np.abs(audio).max() > 0.2 else self.agent
        return asr.transcribe(audio, cut_seconds=cut_seconds, offset=offset)


def run_two_channels(call: LiveCall, clock: Clock, caller, agent) -> list:
    events = [call.start()]
    for i in range(len(caller) // 8000):  # 0.5 s of each channel per tick, in real time
        clock.t = 100.0 + (i + 1) * 0.5
        chunk = slice(i * 8000, (i + 1) * 8000)
        call.insert(agent[chunk], arrived_at=clock.t, speaker="agent")
        call.insert(caller[chunk], arrived_at=clock.t, speaker="caller")
        if call.ready():
            events += call.step()
    return events + call.finish()


def test_two_channels_keep_speakers_apart_and_score_only_the_caller() -> None:
    clock = Clock()
    caller_words = script("hi I saw your ad how much is a new roof", start=2.3)
    agent_words = script("thanks for calling my order desk how can I help", start=0.2, step=0.2, length=0.15)
    asr = ChannelASR(caller_words, agent_words)
    scorer = KeywordScorer(clock)
    call = LiveCall("call-2ch", {"source": "test"}, asr=asr, scorer=scorer, policy=POLICY,
                    config=StreamConfig(), clock=clock, speakers=("caller", "agent"))
    events = run_two_channels(call, clock, tone(9.0, 0.3), tone(9.0, 0.1))
    assert events[0].to_json()["config"]["speakers"] == ["caller", "agent"]
    assert events[0].to_json()["config"]["scored"] == "caller"

    final = events[-1].to_json()
    assert final["transcript"]["text"] == "hi I saw your ad how much is a new roof"
    assert final["transcript"]["speakers"]["agent"]["text"] == "thanks for calling my order desk how can I help"
    words = final["transcript"]["words"]
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)  # both speakers, in time order
    assert {w["speaker"] for w in words if w["text"] == "thanks"} == {"agent"}
    assert {w["speaker"] for w in words if w["text"] == "roof"} == {"caller"}
    # the agent's "my order" (a service phrase to the keyword scorer) never reached the scorer
    assert scorer.texts and not any("thanks" in t or "order" in t for t in scorer.texts)
    decision = next(e for e in events if e.type == "decision")
    assert decision.decision.label == "buying" and decision.decision.early
    partial = next(e for e in events if e.type == "partial" and e.speaker_text.get("agent", ("", ""))[0])
    assert set(partial.to_json()["transcript"]["speakers"]) == {"caller", "agent"}
    # the two channels were decoded separately: no decode ever mixed the speakers' audio
    assert asr.caller.calls and asr.agent.calls


class TaggedKeywordScorer(KeywordScorer):
    """The keyword scorer as a model trained on speaker-tagged text: it reads the agent too."""

    speaker_tags = True


def test_a_model_that_reads_speaker_tags_scores_both_speakers_and_evidence_names_the_speaker() -> None:
    clock = Clock()
    caller_words = script("hi I saw your ad how much is a new roof", start=2.3)
    agent_words = script("thanks for calling my order desk how can I help", start=0.2, step=0.2, length=0.15)
    scorer = TaggedKeywordScorer(clock)
    call = LiveCall("call-tag", {"source": "test"}, asr=ChannelASR(caller_words, agent_words), scorer=scorer,
                    policy=POLICY, config=StreamConfig(), clock=clock, speakers=("caller", "agent"))
    events = run_two_channels(call, clock, tone(9.0, 0.3), tone(9.0, 0.1))
    assert events[0].to_json()["config"]["scored"] == "caller+agent"

    # the model read both speakers, tagged, in time order
    assert scorer.texts[-1] == ("agent: thanks for calling my order desk how can I help "
                                "caller: hi I saw your ad how much is a new roof")
    assert any(t.startswith("agent: thanks") and "caller:" not in t for t in scorer.texts)  # before the caller spoke
    final = events[-1].to_json()
    assert final["transcript"]["text"] == "hi I saw your ad how much is a new roof"  # still the caller's
    evidence = {s["name"]: s["evidence"] for s in final["signals"]}
    assert set(evidence) == {"price_inquiry", "ad_reference", "existing_customer"}
    for spans in evidence.values():
        for ev in spans:  # every span indexes its speaker's transcript
            assert final["transcript"]["speakers"][ev["speaker"]]["text"][ev["start"]:ev["end"]] == ev["text"]
    assert [(e["speaker"], e["text"]) for e in evidence["existing_customer"]] == [("agent", "my order")]
    assert [(e["speaker"], e["text"]) for e in evidence["price_inquiry"]] == [("caller", "how much")]
    assert call.transcript == "hi I saw your ad how much is a new roof"  # what the call log keeps: no tags


def test_tagged_evidence_goes_through_each_speakers_redaction() -> None:
    clock = Clock()
    caller_words = script("call me on 5 5 5 1 2 3 4 5 6 7 how much is it", start=2.3)
    agent_words = script("thanks for calling my order desk", start=0.2, step=0.2, length=0.15)
    call = LiveCall("call-tag-pii", {"source": "test"}, asr=ChannelASR(caller_words, agent_words),
                    scorer=TaggedKeywordScorer(clock), policy=POLICY, config=StreamConfig(), clock=clock,
                    speakers=("caller", "agent"))
    final = run_two_channels(call, clock, tone(12.0, 0.3), tone(12.0, 0.1))[-1].to_json()
    caller_text = final["transcript"]["speakers"]["caller"]["text"]
    assert caller_text == "call me on [PHONE] how much is it" == final["transcript"]["text"]
    (ev,) = next(s["evidence"] for s in final["signals"] if s["name"] == "price_inquiry")
    assert ev["speaker"] == "caller" and caller_text[ev["start"]:ev["end"]] == "how much"


def test_a_plain_model_on_one_channel_is_unchanged_by_speaker_tags() -> None:
    call = LiveCall("mono", {}, asr=FakeASR(ROOF), scorer=TaggedKeywordScorer(), policy=POLICY)
    assert call.tagged is False and call.start().to_json()["config"]["scored"] == "all"


def test_two_channel_calls_need_a_known_speaker_per_chunk() -> None:
    call, *_ = make_call(ROOF)
    with pytest.raises(StreamInputError, match="speaker 'caller' is not a channel"):
        call.insert(tone(0.5), speaker="caller")
    two = LiveCall("c", {}, asr=FakeASR(ROOF), scorer=KeywordScorer(), policy=POLICY, speakers=("agent", "caller"))
    with pytest.raises(StreamInputError, match="speaker None is not a channel"):
        two.insert(tone(0.5))
    with pytest.raises(StreamInputError, match="speakers must be"):
        LiveCall("c", {}, asr=FakeASR(ROOF), scorer=KeywordScorer(), policy=POLICY, speakers=("caller", "boss"))
