"""APScheduler 3.11 peer: BackgroundScheduler, ThreadPoolExecutor(20), MemoryJobStore.

Each fire = one `requests` call to the target (keep-alive Session per thread, header
X-Bench-Slot: the slot's epoch seconds) + one row written to a SQLite run table (sqlite3, WAL,
a connection per thread). APScheduler's job defaults are kept (misfire_grace_time 1 s,
max_instances 1, coalesce False): that is what a user gets.

    python bench/peers/apscheduler_peer.py SCENARIO --url http://127.0.0.1:18080 --db runs.db

Prints `ready {"add_s": ...}` once every job is added and the scheduler runs; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import sys
import threading
import time
from datetime import UTC
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import apscheduler.executors.pool as aps_pool  # noqa: E402
import requests  # noqa: E402
from apscheduler.executors.pool import ThreadPoolExecutor  # noqa: E402
from apscheduler.jobstores.memory import MemoryJobStore  # noqa: E402
from apscheduler.schedulers.background import BackgroundScheduler  # noqa: E402
from apscheduler.triggers.cron import CronTrigger  # noqa: E402

from bench.scenarios import SCENARIOS  # noqa: E402
from bench.scenarios import aps_trigger  # noqa: E402
from bench.scenarios import job_name  # noqa: E402

_local = threading.local()
_original_run_job = aps_pool.run_job


def _run_job_with_slot(job, jobstore_alias, run_times, logger_name):  # type: ignore[no-untyped-def]
    """APScheduler 3 does not tell a job its scheduled time: note it for `fire` per run."""
    events = []
    for run_time in run_times:
        _local.slot = run_time.timestamp()
        events += _original_run_job(job, jobstore_alias, [run_time], logger_name)
    return events


aps_pool.run_job = _run_job_with_slot


def make_fire(url: str, db: str):  # type: ignore[no-untyped-def]
    def fire(name: str) -> None:
        session = getattr(_local, "session", None)
        if session is None:
            session = _local.session = requests.Session()
            _local.db = sqlite3.connect(db, timeout=10, isolation_level=None)
            _local.db.execute("PRAGMA journal_mode=wal")
            _local.db.execute("PRAGMA synchronous=normal")
        slot = _local.slot
        started = time.time()
        response = session.post(f"{url}/t/{name}", headers={"X-Bench-Slot": repr(slot)}, timeout=30)
        body = response.json()
        _local.db.execute(
            "INSERT INTO run (job, scheduled_for, started_at, finished_at, status, http_status)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (name, slot, started, time.time(), body.get("status"), response.status_code),
        )

    return fire


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--url", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--threads", type=int, default=20)
    args = parser.parse_args()
    scenario = SCENARIOS[args.scenario]
    db = sqlite3.connect(args.db)
    db.execute("PRAGMA journal_mode=wal")
    db.execute(
        "CREATE TABLE IF NOT EXISTS run (id INTEGER PRIMARY KEY, job TEXT, scheduled_for REAL,"
        " started_at REAL, finished_at REAL, status TEXT, http_status INTEGER)"
    )
    db.commit()
    db.close()

    scheduler = BackgroundScheduler(
        jobstores={"default": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(args.threads)},
        timezone=UTC,
    )
    fire = make_fire(args.url.rstrip("/"), args.db)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    now = datetime.now(UTC)
    started = time.monotonic()
    scheduler.start()
    for i in range(scenario.jobs):
        name = job_name(i)
        trigger = CronTrigger(timezone=UTC, **aps_trigger(scenario, i, now))  # type: ignore[arg-type]
        scheduler.add_job(fire, trigger, args=[name], id=name, name=name)
    add_s = time.monotonic() - started
    print("ready " + json.dumps({"add_s": round(add_s, 2)}), flush=True)
    stop.wait()
    scheduler.shutdown(wait=True)


if __name__ == "__main__":
    main()
