"""/healthz and /metrics: health for load balancers; Prometheus figures read from the database.

Most figures are computed from the database at scrape time (`StoreCollector`), so every
gunicorn worker answers the same and runs made by the gateway process are included. The only
per-process figures are the HTTP request counters, which prometheus_client sums over the
workers in multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by config/gunicorn.conf.py).
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

from flask import Flask
from flask import Response
from flask import request
from peewee import SQL
from peewee import Case
from peewee import fn
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import generate_latest
from prometheus_client import multiprocess

from gateway import app_context
from gateway.config import Settings
from gateway.store.db import database
from gateway.store.db import ensure_open
from gateway.store.models import Alert
from gateway.store.models import Gateway
from gateway.store.models import Job
from gateway.store.models import Run

logger = logging.getLogger("gateway.observability")

WINDOW = timedelta(hours=1)  # runs counted and histogrammed: those queued this recently
GATEWAY_ROWS_KEPT = timedelta(days=1)  # a gateway that died unannounced is shown this long
DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)  # seconds
LATENESS_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0)

# Per-process figures; the scrape sums the workers' files in multiprocess mode.
_LOCAL = CollectorRegistry(auto_describe=True)
HTTP_REQUESTS = Counter(
    "cron_gateway_http_requests",
    "HTTP requests answered by the web app, by route template, method and status",
    ["route", "method", "status"],
    registry=_LOCAL,
)


def init_observability(app: Flask, settings: Settings) -> None:
    """Register /healthz and /metrics on `app`, and count its requests."""
    app.add_url_rule("/healthz", "healthz", healthz)
    app.add_url_rule("/metrics", "metrics", metrics)
    app.after_request(_count_request)


def _count_request(response: Response) -> Response:
    # The rule's template (/crons/<name>), never the raw path: bounded label values.
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    HTTP_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
    return response


# -- /healthz ------------------------------------------------------------------------------


def healthz() -> Any:
    """200 when the database answers (and, with ?gateway=1, a gateway's heartbeat is fresh)."""
    settings = app_context.settings()
    want_gateway = request.args.get("gateway", "") in ("1", "true", "yes")
    body, healthy = health(settings, app_context.now(), want_gateway)
    return body, 200 if healthy else 503


def health(settings: Settings, now: datetime, want_gateway: bool) -> tuple[dict[str, Any], bool]:
    """Return the health document and whether it counts as healthy. Never raises."""
    try:
        ensure_open(settings.database_url)
        database.execute_sql("SELECT 1")
        gateway = gateway_health(now, settings.gateway_lease_seconds)
    except Exception as e:  # report, never crash: a load balancer reads this
        logger.warning("health check: database unreachable: %s", type(e).__name__)
        return {"status": "unavailable", "database": "unreachable"}, False
    healthy = gateway["status"] == "ok" or not want_gateway
    return {
        "status": "ok" if healthy else "unavailable",
        "database": "ok",
        "gateway": gateway,
    }, healthy


def gateway_health(now: datetime, lease_seconds: float) -> dict[str, Any]:
    """Return the newest active gateway's heartbeat age and whether it is within the lease."""
    seen = Gateway.select(fn.MAX(Gateway.seen_at)).where(Gateway.role == "active").scalar()
    if seen is None:
        return {"status": "absent", "heartbeat_age_seconds": None}
    seen_at = Gateway.seen_at.python_value(seen)
    age = max(0.0, (now - seen_at).total_seconds())
    return {
        "status": "ok" if age <= lease_seconds else "stale",
        "heartbeat_age_seconds": round(age, 3),
    }


# -- /metrics ------------------------------------------------------------------------------


def metrics() -> Any:
    """The Prometheus text format; with GATEWAY_METRICS_TOKEN set, only for its bearer."""
    settings = app_context.settings()
    if settings.metrics_token and not _bearer_matches(settings.metrics_token):
        return {"error": "unauthorized"}, 401, {"WWW-Authenticate": "Bearer"}
    text = store_figures(settings, app_context.now()) + generate_latest(_process_figures()).decode()
    return Response(text, mimetype=CONTENT_TYPE_LATEST)


def _bearer_matches(expected: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), expected.encode()
    )


