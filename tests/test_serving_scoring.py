"""serving.scoring: the one path after the model, for REST batches and live calls alike."""

from __future__ import annotations

import pytest

from serving.metrics import service_metrics
from serving.policy import DecisionPolicy
from serving.scoring import ScoreItem, ScoredCall, Scoring
from tests.service_fakes import BuyingPredictor, RecordingLog

PHONE_TEXT = "hi how much for a new roof, call me back at 555 123 4567"



def _scoring(*, redact_pii: bool, mode: str) -> tuple[Scoring, RecordingLog]:
    log = RecordingLog()
    return Scoring(BuyingPredictor(), DecisionPolicy.from_yaml(), redact_pii=redact_pii, call_log=log,
                   transcript_mode=mode), log


@pytest.mark.parametrize(("redact_pii", "mode", "shown_redacted", "logged"), [
    (True, "redacted", True, "redacted"),   # the redacted text the client got is what is kept
    (True, "full", True, "raw"),            # full: what was heard, though the client saw it redacted
    (False, "redacted", False, "redacted"),  # redaction off for clients, the log still redacts
    (True, "off", True, None),              # no transcript kept at all
])
def test_the_logged_transcript_follows_one_rule(redact_pii, mode, shown_redacted, logged):
    scoring, log = _scoring(redact_pii=redact_pii, mode=mode)
    (result,) = scoring.score_items([ScoreItem(PHONE_TEXT, "c-1", {"source": "ads"})])
    assert isinstance(result, ScoredCall) and result.batch_size == 1
    assert ("[PHONE]" in result.text) is shown_redacted and ("4567" in result.text) is not shown_redacted
    (record,) = log.records
    assert record.call_id == "c-1" and record.channel == "score" and record.route == result.decision.route
    if logged is None:
        assert record.transcript is None
    elif logged == "raw":
        assert record.transcript == PHONE_TEXT
    else:
        assert "[PHONE]" in record.transcript and "4567" not in record.transcript


def test_a_live_call_is_counted_and_logged_by_the_same_rules():
    scoring, log = _scoring(redact_pii=True, mode="redacted")
    decision = DecisionPolicy.from_yaml().decide(BuyingPredictor().predict(["x"])[0], {})
    counter = service_metrics().decisions.labels(route=decision.route, source="twilio")
    before = counter._value.get()
    scoring.count(decision, "twilio", audio_seconds=4.0)
    assert counter._value.get() == before + 1
    scores = BuyingPredictor().predict(["x"])[0]
    scoring.log_call("CA1", channel="twilio", metadata={}, scores=scores, decision=decision,
                     shown="call me at [PHONE]", heard="call me at 555 123 4567", audio_seconds=12.5)
    (record,) = log.records
    assert record.transcript == "call me at [PHONE]" and record.channel == "twilio"
    assert record.audio_seconds == 12.5


def test_no_call_log_means_nothing_is_queued():
    scoring = Scoring(BuyingPredictor(), DecisionPolicy.from_yaml(), call_log=None)
    (result,) = scoring.score_items([ScoreItem("how much", "c-2")])
    assert isinstance(result, ScoredCall) and result.scores.label == "buying"
