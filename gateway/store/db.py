"""connect(url): SQLite (WAL, busy timeout) or PostgreSQL behind one DatabaseProxy."""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Callable
from contextlib import nullcontext
from contextlib import suppress
from pathlib import Path
from typing import Any
from typing import TypeVar
from urllib.parse import urlsplit

from peewee import Database
from peewee import DatabaseProxy
from peewee import InterfaceError
from peewee import OperationalError
from peewee import PostgresqlDatabase
from peewee import SqliteDatabase
from playhouse.db_url import parse as parse_url

from gateway.clock import Clock
from gateway.errors import ConfigError

T = TypeVar("T")
logger = logging.getLogger("gateway.store")

# The models bind to this proxy; `open_database` points it at a real database.
database = DatabaseProxy()

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_PRAGMAS: dict[str, object] = {
    "journal_mode": "wal",
    # gunicorn workers and the gateway write to one file: wait for the lock instead of failing.
    "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
    "synchronous": "normal",
    "foreign_keys": 1,
}


def connect(url: str) -> Database:
    """Return an (unconnected) peewee Database for a sqlite:// or postgresql:// URL.

    Connections open lazily, per thread, so a database made before gunicorn forks opens its
    connections only in the workers.
    """
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        return _sqlite(url)
    if scheme in ("postgres", "postgresql"):
        params = parse_url(url)
        return ResilientPostgresqlDatabase(params.pop("database"), **params)
    raise ConfigError(f"unsupported database URL scheme {scheme!r}", field="GATEWAY_DATABASE_URL")


class ResilientPostgresqlDatabase(PostgresqlDatabase):
    """PostgreSQL whose threads get a new connection after the server dropped theirs.

    A restart, a failover or an idle kill leaves each thread's connection dead; psycopg2 marks
    it closed once a statement fails on it. That statement's error goes to the caller (its
    outcome is unknown, so it is never replayed here); the thread's next use reconnects.
    """

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        state = self._state  # type: ignore[attr-defined]
        if state.conn is not None and not self.in_transaction() and _is_dead(state.conn):
            logger.warning("database: the server closed this connection; reconnecting")
            try:
                state.conn.close()
            finally:
                state.reset()
        return super().cursor(*args, **kwargs)  # type: ignore[no-untyped-call]


def _is_dead(conn: Any) -> bool:
    """Return True if an idle psycopg2 connection can no longer be used.

    psycopg2 marks a connection closed only after a statement failed on it. An idle
    connection has nothing to read (we use no LISTEN); if its socket is readable, the server
    sent its goodbye ("terminating connection") or hung up, so it is replaced before use.
    """
    if conn.closed:
        return True
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _sqlite(url: str) -> SqliteDatabase:
    path = url.split("sqlite://", 1)[1]
    # sqlite:///var/x.db is relative; sqlite:////abs/x.db is absolute (SQLAlchemy's rule).
    path = path[1:] if path.startswith("/") else path
    if not path or path == ":memory:":
        raise ConfigError(
            "the SQLite database must be a file shared by all processes",
            field="GATEWAY_DATABASE_URL",
        )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    return db


def open_database(url: str) -> Database:
    """Point the models at `url`, create or migrate the schema, and return the database."""
    from gateway.store.migrate import ensure_schema

    db = connect(url)
    database.initialize(db)
    ensure_schema(db)
    return db


_opened_url: str | None = None
_open_lock = threading.Lock()


def ensure_open(url: str) -> None:
    """Open `url` once per process (on first use, so after gunicorn forked); cheap afterwards."""
    global _opened_url
    if _opened_url == url:
        return
    with _open_lock:
        if _opened_url != url:
            open_database(url)
            _opened_url = url


def close_database() -> None:
    """Close this thread's connection and forget the opened URL (tests switch databases)."""
    global _opened_url
    with _open_lock:
        if database.obj is not None:
            database.close()
        _opened_url = None


def is_sqlite(db: Database | Any | None = None) -> bool:
    """Return True if the models' database (or `db`) is SQLite."""
    target = db if db is not None else database.obj
    return isinstance(target, SqliteDatabase)


def write_transaction() -> Any:
    """Return a context manager for a read-then-write transaction.

    On SQLite this is BEGIN IMMEDIATE, so two processes cannot both read and then both write
    (the second would fail with "database is locked" instead of waiting). Waiting is left to
    SQLite's busy handler: an in-process lock in front of it (one waiter per process, polling)
    was measured slower at the median for a cron endpoint under gunicorn (bench/README.md).
    """
    db = database.obj
    if isinstance(db, SqliteDatabase):
        return db.atomic("IMMEDIATE")
    return db.atomic()


def joined_write_transaction() -> Any:
    """Return `write_transaction()`, or nothing to enter if a transaction is open already:
    the statements then join it, with no savepoint around them (two statements fewer)."""
    return nullcontext() if database.in_transaction() else write_transaction()


def retry_while_unavailable(step: Callable[[], T], clock: Clock, patience_s: float) -> T:
    """Return `step()`, calling it again with backoff while the database cannot be reached.

    For work that has not done anything outside the database yet (a cron endpoint before its
    job starts): a restart or failover of a few seconds then delays a run instead of failing
    it. After `patience_s` (monotonic) the last OperationalError or InterfaceError is raised.
    """
    deadline = clock.monotonic() + patience_s
    delay = 0.1
    never = threading.Event()
    while True:
        try:
            return step()
        except (OperationalError, InterfaceError):
            left = deadline - clock.monotonic()
            if left <= 0:
                raise
            with suppress(Exception):  # a dead connection may fail to close: it is gone anyway
                database.close()
            clock.wait(min(delay, left), never)
            delay = min(delay * 2, 2.0)
