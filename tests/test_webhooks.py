"""Webhooks: routing rules, signing (checked with the README's own verify snippet), the outbox on
SQLite and PostgreSQL, and delivery to a real receiver on loopback that fails, times out and
recovers — every event arriving exactly once by idempotency key, none lost across a restart."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from serving.calllog.records import WebhookEvent, utc_now
from tests.pg_harness import call_log_url, pg_server  # noqa: F401 - fixtures
from tests.server_harness import free_port
from tests.service_fakes import BuyingPredictor, RecordingLog

REPO = Path(__file__).resolve().parents[1]
SECRET = "whsec-test-0123456789abcdef"
API_KEY = "test-key-for-webhooks-0001"


def readme_verify():
    """The verify function exactly as the README shows it (its fenced block, executed)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    (snippet,) = [b for b in blocks if "def verify_callintent_signature" in b]
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102 - the documented snippet is the test subject
    return namespace["verify_callintent_signature"]


# ---------------------------------------------------------------------------------------------
# Signing


def test_the_readme_snippet_verifies_our_signatures_and_refuses_forgeries():
    from serving.webhook_signing import signature_header

    verify = readme_verify()
    body = b'{"id":"evt_1","type":"final","data":{"price":"\xc2\xa3420"}}'
    now = int(time.time())
    header = signature_header([SECRET.encode()], now, body)
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert verify(SECRET, header, body)
    assert not verify(SECRET, header, body.replace(b"420", b"421"))            # tampered body
    assert not verify("another-secret-0123456789", header, body)                # wrong secret
    assert not verify(SECRET, signature_header([SECRET.encode()], now - 3600, body), body)  # replayed an hour later
    assert not verify(SECRET, header.replace(f"t={now}", f"t={now + 1}"), body)  # timestamp is signed too
    for broken in ("", "garbage", "t=abc,v1=00", f"t={now}", "v1=" + "0" * 64):
        assert not verify(SECRET, broken, body)
    # Rotation: two secrets, two v1 values; a receiver holding either one accepts.
    rotated = signature_header([b"new-secret-0123456789abcd", SECRET.encode()], now, body)
    assert verify(SECRET, rotated, body) and verify("new-secret-0123456789abcd", rotated, body)


# ---------------------------------------------------------------------------------------------
# Which events go where (policy file) and the deployment config (serve.yaml)


def _policy_with(tmp_path: Path, webhooks: dict, **extra) -> Path:
    shipped = yaml.safe_load((REPO / "serving" / "configs" / "policy.yaml").read_text())
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({**shipped, "webhooks": webhooks, **extra}))
    return path


def test_rules_pick_endpoints_by_event_route_and_segment(tmp_path):
    from serving.policy import DecisionPolicy
    from serving.webhook_policy import load_webhook_routes

    path = _policy_with(tmp_path, {"rules": [
        {"endpoints": ["crm"], "events": ["decision", "final"]},
        {"endpoints": ["pager", "crm"], "events": ["decision"], "routes": ["priority_sales"],
         "segments": ["google_*"]},
        {"endpoints": ["crm"], "events": ["callback_due"]},
    ]})
    routes = load_webhook_routes(path)
    assert routes.endpoints_for("decision", route="priority_sales", segment="google_ads") == ("crm", "pager")
    assert routes.endpoints_for("decision", route="priority_sales", segment="default") == ("crm",)
    assert routes.endpoints_for("decision", route="standard", segment="Google_Ads") == ("crm",)
    assert routes.endpoints_for("final", route="screen", segment="x") == ("crm",)
    assert routes.endpoints_for("callback_due") == ("crm",)  # no decision: only rules without routes
    assert routes.endpoints_for("partial", route="standard", segment="default") == ()
    assert len(DecisionPolicy.from_yaml(path).config.segments) == 3  # the decision policy skips the section

    from callintent.config import ConfigError

    with pytest.raises(ConfigError, match="endpoint 'pager' is not configured"):
        routes.check_endpoints(["crm"])
    with pytest.raises(ConfigError, match=r"webhooks\.rules\[0\]\.event"):
        load_webhook_routes(_policy_with(tmp_path, {"rules": [{"endpoints": ["crm"], "event": ["final"]}]}))
    with pytest.raises(ConfigError, match="events must name at least one"):
        load_webhook_routes(_policy_with(tmp_path, {"rules": [{"endpoints": ["crm"]}]}))
    with pytest.raises(ConfigError, match="unknown key 'webhook'"):  # a typo at the top is still caught
        DecisionPolicy.from_yaml(_policy_with(tmp_path, {}, webhook={"rules": []}))


