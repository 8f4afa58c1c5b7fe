"""One dispatched run → one HTTP call → a Sent (its Outcome and lateness), no database.

The gateway's call threads do this, and so do its sender processes (`sender_process.py`):
the same headers, signature, redaction and lateness either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway import signing
from gateway.clock import Clock
from gateway.config import Settings
from gateway.logs import log_context
from gateway.scheduler.caller import Caller
from gateway.scheduler.caller import CallRequest
from gateway.scheduler.caller import Outcome
from gateway.scheduler.caller import cron_headers
from gateway.store.claims import Dispatch

INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class Sent:
    """A call made, waiting to be recorded."""

    dispatch: Dispatch
    outcome: Outcome
    lateness_ms: int


class Sender:
    """Makes the call of a dispatched run: the X-Cron-* headers, the signature, the Caller."""

    def __init__(self, settings: Settings, token: str, caller: Caller, clock: Clock) -> None:
        self.settings = settings
        self.token = token
        self.caller = caller
        self.clock = clock

    def __call__(self, dispatch: Dispatch) -> Sent:
        """Call the endpoint for `dispatch` (every log line tagged with its run)."""
        with log_context(dispatch.execution_id, dispatch.job):
            return self._send(dispatch)

    def _send(self, dispatch: Dispatch) -> Sent:
        headers = {
            **dispatch.headers,
            **cron_headers(
                self.token,
                dispatch.execution_id,
                dispatch.scheduled_for,
                dispatch.trigger,
                dispatch.attempt,
            ),
        }
        signature = signing.sign_call(
            self.settings.signing_secret if dispatch.signed else None,
            dispatch.method,
            dispatch.url,
            dispatch.payload,
            self.clock.now(),
        )
        if signature is not None:
            headers[signing.HEADER] = signature
        request = CallRequest(
            method=dispatch.method,
            url=dispatch.url,
            headers=headers,
            json=dispatch.payload,
            timeout_s=dispatch.timeout_s,
            secrets=(self.token, *signing.secret_parts(signature)),
        )
        sent_at = self.clock.now()
        outcome = self.caller.call(request)
        base = dispatch.scheduled_for or dispatch.due_at or sent_at
        lateness_ms = max(0, int((sent_at - base).total_seconds() * 1000))
        lateness_ms = min(lateness_ms, INT32_MAX)  # a backfill of last year fits the column
        return Sent(dispatch, outcome, lateness_ms)
