"""API key rotation without a restart: ``serving.auth.ApiKeySource`` re-reads the key file when it changes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from callintent.errors import UserError
from serving.auth import ApiKeyMiddleware, ApiKeySource

OLD, NEW = "old-key-0123456789", "new-key-9876543210"


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _write(path: Path, text: str) -> None:
    """Write like an operator should: a temporary file renamed over the old one (atomic)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def test_two_key_rotation_with_no_restart(tmp_path, caplog):
    keys_file = tmp_path / "keys.txt"
    _write(keys_file, f"{OLD}\n")
    clock = _Clock()
    source = ApiKeySource(keys_file, environ={}, reload_seconds=2.0, clock=clock)
    assert source.current().check(OLD) and not source.current().check(NEW)

    _write(keys_file, f"{OLD}\n{NEW}  # added for the rotation\n")   # 1. add the new key
    assert not source.current().check(NEW), "looked again before reload_seconds"
    clock.now = 2.0
    assert source.current().check(NEW) and source.current().check(OLD)  # 2. both work while clients move

    _write(keys_file, f"{NEW}\n")                                        # 3. drop the old key
    clock.now = 4.0
    assert source.current().check(NEW) and not source.current().check(OLD)

    with caplog.at_level(logging.ERROR, logger="serving.auth"):
        _write(keys_file, "# emptied by mistake\n")                     # never fail open
        clock.now = 6.0
        assert source.current().enabled and source.current().check(NEW)
        _write(keys_file, "short\n")                                     # an invalid key: keep the old ones
        clock.now = 8.0
        assert source.current().check(NEW) and not source.current().check("short")
        keys_file.unlink()                                               # gone: keep the old ones
        clock.now = 10.0
        assert source.current().check(NEW)
    messages = [r.getMessage() for r in caplog.records]
    assert any("refusing to switch authentication off" in m for m in messages)
    assert any("shorter than 8 characters" in m for m in messages)
    assert not any(NEW in m or OLD in m for m in messages), "a key reached the log"

    _write(keys_file, f"{OLD}\n")                                        # back in business after a fix
    clock.now = 12.0
    assert source.current().check(OLD) and not source.current().check(NEW)


def test_env_keys_stay_and_a_bad_file_fails_at_start(tmp_path):
    keys_file = tmp_path / "keys.txt"
    _write(keys_file, f"{OLD}\n")
    clock = _Clock()
    source = ApiKeySource(None, environ={"CALLINTENT_API_KEYS": "env-key-0123456789",
                                         "CALLINTENT_API_KEYS_FILE": str(keys_file)}, clock=clock)
    _write(keys_file, f"{NEW}\n")
    clock.now = 60.0
    assert source.current().check("env-key-0123456789") and source.current().check(NEW)
    assert not source.current().check(OLD)
    _write(keys_file, "short\n")
    with pytest.raises(UserError, match=r"keys.txt:1: API key is shorter"):
        ApiKeySource(keys_file, environ={})


def test_the_middleware_checks_the_keys_of_the_moment(tmp_path):
    """What the service wires up (keys looked up per request): a rotated key works on the next request."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    keys_file = tmp_path / "keys.txt"
    _write(keys_file, f"{OLD}\n")
    clock = _Clock()
    source = ApiKeySource(keys_file, environ={}, clock=clock)

    async def score(_request):
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/score", score, methods=["POST"])])
    app.add_middleware(ApiKeyMiddleware, keys=source.current)
    with TestClient(app) as client:
        def status(key: str) -> int:
            return client.post("/score", headers={"Authorization": f"Bearer {key}"}).status_code

        assert (status(OLD), status(NEW)) == (200, 401)
        _write(keys_file, f"{NEW}\n")
        clock.now = 5.0
        assert (status(OLD), status(NEW)) == (401, 200)
