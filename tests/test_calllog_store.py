"""The call log on real SQLite and real PostgreSQL: schema, records, outcome idempotency, orphans,
the report's figures (computed by hand below), the training export, and the write-behind writer."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest
from calllog_fixtures import WINDOW_END, WINDOW_START, record

from serving.calllog.records import Outcome
from serving.calllog.store import CallLogStore, open_store
from tests.pg_harness import call_log_url, pg_server  # noqa: F401 - fixtures


@pytest.fixture
def store(call_log_url):  # noqa: F811
    s = open_store(call_log_url)
    yield s
    s.close()


def at(minute: int) -> dt.datetime:
    return WINDOW_START + dt.timedelta(minutes=minute)


# ---------------------------------------------------------------------------------------------
# Schema and records


def test_migrations_build_exactly_the_tables_the_code_uses(store):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from serving.calllog.store import VERSION_TABLE, metadata

    assert store.migrate() == "0004"  # idempotent: upgrade head again changes nothing
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    assert [d for d in diff if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)] == []


def test_sqlite_log_runs_in_wal_mode(tmp_path):
    s = open_store(f"sqlite:///{tmp_path / 'deep' / 'calls.db'}")  # the folder is created
    with s.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    s.close()


def test_a_record_reads_back_field_for_field(store):
    original = record("c-1", "buying", source="google", campaign="spring", decision_seconds=4.25,
                      transcript="my number is [PHONE]", signals=("price_inquiry", "urgency"), industry="hvac")
    assert store.write_calls([original]) == 1
    logged = store.get("c-1")
    assert logged.call == original
    assert logged.outcome is None and not logged.orphan
    assert logged.call.present_signals == ("price_inquiry", "urgency")
    assert store.get("nope") is None


def test_scoring_a_call_id_again_replaces_its_record(store):
    store.write_calls([record("c-1", "service", minute=1)])
    store.write_calls([record("c-1", "noise", minute=2), record("c-2", "buying"), record("c-2", "informational")])
    assert store.count_calls() == 2
    assert store.get("c-1").call.label == "noise"
    assert store.get("c-2").call.label == "informational"  # the later one in the same batch wins


def test_count_calls_by_call_id_prefix(store):
    store.write_calls([record("soak-a-1", "service"), record("soak-a-score-2", "buying"), record("soak-b-1", "noise"),
                       record("soak_a-3", "noise")])
    assert store.count_calls() == 4
    assert store.count_calls("soak-a-") == 2
    assert store.count_calls("soak_a") == 1  # "_" is a literal, not LIKE's one-character wildcard
    assert store.count_calls("nobody-") == 0


# ---------------------------------------------------------------------------------------------
# Outcomes


def test_outcomes_are_idempotent_and_a_different_one_conflicts(store):
    store.write_calls([record("c-1", "buying")])
    first = Outcome("c-1", True, revenue=420.0, disposition="sold", agent="a.lee", queue="sales", occurred_at=at(5))
    created = store.record_outcome(first)
    assert (created.status, created.call_logged) == ("created", True)

    again = store.record_outcome(Outcome("c-1", True, revenue=420.0, disposition="sold", agent="a.lee",
                                         queue="sales", occurred_at=at(5)))
    assert again.status == "unchanged"
    # A retry that does not repeat the time matches the recorded one too.
    assert store.record_outcome(Outcome("c-1", True, revenue=420.0, disposition="sold", agent="a.lee",
                                        queue="sales")).status == "unchanged"

    conflict = store.record_outcome(Outcome("c-1", False, disposition="no_sale", occurred_at=at(6)))
    assert conflict.status == "conflict"
    assert conflict.outcome.converted is True and conflict.outcome.revenue == 420.0  # nothing changed
    stored = store.get("c-1").outcome
    assert (stored.converted, stored.revenue, stored.disposition, stored.occurred_at) == (True, 420.0, "sold", at(5))


def test_an_orphan_outcome_is_reconciled_when_its_call_arrives(store):
    early = store.record_outcome(Outcome("late-call", False, disposition="no_answer", occurred_at=at(3)))
    assert (early.status, early.call_logged) == ("created", False)
    assert store.get("late-call").orphan
    assert [o.call_id for o in store.orphan_outcomes()] == ["late-call"]
    assert store.calls() == []

    store.write_calls([record("late-call", "buying", minute=2)])
    assert store.orphan_outcomes() == []
    logged = store.get("late-call")
    assert not logged.orphan and logged.call.label == "buying" and logged.outcome.disposition == "no_answer"
    (joined,) = store.calls()
    assert joined.outcome is not None and joined.outcome.converted is False
    # The CRM retrying now sees the call.
    assert store.record_outcome(Outcome("late-call", False, disposition="no_answer")).call_logged


def test_purge_deletes_old_calls_their_outcomes_and_old_orphans_only(store, capsys):
    store.write_calls([record("old-1", "buying", minute=1), record("old-2", "service", minute=2),
                       record("new-1", "buying", minute=10)])
    store.record_outcome(Outcome("old-1", True, revenue=10.0, occurred_at=at(5), received_at=at(30)))
    store.record_outcome(Outcome("new-1", True, occurred_at=at(11), received_at=at(12)))
    store.record_outcome(Outcome("orphan-old", False, occurred_at=at(3), received_at=at(4)))
    store.record_outcome(Outcome("orphan-new", False, occurred_at=at(8), received_at=at(9)))

    assert store.purge(at(5), dry_run=True) == (2, 2)  # old-1, old-2; old-1's outcome, orphan-old
    assert store.count_calls() == 3
    assert store.purge(at(5)) == (2, 2)
    assert [c.call_id for c in store.calls()] == ["new-1"] and store.get("new-1").outcome is not None
    assert store.get("old-1") is None and store.get("orphan-old") is None
    assert [o.call_id for o in store.orphan_outcomes()] == ["orphan-new"]
    assert store.purge(at(5)) == (0, 0)


def test_purge_cli(tmp_path, capsys):
    from callintent.cli import main
    from serving.calllog.records import utc_now

    url = f"sqlite:///{tmp_path / 'calls.db'}"
    s = open_store(url)
    s.write_calls([record("ancient", "noise", logged_at=utc_now() - dt.timedelta(days=100)),
                   record("recent", "buying", logged_at=utc_now() - dt.timedelta(days=2))])
    s.close()
    assert main(["calls", "purge", "--before", "90d", "--dry-run", "--db", url]) == 0
    assert "would delete 1 calls and 0 outcomes logged before" in capsys.readouterr().out
    assert main(["calls", "purge", "--before", "90d", "--db", url]) == 0
    assert "deleted 1 calls" in capsys.readouterr().out
    s = open_store(url)
    assert [c.call_id for c in s.calls()] == ["recent"]
    s.close()
    assert main(["calls", "purge", "--before", "last tuesday", "--db", url]) == 2
    assert "--before 'last tuesday'" in capsys.readouterr().err


def test_a_correction_replaces_the_outcome_and_keeps_what_it_was(store):
    store.write_calls([record("sold", "buying", minute=1)])
    store.record_outcome(Outcome("sold", True, revenue=99.0, disposition="sold", occurred_at=at(2)))
    previous, logged = store.correct_outcome(Outcome("sold", False, disposition="cancelled", occurred_at=at(2),
                                                     received_at=at(40)), "customer cancelled")
    assert logged and previous.converted is True and previous.revenue == 99.0
    assert store.get("sold").outcome.disposition == "cancelled"
    (kept,) = store.corrections("sold")
    assert kept["reason"] == "customer cancelled" and kept["previous"]["revenue"] == 99.0
    assert kept["current"]["converted"] is False and kept["corrected_at"].endswith("Z")
    # a correction for a call with no outcome yet records it (and is kept too)
    previous, logged = store.correct_outcome(Outcome("unknown", True), "entered by hand")
    assert previous is None and not logged and store.get("unknown").orphan
    assert len(store.corrections("unknown")) == 1
    # purging the call takes its outcome and its corrections
    store.purge(at(5))
    assert store.get("sold") is None and store.corrections("sold") == []


def test_a_log_at_the_first_schema_upgrades_in_place(tmp_path):
    from alembic import command
    from alembic.config import Config

    from serving.calllog.store import MIGRATIONS_DIR

    store = CallLogStore(f"sqlite:///{tmp_path / 'old.db'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    store.write_calls([record("kept", "buying", minute=1)])
    assert store.migrate() == "0004"
    assert [c.call_id for c in store.calls()] == ["kept"] and store.corrections("kept") == []
    store.close()


def test_outcomes_from_many_threads_record_exactly_one(store):
    store.write_calls([record("c-1", "buying")])
    results = []

    def post(converted: bool) -> None:
        results.append(store.record_outcome(Outcome("c-1", converted, occurred_at=at(9))).status)

    threads = [threading.Thread(target=post, args=(i % 2 == 0,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("created") == 1
    assert results.count("created") + results.count("unchanged") + results.count("conflict") == 8
    winner = store.get("c-1").outcome.converted
    assert results.count("unchanged") == sum(1 for i in range(8) if (i % 2 == 0) == winner) - 1


# ---------------------------------------------------------------------------------------------
# The report, on a log whose figures are worked out by hand


def _constructed_log(store: CallLogStore) -> None:
    """google: 5 calls, facebook: 3, no source: 1, one call before the window, two orphans."""
    store.write_calls([
        record("g1", "buying", source="google", campaign="spring", minute=1, decision_seconds=2.0),
        record("g2", "buying", source="google", campaign="spring", minute=2, decision_seconds=4.0),
        record("g3", "buying", source="google", campaign="fall", minute=3, decision_seconds=6.0),
        record("g4", "service", source="google", minute=4, channel="score"),
        record("g5", "informational", source="google", minute=5, decision_seconds=10.0),
        record("f1", "buying", source="facebook", campaign="spring", minute=6, decision_seconds=3.0),
        record("f2", "noise", source="facebook", minute=7, channel="score"),
        record("f3", "buying", source="facebook", minute=8, decision_seconds=5.0),
        record("n1", "service", minute=9, channel="score"),
        record("old", "buying", source="google", logged_at=WINDOW_START - dt.timedelta(hours=1), decision_seconds=1.0),
    ])
    for outcome in (Outcome("g1", True, revenue=100.0), Outcome("g2", False), Outcome("g4", False),
                    Outcome("g5", True, revenue=50.0), Outcome("f1", False), Outcome("f3", True, revenue=200.0),
                    Outcome("old", True, revenue=999.0),
                    Outcome("x1", True, occurred_at=at(30)),                                   # orphan, in window
                    Outcome("x2", True, occurred_at=WINDOW_START - dt.timedelta(days=2))):     # orphan, before
        store.record_outcome(outcome)


def test_report_figures_match_the_hand_computed_ones(store):
    from serving.calllog.report import ORPHAN_ROW, Rate, build_report

    _constructed_log(store)
    report = build_report(store, by="source", since=WINDOW_START, until=WINDOW_END)
    assert [g.key for g in report.groups] == ["google", "facebook", "(none)", ORPHAN_ROW]

    google = report.group("google")
    assert google.calls == 5
    assert google.buying_share == Rate(3, 5)
    assert google.buying_conversion == Rate(1, 2)     # g1 yes, g2 no; g3 has no outcome
    assert google.other_conversion == Rate(1, 2)      # g4 no, g5 yes
    assert google.handoff_gap == 1                    # g2
    assert google.buying_no_outcome == 1              # g3
    assert google.revenue == pytest.approx(150.0)
    # decisions 2, 4, 6, 10 s: p50 = (4 + 6) / 2; p90 at rank 0.9 * 3 = 2.7 -> 6 + 0.7 * (10 - 6)
    assert (google.decision.count, google.decision.p50, google.decision.p90) == (4, pytest.approx(5.0),
                                                                                  pytest.approx(8.8))

    facebook = report.group("facebook")
    assert (facebook.calls, facebook.buying_share, facebook.buying_conversion) == (3, Rate(2, 3), Rate(1, 2))
    assert facebook.other_conversion == Rate(0, 0) and facebook.other_conversion.value is None
    assert (facebook.handoff_gap, facebook.buying_no_outcome) == (1, 0)
    assert (facebook.decision.p50, facebook.decision.p90) == (pytest.approx(4.0), pytest.approx(4.8))  # 3, 5 s

    nothing = report.group("(none)")
    assert (nothing.calls, nothing.buying_share, nothing.decision.p50) == (1, Rate(0, 1), None)
    assert report.group(ORPHAN_ROW).orphans == 1     # x1 only: x2 happened before the window

    total = report.total
    assert (total.calls, total.buying_share, total.buying_conversion, total.other_conversion) == (
        9, Rate(5, 9), Rate(2, 4), Rate(1, 2))
    assert (total.handoff_gap, total.buying_no_outcome, total.orphans) == (2, 1, 1)
    assert total.revenue == pytest.approx(350.0)     # "old" is outside the window
    # decisions 2, 3, 4, 5, 6, 10 s: p50 = 4.5; p90 at rank 4.5 -> 6 + 0.5 * 4
    assert (total.decision.p50, total.decision.p90) == (pytest.approx(4.5), pytest.approx(8.0))

    by_campaign = build_report(store, by="campaign", since=WINDOW_START, until=WINDOW_END)
    spring = by_campaign.group("spring")
    assert (spring.calls, spring.buying_conversion, spring.handoff_gap) == (3, Rate(1, 3), 2)  # g1 yes; g2, f1 no


def test_report_cli_prints_the_table_and_writes_the_page(tmp_path, capsys):
    from callintent.cli import main

    url = f"sqlite:///{tmp_path / 'calls.db'}"
    s = open_store(url)
    _constructed_log(s)
    s.close()
    page = tmp_path / "out" / "calls.html"
    assert main(["report", "calls", "--db", url, "--since", "2026-11-10", "--until", "2026-11-11T00:00Z",
                 "--by", "source", "--html", str(page)]) == 0
    lines = capsys.readouterr().out.splitlines()
    google = next(line for line in lines if line.startswith("google"))
    assert google.split() == ["google", "5", "3/5", "60.0%", "1/2", "50.0%", "1/2", "50.0%", "1", "1", "5.0", "8.8", "0"]
    total = next(line for line in lines if line.startswith("all"))
    assert total.split()[:4] == ["all", "9", "5/9", "55.6%"] and total.split()[-1] == "1"

    html = page.read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html      # self-contained
    assert html.count("data:image/png;base64,") == 2
    assert html.count("<figcaption>") == 2 and "Time to decision" in html
    assert '<tr data-key="google"><td>google</td><td class="n">5</td><td class="n">3/5 60.0%</td>' in html
    assert "--bad: #cf222e" in html                                  # the QA report's stylesheet
    assert '<a href="callbacks.html">missed calls and callbacks report</a>' in html  # the callbacks report
    assert any(line.startswith("missed calls are not counted here: callintent report callbacks") for line in lines)

    assert main(["report", "calls", "--db", url, "--since", "yesterday"]) == 2
    assert "--since 'yesterday'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Export to training rows


def test_export_labels_rows_from_qa_corrections_or_the_model(store, tmp_path):
    from evaluation.calls_export import export_calls

    store.write_calls([
        record("e1", "buying", source="google", transcript="how much for a new roof", signals=("price_inquiry",),
               minute=1, industry="roofing"),
        record("e2", "service", transcript="my bill is wrong", signals=("existing_customer",), minute=2),
        record("e3", "noise", transcript="press one now", minute=3),
        record("e4", "buying", transcript=None, minute=4),                      # transcript not logged
        record("e5", "buying", transcript="   ", minute=5),                     # nothing heard
        record("e6", "buying", transcript="word " * 151, minute=6),             # over DEFAULT_MAX_WORDS
    ])
    store.record_outcome(Outcome("e1", True, revenue=80.0))
    fixes = tmp_path / "fixes.jsonl"
    fixes.write_text("\n".join(json.dumps(r) for r in (
        {"call_id": "e2", "label": "buying", "signals": ["quote_request"]},
        {"call_id": "e3", "label": "service"},
        {"call_id": "zz", "label": "noise"})) + "\n", encoding="utf-8")

    report = export_calls(store, tmp_path / "calls.jsonl", corrections=[fixes])
    assert (report.rows, report.qa_labeled, report.model_labeled, report.with_outcome) == (3, 2, 1, 1)
    assert (report.no_transcript, report.unusable_transcript, report.unused_corrections) == (1, 2, 1)
    rows = {r["call_id"]: r for r in map(json.loads, (tmp_path / "calls.jsonl").read_text().splitlines())}
    assert rows["e1"]["label"] == "buying" and rows["e1"]["label_source"] == "model"
    assert rows["e1"]["signals"] == ["price_inquiry"] and rows["e1"]["industry"] == "roofing"
    assert rows["e1"]["outcome"]["converted"] is True and rows["e1"]["origin"] == "call_log"
    assert (rows["e2"]["label"], rows["e2"]["signals"], rows["e2"]["label_source"]) == ("buying", ["quote_request"], "qa")
    assert rows["e2"]["model_label"] == "service"
    # QA changed the label without naming signals: the model's signals no longer apply.
    assert (rows["e3"]["label"], rows["e3"]["signals"]) == ("service", None)


def test_a_bad_corrections_file_names_file_line_and_field(tmp_path):
    from evaluation.calls_export import CorrectionsFileError, read_corrections

    bad = tmp_path / "fixes.jsonl"
    bad.write_text('{"call_id": "a", "label": "buying"}\n{"call_id": "b", "label": "sales"}\n', encoding="utf-8")
    with pytest.raises(CorrectionsFileError, match=r"fixes.jsonl:2: label: 'sales'"):
        read_corrections([bad])


# ---------------------------------------------------------------------------------------------
# The write-behind writer


class FlakySink:
    """A store that fails ``failures`` times with a transient error, can be held, and remembers writes."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.written: list[str] = []
        self.attempts = 0
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # set once a write has reached the (maybe held) database

    def migrate(self) -> str:
        return "0001"

    def write_calls(self, records):
        import sqlalchemy.exc

        self.entered.set()
        self.gate.wait()
        self.attempts += 1
        if self.failures > 0:
            self.failures -= 1
            raise sqlalchemy.exc.OperationalError("INSERT", {}, ConnectionRefusedError("database is down"))
        if any(r.call_id.startswith("bad") for r in records):
            raise sqlalchemy.exc.IntegrityError("INSERT", {}, ValueError("rejected"))
        self.written.extend(r.call_id for r in records)
        return len(records)


