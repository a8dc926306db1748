"""bench/soak.py: the analysis on synthetic samples (growth after warm-up, leaks, lost records), and a
very short real run against a served tiny model with a real SQLite call log."""

from __future__ import annotations

import asyncio
import math
import shutil
import uuid
from pathlib import Path

import pytest

from bench.soak import (FinishedCall, Sample, analyse, call_audio, count_rows, fd_levels, live_slots,
                        p95_by_minute, rss_growth, soak)
from tests.server_harness import live_server, serving_tmp  # noqa: F401  (fixtures)


def steady(minutes: float, *, rss=lambda t: 400.0, fds=lambda t: 30, slots=6, every: float = 10.0) -> list[Sample]:
    return [Sample(t=t, rss_mb=rss(t), fds=fds(t), slots=slots, load1=2.0)
            for t in (i * every for i in range(int(minutes * 60 / every)))]


def calls(n: int, *, every: float = 20.0, latency: float = 300.0) -> list[FinishedCall]:
    return [FinishedCall(ended=(i + 1) * every, latencies_ms=(latency, latency + 100), final=True) for i in range(n)]


AT_REST = Sample(t=1900, rss_mb=400, fds=26, slots=0, load1=1.0)


def test_rss_growth_compares_the_minute_after_warm_up_with_the_last_minute():
    # Warm-up: 300 → 390 MB over the first 5 min (not judged); then 400 MB, then a climb to 430 MB.
    def rss(t: float) -> float:
        if t < 300:
            return 300 + 90 * t / 300
        return 400.0 if t < 1200 else 400 + 30 * (t - 1200) / 600

    samples = steady(30, rss=rss)
    base, end, growth = rss_growth(samples, warmup_s=300, load_s=1800)
    assert base == pytest.approx(400.0)
    # The last minute (1740-1790 s): mean of 400 + 30 * (540..590)/600.
    assert end == pytest.approx(400 + 30 * (565 / 600))
    assert growth == pytest.approx((end - 400) / 400)
    assert 0.065 < growth < 0.075

    # Judged from the start (no warm-up), the first minute's 300-318 MB would make it look like 40 % growth.
    assert rss_growth(samples, warmup_s=0, load_s=1800)[2] > 0.35


def test_a_run_too_short_for_its_warm_up_is_refused():
    with pytest.raises(ValueError, match="too short"):
        rss_growth(steady(4), warmup_s=300, load_s=240)


def test_flat_run_passes_every_target():
    samples = steady(30)
    report = analyse(samples, calls(80), after=AT_REST, scores_ok=3600, scores_failed=0, rows=3680,
                     warmup_s=300, load_s=1800)
    assert report.passed, report.checks
    assert report.rss_growth == 0.0
    assert (report.fds_base, report.fds_end, report.fds_after) == (30, 30, 26)
    assert report.expected_rows == 3680
    assert [c.passed for c in report.checks] == [True] * 5


def test_rss_growth_of_5_percent_fails():
    samples = steady(30, rss=lambda t: 400.0 if t < 1740 else 420.0)
    report = analyse(samples, calls(80), after=AT_REST, scores_ok=10, scores_failed=0, rows=90,
                     warmup_s=300, load_s=1800)
    assert report.rss_growth == pytest.approx(0.05)
    assert not report.passed
    assert [c.name for c in report.checks if not c.passed] == ["RSS growth after warm-up"]


def test_a_slot_still_in_use_after_the_last_call_is_a_leak():
    leaked = Sample(t=1900, rss_mb=400, fds=26, slots=1, load1=1.0)
    report = analyse(steady(30), calls(80), after=leaked, scores_ok=10, scores_failed=0, rows=90,
                     warmup_s=300, load_s=1800)
    failed = [c for c in report.checks if not c.passed]
    assert [c.name for c in failed] == ["live session slots after the last call"]
    assert failed[0].detail == "1 in use (must be 0)"


