"""Per-job policies (misfire, overlap, retry) as small frozen values shared by the scheduler."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

MisfireMode = Literal["skip", "once", "all"]
OverlapMode = Literal["forbid", "allow", "replace"]
OverlapDecision = Literal["run", "skip", "replace"]
JitterMode = Literal["full", "equal", "none"]

# What one HTTP attempt ended in, as far as retrying cares: "http" means a response arrived
# (its status decides), "invalid_request" means the request could not even be built (bad URL).
AttemptKind = Literal["http", "connection_error", "timeout", "invalid_request"]


@dataclass(frozen=True)
class MisfirePolicy:
    """How a job treats slots that came due while nobody could run them (DESIGN §4 Misfires).

    `grace` is how late a slot may be and still count as on time (not a misfire): it absorbs
    the gateway's own hiccups (a burst of due jobs, a SQLite busy wait), so it is a few seconds,
    not a few milliseconds. `catchup_window` is how late a missed slot may be and still be run
    under `once` and `all`.
    """

    mode: MisfireMode = "once"
    catchup_window: timedelta = timedelta(hours=1)
    grace: timedelta = timedelta(seconds=5)

    def __post_init__(self) -> None:
        if self.mode not in ("skip", "once", "all"):
            raise ValueError(f"misfire: {self.mode!r} is not one of skip, once, all")
        if self.catchup_window < timedelta(0) or self.grace < timedelta(0):
            raise ValueError("misfire: catchup_window and grace must not be negative")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one slot is retried (DESIGN §4 Retries).

    `max_attempts` counts every attempt, the first included (1 means never retry). The delay
    before attempt n+1 is `backoff_s * 2**(n-1)`, capped at `max_backoff_s`, then jittered;
    a server's Retry-After is honoured up to `max_retry_after_s`.
    """

    max_attempts: int = 3
    backoff_s: float = 5.0
    max_backoff_s: float = 3600.0
    jitter: JitterMode = "equal"
    max_retry_after_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts: {self.max_attempts} must be at least 1")
        if self.backoff_s < 0 or self.max_backoff_s < 0 or self.max_retry_after_s < 0:
            raise ValueError("backoff: delays must not be negative")
        if self.jitter not in ("full", "equal", "none"):
            raise ValueError(f"jitter: {self.jitter!r} is not one of full, equal, none")