def test_endpoint_secrets_come_from_the_environment_or_a_file_never_the_config(tmp_path):
    from callintent.config import ConfigError
    from serving.config import load_serve_config

    def config(endpoint, **more):
        return load_serve_config(environ={}, overrides={"webhooks.endpoints": [endpoint], **more})

    with pytest.raises(ConfigError, match="unknown key 'webhooks.endpoints\\[0\\].secret'"):
        config({"name": "crm", "url": "https://crm.example", "secret": SECRET})
    with pytest.raises(ConfigError, match="exactly one of secret_env"):
        config({"name": "crm", "url": "https://crm.example"})
    with pytest.raises(ConfigError, match="need the call log"):
        config({"name": "crm", "url": "https://crm.example", "secret_env": "S"}, **{"call_log.enabled": False})
    endpoint = config({"name": "crm", "url": "https://crm.example", "secret_env": "HOOK_SECRET"}).webhooks.endpoints[0]
    with pytest.raises(ConfigError, match=r"\$HOOK_SECRET is not set"):
        endpoint.secrets({})
    with pytest.raises(ConfigError, match="at least 16 characters"):
        endpoint.secrets({"HOOK_SECRET": "short"})
    assert endpoint.secrets({"HOOK_SECRET": f"{SECRET}, second-secret-0123456789"}) == (
        SECRET.encode(), b"second-secret-0123456789")
    (tmp_path / "secret").write_text(SECRET + "\n")
    from_file = config({"name": "crm", "url": "https://crm.example", "secret_file": str(tmp_path / "secret")})
    assert from_file.webhooks.endpoints[0].secrets({}) == (SECRET.encode(),)
    assert SECRET not in repr(from_file)


# ---------------------------------------------------------------------------------------------
# Scoring publishes decision and final events through the call-log queue



def test_a_scored_call_publishes_decision_then_final_with_the_logged_record(tmp_path):
    from serving.policy import DecisionPolicy
    from serving.scoring import ScoreItem, Scoring
    from serving.webhook_policy import load_webhook_routes

    routes = load_webhook_routes(_policy_with(tmp_path, {"rules": [
        {"endpoints": ["crm"], "events": ["decision", "final"], "routes": ["priority_sales"]}]}))
    log = RecordingLog()
    scoring = Scoring(BuyingPredictor(), DecisionPolicy.from_yaml(), call_log=log, webhooks=routes)
    scoring.score_items([ScoreItem("how much for a roof, call me at 555 123 4567", "c-1", {"source": "ads"})])
    decision, record, final = log.records
    assert isinstance(decision, WebhookEvent) and isinstance(final, WebhookEvent)
    assert (decision.type, final.type, decision.endpoints) == ("decision", "final", ("crm",))
    body = json.loads(final.body)
    assert body["id"] == final.event_id and body["call_id"] == "c-1" and body["type"] == "final"
    assert body["data"] == json.loads(json.dumps(record.to_json()))  # the GET /calls/{id} form of the record
    assert "[PHONE]" in body["data"]["transcript"] and "4567" not in final.body  # redacted like the log
    assert final.idempotency_key("crm") == f"{final.event_id}:crm"
    # A live decision (EventSocket -> Scoring.decided) publishes the same way; no rule, no event.
    scores = BuyingPredictor().predict(["x"])[0]
    live = DecisionPolicy.from_yaml().decide(scores, {}, audio_seconds=5.0, early=True)
    scoring.decided("CA1", channel="twilio", metadata={}, scores=scores, decision=live, shown="hi", heard="hi",
                    audio_seconds=5.0)
    assert json.loads(log.records[-1].body)["data"]["decision"]["early"] is True
    assert scoring.publish("callback_due", "c-9", {"due_at": "2026-12-01T10:15:00Z"}) == 0
    assert len(log.records) == 4


# ---------------------------------------------------------------------------------------------
# The outbox on SQLite and PostgreSQL


