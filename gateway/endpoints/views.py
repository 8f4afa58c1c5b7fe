"""/crons and /crons/<name>: token check, job lock, then run blocking, async or streamed."""

from __future__ import annotations

import json
import logging
import queue
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from datetime import timedelta
from typing import Any

from flask import Blueprint
from flask import Response
from flask import g
from flask import request
from peewee import InterfaceError
from peewee import OperationalError
from peewee import PeeweeException
from werkzeug.exceptions import HTTPException

from gateway import signing
from gateway.endpoints.auth import authenticate
from gateway.endpoints.auth import presented_token
from gateway.endpoints.auth import signature_ok
from gateway.endpoints.context import RunContext
from gateway.endpoints.extension import CronJobs
from gateway.endpoints.extension import JobDef
from gateway.endpoints.runner import Execution
from gateway.endpoints.runner import Result
from gateway.errors import ConflictError
from gateway.errors import GatewayError
from gateway.errors import RateLimitedError
from gateway.errors import ValidationError
from gateway.store import leases
from gateway.store import run_queries
from gateway.store import runs
from gateway.store.db import database
from gateway.store.db import retry_while_unavailable
from gateway.store.db import write_transaction
from gateway.store.jobs import job_ref
from gateway.store.models import TRIGGERS
from gateway.store.models import Run

logger = logging.getLogger("gateway.endpoints")
_OTHER_METHODS = ["PUT", "PATCH", "DELETE"]


def _error(message: str, status: int) -> tuple[dict[str, Any], int]:
    return {"error": message}, status


UNAUTHORIZED = _error("unauthorized", 401)


def make_blueprint(cron: CronJobs) -> Blueprint:
    """Return the blueprint serving `cron`'s jobs."""
    bp = Blueprint("cron_gateway_endpoints", __name__)

    @bp.errorhandler(GatewayError)
    def _gateway_error(e: GatewayError) -> tuple[dict[str, Any], int]:
        return _error(e.message, e.status)

    @bp.errorhandler(RateLimitedError)
    def _rate_limited(e: RateLimitedError) -> tuple[dict[str, Any], int, dict[str, str]]:
        return {"error": e.message}, e.status, {"Retry-After": str(e.retry_after)}

    @bp.errorhandler(OperationalError)
    @bp.errorhandler(InterfaceError)
    def _database_error(e: PeeweeException) -> tuple[dict[str, Any], int, dict[str, str]]:
        # The database is down or restarting: say so, and when to try again; no traceback.
        logger.warning("cron endpoint: database unavailable: %s", type(e).__name__)
        return {"error": "database unavailable, retry later"}, 503, {"Retry-After": "5"}

    @bp.errorhandler(HTTPException)
    def _http_error(e: HTTPException) -> tuple[dict[str, Any], int]:
        return _error(e.description or e.name, e.code or 400)

    @bp.get("")
    def manifest() -> Any:
        if _caller(cron) is None:
            return UNAUTHORIZED
        jobs = [d.manifest(f"{cron.url_prefix}/{d.name}") for d in cron.jobs.values()]
        return {"jobs": jobs}

    @bp.route("/<name>", methods=["GET", "POST", *_OTHER_METHODS])
    def call(name: str) -> Any:
        assert cron.settings is not None and cron.clock is not None
        fresh_id = runs.new_execution_id()  # one id however often admission is retried
        admitted = retry_while_unavailable(
            lambda: _admit(cron, name, fresh_id), cron.clock, cron.settings.database_wait_seconds
        )
        if not isinstance(admitted, Execution):
            return admitted
        return _run(cron, cron.jobs[name], admitted)

    @bp.get("/<name>/runs/<execution_id>")
    def status(name: str, execution_id: str) -> Any:
        if _caller(cron) is None:
            return UNAUTHORIZED
        run = _find_run(name, execution_id)
        if run is None:
            return _error("no such run", 404)
        return run_queries.run_as_dict(run)

    return bp


def _caller(cron: CronJobs) -> Any:
    assert cron.settings is not None and cron.clock is not None
    if presented_token(request, cron.settings) is None:
        return None
    cron.ensure_database()
    return authenticate(request, cron.settings, cron.clock.now())


