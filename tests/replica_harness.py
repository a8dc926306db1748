"""Two ``callintent serve`` replicas behind a real load balancer, sharing one call log and one registry.

:func:`replica_cluster` starts, on loopback and on ports chosen at run time:

* the replicas: ``callintent serve`` processes as ``tests/server_harness.py`` starts them, both
  serving one registry (a local folder, or an ``s3://`` URL on an S3-compatible server: pass its
  AWS variables in ``env``; each replica gets its own download cache, as each pod would) and
  writing one PostgreSQL call log (``tests/pg_harness.py`` runs the server);
* HAProxy from Debian in front (:data:`HAPROXY_CONFIG`): HTTP and WebSocket on one frontend,
  ``leastconn`` without stickiness (each live call is one connection, so it needs none), a
  health check on ``/readyz`` every 250 ms (a draining replica answers 503 and leaves the pool),
  connection failures retried on the other replica, tunnel timeouts sized for 30-minute calls, and
  an ``X-Served-By`` response header naming the replica, so each call and request knows where it went.

Every process is stopped when the context exits, whatever happened inside.

Two scenarios run on it, each checked by ``tests/test_replicas.py`` and run longer by
``bench/replicas.py``:

:func:`rolling_restart`: live calls (``/v1/stream``, espeak-ng speech) and ``/score`` traffic (each
answer followed by ``POST /calls/{id}/outcome`` for some) through the load balancer, one replica
SIGTERMed while it has open calls, new calls while it is gone, the replica started again and taking
calls. It returns a :class:`RestartReport`: what was sent, where it went, what reached PostgreSQL, lost.

:func:`promotion`: the replicas serve the ``production`` alias of an ``s3://`` registry and watch it
(serve.yaml ``model_watch_seconds``). With live calls open on both replicas and ``/score`` traffic
running, ``callintent models promote`` (the CLI, against the same ``s3://`` URL) moves the alias;
the open calls are held mid-sentence (streaming silence in real time, then the rest of the speech)
until every replica's ``/readyz`` (``X-Callintent-Model``) and ``/metrics``
(``callintent_model_info``) name the new version; then new calls open. It returns a
:class:`PromotionReport`: the model each call's events and call-log row name, each ``/score``
answer's model, how long each replica took to switch, records written and lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.server_harness import Server, free_port, start_server

#: The load balancer. ``%[srv_name]`` names the replica that answered (on the WebSocket upgrade too).
HAPROXY_CONFIG = """\
global
    stats socket {admin_socket} mode 600 level admin
    maxconn 2000

defaults
    mode http
    log stdout format raw local0 info
    option httplog
    timeout connect 2s
    timeout client 30m          # a live call may last 30 minutes
    timeout server 30m
    timeout tunnel 30m          # an upgraded WebSocket is a tunnel
    timeout client-fin 5s
    timeout http-request 10s
    timeout check 2s
    retries 3
    option redispatch 1         # a retried connection goes to the other replica
    retry-on conn-failure empty-response

frontend calls
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance leastconn           # live calls are long connections; no stickiness: one call, one connection
    option httpchk GET /readyz
    http-check expect status 200
    http-response set-header X-Served-By %[srv_name]
    default-server check inter 250ms fall 2 rise 2
{servers}
"""

SERVED_BY = "X-Served-By"


def haproxy_binary() -> str | None:
    """The ``haproxy`` binary (Debian puts it in /usr/sbin, off a user's PATH), or None."""
    return shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if Path(p).exists()), None)


def require_haproxy() -> str:
    """The ``haproxy`` binary; a missing one fails the test with what to install (``.ci/run`` does)."""
    import pytest

    return haproxy_binary() or pytest.fail("haproxy is not installed; apt-get install haproxy (as .ci/run does)")


# ---------------------------------------------------------------------------------------------
# The cluster