def test_writer_never_blocks_counts_drops_and_drains_on_close():
    from serving.calllog.writer import CallLogWriter

    sink = FlakySink()
    sink.gate.clear()  # the database hangs
    writer = CallLogWriter(sink, queue_size=5, batch_size=100, flush_seconds=0.0)
    accepted = [writer.submit(record("c0", "buying"))]
    assert sink.entered.wait(5)  # the thread holds a batch of one record in the hung database
    started = time.perf_counter()
    accepted += [writer.submit(record(f"c{i}", "buying")) for i in range(1, 20)]
    assert time.perf_counter() - started < 0.5  # submit never waits for the database
    # 5 more queue behind it; the other 14 are dropped and counted, never waited for.
    assert accepted == [True] * 6 + [False] * 14 and writer.stats().dropped == 14
    sink.gate.set()
    stats = writer.close(timeout=5)
    assert stats.written == accepted.count(True) and stats.dropped == accepted.count(False) and stats.queued == 0
    assert sorted(sink.written) == sorted(f"c{i}" for i, ok in enumerate(accepted) if ok)


def test_writer_retries_a_database_outage_with_backoff():
    from serving.calllog.writer import CallLogWriter

    sink = FlakySink(failures=3)
    writer = CallLogWriter(sink, flush_seconds=0.0, retry_max_seconds=0.2)
    for i in range(3):
        writer.submit(record(f"c{i}", "buying"))
    stats = writer.close(timeout=10)
    assert (stats.written, stats.dropped, stats.errors) == (3, 0, 3)
    assert sorted(sink.written) == ["c0", "c1", "c2"]


