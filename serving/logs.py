"""The service's log lines: JSON (or plain text) on stderr, PII-redacted, stamped with the call id.

A live call's work runs partly in decode threads, so the call id travels in a ``ContextVar``
(:data:`call_id_context`) rather than a logger adapter: the sessions copy the context into the
pool, and :class:`_CallIdFilter` stamps the id on every line, whichever thread writes it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

from serving.config import ServeConfig

#: The call whose work is running (set by a live session when its call starts).
call_id_context: contextvars.ContextVar[str | None] = contextvars.ContextVar("call_id", default=None)

#: The project loggers the service routes to its handler.
PROJECT_LOGGERS = ("serving", "models", "speech", "callintent")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, call_id, exception.

    Args:
        redact_pii: Redact card/phone/email/SSN from the message (log lines quote metadata,
            transcripts and reasons).
    """

    def __init__(self, redact_pii: bool = True) -> None:
        super().__init__()
        self.redact_pii = redact_pii

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name,
            "message": _redacted(record.getMessage(), self.redact_pii),
        }
        call_id = getattr(record, "call_id", None)
        if call_id:
            out["call_id"] = call_id
        if record.exc_info:
            out["exception"] = _redacted(self.formatException(record.exc_info), self.redact_pii)
        return json.dumps(out, ensure_ascii=False)


class _RedactingFormatter(logging.Formatter):
    def __init__(self, redact_pii: bool) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(call_id)s] %(message)s")
        self.redact_pii = redact_pii

    def format(self, record: logging.LogRecord) -> str:
        return _redacted(super().format(record), self.redact_pii)


def _redacted(text: str, redact_pii: bool) -> str:
    if not redact_pii:
        return text
    from serving.redact import redact

    return redact(text).text


class _CallIdFilter(logging.Filter):
    """Adds ``record.call_id`` from the live session's context (also inside decode threads)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "call_id", None):
            record.call_id = call_id_context.get() or ""
        return True


def configure_logging(config: ServeConfig) -> None:
    """Route the project's loggers to stderr as JSON lines (or plain text), PII-redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter(config.redact_pii) if config.log_json
                         else _RedactingFormatter(config.redact_pii))
    handler.addFilter(_CallIdFilter())
    for name in PROJECT_LOGGERS:
        project_logger = logging.getLogger(name)
        project_logger.handlers[:] = [handler]
        project_logger.setLevel(logging.INFO)
        project_logger.propagate = False


__all__ = ["JsonLogFormatter", "call_id_context", "configure_logging"]
