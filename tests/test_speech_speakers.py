"""Speaker-tagged text: the form a two-channel call takes for a model trained on it, and its span maps."""

from __future__ import annotations

import pytest

from speech.speakers import has_speakers, interleave, tag, tag_turns, tag_words
from speech.transcript import Word

TURNS = [{"speaker": "agent", "text": "Thanks for calling Apex Roofing, how can I help?"},
         {"speaker": "caller", "text": "Hi, I saw your ad."},
         {"speaker": "caller", "text": "How much is a new roof?"},
         {"speaker": "agent", "text": "Sure."}]
PLAIN = " ".join(t["text"] for t in TURNS)


def test_tags_mark_each_change_of_speaker_only():
    tagged = tag_turns(TURNS)
    assert tagged.text == ("agent: Thanks for calling Apex Roofing, how can I help? "
                           "caller: Hi, I saw your ad. How much is a new roof? agent: Sure.")
    # the caller's two turns are one run: consecutive in the plain transcript too
    assert [p.speaker for p in tagged.pieces] == ["agent", "caller", "agent"]


@pytest.mark.parametrize("phrase", ["saw your ad", "How much", "Hi, I saw your ad. How much", "Apex Roofing", "Sure"])
def test_plain_spans_move_to_the_same_words_in_tagged_text(phrase):
    tagged = tag_turns(TURNS)
    start = PLAIN.index(phrase)
    moved = tagged.from_source(start, start + len(phrase))
    assert moved is not None and tagged.text[moved[0]:moved[1]] == phrase


def test_tagged_spans_map_back_to_the_speakers_own_transcript():
    words = [Word(t, 0.1 * i, 0.1 * i + 0.05, speaker=s) for i, (s, t) in enumerate(
        [("agent", "thanks"), ("agent", "for"), ("agent", "calling"), ("caller", "hi"), ("caller", "how"),
         ("caller", "much"), ("agent", "sure"), ("caller", "today")])]
    tagged = tag_words(words)
    assert tagged.text == "agent: thanks for calling caller: hi how much agent: sure caller: today"
    caller_text, agent_text = "hi how much today", "thanks for calling sure"
    i = tagged.text.index("how much")
    assert tagged.to_source(i, i + 8) == ("caller", 3, 11) and caller_text[3:11] == "how much"
    i = tagged.text.index("sure")
    assert tagged.to_source(i, i + 4) == ("agent", 19, 23) and agent_text[19:23] == "sure"
    i = tagged.text.index("today")
    assert tagged.to_source(i, i + 5) == ("caller", 12, 17)
    # a span that starts in a tag begins at the run after it; one across a speaker change stops there
    i = tagged.text.index("caller: hi")
    assert tagged.to_source(i, i + len("caller: hi how")) == ("caller", 0, 6)
    assert tagged.to_source(tagged.text.index("calling"), tagged.text.index(" how")) == ("agent", 11, 18)
    assert tagged.to_source(0, len("agent:")) is None  # a tag alone is nobody's words


def test_words_and_turns_give_the_same_text_and_speakers_are_checked():
    words = [{"text": w, "speaker": t["speaker"]} for t in TURNS for w in t["text"].split()]
    assert tag_words(words).text == tag_turns(TURNS).text
    assert has_speakers(words) and not has_speakers([{"text": "hi"}]) and not has_speakers([])
    with pytest.raises(ValueError, match="needs a speaker"):
        tag_words([{"text": "hi", "speaker": None}])
    with pytest.raises(ValueError, match="speaker must be one of"):
        tag([("boss", "hi", 0)])
    assert tag_turns([{"speaker": "boss", "text": "hi"}]) is None
    assert tag([]).text == "" and tag_words([]).pieces == ()


def test_interleaving_separately_decoded_speakers_keeps_each_speakers_order():
    caller = [Word("how", 2.0, 2.2), Word("much", 1.9, 2.4), Word("today", 4.0, 4.3)]  # a start out of order
    agent = [Word("hello", 0.5, 0.9), Word("sure", 3.0, 3.2)]
    tagged = interleave({"caller": caller, "agent": agent})
    assert tagged.text == "agent: hello caller: how much agent: sure caller: today"
    caller_text = "how much today"
    for word in ("how", "much", "today"):
        i = tagged.text.index(word)
        speaker, a, b = tagged.to_source(i, i + len(word))
        assert speaker == "caller" and caller_text[a:b] == word
    i = tagged.text.index("sure")
    assert tagged.to_source(i, i + 4) == ("agent", 6, 10)
    assert interleave({"caller": [], "agent": []}).text == ""
