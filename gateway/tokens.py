"""Generate, hash, verify in constant time, and redact secrets (tokens never reach logs or rows)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

TOKEN_PREFIX = "cg_"
REDACTED = "[redacted]"
_QUERY_TOKEN = re.compile(r"(?i)(cronToken=)[^&\s\"']*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_SIGNATURE = re.compile(r"(?i)\b(v1=)[0-9a-f]{64}\b")  # X-Cron-Signature's HMAC


def generate() -> str:
    """Return a new secret: 256 random bits, URL-safe, with a recognisable prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Return the stored form of a token (SHA-256 hex; tokens are random, so no salt is needed)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def prefix_of(token: str) -> str:
    """Return the public first characters of a token, to tell keys apart in lists."""
    return token[: len(TOKEN_PREFIX) + 6]


def same(presented: str, expected: str) -> bool:
    """Return True if the two tokens are equal, in time independent of where they differ."""
    return hmac.compare_digest(hash_token(presented), hash_token(expected))


def redact(text: str, secrets_: tuple[str, ...] = ()) -> str:
    """Return text with `?cronToken=…`, bearer tokens, signatures and `secrets_` replaced."""
    text = _QUERY_TOKEN.sub(lambda m: m.group(1) + REDACTED, text)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    text = _SIGNATURE.sub(lambda m: m.group(1) + REDACTED, text)
    for secret in secrets_:
        if secret:
            text = text.replace(secret, REDACTED)
    return text
