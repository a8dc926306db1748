"""Model updates without a restart (serving/model_watch.py): the service follows the ``production``
alias of a real local registry of tiny artifacts and swaps versions into its one scoring object.

The watch is driven by calling :meth:`ModelWatch.poll` (what its task runs every
``model_watch_seconds``), so nothing waits on a timer; one test runs the task itself at a tiny interval.
"""

from __future__ import annotations

import asyncio
import json
import logging

import numpy as np
import pytest

from models.registry import Registry

V1, V2, V3 = "intent/v1", "intent/v2", "intent/v3"


class _Recognizer:
    """Hears the same words in any audio: those that fit inside it (a LiveCall transcriber)."""

    WORDS = (("hi", 0.1), ("how", 0.4), ("much", 0.7), ("for", 1.0), ("a", 1.2), ("roof", 1.4))

    def transcribe(self, audio, *, cut_seconds: float = 30.0, offset: float = 0.0):
        from speech.transcript import OpeningTranscript, Word

        end = min(offset + len(audio) / 16000, cut_seconds)
        words = tuple(Word(text, s, s + 0.2) for text, s in self.WORDS if offset <= s and s + 0.2 <= end)
        return OpeningTranscript(words, audio_seconds=len(audio) / 16000)


@pytest.fixture(scope="module")
def tiny_artifact(tmp_path_factory):
    from tests.model_fixtures import build_tiny_artifact

    return build_tiny_artifact(tmp_path_factory.mktemp("hotswap") / "artifact")


@pytest.fixture
def registry(tmp_path, tiny_artifact) -> Registry:
    """v1 (production), v2 (a real artifact too) and v3, whose int8 graph is garbage."""
    from models.artifact import ONNX_INT8

    registry = Registry(tmp_path / "registry")
    for _ in range(3):
        registry.register(tiny_artifact)
    (registry.resolve(V3) / ONNX_INT8).write_bytes(b"not an onnx graph")
    registry.promote(V1, force=True, reason="test")
    return registry


@pytest.fixture
def wire(monkeypatch, registry):
    """``wire(**overrides)``: the real service object wired over the registry's ``model`` (default
    production), a fake ASR and a SQLite call log (closed after the test)."""
    from serving.calllog.store import open_store
    from serving.calllog.writer import CallLogWriter
    from serving.config import load_serve_config
    from serving.service import CallIntentService, load_predictor

    for var in ("CALLINTENT_API_KEYS", "CALLINTENT_API_KEYS_FILE", "CALLINTENT_VIEW_TOKEN_SECRET"):
        monkeypatch.delenv(var, raising=False)
    wired = []

    def make(**overrides):
        config = load_serve_config(environ={}, overrides={"registry": str(registry.root), "decode_workers": 1,
                                                          **overrides})
        svc = object.__new__(CallIntentService.inner)
        log = CallLogWriter(open_store(f"sqlite:///{registry.root.parent / f'calls-{len(wired)}.db'}"),
                            flush_seconds=0)
        svc.wire(config, predictor=load_predictor(config, registry.resolve(config.model)), asr=_Recognizer(),
                 live_asr=_Recognizer(), call_log=log, registry=registry)
        wired.append(svc)
        return svc

    yield make
    for svc in wired:
        svc.call_log.close()
        svc.decode_pool.shutdown()


def _metric(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _audio(seconds: float) -> bytes:
    samples = 0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * 16000)) / 16000)  # not silence
    return (samples * 32767).astype("<i2").tobytes()


def _start(ws, call_id: str) -> dict:
    ws.send_text(json.dumps({"type": "start", "call_id": call_id, "encoding": "pcm16", "sample_rate": 16000}))
    return ws.receive_json()




