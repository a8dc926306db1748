"""Data source of a labeled row: corpus vs real-text sets vs call log, never the ad source."""

from __future__ import annotations

import json

import pytest

from data.sources import CALL_LOG, CORPUS, OTHER, data_source, data_sources


@pytest.mark.parametrize(("call_id", "source", "extra", "expected"), [
    ("synth-000042", "google_ads", "{}", CORPUS),           # corpus rows carry an ad source: still the corpus
    ("synth-000043", "referral", "", CORPUS),
    ("synth-000044", "sgd", None, CORPUS),                   # the id decides before the source column
    ("sgd-train-17", "sgd", "{}", "sgd"),
    ("clinc-val-3", "CLINC150", "{}", "clinc150"),           # case-insensitive
    ("call-9f2", "google_ads", json.dumps({"origin": "call_log"}), CALL_LOG),
    ("call-9f3", "facebook_ads", {"origin": "call_log"}, CALL_LOG),
    ("cust-1", "google_ads", "{}", OTHER),                   # a customer's ad source is not a data set
    ("cust-2", "", "not json", OTHER),
])
def test_data_source_rules(call_id, source, extra, expected):
    assert data_source(call_id, source, extra) == expected


def test_data_sources_is_column_wise_and_checks_lengths():
    assert data_sources(["synth-1", "x"], ["google_ads", "clinc150"]) == [CORPUS, "clinc150"]
    assert data_sources(["synth-1", "x"]) == [CORPUS, OTHER]
    with pytest.raises(ValueError, match="2 call_ids but 1 sources"):
        data_sources(["a", "b"], ["sgd"])
