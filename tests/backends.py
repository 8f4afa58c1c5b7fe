"""The databases tests run on: a fresh SQLite file, or a fresh schema in this machine's PostgreSQL.

PostgreSQL tests run by default against GATEWAY_TEST_POSTGRES (default
postgresql://postgres@127.0.0.1:5432/test). If the server is unreachable they fail, loudly;
setting GATEWAY_TEST_POSTGRES=off skips them with that reason shown in the summary.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg2

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgres")


def postgres_url() -> str | None:
    """Return the PostgreSQL URL tests use, or None when switched off."""
    url = os.environ.get("GATEWAY_TEST_POSTGRES", DEFAULT_PG)
    return None if url.lower() in ("off", "0", "no", "") else url


@contextmanager
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """Yield a URL to an empty database of `backend`, removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'gateway.db'}"
        return
    base = postgres_url()
    assert base is not None, "PostgreSQL tests are switched off"
    schema = f"cg_test_{uuid.uuid4().hex[:12]}"
    with psycopg2.connect(base) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
    conn.close()
    try:
        yield f"{base}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg2.connect(base) as conn, conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()