def test_writer_drops_only_the_row_the_database_rejects():
    from serving.calllog.writer import CallLogWriter

    sink = FlakySink()
    sink.gate.clear()
    writer = CallLogWriter(sink, flush_seconds=0.0)
    for call_id in ("a", "bad-1", "b"):
        writer.submit(record(call_id, "buying"))
    sink.gate.set()
    stats = writer.close(timeout=5)
    assert sorted(sink.written) == ["a", "b"] and (stats.written, stats.dropped) == (2, 1)


def test_writer_gives_up_at_shutdown_when_the_database_stays_down():
    from serving.calllog.writer import CallLogWriter

    sink = FlakySink(failures=10**6)
    writer = CallLogWriter(sink, flush_seconds=0.0, retry_max_seconds=0.1)
    for i in range(4):
        writer.submit(record(f"c{i}", "buying"))
    started = time.perf_counter()
    stats = writer.close(timeout=0.5)
    assert time.perf_counter() - started < 3
    assert (stats.written, stats.dropped) == (0, 4) and stats.errors >= 1


def test_service_starts_and_scores_when_postgres_is_unreachable(tmp_path):
    """A database that is down at start: the writer queues, retries, and counts what it loses."""
    from serving.config import CallLogConfig
    from serving.calllog.writer import start_call_log
    from tests.server_harness import free_port

    config = CallLogConfig(url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none", retry_max_seconds=0.1,
                           queue_size=3, flush_seconds=0.0)
    writer = start_call_log(config, config.url)
    assert writer is not None
    assert [writer.submit(record(f"c{i}", "buying")) for i in range(5)].count(False) >= 1
    stats = writer.close(timeout=0.3)
    assert stats.written == 0 and stats.dropped == 5 and stats.errors >= 1


