"""4 gunicorn workers and the gateway writing to ONE SQLite file at once.

Every-second jobs fire for 60 s while 200 manual triggers arrive over the management API
(`POST /api/jobs/<name>/trigger`, 8 client threads): the workers write the triggers and the
runs they execute, the gateway claims, dispatches and records. Errors 0 ("database is locked"
nowhere, no 5xx), runs lost 0 (every trigger ends *success*, every second is accounted for).
"""

from __future__ import annotations

import random
import re
import secrets
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from gateway.store.models import Job
from gateway.store.models import Run
from tests.e2e.gateway_procs import put_job
from tests.e2e.gateway_procs import runs_of
from tests.e2e.gateway_procs import table
from tests.e2e.procs import wait_until
from tests.faults.app_faults import MANUAL
from tests.faults.app_faults import TICKS
from tests.faults.conftest import EVERY_SECOND
from tests.faults.conftest import coverage
from tests.faults.conftest import not_terminal
from tests.faults.conftest import pause_all
from tests.faults.conftest import running_stack
from tests.faults.conftest import wait_idle
from tests.faults.report import record

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

WORKERS = 4
DURATION = 60
JOBS = TICKS[:10]
TRIGGERS = 200
CLIENTS = 8
SERVER_ERROR = re.compile(r'" 5\d\d ')


def test_sqlite_four_workers_and_the_gateway(tmp_path: Path) -> None:
    admin = "faults-admin-" + secrets.token_hex(16)
    with running_stack("sqlite", tmp_path, WORKERS, GATEWAY_ADMIN_TOKEN=admin) as stack:
        gw = stack.gateways.start()
        gw.wait_role("active", 10)
        firsts = {name: put_job(name, EVERY_SECOND).next_run_at for name in JOBS}
        wait_until(
            lambda: Job.select().where(Job.name.in_(MANUAL)).count() == len(MANUAL),
            10,
            "the manual jobs to be synced",
        )
        started = time.monotonic()
        answers: list[tuple[int, str | None]] = []
        lock = threading.Lock()

        def client(n: int) -> None:
            rng = random.Random(n)
            session = requests.Session()
            for i in range(TRIGGERS // CLIENTS):
                name = MANUAL[(n + i) % len(MANUAL)]
                try:
                    r = session.post(
                        f"{stack.server.url}/api/jobs/{name}/trigger",
                        headers={"Authorization": f"Bearer {admin}"},
                        json={"payload": {"client": n, "i": i}},
                        timeout=30,
                    )
                    answer = (r.status_code, r.json().get("execution_id"))
                except (requests.RequestException, ValueError) as e:
                    answer = (0, f"{type(e).__name__}: {e}")
                with lock:
                    answers.append(answer)
                # spread the triggers over about two thirds of the run
                time.sleep(rng.uniform(0, 2 * DURATION * 0.66 / (TRIGGERS // CLIENTS)))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(DURATION + 30)
        time.sleep(max(0.0, started + DURATION - time.monotonic()))
        pause_all(JOBS)
        wait_idle(30)
        outputs = stack.outputs()

        codes = Counter(code for code, _ in answers)
        ids = [eid for code, eid in answers if code == 202 and eid]
        manual = {r.execution_id: r for r in Run.select().where(Run.execution_id.in_(ids))}
        lost = [eid for eid in ids if eid not in manual or manual[eid].status != "success"]
        waits = sorted(
            (r.finished_at - r.queued_at).total_seconds() for r in manual.values() if r.finished_at
        )
        statuses: Counter[str] = Counter()
        holes, twice, left, tick_rows = [], [], [], []
        for name in JOBS:
            rows = runs_of(name)
            tick_rows.extend(rows)
            statuses.update(r.status for r in rows)
            left.extend(not_terminal(rows))
            cover = coverage(rows, firsts[name])
            holes.extend((name, s.isoformat()) for s in cover.holes)
            twice.extend((name, s.isoformat()) for s in cover.twice)
        left.extend(not_terminal(list(manual.values())))
        locked = outputs.count("database is locked") + sum(
            1 for r in Run.select() if r.error and "locked" in r.error
        )
        server_errors = len(SERVER_ERROR.findall(stack.server.proc.output()))
        executed_twice = [k for k, n in stack.calls().items() if n > 1]
        record(
            f"SQLite: {WORKERS} gunicorn workers + the gateway on one file, {TRIGGERS} API "
            f"triggers + {len(JOBS)} jobs every second for {DURATION} s",
            triggers_202=codes[202],
            trigger_answers=dict(codes),
            database_is_locked=locked,
            http_5xx=server_errors,
            runs_lost=len(lost) + len(holes) + len(left),
            duplicates=len(twice) + len(executed_twice),
            trigger_to_end_s_p50=round(waits[len(waits) // 2], 2) if waits else "-",
            trigger_to_end_s_max=round(waits[-1], 2) if waits else "-",
            schedule_statuses=dict(statuses),
        )
        assert codes == {202: TRIGGERS}, f"trigger answers: {dict(codes)}: {answers[:5]}"
        assert locked == 0, "'database is locked' reached an output or a run"
        assert server_errors == 0, f"{server_errors} 5xx answers in the access log"
        assert not lost, f"{len(lost)} triggers did not end success:\n" + table(
            [manual[e] for e in lost if e in manual]
        )
        assert not left, table(left)
        assert not holes, f"seconds with no row: {holes[:10]}"
        assert not twice and not executed_twice, f"{twice[:10]} {executed_twice[:10]}"
        assert not [r for r in tick_rows if r.status in ("error", "abandoned")], table(tick_rows)
