"""Fixtures for the fault suite: gunicorn serving tests/faults/app_faults.py, gateways, analysis.

Builds on tests/e2e (Proc, Server, gateway_set, put_job, runs_of, table). The figures each test
records with tests.faults.report.record are printed again in pytest's terminal summary, so every
run of the suite shows them (with or without -s), and kept in pytest's cache for report.py.
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from gateway.store.db import close_database
from gateway.store.db import ensure_open
from gateway.store.models import ACTIVE_STATUSES
from gateway.store.models import Job
from gateway.store.models import Run
from gateway.store.runs import TERMINAL_STATUSES
from tests.backends import database_url
from tests.backends import postgres_url
from tests.e2e.conftest import new_token
from tests.e2e.gateway_procs import GatewaySet
from tests.e2e.gateway_procs import gateway_set
from tests.e2e.procs import Proc
from tests.e2e.procs import Server
from tests.e2e.procs import clean_env
from tests.e2e.procs import free_port
from tests.e2e.procs import gunicorn_argv
from tests.e2e.procs import gunicorn_workers
from tests.e2e.procs import wait_until
from tests.e2e.procs import write_config
from tests.faults import report

APP = "tests.faults.app_faults:app"
SECOND = timedelta(seconds=1)
EVERY_SECOND = "* * * * * *"
# What the brief asks for, in both the app's and the gateways' config files.
LEASE_SECONDS = 3.0  # a running job's lease (app side): a dead worker's run is abandoned after it
HEARTBEAT_SECONDS = 0.5
GATEWAY_LEASE_SECONDS = 3.0  # gateway_set() writes the same values for the gateways

needs_postgres = pytest.mark.skipif(
    postgres_url() is None, reason="PostgreSQL tests switched off by GATEWAY_TEST_POSTGRES=off"
)


# -- the figures -----------------------------------------------------------------------------


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not report.LINES:
        return
    terminalreporter.section("fault suite figures")
    for line in report.LINES:
        terminalreporter.write_line(line)
    cache = getattr(terminalreporter.config, "cache", None)  # absent with -p no:cacheprovider
    if cache is not None:
        cache.set(report.CACHE_KEY, list(report.LINES))


# -- processes -------------------------------------------------------------------------------


@dataclass
class Stack:
    """A gunicorn serving app_faults, this process's store on its database, and its gateways."""

    server: Server
    gateways: GatewaySet
    workdir: Path
    started_at: datetime = field(default_factory=lambda: datetime.now().astimezone())

    def outputs(self) -> str:
        return self.server.proc.output() + "".join(g.proc.output() for g in self.gateways.started)

    def calls(self) -> Counter[tuple[str, str, int]]:
        """Return how often each job function ran per (job, slot, attempt), from calls.log."""
        path = self.workdir / "calls.log"
        lines = path.read_text().splitlines() if path.exists() else []
        found: Counter[tuple[str, str, int]] = Counter()
        for line in lines:
            job, slot, execution, attempt, _pid = line.split()
            # A manual run has no slot: its execution id is its identity.
            found[(job, slot if slot != "-" else execution, int(attempt))] += 1
        return found


