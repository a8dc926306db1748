"""A real ``callintent serve`` process for tests, and helpers to talk to it over HTTP and WebSocket.

Servers are cached by name for the whole pytest session, so every test module that asks for
``start_server("live", …)`` (directly or through the :func:`live_server` fixture) shares one
process: starting BentoML and loading the ASR costs seconds. By default a server serves the tiny
keyword model of ``tests/model_fixtures.py`` from a temporary registry; pass ``registry=`` to
serve a registry with a real trained model instead::

    server = start_server("e2e", tmp_root, registry=trained_registry)
    httpx.post(f"{server.url}/score", json={"transcript": "…"})
    server.stop()

Fixtures (import them into a test module: ``from tests.server_harness import live_server  # noqa: F401``):
``serving_tmp`` (session temporary folder), ``live_server`` (no API keys, the small
:data:`LIVE_OVERRIDES` limits so every limit can be hit cheaply), ``auth_server`` (API keys
:data:`API_KEYS` on).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import wave
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_AUDIO = REPO.parent / "shared" / "audio"
JFK = SHARED_AUDIO / "jfk.flac"
OSR = SHARED_AUDIO / "OSR_us_000_0034_8k.wav"

API_KEYS = ("test-key-0123456789", "other-key-9876543210")

#: Small limits so the limit tests are cheap; the same server runs every other no-auth test.
LIVE_OVERRIDES = {
    "limits.max_live_sessions": 2,
    "limits.idle_timeout_seconds": 3,
    "limits.max_body_bytes": 2_000_000,
    "limits.max_audio_seconds": 40,
    "limits.max_text_chars": 2000,
    "decode_workers": 2,
}

#: A sentence tiny.en transcribes word for word from espeak-ng telephone audio (wav and μ-law).
CLEAR_SPEECH = "can someone come out tomorrow to fix my roof"

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# Servers


@dataclass
class Server:
    """A running ``callintent serve`` process.

    Attributes:
        name: Its key in the session cache.
        url: ``http://127.0.0.1:PORT``.
        process: The ``callintent serve`` process.
        log: Its stdout and stderr.
        registry: The registry it serves (a folder, or an ``s3://`` URL kept as written).
        env: The environment it was started with.
    """

    name: str
    url: str
    process: subprocess.Popen
    log: Path
    registry: Path | str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def ws(self) -> str:
        """The WebSocket base URL (``ws://127.0.0.1:PORT``)."""
        return self.url.replace("http://", "ws://")

    def stop(self) -> None:
        """SIGTERM (the server drains its live calls), then kill after 30 s; idempotent.

        A stopped server leaves the cache, so the next :func:`start_server` of its name starts a new one.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if _SERVERS.get(self.name) is self:
            del _SERVERS[self.name]

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


_SERVERS: dict[str, Server] = {}
_TINY_REGISTRY: list[Path] = []


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_registry(tmp_root: Path) -> Path:
    """A registry holding the tiny keyword model as ``production`` (built once per session)."""
    if _TINY_REGISTRY:
        return _TINY_REGISTRY[0]
    from models.registry import Registry
    from tests.model_fixtures import build_tiny_artifact

    artifact = build_tiny_artifact(tmp_root / "artifact")
    registry = Registry(tmp_root / "registry")
    ref = registry.register(artifact)
    registry.promote(ref, "production", force=True, reason="serving tests: tiny keyword model")
    _TINY_REGISTRY.append(registry.root)
    return registry.root


def start_server(name: str, tmp_root: Path, *, registry: Path | str | None = None,
                 overrides: dict[str, Any] | None = None, env: dict[str, str] | None = None,
                 port: int | None = None, timeout: float = 120.0) -> Server:
    """Start (or reuse) ``callintent serve`` on a free loopback port and wait for ``/readyz``.

    Args:
        name: Cache key: a running server of this name is returned as it is (the other
            arguments are then ignored).
        tmp_root: Working directory of the process; its log and the tiny registry go here.
        registry: Serve this registry's ``production`` model instead of the tiny keyword model
            (a folder, or an ``s3://bucket/prefix`` URL: then give the S3 variables in ``env``).
        overrides: ``ServeConfig`` overrides (``--set key=<JSON value>``).
        env: Extra environment (e.g. ``CALLINTENT_API_KEYS``); the caller's ``CALLINTENT_*``
            variables are not passed on.
        port: Listen here (a replica restarted behind a load balancer keeps its address);
            default a free port.
        timeout: Seconds to wait for readiness.

    Returns:
        The running server.

    Raises:
        RuntimeError: the process exited or was not ready in time (with the tail of its log).
    """
    server = _SERVERS.get(name)
    if server is not None and server.process.poll() is None:
        return server
    if registry is None:
        registry = tiny_registry(tmp_root)
    elif not str(registry).startswith("s3://"):  # Path("s3://b/p") would fold the "//"
        registry = Path(registry)
    port = port or free_port()
    log = tmp_root / f"server-{name}-{port}.log"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("CALLINTENT_")}
    # Each server its own BENTOML_HOME: every `bentoml serve` empties $BENTOML_HOME/prometheus_multiproc_dir
    # at start, which wipes the /metrics counters of any other server sharing it (another test's, or
    # another checkout's on the same machine).
    child_env.update({"CALLINTENT_REGISTRY": str(registry), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
                      "BENTOML_DO_NOT_TRACK": "True", "BENTOML_HOME": str(tmp_root / f"bentoml-{name}-{port}"),
                      # The checkout under test, not whatever the editable install points at.
                      "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
                      **(env or {})})
    command = [sys.executable, "-m", "callintent", "serve", "--host", "127.0.0.1", "--port", str(port)]
    for key, value in (overrides or {}).items():
        command += ["--set", f"{key}={json.dumps(value)}"]
    with log.open("ab") as handle:  # the child keeps its own descriptor; a restart on the same port appends
        process = subprocess.Popen(command, cwd=tmp_root, env=child_env, stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server {name} exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server {name} not ready after {timeout:.0f} s:\n{log.read_text()[-4000:]}")
        time.sleep(0.25)
    server = Server(name, url, process, log, registry, child_env)
    _SERVERS[name] = server
    return server


# ---------------------------------------------------------------------------------------------
# Session fixtures


@pytest.fixture(scope="session")
def serving_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serving")


@pytest.fixture(scope="session")
def live_server(serving_tmp: Path) -> Iterator[Server]:
    """No API keys, :data:`LIVE_OVERRIDES` limits, the tiny keyword model."""
    server = start_server("live", serving_tmp, overrides=LIVE_OVERRIDES)
    yield server
    server.stop()  # idempotent: every module that imported this fixture stops the same process


@pytest.fixture(scope="session")
def tagged_server(serving_tmp: Path) -> Iterator[Server]:
    """Like :func:`live_server`, with the tiny keyword model marked as reading speaker-tagged text."""
    from models.registry import Registry
    from tests.model_fixtures import build_tiny_artifact

    registry = Registry(serving_tmp / "tagged-registry")
    ref = registry.register(build_tiny_artifact(serving_tmp / "tagged-artifact", speaker_tags=True))
    registry.promote(ref, "production", force=True, reason="serving tests: tiny keyword model, speaker tags")
    server = start_server("tagged", serving_tmp, registry=registry.root, overrides=LIVE_OVERRIDES)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def auth_server(serving_tmp: Path) -> Iterator[Server]:
    """API keys :data:`API_KEYS` on, default limits, the tiny keyword model."""
    server = start_server("auth", serving_tmp, env={"CALLINTENT_API_KEYS": ",".join(API_KEYS)})
    yield server
    server.stop()


# ---------------------------------------------------------------------------------------------
# Audio


def pcm16_frames(audio: np.ndarray, frame_ms: int = 20) -> list[bytes]:
    """float32 16 kHz audio as little-endian pcm16 frames of ``frame_ms`` (generic-protocol binary messages)."""
    data = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    step = 16000 * frame_ms // 1000 * 2
    return [data[i:i + step] for i in range(0, len(data), step)]


def spoken(text: str, tmp_path: Path, name: str = "speech.wav", pad_seconds: float = 0.0) -> Path:
    """``text`` spoken by espeak-ng as an 8 kHz telephone wav."""
    from conftest import speak

    return speak(text, tmp_path / name, rate_hz=8000, pad_seconds=pad_seconds)


def decoded(path: Path) -> np.ndarray:
    """An audio file as float32 16 kHz mono."""
    from speech.audio import decode_audio

    return decode_audio(path)


def write_wav(path: Path, audio: np.ndarray, rate: int = 16000) -> Path:
    """Write float audio as a pcm16 mono wav."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path


# ---------------------------------------------------------------------------------------------
# HTTP and WebSocket


def err(response: httpx.Response) -> dict:
    """The ``error`` object of an error response (asserting it is the only key)."""
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


async def recv_json(ws: Any, timeout: float = 30.0) -> dict:
    """The next message, as JSON."""
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def collect_until_close(ws: Any, timeout: float = 60.0, events: list[dict] | None = None) -> list[dict]:
    """Receive JSON events (appended to ``events`` as they arrive) until the server closes."""
    from websockets.exceptions import ConnectionClosed

    events = [] if events is None else events
    deadline = time.monotonic() + timeout
    while True:
        try:
            message = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
        except ConnectionClosed:
            return events
        events.append(json.loads(message))


def close_of(ws: Any) -> tuple[int | None, str]:
    """The close code and reason the server sent, or ``(None, "")``."""
    received = ws.protocol.close_rcvd
    return (received.code, received.reason) if received else (None, "")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from a sync test."""
    return asyncio.run(coro)
