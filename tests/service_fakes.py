"""The service's parts around fakes: a live session's context and the real routes, in process.

``live_context`` is what a live session gets (slots, decode pool, ASR, scoring, settings, API
keys); ``wired_service`` is a :class:`serving.service.CallIntentService` wired with a fake model
and ASR (nothing loaded), whose real routes ``serving_client`` serves through a Starlette
``TestClient`` on the service's own app (middlewares, error contract and all).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from models.labels import SIGNAL_NAMES
from models.scores import IntentScores, SignalScore
from serving.auth import ApiKeys
from serving.config import ServeConfig, load_serve_config
from serving.limits import SessionSlots
from serving.policy import DecisionPolicy
from serving.scoring import Scoring
from serving.sessions import LiveContext, LiveSettings


class BuyingPredictor:
    """A model that hears every text as a sure buyer (0.95), with no signal present."""

    model_id = "intent/v0"
    meta = SimpleNamespace(speaker_tags=False, abstain_margin=None)

    def predict(self, texts):
        probs = {"buying": 0.95, "service": 0.03, "informational": 0.01, "noise": 0.01}
        signals = tuple(SignalScore(name, 0.1, False, ()) for name in SIGNAL_NAMES)
        return [IntentScores("buying", probs, probs["buying"], signals, self.model_id) for _ in texts]


class RecordingLog:
    """A call-log writer that keeps what it is given, in order."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def submit(self, record: Any) -> bool:
        self.records.append(record)
        return True


def live_context(*, asr: Any, predictor: Any, config: ServeConfig | None = None, call_log: Any = None,
                 workers: int = 2, api_keys: ApiKeys | None = None) -> LiveContext:
    """A live session's context over a fake ASR and predictor (default config: the built-in one)."""
    config = config or load_serve_config(environ={})
    scoring = Scoring(predictor, DecisionPolicy.from_yaml(), redact_pii=config.redact_pii, call_log=call_log,
                      transcript_mode=config.call_log.transcript)
    return LiveContext(slots=SessionSlots(config.limits.max_live_sessions),
                       decode_pool=concurrent.futures.ThreadPoolExecutor(workers), asr=asr, scoring=scoring,
                       settings=LiveSettings.of(config), api_keys=lambda: api_keys or ApiKeys())


def wired_service(config: ServeConfig, *, predictor: Any, asr: Any, call_log: Any = None) -> Any:
    """A service instance wired with fakes (its ``__init__``, which loads the models, is skipped)."""
    from serving.service import CallIntentService

    svc = object.__new__(CallIntentService.inner)
    svc.wire(config, predictor=predictor, asr=asr, call_log=call_log, live_asr=asr)
    return svc


@contextlib.contextmanager
def serving_client(svc: Any) -> Iterator[Any]:
    """A ``TestClient`` on the service's app, with ``svc`` as the current service (as BentoML sets it)."""
    from _bentoml_sdk.service import set_current_service
    from starlette.testclient import TestClient

    from serving.service import app

    set_current_service(svc)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client
    finally:
        set_current_service(None)
        if "score_batch" in vars(svc):  # its batcher was made: stop its dispatcher
            svc.score_batch.close()
        svc.decode_pool.shutdown()


def finish_call(ws: Any, audio: bytes, *, chunk_bytes: int = 6400) -> list[dict]:
    """Send the rest of a live call's audio over a test client's ``/v1/stream`` socket, then ``stop``;
    returns its events until the server closes the socket."""
    import json

    import pytest
    from starlette.websockets import WebSocketDisconnect

    for i in range(0, len(audio), chunk_bytes):
        ws.send_bytes(audio[i:i + chunk_bytes])
    ws.send_text(json.dumps({"type": "stop"}))
    events = []
    with pytest.raises(WebSocketDisconnect):
        while True:
            events.append(ws.receive_json())
    return events

