"""Time the UI's heaviest pages with 10,000 jobs and 1,000,000 runs on SQLite (server side).

python bench/ui_pages.py [--jobs 10000] [--runs 1000000] [--requests 21]

Fills a fresh SQLite database in batches (executemany inside one transaction per batch; the
fill time is printed), then renders the jobs page (first page, a page deep in the list, a
filtered page) and one job's page with its run history (newest and an older keyset page)
through the Flask test client, and prints the median and the worst of N requests for each.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway import create_app  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.store.db import database  # noqa: E402
from gateway.store.db import ensure_open  # noqa: E402

ADMIN_TOKEN = "bench-admin-token-0123456789"
STATUSES = ("success",) * 8 + ("error", "skipped")
BATCH = 20_000


def fill(jobs: int, runs: int, now: datetime) -> float:
    """Insert `jobs` jobs and `runs` runs spread over them; return the seconds it took."""
    started = time.monotonic()
    stamp = now.replace(tzinfo=None).isoformat(" ", "microseconds")
    job_rows = [
        (
            f"job-{i:05d}",
            f"/crons/job-{i:05d}",
            f"{i % 60} * * * *",
            "UTC",
            f'["team-{i % 20}"]',
            stamp,
            stamp,
            (now + timedelta(minutes=i % 60)).replace(tzinfo=None).isoformat(" ", "microseconds"),
        )
        for i in range(jobs)
    ]
    with database.atomic():
        database.execute_sql("DELETE FROM run")
        database.execute_sql("DELETE FROM job")
        database.cursor().executemany(
            "INSERT INTO job (name, url, schedule, tz, tags, created_at, updated_at, next_run_at,"
            " title, description, method, headers, mode, enabled, timeout, max_attempts, backoff,"
            " overlap, misfire, catchup_window, run_count, consecutive_failures, source,"
            " retry_abandoned, signed)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', '', 'POST', '{}', 'blocking', 1, 600, 1, 10,"
            " 'forbid', 'once', 3600, 0, 0, 'api', 0, 1)",
            job_rows,
        )
    ids = [row[0] for row in database.execute_sql("SELECT id FROM job ORDER BY id")]
    start = now - timedelta(minutes=runs // max(1, len(ids)) + 1)
    for first in range(0, runs, BATCH):
        rows = []
        for n in range(first, min(runs, first + BATCH)):
            job_id = ids[n % len(ids)]
            queued = (start + timedelta(minutes=n // len(ids))).replace(tzinfo=None)
            text = queued.isoformat(" ", "microseconds")
            status = STATUSES[n % len(STATUSES)]
            rows.append(
                (
                    str(uuid.UUID(int=n + 1)),
                    job_id,
                    "schedule",
                    text,
                    1,
                    status,
                    text,
                    text,
                    text,
                    120 + n % 900,
                    5 + n % 50,
                    200,
                    "boom" if status == "error" else None,
                )
            )
        with database.atomic():
            database.cursor().executemany(
                "INSERT INTO run (execution_id, job_id, trigger, scheduled_for, attempt, status,"
                " queued_at, started_at, finished_at, duration_ms, lateness_ms, http_status,"
                " error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
    database.execute_sql("ANALYZE")
    return time.monotonic() - started


def timed(client: object, path: str, count: int) -> tuple[float, float]:
    """Return the median and the worst milliseconds of `count` GETs of `path` (after a warm-up)."""
    get = client.get  # type: ignore[attr-defined]
    response = get(path)
    assert response.status_code == 200, (path, response.status_code)
    samples = []
    for _ in range(count):
        t = time.perf_counter()
        response = get(path)
        samples.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200
    return statistics.median(samples), max(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=21)
    args = parser.parse_args()
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    folder = Path(tempfile.mkdtemp(prefix="ui-bench-"))
    settings = Settings(database_url=f"sqlite:///{folder}/bench.db", admin_token=ADMIN_TOKEN)
    ensure_open(settings.database_url)
    seconds = fill(args.jobs, args.runs, now)
    print(
        f"filled {args.jobs:,} jobs and {args.runs:,} runs in {seconds:.1f} s"
        f" ({args.runs / seconds:,.0f} runs/s);"
        f" database {os.path.getsize(folder / 'bench.db') / 1e6:.0f} MB"
    )

    app = create_app(settings)
    client = app.test_client()
    login = client.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', login)
    assert csrf
    client.post("/login", data={"token": ADMIN_TOKEN, "csrf": csrf.group(1)})
    middle = f"job-{args.jobs // 2:05d}"
    job_page = client.get(f"/jobs/{middle}").text
    older = re.search(r'href="(/jobs/[^"]*before=\d+)" rel="next"', job_page)
    pages = {
        "jobs page, first 50 (with strips)": "/",
        "jobs page, deep (after=job-09000)": "/?after=job-09000",
        "jobs page, tag + status filter": "/?tag=team-7&status=never",
        "jobs page, text search": "/?q=job-05",
        f"job page + history ({middle})": f"/jobs/{middle}",
        "job page, older history page": older.group(1).replace("&amp;", "&") if older else "/",
        "job page, history status=error": f"/jobs/{middle}?status=error",
        "run page": f"/runs/{uuid.UUID(int=args.jobs * 50 + 1)}",
    }
    print(
        f"\n{platform.python_implementation()} {platform.python_version()}, "
        f"SQLite {database.execute_sql('select sqlite_version()').fetchone()[0]}, "
        f"{os.cpu_count()} CPUs; median and worst of {args.requests} requests (server side)"
    )
    for label, path in pages.items():
        median, worst = timed(client, path, args.requests)
        print(f"  {label:<40} {median:7.1f} ms   (worst {worst:.1f} ms)")


if __name__ == "__main__":
    main()
