"""Retry decisions: what is retried, backoff with jitter, Retry-After. No clock, no wire."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime

import pytest

from gateway.scheduler.policy import AttemptKind
from gateway.scheduler.policy import RetryPolicy
from gateway.scheduler.retry import RetryDecision
from gateway.scheduler.retry import backoff_delay
from gateway.scheduler.retry import decide_retry
from gateway.scheduler.retry import parse_retry_after

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
NO_JITTER = RetryPolicy(max_attempts=5, backoff_s=1.0, jitter="none")


@dataclass(frozen=True)
class Attempt:
    kind: AttemptKind = "http"
    http_status: int | None = None
    retry_after: str | None = None


def decide(attempt: Attempt, number: int = 1, policy: RetryPolicy = NO_JITTER) -> RetryDecision:
    return decide_retry(attempt, number, policy, now=NOW, rng=random.Random(7))


@pytest.mark.parametrize(
    ("attempt", "retried"),
    [
        (Attempt("connection_error"), True),
        (Attempt("timeout"), True),
        (Attempt(http_status=408), True),
        (Attempt(http_status=429), True),
        (Attempt(http_status=500), True),
        (Attempt(http_status=502), True),
        (Attempt(http_status=503), True),
        (Attempt(http_status=599), True),
        (Attempt(http_status=200), False),
        (Attempt(http_status=202), False),
        (Attempt(http_status=302), False),
        (Attempt(http_status=400), False),
        (Attempt(http_status=401), False),
        (Attempt(http_status=404), False),
        (Attempt(http_status=409), False),
        (Attempt(http_status=422), False),
        (Attempt("invalid_request"), False),
    ],
)
def test_what_is_retried_and_what_is_final(attempt: Attempt, retried: bool) -> None:
    assert decide(attempt).retry is retried


def test_a_final_result_says_why() -> None:
    assert decide(Attempt(http_status=404)) == RetryDecision(False, 0.0, "final: HTTP 404")


@pytest.mark.parametrize(("number", "retried"), [(1, True), (2, True), (3, False), (9, False)])
def test_it_never_retries_past_max_attempts(number: int, retried: bool) -> None:
    policy = RetryPolicy(max_attempts=3)
    assert decide(Attempt("timeout"), number, policy).retry is retried


def test_max_attempts_of_one_means_never_retry() -> None:
    decision = decide(Attempt(http_status=503), 1, RetryPolicy(max_attempts=1))
    assert decision == RetryDecision(False, 0.0, "HTTP 503; gave up after 1 attempt(s)")


@pytest.mark.parametrize(("number", "delay"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)])
def test_backoff_doubles_each_attempt(number: int, delay: float) -> None:
    assert decide(Attempt("timeout"), number).delay_s == delay


def test_backoff_is_capped_even_after_many_attempts() -> None:
    policy = RetryPolicy(max_attempts=10_000, backoff_s=1.0, max_backoff_s=60.0, jitter="none")
    assert backoff_delay(5000, policy, random.Random(1)) == 60.0


@pytest.mark.parametrize(("jitter", "low", "high"), [("full", 0.0, 8.0), ("equal", 4.0, 8.0)])
def test_jitter_stays_within_its_bounds(jitter: str, low: float, high: float) -> None:
    policy = RetryPolicy(backoff_s=2.0, jitter=jitter)  # type: ignore[arg-type]
    rng = random.Random(3)
    delays = [backoff_delay(3, policy, rng) for _ in range(500)]
    assert all(low <= d <= high for d in delays)
    assert len(set(delays)) > 400  # jitter really varies


def test_jitter_comes_from_the_injected_random() -> None:
    policy = RetryPolicy(backoff_s=2.0, jitter="full")
    first = backoff_delay(2, policy, random.Random(42))
    assert backoff_delay(2, policy, random.Random(42)) == first


def test_the_default_policy_waits_five_to_ten_seconds_before_the_second_attempt() -> None:
    delay = decide(Attempt("timeout"), 1, RetryPolicy()).delay_s
    assert 2.5 <= delay <= 5.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("999999", 3600.0),
        ("Mon, 23 Nov 2026 09:02:00 GMT", 120.0),
        ("Mon, 23 Nov 2026 09:02:00 -0000", 120.0),
        ("Mon, 23 Nov 2026 08:00:00 GMT", 0.0),
        ("Tue, 24 Nov 2026 09:00:00 GMT", 3600.0),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("٣", None),
        ("Mon, 99 Nov 2026 09:02:00 GMT", None),
    ],
)
def test_retry_after_parsing(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW, cap_s=3600.0) == seconds


def test_retry_after_longer_than_the_backoff_sets_the_delay() -> None:
    decision = decide(Attempt(http_status=429, retry_after="30"))
    assert decision == RetryDecision(True, 30.0, "HTTP 429; Retry-After 30 s")


def test_retry_after_shorter_than_the_backoff_does_not_shorten_it() -> None:
    decision = decide(Attempt(http_status=503, retry_after="0"), 3)
    assert decision.retry and decision.delay_s == 4.0


def test_garbage_retry_after_falls_back_to_backoff() -> None:
    decision = decide(Attempt(http_status=429, retry_after="tomorrow-ish"))
    assert decision == RetryDecision(True, 1.0, "HTTP 429; backoff 1.000 s")


def test_retry_after_on_a_final_status_is_ignored() -> None:
    assert not decide(Attempt(http_status=400, retry_after="5")).retry


def test_a_policy_with_no_attempts_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
