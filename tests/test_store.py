"""The store on both backends: schema versions, leases, keys, and the life of a run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from peewee import IntegrityError

from gateway import tokens
from gateway.errors import ConfigError
from gateway.errors import ConflictError
from gateway.store import keys
from gateway.store import leases
from gateway.store import run_queries
from gateway.store import runs
from gateway.store.db import database
from gateway.store.db import write_transaction
from gateway.store.jobs import ensure_job
from gateway.store.migrate import LATEST
from gateway.store.migrate import ensure_schema
from gateway.store.migrate import schema_version
from gateway.store.models import Job
from gateway.store.models import Key
from gateway.store.models import Run
from gateway.store.models import SchemaVersion
from tests.fakes import FakeClock

TTL = timedelta(seconds=30)


def _job(clock: FakeClock, name: str = "report") -> Job:
    return ensure_job(name, {"url": f"/crons/{name}", "schedule": "0 3 * * *"}, clock.now())


def test_a_new_database_gets_the_latest_schema_once(db: str) -> None:
    assert schema_version() == LATEST
    assert ensure_schema(database.obj) == LATEST  # idempotent: a second start changes nothing
    assert SchemaVersion.select().count() == LATEST


def test_a_schema_newer_than_the_code_refuses_to_start(db: str, clock: FakeClock) -> None:
    SchemaVersion.create(version=LATEST + 1, applied_at=clock.now(), note="from the future")
    with pytest.raises(ConfigError, match="newer than this code"):
        ensure_schema(database.obj)


def test_a_lease_has_one_holder_until_it_expires(db: str, clock: FakeClock) -> None:
    assert leases.acquire("job:x", "a", TTL, clock.now()) == (True, None)
    assert leases.acquire("job:x", "b", TTL, clock.now()) == (False, None)
    clock.advance(seconds=31)
    assert leases.acquire("job:x", "b", TTL, clock.now()) == (True, "a")
    assert not leases.renew("job:x", "a", TTL, clock.now())
    leases.release("job:x", "a")  # not the holder: nothing happens
    assert leases.current("job:x").holder == "b"
    leases.release("job:x", "b")
    assert leases.current("job:x") is None


def test_a_held_lease_refused_inside_a_transaction_leaves_it_usable(
    db: str, clock: FakeClock
) -> None:
    leases.acquire("job:x", "a", TTL, clock.now())
    with write_transaction():  # on PostgreSQL a failed INSERT would abort it: none fails
        assert leases.acquire("job:x", "b", TTL, clock.now()) == (False, None)
        assert leases.acquire("job:y", "b", TTL, clock.now()) == (True, None)
    assert (leases.current("job:x").holder, leases.current("job:y").holder) == ("a", "b")


def test_a_renewed_lease_does_not_expire(db: str, clock: FakeClock) -> None:
    leases.acquire("job:x", "a", TTL, clock.now())
    clock.advance(seconds=20)
    assert leases.renew("job:x", "a", TTL, clock.now())
    clock.advance(seconds=20)
    assert leases.acquire("job:x", "b", TTL, clock.now()) == (False, None)


def test_a_key_stores_only_a_hash_and_stops_working_when_revoked(db: str, clock: FakeClock) -> None:
    key, secret = keys.create_key("deploy-bot", "invoke", clock.now(), job="report")
    row = Key.get_by_id(key.id)
    assert secret not in (row.secret_hash, row.prefix, row.name)
    assert row.secret_hash == tokens.hash_token(secret)
    caller = keys.verify_key(secret, clock.now())
    assert caller is not None and caller.name == "deploy-bot"
    assert caller.may_invoke("report") and not caller.may_invoke("cleanup")
    assert Key.get_by_id(key.id).last_used_at == clock.now()
    assert keys.verify_key(secret + "x", clock.now()) is None
    assert keys.revoke_key("deploy-bot", clock.now())
    assert keys.verify_key(secret, clock.now()) is None


def test_key_names_are_unique_and_scopes_checked(db: str, clock: FakeClock) -> None:
    keys.create_key("ops", "admin", clock.now())
    with pytest.raises(ConflictError):
        keys.create_key("ops", "admin", clock.now())
    with pytest.raises(ValueError, match="scope"):
        keys.create_key("other", "root", clock.now())
    assert Key.select().count() == 1


def test_an_external_call_gets_a_new_running_run(db: str, clock: FakeClock) -> None:
    job = _job(clock)
    run = runs.start_run(job, runs.Origin(), "cron-box", {"a": 1}, clock.now())
    stored = Run.get_by_id(run.id)
    assert (stored.status, stored.trigger, stored.caller) == ("running", "external", "cron-box")
    assert stored.scheduled_for is None and stored.payload == {"a": 1}


def test_a_gateway_call_attaches_to_its_dispatched_run(db: str, clock: FakeClock) -> None:
    job = _job(clock)
    slot = clock.now() - timedelta(seconds=2)
    queued = Run.create(
        execution_id=runs.new_execution_id(),
        job=job,
        trigger="schedule",
        scheduled_for=slot,
        status="dispatched",
        queued_at=slot,
    )
    origin = runs.Origin("schedule", queued.execution_id, 1, slot)
    run = runs.start_run(job, origin, "GATEWAY_CRON_TOKEN", None, clock.now())
    assert run.id == queued.id
    assert Run.get_by_id(queued.id).status == "running"
    with pytest.raises(ConflictError):  # a replay of the same call
        runs.start_run(job, origin, "GATEWAY_CRON_TOKEN", None, clock.now())
    with pytest.raises(ConflictError):  # an attempt that is not the stored one
        runs.start_run(
            job, runs.Origin("retry", queued.execution_id, 2, slot), "x", None, clock.now()
        )
    assert Run.select().count() == 1


def test_one_slot_has_one_run_per_attempt(db: str, clock: FakeClock) -> None:
    job = _job(clock)
    slot = clock.now()
    fields = dict(job=job, trigger="schedule", scheduled_for=slot, status="queued", queued_at=slot)
    Run.create(execution_id=runs.new_execution_id(), **fields)
    with pytest.raises(IntegrityError):
        with database.atomic():
            Run.create(execution_id=runs.new_execution_id(), **fields)
    Run.create(execution_id=runs.new_execution_id(), attempt=2, **fields)
    assert Run.select().count() == 2


def test_finishing_a_run_updates_the_job(db: str, clock: FakeClock) -> None:
    job = _job(clock)
    for status, failures in [("error", 1), ("timeout", 2), ("skipped", 2), ("success", 0)]:
        run = runs.start_run(job, runs.Origin(), "c", None, clock.now())
        clock.advance(seconds=1)
        assert runs.finish_run(run.id, status, clock.now(), duration_ms=1000)
        job = Job.get_by_id(job.id)
        assert (job.last_status, job.consecutive_failures) == (status, failures)
        assert job.last_run_at == clock.now()
    assert not runs.finish_run(run.id, "error", clock.now())  # already ended


def test_the_endpoint_ends_its_run_and_counts_it_on_the_job(db: str, clock: FakeClock) -> None:
    job = _job(clock)
    for status, failures in [("error", 1), ("timeout", 2), ("skipped", 2), ("success", 0)]:
        run = runs.start_run(job, runs.Origin(), "c", None, clock.now())
        clock.advance(seconds=1)
        ending = runs.Ending(1000, {"n": 1}, "boom", "stack", "log", 3, 4)
        assert runs.end_running(run.id, job.id, status, clock.now(), ending)
        stored, job = Run.get_by_id(run.id), Job.get_by_id(job.id)
        assert (stored.status, stored.finished_at, stored.duration_ms) == (
            status, clock.now(), 1000,
        )  # fmt: skip
        assert (stored.summary, stored.error, stored.error_stack, stored.log) == (
            {"n": 1}, "boom", "stack", "log",
        )  # fmt: skip
        assert (stored.progress_done, stored.progress_total) == (3, 4)
        assert (job.last_status, job.consecutive_failures) == (status, failures)
        assert job.last_run_at == clock.now()
    # Ended already (the gateway gave up on it): nothing changes, the job counts nothing.
    assert not runs.end_running(run.id, job.id, "error", clock.now(), runs.Ending(5))
    assert Run.get_by_id(run.id).status == "success"
    assert Job.get_by_id(job.id).consecutive_failures == 0


def test_an_abandoned_run_takes_the_endpoints_late_outcome(db: str, clock: FakeClock) -> None:
    job = _job(clock)
    run = runs.start_run(job, runs.Origin(), "c", None, clock.now())
    clock.advance(seconds=35)
    assert runs.abandon_stale(job, clock.now(), TTL) == 1
    assert Job.get_by_id(job.id).consecutive_failures == 1
    assert runs.end_running(run.id, job.id, "success", clock.now(), runs.Ending(35_000))
    assert Run.get_by_id(run.id).status == "success"
    assert Job.get_by_id(job.id).consecutive_failures == 0


def test_an_abandoned_run_that_ends_a_failure_after_all_counts_once(
    db: str, clock: FakeClock
) -> None:
    job = _job(clock)
    for end in ("endpoint", "finish"):  # the endpoint's own end, or a late outcome recorded
        run = runs.start_run(job, runs.Origin(), "c", None, clock.now())
        clock.advance(seconds=35)
        assert runs.abandon_stale(job, clock.now(), TTL) == 1
        failures = Job.get_by_id(job.id).consecutive_failures
        if end == "endpoint":
            assert runs.end_running(run.id, job.id, "error", clock.now(), runs.Ending(35_000))
        else:
            assert runs.finish_run(run.id, "timeout", clock.now())
        stored = Job.get_by_id(job.id)
        assert Run.get_by_id(run.id).status in ("error", "timeout")
        assert stored.consecutive_failures == failures  # one run, one failure
        assert stored.last_status == Run.get_by_id(run.id).status
    assert Job.get_by_id(job.id).consecutive_failures == 2


def test_stale_runs_abandoned_together_count_as_that_many_failures(
    db: str, clock: FakeClock
) -> None:
    job = _job(clock)
    for _ in range(2):
        runs.start_run(job, runs.Origin(), "c", None, clock.now())
    clock.advance(seconds=35)
    assert runs.abandon_stale(job, clock.now(), TTL) == 2
    assert Job.get_by_id(job.id).consecutive_failures == 2


def test_a_canceled_run_keeps_its_end(db: str, clock: FakeClock) -> None:
    job = _job(clock)
    run = runs.start_run(job, runs.Origin(), "c", None, clock.now())
    assert runs.finish_run(run.id, "canceled", clock.now())
    assert not runs.end_running(run.id, job.id, "error", clock.now(), runs.Ending(1))
    assert Run.get_by_id(run.id).status == "canceled"
    assert Job.get_by_id(job.id).consecutive_failures == 0


def test_a_new_running_run_is_returned_as_stored(db: str, clock: FakeClock) -> None:
    job = _job(clock)
    slot = clock.now() - timedelta(seconds=3)
    for origin in (runs.Origin(), runs.Origin("manual", None, 2, slot)):
        run = runs.start_run(job, origin, "cron-box", {"k": [1]}, clock.now())
        stored = Run.get_by_id(run.id)
        assert run.__data__ == {k: v for k, v in stored.__data__.items() if k in run.__data__}
        assert stored.lateness_ms == (3000 if origin.scheduled_for else None)
    assert Run.select().count() == 2


def test_statements_join_an_open_transaction(db: str, clock: FakeClock) -> None:
    job = _job(clock)
    run = runs.start_run(job, runs.Origin(), "c", None, clock.now())
    with pytest.raises(RuntimeError):
        with database.atomic():  # the caller's transaction: what end_running wrote goes with it
            assert runs.end_running(run.id, job.id, "error", clock.now(), runs.Ending(1))
            raise RuntimeError("the caller failed after")
    assert Run.get_by_id(run.id).status == "running"
    assert Job.get_by_id(job.id).consecutive_failures == 0


def test_a_run_without_heartbeat_is_abandoned_not_left_running(db: str, clock: FakeClock) -> None:
    job = _job(clock)
    alive = runs.start_run(job, runs.Origin(), "c", None, clock.now())
    dead = runs.start_run(job, runs.Origin(), "c", None, clock.now())
    clock.advance(seconds=20)
    runs.heartbeat(alive.id, clock.now(), "still here", (1, 2))
    clock.advance(seconds=15)
    assert runs.abandon_stale(job, clock.now(), TTL) == 1
    assert Run.get_by_id(dead.id).status == "abandoned"
    kept = Run.get_by_id(alive.id)
    assert (kept.status, kept.log, kept.progress_done) == ("running", "still here", 1)
    # The real outcome still wins if the abandoned worker was only slow.
    assert runs.finish_run(dead.id, "success", clock.now(), duration_ms=1)
    assert Run.get_by_id(dead.id).status == "success"


def test_a_cancel_request_reaches_the_heartbeat(db: str, clock: FakeClock) -> None:
    run = runs.start_run(_job(clock), runs.Origin(), "c", None, clock.now())
    assert not runs.heartbeat(run.id, clock.now(), None, None)
    Run.update(cancel_requested_at=clock.now()).where(Run.id == run.id).execute()
    assert runs.heartbeat(run.id, clock.now(), None, None)


def test_runs_are_listed_newest_first_with_filters(db: str, clock: FakeClock) -> None:
    a, b = _job(clock, "a"), _job(clock, "b")
    for job in (a, b, a):
        run = runs.start_run(job, runs.Origin(), "c", None, clock.now())
        runs.finish_run(run.id, "success" if job is a else "error", clock.now(), duration_ms=5)
    assert [r.job.name for r in run_queries.list_runs()] == ["a", "b", "a"]
    assert [r.job.name for r in run_queries.list_runs(job="b")] == ["b"]
    assert len(run_queries.list_runs(status="success", limit=1)) == 1
    as_dict = run_queries.run_as_dict(run_queries.list_runs(job="b")[0])
    assert as_dict["status"] == "error" and as_dict["started_at"].endswith("+00:00")


def test_ensure_job_keeps_what_is_stored(db: str, clock: FakeClock) -> None:
    job = _job(clock)
    Job.update(schedule="0 4 * * *").where(Job.id == job.id).execute()
    again = ensure_job("report", {"url": "/crons/report", "schedule": "0 3 * * *"}, clock.now())
    assert again.id == job.id and again.schedule == "0 4 * * *"


def test_an_old_database_is_migrated_in_place_keeping_its_rows(db: str, clock: FakeClock) -> None:
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate

    # Turn the fresh database back into a version 1 one, with a job in it.
    migrator = SchemaMigrator.from_database(database.obj)
    migrate(migrator.drop_index("run", "run_status_due_at"))
    migrate(migrator.drop_index("job", "job_late_at"))
    migrate(migrator.drop_index("job", "job_last_run_at"))
    migrate(migrator.drop_index("job", "job_updated_at"))
    migrate(migrator.drop_index("job", "job_paused_until"))
    database.obj.execute_sql("DROP TABLE alert")
    migrate(
        *(
            migrator.drop_column("job", c)
            for c in (
                "watch_only",
                "expect_every",
                "grace",
                "min_duration_ms",
                "max_duration_ms",
                "late_at",
                "declared",
                "orphaned_at",
                "pause_note",
                "retry_abandoned",
                "auto_pause_after",
                "signed",
                "paused_until",
                "pause_fate",
            )
        )
    )
    migrate(migrator.drop_column("run", "due_at"))
    SchemaVersion.delete().where(SchemaVersion.version > 1).execute()
    database.obj.execute_sql(
        "INSERT INTO job (name, title, description, url, method, headers, "
        "schedule, tz, mode, enabled, tags, timeout, max_attempts, backoff, "
        "overlap, misfire, catchup_window, run_count, consecutive_failures, "
        "source, created_at, updated_at) VALUES ('old', '', '', '/crons/old', "
        "'POST', '{}', '0 3 * * *', 'UTC', 'blocking', true, '[]', 600, 1, "
        "10, 'forbid', 'once', 3600, 7, 0, 'code', "
        "'2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000')"
    )

    assert ensure_schema(database.obj) == LATEST
    job = Job.get(Job.name == "old")
    assert (job.run_count, job.schedule, job.retry_abandoned, job.declared, job.signed) == (
        7,
        "0 3 * * *",
        False,
        None,
        True,
    )
    assert (job.watch_only, job.expect_every, job.grace, job.late_at) == (False, None, None, None)
    assert database.obj.table_exists("alert")
    indexes = {i.name for i in database.obj.get_indexes("job")}
    assert {"job_late_at", "job_last_run_at", "job_updated_at", "job_paused_until"} <= indexes
    assert ensure_schema(database.obj) == LATEST


def test_a_dropped_postgresql_connection_is_replaced_on_next_use(db: str) -> None:
    from peewee import InterfaceError
    from peewee import OperationalError

    if not db.startswith("postgres"):
        assert database.execute_sql("SELECT 1").fetchone() == (1,)  # SQLite: a file, no server
        return
    pid = database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    import psycopg2

    from tests.backends import postgres_url

    with psycopg2.connect(postgres_url()) as admin, admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))  # as a server restart would
    admin.close()
    try:  # at once, the goodbye may not be there yet: then this statement fails, once
        database.execute_sql("SELECT 1")
    except (OperationalError, InterfaceError):
        pass
    assert database.execute_sql("SELECT 1").fetchone() == (1,)
    assert database.execute_sql("SELECT pg_backend_pid()").fetchone()[0] != pid


def test_a_gateway_registers_beats_and_retires(db: str, clock: FakeClock) -> None:
    from gateway.store import gateways
    from gateway.store.models import Gateway

    gateways.register("gw-1", "host", 42, clock.now(), "standby")
    gateways.register("gw-1", "host", 43, clock.now(), "standby")  # a restart with the same id
    clock.advance(seconds=3)
    gateways.beat("gw-1", clock.now(), "active")
    row = Gateway.get_by_id("gw-1")
    assert (row.pid, row.role, row.seen_at) == (43, "active", clock.now())
    gateways.retire("gw-1", clock.now())
    assert [g.role for g in gateways.list_gateways()] == ["stopped"]


def test_a_connection_dead_since_a_restart_is_replaced_before_use(db: str) -> None:
    """After the server hung up, the next statement runs on a new connection: no error."""
    if not db.startswith("postgres"):
        assert database.execute_sql("SELECT 1").fetchone() == (1,)  # SQLite: a file, no server
        return
    import time

    import psycopg2

    from tests.backends import postgres_url

    pid = database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    with psycopg2.connect(postgres_url()) as admin, admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    admin.close()
    time.sleep(0.2)  # the server's goodbye reaches our socket
    assert database.execute_sql("SELECT 1").fetchone() == (1,)
    assert database.execute_sql("SELECT pg_backend_pid()").fetchone()[0] != pid


def test_job_ref_reads_a_job_once_per_database(
    db: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.store import jobs

    declared = {"url": "/crons/report", "schedule": "0 3 * * *"}
    first = jobs.job_ref("report", declared, clock.now())
    stored = Job.get(Job.name == "report")
    assert (first.id, first.name) == (stored.id, "report") and stored.schedule == "0 3 * * *"

    def no_query(*args: object) -> Job:
        raise AssertionError("job_ref read the job again")

    monkeypatch.setattr(jobs, "ensure_job", no_query)
    assert jobs.job_ref("report", declared, clock.now()).id == stored.id


def test_bulk_helpers_match_what_peewee_would_do(db: str, clock: FakeClock) -> None:
    from gateway.store.bulk import in_list
    from gateway.store.bulk import insert_rows

    a, b, c = (_job(clock, name) for name in ("a", "b", "c"))
    assert {j.name for j in Job.select().where(in_list(Job.id, [a.id, c.id]))} == {"a", "c"}
    assert list(Job.select().where(in_list(Job.id, []))) == []
    Job.update(title="x").where(in_list(Job.id, [b.id]) & (Job.name == "b")).execute()
    assert [j.title for j in Job.select().order_by(Job.id)] == ["", "x", ""]
    row = {"job": a.id, "execution_id": "e1", "trigger": "manual", "status": "queued",
           "attempt": 1, "scheduled_for": clock.now(), "queued_at": clock.now()}  # fmt: skip
    insert_rows(Run, [row], skip_duplicates=True)
    insert_rows(Run, [row | {"execution_id": "e2"}], skip_duplicates=True)  # same slot: left out
    [run] = Run.select()
    assert (run.execution_id, run.job_id, run.scheduled_for) == ("e1", a.id, clock.now())