def start_app(workdir: Path, db_url: str, workers: int = 2, **env: str) -> Server:
    """Start gunicorn (app_faults) with `workers` workers; return once /healthz says 200."""
    port = free_port()
    config = write_config(
        workdir / "app.toml",
        heartbeat_seconds=HEARTBEAT_SECONDS,
        lease_seconds=LEASE_SECONDS,
        gateway_lease_seconds=GATEWAY_LEASE_SECONDS,
    )
    argv = gunicorn_argv(APP)
    argv[argv.index("--workers") + 1] = str(workers)
    token = new_token()
    environment = clean_env(
        GATEWAY_DATABASE_URL=db_url,
        GATEWAY_CRON_TOKEN=token,
        GATEWAY_BIND=f"127.0.0.1:{port}",
        GATEWAY_CONFIG=str(config),
        GATEWAY_WEB_WORKERS=str(workers),
        FAULTS_DIR=str(workdir),
        **env,
    )
    proc = Proc("gunicorn", argv, environment, workdir)
    server = Server(proc, f"http://127.0.0.1:{port}", token, db_url, workdir)

    def healthy() -> bool:
        if not proc.running():
            raise AssertionError(f"gunicorn exited\n{proc.report()}")
        try:
            return requests.get(server.url + "/healthz", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_until(healthy, 30, f"gunicorn /healthz on port {port}")
        wait_until(lambda: len(gunicorn_workers(proc.pid)) == workers, 15, "gunicorn's workers")
    except BaseException:
        proc.stop(signal.SIGKILL, 1)
        print(proc.report())
        raise
    return server


@contextmanager
def running_stack(backend: str, workdir: Path, workers: int = 2, **env: str) -> Iterator[Stack]:
    """A fresh database of `backend`, gunicorn on it, a GatewaySet; all stopped afterwards."""
    with database_url(backend, workdir) as url:
        server = start_app(workdir, url, workers, **env)
        ensure_open(url)
        try:
            with gateway_set(server) as gateways:
                yield Stack(server, gateways, workdir)
        finally:
            close_database()  # before the schema is dropped
            server.proc.stop()
            print(server.proc.report())


# -- PostgreSQL must be up after every test, whatever it did to the server ----------------------


def pg_isready() -> bool:
    done = subprocess.run(
        ["pg_isready", "-h", "127.0.0.1", "-p", "5432"], capture_output=True, timeout=10
    )
    return done.returncode == 0


def pg_ctl(action: str) -> subprocess.CompletedProcess[str]:
    """Run pg_ctlcluster on this machine's one cluster (root only)."""
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir())
    return subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", action],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def postgres_kept_up() -> Iterator[None]:
    """Whatever the test does to PostgreSQL, it is running again afterwards."""
    yield
    if not pg_isready():
        started = pg_ctl("start")
        print(f"PostgreSQL was down after the test; started it: {started.returncode}")
        wait_until(pg_isready, 30, "PostgreSQL to accept connections again", interval=0.5)


# -- what the runs say ---------------------------------------------------------------------------


def active_runs() -> list[Run]:
    return list(Run.select().where(Run.status.in_(ACTIVE_STATUSES)).order_by(Run.id))


def pause_all(names: list[str]) -> None:
    """Stop scheduling the jobs (queued runs still go), as `jobs pause` does."""
    Job.update(enabled=False, next_run_at=None).where(Job.name.in_(names)).execute()


def wait_idle(seconds: float) -> None:
    """Wait until no run is queued, dispatched or running (the reaper ends the dead ones)."""
    wait_until(lambda: not active_runs(), seconds, "no run left queued/dispatched/running", 0.2)


@dataclass
class Coverage:
    """How the expected seconds of one job are accounted for by its rows."""

    expected: list[datetime]
    by_second: dict[datetime, list[str]]  # statuses covering each second (missed: by count)

    @property
    def holes(self) -> list[datetime]:
        return [s for s in self.expected if not self.by_second.get(s)]

    @property
    def twice(self) -> list[datetime]:
        return [s for s, found in self.by_second.items() if len(found) > 1]

    @property
    def extra(self) -> list[datetime]:
        grid = set(self.expected)
        return [s for s in self.by_second if s not in grid]


def coverage(rows: list[Run], first: datetime, last: datetime | None = None) -> Coverage:
    """Account for every second from `first` to `last` (default: the newest slot with a row).

    A slot's attempt 1 row covers it (retries are attempts of the same slot, not new slots);
    a *missed* row covers `missed_count` seconds from its slot.
    """
    by_second: dict[datetime, list[str]] = {}
    for r in rows:
        if r.scheduled_for is None or r.attempt != 1:
            continue
        span = (r.missed_count or 1) if r.status == "missed" else 1
        for i in range(span):
            by_second.setdefault(r.scheduled_for + i * SECOND, []).append(r.status)
    if last is None:
        last = max(by_second) if by_second else first - SECOND
    count = int((last - first) / SECOND) + 1
    return Coverage([first + i * SECOND for i in range(max(0, count))], by_second)


def final_status(rows: list[Run]) -> dict[datetime, str]:
    """Return each slot's final status: its last attempt's."""
    last: dict[datetime, Run] = {}
    for r in rows:
        if r.scheduled_for is not None and (
            r.scheduled_for not in last or r.attempt > last[r.scheduled_for].attempt
        ):
            last[r.scheduled_for] = r
    return {slot: r.status for slot, r in last.items()}


def not_terminal(rows: list[Run]) -> list[Run]:
    return [r for r in rows if r.status not in TERMINAL_STATUSES]
