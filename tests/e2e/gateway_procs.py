"""Gateway processes for the e2e tests: `python -m gateway scheduler` next to a gunicorn.

Builds on tests/e2e/procs.py (Proc, Server, free ports, bounded waits); what is here is only
what the gateway adds: its environment and config file, its Gateway row, the runs of one job,
and a set of gateways that is stopped for sure (and whose output is printed) in teardown.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.store.db import write_transaction
from gateway.store.jobs import next_run_after
from gateway.store.models import Gateway
from gateway.store.models import Job
from gateway.store.models import Run
from tests.e2e.procs import ROOT
from tests.e2e.procs import Proc
from tests.e2e.procs import Server
from tests.e2e.procs import clean_env
from tests.e2e.procs import wait_until
from tests.e2e.procs import write_config

# The gateway's own lease (`gateway_lease_seconds`, LoopSettings.lease_seconds): a standby takes
# over at most this long after the active gateway's last renewal. Its heartbeat, lease renewal
# and reaper run every third of it.
GATEWAY_LEASE = 3.0
HOUSEKEEPING = GATEWAY_LEASE / 3


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class GatewayProc:
    """One `python -m gateway scheduler` process and its Gateway row."""

    proc: Proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def row(self) -> Gateway | None:
        row: Gateway | None = Gateway.get_or_none(Gateway.pid == self.pid)
        return row

    def role(self) -> str | None:
        row = self.row()
        return row.role if row is not None else None

    @property
    def instance(self) -> str:
        row = self.row()
        assert row is not None, f"{self.proc.name} has no Gateway row"
        return str(row.instance)

    def wait_role(self, role: str, seconds: float) -> None:
        def check() -> bool:
            if not self.proc.running() and role != "stopped":
                raise AssertionError(
                    f"{self.proc.name} exited with {self.proc.popen.returncode}\n"
                    + self.proc.report()
                )
            return self.role() == role

        wait_until(check, seconds, f"{self.proc.name} to be {role}", interval=0.02)


@dataclass
class GatewaySet:
    """The gateways a test started on one server's database; all stopped in teardown."""

    server: Server
    config: Path
    started: list[GatewayProc] = field(default_factory=list)

    def start(self, wait_registered: bool = True) -> GatewayProc:
        env = clean_env(
            GATEWAY_DATABASE_URL=self.server.db_url,
            GATEWAY_CRON_TOKEN=self.server.token,
            GATEWAY_APP_URL=self.server.url,
            GATEWAY_BIND=self.server.url.removeprefix("http://"),
            GATEWAY_CONFIG=str(self.config),
            PYTHONPATH=str(ROOT),
        )
        name = f"gateway{len(self.started)}"
        argv = [sys.executable, "-m", "gateway", "scheduler"]
        gw = GatewayProc(Proc(name, argv, env, self.server.workdir))
        self.started.append(gw)
        if wait_registered:
            wait_until(
                lambda: _registered(gw), 20, f"{name} (pid {gw.pid}) to register", interval=0.02
            )
        return gw

    def stop_all(self) -> None:
        for gw in self.started:
            gw.proc.stop(signal.SIGKILL, 1)

    def report(self) -> str:
        return "\n".join(gw.proc.report() for gw in self.started)


def _registered(gw: GatewayProc) -> bool:
    if not gw.proc.running():
        raise AssertionError(
            f"{gw.proc.name} exited with {gw.proc.popen.returncode}\n" + gw.proc.report()
        )
    return gw.row() is not None


@contextmanager
def gateway_set(server: Server, **config: int | float) -> Iterator[GatewaySet]:
    """Yield a GatewaySet for `server`; every gateway is killed and its output printed after.
    `config`: more [gateway] settings of their config file (e.g. gateway_senders)."""
    path = write_config(
        server.workdir / "gateway-loop.toml",
        heartbeat_seconds=0.5,
        lease_seconds=3,
        gateway_lease_seconds=GATEWAY_LEASE,
        **config,
    )
    gateways = GatewaySet(server, path)
    try:
        yield gateways
    finally:
        gateways.stop_all()
        print(gateways.report())


# -- jobs and runs ---------------------------------------------------------------------------


def put_job(name: str, schedule: str | None = None, **fields: Any) -> Job:
    """Reschedule the app's job `name` as an operator would (`jobs edit`), and return it.

    The job comes from the app's manifest (`GET /crons`), which the gateway reads at start:
    wait for that, then change it. The endpoint attaches a gateway run only to the job of its
    own name, so tests use the app's job names (tests/e2e/app_under_test.py).
    """
    wait_until(
        lambda: Job.get_or_none(Job.name == name),
        10,
        f"the gateway's start-up sync to create job {name!r} from the app's manifest",
    )
    with write_transaction():
        job = Job.get(Job.name == name)
        at = now()
        job.schedule, job.enabled, job.updated_at = schedule, True, at
        for key, value in fields.items():
            setattr(job, key, value)
        job.next_run_at = next_run_after(job, at)
        job.save()
    return job


def pause(name: str) -> None:
    """Pause the job as `jobs pause` does: no more slots are claimed."""
    Job.update(enabled=False, next_run_at=None, updated_at=now()).where(Job.name == name).execute()


def runs_of(name: str) -> list[Run]:
    """Return every run of job `name`, oldest first."""
    return list(Run.select().join(Job).where(Job.name == name).order_by(Run.id))


def table(rows: list[Run]) -> str:
    """Return the runs as text lines, for assertion messages."""
    lines = []
    for r in rows:
        slot = r.scheduled_for.isoformat(timespec="milliseconds") if r.scheduled_for else "-"
        lines.append(
            f"  id={r.id} {r.trigger:8} slot={slot} att={r.attempt} {r.status:10} "
            f"late={r.lateness_ms} n={r.missed_count} gw={r.gateway} err={r.error}"
        )
    return "\n".join(lines)


def cli(server: Server, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run `python -m gateway ARGS` against the server's database, as an operator would."""
    env = clean_env(
        GATEWAY_DATABASE_URL=server.db_url,
        GATEWAY_APP_URL=server.url,
        GATEWAY_CRON_TOKEN=server.token,
        PYTHONPATH=str(ROOT),
    )
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env=env,
        cwd=server.workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (
        f"python -m gateway {' '.join(args)} exited {done.returncode}\n{done.stdout}{done.stderr}"
    )
    return done
