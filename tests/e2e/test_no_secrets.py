"""Secrets stay secret: a full run (gunicorn, the gateway, the CLI) leaves no token, key secret,
signing secret or signature in any stored row or captured log line.

Each secret is distinctive, so a plain substring search finds any copy of it. The signatures
the gateway sent are not logged anywhere (that is the point), so every signature it could have
made during the run (one per second, for each job it called) is computed and searched for.
"""

from __future__ import annotations

import json
import secrets
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from gateway import signing
from gateway.store.models import Run
from tests.e2e.gateway_procs import now
from tests.e2e.gateway_procs import put_job
from tests.e2e.gateway_procs import runs_of
from tests.e2e.gateway_procs import table
from tests.e2e.procs import ROOT
from tests.e2e.procs import Proc
from tests.e2e.procs import Server
from tests.e2e.procs import clean_env
from tests.e2e.procs import wait_until
from tests.e2e.procs import write_config

pytestmark = pytest.mark.e2e

ADMIN_TOKEN = "e2e-admin-" + secrets.token_hex(16)
SIGNING_SECRET = "e2e-signing-" + secrets.token_hex(16)
# An access log that tries to print every secret-carrying header: logs.py must blank them.
LOG_FORMAT = (
    '%(h)s "%(r)s" %(s)s q=%(q)s tok=%({x-cron-token}i)s auth=%({authorization}i)s '
    "sig=%({x-cron-signature}i)s"
)


@pytest.fixture(scope="module")
def backend() -> str:
    """A SQLite file: every row of it is read back with the sqlite3 module."""
    return "sqlite"


def _env(server: Server, **extra: str) -> dict[str, str]:
    return clean_env(
        GATEWAY_DATABASE_URL=server.db_url,
        GATEWAY_APP_URL=server.url,
        GATEWAY_CRON_TOKEN=server.token,
        GATEWAY_ADMIN_TOKEN=ADMIN_TOKEN,
        GATEWAY_SIGNING_SECRET=SIGNING_SECRET,
        PYTHONPATH=str(ROOT),
        **extra,
    )


def _create_key(server: Server) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "keys", "create", "e2e-key", "--scope", "invoke"],
        env=_env(server),
        cwd=server.workdir,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    secret = done.stdout.splitlines()[1].removeprefix("secret: ")
    assert secret.startswith("cg_")
    return secret


def _signatures(start: datetime, end: datetime, paths: list[str]) -> set[str]:
    """Every signature the gateway could have sent for POST `paths` between start and end."""
    found: set[str] = set()
    t = start - timedelta(seconds=5)
    while t <= end + timedelta(seconds=5):
        for path in paths:
            header = signing.sign(SIGNING_SECRET, "POST", path, b"", t)
            found.add(header.split("v1=")[1])
        t += timedelta(seconds=1)
    return found