def test_outbox_migration_and_claims_on_both_backends(call_log_url):  # noqa: F811
    from alembic import command
    from alembic.config import Config

    from serving.calllog.outbox import Outbox
    from serving.calllog.store import MIGRATIONS_DIR, open_store

    store = open_store(call_log_url)
    try:
        head = store.migrate()
        assert head >= "0003"
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with store.engine.begin() as connection:  # down to 0002 and back: the migration is reversible
            config.attributes["connection"] = connection
            command.downgrade(config, "0002")
        import sqlalchemy as sa

        assert "webhook_deliveries" not in sa.inspect(store.engine).get_table_names()
        assert store.migrate() == head and "webhook_deliveries" in sa.inspect(store.engine).get_table_names()

        outbox = Outbox(store)
        event = WebhookEvent.of("final", "c-1", {"route": "priority_sales"}, ("crm", "pager"))
        assert store.write_calls([event]) == 1
        store.write_calls([event])  # the same event again (a retried batch) enqueues nothing twice
        now = utc_now()
        due = outbox.due(now, 10)
        assert [(d.endpoint, d.status, d.attempts) for d in due] == [("crm", "pending", 0), ("pager", "pending", 0)]
        assert outbox.due(now, 10, endpoints=["pager"])[0].idempotency_key == f"{event.event_id}:pager"
        crm = outbox.claim(due[0], now, lease_seconds=60)
        assert crm is not None and crm.attempts == 1
        assert outbox.claim(due[0], now, lease_seconds=60) is None  # a second worker cannot take it
        assert [d.endpoint for d in outbox.due(now, 10)] == ["pager"]
        outbox.attempt_failed(crm, error="HTTP 503", status_code=503, retry_at=None)  # gave up
        (failed,) = outbox.deliveries("failed")
        assert (failed.last_error, failed.last_status_code, failed.attempts) == ("HTTP 503", 503, 1)
        assert outbox.retry(now, endpoint="pager") == 0 and outbox.retry(now) == 1
        again = outbox.claim(outbox.due(utc_now(), 10, endpoints=["crm"])[0], utc_now(), lease_seconds=60)
        outbox.delivered(again, utc_now(), 204)
        assert [d.status for d in outbox.deliveries(endpoint="crm")] == ["delivered"]
        assert outbox.backlog(utc_now()).pending == 1
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# A real receiver on loopback


class Receiver:
    """An HTTP receiver on loopback that verifies signatures with the README snippet and dedupes
    by ``Idempotency-Key``, answering as ``plan`` says: ``fail`` (500), ``slow`` (answers after
    the sender's timeout, having processed the event), ``ok``; the last entry repeats."""

    def __init__(self, port: int, plan: list[str]) -> None:
        self.port = port
        self.plan = list(plan)
        self.verify = readme_verify()
        self.lock = threading.Lock()
        self.arrivals: list[str] = []              # every request's key, duplicates included
        self.processed: dict[str, dict] = {}       # key -> body, once (the receiver's dedupe)
        self.bad_signatures = 0
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not receiver.verify(SECRET, self.headers.get("Callintent-Signature", ""), body):
                    with receiver.lock:
                        receiver.bad_signatures += 1
                    self._answer(401)
                    return
                key = self.headers["Idempotency-Key"]
                with receiver.lock:
                    mode = receiver.plan.pop(0) if len(receiver.plan) > 1 else receiver.plan[0]
                    receiver.arrivals.append(key)
                    if mode != "fail":
                        receiver.processed.setdefault(key, json.loads(body))
                if mode == "slow":
                    time.sleep(1.0)
                self._answer(500 if mode == "fail" else 200)

            def _answer(self, status):
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


