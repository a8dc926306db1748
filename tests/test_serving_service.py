"""Unit tests of the service's plain parts: config, API keys, limits, schemas, logs, CLI, packaging.

No server and no model here (tests/test_serving_sessions.py runs the real thing).
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from callintent.config import ConfigError
from callintent.errors import UserError
from serving.auth import ApiKeyMiddleware, ApiKeys, Unauthorized, load_api_keys, presented_key
from serving.config import DEFAULT_CONFIG_PATH, ServeConfig, load_serve_config
from serving.limits import BodyLimitMiddleware, LimitExceeded, SessionSlots, check_text

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# ServeConfig


def test_shipped_config_matches_the_defaults():
    assert load_serve_config(environ={}) == ServeConfig()
    shipped = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    assert shipped["store_audio"] is False and shipped["redact_pii"] is True
    assert shipped["limits"]["max_audio_seconds"] == 120


def test_environment_overrides_and_precedence(tmp_path):
    custom = tmp_path / "serve.yaml"
    custom.write_text("model: candidate\nvariant: fp32\nlimits:\n  max_live_sessions: 3\n")
    env = {"CALLINTENT_SERVE_CONFIG": str(custom), "CALLINTENT_MODEL": "v7", "CALLINTENT_ASR_DEVICE": "cuda",
           "CALLINTENT_SERVE_OVERRIDES": json.dumps({"limits.idle_timeout_seconds": 5, "variant": "int8"})}
    config = load_serve_config(environ=env)
    assert config.model == "v7"                        # named variable beats the file
    assert config.variant == "int8"                    # the JSON overrides beat the file
    assert config.limits.max_live_sessions == 3        # the file beats the defaults
    assert config.limits.idle_timeout_seconds == 5.0
    assert config.asr.device == "cuda"
    assert load_serve_config(environ=env, overrides={"model": "v2"}).model == "v2"


@pytest.mark.parametrize(("overrides", "named"), [
    ({"limits.max_live_sessions": 0}, "max_live_sessions"),
    ({"limits.max_audio_seconds": -1}, "max_audio_seconds"),
    ({"variant": "int4"}, "variant"),
    ({"batching.max_batch_size": 1}, "max_batch_size"),
    ({"limits.max_bodybytes": 5}, "max_bodybytes"),
    ({"asr.device": "tpu"}, "device"),
    ({"store_audio": "yes"}, "store_audio"),
])
def test_bad_config_values_name_the_key(overrides, named):
    with pytest.raises(ConfigError, match=named):
        load_serve_config(environ={}, overrides=overrides)


def test_bad_overrides_variable_is_named():
    with pytest.raises(ConfigError, match="CALLINTENT_SERVE_OVERRIDES"):
        load_serve_config(environ={"CALLINTENT_SERVE_OVERRIDES": "{not json"})


# ---------------------------------------------------------------------------------------------
# API keys


def test_api_keys_from_env_and_file(tmp_path):
    key_file = tmp_path / "keys.txt"
    key_file.write_text("# production keys\nfile-key-aaaaaaaa  # ops team\n\n")
    keys = load_api_keys(None, environ={"CALLINTENT_API_KEYS": "env-key-11111111, env-key-22222222",
                                        "CALLINTENT_API_KEYS_FILE": str(key_file)})
    assert keys.enabled and len(keys) == 3
    for good in ("env-key-11111111", "env-key-22222222", "file-key-aaaaaaaa"):
        assert keys.check(good)
    for bad in (None, "", "env-key-1111111", "env-key-111111111", "FILE-KEY-AAAAAAAA", "# production keys"):
        assert not keys.check(bad)
    assert not load_api_keys(None, environ={}).enabled
    assert ApiKeys().check(None), "no keys configured = authentication off"


def test_short_or_unreadable_key_files_are_user_errors(tmp_path):
    key_file = tmp_path / "keys.txt"
    key_file.write_text("long-enough-key\nq7zx\n")
    with pytest.raises(UserError, match=r"keys.txt:2: API key is shorter than 8") as info:
        load_api_keys(key_file, environ={})
    assert "q7zx" not in str(info.value)  # the key itself is never echoed
    with pytest.raises(UserError, match="cannot read API key file"):
        load_api_keys(tmp_path / "missing.txt", environ={})


def test_key_check_compares_every_key(monkeypatch):
    """Constant time: hmac.compare_digest runs against all keys, also after a match."""
    import hmac

    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append(b) or real(a, b))
    keys = ApiKeys(["first-key-000000", "second-key-00000", "third-key-000000"])
    assert keys.check("first-key-000000")
    assert len(calls) == 3


def test_presented_key_sources():
    assert presented_key({"authorization": "Bearer abc"}) == "abc"
    assert presented_key({"authorization": "bearer   abc "}) == "abc"
    assert presented_key({"authorization": "Basic abc"}) is None
    assert presented_key({}, {"token": "qk"}) == "qk"
    assert presented_key({}, None) is None
    assert presented_key({"authorization": "Bearer h"}, {"token": "q"}) == "h"
    with pytest.raises(Unauthorized, match="missing API key"):
        ApiKeys(["some-key-0000000"]).require(None)
    with pytest.raises(Unauthorized, match="invalid API key"):
        ApiKeys(["some-key-0000000"]).require("other-key-000000")


def _echo_app():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route, WebSocketRoute

    async def ok(request):
        body = await request.body()
        return JSONResponse({"ok": True, "bytes": len(body)})

    async def ws(websocket):
        await websocket.accept()
        await websocket.send_json({"deferred": websocket.scope.get("state", {}).get("auth_deferred", False)})
        await websocket.close()

    return Starlette(routes=[Route("/score", ok, methods=["POST"]), WebSocketRoute("/v1/stream", ws),
                             WebSocketRoute("/v1/twilio", ws)])


def test_api_key_middleware_http_and_websocket():
    from starlette.testclient import TestClient, WebSocketDenialResponse

    keys = ApiKeys(["valid-key-123456"])
    app = ApiKeyMiddleware(_echo_app(), keys=lambda: keys, deferred_paths=("/v1/twilio",))
    with TestClient(app) as client:
        r = client.post("/score", content=b"{}")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert client.post("/score", headers={"Authorization": "Bearer valid-key-123456"}).status_code == 200
        with pytest.raises(WebSocketDenialResponse) as denied:
            with client.websocket_connect("/v1/stream"):
                pass
        assert denied.value.status_code == 401 and denied.value.json()["error"]["code"] == "unauthorized"
        with client.websocket_connect("/v1/stream?token=valid-key-123456") as ws:
            assert ws.receive_json() == {"deferred": False}
        with client.websocket_connect("/v1/twilio") as ws:  # Twilio: checked at its start message
            assert ws.receive_json() == {"deferred": True}
        with pytest.raises(WebSocketDenialResponse):  # a wrong key is refused even on a deferred path
            with client.websocket_connect("/v1/twilio?token=wrong-key-000000"):
                pass


# ---------------------------------------------------------------------------------------------
# Limits


def test_session_slots():
    slots = SessionSlots(2)
    assert slots.try_acquire() and slots.try_acquire()
    assert not slots.try_acquire() and slots.active == 2
    assert "2 live calls" in slots.refusal_reason() and len(slots.refusal_reason().encode()) < 123
    slots.release()
    assert slots.try_acquire()
    slots.release()
    slots.release()
    with pytest.raises(RuntimeError):
        slots.release()


def test_check_text_names_the_limit():
    check_text("x" * 10, 10)
    with pytest.raises(LimitExceeded, match=r"limits.max_text_chars\) is 10") as info:
        check_text("x" * 11, 10)
    assert info.value.code == "text_too_long" and info.value.status == 413


def test_body_limit_middleware():
    app = BodyLimitMiddleware(_echo_app(), max_bytes=1000)

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            small = await client.post("/score", content=b"x" * 1000)
            declared = await client.post("/score", content=b"x" * 1001)

            async def chunks():
                for _ in range(5):
                    yield b"y" * 300

            streamed = await client.post("/score", content=chunks())
            return small, declared, streamed

    small, declared, streamed = asyncio.run(go())
    assert small.status_code == 200 and small.json()["bytes"] == 1000
    assert declared.status_code == 413
    assert declared.json() == {"error": {"code": "body_too_large", "message": declared.json()["error"]["message"]}}
    assert "limits.max_body_bytes" in declared.json()["error"]["message"]
    assert streamed.status_code == 413  # no Content-Length: cut off as it streams


# ---------------------------------------------------------------------------------------------
# Schemas and logs


def test_metadata_cleaning_and_request_validation():
    from pydantic import ValidationError

    from serving.schemas import ScoreRequest, clean_metadata

    assert clean_metadata({"source": "ads", "repeat": True, "n": 3, "none": None}, 8) == \
        {"source": "ads", "repeat": "true", "n": "3"}
    with pytest.raises(ValueError, match="at most 2"):
        clean_metadata({"a": "1", "b": "2", "c": "3"}, 2)
    with pytest.raises(ValueError, match="metadata.x must be a string"):
        clean_metadata({"x": {"y": 1}}, 8)
    with pytest.raises(ValueError, match="longer than"):
        clean_metadata({"x": "v" * 300}, 8)
    assert ScoreRequest(transcript="hi").call_id is None
    with pytest.raises(ValidationError, match="transcript"):
        ScoreRequest(transcript=" \n")
    with pytest.raises(ValidationError, match="call_id"):
        ScoreRequest(transcript="hi", call_id="has space")
    assert ScoreRequest(transcript="hi").input_problem() is None
    assert ScoreRequest().input_problem() == (
        "transcript: field required (or give turns: the opening as speaker turns)", ["transcript"])
    turns = [{"speaker": "agent", "text": "hello"}, {"speaker": "caller", "text": "how much"}]
    assert ScoreRequest(transcript="hi", turns=turns).input_problem()[1] == ["transcript", "turns"]
    assert ScoreRequest(turns=turns).text_for(True) == "agent: hello caller: how much"
    assert ScoreRequest(turns=turns).text_for(False) == "how much"


def test_json_log_lines_carry_call_id_and_no_pii():
    from serving.logs import JsonLogFormatter, _CallIdFilter, call_id_context

    record = logging.LogRecord("serving.app", logging.INFO, __file__, 1, "caller said %s",
                               ("call me at 555-123-4567",), None)
    token = call_id_context.set("call-42")
    try:
        _CallIdFilter().filter(record)
    finally:
        call_id_context.reset(token)
    line = json.loads(JsonLogFormatter(redact_pii=True).format(record))
    assert line["call_id"] == "call-42" and line["level"] == "INFO" and line["logger"] == "serving.app"
    assert line["message"] == "caller said call me at [PHONE]"
    assert "555" in json.loads(JsonLogFormatter(redact_pii=False).format(record))["message"]


def test_uploads_are_stored_only_where_configured(tmp_path):
    from serving.uploads import AudioUpload, _store_upload

    config = load_serve_config(environ={}, overrides={"store_audio": True, "audio_dir": str(tmp_path / "kept")})
    _store_upload(config, AudioUpload(b"RIFF....", None, None, "call-7", {}, "call.wav"))
    _store_upload(config, AudioUpload(b"\xff\xff", "mulaw", 8000, "call-8", {}, ""))
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["call-7.wav", "call-8.mulaw"]
    assert ServeConfig().store_audio is False


# ---------------------------------------------------------------------------------------------
# Live sessions in-process (serving.sessions with a fake recognizer and predictor)


class _FixedRecognizer:
    """Hears the same words in any audio: those that fit inside it (a LiveCall transcriber)."""

    WORDS = (("hi", 0.1), ("how", 0.4), ("much", 0.7), ("for", 1.0), ("a", 1.2), ("roof", 1.4))

    def transcribe(self, audio, *, cut_seconds: float = 30.0, offset: float = 0.0):
        from speech.transcript import OpeningTranscript, Word

        end = min(offset + len(audio) / 16000, cut_seconds)
        words = tuple(Word(text, s, s + 0.2) for text, s in self.WORDS if offset <= s and s + 0.2 <= end)
        return OpeningTranscript(words, audio_seconds=len(audio) / 16000)


class _BuyingPredictor:
    """Scores every text as a confident buying call (an ``IntentPredictor`` stand-in)."""

    model_id = "intent/v0"
    meta = None  # no artifact: no speaker tags, no abstention margin

    def predict(self, texts):
        from models.labels import SIGNAL_NAMES
        from models.scores import IntentScores, SignalScore

        probs = {"buying": 0.95, "service": 0.03, "informational": 0.01, "noise": 0.01}
        signals = tuple(SignalScore(name, 0.1, False, ()) for name in SIGNAL_NAMES)
        return [IntentScores("buying", probs, probs["buying"], signals, self.model_id) for _ in texts]


def test_generic_and_twilio_sessions_share_one_pump(tmp_path):
    """The same audio as a generic μ-law call and as a Twilio stream: same events, same stored bytes."""
    import numpy as np
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    from serving.calllog.store import open_store
    from serving.calllog.writer import CallLogWriter
    from serving.client import plan_stream
    from serving.sessions import GenericSession, TwilioSession
    from tests.service_fakes import live_context

    config = load_serve_config(environ={}, overrides={"store_audio": True, "audio_dir": str(tmp_path / "kept")})
    ctx = live_context(asr=_FixedRecognizer(), predictor=_BuyingPredictor(), config=config, workers=1,
                       call_log=CallLogWriter(open_store(f"sqlite:///{tmp_path / 'calls.db'}"), flush_seconds=0))

    async def stream(websocket) -> None:
        await GenericSession(ctx, websocket).run()

    async def twilio(websocket) -> None:
        await TwilioSession(ctx, websocket).run()

    app = Starlette(routes=[WebSocketRoute("/v1/stream", stream), WebSocketRoute("/v1/twilio", twilio)])

    audio = (0.3 * np.sin(2 * np.pi * 220 * np.arange(32000) / 16000)).astype(np.float32)  # 2 s, not silence
    calls = {"/v1/stream": plan_stream(audio, encoding="mulaw", call_id="gen-1", metadata={"source": "ads"}),
             "/v1/twilio": plan_stream(audio, twilio=True, call_id="CA" + "7" * 32, metadata={"source": "ads"})}
    results = {}
    with TestClient(app) as client:
        for path, plan in calls.items():
            with client.websocket_connect(path) as ws:
                for message in (*plan.start, *plan.frames, plan.stop):
                    if isinstance(message, bytes):
                        ws.send_bytes(message)
                    else:
                        ws.send_text(message)
                events = []
                with pytest.raises(WebSocketDisconnect) as closed:
                    while True:
                        events.append(ws.receive_json())
            results[path] = events, closed.value.code
    ctx.decode_pool.shutdown()

    for path, (events, code) in results.items():
        types = [e["type"] for e in events]
        assert code == 1000, path
        assert types[0] == "started" and types[-1] == "final" and types.count("decision") == 1, (path, types)
        assert events[0]["metadata"]["source"] == "ads"
    (generic, _), (twilio, _) = results["/v1/stream"], results["/v1/twilio"]
    assert generic[-1]["transcript"]["text"] == twilio[-1]["transcript"]["text"] == "hi how much for a roof"
    assert generic[-1]["totals"]["audio_seconds"] == pytest.approx(2.0, abs=0.01)
    assert twilio[-1]["totals"]["audio_seconds"] == generic[-1]["totals"]["audio_seconds"]
    assert generic[-1]["decision"]["route"] == twilio[-1]["decision"]["route"]
    kept = tmp_path / "kept"
    assert sorted(p.name for p in kept.iterdir()) == ["CA" + "7" * 32 + ".mulaw.8000.raw", "gen-1.mulaw.8000.raw"]
    assert (kept / "gen-1.mulaw.8000.raw").read_bytes() == (kept / f"CA{'7' * 32}.mulaw.8000.raw").read_bytes()
    assert len((kept / "gen-1.mulaw.8000.raw").read_bytes()) == 16000  # 2 s of 8 kHz μ-law, one byte a sample
    assert not ctx.slots.sessions and ctx.slots.active == 0
    assert ctx.scoring.call_log.close().written == 2  # each final event went to the call log
    logged = {c.call_id: c.call for c in ctx.scoring.call_log.store.calls()}
    assert {k: v.channel for k, v in logged.items()} == {"gen-1": "stream", "CA" + "7" * 32: "twilio"}
    assert logged["gen-1"].transcript == "hi how much for a roof" and logged["gen-1"].source == "ads"
    assert logged["gen-1"].audio_seconds == pytest.approx(2.0, abs=0.01) and logged["gen-1"].label == "buying"


# ---------------------------------------------------------------------------------------------
# Imports, CLI, packaging


def test_serving_imports_no_heavy_libraries():
    code = ("import sys, serving.service, serving.app, serving.sessions, serving.scoring, serving.uploads, serving.client, serving.cli, "
            "serving.stream_cli, serving.schemas, serving.metrics, evaluation.calls_cli, serving.calllog.store, "
            "serving.calllog.writer, serving.calllog.routes, serving.calllog.report, evaluation.calls_export\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'datasets', 'pandas', 'sklearn') if m in sys.modules)\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "CALLINTENT_SERVE_OVERRIDES": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"serving imported {out.stdout.strip()}"


def test_serve_cli_without_a_model_says_how_to_build_one(tmp_path):
    out = subprocess.run([sys.executable, "-m", "callintent", "serve", "--registry", str(tmp_path / "empty")],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert "no model 'production'" in lines[0] and "make serve" in lines[0] and "callintent bootstrap" in lines[0]


def test_serve_cli_dry_run_prints_the_bentoml_command(tmp_path):
    from models.registry import Registry
    from tests.model_fixtures import build_tiny_artifact

    registry = Registry(tmp_path / "registry")
    registry.promote(registry.register(build_tiny_artifact(tmp_path / "artifact")), force=True, reason="test")
    out = subprocess.run([sys.executable, "-m", "callintent", "serve", "--registry", str(registry.root), "--dry-run",
                          "--port", "3111", "--set", "limits.max_live_sessions=4"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "-m bentoml serve serving.service:CallIntentService --host 127.0.0.1 --port 3111" in out.stdout
    assert "intent/v1" in out.stderr
    bad = subprocess.run([sys.executable, "-m", "callintent", "serve", "--registry", str(registry.root), "--dry-run",
                          "--set", "limits.max_live_sessions=0"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "max_live_sessions" in bad.stderr


def test_bentofile_and_dockerfile_use_the_same_start_command():
    bentofile = yaml.safe_load((REPO / "bentofile.yaml").read_text())
    assert bentofile["service"] == "serving.service:CallIntentService"
    for package in ("serving/**", "models/**", "speech/**", "callintent/**"):
        assert package in bentofile["include"]
    packages = " ".join(bentofile["python"]["packages"])
    assert "torch" not in packages and "transformers" not in packages and "bentoml" in packages
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert 'CMD ["callintent", "serve", "--host", "0.0.0.0"' in dockerfile
    assert "[train]" not in dockerfile and "torch" not in dockerfile.replace("no torch", "")
