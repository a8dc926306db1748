"""Missed calls, voicemails and callback attempts through the service's real routes (in process,
a fake model and ASR, a real call log on SQLite): SLA assignment per intent segment, the
``callback_due`` hook, attempted vs connected kept apart, and the 4xx answers."""

from __future__ import annotations

import datetime as dt
import io
import json
import time
import wave
from types import SimpleNamespace

import numpy as np
import pytest

from serving.calllog.callbacks import CallbackLog
from serving.calllog.store import open_store
from serving.calllog.writer import CallLogWriter

MISSED_AT = dt.datetime(2026, 11, 10, 14, 0, 0)  # a Tuesday, 09:00 in New York: inside business hours


class _Ear:
    """An ASR stand-in that hears whatever the test put in ``words`` (one word every 0.3 s)."""

    def __init__(self) -> None:
        self.words: tuple[str, ...] = ()

    def transcribe_timed(self, audio, *, cut_seconds: float = 30.0, offset: float = 0.0):
        from speech.transcript import OpeningTranscript, Word

        words = tuple(Word(w, 0.3 * i, 0.3 * i + 0.2) for i, w in enumerate(self.words))
        return OpeningTranscript(words, audio_seconds=len(audio) / 16000), 0.01

    transcribe = None


class _Model:
    """A classifier stand-in: "how much" is a buying call (price_inquiry present), "broken" a service
    call, "press one" noise, anything else informational — each at 0.91."""

    model_id = "intent/v0"
    meta = SimpleNamespace(speaker_tags=False, abstain_margin=None)

    def predict(self, texts):
        from models.labels import CLASS_NAMES, SIGNAL_NAMES
        from models.scores import IntentScores, SignalScore

        out = []
        for text in texts:
            label = ("buying" if "how much" in text else "service" if "broken" in text
                     else "noise" if "press one" in text else "informational")
            probs = {c: (0.91 if c == label else 0.03) for c in CLASS_NAMES}
            signals = tuple(SignalScore(name, 0.9 if (name == "price_inquiry" and label == "buying") else 0.1,
                                        name == "price_inquiry" and label == "buying", ()) for name in SIGNAL_NAMES)
            out.append(IntentScores(label, probs, probs["buying"], signals, self.model_id))
        return out


def _wav(seconds: float = 1.0) -> bytes:
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(16000 * seconds)) / 16000) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(tone.tobytes())
    return buffer.getvalue()


@pytest.fixture
def service(tmp_path):
    from serving.config import load_serve_config
    from tests.service_fakes import serving_client, wired_service

    store = open_store(f"sqlite:///{tmp_path / 'calls.db'}")
    writer = CallLogWriter(store, flush_seconds=0.01)
    ear = _Ear()
    svc = wired_service(load_serve_config(environ={}), predictor=_Model(), asr=ear, call_log=writer)
    events: list[dict] = []
    svc.scoring.on_callback_due = events.append
    with serving_client(svc) as client:
        yield SimpleNamespace(client=client, ear=ear, events=events, store=store, writer=writer)
    writer.close(5.0)
    store.close()


def _voicemail(service, call_id: str, words: str, **fields):
    service.ear.words = tuple(words.split())
    data = {"kind": "voicemail", "call_id": call_id, "caller": "+15551234567",
            "missed_at": "2026-11-10T14:00:00Z", "metadata": json.dumps({"source": "google_ads"}), **fields}
    return service.client.post("/score_audio", data=data, files={"file": ("vm.wav", _wav(), "audio/wav")})


def test_a_missed_call_without_audio_is_logged_unknown_with_its_sla_and_due_event(service):
    r = service.client.post("/calls/missed", json={
        "call_id": "m-1", "caller": "+15550001111", "missed_at": "2026-11-10T14:00:00Z",
        "metadata": {"source": "facebook", "campaign": "winter"}, "owner": "b.kim"})
    assert r.status_code == 201, r.text
    missed = r.json()["missed_call"]
    # policy.yaml callbacks: unknown -> priority 2, SLA 1h, queue sales: due 14:00 + 1 h = 15:00
    assert (missed["kind"], missed["intent"], missed["priority"], missed["sla_seconds"]) == (
        "missed", "unknown", 2, 3600.0)
    assert missed["due_at"] == "2026-11-10T15:00:00.000Z"
    assert (missed["queue"], missed["owner"], missed["source"], missed["caller"]) == ("sales", "b.kim", "facebook",
                                                                                       "+15550001111")
    assert missed["buying_intent"] is None and missed["signals"] == []
    assert [e["call_id"] for e in service.events] == ["m-1"]
    assert service.events[0]["type"] == "callback_due" and service.events[0]["due_at"] == "2026-11-10T15:00:00.000Z"

    logged = CallbackLog(service.store).get("m-1").missed
    assert logged.due_at == dt.datetime(2026, 11, 10, 15, 0) and logged.priority == 2
    got = service.client.get("/calls/m-1").json()
    assert got["call"] is None and got["missed"]["intent"] == "unknown" and got["callbacks"] == []

    # The same id reported again replaces the record (200), the time moving its deadline with it.
    again = service.client.post("/calls/missed", json={"call_id": "m-1", "missed_at": "2026-11-10T16:30:00Z"})
    assert again.status_code == 200 and again.json()["status"] == "replaced"
    assert again.json()["missed_call"]["due_at"] == "2026-11-10T17:30:00.000Z"


