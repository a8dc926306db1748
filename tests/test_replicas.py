"""Two replicas behind HAProxy with one PostgreSQL call log (``tests/replica_harness.py``): a rolling
restart under live calls and ``/score`` traffic loses nothing, and the load balancer spreads calls;
a promotion in a shared ``s3://`` registry reaches both replicas while no open call changes model.

Real processes throughout: PostgreSQL (``tests/pg_harness.py``), two ``callintent serve`` with the
tiny keyword model and the bundled ASR, HAProxy from Debian, moto's S3 server
(``tests/s3_harness.py``); speech from espeak-ng.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.pg_harness import PgServer, pg_server  # noqa: F401 - fixture
from tests.replica_harness import promotion, replica_cluster, require_haproxy, rolling_restart
from tests.s3_harness import S3Server, s3, s3_env  # noqa: F401 - fixtures
from tests.server_harness import decoded, pcm16_frames, run, serving_tmp, spoken, tiny_registry  # noqa: F401

pytestmark = pytest.mark.integration

CALLER = "hi, I saw your ad, how much would a new roof cost? can someone come out tomorrow to fix it"


def test_rolling_restart_loses_no_call_and_the_balancer_spreads_calls(tmp_path: Path, serving_tmp: Path,  # noqa: F811
                                                                      pg_server: PgServer) -> None:  # noqa: F811
    """SIGTERM one replica while it holds live calls: they get their final event, new calls go to
    the other replica, the restarted one takes calls again, and every started call, answered
    ``/score`` and outcome has its row in the shared PostgreSQL log."""
    require_haproxy()
    frames = pcm16_frames(decoded(spoken(CALLER, tmp_path, pad_seconds=1.0)))  # about 6 s
    with replica_cluster(tmp_path, registry=tiny_registry(serving_tmp),
                         call_log_url=pg_server.create_database()) as cluster:
        report = run(rolling_restart(cluster, frames))
        logs = {name: server.log_text()[-2000:] for name, server in cluster.servers.items()}
    figures = report.figures()
    print(json.dumps(figures, indent=1))  # the closing note's numbers (pytest -s)
    context = f"{json.dumps(figures)}\n{logs}"
    victim, survivor = report.victim, next(name for name in cluster.names if name != report.victim)

    # The balancer spread the first calls over both replicas, and X-Served-By tells the truth.
    before = report.by_replica(report.before)
    assert set(before) == set(cluster.names), context
    assert report.metrics_started == {name: float(before[name]) for name in cluster.names}, context

    # The restart: the victim held open calls; each got its final event and the shutdown close.
    assert report.open_at_term >= 1, context
    victims_calls = [c for c in report.before if c.replica == victim]
    assert len(victims_calls) == report.open_at_term, context
    for call in victims_calls:
        assert call.final is not None and call.close == (1001, "server shutting down"), (call.events[-1:], call.close)
    for call in report.before:
        if call.replica == survivor:
            assert call.final is not None and call.close == (1000, "stop"), (call.events[-1:], call.close)
    assert report.exit_code == 0, context

    # While it was out, new calls went to the other replica; once back, it took calls again.
    assert all(c.started for c in report.during), context
    assert report.by_replica(report.during) == {survivor: len(report.during)}, context
    assert all(c.started for c in report.after), context
    assert report.by_replica(report.after).get(victim, 0) >= 1, context

    # /score never failed through the balancer, and both replicas answered some.
    assert len(report.scores) >= 20, context
    assert {s.status for s in report.scores} == {200}, context
    assert {s.replica for s in report.scores} == set(cluster.names), context
    # 201 recorded; 202 recorded before the call's own row (its writer flushes every 50 ms).
    assert report.expected_outcomes and all(s.outcome_status in (None, 201, 202) for s in report.scores), context

    # Nothing lost: every started call has its final event, every call and outcome its row.
    assert report.missing_finals == [], context
    assert report.lost_calls == set() and report.lost_outcomes == set(), context
    assert len(report.expected_calls) == sum(c.started for c in report.calls) + len(report.scores), context


#: The replicas read the ``production`` alias this often (serve.yaml ``model_watch_seconds``).
WATCH_SECONDS = 1.0


def test_a_promotion_reaches_both_replicas_and_no_open_call_changes_model(
        tmp_path: Path, pg_server: PgServer, s3: S3Server, s3_env: str) -> None:  # noqa: F811
    """Both replicas serve ``production`` of one ``s3://`` registry (moto's server). With calls open
    on both and ``/score`` traffic running, ``callintent models promote`` moves it to v2: each
    replica's ``/readyz`` and ``/metrics`` name v2 within a few polls, the open calls finish on v1
    (every event and their call-log row), new calls and ``/score`` get v2, and every call and
    answer has its row in PostgreSQL."""
    require_haproxy()
    from models.registry import Registry
    from tests.model_fixtures import build_tiny_artifact

    registry_url = f"s3://{s3_env}/registry"
    registry = Registry(registry_url)
    artifact = build_tiny_artifact(tmp_path / "artifact")
    v1, v2 = registry.register(artifact), registry.register(artifact)  # one artifact, two immutable versions
    registry.promote(v1, force=True, reason="test: v1 in production")
    frames = pcm16_frames(decoded(spoken(CALLER, tmp_path, pad_seconds=1.0)))  # about 6 s
    with replica_cluster(tmp_path, registry=registry_url, call_log_url=pg_server.create_database(),
                         overrides={"model_watch_seconds": WATCH_SECONDS}, env=s3.env()) as cluster:
        report = run(promotion(cluster, frames, v2))
        logs = {name: server.log_text()[-2000:] for name, server in cluster.servers.items()}
    figures = report.figures()
    print(json.dumps(figures, indent=1))  # the closing note's numbers (pytest -s)
    context = f"{json.dumps(figures)}\n{logs}"

    # The command moved the shared alias; each replica fetched v2 into its own cache and switched
    # within a few polls: /readyz and /metrics both name v2 (and v1 no longer).
    assert (report.old, report.new) == ("intent/v1", "intent/v2") and registry.aliases()["production"] == "v2"
    for name in cluster.names:
        assert (tmp_path / f"registry-cache-{name}" / s3_env / "registry" / "intent" / "v2").is_dir(), context
    # A poll interval, then the download and load of v2: about 1.3 s on idle cores, 4-5 s on busy ones.
    switch = report.seconds_to_switch()
    assert all(seconds is not None and seconds < WATCH_SECONDS + 10 for seconds in switch.values()), context

    # Calls were open on both replicas at the promotion and stayed open past the switch; each
    # finished on v1, every event and its row (the final event and the row come after the switch).
    assert set(report.open_at_promotion) == set(cluster.names), context
    assert sum(report.open_at_promotion.values()) == len(report.before), context
    assert report.open_across_switch() == [c.call_id for c in report.before], context
    for call in report.calls:
        assert call.final is not None and call.close == (1000, "stop"), (call.call_id, call.events[-1:],
                                                                         call.close)
    assert report.wrong_calls() == {}, context  # before: v1 throughout; after: v2 throughout
    on = (figures["calls_on_old"], figures["calls_on_new"])
    assert on == (len(report.before), len(report.after)), context

    # /score: v1 before, v2 from both replicas once they switched, never back to v1 on a replica.
    assert {s.status for s in report.scores} == {200}, context
    assert report.wrong_scores() == {}, context
    switched = report.all_switched_at
    assert switched is not None
    assert {s.replica for s in report.answered if s.sent_at > switched} == set(cluster.names), context
    assert figures["scores_on_old"] >= 1 and figures["scores_on_new"] >= 2, context

    # Nothing lost: one row per call and per answer in the fresh database, each naming its model.
    assert report.lost_calls == set(), context
    assert len(report.models_logged) == len(report.calls) + len(report.answered), context
