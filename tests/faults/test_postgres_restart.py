"""PostgreSQL restarted under load: a gateway and gunicorn run every-second jobs meanwhile.

`pg_ctlcluster … restart` (fast shutdown: every connection is dropped). The gateway logs
"database unavailable", backs off, reconnects and resumes; /healthz answers 503 while the
server is down. Runs lost 0: every second of every job ends in one terminal row (missed ones
per the misfire policy), none is left dispatched or running, no job function runs twice.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
from peewee import DatabaseError
from peewee import InterfaceError

from gateway.store.db import database
from gateway.store.models import Run
from tests.e2e.gateway_procs import now
from tests.e2e.gateway_procs import put_job
from tests.e2e.gateway_procs import runs_of
from tests.e2e.gateway_procs import table
from tests.e2e.procs import wait_until
from tests.faults.app_faults import TICKS
from tests.faults.conftest import EVERY_SECOND
from tests.faults.conftest import GATEWAY_LEASE_SECONDS
from tests.faults.conftest import coverage
from tests.faults.conftest import needs_postgres
from tests.faults.conftest import not_terminal
from tests.faults.conftest import pause_all
from tests.faults.conftest import pg_ctl
from tests.faults.conftest import pg_isready
from tests.faults.conftest import running_stack
from tests.faults.conftest import wait_idle
from tests.faults.report import record

pytestmark = [pytest.mark.faults, pytest.mark.e2e, needs_postgres]

JOBS = TICKS[:5]
BEFORE = 5.0  # seconds of normal firing before the restart
AFTER = 5.0  # and after the gateway resumed


def store_query(fn: Any) -> Any:
    """Run a query from the test process; None while the database is unreachable."""
    try:
        return fn()
    except (DatabaseError, InterfaceError):
        database.close()
        return None


def test_postgres_restart_during_load(tmp_path: Path, postgres_kept_up: None) -> None:
    with running_stack("postgres", tmp_path) as stack:
        gw = stack.gateways.start()
        firsts = {name: put_job(name, EVERY_SECOND).next_run_at for name in JOBS}
        time.sleep(BEFORE)
        database.close()  # this process's connection would die with the server
        health: list[tuple[float, str]] = []
        done: list[Any] = []
        restarter = threading.Thread(target=lambda: done.append(pg_ctl("restart")))
        asked_at, asked = now(), time.monotonic()
        restarter.start()
        while restarter.is_alive() or time.monotonic() - asked < 1.0:
            try:
                code = str(requests.get(stack.server.url + "/healthz", timeout=1).status_code)
            except requests.RequestException as e:
                code = type(e).__name__
            health.append((round(time.monotonic() - asked, 2), code))
            time.sleep(0.05)
        restarter.join()
        restart_took = time.monotonic() - asked
        result = done[0]
        assert result.returncode == 0, f"pg_ctlcluster restart: {result.stdout}{result.stderr}"
        assert pg_isready()
        up_at = now()

        def resumed() -> Run | None:
            rows = store_query(
                lambda: [
                    r
                    for n in JOBS
                    for r in runs_of(n)
                    if r.status == "success" and r.dispatched_at > up_at
                ]
            )
            return min(rows, key=lambda r: r.dispatched_at) if rows else None

        first_after = wait_until(resumed, 40, "a successful run after the restart", 0.2)
        resumed_after = (first_after.dispatched_at - asked_at).total_seconds()
        time.sleep(AFTER)
        pause_all(JOBS)
        wait_idle(GATEWAY_LEASE_SECONDS + 8)
        calls = stack.calls()
        out = gw.proc.output()

        statuses: Counter[str] = Counter()
        holes, twice, left, all_rows = [], [], [], []
        for name in JOBS:
            rows = runs_of(name)
            all_rows.extend(rows)
            statuses.update(r.status for r in rows)
            left.extend(not_terminal(rows))
            cover = coverage(rows, firsts[name])
            holes.extend((name, s.isoformat()) for s in cover.holes)
            twice.extend((name, s.isoformat()) for s in cover.twice)
        executed_twice = [k for k, n in calls.items() if n > 1]
        codes = Counter(code for _, code in health)
        errors = [r for r in all_rows if r.status == "error"]
        unhealthy = [t for t, code in health if code != "200"]
        record(
            f"PostgreSQL restarted under load ({len(JOBS)} jobs every second, 1 gateway, "
            "gunicorn 2 workers)",
            restart_took_s=round(restart_took, 2),
            first_success_after_restart_began_s=round(resumed_after, 2),
            runs=len(all_rows),
            statuses=dict(statuses),
            lost=len(holes) + len(left),
            duplicates=len(twice) + len(executed_twice),
            gateway_outage_logs=out.count("database unavailable"),
            gateway_reconnects=out.count("closed this connection"),
            healthz=dict(codes),
            healthz_not_200_s=f"{min(unhealthy):.2f}-{max(unhealthy):.2f}" if unhealthy else "-",
            errors=[f"{r.http_status} {(r.error or '')[:100]}" for r in errors],
        )
        shown = table(all_rows)
        assert not left, f"runs left active after the restart:\n{table(left)}"
        assert not holes, f"seconds with no row (job, slot): {holes[:10]}\n{shown}"
        assert not twice, f"seconds with two rows: {twice[:10]}\n{shown}"
        assert not executed_twice, f"job functions that ran twice for one slot: {executed_twice}"
        # A restart shorter than the gateway's sleep is met only as a dropped connection.
        assert "database unavailable" in out or "closed this connection" in out, (
            f"the gateway did not report the outage\n{out[-3000:]}"
        )
        if "database unavailable" in out:
            assert "database reachable again" in out, f"no recovery line\n{out[-3000:]}"
        assert statuses["abandoned"] == 0, f"runs abandoned by the restart\n{shown}"
        assert not errors, (
            "slots ended *error* without their job running: an endpoint that met the restart "
            "before its job started must wait for the database (database_wait_seconds), not "
            "answer 503, or the slot is lost with max_attempts=1.\n" + table(errors)
        )