def test_no_secret_reaches_a_row_or_a_log_line(
    start_server: Callable[..., Server], store: Callable[[Server], None]
) -> None:
    started = now()
    server = start_server(
        GATEWAY_ADMIN_TOKEN=ADMIN_TOKEN,
        GATEWAY_SIGNING_SECRET=SIGNING_SECRET,
        GATEWAY_ALLOW_QUERY_TOKEN="1",
        GUNICORN_CMD_ARGS=f"--access-logformat '{LOG_FORMAT}'",
    )
    token, key = server.token, _create_key(server)
    config = write_config(server.workdir / "loop.toml", gateway_lease_seconds=3)
    gateway = Proc(
        "gateway",
        [sys.executable, "-m", "gateway", "scheduler"],
        _env(server, GATEWAY_CONFIG=str(config)),
        server.workdir,
    )
    try:
        sent: list[str] = _calls(server, token, key)
        store(server)
        # The calls above made the jobs' rows: wait for the gateway's start-up sync to pass
        # over them before rescheduling, or it would put the code's schedule back.
        wait_until(lambda: "sync: " in gateway.output(), 20, "the gateway's start-up sync")
        put_job("fast", "* * * * * *")  # every second, signed (the default)
        put_job("boom", "* * * * * *", max_attempts=1)  # fails: its error is stored

        def three_signed_successes() -> bool:
            done = [r for r in runs_of("fast") if r.trigger == "schedule"]
            return sum(r.status == "success" and r.http_status == 200 for r in done) >= 3

        wait_until(three_signed_successes, 20, "three scheduled runs of fast")
        assert any(r.status == "error" for r in runs_of("boom")), table(runs_of("boom"))
    finally:
        gateway.stop(signal.SIGTERM)
        server.proc.stop(signal.SIGTERM)  # every line it would write is now in its file
        print(gateway.report())
    # The endpoint accepted the gateway's signatures (a bad one is a 401 and no run).
    assert not [r for r in runs_of("fast") if r.http_status == 401], table(runs_of("fast"))

    signatures = _signatures(started, now(), ["/crons/fast", "/crons/boom"]) | set(sent)
    secret_values = {
        "cron token": token,
        "admin token": ADMIN_TOKEN,
        "key secret": key,
        "signing secret": SIGNING_SECRET,
    }
    output = {"gunicorn": server.proc.output(), "gateway": gateway.output()}
    signed_calls = [
        line
        for line in output["gunicorn"].splitlines()
        if '"POST /crons/fast HTTP/1.1" 200' in line and "sig=-" not in line
    ]
    assert len(signed_calls) >= 4, "the gateway's calls were not signed (or not logged)"
    assert "cronToken=[redacted]" in output["gunicorn"]
    rows = _all_rows(server.db_url)
    assert Run.select().count() > 5 and len(rows) > 10
    for what, value in secret_values.items():
        for name, text in output.items():
            assert value not in text, f"the {what} is in {name}'s output: " + _lines(text, value)
        leaks = [(t, row) for t, row in rows if value in repr(row)]
        assert not leaks, f"the {what} is stored: {leaks}"
    for value in signatures:
        for name, text in output.items():
            assert value not in text, f"a signature is in {name}'s output: " + _lines(text, value)
        leaks = [(t, row) for t, row in rows if value in repr(row)]
        assert not leaks, f"a signature is stored: {leaks}"


def _calls(server: Server, token: str, key: str) -> list[str]:
    """Call the app every way a token can arrive; return the signatures sent by hand."""
    url = server.url

    def post(path: str, **kw: Any) -> requests.Response:
        return requests.post(url + path, timeout=15, **kw)

    assert post(f"/crons/fast?cronToken={token}").status_code == 200
    assert post("/crons/fast", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert post("/crons/fast", headers={"X-Cron-Token": token}).status_code == 200
    assert post("/crons/fast", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert post(f"/crons/boom?cronToken={key}").status_code == 500  # traceback stored
    assert post("/crons/fast", headers={"X-Cron-Token": token + "x"}).status_code == 401
    assert post(f"/crons/fast?cronToken={key}-wrong").status_code == 401
    body = json.dumps({"note": "signed by hand"}).encode()
    good = signing.sign(SIGNING_SECRET, "POST", "/crons/fast", body, now())
    bad = signing.sign(SIGNING_SECRET, "POST", "/crons/other", body, now())
    for signature, status in ((good, 200), (bad, 401)):
        headers = {
            "X-Cron-Token": token,
            "X-Cron-Signature": signature,
            "Content-Type": "application/json",
        }
        assert post("/crons/fast", data=body, headers=headers).status_code == status
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    listed = requests.get(url + "/api/keys", headers=admin, timeout=15)
    assert listed.status_code == 200 and key not in listed.text
    return [good.split("v1=")[1], bad.split("v1=")[1]]


def _all_rows(db_url: str) -> list[tuple[str, tuple[Any, ...]]]:
    """Return every row of every table of the SQLite store, straight from sqlite3."""
    path = Path(db_url.split("sqlite:///", 1)[1])
    conn = sqlite3.connect(path)
    try:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return [(t, row) for t in tables for row in conn.execute(f'SELECT * FROM "{t}"')]
    finally:
        conn.close()


def _lines(text: str, value: str) -> str:
    return "\n".join(line for line in text.splitlines() if value in line)[:2000]
