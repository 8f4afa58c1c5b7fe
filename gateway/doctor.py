"""Doctor: check settings, database, schema, tokens, targets, clocks and the gateway's heartbeat."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests
from peewee import PostgresqlDatabase

from gateway.clock import Clock
from gateway.config import Settings
from gateway.config import load_settings
from gateway.errors import GatewayError
from gateway.export import absolute_url
from gateway.store.db import database
from gateway.store.db import ensure_open
from gateway.store.jobs import list_jobs
from gateway.store.migrate import LATEST
from gateway.store.models import Gateway
from gateway.store.models import Key

TARGET_TIMEOUT = 3.0
CLOCK_SKEW_WARN = 2.0
TOKEN_FILE = Path("var/cron-token")


@dataclass(frozen=True)
class Check:
    """One finding: OK, WARN or FAIL, what was seen, and what to do about it."""

    name: str
    status: str
    message: str
    fix: str = ""


def run_checks(
    clock: Clock, env: Mapping[str, str] | None = None, config_file: str | None = None
) -> list[Check]:
    """Run every check in order; later ones are left out when settings or database fail."""
    try:
        settings = load_settings(env, config_file)
    except GatewayError as e:
        return [Check("config", "FAIL", str(e), "fix the setting named above")]
    checks = [Check("config", "OK", f"settings load (database {_safe_url(settings)})")]
    database_check = check_database(settings)
    checks.append(database_check)
    if database_check.status == "FAIL":
        return checks
    steps: list[Callable[[], list[Check]]] = [
        lambda: check_tokens(settings),
        lambda: check_targets(settings),
        lambda: [check_clock(clock)],
        lambda: [check_heartbeat(settings, clock.now())],
    ]
    for step in steps:
        checks += step()
    return checks


def _safe_url(settings: Settings) -> str:
    parts = urlsplit(settings.database_url)
    return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"


def check_database(settings: Settings) -> Check:
    """Open the database (migrating it, as any start would) and read its schema version."""
    try:
        ensure_open(settings.database_url)
        from gateway.store.migrate import schema_version

        version = schema_version()
    except GatewayError as e:
        return Check("database", "FAIL", str(e), "upgrade Cron Gateway or fix the database URL")
    except Exception as e:  # any driver error means "unreachable" to an operator
        return Check(
            "database",
            "FAIL",
            f"cannot reach the database: {type(e).__name__}: {str(e).splitlines()[0]}",
            "check GATEWAY_DATABASE_URL and that the server is up",
        )
    return Check("database", "OK", f"reachable, schema version {version} (current {LATEST})")


def check_tokens(settings: Settings) -> list[Check]:
    """The gateway needs a cron token; the management API needs an admin token or key."""
    if settings.cron_token:
        cron = Check("cron token", "OK", "GATEWAY_CRON_TOKEN is set")
    elif TOKEN_FILE.exists():
        cron = Check("cron token", "OK", f"{TOKEN_FILE} holds the token `up` created")
    else:
        cron = Check(
            "cron token",
            "FAIL",
            "no GATEWAY_CRON_TOKEN and no var/cron-token: the gateway cannot call endpoints",
            "set GATEWAY_CRON_TOKEN (16+ characters) or start once with `python -m gateway up`",
        )
    admin_keys = Key.select().where((Key.scope == "admin") & Key.revoked_at.is_null()).count()
    if settings.admin_token or admin_keys:
        source = "GATEWAY_ADMIN_TOKEN is set" if settings.admin_token else f"{admin_keys} key(s)"
        admin = Check("admin token", "OK", f"management API: {source}")
    else:
        admin = Check(
            "admin token",
            "WARN",
            "no GATEWAY_ADMIN_TOKEN and no admin key: the management API refuses everyone",
            "python -m gateway keys create ops --scope admin",
        )
    return [cron, admin]


def check_targets(settings: Settings) -> list[Check]:
    """Each distinct origin (the app, and every absolute job URL's host) answers HTTP."""
    origins: dict[str, list[str]] = {_origin(settings.app_url): []}
    for job in list_jobs():
        origins.setdefault(_origin(absolute_url(job, settings.app_url)), []).append(job.name)
    with ThreadPoolExecutor(max_workers=min(16, len(origins))) as pool:
        results = list(pool.map(_probe, origins))
    pairs = zip(origins.items(), results, strict=True)
    return [_target_check(origin, jobs, error) for (origin, jobs), error in pairs]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _probe(origin: str) -> str | None:
    """Return None if `origin` answers any HTTP status within the timeout, else why not."""
    try:
        requests.head(origin + "/", timeout=TARGET_TIMEOUT, allow_redirects=False)
    except requests.RequestException as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
    return None


def _target_check(origin: str, jobs: list[str], error: str | None) -> Check:
    used = f" ({len(jobs)} jobs: {', '.join(jobs[:5])}{'…' if len(jobs) > 5 else ''})"
    name = f"target {origin}"
    if error is None:
        return Check(name, "OK", "answers HTTP" + (used if jobs else " (GATEWAY_APP_URL)"))
    return Check(
        name,
        "FAIL",
        f"unreachable within {TARGET_TIMEOUT:g} s{used if jobs else ''}: {error}",
        "start the app, or fix GATEWAY_APP_URL / the jobs' URLs",
    )


def check_clock(clock: Clock) -> Check:
    """Compare this machine's UTC clock with the database server's (leases expire by it)."""
    db = database.obj
    sql = (
        "SELECT clock_timestamp()"
        if isinstance(db, PostgresqlDatabase)
        else "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"
    )
    before = clock.monotonic()
    local = clock.now()
    value = db.execute_sql(sql).fetchone()[0]
    half_trip = (clock.monotonic() - before) / 2
    remote = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    remote = remote if remote.tzinfo else remote.replace(tzinfo=UTC)
    skew = abs((remote - local).total_seconds()) - half_trip
    message = f"database clock differs by {max(0.0, skew):.3f} s"
    if skew > CLOCK_SKEW_WARN:
        return Check("clock", "WARN", message, "run NTP (chrony, systemd-timesyncd) on both hosts")
    return Check("clock", "OK", message)


def check_heartbeat(settings: Settings, now: datetime) -> Check:
    """The newest gateway row is fresh: seen within its lease."""
    newest = Gateway.select().order_by(Gateway.seen_at.desc()).first()
    fix = "start it: python -m gateway scheduler (or up)"
    if newest is None:
        return Check("gateway", "WARN", "no gateway has ever run on this database", fix)
    age = (now - newest.seen_at).total_seconds()
    seen = f"{newest.instance} on {newest.host} ({newest.role}), seen {age:.1f} s ago"
    if newest.role == "stopped":
        return Check("gateway", "WARN", f"stopped: {seen}", fix)
    if age > settings.gateway_lease_seconds:
        return Check("gateway", "FAIL", f"heartbeat stale: {seen}", fix)
    return Check("gateway", "OK", seen)