class ReplicaCluster:
    """Replicas of ``callintent serve`` behind HAProxy (see the module docstring).

    Args:
        tmp_root: Working folder (logs, BentoML homes, the HAProxy config and admin socket).
        registry: The registry both replicas serve (a folder or an ``s3://`` URL).
        call_log_url: The shared call log (a PostgreSQL URL).
        names: The replicas' names (HAProxy server names, the ``X-Served-By`` values).
        overrides: ``ServeConfig`` overrides for every replica.
        env: Extra environment for every replica (e.g. S3 endpoint and keys).
    """

    def __init__(self, tmp_root: Path, *, registry: str | Path, call_log_url: str,
                 names: Sequence[str] = ("r1", "r2"), overrides: dict[str, Any] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.tmp_root = Path(tmp_root)
        self.registry = registry
        self.call_log_url = call_log_url
        self.names = tuple(names)
        # Two replicas, PostgreSQL, HAProxy and the callers share two cores here: a call's last decodes
        # can fall seconds behind, so the SIGTERM drain gets longer than its 10 s default (a
        # deployment sizes it the same way: limits.drain_seconds, deploy/).
        self.overrides = {"call_log.url": call_log_url, "call_log.flush_seconds": 0.05, "limits.drain_seconds": 40,
                          **(overrides or {})}
        self.env = dict(env or {})
        self.ports = {name: free_port() for name in self.names}
        self.lb_port = free_port()
        # A unix socket path must be short (108 bytes): not under pytest's deep tmp folders.
        self._admin_dir = Path(tempfile.mkdtemp(prefix="callintent-lb-"))
        self.admin_socket = self._admin_dir / "admin.sock"
        self.servers: dict[str, Server] = {}
        self.haproxy: subprocess.Popen | None = None
        self.haproxy_log = self.tmp_root / "haproxy.log"

    @property
    def lb_url(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    @property
    def lb_ws(self) -> str:
        return f"ws://127.0.0.1:{self.lb_port}"

    def replica_url(self, name: str) -> str:
        """The replica itself, bypassing the load balancer (for its ``/metrics`` and ``/readyz``)."""
        return f"http://127.0.0.1:{self.ports[name]}"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> None:
        """Start every replica at once (as a Deployment does: they migrate the shared log together),
        then HAProxy, and wait until it counts every replica up."""
        errors: list[BaseException] = []

        def one(name: str) -> None:
            try:
                self.start_replica(name, timeout=timeout)
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread below
                errors.append(e)

        threads = [threading.Thread(target=one, args=(name,)) for name in self.names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        self._start_haproxy()
        for name in self.names:
            self.wait_state(name, up=True, timeout=30)

    def start_replica(self, name: str, timeout: float = 180.0) -> Server:
        """Start (or start again) one replica on its own port, waiting for its ``/readyz``."""
        env = {"CALLINTENT_REGISTRY_CACHE": str(self.tmp_root / f"registry-cache-{name}"), **self.env}
        server = start_server(f"replica-{name}-{self.lb_port}", self.tmp_root, registry=self.registry,
                              overrides=self.overrides, env=env, port=self.ports[name], timeout=timeout)
        self.servers[name] = server
        return server

    def terminate(self, name: str) -> None:
        """SIGTERM one replica (a rolling update's stop); returns at once: it drains on its own."""
        self.servers[name].process.send_signal(signal.SIGTERM)

    def wait_exit(self, name: str, timeout: float = 60.0) -> int:
        """Wait for a terminated replica to exit; its exit status."""
        code = self.servers[name].process.wait(timeout=timeout)
        self.servers[name].stop()  # drops it from the harness cache so it can start again
        return code

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            try:
                self.haproxy.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.haproxy.kill()
                self.haproxy.wait(timeout=10)
        shutil.rmtree(self._admin_dir, ignore_errors=True)

    def promote(self, ref: str, alias: str = "production", reason: str = "replica test") -> None:
        """Point ``alias`` of the shared registry at ``ref`` as an operator does: ``callintent models
        promote`` in its own process, with the replicas' environment (the S3 endpoint and keys).
        The replicas see it through their ``model_watch_seconds`` poll.

        Raises:
            RuntimeError: the command failed (with its output).
        """
        from tests.server_harness import REPO

        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLINTENT_")}
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
        env.update({"PYTHONPATH": path, **self.env})
        command = [sys.executable, "-m", "callintent", "models", "promote", ref, "--to", alias,
                   "--force", "--reason", reason, "--registry", str(self.registry)]
        done = subprocess.run(command, cwd=self.tmp_root, env=env, capture_output=True, text=True,
                              timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}:\n"
                               f"{done.stdout}{done.stderr}")

    # -- HAProxy -----------------------------------------------------------------------------------

    def _start_haproxy(self) -> None:
        servers = "\n".join(f"    server {name} 127.0.0.1:{port}" for name, port in self.ports.items())
        config = self.tmp_root / "haproxy.cfg"
        config.write_text(HAPROXY_CONFIG.format(admin_socket=self.admin_socket, port=self.lb_port, servers=servers))
        binary = haproxy_binary()
        if binary is None:
            raise RuntimeError("haproxy is not installed; apt-get install haproxy (as .ci/run does)")
        check = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy rejects {config}:\n{check.stdout}{check.stderr}")
        with self.haproxy_log.open("ab") as log:
            self.haproxy = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while not self.admin_socket.exists():
            if self.haproxy.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not start:\n{self.haproxy_log.read_text()[-3000:]}")
            time.sleep(0.05)

    def _admin(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.admin_socket))
            sock.sendall(f"{command}\n".encode())
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def states(self) -> dict[str, str]:
        """Each replica's state as HAProxy sees it (``UP``, ``DOWN``, ``UP 1/2`` while rising…)."""
        text = self._admin("show stat").lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {row["svname"]: row["status"] for row in rows if row["pxname"] == "replicas" and row["svname"] in
                self.ports}

    def wait_state(self, name: str, *, up: bool, timeout: float = 30.0) -> float:
        """Wait until HAProxy counts ``name`` fully up (or no longer up); the seconds it took."""
        started = time.monotonic()
        while True:
            state = self.states().get(name, "")
            if (state == "UP") if up else not state.startswith("UP"):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"haproxy still counts {name} as {state!r} after {timeout:.0f} s")
            time.sleep(0.05)

    # -- what each replica says about itself -----------------------------------------------------

    def metric(self, name: str, metric: str) -> float:
        """The sum of one metric's samples on one replica (``/metrics`` of the replica itself)."""
        text = httpx.get(f"{self.replica_url(name)}/metrics", timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(metric) and line[len(metric):len(metric) + 1] in ("{", " "))


    def serving_model(self, name: str) -> tuple[str, set[str]]:
        """What one replica says serves now: its ``/readyz`` ``X-Callintent-Model`` header, and the
        ``model/version`` pairs its ``callintent_model_info`` gauge sets to 1."""
        ready = httpx.get(f"{self.replica_url(name)}/readyz", timeout=10).headers.get(MODEL_HEADER, "")
        text = httpx.get(f"{self.replica_url(name)}/metrics", timeout=10).text
        info = {f"{m['model']}/{m['version']}" for m in MODEL_INFO.finditer(text) if float(m["value"]) == 1.0}
        return ready, info


