"""`python -m gateway up` for one machine: token file, demo job, clean Ctrl-C (SQLite only)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests

from tests.e2e.procs import ROOT
from tests.e2e.procs import Proc
from tests.e2e.procs import alive
from tests.e2e.procs import children
from tests.e2e.procs import clean_env
from tests.e2e.procs import cmdline
from tests.e2e.procs import descendants
from tests.e2e.procs import free_port
from tests.e2e.procs import gunicorn_workers
from tests.e2e.procs import wait_until

pytestmark = pytest.mark.e2e


def test_up_creates_a_token_serves_the_demo_job_and_stops_on_sigint(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env(PYTHONPATH=str(ROOT), GATEWAY_BIND=f"127.0.0.1:{port}")
    up = Proc("up", [sys.executable, "-m", "gateway", "up"], env, tmp_path)
    family: list[int] = []
    try:
        token_file = tmp_path / "var" / "cron-token"
        wait_until(lambda: token_file.exists() and token_file.read_text(), 10, "var/cron-token")
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 16

        def healthy() -> bool:
            assert up.running(), f"`up` exited with {up.popen.returncode}"
            try:
                return requests.get(base + "/healthz", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(healthy, 20, "/healthz of `up`")
        assert (tmp_path / "var" / "gateway.db").is_file(), "the default database is var/gateway.db"

        r = requests.post(base + "/crons/cleanup-sessions", timeout=10)
        assert r.status_code == 401
        r = requests.post(
            base + "/crons/cleanup-sessions", headers={"X-Cron-Token": token}, timeout=10
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "success" and body["job"] == "cleanup-sessions", body
        assert set(body["summary"]) == {"deleted", "remaining"}

        # gunicorn master + its two workers, and the gateway process beside them.
        masters = [p for p in children(up.pid) if "gunicorn" in cmdline(p)]
        assert len(masters) == 1, {p: cmdline(p) for p in descendants(up.pid)}
        wait_until(lambda: len(gunicorn_workers(masters[0])) == 2, 10, "two gunicorn workers")
        gateways = [p for p in children(up.pid) if "gateway scheduler" in cmdline(p)]
        assert len(gateways) == 1, {p: cmdline(p) for p in descendants(up.pid)}
        family = descendants(up.pid)
        assert len(family) >= 4, {p: cmdline(p) for p in family}

        # The gateway sends a manual run within a second, signed with the secret `up` made.
        secret = tmp_path / "var" / "signing-secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and len(secret.read_text()) > 16
        cli = [sys.executable, "-m", "gateway"]
        triggered = subprocess.run(
            [*cli, "jobs", "trigger", "cleanup-sessions", "--wait", "--wait-timeout", "10"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert triggered.returncode == 0, triggered.stdout + triggered.stderr
        listed = subprocess.run(
            [*cli, "runs", "list", "--job", "cleanup-sessions", "--json"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        manual = [r for r in json.loads(listed.stdout) if r["trigger"] == "manual"]
        assert [r["status"] for r in manual] == ["success"], manual
        assert manual[0]["gateway"] and manual[0]["http_status"] == 200
        queued = datetime.fromisoformat(manual[0]["queued_at"])
        started = datetime.fromisoformat(manual[0]["started_at"])
        assert (started - queued).total_seconds() < 1.0, manual[0]
        assert "gateway.scheduler" in up.output(), "the gateway's log is not in the terminal"

        sent = time.monotonic()
        up.popen.send_signal(signal.SIGINT)
        code = up.popen.wait(timeout=10)
        wait_until(
            lambda: not any(alive(p) for p in family) or None,
            max(0.5, 10 - (time.monotonic() - sent)),
            "no process of `up` left",
        )
        elapsed = time.monotonic() - sent
        assert code == 0, f"`up` exited with {code} after SIGINT"
        assert elapsed < 10, f"`up` took {elapsed:.1f} s to stop"
        print(f"`up` and its {len(family)} children stopped {elapsed:.2f} s after SIGINT")
    finally:
        up.stop()
        for pid in family:  # whatever `up` started and left behind (they are ours too)
            if alive(pid):
                print(f"killing leftover {pid}: {cmdline(pid)}")
                os.kill(pid, signal.SIGKILL)
        print(up.report())
