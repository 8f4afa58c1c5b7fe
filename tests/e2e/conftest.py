"""Fixtures for the e2e tests: a database per backend, gunicorn processes, the store.

`server` is one gunicorn per backend for the whole module (the tests that only call jobs share
it); `start_server` starts a fresh one on a fresh database for tests that break or reconfigure
it. Every process is stopped in teardown, and its output printed (pytest shows it on failure).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.store.db import close_database
from gateway.store.db import ensure_open
from tests.backends import BACKENDS
from tests.backends import database_url
from tests.backends import postgres_url
from tests.e2e.procs import Server
from tests.e2e.procs import start_gunicorn


def _backend_params() -> list[Any]:
    off = pytest.mark.skip(reason="PostgreSQL tests switched off by GATEWAY_TEST_POSTGRES=off")
    return [
        pytest.param(b, marks=[off] if b == "postgres" and postgres_url() is None else [])
        for b in BACKENDS
    ]


def new_token() -> str:
    return "e2e-" + secrets.token_hex(16)


@pytest.fixture(scope="module", params=_backend_params())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One gunicorn (2 workers) per backend, shared by the module's tests."""
    workdir = tmp_path_factory.mktemp(f"e2e-{backend}")
    with database_url(backend, workdir) as url:
        srv = start_gunicorn(workdir, url, new_token())
        try:
            yield srv
        finally:
            srv.proc.stop()
            print(srv.proc.report())


@pytest.fixture
def start_server(backend: str, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start a gunicorn on a fresh database of `backend`: start_server(**extra_env)."""
    started: list[Server] = []
    with database_url(backend, tmp_path) as url:

        def start(**env: str) -> Server:
            srv = start_gunicorn(tmp_path, url, new_token(), name=f"gunicorn{len(started)}", **env)
            started.append(srv)
            return srv

        try:
            yield start
        finally:
            close_database()  # before the schema is dropped
            for srv in started:
                srv.proc.stop()
                print(srv.proc.report())


@pytest.fixture
def store() -> Iterator[Callable[[Server], None]]:
    """open_store(server): point this process's models at the server's database."""

    def open_store(srv: Server) -> None:
        ensure_open(srv.db_url)

    yield open_store
    close_database()