MODEL_HEADER = "X-Callintent-Model"
MODEL_INFO = re.compile(r'^callintent_model_info\{model="(?P<model>[^"]*)",version="(?P<version>[^"]*)"\} '
                        r'(?P<value>\S+)$', re.M)


@contextlib.contextmanager
def replica_cluster(tmp_root: Path, **kwargs: Any) -> Iterator[ReplicaCluster]:
    """A started :class:`ReplicaCluster` (arguments as its constructor), stopped on exit."""
    cluster = ReplicaCluster(tmp_root, **kwargs)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


# ---------------------------------------------------------------------------------------------
# Traffic through the load balancer


@dataclass
class CallResult:
    """One live call as its client saw it.

    Attributes:
        call_id: The id sent in ``start``.
        replica: Who served it (``X-Served-By`` of the upgrade that was admitted).
        events: Every event received.
        close: The close code and reason.
        refused: Attempts refused before the call started (close 1013: draining or at capacity),
            each retried through the load balancer.
        started_at: ``time.monotonic()`` when ``started`` arrived (None: never started).
        ended_at: ``time.monotonic()`` when the server closed the started call.
        error: A transport failure, if any.
    """

    call_id: str
    replica: str = ""
    events: list[dict] = field(default_factory=list)
    close: tuple[int | None, str] = (None, "")
    refused: list[tuple[int | None, str, str]] = field(default_factory=list)
    started_at: float | None = None
    ended_at: float | None = None
    error: str = ""

    @property
    def started(self) -> bool:
        return self.started_at is not None

    @property
    def final(self) -> dict | None:
        return self.events[-1] if self.events and self.events[-1]["type"] == "final" else None


