"""Rolling update and promotion across two replicas behind HAProxy under live calls and /score: the figures.

The scenarios of ``tests/test_replicas.py`` (``tests/replica_harness.py``: a throwaway PostgreSQL call
log, two ``callintent serve`` replicas sharing it and one registry, HAProxy from Debian in front),
run longer: ``--rounds`` restarts, each replica in turn (a whole rolling update with the default 2),
each round with more and longer calls. Per round it prints the calls open at the SIGTERM, where
calls and requests went, how long the balancer took to take the replica out and bring it back, and
records expected / written / lost in PostgreSQL.

With ``--promote`` the replicas serve an ``s3://`` registry on moto's S3 server (the model of
``--registry``, or the tiny one, stored twice: v1 in production, v2) and watch its ``production``
alias every ``--watch-seconds``; before the restarts, ``callintent models promote`` moves it to v2
while ``--calls`` calls are open and ``/score`` traffic runs. It prints the calls open at the
promotion, calls and ``/score`` answers on v1 / v2, seconds until each replica switched, records
written and lost.

Exits 1 if anything was lost, a started call had no final event, a replica got no calls, an open
call changed model, or a replica did not switch.

    python -m bench.replicas                               # the tiny keyword model, 2 rounds (~3 min)
    python -m bench.replicas --promote                     # a promotion, then the 2 restarts
    python -m bench.replicas --promote --rounds 0          # the promotion alone
    python -m bench.replicas --registry models/registry --calls 6 --seconds 15 --rounds 4
    python -m bench.replicas --json replicas.json          # the figures as JSON too

Run from the repository root (it uses the test harness in ``tests/``); needs espeak-ng, sox,
PostgreSQL and HAProxy (``.ci/run`` installs them), and ``moto[server]`` for ``--promote``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

CALLER = ("hi, I saw your ad, how much would a new roof cost? we have a leak over the kitchen, "
          "can someone come out tomorrow morning to give me a quote")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", default=None, help="registry both replicas serve (default: the tiny "
                                                         "keyword model of the tests, built here)")
    parser.add_argument("--rounds", type=int, default=2, help="restarts, replicas in turn (default %(default)s)")
    parser.add_argument("--calls", type=int, default=6,
                        help="real-time calls open at each restart (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=12.0,
                        help="length of each call's audio (default %(default)s)")
    parser.add_argument("--score-interval", type=float, default=0.05, help="pause between /score requests")
    parser.add_argument("--promote", action="store_true",
                        help="serve an s3:// registry (moto) and promote v1 -> v2 under traffic "
                             "before the restarts")
    parser.add_argument("--watch-seconds", type=float, default=1.0,
                        help="model_watch_seconds of the replicas with --promote (default %(default)s)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness lives in tests/
    from speech.audio import decode_audio
    from tests.conftest import speak
    from tests.pg_harness import postgres_bin_dir, postgres_cluster
    from tests.replica_harness import haproxy_binary, promotion, replica_cluster, rolling_restart
    from tests.server_harness import pcm16_frames, tiny_registry

    bin_dir = postgres_bin_dir()
    if bin_dir is None or haproxy_binary() is None:
        raise SystemExit("needs PostgreSQL and HAProxy: apt-get install postgresql haproxy")
    root = Path(tempfile.mkdtemp(prefix="callintent-replicas-"))
    rounds: list[dict] = []
    promoted: dict | None = None
    failed = False
    try:
        audio = decode_audio(speak(CALLER, root / "caller.wav", pad_seconds=args.seconds))
        audio = audio[:int(args.seconds * 16000)]
        frames = pcm16_frames(audio)
        registry = args.registry or tiny_registry(root)
        with contextlib.ExitStack() as stack:
            pg = stack.enter_context(postgres_cluster(bin_dir))
            overrides, env, new = {}, {}, ""
            if args.promote:
                registry, env, new = _s3_registry(stack, registry)
                overrides = {"model_watch_seconds": args.watch_seconds}
            cluster = stack.enter_context(replica_cluster(root, registry=registry, overrides=overrides,
                                                          env=env, call_log_url=pg.create_database()))
            if args.promote:
                promo = asyncio.run(promotion(cluster, frames, new, calls_before=args.calls,
                                              calls_after=args.calls, score_interval=args.score_interval,
                                              prefix="promote-"))
                promoted = promo.figures()
                switched = promo.seconds_to_switch()
                wrong_calls, wrong_scores = promo.wrong_calls(), promo.wrong_scores()
                problems = [*(["records lost"] if promo.lost_calls else []),
                            *([f"wrong model: {wrong_calls}"] if wrong_calls else []),
                            *([f"/score wrong model: {wrong_scores}"] if wrong_scores else []),
                            *([f"not switched: {switched}"] if None in switched.values() else []),
                            *(["a replica had no open call"] if len(promo.open_at_promotion) < 2 else []),
                            *(["a call closed before the switch"]
                              if len(promo.open_across_switch()) < len(promo.before) else []),
                            *([f"no final event: {[c.call_id for c in promo.calls if c.final is None]}"]
                              if any(c.final is None for c in promo.calls) else [])]
                promoted["problems"] = problems
                failed |= bool(problems)
                print(f"promotion: {json.dumps(promoted)}", flush=True)
            for i in range(args.rounds):
                victim = cluster.names[i % len(cluster.names)]
                report = asyncio.run(rolling_restart(cluster, frames, calls_before=args.calls,
                                                     calls_during=max(2, args.calls // 2), calls_after=args.calls,
                                                     score_interval=args.score_interval, victim=victim,
                                                     prefix=f"round{i}-"))
                figures = report.figures()
                problems = [*(["records lost"] if report.lost_calls else []),
                            *(["outcomes lost"] if report.lost_outcomes else []),
                            *([f"no final event: {report.missing_finals}"] if report.missing_finals else []),
                            *(["a replica got no calls"] if len(report.by_replica(report.before)) < 2 else []),
                            *(["no call open on the restarted replica"] if report.open_at_term == 0 else []),
                            *(["a call never started"] if not all(c.started for c in report.calls) else [])]
                figures["problems"] = problems
                failed |= bool(problems)
                rounds.append(figures)
                print(f"round {i + 1}: {json.dumps(figures)}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    total = {key: sum(r[key] for r in rounds) for key in ("calls_open_at_sigterm", "calls_made", "finals_received",
                                                            "score_requests", "outcomes_sent", "records_expected",
                                                            "records_written", "records_lost", "outcomes_lost")}
    if rounds:
        print(f"total: {json.dumps(total)}")
    if args.json:
        figures_json = {"promotion": promoted, "rounds": rounds, "total": total}
        Path(args.json).write_text(json.dumps(figures_json, indent=1))
    return 1 if failed else 0


def _s3_registry(stack: contextlib.ExitStack, source: str | Path) -> tuple[str, dict[str, str], str]:
    """An ``s3://`` registry on moto's server holding ``source``'s production model twice (v1 in
    production): its URL, the environment that reaches it, and the version to promote."""
    import os

    from models.registry import Registry
    from tests.s3_harness import s3_server

    s3 = stack.enter_context(s3_server())
    env = {**s3.env(), "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_CONFIG_FILE": os.devnull}
    os.environ.update(env)  # this process registers and promotes too
    url = f"s3://{s3.create_bucket()}/registry"
    registry = Registry(url)
    artifact = Registry(source).resolve("production")
    v1, v2 = registry.register(artifact), registry.register(artifact)
    registry.promote(v1, force=True, reason="bench: v1 in production")
    return url, env, v2


if __name__ == "__main__":
    raise SystemExit(main())
