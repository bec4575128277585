"""Standard Webhooks signatures: ``whsec_`` secrets, ``v1,`` HMAC-SHA256 over ``{id}.{timestamp}.{body}``.

The receiver gets three headers: ``webhook-id`` (the same on every try of a delivery),
``webhook-timestamp`` (Unix seconds of this try) and ``webhook-signature`` (one or more
space-separated ``v1,<base64>``; two while a rotated secret's predecessor is still honoured).
Any Standard Webhooks library verifies them with the endpoint's secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64 random bytes
TOLERANCE = 300  # seconds a receiver accepts between webhook-timestamp and its clock


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key: the base64 after ``whsec_``."""
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except binascii.Error:
        raise ValueError("not a whsec_ secret") from None


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">``."""
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def headers(secrets_: Iterable[str], msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every secret given (current one first)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": " ".join(sign(s, msg_id, ts, body) for s in secrets_)}


def verify(secret: str, headers_: Mapping[str, str], body: bytes, *, now: float | None = None,
           tolerance: int = TOLERANCE) -> bool:
    """What a receiver does (for our own checks; integrators use a Standard Webhooks library)."""
    h = {k.lower(): v for k, v in headers_.items()}
    msg_id, ts, given = h.get("webhook-id"), h.get("webhook-timestamp", ""), h.get("webhook-signature", "")
    if not msg_id or not ts.isdigit() or not given:
        return False
    if abs((time.time() if now is None else now) - int(ts)) > tolerance:
        return False
    expected = sign(secret, msg_id, int(ts), body)
    return any(hmac.compare_digest(expected, candidate) for candidate in given.split(" "))