async def live_call(ws_base: str, call_id: str, frames: Sequence[bytes], *, realtime: bool,
                    on_started: asyncio.Event | None = None, result: CallResult | None = None,
                    attempts: int = 5, hold: asyncio.Event | None = None) -> CallResult:
    """One ``/v1/stream`` call (16 kHz pcm16 ``frames``, then ``stop``), until the server closes it.

    A call refused before it starts (1013: the replica drains, or is full) is tried again through
    the load balancer, as a client should; a started call is never retried. ``result`` (filled
    in as the call goes) lets the caller see where an open call is served. With ``hold`` (real
    time only), the call sends the first half of its speech, then silence until ``hold`` is set,
    then the rest: it stays open, mid-sentence, as long as the caller needs.
    """
    import websockets

    result = result or CallResult(call_id)
    for attempt in range(attempts):
        try:
            async with websockets.connect(f"{ws_base}/v1/stream", open_timeout=30) as ws:
                replica = ws.response.headers.get(SERVED_BY, "")
                await ws.send(json.dumps({"type": "start", "call_id": call_id, "encoding": "pcm16",
                                          "sample_rate": 16000, "metadata": {"source": "replicas"}}))
                first = await _next_event(ws)
                if first is None or first["type"] != "started":
                    received = ws.protocol.close_rcvd
                    close = (received.code, received.reason) if received else (None, "")
                    result.refused.append((*close, replica))
                    await asyncio.sleep(0.2 * (attempt + 1))
                    continue
                result.replica, result.started_at = replica, time.monotonic()
                result.events.append(first)
                if on_started is not None:
                    on_started.set()
                sender = asyncio.create_task(_send(ws, frames, realtime, hold))
                try:
                    while (event := await _next_event(ws)) is not None:
                        result.events.append(event)
                    result.ended_at = time.monotonic()
                finally:
                    sender.cancel()
                    with contextlib.suppress(asyncio.CancelledError, websockets.exceptions.ConnectionClosed):
                        await sender
                received = ws.protocol.close_rcvd
                result.close = (received.code, received.reason) if received else (None, "")
                return result
        except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as e:
            if result.started:
                result.error = f"{type(e).__name__}: {e}"
                return result
            result.refused.append((None, f"{type(e).__name__}: {e}", ""))
            await asyncio.sleep(0.2 * (attempt + 1))
    return result


async def _next_event(ws: Any, timeout: float = 60.0) -> dict | None:
    from websockets.exceptions import ConnectionClosed

    try:
        return json.loads(await asyncio.wait_for(ws.recv(), timeout))
    except ConnectionClosed:
        return None


