"""Versioned schema steps and the schema_version table: created on first use, migrated in place."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager

from peewee import Database
from peewee import Model
from peewee import PostgresqlDatabase
from peewee import fn
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate

from gateway.clock import SYSTEM_CLOCK
from gateway.errors import ConfigError
from gateway.store.models import MODELS
from gateway.store.models import Alert
from gateway.store.models import Job
from gateway.store.models import Run
from gateway.store.models import SchemaVersion

# An arbitrary constant: the key of the transaction-scoped advisory lock that serializes
# migrations on PostgreSQL (released at commit, so it is safe behind PgBouncer).
_PG_MIGRATION_LOCK = 7_245_310_001


def _v1_initial(db: Database) -> None:
    db.create_tables(MODELS, safe=True)


def _v2_gateway(db: Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    _add_columns(
        db,
        migrator,
        Job,
        ["declared", "orphaned_at", "pause_note", "retry_abandoned", "auto_pause_after"],
    )
    _add_columns(db, migrator, Run, ["due_at"])
    if "run_status_due_at" not in {i.name for i in db.get_indexes("run")}:
        migrate(migrator.add_index("run", ("status", "due_at"), name="run_status_due_at"))


def _add_columns(
    db: Database, migrator: SchemaMigrator, model: type[Model], names: list[str]
) -> None:
    """Add the model's columns that the table does not have yet (a re-run adds nothing)."""
    table = model._meta.table_name
    present = {c.name for c in db.get_columns(table)}
    for name in names:
        if name not in present:
            migrate(migrator.add_column(table, name, model._meta.fields[name]))


def _v3_fleet_and_signing(db: Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    _add_columns(db, migrator, Job, ["signed", "paused_until", "pause_fate"])


def _v4_alerts(db: Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    _add_columns(
        db,
        migrator,
        Job,
        ["watch_only", "expect_every", "grace", "min_duration_ms", "max_duration_ms", "late_at"],
    )
    if "job_late_at" not in {i.name for i in db.get_indexes("job")}:
        migrate(migrator.add_index("job", ("late_at",), name="job_late_at"))
    db.create_tables([Alert], safe=True)


def _v5_round_indexes(db: Database) -> None:
    """What the gateway's rounds read of 100,000 idle jobs, by index, not by a scan of every
    job: those changed since a moment (alerts), those whose pause ends (resume_due)."""
    migrator = SchemaMigrator.from_database(db)
    present = {i.name for i in db.get_indexes("job")}
    for column in ("last_run_at", "updated_at", "paused_until"):
        if f"job_{column}" not in present:
            migrate(migrator.add_index("job", (column,), name=f"job_{column}"))


# Append new steps; never edit a released one. A step gets the database and must be idempotent
# enough to be re-run after a crash between the step and its schema_version row.
STEPS: list[tuple[int, str, Callable[[Database], None]]] = [
    (1, "initial schema: job, run, key, lease, gateway", _v1_initial),
    (2, "gateway: job sync and pause fields, run due_at", _v2_gateway),
    (3, "signed calls per job; fleet pauses with an end time and a fate", _v3_fleet_and_signing),
    (4, "alerts: per-job expectations and bounds, watch-only jobs, alert table", _v4_alerts),
    (5, "indexes on job.last_run_at, job.updated_at and job.paused_until", _v5_round_indexes),
]
LATEST = STEPS[-1][0]


def ensure_schema(db: Database) -> int:
    """Create or migrate the schema to LATEST and return the version; one process at a time."""
    with db.bind_ctx([SchemaVersion]):
        with _migration_lock(db):
            db.create_tables([SchemaVersion], safe=True)
            current = schema_version()
            if current > LATEST:
                raise ConfigError(
                    f"the database schema is version {current}, newer than this code knows "
                    f"({LATEST}): upgrade Cron Gateway",
                    field="GATEWAY_DATABASE_URL",
                )
            fresh = current == 0 and not db.table_exists("job")
            if fresh:  # a new database gets today's tables at once; steps upgrade old ones
                db.create_tables(MODELS, safe=True)
            for version, note, step in STEPS:
                if version > current:
                    if not fresh:
                        step(db)
                    SchemaVersion.create(version=version, note=note, applied_at=SYSTEM_CLOCK.now())
    return max(current, LATEST)


def schema_version() -> int:
    """Return the newest applied schema version, 0 for an empty database."""
    return int(SchemaVersion.select(fn.MAX(SchemaVersion.version)).scalar() or 0)


@contextmanager
def _migration_lock(db: Database) -> Iterator[None]:
    if isinstance(db, PostgresqlDatabase):
        with db.atomic():
            db.execute_sql(  # type: ignore[no-untyped-call]
                "SELECT pg_advisory_xact_lock(%s)", (_PG_MIGRATION_LOCK,)
            )
            yield
    else:
        with db.atomic("IMMEDIATE"):
            yield