def test_a_promotion_reaches_new_calls_and_batches_while_open_calls_keep_their_model(registry, wire):
    from tests.service_fakes import finish_call, serving_client

    svc = wire()
    watch = svc.model_watch
    assert watch is not None and (watch.name, watch.alias, watch.interval_seconds) == ("intent", "production", 30)
    assert svc.scoring.model_id == V1 and watch.poll() == "unchanged"
    swaps = _metric("callintent_model_swaps_total")
    with serving_client(svc) as client:
        with client.websocket_connect("/v1/stream") as open_call:
            started = _start(open_call, "open-1")
            assert (started["type"], started["model"]) == ("started", V1)
            for i in range(0, 38400, 6400):  # 1.2 s: one decode is due
                open_call.send_bytes(_audio(1.2)[i:i + 6400])
            before = open_call.receive_json()
            assert (before["type"], before["model"]) == ("partial", V1)

            registry.promote(V2, force=True, reason="test: hot swap")
            assert watch.poll() == "swapped"
            assert svc.scoring.model_id == V2 and watch.poll() == "unchanged"

            with client.websocket_connect("/v1/stream") as new_call:  # started after the swap
                assert _start(new_call, "new-1")["model"] == V2
                after_swap = finish_call(new_call, _audio(2.0))
            scored = client.post("/score", json={"transcript": "hi how much for a new roof", "call_id": "rest-1"})
            rest = finish_call(open_call, _audio(0.8))  # the open call goes on after the swap, to its end

    assert scored.status_code == 200 and scored.json()["model"] == V2
    types = [e["type"] for e in rest]
    assert "partial" in types and "decision" in [before["type"], *types] and types[-1] == "final"
    assert {e["model"] for e in rest} == {V1}  # every event after the swap, decision and final included
    assert [e["type"] for e in after_swap][-1] == "final" and {e["model"] for e in after_swap} == {V2}
    svc.call_log.close()
    logged = {c.call_id: c.call.model for c in svc.call_log.store.calls()}
    assert logged == {"open-1": V1, "new-1": V2, "rest-1": V2}  # the version that actually scored each call

    assert _metric("callintent_model_swaps_total") == swaps + 1
    assert _metric("callintent_model_info", model="intent", version="v2") == 1.0
    assert _metric("callintent_model_info", model="intent", version="v1") == 0.0


