"""Versioned schema steps and the schema_version table: created on first use, migrated in place."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager

from peewee import Database
from peewee import PostgresqlDatabase
from peewee import fn

from gateway.clock import SYSTEM_CLOCK
from gateway.errors import ConfigError
from gateway.store.models import MODELS
from gateway.store.models import SchemaVersion

# An arbitrary constant: the key of the transaction-scoped advisory lock that serializes
# migrations on PostgreSQL (released at commit, so it is safe behind PgBouncer).
_PG_MIGRATION_LOCK = 7_245_310_001


def _v1_initial(db: Database) -> None:
    db.create_tables(MODELS, safe=True)


# Append new steps; never edit a released one. A step gets the database and must be idempotent
# enough to be re-run after a crash between the step and its schema_version row.
STEPS: list[tuple[int, str, Callable[[Database], None]]] = [
    (1, "initial schema: job, run, key, lease, gateway", _v1_initial),
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
            for version, note, step in STEPS:
                if version > current:
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
