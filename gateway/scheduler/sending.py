"""One dispatched run → one HTTP call → a Sent (its Outcome and lateness), no database.

The gateway's call threads do this, and so do its sender processes (`sender_process.py`):
the same headers, signature, redaction and lateness either way.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from datetime import datetime

from gateway import signing
from gateway.clock import Clock
from gateway.config import Settings
from gateway.logs import log_context
from gateway.scheduler.caller import Caller
from gateway.scheduler.caller import CallRequest
from gateway.scheduler.caller import Outcome
from gateway.scheduler.caller import cron_headers
from gateway.store.claims import Dispatch

logger = logging.getLogger("gateway.scheduler")

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
        """Call the endpoint for `dispatch` (every log line tagged with its run).

        Never raises: if the gateway's own code fails here (a bug; the Caller turns every
        network failure into an Outcome), the run ends *error*, final, saying so, rather than
        staying *dispatched* until the gateway stops. The call may or may not have been made,
        so it is not retried. The log has the exception's type and where it was raised, not
        its message, which could quote a header (a secret).
        """
        with log_context(dispatch.execution_id, dispatch.job):
            try:
                return self._send(dispatch)
            except Exception as exc:
                where = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
                logger.error(
                    "the call failed inside the gateway: %s\n%s", type(exc).__name__, where
                )
                error = f"the gateway failed while making this call ({type(exc).__name__})"
                outcome = Outcome(
                    "error", "invalid_request", http_status=None, duration_ms=0, error=error
                )
                return Sent(dispatch, outcome, _lateness_ms(dispatch, self.clock.now()))

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
        return Sent(dispatch, outcome, _lateness_ms(dispatch, sent_at))


def _lateness_ms(dispatch: Dispatch, sent_at: datetime) -> int:
    base = dispatch.scheduled_for or dispatch.due_at or sent_at
    lateness_ms = max(0, int((sent_at - base).total_seconds() * 1000))
    return min(lateness_ms, INT32_MAX)  # a backfill of last year fits the column