# ---------------------------------------------------------------------------------------------
# Configuration


def test_call_log_config_defaults_env_override_and_errors(tmp_path, monkeypatch):
    from callintent.config import ConfigError
    from serving.config import load_serve_config

    config = load_serve_config(environ={"CALLINTENT_REGISTRY": str(tmp_path / "reg")})
    assert (config.call_log.enabled, config.call_log.url, config.call_log.transcript) == (True, "", "redacted")
    assert config.call_log_url() == f"sqlite:///{tmp_path / 'reg' / 'calls.db'}"
    # No registry configured: the registry's own default root, $CALLINTENT_REGISTRY or models/registry.
    monkeypatch.delenv("CALLINTENT_REGISTRY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert load_serve_config(environ={}).call_log_url() == f"sqlite:///{tmp_path / 'models' / 'registry' / 'calls.db'}"
    monkeypatch.setenv("CALLINTENT_REGISTRY", str(tmp_path / "env-reg"))
    assert load_serve_config(environ={}).call_log_url() == f"sqlite:///{tmp_path / 'env-reg' / 'calls.db'}"
    env = load_serve_config(environ={"CALLINTENT_CALL_LOG_URL": "postgresql+psycopg://u@db/calls",
                                     "CALLINTENT_REGISTRY": str(tmp_path / "reg")})
    assert env.call_log.url == "postgresql+psycopg://u@db/calls" and env.call_log_url() == env.call_log.url
    with pytest.raises(ConfigError, match="transcript must be one of"):
        load_serve_config(environ={}, overrides={"call_log.transcript": "some"})
    with pytest.raises(ConfigError, match="queue_size must be an integer > 0"):
        load_serve_config(environ={}, overrides={"call_log.queue_size": 0})


def test_a_bad_url_is_a_user_error_naming_it():
    from serving.calllog.store import CallLogError, display_url

    with pytest.raises(CallLogError, match="only sqlite and postgresql") as refused:
        CallLogStore("mysql://u:secret@db/x")
    assert "secret" not in str(refused.value)
    assert display_url("postgresql+psycopg://u:secret@db/x") == "postgresql+psycopg://u:***@db/x"
