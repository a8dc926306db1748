"""The service's configuration: one frozen :class:`ServeConfig`, read from YAML plus environment.

Resolution order (later wins):

1. the dataclass defaults below;
2. the YAML file ``$CALLINTENT_SERVE_CONFIG`` (default ``serving/configs/serve.yaml``);
3. the named variables ``CALLINTENT_MODEL``, ``CALLINTENT_VARIANT``, ``CALLINTENT_REGISTRY``,
   ``CALLINTENT_POLICY``, ``CALLINTENT_ASR_MODEL``, ``CALLINTENT_ASR_DEVICE``,
   ``CALLINTENT_CALL_LOG_URL``;
4. ``$CALLINTENT_SERVE_OVERRIDES``: a JSON object of dotted keys, e.g.
   ``{"limits.max_live_sessions": 2, "asr.device": "cuda"}`` (what ``callintent serve --set`` and
   ``--model`` write, so the command line beats the ambient environment).

API keys are deliberately *not* config values (a config file gets dumped into logs and reports):
they come from ``CALLINTENT_API_KEYS`` / ``CALLINTENT_API_KEYS_FILE`` or ``api_keys_file`` below,
see :mod:`serving.auth`.

The server is started in a fresh process by ``bentoml serve``, so the environment is the one
channel the ``callintent serve`` command has into it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callintent.config import ConfigError, is_number, load_config
from speech.asr import AsrConfig
from serving.live_call import StreamConfig

if TYPE_CHECKING:
    from models.registry import Registry

#: The serving default of ``AsrConfig.encoder_min_seconds`` (see speech.asr): the shortest encoder
#: window that decoded our test calls without Whisper's short-context loops (BENCHMARKS.md).
LIVE_ENCODER_MIN_SECONDS = 10.0

#: The service config shipped with the package.
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent / "configs" / "serve.yaml"

ENV_CONFIG = "CALLINTENT_SERVE_CONFIG"
ENV_OVERRIDES = "CALLINTENT_SERVE_OVERRIDES"
#: env variable -> dotted config key it sets.
ENV_KEYS: dict[str, str] = {
    "CALLINTENT_MODEL": "model",
    "CALLINTENT_VARIANT": "variant",
    "CALLINTENT_REGISTRY": "registry",
    "CALLINTENT_POLICY": "policy",
    "CALLINTENT_ASR_MODEL": "asr.model_path",
    "CALLINTENT_ASR_DEVICE": "asr.device",
    "CALLINTENT_CALL_LOG_URL": "call_log.url",
}

VARIANTS = ("int8", "fp32")


def _positive(name: str, value: object, *, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
        what = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {what} > 0, got {value!r}")


@dataclass(frozen=True)
class LimitsConfig:
    """What one request or call may cost; anything beyond is refused with a 4xx naming the limit.

    Attributes:
        max_body_bytes: Largest HTTP request body (413 beyond). 10 MiB holds a 120 s 44.1 kHz FLAC.
        max_audio_seconds: Longest audio accepted by ``/score_audio`` and on a live call.
        max_live_sessions: Live calls held at once (per worker); the next ``start`` is refused
            with close code 1013 so the calls already running keep real time.
        idle_timeout_seconds: A live call that sends nothing for this long gets its final event
            and is closed (1001, "idle timeout").
        max_text_chars: Longest transcript ``/score`` accepts (the model reads ~150 words anyway).
        max_message_bytes: Largest single WebSocket message (an audio frame or a JSON message).
        max_metadata_items: Most metadata keys per request or call.
        max_inflight_requests: ``POST /score`` requests handled at once (per worker); the next
            one gets 503 ``overloaded`` with ``Retry-After`` at once instead of a slow answer.
            64 is two full batches: more only queues behind the batcher.
        max_inflight_audio_requests: ``POST /score_audio`` requests handled at once (per
            worker); each holds a decode worker for seconds, which live calls share, so a
            burst of uploads is shed (503) rather than let it slow every live call down.
        drain_seconds: On SIGTERM, how long the live calls still open get to end with their final
            event before the server stops (a call's last decode and scoring take a few seconds
            on loaded cores). A deployment's grace period must cover it (deploy/).
        unready_seconds: On SIGTERM, the least time between ``/readyz`` turning 503 and the
            server closing its connections, however soon the live calls end (part of
            ``drain_seconds``, never more). A load balancer needs that long to stop sending
            requests (HAProxy: ``fall`` × ``inter``); requests it still sends are answered. With
            none, a request sent on a kept-alive connection as the server closed it was lost
            (tests/test_replicas.py). In Kubernetes the preStop hook has already waited.
    """

    max_body_bytes: int = 10 * 1024 * 1024
    max_audio_seconds: float = 120.0
    max_live_sessions: int = 8
    idle_timeout_seconds: float = 30.0
    max_text_chars: int = 5000
    max_message_bytes: int = 256 * 1024
    max_metadata_items: int = 32
    max_inflight_requests: int = 64
    max_inflight_audio_requests: int = 2
    drain_seconds: float = 10.0
    unready_seconds: float = 2.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_live_sessions", "max_text_chars", "max_message_bytes",
                     "max_metadata_items", "max_inflight_requests", "max_inflight_audio_requests"):
            _positive(name, getattr(self, name), integer=True)
        for name in ("max_audio_seconds", "idle_timeout_seconds", "drain_seconds"):
            _positive(name, getattr(self, name))
        if not is_number(self.unready_seconds) or not 0 <= self.unready_seconds <= self.drain_seconds:
            raise ValueError(f"unready_seconds must be a number in [0, drain_seconds={self.drain_seconds:g}], "
                             f"got {self.unready_seconds!r}")


@dataclass(frozen=True)
class BatchingConfig:
    """BentoML adaptive batching of ``/score`` (see ``CallIntentService.score_batch``).

    The batcher learns how long a run of n texts takes and waits only as long as a fuller batch
    pays off, so batches are small when traffic is light. ``max_latency_ms`` is a deadline, not a
    waiting window: a request the batcher predicts cannot be answered within it is shed with
    503 ``overloaded`` (BentoML's default, 60 s, would queue forever; too small sheds bursts).

    Attributes:
        max_batch_size: Most transcripts per model run.
        max_latency_ms: Queue + model time after which a request is shed (503).
    """

    max_batch_size: int = 32
    max_latency_ms: int = 1000

    def __post_init__(self) -> None:
        if isinstance(self.max_batch_size, bool) or not isinstance(self.max_batch_size, int) \
                or self.max_batch_size < 2:
            raise ValueError(f"max_batch_size must be an integer >= 2, got {self.max_batch_size!r}")
        _positive("max_latency_ms", self.max_latency_ms, integer=True)


#: The call log's SQLite file in the registry root, when ``call_log.url`` is empty.
CALL_LOG_FILE = "calls.db"

#: ``call_log.transcript`` values: no transcript, PII-redacted, or as heard.
TRANSCRIPT_MODES = ("off", "redacted", "full")


@dataclass(frozen=True)
class CallLogConfig:
    """The decision log: every scored call (REST or live) written to a database, plus outcomes.

    Writes go through a bounded write-behind queue on a background thread (``serving.calllog.writer``),
    so scoring never waits for the database; when the queue is full a record is dropped and counted
    (``callintent_call_log_dropped_total``), never blocking a call.

    Attributes:
        enabled: Log scored calls and serve ``/calls/…`` (off: the routes answer 404).
        url: SQLAlchemy URL, e.g. ``postgresql+psycopg://user@db/callintent`` (password from
            ``PGPASSWORD`` or ``~/.pgpass`` rather than the URL); ``""`` = SQLite file
            ``calls.db`` in the registry root (``ServeConfig.registry``, else ``$CALLINTENT_REGISTRY``
            or ``models/registry``; :meth:`ServeConfig.call_log_url`), so the log lives with the
            models in one mounted volume. Env ``CALLINTENT_CALL_LOG_URL``.
        transcript: What is kept of the transcript: ``off`` (nothing; such calls cannot be exported
            for training), ``redacted`` (card/phone/email/SSN replaced), ``full`` (as heard).
        queue_size: Records waiting for the database at most; beyond, new records are dropped.
        batch_size: Records per database transaction at most.
        flush_seconds: How long the writer gathers a batch after the first record arrives (fewer,
            larger transactions; a call appears in ``GET /calls/{id}`` after about this long).
        retry_max_seconds: Longest wait between retries while the database is unavailable
            (backoff doubles from 0.1 s up to this).
        drain_seconds: Longest a graceful shutdown waits for queued records to be written.
    """

    enabled: bool = True
    url: str = ""
    transcript: str = "redacted"
    queue_size: int = 10000
    batch_size: int = 200
    flush_seconds: float = 0.2
    retry_max_seconds: float = 10.0
    drain_seconds: float = 15.0

    def __post_init__(self) -> None:
        if self.transcript not in TRANSCRIPT_MODES:
            raise ValueError(f"transcript must be one of {list(TRANSCRIPT_MODES)}, got {self.transcript!r}")
        for name in ("queue_size", "batch_size"):
            _positive(name, getattr(self, name), integer=True)
        for name in ("retry_max_seconds", "drain_seconds"):
            _positive(name, getattr(self, name))
        if isinstance(self.flush_seconds, bool) or not isinstance(self.flush_seconds, (int, float)) \
                or self.flush_seconds < 0:
            raise ValueError(f"flush_seconds must be a number >= 0, got {self.flush_seconds!r}")


#: What a webhook endpoint name may look like (it is part of the idempotency key and metric labels).
_ENDPOINT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class WebhookEndpoint:
    """One receiver of webhook events (which events it gets: ``webhooks:`` in the policy file).

    The signing secret is never a config value (a config file gets dumped into logs and
    reports): it comes from an environment variable or a file (a mounted secret), one secret per
    line or comma-separated; with two, every POST carries both signatures (rotation, SECURITY.md).

    Attributes:
        name: Names it in the policy file, the idempotency key, ``/metrics`` and the delivery log.
        url: Where events are POSTed (``https://…``; ``http://`` only inside a private network).
        secret_env: Environment variable that holds the secret.
        secret_file: File that holds the secret (e.g. ``/run/secrets/crm_webhook``).
    """

    name: str
    url: str
    secret_env: str = ""
    secret_file: str = ""

    def __post_init__(self) -> None:
        if not _ENDPOINT_NAME.match(self.name):
            raise ValueError(f"webhooks.endpoints name {self.name!r} must be lower-case letters, digits, _ and -")
        if not self.url.startswith(("https://", "http://")):
            raise ValueError(f"webhooks.endpoints[{self.name}].url must be an http(s):// URL, got {self.url!r}")
        if bool(self.secret_env) == bool(self.secret_file):
            raise ValueError(f"webhooks.endpoints[{self.name}]: set exactly one of secret_env (an environment "
                             "variable) or secret_file (a file); the secret itself never goes in the config")

    def secrets(self, environ: Mapping[str, str] | None = None) -> tuple[bytes, ...]:
        """The signing secrets, read now.

        Raises:
            ConfigError: the variable is unset or the file unreadable, or a secret is shorter
                than 16 characters.
        """
        env = os.environ if environ is None else environ
        if self.secret_env:
            raw, where = env.get(self.secret_env, ""), f"${self.secret_env}"
            if not raw.strip():
                raise ConfigError(f"webhooks.endpoints[{self.name}]: {where} is not set (the signing secret)")
        else:
            where = self.secret_file
            try:
                raw = Path(self.secret_file).read_text(encoding="utf-8")
            except OSError as e:
                raise ConfigError(f"webhooks.endpoints[{self.name}]: cannot read secret_file {where} "
                                  f"({e.strerror or e})") from None
        secrets = [part.strip() for line in raw.splitlines() for part in line.split(",") if part.strip()]
        if not secrets or any(len(s) < 16 for s in secrets):
            raise ConfigError(f"webhooks.endpoints[{self.name}]: the secret in {where} must be at least 16 characters "
                              "(use 32 random bytes: python -c \"import secrets; print(secrets.token_hex(32))\")")
        return tuple(s.encode("utf-8") for s in secrets)


@dataclass(frozen=True)
class WebhookConfig:
    """Webhook delivery: endpoints, timeouts and retries (``serving/webhooks.py``).

    Events are written to an outbox table in the call-log database with the call record, and a
    background thread POSTs them; a failed attempt is retried after ``first_retry_seconds``,
    doubling up to ``retry_max_seconds``, for at most ``max_attempts`` attempts; then the
    delivery is ``failed`` (kept: ``callintent webhooks retry`` sends it again).

    Attributes:
        endpoints: The receivers; none = webhooks off.
        timeout_seconds: One attempt's limit (connect + send + answer); beyond it the attempt
            failed (the receiver may still have got it: it dedupes by ``Idempotency-Key``).
        max_attempts: Attempts before a delivery is marked ``failed``.
        first_retry_seconds: Wait after the first failed attempt.
        retry_max_seconds: Longest wait between attempts (the backoff's cap).
        poll_seconds: How often the outbox is read for due deliveries when idle.
        batch_size: Due deliveries read per round.
    """

    endpoints: tuple[WebhookEndpoint, ...] = ()
    timeout_seconds: float = 5.0
    max_attempts: int = 20
    first_retry_seconds: float = 2.0
    retry_max_seconds: float = 900.0
    poll_seconds: float = 1.0
    batch_size: int = 50

    def __post_init__(self) -> None:
        names = [e.name for e in self.endpoints]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"webhooks.endpoints names must be unique, {duplicates[0]!r} appears twice")
        for name in ("max_attempts", "batch_size"):
            _positive(name, getattr(self, name), integer=True)
        for name in ("timeout_seconds", "first_retry_seconds", "retry_max_seconds", "poll_seconds"):
            _positive(name, getattr(self, name))
        if self.retry_max_seconds < self.first_retry_seconds:
            raise ValueError("retry_max_seconds must be >= first_retry_seconds")

    @property
    def enabled(self) -> bool:
        return bool(self.endpoints)


@dataclass(frozen=True)
class ServeConfig:
    """How the live scoring service runs.

    Attributes:
        model: Registry reference of the intent model (``production``, ``candidate``, ``v3``,
            ``intent/v3``…), resolved by :class:`models.registry.Registry`.
        model_watch_seconds: How often a running service reads the registry alias that ``model``
            names and, when it moved, loads the new version and swaps it in (calls already open
            finish on their model; a version that fails to load is refused and the old one keeps
            serving; ``serving/model_watch.py``). 0 = never; a pinned version (``v3``) is never watched.
        variant: ``int8`` (default, faster on CPU) or ``fp32``.
        registry: Registry root, a directory or ``s3://bucket/prefix``; ``""`` = the registry's own
            default (``$CALLINTENT_REGISTRY`` or ``models/registry``).
        registry_endpoint_url: S3-compatible endpoint of an ``s3://`` registry; ``""`` =
            ``$AWS_ENDPOINT_URL``, else AWS S3.
        model_threads: ONNX Runtime intra-op threads; 0 = all cores.
        model_spinning: Let those threads spin-wait between runs (ONNX Runtime's default).
            Off by default: on a few cores the spinning takes CPU from the live calls' ASR
            (BENCHMARKS.md "Streaming vs offline ASR").
        asr: Speech recognition (bundled tiny.en by default; any CTranslate2 directory; cpu/cuda).
            ``cpu_threads: 0`` becomes cores / ``decode_workers`` and ``num_workers`` at least
            ``decode_workers``, so concurrent live decodes share the cores without oversubscribing.
            ``encoder_min_seconds`` defaults to :data:`LIVE_ENCODER_MIN_SECONDS` here (not
            Whisper's 30 s): live re-decodes of a few seconds then cost a few seconds' worth.
        stream: The live-call engine (decode cadence, window, stable-prefix rule…); its
            ``redact_pii`` is replaced by the top-level ``redact_pii``.
        policy: Decision policy YAML; ``""`` = ``serving/configs/policy.yaml``.
        limits: Request, audio and session limits.
        batching: Adaptive batching of ``/score``.
        decode_workers: ASR decodes that run at the same time (each with cores / workers
            threads). Live calls share them through a batcher (``live_batch_size``).
        live_batch_size: Most live calls whose pending audio is decoded together in one ASR
            batch (serving/asr_batcher.py); 1 = each call's decode runs alone.
        redact_pii: Replace card numbers, phone numbers, emails and SSNs in every transcript and
            evidence span the service returns or logs.
        store_audio: Keep uploaded and streamed audio on disk (under ``audio_dir``); off by default,
            so audio only ever lives in memory.
        audio_dir: Where stored audio goes when ``store_audio`` is on.
        api_keys_file: File of accepted API keys (one per line), besides ``$CALLINTENT_API_KEYS``.
        log_json: Structured JSON log lines (with ``call_id``) from the ``serving`` loggers.
        workers: BentoML worker processes (each loads its own models; live-session limits are
            per worker).
        timeout_seconds: BentoML request timeout (HTTP routes; WebSocket calls are bounded by
            ``limits`` instead).
        call_log: The decision log and outcome feedback (``serving/calllog``).
        webhooks: Webhook endpoints and delivery (which events go where: ``webhooks:`` in the
            policy file); needs the call log, where the outbox lives.
    """

    model: str = "production"
    model_watch_seconds: float = 30.0
    variant: str = "int8"
    registry: str = ""
    registry_endpoint_url: str = ""
    model_threads: int = 0
    model_spinning: bool = False
    asr: AsrConfig = field(default_factory=lambda: AsrConfig(encoder_min_seconds=LIVE_ENCODER_MIN_SECONDS))
    stream: StreamConfig = field(default_factory=StreamConfig)
    policy: str = ""
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    decode_workers: int = 2
    live_batch_size: int = 8
    redact_pii: bool = True
    store_audio: bool = False
    audio_dir: str = "served_audio"
    api_keys_file: str = ""
    log_json: bool = True
    workers: int = 1
    timeout_seconds: int = 120
    call_log: CallLogConfig = field(default_factory=CallLogConfig)
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"model must be a registry reference such as 'production', got {self.model!r}")
        if isinstance(self.model_watch_seconds, bool) or not isinstance(self.model_watch_seconds, (int, float)) \
                or not 0 <= self.model_watch_seconds < float("inf"):
            raise ValueError(f"model_watch_seconds must be a number >= 0 (0 = off), got {self.model_watch_seconds!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {list(VARIANTS)}, got {self.variant!r}")
        if not isinstance(self.model_spinning, bool):
            raise ValueError(f"model_spinning must be true or false, got {self.model_spinning!r}")
        if isinstance(self.model_threads, bool) or not isinstance(self.model_threads, int) or self.model_threads < 0:
            raise ValueError(f"model_threads must be an integer >= 0, got {self.model_threads!r}")
        for name in ("decode_workers", "live_batch_size", "workers", "timeout_seconds"):
            _positive(name, getattr(self, name), integer=True)
        if self.store_audio and not self.audio_dir:
            raise ValueError("audio_dir must be set when store_audio is true")
        if self.webhooks.enabled and not self.call_log.enabled:
            raise ValueError("webhooks.endpoints need the call log (call_log.enabled: true): the webhook outbox "
                             "lives in its database")

    def call_log_url(self) -> str:
        """The call log's database URL: ``call_log.url``, else the SQLite file
        ``sqlite:///<registry root>/calls.db`` (registry root: ``registry``, else
        ``$CALLINTENT_REGISTRY`` or ``models/registry``), so the log lives with the models it
        measures, in one mounted volume.

        Returns:
            A SQLAlchemy URL (``serving.calllog.store.open_store`` opens it).
        """
        if self.call_log.url:
            return self.call_log.url
        registry = self.open_registry()
        if registry.remote:
            raise ConfigError(f"call_log.url must be set when the registry is an object store ({registry.root}): "
                              "the default SQLite file lives in a local registry directory "
                              "(use postgresql+psycopg://… for replicas)")
        return f"sqlite:///{registry.root / CALL_LOG_FILE}"

    def open_registry(self) -> Registry:
        """The model registry this config names (``registry``, ``registry_endpoint_url``)."""
        from models.registry import Registry

        return Registry(self.registry or None, endpoint_url=self.registry_endpoint_url or None)


def load_serve_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ServeConfig:
    """Resolve the service config from file, environment and explicit overrides.

    Args:
        path: YAML file; None = ``$CALLINTENT_SERVE_CONFIG`` or :data:`DEFAULT_CONFIG_PATH`.
        environ: Environment to read (default ``os.environ``).
        overrides: Dotted keys applied last (tests and the CLI).

    Returns:
        The validated config.

    Raises:
        ConfigError: unreadable file, unknown key, bad value, or malformed
            ``$CALLINTENT_SERVE_OVERRIDES`` (the message names it).
    """
    env = os.environ if environ is None else environ
    if path is None:
        path = env.get(ENV_CONFIG) or DEFAULT_CONFIG_PATH
    merged: dict[str, Any] = {key: env[var] for var, key in ENV_KEYS.items() if env.get(var)}
    raw = env.get(ENV_OVERRIDES, "").strip()
    if raw:
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ConfigError(f"${ENV_OVERRIDES}: not valid JSON: {e}") from None
        if not isinstance(parsed, dict):
            raise ConfigError(f"${ENV_OVERRIDES}: expected a JSON object of dotted keys, got {type(parsed).__name__}")
        merged.update(parsed)
    merged.update(overrides or {})
    return load_config(path, ServeConfig, merged)


def config_env(config_path: str | Path | None, overrides: Mapping[str, Any]) -> dict[str, str]:
    """Environment variables that make a server process resolve the same config.

    Args:
        config_path: YAML file or None (the default file).
        overrides: Dotted keys (JSON-serialisable values).

    Returns:
        Variables to add to the child's environment.
    """
    env: dict[str, str] = {}
    if config_path is not None:
        env[ENV_CONFIG] = str(Path(config_path).resolve())
    if overrides:
        env[ENV_OVERRIDES] = json.dumps(dict(overrides))
    return env
