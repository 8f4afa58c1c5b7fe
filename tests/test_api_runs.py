"""The API's run history: filters, keyset pagination, text search, one execution; both backends."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from gateway.store import run_queries as store
from gateway.store.jobs import create_job
from gateway.store.models import Job
from gateway.store.models import Run
from gateway.store.runs import new_execution_id
from tests.conftest import ADMIN_TOKEN
from tests.fakes import FakeClock

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _job(name: str, settings: Any) -> Job:
    return create_job({"name": name, "url": f"/crons/{name}"}, T0, settings=settings)


def _run(job: Job, n: int, **fields: Any) -> Run:
    values: dict[str, Any] = {
        "execution_id": new_execution_id(),
        "job": job,
        "trigger": "schedule",
        "status": "success",
        "queued_at": T0 + timedelta(minutes=n),
        **fields,
    }
    return Run.create(**values)


@pytest.fixture
def history(settings: Any) -> list[Run]:
    """Twelve runs of two jobs: every third an error, alternate triggers, one per minute."""
    a, b = _job("alpha", settings), _job("beta", settings)
    made = []
    for n in range(12):
        failed = n % 3 == 0
        made.append(
            _run(
                a if n % 2 == 0 else b,
                n,
                status="error" if failed else "success",
                trigger="manual" if n % 4 == 0 else "schedule",
                error=f"Disk full on host-{n}" if failed else None,
                summary={"rows": n, "note": "50% done_x"} if not failed else None,
            )
        )
    return made


def _get(client: FlaskClient, path: str) -> dict[str, Any]:
    response = client.get(path, headers=AUTH)
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json
    return body


def _minutes(body: dict[str, Any]) -> list[int]:
    return [int(datetime.fromisoformat(r["queued_at"]).minute) for r in body["runs"]]


def test_runs_come_newest_first_and_filter(client: FlaskClient, history: list[Run]) -> None:
    assert _minutes(_get(client, "/api/runs")) == list(range(11, -1, -1))
    assert _minutes(_get(client, "/api/runs?job=alpha")) == [10, 8, 6, 4, 2, 0]
    assert _minutes(_get(client, "/api/runs?status=error")) == [9, 6, 3, 0]
    assert _minutes(_get(client, "/api/runs?trigger=manual&job=alpha")) == [8, 4, 0]
    since, until = (T0 + timedelta(minutes=3)).isoformat(), "2026-11-23T09:06:00Z"
    got = _get(client, f"/api/runs?since={since.replace('+', '%2B')}&until={until}")
    assert _minutes(got) == [5, 4, 3]
    assert _get(client, "/api/runs?job=nobody") == {"runs": [], "next": None}
    assert _minutes(_get(client, "/api/jobs/beta/runs?status=error")) == [9, 3]


def test_keyset_pages_walk_everything_once(client: FlaskClient, history: list[Run]) -> None:
    seen: list[int] = []
    path = "/api/runs?limit=5"
    pages = 0
    while True:
        body = _get(client, path)
        seen += _minutes(body)
        pages += 1
        if body["next"] is None:
            break
        path = f"/api/runs?limit=5&before={body['next']}"
    assert seen == list(range(11, -1, -1)) and pages == 3
    # A run that arrives meanwhile does not shift the pages already cursored.
    first = _get(client, "/api/runs?limit=5&status=success")
    _run(history[0].job, 30)
    after = _get(client, f"/api/runs?limit=5&status=success&before={first['next']}")
    assert _minutes(after) == [4, 2, 1]


def test_q_matches_error_or_summary_text_case_insensitively(
    client: FlaskClient, history: list[Run]
) -> None:
    assert _minutes(_get(client, "/api/runs?q=disk%20FULL")) == [9, 6, 3, 0]
    assert _minutes(_get(client, "/api/runs?q=host-6")) == [6]
    # LIKE's wildcards are literal text: "50%" and "_x" match only runs whose text has them.
    assert len(_get(client, "/api/runs?q=50%25")["runs"]) == 8
    assert _get(client, "/api/runs?q=0%25%25")["runs"] == []
    assert len(_get(client, "/api/runs?q=done_x&job=beta")["runs"]) == 4
    assert _minutes(_get(client, "/api/runs?q=%22rows%22:%2011")) == []  # JSON text is compact
    assert _minutes(_get(client, "/api/runs?q=%22rows%22:11")) == [11]


def test_q_scans_a_bounded_window_and_hands_back_a_cursor(
    client: FlaskClient, history: list[Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "Q_SCAN_LIMIT", 4)
    body = _get(client, "/api/runs?q=disk")
    assert _minutes(body) == [9] and body["next"] is not None
    found = _minutes(body)
    while body["next"] is not None:
        body = _get(client, f"/api/runs?q=disk&before={body['next']}")
        found += _minutes(body)
    assert found == [9, 6, 3, 0]


def test_one_execution_shows_every_attempt(
    client: FlaskClient, settings: Any, clock: FakeClock
) -> None:
    job = _job("retried", settings)
    execution = new_execution_id()
    _run(job, 1, execution_id=execution, status="error", error="boom", log="first try")
    _run(job, 2, execution_id=execution, attempt=2, status="success", log="second try")
    body = _get(client, f"/api/runs/{execution}")
    assert (body["status"], body["attempt"], body["execution_id"]) == ("success", 2, execution)
    assert [(a["attempt"], a["status"], a["log"]) for a in body["attempts"]] == [
        (1, "error", "first try"),
        (2, "success", "second try"),
    ]
    assert _get(client, f"/api/runs/{execution.upper()}")["execution_id"] == execution


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/runs?limit=abc", (400, "invalid", "limit")),
        ("/api/runs?limit=0", (400, "invalid", "limit")),
        ("/api/runs?limit=501", (400, "invalid", "limit")),
        ("/api/runs?limit=-1", (400, "invalid", "limit")),
        ("/api/runs?limit=%EF%BC%91", (400, "invalid", "limit")),  # a full-width digit
        ("/api/runs?before=x1", (400, "invalid", "before")),
        ("/api/runs?since=yesterday", (400, "invalid", "since")),
        ("/api/runs?since=2026-11-01T00:00:00", (400, "invalid", "since")),
        ("/api/runs?since=2026-11-02T00:00Z&until=2026-11-01T00:00Z", (400, "invalid", "until")),
        ("/api/runs?status=finished", (400, "invalid", "status")),
        ("/api/runs?trigger=cron", (400, "invalid", "trigger")),
        ("/api/runs?order=asc", (400, "invalid", "order")),
        ("/api/runs?limit=5&limit=6", (400, "invalid", "limit")),
        ("/api/runs?q=" + "x" * 201, (400, "invalid", "q")),
        ("/api/jobs/alpha/runs?job=beta", (400, "invalid", "job")),
        ("/api/jobs/nobody/runs", (404, "not_found", "name")),
        ("/api/runs/not-a-uuid", (404, "not_found", None)),
        ("/api/runs/7d1f2e7c-3b3a-4c55-9a55-2a8c4d0b6f11", (404, "not_found", None)),
    ],
)
def test_bad_run_queries_are_4xx_naming_the_parameter(
    client: FlaskClient, history: list[Run], path: str, expected: tuple[int, str, str | None]
) -> None:
    response = client.get(path, headers=AUTH)
    body = response.json
    assert (response.status_code, body["error"]["code"], body["error"]["field"]) == expected


def test_pages_walk_an_index_not_the_table(settings: Any) -> None:
    """The plan of a filtered page walks the (job, id) or (status, id) index, with no sort.

    SQLite: EXPLAIN QUERY PLAN. PostgreSQL plans by statistics (a tiny table is read whole), so
    there sequential scans are switched off for the check: an index path must exist.
    """
    from gateway.store.db import database
    from gateway.store.db import is_sqlite

    job = _job("alpha", settings)
    for status in ("success", "error"):
        filters = store.RunFilters(job="alpha" if status == "success" else None, status=status)
        where = store._run_conditions(filters, 1000)
        query = Run.select(Run.id).where(where).order_by(Run.id.desc()).limit(50)
        sql, args = query.sql()
        if is_sqlite():
            rows = database.execute_sql(f"EXPLAIN QUERY PLAN {sql}", args)
            plan = " ".join(str(row) for row in rows)
            assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
            assert "TEMP B-TREE" not in plan, plan  # no sort: the index gives the order
        else:
            with database.atomic():
                database.execute_sql("SET LOCAL enable_seqscan = off")
                rows = database.execute_sql(f"EXPLAIN {sql}", args)
                plan = " ".join(str(row[0]) for row in rows)
            assert "Index" in plan and "Seq Scan" not in plan, plan
            assert "Sort" not in plan, plan  # the index gives the order
    assert job.id is not None