def _service(tmp_path: Path, db: str, port: int):
    """A service wired with a fake model over a real call log and webhooks to ``port``."""
    from serving.calllog.writer import start_call_log
    from serving.config import load_serve_config
    from tests.service_fakes import wired_service

    policy = _policy_with(tmp_path, {"rules": [{"endpoints": ["crm"], "events": ["decision", "final"]}]})
    config = load_serve_config(environ={}, overrides={
        "policy": str(policy), "call_log.url": db, "call_log.flush_seconds": 0.02,
        "webhooks.endpoints": [{"name": "crm", "url": f"http://127.0.0.1:{port}/hooks",
                                "secret_env": "CALLINTENT_TEST_WEBHOOK_SECRET"}],
        "webhooks.timeout_seconds": 0.4, "webhooks.first_retry_seconds": 0.05, "webhooks.retry_max_seconds": 0.2,
        "webhooks.poll_seconds": 0.05, "webhooks.max_attempts": 100})
    writer = start_call_log(config.call_log, db)
    return wired_service(config, predictor=BuyingPredictor(), asr=SimpleNamespace(), call_log=writer)


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _metric(name: str, **labels) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_every_event_arrives_exactly_once_through_failures_timeouts_and_a_restart(tmp_path, monkeypatch):
    from serving.calllog.outbox import Outbox
    from serving.calllog.store import open_store
    from tests.service_fakes import serving_client

    monkeypatch.setenv("CALLINTENT_TEST_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("CALLINTENT_API_KEYS", API_KEY)
    db = f"sqlite:///{tmp_path / 'calls.db'}"
    port = free_port()
    auth = {"Authorization": f"Bearer {API_KEY}"}
    delivered_before = _metric("callintent_webhook_deliveries_total", endpoint="crm", event="final")
    failures_before = sum(_metric("callintent_webhook_failures_total", endpoint="crm", reason=r)
                          for r in ("http_5xx", "connect", "timeout"))

    # 1. The CRM answers 500 to everything: three calls are scored, every attempt fails.
    receiver = Receiver(port, ["fail"]).start()
    first = _service(tmp_path, db, port)
    with serving_client(first) as client:
        for i in range(3):
            assert client.post("/score", json={"transcript": f"how much for a roof {i}", "call_id": f"a-{i}"},
                               headers=auth).status_code == 200
        _wait(lambda: len(set(receiver.arrivals)) == 6 and len(receiver.arrivals) >= 8, 20, "failed attempts")
        assert client.get("/v1/webhooks/deliveries?status=pending").status_code == 401  # API key like every route
        pending = client.get("/v1/webhooks/deliveries?status=pending", headers=auth).json()
        assert pending["count"] == 6 and {d["last_status_code"] for d in pending["deliveries"]} == {500}
        bad = client.get("/v1/webhooks/deliveries?status=lost", headers=auth)
        assert bad.status_code == 422 and bad.json()["error"]["fields"] == ["query.status"]
    # 2. The service stops (SIGTERM's shutdown hook) and the CRM goes down altogether.
    first.drain_call_log()
    receiver.stop()
    assert receiver.processed == {}

    # 3. A new service process over the same database: two more calls while the CRM is down.
    second = _service(tmp_path, db, port)
    with serving_client(second) as client:
        for i in range(2):
            assert client.post("/score", json={"transcript": f"a quote please {i}", "call_id": f"b-{i}"},
                               headers=auth).status_code == 200
        time.sleep(0.5)  # connection refused, retried with backoff
        # 4. The CRM comes back slow (the first two answers come after the timeout), then healthy.
        receiver = Receiver(port, ["slow", "slow", "ok"]).start()
        store = open_store(db)
        try:
            _wait(lambda: Outbox(store).backlog(utc_now()).pending == 0, 30, "the outbox to drain")
        finally:
            store.close()
        delivered = client.get("/v1/webhooks/deliveries?status=delivered&limit=1000", headers=auth).json()
        failed = client.get("/v1/webhooks/deliveries?status=failed", headers=auth).json()
    second.drain_call_log()
    receiver.stop()

    expected = {(f"{p}-{i}", t) for p, n in (("a", 3), ("b", 2)) for i in range(n) for t in ("decision", "final")}
    assert {(b["call_id"], b["type"]) for b in receiver.processed.values()} == expected  # every event, once each
    assert len(receiver.processed) == 10 and receiver.bad_signatures == 0
    assert len(receiver.arrivals) > len(set(receiver.arrivals))  # the timed-out ones came again: deduped by key
    assert all(key == f"{b['id']}:crm" for key, b in receiver.processed.items())
    assert delivered["count"] == 10 and failed["count"] == 0
    assert {d["call_id"] for d in delivered["deliveries"]} == {c for c, _ in expected}
    assert _metric("callintent_webhook_deliveries_total", endpoint="crm", event="final") == delivered_before + 5
    assert sum(_metric("callintent_webhook_failures_total", endpoint="crm", reason=r)
               for r in ("http_5xx", "connect", "timeout")) >= failures_before + 8
    assert _metric("callintent_webhook_pending") == 0


def test_a_dead_endpoint_is_paused_then_given_up_and_the_cli_sends_it_again(tmp_path, capsys):
    from callintent.cli import main
    from serving.calllog.outbox import Outbox
    from serving.calllog.store import open_store
    from serving.config import WebhookConfig, WebhookEndpoint
    from serving.webhooks import Endpoint, WebhookDeliverer, backoff_seconds

    config = WebhookConfig(endpoints=(WebhookEndpoint("crm", "http://127.0.0.1:1", secret_env="X"),),
                           timeout_seconds=0.5, first_retry_seconds=0.05, retry_max_seconds=0.1, max_attempts=2)
    assert [backoff_seconds(n, config) for n in (1, 2, 3, 9)] == [0.05, 0.1, 0.1, 0.1]
    db = f"sqlite:///{tmp_path / 'calls.db'}"
    store = open_store(db)
    store.write_calls([WebhookEvent.of("final", f"c-{i}", {"i": i}, ("crm",)) for i in range(4)])
    port = free_port()
    dead = WebhookDeliverer(Outbox(store), {"crm": Endpoint("crm", f"http://127.0.0.1:{port}/", (SECRET.encode(),))},
                            config)
    try:
        assert dead.deliver_due() == 1  # connection refused: the endpoint pauses, the other 3 wait untouched
        assert [d.attempts for d in Outbox(store).deliveries()] == [0, 0, 0, 1]
        _wait(lambda: dead.deliver_due() == 0 and not Outbox(store).deliveries("pending"), 10, "giving up")
        assert len(Outbox(store).deliveries("failed")) == 4
        assert {d.last_error.split(":")[0] for d in Outbox(store).deliveries("failed")} == {"connect error"}
    finally:
        dead.close()

    assert main(["webhooks", "retry", "--db", db, "--endpoint", "other"]) == 0
    assert main(["webhooks", "retry", "--db", db]) == 0
    assert "4 failed deliveries queued again" in capsys.readouterr().out
    receiver = Receiver(port, ["ok"]).start()
    alive = WebhookDeliverer(Outbox(store), {"crm": Endpoint("crm", f"http://127.0.0.1:{port}/", (SECRET.encode(),))},
                             config)
    try:
        assert alive.deliver_due() == 4
    finally:
        alive.close()
        receiver.stop()
    assert sorted(b["call_id"] for b in receiver.processed.values()) == ["c-0", "c-1", "c-2", "c-3"]
    assert main(["webhooks", "list", "--db", db, "--status", "delivered", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 4 and {r["status"] for r in rows} == {"delivered"} and rows[0]["attempts"] == 1
    store.purge(utc_now() + dt.timedelta(days=1))  # retention takes the bodies with the calls
    assert Outbox(store).deliveries() == []
    store.close()


def test_a_missed_call_owed_a_callback_is_queued_as_callback_due(tmp_path):
    from serving.calllog.outbox import Outbox
    from serving.calllog.store import open_store
    from serving.calllog.writer import CallLogWriter
    from serving.policy import DecisionPolicy
    from serving.scoring import Scoring
    from serving.webhook_policy import load_webhook_routes

    routes = load_webhook_routes(_policy_with(tmp_path, {"rules": [
        {"endpoints": ["crm"], "events": ["callback_due"], "segments": ["lead_vendors"]}]}))
    store = open_store(f"sqlite:///{tmp_path / 'calls.db'}")
    writer = CallLogWriter(store, flush_seconds=0.0)
    scoring = Scoring(BuyingPredictor(), DecisionPolicy.from_yaml(), call_log=writer, webhooks=routes)
    missed_at = dt.datetime(2026, 11, 10, 14, 0)
    scoring.log_missed("m-1", kind="missed", missed_at=missed_at, caller="+15550001111",
                       metadata={"source": "lead_vendor"})
    scoring.log_missed("m-2", kind="missed", missed_at=missed_at, caller="+15550002222",
                       metadata={"source": "google_ads"})  # segment google_ads: no rule sends it
    writer.close(5.0)
    (row,) = Outbox(store).deliveries()
    body = json.loads(row.body)
    assert (row.event_type, row.call_id, row.endpoint) == ("callback_due", "m-1", "crm")
    assert body["type"] == "callback_due" and body["data"]["due_at"] == "2026-11-10T15:00:00.000Z"
    store.close()