def _process_figures() -> CollectorRegistry:
    """The HTTP counters: summed over gunicorn's workers when PROMETHEUS_MULTIPROC_DIR is set,
    this process's own otherwise (the Flask dev server, tests)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        summed = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(summed)  # type: ignore[no-untyped-call]
        return summed
    return _LOCAL


class Family:
    """One metric family in the text format. prometheus_client's own writer spends about 4 µs
    a sample (125 ms for 10,000 jobs' series), so the store's figures are written here."""

    def __init__(self, name: str, kind: str, doc: str) -> None:
        self.name = name
        self.lines = [f"# HELP {name} {doc}", f"# TYPE {name} {kind}"]

    def add(self, value: float, suffix: str = "", **labels: str) -> None:
        pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        braced = f"{{{pairs}}}" if pairs else ""
        self.lines.append(f"{self.name}{suffix}{braced} {float(value)!r}")

    def add_labeled(self, labels: str, value: float) -> None:
        """Add a sample whose `{…}` label text is already made (one per job, reused)."""
        self.lines.append(f"{self.name}{labels} {float(value)!r}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def store_figures(settings: Settings, now: datetime) -> str:
    """Return the figures read from the database, in the text format; never raises."""
    started = time.monotonic()
    up = Family("cron_gateway_database_up", "gauge", "1 if the database answered this scrape")
    try:
        ensure_open(settings.database_url)
        names, families = _job_figures()
        families += _run_figures(names, now - WINDOW)
        families += _gateway_figures(now, settings.gateway_lease_seconds)
        families += _alert_figures()
    except Exception as e:  # a scrape during an outage still answers, saying so
        logger.warning("metrics: database unavailable: %s", type(e).__name__)
        up.add(0)
        return up.text()
    up.add(1)
    took = Family("cron_gateway_scrape_store_seconds", "gauge", "time spent reading the database")
    took.add(time.monotonic() - started)
    return "".join(f.text() for f in (up, *families, took))


def _raw(query: Any) -> list[tuple[Any, ...]]:
    """Return a query's rows as the driver gives them: no per-value conversion (10,000 jobs)."""
    return list(database.execute_sql(*query.sql()).fetchall())


def _timestamp(value: Any) -> float | None:
    """Return Unix seconds for a stored naive-UTC datetime (text on SQLite)."""
    if value is None:
        return None
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return float(when.replace(tzinfo=UTC).timestamp())


def _job_figures() -> tuple[dict[int, str], list[Family]]:
    """Jobs by state, and per job its last success and failures in a row; and id → name."""
    by_state = Family("cron_gateway_jobs", "gauge", "jobs by state")
    last_success = Family(
        "cron_gateway_job_last_success_timestamp_seconds",
        "gauge",
        "when the job last succeeded (Unix time)",
    )
    failures = Family("cron_gateway_job_consecutive_failures", "gauge", "failed runs in a row")
    # The job row says when its last run ended; only when that run did not succeed is the
    # newest success looked up, walking the job's runs backwards through the (job, id) index.
    newest_success = (
        Run.select(Run.finished_at)
        .where((Run.job == Job.id) & (Run.status == "success"))
        .order_by(Run.id.desc())
        .limit(1)
    )
    succeeded_at = Case(None, [(Job.last_status == "success", Job.last_run_at)], newest_success)
    rows = _raw(
        Job.select(
            Job.id,
            Job.name,
            Job.enabled,
            Job.watch_only,
            Job.orphaned_at.is_null(False),
            Job.consecutive_failures,
            succeeded_at,
        ).where(Job.deleted_at.is_null())
    )
    counts = dict.fromkeys(("active", "paused", "watch_only", "orphaned"), 0)
    names: dict[int, str] = {}
    for job_id, name, enabled, watch_only, orphaned, fails, success_at in rows:
        names[job_id] = name
        counts[_job_state(bool(enabled), bool(watch_only), bool(orphaned))] += 1
        labels = f'{{job="{_escape(name)}"}}'
        failures.add_labeled(labels, fails)
        when = _timestamp(success_at)
        if when is not None:
            last_success.add_labeled(labels, when)
    for state, count in counts.items():
        by_state.add(count, state=state)
    return names, [by_state, last_success, failures]


def _job_state(enabled: bool, watch_only: bool, orphaned: bool) -> str:
    if orphaned:
        return "orphaned"
    if watch_only:
        return "watch_only"
    return "active" if enabled else "paused"


def _run_figures(names: dict[int, str], since: datetime) -> list[Family]:
    """Runs queued since `since` by job, status and trigger; duration and lateness histograms.
    Each query reads only the window's rows, through the queued_at index."""
    runs = Family(
        "cron_gateway_runs_last_hour",
        "gauge",
        "runs queued in the last hour, by job, status and trigger",
    )
    # `job_id + 0`: grouping by the bare column lets SQLite pick the (job, id) index and scan
    # every run; the expression keeps it on the queued_at range.
    job = Run.job + 0
    rows = _raw(
        Run.select(job, Run.status, Run.trigger, fn.COUNT(Run.id))
        .where(Run.queued_at >= since)
        .group_by(job, Run.status, Run.trigger)
    )
    for job_id, status, trigger, count in rows:
        if job_id in names:  # status and trigger are our own words: nothing to escape
            labels = f'{{job="{_escape(names[job_id])}",status="{status}",trigger="{trigger}"}}'
            runs.add_labeled(labels, count)
    return [
        runs,
        _histogram(
            "cron_gateway_run_duration_seconds",
            "durations of the runs queued in the last hour (a window, not a running total)",
            Run.duration_ms,
            DURATION_BUCKETS,
            since,
        ),
        _histogram(
            "cron_gateway_run_lateness_seconds",
            "how late the runs queued in the last hour started (a window, not a running total)",
            Run.lateness_ms,
            LATENESS_BUCKETS,
            since,
        ),
    ]


def _histogram(
    name: str, doc: str, column: Any, buckets: tuple[float, ...], since: datetime
) -> Family:
    """A histogram of a milliseconds column: rows counted per bucket (one CASE a row, grouped),
    then made cumulative."""
    index = Case(None, [(column <= int(b * 1000), i) for i, b in enumerate(buckets)], len(buckets))
    rows = _raw(
        Run.select(index, fn.COUNT(Run.id), fn.SUM(column))
        .where((Run.queued_at >= since) & column.is_null(False))
        .group_by(SQL("1"))
    )
    per_bucket = [0] * (len(buckets) + 1)
    total_ms = 0
    for i, count, ms in rows:
        per_bucket[int(i)] += int(count)
        total_ms += int(ms or 0)
    family = Family(name, "histogram", doc)
    cumulative = 0
    for bound, n in zip(buckets, per_bucket, strict=False):
        cumulative += n
        family.add(cumulative, "_bucket", le=_le(bound))
    count = sum(per_bucket)
    family.add(count, "_bucket", le="+Inf")
    family.add(total_ms / 1000, "_sum")
    family.add(count, "_count")
    return family


def _le(bound: float) -> str:
    return str(float(bound))


def _gateway_figures(now: datetime, lease_seconds: float) -> list[Family]:
    """Each gateway that has not stopped: up (heartbeat within its lease) and heartbeat age."""
    up = Family("cron_gateway_gateway_up", "gauge", "1 if the gateway's heartbeat is fresh")
    age = Family(
        "cron_gateway_gateway_heartbeat_age_seconds",
        "gauge",
        "seconds since the gateway's last heartbeat",
    )
    rows = Gateway.select().where(
        (Gateway.role != "stopped") & (Gateway.seen_at >= now - GATEWAY_ROWS_KEPT)
    )
    for row in rows:
        seconds = max(0.0, (now - row.seen_at).total_seconds())
        up.add(1 if seconds <= lease_seconds else 0, instance=row.instance, role=row.role)
        age.add(seconds, instance=row.instance)
    return [up, age]


def _alert_figures() -> list[Family]:
    """Open alerts by kind, and alerts still waiting to be delivered."""
    open_ = Family("cron_gateway_alerts_open", "gauge", "open alerts by kind")
    rows = _raw(
        Alert.select(Alert.kind, fn.COUNT(Alert.id))
        .where(Alert.state == "open")
        .group_by(Alert.kind)
    )
    for kind, count in rows:
        open_.add(count, kind=kind)
    pending = Family(
        "cron_gateway_alerts_undelivered", "gauge", "alerts whose delivery is being retried"
    )
    pending.add(Alert.select().where(Alert.next_attempt_at.is_null(False)).count())
    return [open_, pending]