async def _send(ws: Any, frames: Sequence[bytes], realtime: bool, hold: asyncio.Event | None = None) -> None:
    """The frames (every 20 ms when ``realtime``), then ``stop``; with ``hold``, silence in the middle
    until it is set."""
    if hold is None or not realtime:
        parts: list[Sequence[bytes]] = [frames]
    else:
        parts = [frames[:len(frames) // 2], frames[len(frames) // 2:]]
    started, sent = time.monotonic(), 0
    for n, part in enumerate(parts):
        if n:  # a caller pausing mid-sentence: 20 ms of silence at a time, in real time
            silence = bytes(len(frames[0]))
            while not hold.is_set():
                await asyncio.sleep(max(0.0, started + sent * 0.02 - time.monotonic()))
                await ws.send(silence)
                sent += 1
        for frame in part:
            if realtime:
                await asyncio.sleep(max(0.0, started + sent * 0.02 - time.monotonic()))
            await ws.send(frame)
            sent += 1
    await ws.send(json.dumps({"type": "stop"}))


@dataclass
class ScoreResult:
    """One ``/score`` request (and its outcome, for some) through the load balancer.

    Attributes:
        call_id: Its id.
        status: HTTP status, or the transport error's name.
        replica: ``X-Served-By``.
        outcome_status: Status of ``POST /calls/{id}/outcome`` (None: none sent).
        model: The model that scored it (``model`` of the answer).
        sent_at, answered_at: ``time.monotonic()`` when the request went out and its answer came.
    """

    call_id: str
    status: int | str
    replica: str = ""
    outcome_status: int | str | None = None
    model: str = ""
    sent_at: float = 0.0
    answered_at: float = 0.0


#: Every outcome carries its own ``occurred_at``, so a retried POST is the same outcome (200), not a conflict.
OUTCOME = {"converted": True, "revenue": 120.0, "disposition": "sold", "occurred_at": "2026-01-02T03:04:05Z"}


async def score_traffic(url: str, stop: asyncio.Event, *, prefix: str, interval: float = 0.1,
                        outcome_every: int = 3) -> list[ScoreResult]:
    """``/score`` requests one after another (each with a new call id) until ``stop``; every
    ``outcome_every``-th answered call also gets an outcome."""
    results: list[ScoreResult] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while not stop.is_set():
            call_id = f"{prefix}-{len(results)}"
            result = ScoreResult(call_id, "", sent_at=time.monotonic())
            try:
                response = await client.post("/score", json={
                    "transcript": "hi I saw your ad, how much would a new roof cost, can someone come out",
                    "call_id": call_id, "metadata": {"source": "replicas"}})
                result.answered_at = time.monotonic()
                result.status, result.replica = response.status_code, response.headers.get(SERVED_BY, "")
                if response.status_code == 200:
                    result.model = response.json()["model"]
                if response.status_code == 200 and len(results) % outcome_every == 0:
                    outcome = await client.post(f"/calls/{call_id}/outcome", json=OUTCOME)
                    result.outcome_status = outcome.status_code
            except httpx.TransportError as e:
                result.status = type(e).__name__
            results.append(result)
            await asyncio.sleep(interval)
    return results


def logged_models(call_log_url: str) -> dict[str, str]:
    """Each call-log row's call id and the model that scored it."""
    import sqlalchemy as sa

    engine = sa.create_engine(call_log_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT call_id, model FROM calls"))
            return {call_id: model for call_id, model in rows}
    finally:
        engine.dispose()


def logged(call_log_url: str) -> tuple[set[str], set[str]]:
    """Call ids with a call-log row, and with an outcome row."""
    import sqlalchemy as sa

    engine = sa.create_engine(call_log_url)
    try:
        with engine.connect() as connection:
            calls = {row[0] for row in connection.execute(sa.text("SELECT call_id FROM calls"))}
            outcomes = {row[0] for row in connection.execute(sa.text("SELECT call_id FROM outcomes"))}
    finally:
        engine.dispose()
    return calls, outcomes


# ---------------------------------------------------------------------------------------------
# The rolling restart


@dataclass
class RestartReport:
    """What :func:`rolling_restart` sent, where it went and what the call log holds.

    Attributes:
        victim: The replica SIGTERMed (the one with the most open calls).
        open_at_term: Live calls open on it when the signal was sent.
        before, during, after: The live calls opened before the signal, while the victim was gone,
            and after it came back.
        scores: Every ``/score`` request (the whole time).
        metrics_started: ``callintent_live_sessions_started_total`` per replica just before the
            signal, from each replica itself (cross-checks ``X-Served-By``).
        seconds_to_out: From the signal until HAProxy took the victim out.
        out_before_exit: The victim was out of the pool while its process still ran (its
            ``/readyz`` said 503 while draining, rather than its port closing).
        exit_code: The victim's exit status.
        seconds_to_back: From starting the victim again until HAProxy counted it up.
        calls_logged, outcomes_logged: Call ids with a row in PostgreSQL at the end.
        seconds: The whole scenario.
    """

    victim: str
    open_at_term: int
    before: list[CallResult]
    during: list[CallResult]
    after: list[CallResult]
    scores: list[ScoreResult]
    metrics_started: dict[str, float]
    seconds_to_out: float
    out_before_exit: bool
    exit_code: int
    seconds_to_back: float
    calls_logged: set[str]
    outcomes_logged: set[str]
    seconds: float

    @property
    def calls(self) -> list[CallResult]:
        return [*self.before, *self.during, *self.after]

    @property
    def expected_calls(self) -> set[str]:
        """Every started live call and every answered ``/score``: each must have a row."""
        return ({c.call_id for c in self.calls if c.started}
                | {s.call_id for s in self.scores if s.status == 200})

    @property
    def expected_outcomes(self) -> set[str]:
        return {s.call_id for s in self.scores if s.outcome_status in (200, 201, 202)}

    @property
    def lost_calls(self) -> set[str]:
        return self.expected_calls - self.calls_logged

    @property
    def lost_outcomes(self) -> set[str]:
        return self.expected_outcomes - self.outcomes_logged

    @property
    def missing_finals(self) -> list[str]:
        return [c.call_id for c in self.calls if c.started and c.final is None]

    def by_replica(self, calls: Sequence[CallResult]) -> dict[str, int]:
        return dict(Counter(c.replica for c in calls if c.started))

    def figures(self) -> dict[str, Any]:
        """The numbers a person reads (and the bench prints)."""
        refused = [r for c in self.calls for r in c.refused]
        return {
            "victim": self.victim,
            "calls_open_at_sigterm": self.open_at_term,
            "calls_made": sum(c.started for c in self.calls),
            "calls_by_replica": {"before": self.by_replica(self.before), "during": self.by_replica(self.during),
                                 "after": self.by_replica(self.after)},
            "finals_received": sum(c.final is not None for c in self.calls),
            "refused_then_retried": len(refused),
            "score_requests": len(self.scores),
            "score_statuses": dict(Counter(str(s.status) for s in self.scores)),
            "score_by_replica": dict(Counter(s.replica for s in self.scores if s.status == 200)),
            "outcomes_sent": len(self.expected_outcomes),
            "records_expected": len(self.expected_calls),
            "records_written": len(self.expected_calls & self.calls_logged),
            "records_lost": len(self.lost_calls),
            "outcomes_lost": len(self.lost_outcomes),
            "seconds_to_out_of_lb": round(self.seconds_to_out, 2),
            "out_of_lb_while_draining": self.out_before_exit,
            "victim_exit_code": self.exit_code,
            "seconds_to_back_in_lb": round(self.seconds_to_back, 2),
            "seconds": round(self.seconds, 1),
        }


async def rolling_restart(cluster: ReplicaCluster, frames: Sequence[bytes], *, calls_before: int = 4,
                          calls_during: int = 2, calls_after: int = 4, score_interval: float = 0.1,
                          victim: str | None = None, prefix: str = "",
                          log_timeout: float = 20.0) -> RestartReport:
    """Restart one replica under traffic (see the module docstring).

    Args:
        cluster: A started cluster.
        frames: One caller's audio as 20 ms 16 kHz pcm16 frames (every call sends it).
        calls_before: Real-time calls opened at once before the restart (spread by the LB).
        calls_during: Calls opened once HAProxy has taken the victim out.
        calls_after: Calls opened at once after the victim is back (fed as fast as possible).
        score_interval: Pause between ``/score`` requests.
        victim: The replica to restart (default: the one with the most open calls).
        prefix: Put before every call id (rounds of a longer run share one call log).
        log_timeout: How long to wait for the call log to hold every record.
    """
    started = time.monotonic()
    stop = asyncio.Event()
    scores = asyncio.create_task(score_traffic(cluster.lb_url, stop, prefix=f"{prefix}score",
                                               interval=score_interval))

    ready = [asyncio.Event() for _ in range(calls_before)]
    before = [CallResult(f"{prefix}before-{i}") for i in range(calls_before)]
    tasks = [asyncio.create_task(live_call(cluster.lb_ws, call.call_id, frames, realtime=True, on_started=ready[i],
                                           result=call)) for i, call in enumerate(before)]
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in ready)), 60)
    await asyncio.sleep(1.0)  # partials flowing on every call
    metrics_started = {name: await asyncio.to_thread(cluster.metric, name, "callintent_live_sessions_started_total")
                       for name in cluster.names}

    open_calls = Counter(call.replica for call, task in zip(before, tasks) if call.started and not task.done())
    victim = victim or max(cluster.names, key=lambda name: open_calls.get(name, 0))
    open_at_term = open_calls.get(victim, 0)
    cluster.terminate(victim)
    seconds_to_out = await asyncio.to_thread(cluster.wait_state, victim, up=False, timeout=30)
    out_before_exit = cluster.servers[victim].process.poll() is None

    during = await asyncio.gather(*(live_call(cluster.lb_ws, f"{prefix}during-{i}", frames, realtime=False)
                                    for i in range(calls_during)))
    exit_code = await asyncio.to_thread(cluster.wait_exit, victim, 60)
    back = time.monotonic()
    await asyncio.to_thread(cluster.start_replica, victim)
    await asyncio.to_thread(cluster.wait_state, victim, up=True, timeout=30)
    seconds_to_back = time.monotonic() - back

    after = await asyncio.gather(*(live_call(cluster.lb_ws, f"{prefix}after-{i}", frames, realtime=False)
                                   for i in range(calls_after)))
    await asyncio.gather(*tasks)
    stop.set()
    score_results = await scores

    report = RestartReport(victim, open_at_term, before, list(during), list(after), score_results,
                           metrics_started, seconds_to_out, out_before_exit, exit_code, seconds_to_back,
                           set(), set(), 0.0)
    deadline = time.monotonic() + log_timeout
    while True:  # the writers flush every 50 ms; a replica's queue may still be on its way
        report.calls_logged, report.outcomes_logged = await asyncio.to_thread(logged, cluster.call_log_url)
        if not (report.lost_calls or report.lost_outcomes) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    report.seconds = time.monotonic() - started
    return report