def _signed_well(cron: CronJobs) -> bool:
    assert cron.settings is not None and cron.clock is not None
    return signature_ok(request, cron.settings, cron.clock.now())


def _find_run(name: str, execution_id: str) -> Run | None:
    try:
        uuid.UUID(execution_id)
    except ValueError:
        return None
    return run_queries.find_run(execution_id, job=name)


def _origin() -> runs.Origin:
    """Read the gateway's X-Cron-* headers; a malformed one is a 400, not a guess."""
    headers = request.headers
    execution_id = headers.get("X-Cron-Execution-Id")
    if execution_id is not None:
        try:
            execution_id = str(uuid.UUID(execution_id))
        except ValueError:
            raise ValidationError("X-Cron-Execution-Id must be a UUID") from None
    trigger = headers.get("X-Cron-Trigger") or ("schedule" if execution_id else "external")
    if trigger not in TRIGGERS:
        raise ValidationError(f"X-Cron-Trigger must be one of {', '.join(TRIGGERS)}")
    attempt_text = headers.get("X-Cron-Attempt", "1")
    if not attempt_text.isdigit() or not 1 <= int(attempt_text) <= 1000:
        raise ValidationError("X-Cron-Attempt must be a whole number from 1 to 1000")
    return runs.Origin(trigger, execution_id, int(attempt_text), _scheduled_for())


def _scheduled_for() -> datetime | None:
    text = request.headers.get("X-Cron-Scheduled-For")
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise ValidationError("X-Cron-Scheduled-For must be an ISO-8601 time with an offset")
    return value


def _payload() -> Any:
    """Return the JSON body, None when there is none; a body that is not JSON is a 400."""
    data = request.get_data(cache=True)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        # A chunked body is cut at the limit without a word; reading on raises the 413.
        request.stream.read(1)
    if not data.strip():
        return None
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError) as e:
        raise ValidationError(f"the request body is not valid JSON: {e}") from None


def _admit(cron: CronJobs, name: str, fresh_id: str) -> Any:
    """Check the call, take the job's lock and record the run: the Execution to run, or the
    answer (401, 403, 404, 405, 409). Nothing outside the database has happened yet, so a
    database outage here may be retried."""
    caller = _caller(cron)
    if caller is None or not _signed_well(cron):
        return UNAUTHORIZED
    definition = cron.jobs.get(name)
    if definition is None:
        return _error(f"no job named {name!r}", 404)
    if request.method in _OTHER_METHODS:
        return _error("use GET or POST", 405)
    if not caller.may_invoke(name):
        return _error("this key may not run this job", 403)
    return _start(cron, definition, caller.name, _origin(), _payload(), fresh_id)


def _start(
    cron: CronJobs,
    definition: JobDef,
    caller: str,
    origin: runs.Origin,
    payload: Any,
    fresh_id: str,
) -> Any:
    assert cron.settings is not None and cron.clock is not None
    settings, now = cron.settings, cron.clock.now()
    lease = timedelta(seconds=settings.lease_seconds)
    job = job_ref(definition.name, _declared(cron, definition), now)
    execution_id = origin.execution_id or fresh_id
    lock = f"job:{definition.name}"
    # One write transaction from the stale check to the running row: the lock and the run
    # appear together, and a burst of calls takes SQLite's write lock once per call.
    with write_transaction():
        runs.abandon_stale(job, now, lease)
        taken, previous = leases.acquire(lock, execution_id, lease, now)
        if previous is not None:
            runs.abandon_run(previous, now)
        holder = None if taken else leases.current(lock)
        resumed = None
        if holder is not None and holder.holder == execution_id and g.get("cron_lock_taken"):
            # This request's earlier try committed, but the answer was lost with the
            # connection: the lock, and perhaps the running row, are its own.
            taken, holder = True, None
            resumed = runs.started_run(execution_id, origin.attempt)
        g.cron_lock_taken = taken
        if holder is not None and runs.was_canceled(holder.holder):
            # The gateway replaced that run (overlap: replace); it is stopping, this one starts.
            taken = leases.take_over(lock, holder.holder, execution_id, lease, now)
        if not taken:
            reason = "another run of this job is in progress" + (
                f" (execution {holder.holder})" if holder else ""
            )
            run = runs.record_skipped(job, origin, caller, reason, payload, now)
            return _skipped(run.execution_id, definition.name, reason)
        try:
            run = resumed or runs.start_run(job, origin, caller, payload, now, new_id=execution_id)
        except ConflictError as e:
            leases.release(lock, execution_id)
            return _skipped(execution_id, definition.name, e.message)
    return _execution(cron, definition, run, lock, payload)


