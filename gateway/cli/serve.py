"""`python -m gateway up|web`: start the web app (and, with `up`, everything for one machine)."""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from gateway.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
TOKEN_FILE = Path("var/cron-token")
ADMIN_TOKEN_FILE = Path("var/admin-token")  # the UI login and API key `up` makes for you
SIGNING_SECRET_FILE = Path("var/signing-secret")  # the gateway signs its calls with it
CRON_TOKEN = "GATEWAY_CRON_TOKEN"
ADMIN_TOKEN = "GATEWAY_ADMIN_TOKEN"
SIGNING_SECRET = "GATEWAY_SIGNING_SECRET"
_PR_SET_PDEATHSIG = 1


def web_command(app: str = "wsgi:app") -> list[str]:
    """Return the gunicorn command line serving `app` (the demo's wsgi.py) with our config."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--pythonpath",
        str(ROOT),
        "-c",
        str(ROOT / "config" / "gunicorn.conf.py"),
        app,
    ]


@click.command()
def web() -> None:
    """Serve the web app (API, UI, cron endpoints) with gunicorn."""
    load_settings()  # fail here, in one line, on a bad setting
    os.execv(sys.executable, web_command())


@click.command()
def scheduler() -> None:
    """Run the gateway: call every job on time and record its runs, until SIGTERM."""
    from gateway.logs import setup_logging
    from gateway.scheduler.loop import Scheduler

    settings = load_settings()
    token = settings.cron_token or _existing_local_token()
    if not token:
        raise click.UsageError(
            "set GATEWAY_CRON_TOKEN (the token the gateway sends to endpoints), "
            "or start with `up`, which creates var/cron-token"
        )
    setup_logging()
    Scheduler(settings, token).run()


@click.command()
def up() -> None:
    """Start everything for one machine: the web app and the gateway, until Ctrl-C."""
    env = dict(os.environ)
    for variable, path in (
        (CRON_TOKEN, TOKEN_FILE),
        (ADMIN_TOKEN, ADMIN_TOKEN_FILE),
        (SIGNING_SECRET, SIGNING_SECRET_FILE),  # signed calls are on unless set otherwise
    ):
        if not env.get(variable):
            env[variable] = _local_token(path)
    settings = load_settings(env)
    own_url = _local_url(settings.bind)
    if not env.get("GATEWAY_APP_URL") and own_url:
        env["GATEWAY_APP_URL"] = own_url  # the gateway calls the app it started
        settings = load_settings(env)
    click.echo(f"Cron Gateway on http://{settings.bind}")
    click.echo(f"UI login key: in {ADMIN_TOKEN_FILE.resolve()} (or set {ADMIN_TOKEN})")
    click.echo(f"cron token: in {TOKEN_FILE.resolve()} (or set {CRON_TOKEN})")
    click.echo(
        f'try: curl -X POST -H "X-Cron-Token: $(cat {TOKEN_FILE})" '
        f"http://{settings.bind}/crons/cleanup-sessions"
    )
    gateway = [sys.executable, "-m", "gateway", "scheduler"]
    sys.exit(supervise([web_command(), gateway], env))


def _local_url(bind: str) -> str | None:
    """Return the URL this machine reaches a `host:port` bind at (None for a unix socket)."""
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():  # unix:/path has no port
        return None
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "[::1]"  # a v6-only socket does not answer 127.0.0.1
    return f"http://{host}:{port}"


def _existing_local_token(path: Path = TOKEN_FILE) -> str | None:
    """Return the token `up` keeps in a file under var/, if there is one."""
    return path.read_text().strip() if path.exists() else None


def _local_token(path: Path) -> str:
    """Return the token kept in `path`, creating it (mode 600) on first start."""
    existing = _existing_local_token(path)
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    token = "cg_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def supervise(commands: list[list[str]], env: dict[str, str]) -> int:
    """Run the commands side by side; when one ends or on Ctrl-C/SIGTERM, stop them all."""
    children = [subprocess.Popen(c, env=env, preexec_fn=_die_with_parent) for c in commands]
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(c.poll() is None for c in children):
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + 35
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    codes = [c.returncode or 0 for c in children]
    return 0 if stopping else max(codes, default=0)


def _die_with_parent() -> None:
    """In the child: ask Linux to send SIGTERM if `up` itself dies (even by kill -9)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: Ctrl-C still reaches the whole process group


serve_commands: list[click.Command] = [up, web, scheduler]