# ---------------------------------------------------------------------------------------------
# A promotion across replicas


@dataclass
class PromotionReport:
    """What :func:`promotion` sent, which model answered and what the call log holds.

    Attributes:
        old, new: The model serving before (``intent/v1``) and the one promoted.
        before: Live calls opened before the promotion, held open until every replica switched.
        after: Live calls opened once every replica had switched.
        scores: Every ``/score`` request (the whole time).
        open_at_promotion: Live calls open per replica when the promote command started.
        promote_started, promoted_at: ``time.monotonic()`` when the command started and returned
            (the alias was written in between).
        switched_at: Per replica, when both its ``/readyz`` and its ``/metrics`` first named the new
            model (polled every 0.1 s); None: not within the timeout.
        models_logged: The call log's rows at the end: call id -> model.
        seconds: The whole scenario.
    """

    old: str
    new: str
    before: list[CallResult]
    after: list[CallResult]
    scores: list[ScoreResult]
    open_at_promotion: dict[str, int]
    promote_started: float
    promoted_at: float
    switched_at: dict[str, float | None]
    models_logged: dict[str, str]
    seconds: float

    @property
    def calls(self) -> list[CallResult]:
        return [*self.before, *self.after]

    @property
    def answered(self) -> list[ScoreResult]:
        return [s for s in self.scores if s.status == 200]

    @property
    def expected_calls(self) -> set[str]:
        """Every started live call and every answered ``/score``: each must have a row."""
        return {c.call_id for c in self.calls if c.started} | {s.call_id for s in self.answered}

    @property
    def lost_calls(self) -> set[str]:
        return self.expected_calls - set(self.models_logged)

    @property
    def all_switched_at(self) -> float | None:
        """When the last replica switched (None: one never did)."""
        times = list(self.switched_at.values())
        return None if None in times else max(times)  # type: ignore[type-var]

    def seconds_to_switch(self) -> dict[str, float | None]:
        """Per replica: seconds from the promote command's return until it served the new model."""
        return {name: None if at is None else round(at - self.promoted_at, 2)
                for name, at in self.switched_at.items()}

    @staticmethod
    def models_of(call: CallResult) -> set[str]:
        """The models a call's events name (``started`` to ``final``)."""
        return {event.get("model", "") for event in call.events}

    def wrong_calls(self) -> dict[str, str]:
        """Calls whose events or row name another model than they should: call id -> what they said.
        A call opened before the promotion stays on the old model, one opened after gets the new."""
        wrong = {}
        for calls, model in ((self.before, self.old), (self.after, self.new)):
            for call in calls:
                said = self.models_of(call) | {self.models_logged.get(call.call_id, "(no row)")}
                if said != {model}:
                    wrong[call.call_id] = ", ".join(sorted(said))
        return wrong

    def wrong_scores(self) -> dict[str, str]:
        """``/score`` answers that name the wrong model: sent and answered before the promote command
        started -> old; sent after every replica switched -> new; in between, a replica never goes
        back to the old model once it answered with the new; and every row names the model that answered."""
        wrong = {}
        switched = self.all_switched_at
        last_new: dict[str, bool] = {}
        for s in self.answered:  # in the order sent (one request at a time)
            if s.answered_at < self.promote_started:
                expected = self.old
            elif (switched is not None and s.sent_at > switched) or last_new.get(s.replica):
                expected = self.new
            else:  # during the switch: either
                expected = s.model if s.model in (self.old, self.new) else f"{self.old} or {self.new}"
            last_new[s.replica] = last_new.get(s.replica, False) or s.model == self.new
            logged = self.models_logged.get(s.call_id, s.model)
            if s.model != expected or logged != s.model:
                wrong[s.call_id] = (f"{s.replica}: answered {s.model!r}, expected {expected!r}, "
                                    f"logged {logged!r}")
        return wrong

    def open_across_switch(self) -> list[str]:
        """Calls opened before the promotion that were still open when the last replica switched."""
        switched = self.all_switched_at
        return [c.call_id for c in self.before
                if c.started and switched is not None and c.ended_at is not None and c.ended_at > switched]

    def figures(self) -> dict[str, Any]:
        """The numbers a person reads (and the bench prints)."""
        started = [c for c in self.calls if c.started]
        on = Counter(model for c in started for model in self.models_of(c))
        scored = Counter(s.model for s in self.answered)
        return {
            "promoted": f"{self.old} -> {self.new}",
            "calls_open_at_promotion": sum(self.open_at_promotion.values()),
            "calls_open_by_replica": self.open_at_promotion,
            "calls_open_across_switch": len(self.open_across_switch()),
            "calls_made": len(started),
            "calls_on_old": on.get(self.old, 0),
            "calls_on_new": on.get(self.new, 0),
            "calls_by_replica": {"before": dict(Counter(c.replica for c in self.before if c.started)),
                                 "after": dict(Counter(c.replica for c in self.after if c.started))},
            "calls_changed_model_or_wrong": len(self.wrong_calls()),
            "finals_received": sum(c.final is not None for c in self.calls),
            "promote_command_seconds": round(self.promoted_at - self.promote_started, 2),
            "seconds_to_switch": self.seconds_to_switch(),
            "score_requests": len(self.scores),
            "scores_on_old": scored.get(self.old, 0),
            "scores_on_new": scored.get(self.new, 0),
            "score_statuses": dict(Counter(str(s.status) for s in self.scores)),
            "scores_wrong_model": len(self.wrong_scores()),
            "records_expected": len(self.expected_calls),
            "records_written": len(self.expected_calls & set(self.models_logged)),
            "records_lost": len(self.lost_calls),
            "seconds": round(self.seconds, 1),
        }


