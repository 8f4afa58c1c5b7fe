"""Signed calls: X-Cron-Signature `t=<unix>,v1=<hex HMAC-SHA256>` over time, method, path, body.

The signed message is ``f"{t}.{METHOD}.{path}.".encode() + body``: `path` is the URL path and
query exactly as sent (``/crons/report?x=1``), `body` the raw bytes (empty when there is none).
A verifier accepts any of its secrets (current and next, during a rotation) and a timestamp at
most `tolerance` seconds away from its own clock, either way (replay protection).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from gateway.scheduler.caller import request_body
from gateway.scheduler.caller import request_target

HEADER = "X-Cron-Signature"
TOLERANCE_SECONDS = 300
_MAX_HEADER = 1000


def message(t: int, method: str, path: str, body: bytes) -> bytes:
    """Return the bytes that are signed."""
    return f"{t}.{method.upper()}.{path}.".encode("utf-8", "surrogatepass") + body


def _digest(secret: str, signed: bytes) -> str:
    return hmac.new(secret.encode("utf-8", "surrogatepass"), signed, hashlib.sha256).hexdigest()


def sign(secret: str, method: str, path: str, body: bytes, now: datetime) -> str:
    """Return the X-Cron-Signature value for a request sent at `now`."""
    t = int(now.timestamp())
    return f"t={t},v1={_digest(secret, message(t, method, path, body))}"


def verify(
    header: str,
    secrets: Iterable[str],
    method: str,
    path: str,
    body: bytes,
    now: datetime,
    tolerance: float = TOLERANCE_SECONDS,
) -> bool:
    """Return True if `header` signs this request with one of `secrets`, within `tolerance`."""
    parsed = _parse(header)
    if parsed is None:
        return False
    t, signatures = parsed
    if abs(now.timestamp() - t) > tolerance:
        return False
    signed = message(t, method, path, body)
    found = False
    # Every candidate is compared (no early exit), each in constant time.
    for secret in secrets:
        if not secret:
            continue
        expected = _digest(secret, signed).encode()
        for candidate in signatures:
            found |= hmac.compare_digest(expected, candidate.encode())
    return found


def _parse(header: str) -> tuple[int, list[str]] | None:
    """Return (t, [v1 signatures]) from a header value, or None if it is malformed."""
    if not header or len(header) > _MAX_HEADER:
        return None
    t: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            return None
        if name == "t":
            if not value.isascii() or not value.isdigit() or t is not None:
                return None
            t = int(value)
        elif name == "v1" and value.isascii():
            signatures.append(value.lower())
    return (t, signatures) if t is not None and signatures else None


def sign_call(secret: str | None, method: str, url: str, json: Any, now: datetime) -> str | None:
    """Return the signature of the request the caller will send for (method, url, json).

    None when there is no secret (the call goes unsigned).

    The path and body are built by the caller's own functions, so the signed path and body are
    byte for byte what goes on the wire. None if they cannot be built (the call will fail the
    same way, and say why).
    """
    if not secret:
        return None
    try:
        body = request_body(json) or b""
        target = request_target(url)
    except ValueError:
        return None
    return sign(secret, method.upper(), target, body, now)


def secret_parts(header: str | None) -> tuple[str, ...]:
    """Return the header and its signatures: the strings to redact wherever they might show."""
    if not header:
        return ()
    parsed = _parse(header)
    return (header, *(parsed[1] if parsed else ()))
