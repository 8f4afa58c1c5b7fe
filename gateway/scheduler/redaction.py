"""Redaction for the caller: every form of every secret a request carries, out of its Outcome."""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl
from urllib.parse import quote
from urllib.parse import quote_plus
from urllib.parse import urlsplit

from gateway.tokens import REDACTED

if TYPE_CHECKING:
    from gateway.scheduler.caller import CallRequest
    from gateway.scheduler.caller import JsonValue
    from gateway.scheduler.caller import Outcome


def secrets_of(request: CallRequest) -> list[str]:
    """Return every secret string the request carries, in the forms messages may show it."""
    found = [*request.secrets, *_url_secrets(request.url)]
    for name, value in request.headers.items():
        if name.lower() in _SECRET_HEADERS:
            found += [value, value.partition(" ")[2]]
    forms = {f for s in found if s for f in _forms(s)}
    return sorted(forms, key=len, reverse=True)  # longest first: "Bearer x" before "x"


_SECRET_HEADERS = frozenset({"x-cron-token", "authorization", "cookie", "proxy-authorization"})


# Cached: every call of a job has the same URL and token (a burst is thousands of calls).
@functools.lru_cache(maxsize=4096)
def _url_secrets(url: str) -> tuple[str, ...]:
    """Return the token query parameters and the password of `url`."""
    try:
        parts = urlsplit(url)
        found = [v for k, v in parse_qsl(parts.query) if k.lower() in ("crontoken", "token")]
        return (*found, parts.password or "")
    except ValueError:
        return ()


@functools.lru_cache(maxsize=4096)
def _forms(secret: str) -> tuple[str, ...]:
    """Return `secret` as it is, percent-encoded and form-encoded."""
    return tuple(dict.fromkeys((secret, quote(secret, safe=""), quote_plus(secret))))


def redacted(outcome: Outcome, secrets: list[str]) -> Outcome:
    """Return `outcome` with every secret replaced in all of its text."""
    if not secrets:
        return outcome

    def scrub(value: JsonValue) -> JsonValue:
        if isinstance(value, str):
            for secret in secrets:
                value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, list):
            return [scrub(v) for v in value]
        if isinstance(value, dict):
            return {str(scrub(k)): scrub(v) for k, v in value.items()}
        return value

    def text(value: str | None) -> str | None:
        return None if value is None else str(scrub(value))

    excerpt = text(outcome.response_excerpt)
    if excerpt is not None and outcome.truncated:
        excerpt = _cut_secret_prefix(excerpt, secrets)

    return dataclasses.replace(
        outcome,
        response_excerpt=excerpt,
        summary=scrub(outcome.summary),
        error=text(outcome.error),
        retry_after=text(outcome.retry_after),
        endpoint_status=text(outcome.endpoint_status),
    )


def _cut_secret_prefix(excerpt: str, secrets: list[str]) -> str:
    """Return `excerpt` without a trailing start of a secret that the cut left behind."""
    for secret in secrets:
        for length in range(min(len(secret) - 1, len(excerpt)), 3, -1):  # 3 chars leak nothing
            if excerpt.endswith(secret[:length]):
                return excerpt[:-length] + REDACTED
    return excerpt
