"""Process helpers for the e2e tests: free ports, bounded waits, gunicorn, /proc lookups.

Every process is started in its own session (so its process group id is its pid) with its
output in a file, and `Proc.stop()` ends that group: SIGINT or SIGTERM first, SIGKILL after a
bounded wait. Nothing here sleeps for long: waits poll with a deadline.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import TypeVar

import requests

from gateway.cli.serve import web_command

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(
    check: Callable[[], T | None], seconds: float, what: str, interval: float = 0.05
) -> T:
    """Poll `check` until it returns something truthy and return that; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    last: T | None = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def clean_env(**overrides: str) -> dict[str, str]:
    """Return this process's environment without GATEWAY_* variables, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


class Proc:
    """A process we started, its output in a file, stopped for sure by `stop()`."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], cwd: Path) -> None:
        self.name = name
        self.log_path = cwd / f"{name}.log"
        with self.log_path.open("wb") as out:
            self.popen = subprocess.Popen(
                argv,
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: pgid == pid
            )
        self.pid = self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGINT, seconds: float = 10.0) -> int:
        """Send `sig`, wait up to `seconds`, then SIGKILL the process group; return the code."""
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                pass
        self.kill_group()
        return self.popen.wait(timeout=10)

    def kill_group(self) -> None:
        """SIGKILL what is left of the process group we created (workers included)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def report(self, limit: int = 6000) -> str:
        text = self.output()
        return (
            f"----- {self.name} (pid {self.pid}) output, last {limit} chars -----\n" + text[-limit:]
        )


@dataclass
class Server:
    """A gunicorn serving tests.e2e.app_under_test on 127.0.0.1."""

    proc: Proc
    url: str
    token: str
    db_url: str
    workdir: Path

    def call(
        self, path: str, method: str = "POST", headers: dict[str, str] | None = None, **kw: Any
    ) -> requests.Response:
        """Send one request (with the token in X-Cron-Token unless `headers` are given)."""
        if headers is None:
            headers = {"X-Cron-Token": self.token}
        kw.setdefault("timeout", 15)
        return requests.request(method, self.url + path, headers=headers, **kw)


def write_config(path: Path, **values: float | int | str | bool) -> Path:
    """Write a TOML config file with a [gateway] table of `values`."""
    lines = ["[gateway]"]
    for key, value in values.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        else:
            lines.append(f"{key} = {value}")
    path.write_text("\n".join(lines) + "\n")
    return path


def gunicorn_argv(app: str = "tests.e2e.app_under_test:app") -> list[str]:
    """The command `python -m gateway web` runs, serving `app` with two workers."""
    return [*web_command(app), "--workers", "2"]


def start_gunicorn(
    workdir: Path, db_url: str, token: str, name: str = "gunicorn", **env: str
) -> Server:
    """Start gunicorn in `workdir` and return once /healthz answers 200 and both workers run."""
    port = free_port()
    config = write_config(workdir / "gateway.toml", heartbeat_seconds=0.2, lease_seconds=2)
    environment = clean_env(
        GATEWAY_DATABASE_URL=db_url,
        GATEWAY_CRON_TOKEN=token,
        GATEWAY_BIND=f"127.0.0.1:{port}",
        GATEWAY_CONFIG=str(config),
        GATEWAY_WEB_WORKERS="2",
        **env,
    )
    proc = Proc(name, gunicorn_argv(), environment, workdir)
    server = Server(proc, f"http://127.0.0.1:{port}", token, db_url, workdir)
    try:
        wait_until(lambda: _healthy(server), 20, f"{name} /healthz on port {port}")
        wait_until(
            lambda: len(gunicorn_workers(proc.pid)) == 2 or None, 10, f"{name}'s two workers"
        )
    except BaseException:
        proc.stop(signal.SIGKILL, 1)
        print(proc.report())
        raise
    return server


def _healthy(server: Server) -> bool:
    if not server.proc.running():
        raise AssertionError(f"gunicorn exited with {server.proc.popen.returncode}")
    try:
        return requests.get(server.url + "/healthz", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


# -- /proc -----------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Return the pids of `pid`'s children (Linux /proc), [] if it is gone."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        found.extend(int(p) for p in text.split())
    return found


def descendants(pid: int) -> list[int]:
    """Return every process below `pid`, children first."""
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def gunicorn_workers(master: int) -> list[int]:
    return [p for p in children(master) if alive(p)]


def alive(pid: int) -> bool:
    """Return True if `pid` exists and is not a zombie (a zombie has exited; not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return ""
