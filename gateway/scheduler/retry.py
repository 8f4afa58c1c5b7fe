"""Pure retry decisions: whether and when to try a slot again (DESIGN §4 Retries).

Retried: connection errors, timeouts, HTTP 408, 429 and 5xx. Final: every other response
(2xx, 3xx, other 4xx) and requests that could not be built. The delay grows exponentially
with jitter from an injected `random.Random`; a server's Retry-After (seconds or an HTTP-date,
read relative to an injected `now`) is honoured as a lower bound, capped.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

from gateway.scheduler.policy import AttemptKind
from gateway.scheduler.policy import RetryPolicy

RETRYABLE_STATUSES = frozenset({408, 429})


class AttemptResult(Protocol):
    """What retrying needs to know of one attempt (the caller's Outcome has these fields)."""

    @property
    def kind(self) -> AttemptKind: ...

    @property
    def http_status(self) -> int | None: ...

    @property
    def retry_after(self) -> str | None: ...


@dataclass(frozen=True)
class RetryDecision:
    """Whether to try the slot again, after how many seconds, and why (for the log)."""

    retry: bool
    delay_s: float
    reason: str


def decide_retry(
    result: AttemptResult,
    attempt: int,
    policy: RetryPolicy,
    *,
    now: datetime,
    rng: random.Random,
) -> RetryDecision:
    """Return whether attempt number `attempt` (1-based, just finished) gets a successor."""
    cause = retry_cause(result.kind, result.http_status)
    if cause is None:
        return RetryDecision(False, 0.0, f"final: {_describe(result)}")
    if attempt >= policy.max_attempts:
        return RetryDecision(False, 0.0, f"{cause}; gave up after {attempt} attempt(s)")
    delay = backoff_delay(attempt, policy, rng)
    asked = parse_retry_after(result.retry_after, now, cap_s=policy.max_retry_after_s)
    if asked is not None and asked > delay:
        return RetryDecision(True, asked, f"{cause}; Retry-After {asked:g} s")
    return RetryDecision(True, delay, f"{cause}; backoff {delay:.3f} s")


def retry_cause(kind: AttemptKind, http_status: int | None) -> str | None:
    """Return why an attempt is worth retrying, or None if its result is final."""
    if kind == "connection_error":
        return "connection error"
    if kind == "timeout":
        return "timeout"
    if kind == "http" and http_status is not None:
        if http_status in RETRYABLE_STATUSES or 500 <= http_status <= 599:
            return f"HTTP {http_status}"
    return None


def backoff_delay(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Return the jittered delay before attempt `attempt + 1`: base * 2**(attempt-1), capped."""
    exponent = min(max(attempt - 1, 0), 64)  # 2**64 s is far beyond any cap; avoids overflow
    ceiling = min(policy.max_backoff_s, policy.backoff_s * 2.0**exponent)
    if policy.jitter == "full":
        return rng.uniform(0.0, ceiling)
    if policy.jitter == "equal":
        return ceiling / 2 + rng.uniform(0.0, ceiling / 2)
    return ceiling


def parse_retry_after(value: str | None, now: datetime, *, cap_s: float) -> float | None:
    """Return Retry-After in seconds from `now` (0 if past, at most cap_s); None if absent/bad."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return min(float(text), cap_s)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; RFC 9110 dates are GMT anyway
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), cap_s)


def _describe(result: AttemptResult) -> str:
    """Return a short name for a final result."""
    if result.kind == "http" and result.http_status is not None:
        return f"HTTP {result.http_status}"
    return result.kind.replace("_", " ")