def _skipped(execution_id: str, job: str, reason: str) -> tuple[dict[str, Any], int]:
    return Result(execution_id, job, "skipped", 0, None, reason).as_dict(), 409


def _run(cron: CronJobs, definition: JobDef, execution: Execution) -> Any:
    """Run an admitted call in the job's mode and answer it."""
    if definition.mode == "async":
        return _run_async(cron, definition, execution)
    if definition.mode == "stream":
        return _run_streamed(execution)
    result = execution.execute()
    return result.as_dict(), 500 if result.status == "error" else 200


def _declared(cron: CronJobs, d: JobDef) -> dict[str, Any]:
    return {
        "url": f"{cron.url_prefix}/{d.name}",
        "schedule": d.schedule,
        "tz": d.tz,
        "timeout": d.timeout,
        "mode": d.mode,
        "title": d.title,
        "description": d.description,
        "tags": list(d.tags),
        "source": "code",
    }


def _execution(cron: CronJobs, definition: JobDef, run: Run, lock: str, payload: Any) -> Execution:
    assert cron.settings is not None and cron.clock is not None
    settings, clock = cron.settings, cron.clock
    secrets = tuple(
        s for s in (settings.cron_token, settings.admin_token, _raw_token(cron), *_signature()) if s
    )
    ctx = RunContext(
        job=definition.name,
        execution_id=run.execution_id,
        trigger=run.trigger,
        scheduled_for=run.scheduled_for,
        attempt=run.attempt,
        payload=payload,
        log_limit=settings.log_limit_bytes,
        secrets=secrets,
        deadline=clock.monotonic() + definition.timeout,
        monotonic=clock.monotonic,
    )
    return Execution(
        definition.func,
        ctx,
        run.id,
        lock,
        job_id=run.job_id,
        clock=clock,
        heartbeat_seconds=settings.heartbeat_seconds,
        lease_seconds=settings.lease_seconds,
    )


def _raw_token(cron: CronJobs) -> str | None:
    assert cron.settings is not None
    return presented_token(request, cron.settings)


def _signature() -> tuple[str, ...]:
    return signing.secret_parts(request.headers.get(signing.HEADER))


def _in_thread(execution: Execution, then: queue.Queue[Any] | None = None) -> threading.Thread:
    def target() -> None:
        try:
            result = execution.execute()
            if then is not None:
                then.put(result)
        finally:
            database.close()  # this thread's connection

    thread = threading.Thread(target=target, name=f"cron-{execution.ctx.job}", daemon=True)
    thread.start()
    return thread


def _run_async(cron: CronJobs, definition: JobDef, execution: Execution) -> Any:
    _in_thread(execution)
    execution_id = execution.ctx.execution_id
    return {
        "execution_id": execution_id,
        "job": definition.name,
        "status": "running",
        "duration_ms": None,
        "summary": None,
        "error": None,
        "status_url": f"{cron.url_prefix}/{definition.name}/runs/{execution_id}",
    }, 202


def _run_streamed(execution: Execution) -> Response:
    events: queue.Queue[Any] = queue.Queue()
    execution.ctx.subscribe(events.put)
    _in_thread(execution, then=events)
    first = {"execution_id": execution.ctx.execution_id, "job": execution.ctx.job}

    def lines() -> Iterator[str]:
        yield json.dumps({**first, "status": "running"}) + "\n"
        while True:
            event = events.get()
            if isinstance(event, Result):
                yield json.dumps(event.as_dict()) + "\n"
                return
            yield json.dumps(event) + "\n"

    return Response(lines(), mimetype="application/x-ndjson")