def test_descriptors_that_climb_or_stay_open_are_a_leak():
    # One descriptor more per minute after warm-up: 30 in the first minute, 54 in the last.
    climbing = steady(30, fds=lambda t: 30 + max(0, int((t - 300) // 60)))
    assert fd_levels(climbing, 300, 1800) == (30, 54)
    report = analyse(climbing, calls(80), after=AT_REST, scores_ok=10, scores_failed=0, rows=90,
                     warmup_s=300, load_s=1800)
    assert [c.name for c in report.checks if not c.passed] == ["open descriptors"]

    # Flat during the load, but 5 more than the post-warm-up level at rest (tolerance 4).
    open_at_rest = Sample(t=1900, rss_mb=400, fds=35, slots=0, load1=1.0)
    report = analyse(steady(30), calls(80), after=open_at_rest, scores_ok=10, scores_failed=0, rows=90,
                     warmup_s=300, load_s=1800)
    assert [c.name for c in report.checks if not c.passed] == ["open descriptors"]
    within = Sample(t=1900, rss_mb=400, fds=34, slots=0, load1=1.0)
    assert analyse(steady(30), calls(80), after=within, scores_ok=10, scores_failed=0, rows=90,
                   warmup_s=300, load_s=1800).passed


def test_lost_records_are_counted():
    made = calls(80)
    made[3] = FinishedCall(ended=80.0, latencies_ms=(), final=False, errors=("ConnectionClosedError",))
    report = analyse(steady(30), made, after=AT_REST, scores_ok=3600, scores_failed=2, rows=3675,
                     warmup_s=300, load_s=1800)
    failed = {c.name: c.detail for c in report.checks if not c.passed}
    assert set(failed) == {"every call finished", "call-log rows == calls + scores"}
    assert failed["every call finished"] == "79/80 final events, 1 calls with an error or no final event"
    # 79 calls with a final event + 3600 answered scores = 3679 rows expected; 3675 written.
    assert failed["call-log rows == calls + scores"] == "3675 rows for 79 calls + 3600 scores = 3679 (lost 4)"
    assert report.scores_failed == 2


def test_p95_per_minute_is_by_the_minute_a_call_ended():
    made = [FinishedCall(ended=10, latencies_ms=tuple(range(1, 101)), final=True),
            FinishedCall(ended=59, latencies_ms=(1000.0,), final=True),
            FinishedCall(ended=61, latencies_ms=(200.0, 300.0), final=True),
            FinishedCall(ended=185, latencies_ms=(), final=True)]
    minutes = p95_by_minute(made)
    assert [(m, n) for m, n, _ in minutes] == [(0, 101), (1, 2), (3, 0)]
    assert minutes[0][2] == 96.0  # 1..100 and 1000: the 95th of 101 values (nearest rank)
    assert minutes[1][2] == 300.0
    assert math.isnan(minutes[2][2])


def test_live_slots_are_read_from_the_metrics_page():
    page = ("# HELP callintent_live_sessions_active Live calls being processed\n"
            "# TYPE callintent_live_sessions_active gauge\n"
            "callintent_live_sessions_active 3.0\n"
            "# HELP callintent_live_sessions_started_total Live calls admitted\n"
            "# TYPE callintent_live_sessions_started_total counter\n"
            "callintent_live_sessions_started_total 41.0\n")
    assert live_slots(page) == 3
    assert live_slots("") == 0


@pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None, reason="needs espeak-ng + sox")
def test_a_short_real_soak_writes_one_row_per_call_and_score(live_server, tmp_path: Path):
    """The shared test server (tiny keyword model, its SQLite call log): two calls at a time for 12 s
    (each 4-6 s, one after another; on a loaded machine a call may take twice that), /score beside them; every call and score is one row."""
    run_id = uuid.uuid4().hex[:8]
    clips = call_audio(tmp_path, 6.0)
    samples, made, statuses, after = asyncio.run(soak(
        live_server.url, clips, calls=2, load_s=12, call_seconds=(4, 6), score_rps=3, sample_s=1, run_id=run_id,
        seed=1))
    scores = statuses.get(200, 0)
    rows = count_rows(f"sqlite:///{live_server.registry / 'calls.db'}", f"soak-{run_id}-",
                      sum(c.final for c in made) + scores)
    assert 2 <= len(made) <= 8 and all(c.final and not c.errors for c in made), made  # 2 callers, 1-4 calls each
    assert scores >= 25 and set(statuses) == {200}, statuses
    assert max(s.slots for s in samples) == 2
    report = analyse(samples, made, after=after, scores_ok=scores, scores_failed=0, rows=rows,
                     warmup_s=3, load_s=12, window_s=4)
    assert after.slots == 0
    assert rows == len(made) + scores
    assert report.rss_base_mb > 100 and report.fds_base > 5
    passed = {c.name: c.passed for c in report.checks}
    assert passed["call-log rows == calls + scores"] and passed["live session slots after the last call"]
