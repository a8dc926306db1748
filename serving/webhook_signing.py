"""How a webhook POST is signed, and the headers it carries (the receiver's side is in the README).

Each POST carries::

    Content-Type: application/json
    Callintent-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=<hex>…]
    Idempotency-Key: <event id>:<endpoint name>
    Callintent-Event: decision | final | callback_due | …
    Callintent-Delivery-Attempt: <1, 2, …>

``v1`` is ``HMAC-SHA256(secret, "<t>." + body)`` over the exact body bytes, one per configured
secret (two while a secret is rotated). ``t`` is the time of *this* attempt, so a receiver can
refuse old replays; the body (and so the idempotency key) is the same on every attempt.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from callintent import __version__

SIGNATURE_HEADER = "Callintent-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "Callintent-Event"
ATTEMPT_HEADER = "Callintent-Delivery-Attempt"


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """Hex ``HMAC-SHA256(secret, "<timestamp>." + body)``."""
    return hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[bytes], timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<sig>`` with one ``v1`` per secret."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    return ",".join([f"t={timestamp}", *(f"v1={signature(s, timestamp, body)}" for s in secrets)])


def delivery_headers(secrets: Sequence[bytes], timestamp: int, body: bytes, *, idempotency_key: str,
                     event_type: str, attempt: int) -> dict[str, str]:
    """Every header of one delivery attempt."""
    return {
        "Content-Type": "application/json",
        "User-Agent": f"callintent-webhooks/{__version__}",
        SIGNATURE_HEADER: signature_header(secrets, timestamp, body),
        IDEMPOTENCY_HEADER: idempotency_key,
        EVENT_HEADER: event_type,
        ATTEMPT_HEADER: str(attempt),
    }


__all__ = ["ATTEMPT_HEADER", "EVENT_HEADER", "IDEMPOTENCY_HEADER", "SIGNATURE_HEADER", "delivery_headers",
           "signature", "signature_header"]