def test_a_version_that_fails_to_load_is_refused_once_and_the_old_one_keeps_serving(registry, wire, caplog):
    svc = wire()
    watch = svc.model_watch
    now = [1000.0]
    watch.clock = lambda: now[0]
    registry.promote(V2, force=True, reason="test")
    assert watch.poll() == "swapped"
    failures = _metric("callintent_model_swap_failures_total")

    registry.promote(V3, force=True, reason="test: a broken artifact")
    with caplog.at_level(logging.INFO, logger="serving.model_watch"):
        assert watch.poll() == "refused"
        assert watch.poll() == "refused_before"  # not reloaded every poll
        now[0] += watch.retry_seconds - 1
        assert watch.poll() == "refused_before"
    (line,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert line.levelno == logging.ERROR
    message = line.getMessage()
    assert message.startswith(f"model watch: refused {V3}") and "ONNX Runtime cannot load the graph" in message
    assert f"{V2} keeps serving" in message
    assert svc.scoring.model_id == V2 and svc.scoring.score_items([_item("after-refusal")])[0].scores.model == V2
    assert _metric("callintent_model_swap_failures_total") == failures + 1
    assert _metric("callintent_model_info", model="intent", version="v2") == 1.0
    assert _metric("callintent_model_info", model="intent", version="v3") == 0.0

    now[0] += 2  # the backoff is over: tried again, refused again
    assert watch.poll() == "refused" and _metric("callintent_model_swap_failures_total") == failures + 2
    registry.rollback()  # production back to v2: nothing to load
    assert watch.poll() == "unchanged" and svc.scoring.model_id == V2
    registry.promote(V3, force=True, reason="test: again")  # the alias moved to it again: tried at once
    assert watch.poll() == "refused" and _metric("callintent_model_swap_failures_total") == failures + 3
    registry.promote(V1, force=True, reason="test")  # the alias moved on: tried at once
    assert watch.poll() == "swapped" and svc.scoring.model_id == V1


def test_a_version_whose_artifact_names_another_is_refused(registry, wire):
    import dataclasses

    from models.artifact import ArtifactMeta

    svc = wire()
    v2 = registry.resolve(V2)
    dataclasses.replace(ArtifactMeta.load(v2), version="v9").save(v2)  # copied in by hand under another name
    registry.promote(V2, force=True, reason="test")
    failures = _metric("callintent_model_swap_failures_total")
    assert svc.model_watch.poll() == "refused" and svc.scoring.model_id == V1
    assert _metric("callintent_model_swap_failures_total") == failures + 1


def test_an_unreadable_registry_is_reported_once_and_the_model_keeps_serving(registry, wire, caplog):
    svc = wire()
    aliases = registry.root / "intent" / "aliases.json"
    good = aliases.read_text()
    aliases.write_text("{")
    with caplog.at_level(logging.WARNING, logger="serving.model_watch"):
        assert svc.model_watch.poll() == "unreadable" and svc.model_watch.poll() == "unreadable"
    assert len(caplog.records) == 1 and "corrupt aliases file" in caplog.records[0].getMessage()
    aliases.write_text(good)
    assert svc.model_watch.poll() == "unchanged" and svc.scoring.model_id == V1


def test_only_an_alias_is_watched_and_zero_turns_it_off(registry, wire):
    assert wire(model="v1").model_watch is None  # pinned: never swapped
    assert wire(model=str(registry.resolve(V1))).model_watch is None  # a path
    assert wire(model_watch_seconds=0).model_watch is None
    registry.promote(V2, alias="candidate", force=True, reason="test")
    watch = wire(model="intent:candidate", model_watch_seconds=0.5).model_watch
    assert (watch.alias, watch.interval_seconds, watch.scoring.model_id) == ("candidate", 0.5, V2)


@pytest.mark.parametrize("value", [-1, "soon", True, float("inf")])
def test_model_watch_seconds_must_be_a_number_at_least_zero(value):
    from callintent.config import ConfigError
    from serving.config import load_serve_config

    with pytest.raises(ConfigError, match="model_watch_seconds"):
        load_serve_config(environ={}, overrides={"model_watch_seconds": value})


def test_the_watch_task_polls_in_the_background_and_stops_cleanly(registry, wire):
    svc = wire(model_watch_seconds=0.01)

    async def scenario() -> None:
        await svc.start_model_watch()
        task = svc.model_watch._task
        registry.promote(V2, force=True, reason="test")
        for _ in range(500):  # at most ~5 s on a loaded machine; normally a few polls
            if svc.scoring.model_id == V2:
                break
            await asyncio.sleep(0.01)
        await svc.stop_model_watch()
        assert task.done() and svc.model_watch._task is None

    asyncio.run(scenario())
    assert svc.scoring.model_id == V2


def test_readyz_is_ready_with_a_model_and_names_the_version(registry, wire):
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from serving.app import ServingModelHeader

    svc = wire()
    unloaded = object.__new__(type(svc))
    assert asyncio.run(svc.__is_ready__()) is True and asyncio.run(unloaded.__is_ready__()) is False

    async def probe(request):
        return PlainTextResponse("\n")

    app = Starlette(routes=[Route("/readyz", probe), Route("/livez", probe)])
    served = [None]
    with TestClient(ServingModelHeader(app, model_id=lambda: served[0], paths=("/readyz",))) as client:
        assert "x-callintent-model" not in client.get("/readyz").headers  # nothing loaded yet
        served[0] = svc.scoring.model_id
        assert client.get("/readyz").headers["x-callintent-model"] == V1
        registry.promote(V2, force=True, reason="test")
        svc.model_watch.poll()
        served[0] = svc.scoring.model_id
        assert client.get("/readyz").headers["x-callintent-model"] == V2
        assert "x-callintent-model" not in client.get("/livez").headers


def test_readyz_header_reads_the_current_services_model(registry, wire):
    """The header's source in the real service: the current service's scoring (BentoML sets it per worker)."""
    from _bentoml_sdk.service import set_current_service

    from serving.service import _serving_model

    svc = wire()
    set_current_service(svc)
    try:
        assert _serving_model() == V1
        registry.promote(V2, force=True, reason="test")
        svc.model_watch.poll()
        assert _serving_model() == V2
    finally:
        set_current_service(None)
    assert _serving_model() is None


def _item(call_id: str):
    from serving.scoring import ScoreItem

    return ScoreItem("hi how much for a new roof", call_id)


def test_a_swapped_in_model_brings_its_abstention_margin_to_the_same_policy():
    from types import SimpleNamespace

    from serving.policy import DecisionPolicy
    from serving.scoring import Scoring
    from tests.service_fakes import BuyingPredictor

    class Cautious(BuyingPredictor):
        model_id = "intent/v7"
        meta = SimpleNamespace(speaker_tags=True, abstain_margin=0.2)

    scoring = Scoring(BuyingPredictor(), DecisionPolicy.from_yaml())
    first = scoring.model
    new = scoring.model_for(Cautious())
    assert scoring.model is first  # nothing serves it until the swap
    assert scoring.swap(new) is first and scoring.model is new
    assert (scoring.model_id, scoring.speaker_tags, scoring.policy.model_abstain_margin) == ("intent/v7", True, 0.2)
    assert scoring.policy.config is first.policy.config and first.policy.model_abstain_margin is None
    (scored,) = scoring.score_items([_item("v7-call")])
    assert scored.scores.model == "intent/v7"
