"""Two replicas behind HAProxy with one PostgreSQL call log: a rolling restart under live calls and
``/score`` traffic loses nothing, and the load balancer spreads calls (``tests/replica_harness.py``).

Real processes throughout: PostgreSQL (``tests/pg_harness.py``), two ``callintent serve`` with the
tiny keyword model and the bundled ASR, HAProxy from Debian; speech from espeak-ng.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.pg_harness import PgServer, pg_server  # noqa: F401 - fixture
from tests.replica_harness import replica_cluster, require_haproxy, rolling_restart
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