@pytest.mark.parametrize(("words", "intent", "priority", "sla", "due", "queue", "signals"), [
    ("hi how much for a new roof", "buying", 1, 900.0, "2026-11-10T14:15:00.000Z", "sales", ["price_inquiry"]),
    ("my boiler is broken again", "service", 3, 14400.0, "2026-11-10T18:00:00.000Z", "support", []),
    ("what are your opening hours", "informational", 4, 86400.0, "2026-11-11T14:00:00.000Z", "front_desk", []),
    ("press one to claim your prize", "noise", None, None, None, "", []),
    ("", "unknown", 2, 3600.0, "2026-11-10T15:00:00.000Z", "sales", []),  # a silent voicemail says nothing
])
def test_a_voicemail_is_scored_and_logged_missed_with_the_sla_of_its_intent(service, words, intent, priority, sla,
                                                                             due, queue, signals):
    r = _voicemail(service, "vm-1", words)
    assert r.status_code == 200, r.text
    body = r.json()
    missed = body["missed_call"]
    assert (missed["kind"], missed["intent"], missed["priority"], missed["sla_seconds"], missed["due_at"],
            missed["queue"], missed["signals"]) == ("voicemail", intent, priority, sla, due, queue, signals)
    if words:
        assert body["intent"] == intent and missed["buying_intent"] == pytest.approx(body["buying_intent"])
    # A callback is owed (an event for the CRM) exactly when the intent has an SLA.
    assert [e["call_id"] for e in service.events] == ([] if due is None else ["vm-1"])
    # The recording went through the one scoring path: its record is in the calls table, channel voicemail.
    deadline = time.monotonic() + 5
    while service.store.get("vm-1") is None or service.store.get("vm-1").call is None:
        assert time.monotonic() < deadline, "the voicemail's call record never reached the log"
        time.sleep(0.02)
    call = service.store.get("vm-1").call
    assert call.channel == "voicemail" and call.label == body["intent"]


def test_a_plain_upload_is_not_a_missed_call(service):
    service.ear.words = ("how", "much")
    r = service.client.post("/score_audio", files={"file": ("a.wav", _wav(), "audio/wav")},
                            data={"call_id": "plain-1"})
    assert r.status_code == 200 and "missed_call" not in r.json()
    assert CallbackLog(service.store).get("plain-1") is None and service.events == []


def test_callback_attempts_keep_attempted_and_connected_apart_and_are_idempotent(service):
    assert _voicemail(service, "vm-2", "hi how much for a new roof").status_code == 200
    rang_out = {"attempted_at": "2026-11-10T14:10:00Z", "connected": False, "agent": "a.lee", "outcome": "no_answer"}
    reached = {"attempted_at": "2026-11-10T14:40:00Z", "connected": True, "agent": "a.lee", "outcome": "booked"}
    first = service.client.post("/calls/vm-2/callbacks", json=rang_out)
    assert first.status_code == 201 and first.json()["status"] == "recorded", first.text
    assert service.client.post("/calls/vm-2/callbacks", json=reached).status_code == 201
    retry = service.client.post("/calls/vm-2/callbacks", json=reached)  # a CRM retry changes nothing
    assert retry.status_code == 200 and retry.json()["status"] == "unchanged"
    flipped = service.client.post("/calls/vm-2/callbacks", json={**rang_out, "connected": True})
    assert flipped.status_code == 409 and flipped.json()["error"]["code"] == "callback_conflict"
    assert flipped.json()["error"]["fields"] == ["connected"]

    entry = CallbackLog(service.store).get("vm-2")
    assert [(a.connected, a.outcome) for a in entry.attempts] == [(False, "no_answer"), (True, "booked")]
    assert entry.first_attempt.attempted_at == dt.datetime(2026, 11, 10, 14, 10)  # attempted: 10 min after
    assert entry.first_connect.attempted_at == dt.datetime(2026, 11, 10, 14, 40)  # connected: 40 min after
    got = service.client.get("/calls/vm-2").json()
    assert [c["connected"] for c in got["callbacks"]] == [False, True]

    # An attempt for a call not logged as missed is kept (202) — the CRM may be faster than the log.
    stray = service.client.post("/calls/nobody/callbacks", json=reached)
    assert stray.status_code == 202 and stray.json()["missed_logged"] is False


