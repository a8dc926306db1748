"""The one scoring path: everything that happens to a call's scores after the model runs.

``POST /score``, ``POST /score_audio`` and live calls all go through one :class:`Scoring`,
built once per worker from the predictor, the decision policy, the redaction setting and the
call log. For a REST batch it runs the model (one transcript at a time when the batch fails),
redacts the view, decides, counts the decision and queues the call-log record; a live call runs
the model through :attr:`Scoring.scorer` and its own core (:class:`serving.live_call.LiveCall`
redacts and decides as words settle), then hands its decision and final event back here to be
counted and logged by the same rules. A missed call or a voicemail is logged here too
(:meth:`Scoring.log_missed`): a voicemail's scores come from :meth:`Scoring.score_items` like any
upload's, and the callback terms from the same policy file.

Webhooks hang off the same two moments: a decision (:meth:`Scoring.decided`) publishes a
``decision`` event and a logged call (:meth:`Scoring.log_call`) a ``final`` event, each with the
call-log record's JSON as its data; :meth:`Scoring.publish` is the one entry for any event type
(the missed-call flow publishes ``callback_due`` through it). Events go on the call-log writer's
queue and are written to the outbox with the records (:mod:`serving.webhooks` delivers them).

Results are typed (:class:`ScoredCall`); the JSON a client sees is made at the HTTP boundary
(:func:`serving.schemas.score_response`).

The model can change while the service runs (:mod:`serving.model_watch` follows a registry
alias): :attr:`Scoring.model` is the :class:`ServingModel` serving now (predictor, the policy
with that model's abstention margin, the live scorer), replaced whole by :meth:`Scoring.swap`.
A ``/score`` batch takes the model once and scores every item with it; a live call takes it at
its start and keeps it to its end; every score carries the version that made it
(``IntentScores.model``), so events and call-log records name it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from models.scores import IntentScores
from serving.callbacks import CallbackPolicy
from serving.calllog.records import CallRecord, WebhookEvent, record_from_scores
from serving.live_call import PredictorScorer
from serving.metrics import service_metrics
from serving.policy import Decision, DecisionPolicy
from serving.redact import redact_scores

if TYPE_CHECKING:
    from serving.calllog.callbacks import MissedCall
    from serving.calllog.writer import CallLogWriter
    from serving.webhook_policy import WebhookRoutes

logger = logging.getLogger(__name__)


class Predictor(Protocol):
    """What scoring needs of a model (``models.predictor.IntentPredictor`` is one)."""

    model_id: str

    def predict(self, texts: Sequence[str]) -> list[IntentScores]:
        ...


@dataclass(frozen=True)
class ScoreItem:
    """One transcript to score, already validated by its route.

    Attributes:
        transcript: The text the model reads (never redacted: redaction happens after scoring).
        call_id: The call.
        metadata: Cleaned call metadata (the policy segments on it).
        channel: Where it came from: ``score``, ``score_audio`` or ``voicemail`` (metrics and call-log label).
        audio_seconds: Audio decoded for it (``score_audio``), for the call log.
    """

    transcript: str
    call_id: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    channel: str = "score"
    audio_seconds: float | None = None


@dataclass(frozen=True)
class ScoredCall:
    """The verdict on one item.

    Attributes:
        call_id: The call.
        text: The scored text as a client may see it (PII redacted unless redaction is off).
        scores: The model's scores, evidence offsets moved onto ``text``.
        decision: The policy's decision.
        model_ms: Milliseconds of the model run this item was part of.
        batch_size: Transcripts in that run (adaptive batching).
    """

    call_id: str
    text: str
    scores: IntentScores
    decision: Decision
    model_ms: float
    batch_size: int


class ScoringFailed(RuntimeError):
    """The model raised on this transcript (the others of its batch were scored): a 500."""


@dataclass(frozen=True)
class ServingModel:
    """One model as scoring uses it; a swap replaces the whole, so a reader never sees half of two.

    Attributes:
        predictor: The model.
        policy: The decision policy, with this model's abstention margin.
        scorer: The live calls' view of the predictor.
    """

    predictor: Predictor
    policy: DecisionPolicy
    scorer: PredictorScorer

    @classmethod
    def of(cls, predictor: Predictor, policy: DecisionPolicy) -> ServingModel:
        return cls(predictor, policy, PredictorScorer(predictor))

    @property
    def model_id(self) -> str:
        """``"<name>/<version>"``."""
        return self.predictor.model_id

    @property
    def speaker_tags(self) -> bool:
        """The model reads speaker-tagged text (``agent: … caller: …``)."""
        return self.scorer.speaker_tags


class Scoring:
    """Score, redact, decide, count and log: the rules every surface shares.

    Args:
        predictor: The model it starts with (:meth:`swap` replaces it).
        policy: The decision policy (its ``model_abstain_margin``: the starting model's).
        redact_pii: Redact card/phone/email/SSN from every text that leaves the process.
        call_log: The call-log writer, or None when ``call_log.enabled`` is false.
        transcript_mode: ``call_log.transcript``: ``off`` | ``redacted`` | ``full``.
        callbacks: Callback terms of missed calls (the policy file's ``callbacks:`` section;
            default: the built-in terms).
        on_callback_due: Also called with the ``callback_due`` event
            (:func:`serving.calllog.callbacks.callback_due_event`) of every missed call logged with
            an SLA, after it is written (the event itself goes to webhooks through :meth:`publish`).
        webhooks: Which events go to which webhook endpoints (the policy's ``webhooks:``), or
            None (webhooks off). Events need the call log: its database holds the outbox.
    """

    def __init__(self, predictor: Predictor, policy: DecisionPolicy, *, redact_pii: bool = True,
                 call_log: CallLogWriter | None = None, transcript_mode: str = "redacted",
                 callbacks: CallbackPolicy | None = None,
                 on_callback_due: Callable[[dict], None] | None = None,
                 webhooks: WebhookRoutes | None = None) -> None:
        self.redact_pii = redact_pii
        self.call_log = call_log
        self.transcript_mode = transcript_mode
        self.callbacks = callbacks if callbacks is not None else CallbackPolicy()
        self.on_callback_due = on_callback_due
        self.webhooks = webhooks
        self._metrics = service_metrics()
        self.model = ServingModel.of(predictor, policy)
        _set_model_info(self._metrics, None, self.model.model_id)

    def model_for(self, predictor: Predictor) -> ServingModel:
        """``predictor`` ready to serve: the same policy file, with that model's abstention margin.

        Raises:
            ValueError: the model's abstention margin is not in [0, 1].
        """
        margin = getattr(getattr(predictor, "meta", None), "abstain_margin", None)
        return ServingModel.of(predictor, DecisionPolicy(self.model.policy.config, model_abstain_margin=margin))

    def swap(self, model: ServingModel) -> ServingModel:
        """Serve ``model`` (:meth:`model_for`) from now on; returns the model it replaced.

        Batches and live calls that already took the old model finish with it.
        """
        old, self.model = self.model, model
        _set_model_info(self._metrics, old.model_id, model.model_id)
        return old

    @property
    def predictor(self) -> Predictor:
        return self.model.predictor

    @property
    def policy(self) -> DecisionPolicy:
        return self.model.policy

    @property
    def scorer(self) -> PredictorScorer:
        return self.model.scorer

    @property
    def model_id(self) -> str:
        return self.model.model_id

    @property
    def speaker_tags(self) -> bool:
        """The model serving now reads speaker-tagged text (``agent: … caller: …``)."""
        return self.model.speaker_tags

    def score_items(self, items: Sequence[ScoreItem]) -> list[ScoredCall | ScoringFailed]:
        """Score a batch in one model run (blocking: run it off the event loop).

        The model sees the original text; PII is redacted before the policy writes its reasons
        and before anything leaves the process.

        Returns:
            One result per item, in order: its :class:`ScoredCall`, or :class:`ScoringFailed`
            when the model failed on that transcript (logged here; the route answers 500).
        """
        model = self.model  # the whole batch on one model, whatever a swap does meanwhile
        started = time.perf_counter()
        try:
            all_scores: list[IntentScores | None] = list(model.predictor.predict([i.transcript for i in items]))
        except Exception:
            # One transcript the model cannot take must not fail the requests batched with it.
            logger.exception("model run on a batch of %d failed; scoring its transcripts one by one", len(items))
            all_scores = [self._predict_alone(model.predictor, item) for item in items]
        model_ms = round((time.perf_counter() - started) * 1000.0, 2)
        results: list[ScoredCall | ScoringFailed] = []
        for item, scores in zip(items, all_scores):
            if scores is None:
                results.append(ScoringFailed(f"call {item.call_id}: the model failed on this transcript "
                                             "(see the batch log)"))
                continue
            results.append(self._verdict(model.policy, item, scores, model_ms=model_ms, batch_size=len(items)))
        return results

    def _verdict(self, policy: DecisionPolicy, item: ScoreItem, scores: IntentScores, *, model_ms: float,
                 batch_size: int) -> ScoredCall:
        text = item.transcript
        if self.redact_pii:
            text, scores = redact_scores(text, scores)
        decision = policy.decide(scores, item.metadata)
        self.decided(item.call_id, channel=item.channel, metadata=item.metadata, scores=scores, decision=decision,
                     shown=text, heard=item.transcript, audio_seconds=item.audio_seconds)
        self.log_call(item.call_id, channel=item.channel, metadata=item.metadata, scores=scores, decision=decision,
                      shown=text, heard=item.transcript, audio_seconds=item.audio_seconds,
                      decision_seconds=item.audio_seconds)
        logger.info("scored %s: %s (buying_intent %.2f) -> %s", item.channel, scores.label, scores.buying_intent,
                    decision.route, extra={"call_id": item.call_id})
        return ScoredCall(item.call_id, text, scores, decision, model_ms=model_ms, batch_size=batch_size)

    @staticmethod
    def _predict_alone(predictor: Predictor, item: ScoreItem) -> IntentScores | None:
        """One transcript's scores, or None (logged) when the model fails on it."""
        try:
            (scores,) = predictor.predict([item.transcript])
            return scores
        except Exception:
            logger.exception("the model failed on one transcript", extra={"call_id": item.call_id})
            return None

    def count(self, decision: Decision, channel: str, *, audio_seconds: float | None = None) -> None:
        """Count a decision (``callintent_decisions_total``); a live call also observes when it came."""
        self._metrics.decisions.labels(route=decision.route, source=channel).inc()
        if audio_seconds is not None:
            self._metrics.time_to_decision.observe(audio_seconds)

    def decided(self, call_id: str, *, channel: str, metadata: Mapping[str, str], scores: IntentScores,
                decision: Decision, shown: str, heard: str, audio_seconds: float | None = None) -> None:
        """A call's decision was made (REST: with its scores; live: the ``decision`` event).

        Counts it and publishes the ``decision`` webhook event (data: the call-log record as it
        stands at the decision, transcript by the log's rule).

        Args:
            audio_seconds: Audio received so far (the record's ``audio_seconds``).
        """
        self.count(decision, channel, audio_seconds=decision.audio_seconds)  # None for text: no time to decision
        if self._publishing:
            record = self._record(call_id, channel=channel, metadata=metadata, scores=scores, decision=decision,
                                  shown=shown, heard=heard, audio_seconds=audio_seconds)
            self.publish("decision", call_id, record.to_json(), route=decision.route, segment=decision.segment)

    def log_call(self, call_id: str, *, channel: str, metadata: Mapping[str, str], scores: IntentScores,
                 decision: Decision, shown: str, heard: str, audio_seconds: float | None = None,
                 decision_seconds: float | None = None) -> None:
        """Queue the call's decision-log record and its ``final`` webhook event (nothing when the call log is off)."""
        if self.call_log is None:
            return
        record = self._record(call_id, channel=channel, metadata=metadata, scores=scores, decision=decision,
                              shown=shown, heard=heard, audio_seconds=audio_seconds, decision_seconds=decision_seconds)
        self.call_log.submit(record)
        self.publish("final", call_id, record.to_json(), route=decision.route, segment=decision.segment)

    def publish(self, event_type: str, call_id: str, data: Mapping[str, Any], *, route: str = "",
                segment: str = "") -> int:
        """Queue a webhook event for the endpoints the policy's ``webhooks:`` rules send it to.

        The one way an event reaches webhooks, whoever makes it: ``decision`` and ``final`` come
        from here, ``callback_due`` from the missed-call flow. The event is written to the
        outbox with the call records (same queue, same transaction), so it survives a restart.

        Args:
            event_type: ``decision``, ``final``, ``callback_due``… (an open set: rules name them).
            call_id: The call it is about.
            data: The event's ``data`` (JSON-serialisable; redact what a CRM must not see).
            route: The call's decision route ("" when it has none, e.g. a missed call without audio).
            segment: The call's policy segment.

        Returns:
            Endpoints it was queued for (0: no rule matched, webhooks off, or the queue was full).
        """
        if not self._publishing:
            return 0
        assert self.webhooks is not None and self.call_log is not None
        endpoints = self.webhooks.endpoints_for(event_type, route=route, segment=segment)
        if not endpoints:
            return 0
        return len(endpoints) if self.call_log.submit(WebhookEvent.of(event_type, call_id, data, endpoints)) else 0

    @property
    def _publishing(self) -> bool:
        return self.webhooks is not None and self.call_log is not None and bool(self.webhooks.rules)

    def _record(self, call_id: str, *, channel: str, metadata: Mapping[str, str], scores: IntentScores,
                decision: Decision, shown: str, heard: str, audio_seconds: float | None = None,
                decision_seconds: float | None = None) -> CallRecord:
        """The call-log record of a call.

        Which transcript is kept is decided here for every surface: the text the client was
        shown (``shown``, already redacted) when redaction is on and the log mode is not
        ``full``; otherwise what was heard (``heard``), which the record redacts itself in
        ``redacted`` mode.
        """
        mode = self.transcript_mode
        transcript, redacted = (shown, True) if self.redact_pii and mode != "full" else (heard, False)
        return record_from_scores(
            call_id, channel=channel, metadata=metadata, scores=scores, decision=decision, transcript=transcript,
            transcript_mode=mode, redacted=redacted, audio_seconds=audio_seconds, decision_seconds=decision_seconds)

    def log_missed(self, call_id: str, *, kind: str, missed_at: dt.datetime, caller: str,
                   metadata: Mapping[str, str], owner: str = "", queue: str = "",
                   voicemail: ScoredCall | None = None) -> tuple[MissedCall, str]:
        """Log a missed call with its callback terms (blocking: a database write; run it off the loop).

        The intent segment is the voicemail's decided class (``unknown`` without a voicemail, for
        an empty one, or when the policy abstained); the policy's ``callbacks:`` section gives the
        segment its priority, SLA, deadline and queue (:attr:`callbacks`). A call owed a callback is then
        published as a ``callback_due`` webhook event (route: the voicemail's, segment: the policy
        segment of its metadata) and handed to ``on_callback_due``.

        Args:
            call_id: The call.
            kind: ``missed`` (no audio) or ``voicemail``.
            missed_at: When the call was missed.
            caller: The caller's number.
            metadata: Cleaned call metadata (source, campaign…).
            owner: Who owns the callback ("" = unassigned).
            queue: Queue override (default: the policy's for the intent).
            voicemail: The voicemail as scored by :meth:`score_items` (``kind`` voicemail).

        Returns:
            The logged missed call and ``created`` / ``replaced``.

        Raises:
            RuntimeError: the call log is disabled (routes check ``call_log`` first).
        """
        from serving.calllog.callbacks import CallbackLog, callback_due_event, missed_call, missed_call_intent
        from serving.calllog.records import as_utc

        if self.call_log is None:
            raise RuntimeError("missed calls need the call log (call_log.enabled is false)")
        intent = missed_call_intent(voicemail.scores if voicemail else None, voicemail.decision if voicemail else None,
                                    voicemail.text if voicemail else "")
        terms = self.callbacks.terms(intent, as_utc(missed_at))
        missed = missed_call(call_id, kind=kind, missed_at=missed_at, caller=caller, metadata=metadata, terms=terms,
                             scores=voicemail.scores if voicemail else None, owner=owner, queue=queue)
        status = CallbackLog(self.call_log.store).record_missed(missed)  # type: ignore[arg-type]
        callback = "not owed" if missed.due_at is None else f"priority {missed.priority} due {missed.due_at:%H:%M} UTC"
        logger.info("missed call (%s, %s): intent %s, callback %s", kind, status, intent, callback,
                    extra={"call_id": call_id})
        event = callback_due_event(missed)
        if event is not None:
            self.publish("callback_due", call_id, event, route=voicemail.decision.route if voicemail else "",
                         segment=self.policy.segment_for(metadata)[0])
            if self.on_callback_due is not None:
                self.on_callback_due(event)
        return missed, status


def _set_model_info(metrics: Any, old: str | None, new: str) -> None:
    """``callintent_model_info{model, version}``: 1 for the version serving, 0 for the one it replaced."""
    if old is not None and old != new:
        metrics.model_info.labels(*_name_version(old)).set(0)
    metrics.model_info.labels(*_name_version(new)).set(1)


def _name_version(model_id: str) -> tuple[str, str]:
    name, _, version = model_id.partition("/")
    return name, version


__all__ = ["ScoreItem", "ScoredCall", "Scoring", "ScoringFailed", "ServingModel"]
