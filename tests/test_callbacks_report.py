"""Missed calls and callbacks in the call log (SQLite and PostgreSQL): migration 0004, the callback
report's figures against numbers computed by hand below — completion, latency percentiles inside and
outside business hours, SLA breaches with owner and queue, conversion by delay bucket, and the
revenue-at-risk range — and the ``callintent report callbacks`` command."""

from __future__ import annotations

import datetime as dt

import pytest

from serving.callbacks import BusinessHours, CallbackPolicy
from serving.calllog.callbacks import CallbackAttempt, CallbackLog, missed_call
from serving.calllog.records import Outcome
from serving.calllog.store import open_store
from tests.pg_harness import call_log_url, pg_server  # noqa: F401 - fixtures

DAY = dt.datetime(2026, 11, 10)  # a Tuesday
UNTIL = DAY + dt.timedelta(days=1)  # deadlines are judged at the end of the window: 2026-11-11 00:00
#: Business hours 09:00-17:00 UTC on weekdays; the default SLAs (buying 15m, unknown 1h, service 4h,
#: noise none) and delay buckets (15m, 1h, 4h, 1d).
POLICY = CallbackPolicy(business_hours=BusinessHours(timezone="UTC", open="09:00", close="17:00"))


def at(hour: int, minute: int = 0) -> dt.datetime:
    return DAY + dt.timedelta(hours=hour, minutes=minute)


@pytest.fixture
def store(call_log_url):  # noqa: F811
    s = open_store(call_log_url)
    yield s
    s.close()


def _miss(log: CallbackLog, call_id: str, intent: str, missed_at: dt.datetime, *, source: str = "", owner: str = "",
          attempts: tuple[tuple[dt.datetime, bool], ...] = (), outcome: tuple[bool, float | None] | None = None,
          kind: str = "voicemail") -> None:
    metadata = {"source": source} if source else {}
    log.record_missed(missed_call(call_id, kind=kind, missed_at=missed_at, caller="+15550000000", metadata=metadata,
                                  terms=POLICY.terms(intent, missed_at), owner=owner))
    for when, connected in attempts:
        log.record_attempt(CallbackAttempt(call_id, when, connected, agent="a.lee"))
    if outcome is not None:
        log.store.record_outcome(Outcome(call_id, outcome[0], revenue=outcome[1], occurred_at=missed_at))


def _fixture(store) -> None:
    """Eleven missed calls on Tuesday 2026-11-10 (UTC):

    call intent  source     missed  attempts (connected?)      SLA       delay to connect  outcome
    B1   buying  google_ads 10:00   10:05 yes                  met       5m   <=15m        converted 500
    B2   buying  google_ads 11:00   11:10 no, 11:12 yes        met       12m  <=15m        converted 300
    B3   buying  google_ads 12:00   12:10 yes                  met       10m  <=15m        not converted
    B4   buying  facebook   20:00   20:40 yes                  breached  40m  15m-1h       not converted
    B5   buying  facebook   21:00   22:00 yes                  breached  60m  15m-1h       converted 400
    B6   buying  google_ads 08:00   none                       breached  -    not reached  none
    B7   buying  google_ads 13:00   13:30 no                   breached  -    not reached  not converted
    S1   service facebook   14:00   15:00 yes                  met       60m  15m-1h       none
    S2   service (none)     23:00   none (due 03:00 next day)  pending   -    not reached  none
    U1   unknown (none)     09:30   09:50 yes (no voicemail)   met       20m  15m-1h       converted (no revenue)
    N1   noise   google_ads 15:00   none                       no SLA
    """
    log = CallbackLog(store)
    _miss(log, "B1", "buying", at(10), source="google_ads", attempts=((at(10, 5), True),), outcome=(True, 500.0))
    _miss(log, "B2", "buying", at(11), source="google_ads", attempts=((at(11, 10), False), (at(11, 12), True)),
          outcome=(True, 300.0))
    _miss(log, "B3", "buying", at(12), source="google_ads", attempts=((at(12, 10), True),), outcome=(False, None))
    _miss(log, "B4", "buying", at(20), source="facebook", owner="c.diaz", attempts=((at(20, 40), True),),
          outcome=(False, None))
    _miss(log, "B5", "buying", at(21), source="facebook", attempts=((at(22), True),), outcome=(True, 400.0))
    _miss(log, "B6", "buying", at(8), source="google_ads")
    _miss(log, "B7", "buying", at(13), source="google_ads", attempts=((at(13, 30), False),), outcome=(False, None))
    _miss(log, "S1", "service", at(14), source="facebook", attempts=((at(15), True),))
    _miss(log, "S2", "service", at(23))
    _miss(log, "U1", "unknown", at(9, 30), kind="missed", attempts=((at(9, 50), True),), outcome=(True, None))
    _miss(log, "N1", "noise", at(15), source="google_ads")
    _miss(log, "old", "buying", at(-30), source="google_ads")  # the day before: outside the window