def test_overdue_callbacks_are_listed_most_urgent_first(service):
    _voicemail(service, "vm-buy", "hi how much for a new roof")  # due 14:15
    _voicemail(service, "vm-fix", "my boiler is broken again")  # due 18:00
    service.client.post("/calls/missed", json={"call_id": "m-2", "missed_at": "2026-11-10T14:00:00Z"})  # due 15:00
    service.client.post("/calls/vm-fix/callbacks", json={"attempted_at": "2026-11-10T14:05:00Z", "connected": False})
    log = CallbackLog(service.store)
    assert [e.missed.call_id for e in log.due(dt.datetime(2026, 11, 10, 14, 14))] == []
    assert [e.missed.call_id for e in log.due(dt.datetime(2026, 11, 10, 14, 15))] == ["vm-buy"]
    # vm-fix had an attempt: not overdue however late it is
    assert [e.missed.call_id for e in log.due(dt.datetime(2026, 11, 11))] == ["vm-buy", "m-2"]


@pytest.mark.parametrize(("path", "kwargs", "field"), [
    ("/score_audio", {"data": {"kind": "callback"}}, "kind"),
    ("/score_audio", {"data": {"caller": "+1555"}}, "caller"),  # voicemail fields on a plain upload
    ("/score_audio", {"data": {"kind": "voicemail", "missed_at": "yesterday"}}, "missed_at"),
    ("/calls/missed", {"json": {"caller": "x" * 65}}, "caller"),
    ("/calls/missed", {"json": {"missed_at": "soon"}}, "missed_at"),
    ("/calls/missed", {"json": {"missed_at": "9999-12-31T23:59:59-23:59"}}, "missed_at"),
    ("/score_audio", {"data": {"kind": "voicemail", "missed_at": "0001-01-01T00:00:00+14:00"}}, "missed_at"),
    ("/calls/c-1/callbacks", {"json": {"connected": True, "attempted_at": "1970-01-01T00:00:00Z"}}, "attempted_at"),
    ("/calls/missed", {"json": {"metadata": {"source": {"nested": 1}}}}, "metadata"),
    ("/calls/c-1/callbacks", {"json": {"attempted_at": "2026-11-10T14:10:00Z"}}, "connected"),
    ("/calls/c-1/callbacks", {"json": {"connected": "yes", "attempted_at": "2026-11-10T14:10:00Z"}}, "connected"),
    ("/calls/c-1/callbacks", {"json": {"connected": True}}, "attempted_at"),
])
def test_bad_fields_answer_422_naming_the_field(service, path, kwargs, field):
    if path == "/score_audio":
        kwargs = {**kwargs, "files": {"file": ("a.wav", _wav(), "audio/wav")}}
    r = service.client.post(path, **kwargs)
    assert r.status_code == 422, r.text
    assert any(f == field or f.startswith(field + ".") for f in r.json()["error"]["fields"])


def test_without_a_call_log_missed_calls_are_refused(tmp_path):
    from serving.config import load_serve_config
    from tests.service_fakes import serving_client, wired_service

    svc = wired_service(load_serve_config(environ={}), predictor=_Model(), asr=_Ear())
    with serving_client(svc) as client:
        missed = client.post("/calls/missed", json={"caller": "+1555"})
        voicemail = client.post("/score_audio", data={"kind": "voicemail"},
                                files={"file": ("a.wav", _wav(), "audio/wav")})
    assert missed.status_code == 404 and missed.json()["error"]["code"] == "call_log_disabled"
    assert voicemail.status_code == 422 and voicemail.json()["error"]["fields"] == ["kind"]


def test_a_database_outage_is_a_503_to_retry(service, monkeypatch):
    import sqlalchemy.exc

    def down(self, missed):
        raise sqlalchemy.exc.OperationalError("INSERT", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(CallbackLog, "record_missed", down)
    missed = service.client.post("/calls/missed", json={"caller": "+1555"})
    voicemail = _voicemail(service, "vm-down", "hi how much for a new roof")
    for r in (missed, voicemail):
        assert r.status_code == 503 and r.json()["error"]["code"] == "call_log_unavailable", r.text
        assert r.headers["retry-after"] == "5"
    assert service.events == []  # nothing logged, nothing announced
