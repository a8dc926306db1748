"""The live floor (serving/live_floor.py), its feeds and pages' routes, view tokens and the screen-pop words.

In process, with a fake recognizer and a keyword predictor: calls are played through the real
``/v1/stream`` route of a wired service (serving/service.py), then read back through
``/v1/calls/live`` and ``/v1/calls/{call_id}/events``. The real browser over a real server is
tests/test_live_pages_browser.py.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import numpy as np
import pytest

from callintent.config import ConfigError
from callintent.errors import UserError
from models.labels import SIGNAL_NAMES
from models.scores import Evidence, IntentScores, SignalScore
from serving.auth import Unauthorized
from serving.live_call import StreamEvent
from serving.live_floor import MAX_PENDING, OVERFLOW, LiveFloor
from serving.policy import Decision, DecisionPolicy
from serving.screen_pop import headline, load_next_steps
from serving.view_tokens import FLOOR_SCOPE, Forbidden, ViewTokens, call_scope, load_view_tokens

SECRET = b"s" * 32
KEY = "live-test-key-0123456789"

WORDS = (("hi", 0.1), ("i", 0.3), ("saw", 0.5), ("your", 0.7), ("facebook", 0.9), ("ad", 1.2), ("how", 1.4),
         ("much", 1.6), ("call", 1.8), ("me", 2.0), ("at", 2.2), ("555-123-4567", 2.4))
KEYWORDS = {"much": "price_inquiry", "facebook": "ad_reference"}


class _Recognizer:
    """Hears :data:`WORDS` (those inside the audio): a LiveCall transcriber."""

    def transcribe(self, audio, *, cut_seconds: float = 30.0, offset: float = 0.0):
        from speech.transcript import OpeningTranscript, Word

        end = min(offset + len(audio) / 16000, cut_seconds)
        words = tuple(Word(t, s, s + 0.15) for t, s in WORDS if offset <= s and s + 0.15 <= end)
        return OpeningTranscript(words, audio_seconds=len(audio) / 16000)


class _KeywordPredictor:
    """Buying probability grows with the keywords heard; each keyword is a present signal with evidence."""

    model_id = "intent/v0"
    meta = SimpleNamespace(speaker_tags=False, abstain_margin=None)

    def predict(self, texts):
        return [_scores(t) for t in texts]


def _scores(text: str) -> IntentScores:
    found = {name: text.find(word) for word, name in KEYWORDS.items() if word in text}
    buying = 0.3 + 0.3 * len(found)
    rest = (1 - buying) / 3
    probs = {"buying": buying, "service": rest, "informational": rest, "noise": rest}
    signals = tuple(SignalScore(n, 0.97 if n in found else 0.02, n in found,
                                (Evidence(found[n], found[n] + len(w), w, 0.97),) if n in found else ())
                    for n in SIGNAL_NAMES for w in [next((w for w, s in KEYWORDS.items() if s == n), "")])
    return IntentScores(max(probs, key=probs.get), probs, buying, signals, "intent/v0")


def _tone(seconds: float) -> bytes:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2").tobytes()


def _service(monkeypatch, *, keys: bool = False, overrides: dict | None = None):
    from serving.config import load_serve_config
    from tests.service_fakes import wired_service

    monkeypatch.delenv("CALLINTENT_API_KEYS", raising=False)
    monkeypatch.delenv("CALLINTENT_API_KEYS_FILE", raising=False)
    if keys:
        monkeypatch.setenv("CALLINTENT_API_KEYS", KEY)
    monkeypatch.setenv("CALLINTENT_VIEW_TOKEN_SECRET", SECRET.decode())
    config = load_serve_config(environ={}, overrides={"decode_workers": 1, **(overrides or {})})
    return wired_service(config, predictor=_KeywordPredictor(), asr=_Recognizer())


def _play(client, call_id: str, *, seconds: float = 2.7, headers: dict | None = None, source: str = "facebook_ads"):
    """One call through the real /v1/stream route; returns its events."""
    from tests.service_fakes import finish_call

    with client.websocket_connect("/v1/stream", headers=headers or {}) as ws:
        ws.send_text(json.dumps({"type": "start", "call_id": call_id, "encoding": "pcm16", "sample_rate": 16000,
                                 "metadata": {"source": source, "campaign": "spring-roofs", "caller": "555 867 5309"}}))
        assert ws.receive_json()["type"] == "started"
        return finish_call(ws, _tone(seconds))


def _sse(text: str) -> list[tuple[str, dict]]:
    """An event-stream body as (event, data) pairs (keepalive comments skipped)."""
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if "data" in fields:
            out.append((fields.get("event", "message"), json.loads(fields["data"])))
    return out


# ---------------------------------------------------------------------------------------------
# View tokens


def test_a_view_token_opens_its_call_until_it_expires_and_never_another_call():
    now = [1_000_000.0]
    tokens = ViewTokens(SECRET, clock=lambda: now[0])
    minted = tokens.mint(call_scope("call-a"), ttl_seconds=60)
    assert minted.expires_at == 1_000_060 and minted.scope == "call:call-a"
    tokens.check(minted.token, call_scope("call-a"))  # opens its call
    with pytest.raises(Forbidden, match="another call"):
        tokens.check(minted.token, call_scope("call-b"))
    with pytest.raises(Forbidden):
        tokens.check(minted.token, FLOOR_SCOPE)  # a call's token never opens the floor
    now[0] += 59.9
    tokens.check(minted.token, call_scope("call-a"))
    now[0] += 0.1
    with pytest.raises(Unauthorized, match="expired"):
        tokens.check(minted.token, call_scope("call-a"))


def test_view_tokens_cannot_be_forged_or_moved_to_another_call():
    tokens = ViewTokens(SECRET)
    token = tokens.mint(call_scope("call-a")).token
    version, payload, signature = token.split(".")
    import base64

    other = base64.urlsafe_b64encode(json.dumps({"scope": "call:call-b", "exp": 9_999_999_999}).encode()).rstrip(b"=")
    for forged in (f"{version}.{other.decode()}.{signature}", token[:-2] + ("AA" if token[-2:] != "AA" else "BB"),
                   "v2." + payload + "." + signature, "garbage", "", f"v1.{payload}é.{signature}"):
        with pytest.raises(Unauthorized):
            tokens.check(forged, call_scope("call-b") if "call-b" in forged else call_scope("call-a"))
    with pytest.raises(Unauthorized):  # another server's secret
        ViewTokens(b"t" * 32).check(token, call_scope("call-a"))
    floor = tokens.mint(FLOOR_SCOPE).token
    tokens.check(floor, call_scope("any-call"))  # a supervisor's token opens every call
    with pytest.raises(ValueError, match="ttl_seconds"):
        tokens.mint(FLOOR_SCOPE, ttl_seconds=0)


def test_view_token_secret_from_env_or_file(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("f" * 40 + "\n")
    from_file, configured = load_view_tokens(environ={"CALLINTENT_VIEW_TOKEN_SECRET_FILE": str(secret_file)})
    assert configured
    ViewTokens(b"f" * 40).check(from_file.mint(FLOOR_SCOPE).token, FLOOR_SCOPE)  # the file's secret, stripped
    random_one, configured = load_view_tokens(environ={})
    assert not configured
    with pytest.raises(UserError, match="shorter than 32 bytes"):
        load_view_tokens(environ={"CALLINTENT_VIEW_TOKEN_SECRET": "short"})
    with pytest.raises(UserError, match="cannot read"):
        load_view_tokens(environ={"CALLINTENT_VIEW_TOKEN_SECRET_FILE": str(tmp_path / "missing")})


# ---------------------------------------------------------------------------------------------
# Screen-pop words and next steps


def test_headline_in_plain_words():
    scores = _scores("hi i saw your facebook ad how much")
    present = [s for s in scores.signals if s.present]
    assert headline("buying", 0.9, present, {"source": "facebook_ads"}) == \
        "Likely buyer — asked for a price, saw your Facebook ad"
    assert [s.name for s in present] == ["ad_reference", "price_inquiry"]
    assert headline("buying", 0.6, present[:1], {}) == "Possible buyer — mentioned your ad"
    assert headline("noise", 0.3, [], {}) == "Not sure yet (possibly spam or a wrong number?)"
    assert headline("buying", 0.8, [], {"source": "google_ads"}) == "Likely buyer — came from Google"
    assert headline(None, 0.0, [], {}) == "Listening…"


def test_next_steps_come_from_the_policy_file_and_the_policy_ignores_them(tmp_path):
    steps = load_next_steps()
    assert set(steps) == {"priority_sales", "standard", "screen", "undetermined"}
    policy = tmp_path / "policy.yaml"
    policy.write_text("default: {priority_threshold: 0.7}\nnext_steps:\n  priority_sales: Book the visit now.\n")
    assert load_next_steps(policy) == {"priority_sales": "Book the visit now."}
    assert DecisionPolicy.from_yaml(policy).config.default.priority_threshold == 0.7  # the policy skips next_steps
    policy.write_text("next_steps:\n  vip: Roll out the carpet.\n")
    with pytest.raises(ConfigError, match="unknown key 'next_steps.vip'"):
        load_next_steps(policy)
    policy.write_text("next_steps:\n  screen: [a, b]\n")
    with pytest.raises(ConfigError, match="next_steps.screen must be one line"):
        load_next_steps(policy)
    policy.write_text("default: {priority_threshold: 0.7}\nnext_step: {}\n")  # a typo is still caught
    with pytest.raises(ConfigError, match="unknown key 'next_step'"):
        DecisionPolicy.from_yaml(policy)


# ---------------------------------------------------------------------------------------------
# The floor on its own


def _event(kind: str, call_id: str, seq: int, text: str = "", seconds: float = 0.0, **kw) -> StreamEvent:
    scores = _scores(text) if kind in ("partial", "decision", "final") else None
    return StreamEvent(kind, call_id, seq, model="intent/v0", audio_seconds=seconds, stable=text, scores=scores,
                       **kw)


def test_calls_join_the_floor_on_start_update_and_leave_on_end():
    async def scenario():
        floor = LiveFloor()
        with floor.subscribe() as everyone, floor.subscribe("c1") as one:
            floor.publish("stream", _event("started", "c1", 0, metadata={"source": "facebook", "caller": "x"}))
            floor.publish("stream", _event("started", "c2", 0))
            assert [c.call_id for c in floor.calls()] == ["c1", "c2"]
            assert floor.get("c1").metadata == {"source": "facebook"}  # telephony details stay off the floor
            floor.publish("stream", _event("partial", "c1", 1, "hi i saw your facebook ad", 1.5))
            floor.publish("stream", _event("partial", "c1", 2, "hi i saw your facebook ad how much", 2.0))
            decision = Decision("priority_sales", "buying", 0.9, 0.9, ("buying",), "default", 2.0, True)
            floor.publish("stream", _event("decision", "c1", 3, "hi i saw your facebook ad how much", 2.0,
                                           decision=decision))
            call = floor.get("c1")
            assert call.series == ((1.5, 0.6), (2.0, 0.9)) and call.decision.route == "priority_sales"
            assert {s.name for s in call.present_signals} == {"ad_reference", "price_inquiry"}
            floor.end("c2")  # a session that ended without a final event
            floor.publish("stream", _event("final", "c1", 4, decision=decision))
            assert floor.calls() == [] and floor.get("c1").ended  # gone from the floor, kept for late viewers
            floor.end("c1")  # idempotent
            kinds = []
            while not everyone.queue.empty():
                kind, call = everyone.queue.get_nowait()
                kinds.append((kind, call.call_id))
            mine = []
            while not one.queue.empty():
                kind, payload = one.queue.get_nowait()
                mine.append(payload.type if kind == "event" else kind)
        assert kinds == [("call", "c1"), ("call", "c2"), ("call", "c1"), ("call", "c1"), ("call", "c1"),
                         ("ended", "c2"), ("call", "c1"), ("ended", "c1")]
        assert mine == ["started", "call", "partial", "call", "partial", "call", "decision", "call", "final", "call",
                        "ended"]
        assert not floor._subscribers

    asyncio.run(scenario())


def test_a_subscriber_that_falls_behind_is_cut_off_and_the_call_goes_on():
    async def scenario():
        floor = LiveFloor()
        with floor.subscribe("c1") as slow:
            floor.publish("stream", _event("started", "c1", 0))
            for i in range(MAX_PENDING):
                floor.publish("stream", _event("partial", "c1", i + 1, "how much", 1.0 + i / 100))
            assert slow.cut_off and await slow.get() is OVERFLOW
            assert floor.get("c1").series[-1][0] == pytest.approx(1.0 + (MAX_PENDING - 1) / 100)

    asyncio.run(scenario())


def test_the_floor_redacts_when_the_service_does_not():
    floor = LiveFloor(events_redacted=False)
    floor.publish("stream", _event("started", "c1", 0, metadata={"source": "call me at 555-123-4567"}))
    text = "how much call me at 555-123-4567"
    decision = Decision("priority_sales", "buying", 0.9, 0.9, ("said '555-123-4567'",), "default", 2.0)
    floor.publish("stream", _event("decision", "c1", 1, text, 2.0, decision=decision))
    call = floor.get("c1")
    assert "4567" not in call.transcript and "[PHONE]" in call.transcript
    assert call.metadata["source"] == "call me at [PHONE]" and call.decision.reasons == ("said '[PHONE]'",)
    (price,) = [s for s in call.present_signals if s.name == "price_inquiry"]
    assert call.transcript[price.evidence[0].start:price.evidence[0].end] == "much"


# ---------------------------------------------------------------------------------------------
# The routes, in process


def test_a_played_call_is_on_the_feeds_redacted_with_headline_and_next_step(monkeypatch):
    from tests.service_fakes import serving_client

    svc = _service(monkeypatch)
    with serving_client(svc) as client:
        assert client.get("/v1/calls/live").json() == {"calls": []}
        page = client.get("/live")
        assert page.status_code == 200 and 'data-page="wallboard"' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["referrer-policy"] == "no-referrer"
        pop = client.get("/live/calls/any-call")
        assert pop.status_code == 200 and 'data-page="screen-pop"' in pop.text
        assert client.get("/live/static/live.js").status_code == 200
        assert client.get("/live/static/missing.js").json()["error"]["code"] == "not_found"

        events = _play(client, "pop-1")
        assert events[-1]["type"] == "final"
        body = client.get("/v1/calls/pop-1/events")  # ended: one "call" summary, then the stream ends
        assert body.headers["content-type"].startswith("text/event-stream")
        ((kind, call),) = _sse(body.text)
        assert kind == "call" and call["state"] == "ended" and call["call_id"] == "pop-1"
        assert call["source"] == "facebook_ads" and call["campaign"] == "spring-roofs"
        assert call["headline"] == "Likely buyer — asked for a price, saw your Facebook ad"
        assert call["decision"]["route"] == "priority_sales"
        assert call["next_step"] == load_next_steps()["priority_sales"]
        assert "4567" not in call["transcript"] and "[PHONE]" in call["transcript"]
        marks = {s["name"]: call["transcript"][e["start"]:e["end"]] for s in call["signals"] for e in s["evidence"]}
        assert marks == {"ad_reference": "facebook", "price_inquiry": "much"}
        assert [p[1] for p in call["series"]] == sorted(p[1] for p in call["series"]) and call["series"][-1][1] == 0.9
        assert client.get("/v1/calls/live").json() == {"calls": []}  # it left the floor

        bad = client.get("/v1/calls/live?route=vip")
        assert bad.status_code == 422 and bad.json()["error"]["fields"] == ["query.route"]


def test_the_floor_lists_open_calls_with_filters(monkeypatch):
    from serving.live_call import StreamEvent as Event
    from tests.service_fakes import serving_client

    svc = _service(monkeypatch)
    floor = svc.live.floor
    floor.publish("stream", Event("started", "a", 0, metadata={"source": "google_ads"}))
    floor.publish("twilio", Event("started", "b", 0, metadata={"source": "facebook"}))
    decision = Decision("screen", "noise", 0.1, 0.8, ("noise",), "default", 5.0)
    floor.publish("twilio", _event("decision", "b", 1, "press one", 5.0, decision=decision))
    with serving_client(svc) as client:
        everything = client.get("/v1/calls/live").json()["calls"]
        assert [(c["call_id"], c["channel"], c["state"]) for c in everything] == [("a", "stream", "live"),
                                                                                 ("b", "twilio", "live")]
        assert [c["call_id"] for c in client.get("/v1/calls/live?route=pending").json()["calls"]] == ["a"]
        screened = client.get("/v1/calls/live?route=screen").json()["calls"]
        assert [c["call_id"] for c in screened] == ["b"] and screened[0]["next_step"] == load_next_steps()["screen"]
        assert [c["call_id"] for c in client.get("/v1/calls/live?source=GOOGLE_ADS").json()["calls"]] == ["a"]


def test_feeds_need_an_api_key_or_a_view_token_for_that_call(monkeypatch):
    from tests.service_fakes import serving_client

    svc = _service(monkeypatch, keys=True)
    bearer = {"Authorization": f"Bearer {KEY}"}
    with serving_client(svc) as client:
        assert client.get("/live").status_code == 200  # the pages hold no data: open
        assert client.get("/v1/calls/live").status_code == 401
        assert client.post("/v1/calls/pop-2/view-token").status_code == 401  # minting needs the API key
        assert client.get("/v1/calls/live", params={"token": KEY}).status_code == 401  # a key is no view token
        _play(client, "pop-2", headers=bearer)
        minted = client.post("/v1/calls/pop-2/view-token", headers=bearer, json={"ttl_seconds": 120})
        assert minted.status_code == 200
        token = minted.json()
        assert token["scope"] == "call:pop-2" and token["url"] == f"/live/calls/pop-2?token={token['token']}"
        own = client.get("/v1/calls/pop-2/events", params={"token": token["token"]})
        assert own.status_code == 200 and _sse(own.text)[0][1]["call_id"] == "pop-2"
        other = client.get("/v1/calls/pop-3/events", params={"token": token["token"]})
        assert other.status_code == 403 and other.json()["error"]["code"] == "forbidden"
        floor = client.get("/v1/calls/live", params={"token": token["token"]})
        assert floor.status_code == 403
        assert client.get("/v1/calls/live", headers=bearer).status_code == 200
        floor_token = client.post("/v1/calls/live/view-token", headers=bearer).json()
        assert floor_token["scope"] == "floor" and floor_token["url"].startswith("/live?token=")
        assert client.get("/v1/calls/live", params={"token": floor_token["token"]}).status_code == 200
        assert client.get("/v1/calls/pop-2/events", params={"token": floor_token["token"]}).status_code == 200
        assert client.post("/v1/calls/bad id!/view-token", headers=bearer).status_code == 422

    # Expired: the same service a day later.
    svc.view_tokens._clock = lambda: 9_999_999_999.0
    with serving_client(svc) as client:
        expired = client.get("/v1/calls/pop-2/events", params={"token": token["token"]})
        assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