def _report(store, **options):
    from evaluation.callbacks_report import build_callbacks_report

    return build_callbacks_report(store, POLICY, since=DAY, until=UNTIL, **options)


def test_migrations_build_exactly_the_tables_the_code_uses_and_0004_is_head(store):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from serving.calllog.store import VERSION_TABLE, metadata

    assert store.migrate() == "0004"
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    assert [d for d in diff if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)] == []


def test_a_log_at_0002_upgrades_to_0004_and_back(call_log_url):  # noqa: F811
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from serving.calllog.store import MIGRATIONS_DIR, CallLogStore

    s = CallLogStore(call_log_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with s.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0002")
        assert "missed_calls" not in sa.inspect(s.engine).get_table_names()
        assert s.migrate() == "0004"
        assert {"missed_calls", "callback_attempts"} <= set(sa.inspect(s.engine).get_table_names())
        with s.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0002")
        assert not {"missed_calls", "callback_attempts"} & set(sa.inspect(s.engine).get_table_names())
    finally:
        s.close()


def test_a_missed_call_reads_back_and_its_outcome_is_not_an_orphan(store):
    log = CallbackLog(store)
    _miss(log, "B1", "buying", at(10), source="google_ads", owner="c.diaz", attempts=((at(10, 5), True),),
          outcome=(True, 500.0))
    entry = log.get("B1")
    assert (entry.missed.intent, entry.missed.priority, entry.missed.sla_seconds) == ("buying", 1, 900.0)
    assert entry.missed.due_at == at(10, 15) and entry.missed.queue == "sales" and entry.missed.owner == "c.diaz"
    assert entry.outcome.converted and entry.outcome.revenue == 500.0
    assert store.orphan_outcomes() == []  # the outcome belongs to a logged (missed) call
    # A repeated attempt report is idempotent; the same time by the same agent with another result conflicts.
    status, _, logged = log.record_attempt(CallbackAttempt("B1", at(10, 5), True, agent="a.lee"))
    assert (status, logged) == ("unchanged", True)
    assert log.record_attempt(CallbackAttempt("B1", at(10, 5), False, agent="a.lee"))[0] == "conflict"
    assert log.record_attempt(CallbackAttempt("B1", at(10, 5), False, agent="b.kim"))[0] == "created"


def test_purge_deletes_old_missed_calls_with_their_attempts(store):
    log = CallbackLog(store)
    _miss(log, "old", "buying", at(-30), attempts=((at(-29), True),))
    _miss(log, "new", "buying", at(10), attempts=((at(10, 5), True),))
    store.purge(DAY)
    assert log.get("old") is None and log.attempts("old") == []
    assert log.get("new") is not None and len(log.attempts("new")) == 1


def test_callback_report_figures_match_the_hand_computed_ones(store):
    from serving.calllog.report import Rate

    _fixture(store)
    report = _report(store, by="segment", revenue_per_conversion=None)
    assert [g.key for g in report.groups] == ["buying", "service", "noise", "unknown"]  # most missed first, then name

    total = report.total
    assert (total.missed, total.voicemails, total.owed) == (11, 10, 10)  # N1 is owed no callback
    assert total.attempted == Rate(8, 10)   # B1 B2 B3 B4 B5 B7 S1 U1
    assert total.completed == Rate(7, 10)   # B7 only rang out: attempted, not completed
    assert total.sla_met == Rate(5, 9)      # met B1 B2 B3 S1 U1; breached B4 B5 B6 B7; S2 pending
    assert (total.breached, total.pending) == (4, 1)

    buying = report.group("buying")
    assert (buying.missed, buying.owed, buying.attempted, buying.completed, buying.sla_met, buying.breached) == (
        7, 7, Rate(6, 7), Rate(5, 7), Rate(3, 7), 4)
    all_hours, inside, outside = buying.latency
    def minutes(lat):
        return tuple(None if v is None else round(v / 60, 6) for v in (lat.p50, lat.p90, lat.p95))

    # First attempt, minutes after the miss: 5 10 10 30 40 60 (n = 6). Rank (n-1)q:
    # p50 at 2.5 -> 10 + 0.5*(30-10) = 20; p90 at 4.5 -> 40 + 0.5*20 = 50; p95 at 4.75 -> 40 + 0.75*20 = 55.
    assert (all_hours.calls, all_hours.to_attempt.count, minutes(all_hours.to_attempt)) == (7, 6, (20, 50, 55))
    # First connected: 5 10 12 40 60 (B7 never connected): p50 at 2 -> 12; p90 at 3.6 -> 40 + 0.6*20 = 52; p95 -> 56.
    assert (all_hours.to_connect.count, minutes(all_hours.to_connect)) == (5, (12, 52, 56))
    # Inside 09:00-17:00: B1 B2 B3 B7 -> attempts 5 10 10 30: p50 at 1.5 -> 10; p90 at 2.7 -> 10 + 0.7*20 = 24;
    # p95 at 2.85 -> 27. Connected 5 10 12: p50 10; p90 at 1.8 -> 10 + 0.8*2 = 11.6; p95 at 1.9 -> 11.8.
    assert (inside.hours, inside.calls, minutes(inside.to_attempt), minutes(inside.to_connect)) == (
        "inside", 4, (10, 24, 27), (10, 11.6, 11.8))
    # Outside: B4 (20:00) B5 (21:00) B6 (08:00, never attempted) -> 40 60: p50 50; p90 at 0.9 -> 58; p95 59.
    assert (outside.calls, minutes(outside.to_attempt), minutes(outside.to_connect)) == (3, (50, 58, 59), (50, 58, 59))

    # Breaches, most late first: B6 open at 00:00, due 08:15 -> 945 min; B5 22:00 vs 21:15 -> 45;
    # B4 20:40 vs 20:15 -> 25 (owner c.diaz); B7 13:30 vs 13:15 -> 15. Queue: the policy's for buying.
    assert [(b.call_id, b.late_seconds / 60, b.owner, b.queue) for b in report.breaches] == [
        ("B6", 945, "", "sales"), ("B5", 45, "", "sales"), ("B4", 25, "c.diaz", "sales"), ("B7", 15, "", "sales")]
    assert report.breaches[0].first_attempt_at is None and report.breaches[1].first_attempt_at == at(22)

    # Conversion by delay to the first connected callback (owed calls; converted / with an outcome):
    # <=15m: B1 yes, B2 yes, B3 no -> 2/3. 15m-1h: B4 no, B5 yes (60 min is inside the 1h edge), S1 (no outcome),
    # U1 yes -> 2/3 with 1 without. not reached: B6 (none), B7 no, S2 (none) -> 0/1 with 2 without.
    table = {row.bucket: (row.calls, row.conversion, row.no_outcome) for row in report.conversion}
    assert table == {"≤15m": (3, Rate(2, 3), 0), "15m–1h": (4, Rate(2, 3), 1), "1h–4h": (0, Rate(0, 0), 0),
                     "4h–1d": (0, Rate(0, 0), 0), ">1d": (0, Rate(0, 0), 0), "not reached": (3, Rate(0, 1), 2)}
    high = {row.bucket: (row.calls, row.conversion) for row in report.conversion_high}
    assert (high["≤15m"], high["15m–1h"], high["not reached"]) == (
        (3, Rate(2, 3)), (2, Rate(1, 2)), (2, Rate(0, 1)))

    # Revenue at risk. R = mean revenue of converted high-intent misses = (500 + 300 + 400) / 3 = 400.
    # Breached: B4, B5 in 15m-1h (c = 1/2), B6, B7 not reached (c = 0/1 = 0); reference c_ref = 2/3.
    # point = 400 * (2 * (2/3 - 1/2) + 2 * (2/3 - 0)) = 400 * 5/3 = 666.67
    risk = report.revenue_at_risk
    assert (risk.revenue_per_conversion, risk.breached, risk.priced) == (400.0, 4, 4)
    assert risk.point == pytest.approx(2000 / 3) and risk.lost_conversions == pytest.approx(5 / 3)
    assert risk.low <= risk.point <= risk.high
    # The bootstrap's exact distribution: c_ref* ~ Binomial(3, 2/3)/3, c_15m-1h* ~ Binomial(2, 1/2)/2, the
    # not-reached bucket is one 0. risk* = 400 * (2 * max(0, c_ref* - c*) + 2 * c_ref*) is 0 with probability
    # P(c_ref* = 0) = 1/27 = 3.7% (> 2.5%) and 1600 (c_ref* = 1, c* = 0) with 8/27 * 1/4 = 7.4% (> 2.5%):
    # the 95 % interval is [0, 1600], which 2000 seeded resamples reproduce.
    wide = _report(store, by="segment", resamples=2000, seed=7).revenue_at_risk
    assert (wide.low, wide.high) == (pytest.approx(0.0), pytest.approx(1600.0))
    assert any("400.00 (mean revenue of the 3 converted high-intent misses)" in a for a in risk.assumptions)
    assert any("(2/3 66.7%)" in a for a in risk.assumptions)
    # The same seed gives the same range; the flag's revenue scales it.
    assert _report(store, by="segment").revenue_at_risk == risk
    assert _report(store, by="segment", revenue_per_conversion=1000.0).revenue_at_risk.point == pytest.approx(
        5000 / 3)

    by_source = _report(store, by="source")
    assert [g.key for g in by_source.groups] == ["google_ads", "facebook", "(none)"]
    google = by_source.group("google_ads")  # B1 B2 B3 B6 B7 N1
    assert (google.missed, google.owed, google.attempted, google.completed, google.sla_met, google.breached) == (
        6, 5, Rate(4, 5), Rate(3, 5), Rate(3, 5), 2)


def test_revenue_at_risk_is_exact_when_every_resample_agrees(tmp_path):
    """A degenerate fixture: the three misses reached within 15 min all converted and the two breached
    ones, never reached, did not; every resample then has c_ref = 1 and c = 0, so the range is one
    point: R * 2 = 700 for R = 350."""
    s = open_store(f"sqlite:///{tmp_path / 'calls.db'}")
    log = CallbackLog(s)
    for i in range(3):
        _miss(log, f"fast{i}", "buying", at(10 + i), attempts=((at(10 + i, 5), True),), outcome=(True, 350.0))
    for i in range(2):
        _miss(log, f"late{i}", "buying", at(14 + i), attempts=((at(15 + i), False),), outcome=(False, None))
    risk = _report(s, by="segment").revenue_at_risk
    assert (risk.point, risk.low, risk.high) == (pytest.approx(700.0), pytest.approx(700.0), pytest.approx(700.0))
    # Without any revenue to go on, the range is refused rather than guessed.
    log.store.correct_outcome(Outcome("fast0", True, occurred_at=at(10)), "no revenue known")
    for i in (1, 2):
        log.store.correct_outcome(Outcome(f"fast{i}", True, occurred_at=at(10 + i)), "no revenue known")
    refused = _report(s, by="segment").revenue_at_risk
    assert refused.point is None and "--revenue-per-conversion" in refused.reason
    s.close()


def test_report_callbacks_cli_prints_the_tables_and_writes_the_page(tmp_path, capsys):
    from callintent.cli import main

    url = f"sqlite:///{tmp_path / 'calls.db'}"
    s = open_store(url)
    _fixture(s)
    s.close()
    policy = tmp_path / "policy.yaml"
    policy.write_text("callbacks:\n  business_hours: {timezone: UTC, open: '09:00', close: '17:00'}\n")
    page = tmp_path / "out" / "callbacks.html"
    assert main(["report", "callbacks", "--db", url, "--policy", str(policy), "--since", "2026-11-10",
                 "--until", "2026-11-11T00:00Z", "--by", "segment", "--revenue-per-conversion", "400",
                 "--html", str(page)]) == 0
    out = capsys.readouterr().out
    buying = next(line for line in out.splitlines() if line.startswith("buying "))
    assert buying.split() == ["buying", "7", "7", "7", "6/7", "85.7%", "5/7", "71.4%", "3/7", "42.9%", "4", "0"]
    assert "666.67 (range" in out and "Assumptions:" in out and "--revenue-per-conversion" in out
    assert "B4" in out and "c.diaz" in out
    html = page.read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html and html.count("data:image/png;base64,") == 1
    assert 'id="risk-assumptions"' in html and "666.67" in html and 'href="calls.html"' in html
    assert '<tr data-key="B4"><td>B4</td><td>buying</td><td>facebook</td><td>c.diaz</td><td>sales</td>' in html

    assert main(["report", "callbacks", "--db", url, "--since", "7d", "--by", "campaign"]) == 2
    assert "--by campaign: the callbacks report groups by source or segment" in capsys.readouterr().err


@pytest.mark.parametrize(("yaml_text", "names"), [
    ("callbacks:\n  intents:\n    buying: {priority: 1, sla: soon}\n", "sla must be a positive duration"),
    ("callbacks:\n  intents:\n    vip: {priority: 1, sla: 5m}\n", "unknown intent segment 'vip'"),
    ("callbacks:\n  intents:\n    buying: {priority: 1}\n", "priority and sla are set together"),
    ("callbacks:\n  business_hours: {open: 8:00}\n", "business_hours.open must be a string"),  # YAML reads 480
    ("callbacks:\n  business_hours: {open: '25:00'}\n", "business_hours.open must be a quoted"),
    ("callbacks:\n  business_hours: {timezone: Mars/Olympus}\n", "IANA time zone"),
    ("callbacks:\n  delay_buckets: [1h, 15m]\n", "strictly ascending"),
    ("callbacks:\n  sla_clock: business\n", "unknown key 'callbacks.sla_clock'"),
])
def test_a_bad_callbacks_section_is_refused_naming_the_key(tmp_path, yaml_text, names):
    from callintent.config import ConfigError
    from serving.callbacks import load_callback_policy
    from serving.policy import DecisionPolicy

    path = tmp_path / "policy.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=names):  # the service loads it in wire(): it refuses to start
        load_callback_policy(path)
    DecisionPolicy.from_yaml(path)  # the decision policy skips the section (serving.policy.OTHER_SECTIONS)


def test_the_built_in_policy_file_carries_the_callback_terms():
    from serving.callbacks import load_callback_policy

    policy = load_callback_policy()
    assert {k: (t.priority, t.sla, t.queue) for k, t in policy.intents.items()} == {
        "buying": (1, "15m", "sales"), "unknown": (2, "1h", "sales"), "service": (3, "4h", "support"),
        "informational": (4, "1d", "front_desk"), "noise": (None, None, "")}
    assert policy.business_hours.describe() == "mon/tue/wed/thu/fri 08:00–18:00 America/New_York"


def test_business_hours_follow_the_local_clock():
    hours = BusinessHours(timezone="America/New_York", open="08:00", close="18:00")
    assert hours.contains(dt.datetime(2026, 11, 10, 13, 0))       # Tue 08:00 EST
    assert not hours.contains(dt.datetime(2026, 11, 10, 12, 59))  # Tue 07:59 EST
    assert not hours.contains(dt.datetime(2026, 11, 10, 23, 0))   # Tue 18:00 EST: closed
    assert not hours.contains(dt.datetime(2026, 11, 14, 15, 0))   # Saturday