def wait_switched(cluster: ReplicaCluster, model: str, timeout: float) -> dict[str, float | None]:
    """Poll every replica's ``/readyz`` and ``/metrics`` (every 0.1 s) until each names ``model``
    alone; per replica, ``time.monotonic()`` when it first did (None: not within ``timeout``)."""
    switched: dict[str, float | None] = dict.fromkeys(cluster.names)
    deadline = time.monotonic() + timeout
    while None in switched.values() and time.monotonic() < deadline:
        for name in cluster.names:
            if switched[name] is None and cluster.serving_model(name) == (model, {model}):
                switched[name] = time.monotonic()
        time.sleep(0.1)
    return switched


async def promotion(cluster: ReplicaCluster, frames: Sequence[bytes], new: str, *, calls_before: int = 4,
                    calls_after: int = 4, score_interval: float = 0.1, prefix: str = "",
                    switch_timeout: float = 30.0, log_timeout: float = 20.0) -> PromotionReport:
    """Promote ``new`` to ``production`` under traffic (see the module docstring).

    Args:
        cluster: A started cluster whose replicas watch the registry's ``production`` alias.
        frames: One caller's audio as 20 ms 16 kHz pcm16 frames (every call sends it).
        new: The version to promote, ``<name>/<version>`` (what events and rows then name).
        calls_before: Real-time calls opened at once before the promotion (spread by the LB) and
            held open, mid-sentence, until every replica switched (or ``switch_timeout``).
        calls_after: Calls opened at once after every replica switched (fed as fast as possible).
        score_interval: Pause between ``/score`` requests.
        prefix: Put before every call id (rounds of a longer run share one call log).
        switch_timeout: How long to wait for the replicas to serve ``new``.
        log_timeout: How long to wait for the call log to hold every record.
    """
    started = time.monotonic()
    old, _ = await asyncio.to_thread(cluster.serving_model, cluster.names[0])
    stop, hold = asyncio.Event(), asyncio.Event()
    scores = asyncio.create_task(score_traffic(cluster.lb_url, stop, prefix=f"{prefix}score",
                                               interval=score_interval))
    ready = [asyncio.Event() for _ in range(calls_before)]
    before = [CallResult(f"{prefix}before-{i}") for i in range(calls_before)]
    tasks = [asyncio.create_task(live_call(cluster.lb_ws, call.call_id, frames, realtime=True,
                                           on_started=ready[i], result=call, hold=hold))
             for i, call in enumerate(before)]
    try:
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in ready)), 60)
        await asyncio.sleep(1.0)  # partials flowing on every call, /score answered by the old model
        open_at_promotion = dict(Counter(call.replica for call, task in zip(before, tasks)
                                         if call.started and not task.done()))
        promote_started = time.monotonic()
        await asyncio.to_thread(cluster.promote, new, "production", "replica test: promotion under traffic")
        promoted_at = time.monotonic()
        switched_at = await asyncio.to_thread(wait_switched, cluster, new, switch_timeout)
    finally:
        hold.set()  # the open calls say the rest of their speech and stop, switched or not
    after = await asyncio.gather(*(live_call(cluster.lb_ws, f"{prefix}after-{i}", frames, realtime=False)
                                   for i in range(calls_after)))
    await asyncio.gather(*tasks)
    await asyncio.sleep(1.0)  # more /score answers on the new model, from both replicas
    stop.set()
    score_results = await scores

    report = PromotionReport(old, new, before, list(after), score_results, open_at_promotion, promote_started,
                             promoted_at, switched_at, {}, 0.0)
    deadline = time.monotonic() + log_timeout
    while True:  # the writers flush every 50 ms; a replica's queue may still be on its way
        report.models_logged = await asyncio.to_thread(logged_models, cluster.call_log_url)
        if not report.lost_calls or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    report.seconds = time.monotonic() - started
    return report
