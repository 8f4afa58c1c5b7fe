"""Settings (frozen dataclass) from GATEWAY_* environment variables and config/gateway.toml."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///var/gateway.db"
DEFAULT_APP_URL = "http://127.0.0.1:8000"
DEFAULT_CONFIG_FILE = "config/gateway.toml"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Settings:
    """Everything a process needs to know, read once at start; a bad value fails the start."""

    database_url: str = DEFAULT_DATABASE_URL
    app_url: str = DEFAULT_APP_URL
    bind: str = "127.0.0.1:8000"
    cron_token: str | None = field(default=None, repr=False)
    admin_token: str | None = field(default=None, repr=False)
    allowed_targets: tuple[str, ...] = ()
    jobs_file: str = "config/jobs.toml"
    allow_query_token: bool = False
    # Bounds on what one run may store.
    log_limit_bytes: int = 64 * 1024
    max_body_bytes: int = 1024 * 1024
    # App-side runs: how often a running job proves it is alive, and how long its lease lasts
    # without proof. A worker killed with -9 leaves a lease that expires after `lease_seconds`.
    heartbeat_seconds: float = 5.0
    lease_seconds: float = 30.0
    # A cron endpoint that cannot reach the database (a restart, a failover) retries with
    # backoff for this long before it answers 503: the job has not started, so nothing repeats.
    database_wait_seconds: float = 10.0
    # The gateway: how long its lease and heartbeat last (a standby takes over after this),
    # how many calls it makes at once, and at most how many to one host.
    gateway_lease_seconds: float = 10.0
    gateway_workers: int = 32
    gateway_per_host: int = 16
    # 0: the gateway process makes its calls itself (threads). N: N sender processes make
    # them, each its share of the workers, so a burst of calls uses N cores.
    gateway_senders: int = 0
    # Signed calls: the gateway signs with `signing_secret`; endpoints accept it or the next
    # one (a rotation), and refuse unsigned calls when `require_signature` is on.
    signing_secret: str | None = field(default=None, repr=False)
    signing_secret_next: str | None = field(default=None, repr=False)
    require_signature: bool = False
    # Abuse: this many bad tokens from one address within the window earn it 429s until the
    # window has fewer (per worker process).
    throttle_failures: int = 10
    throttle_window_seconds: float = 60.0
    # Retention: finished runs older than `retention_days`, and beyond the newest
    # `retention_per_job` of each job, are pruned (0 switches a rule off).
    retention_days: int = 30
    retention_per_job: int = 10_000
    # Observability: /metrics asks for this bearer token when set (open by default, as
    # Prometheus expects); logs are text lines or JSON lines.
    metrics_token: str | None = field(default=None, repr=False)
    log_format: str = "text"
    # Alerts: where they go (a Slack-compatible webhook and/or e-mail through SMTP) and how
    # long past its expected time a job may be before it counts as late (per job: `grace`).
    alert_webhook: str | None = field(default=None, repr=False)  # the URL is a secret
    alert_smtp: str | None = field(default=None, repr=False)  # smtp[s]://user:pass@host:port
    alert_to: tuple[str, ...] = ()
    alert_from: str = "cron-gateway@localhost"
    alert_grace_seconds: int = 300

    def __post_init__(self) -> None:
        _check_url(self.app_url, "GATEWAY_APP_URL")
        if not self.database_url.startswith(("sqlite:", "postgres:", "postgresql:")):
            raise ConfigError(
                "GATEWAY_DATABASE_URL must start with sqlite:// or postgresql://",
                field="GATEWAY_DATABASE_URL",
            )
        if self.gateway_lease_seconds < 1 or self.gateway_workers < 1 or self.gateway_per_host < 1:
            raise ConfigError(
                "gateway_lease_seconds, gateway_workers and gateway_per_host must be at least 1",
                field="gateway_lease_seconds",
            )
        if not 0 <= self.gateway_senders <= 64:
            raise ConfigError("gateway_senders must be from 0 to 64", field="gateway_senders")
        if self.gateway_senders > min(self.gateway_workers, self.gateway_per_host):
            raise ConfigError(  # each sender gets its share of both, at least one
                "gateway_senders must not be more than gateway_workers or gateway_per_host",
                field="gateway_senders",
            )
        if not 0 < self.heartbeat_seconds < self.lease_seconds:
            raise ConfigError(
                "heartbeat_seconds must be positive and shorter than lease_seconds",
                field="heartbeat_seconds",
            )
        if not 0 <= self.database_wait_seconds <= 300:
            raise ConfigError(
                "database_wait_seconds must be from 0 to 300", field="database_wait_seconds"
            )
        if self.require_signature and not self.signing_secrets:
            raise ConfigError(
                "GATEWAY_REQUIRE_SIGNATURE needs GATEWAY_SIGNING_SECRET",
                field="GATEWAY_REQUIRE_SIGNATURE",
            )
        if self.throttle_failures < 1 or self.throttle_window_seconds <= 0:
            raise ConfigError(
                "throttle_failures and throttle_window_seconds must be positive",
                field="throttle_failures",
            )
        if self.retention_days < 0 or self.retention_per_job < 0:
            raise ConfigError(
                "GATEWAY_RETENTION_DAYS and GATEWAY_RETENTION_PER_JOB must not be negative "
                "(0 keeps runs forever)",
                field="GATEWAY_RETENTION_DAYS",
            )
        if self.log_format not in ("text", "json"):
            raise ConfigError(
                f"GATEWAY_LOG_FORMAT must be text or json, not {self.log_format!r}",
                field="GATEWAY_LOG_FORMAT",
            )
        if self.alert_grace_seconds < 0:
            raise ConfigError(
                "GATEWAY_ALERT_GRACE must not be negative", field="GATEWAY_ALERT_GRACE"
            )
        if self.alert_webhook is not None:
            parts = urlsplit(self.alert_webhook)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(  # never echo it: a Slack webhook URL is a secret
                    "GATEWAY_ALERT_WEBHOOK must be an http(s) URL", field="GATEWAY_ALERT_WEBHOOK"
                )
        if self.alert_smtp is not None:
            _check_smtp(self.alert_smtp, bool(self.alert_to))
        for name in (
            "cron_token",
            "admin_token",
            "signing_secret",
            "signing_secret_next",
            "metrics_token",
        ):
            token = getattr(self, name)
            if token is not None and len(token) < 16:
                raise ConfigError(
                    f"GATEWAY_{name.upper()} must be at least 16 characters long",
                    field=f"GATEWAY_{name.upper()}",
                )

    @property
    def signing_secrets(self) -> tuple[str, ...]:
        """Return the secrets a signature may be made with: the current one, then the next."""
        return tuple(s for s in (self.signing_secret, self.signing_secret_next) if s)

    @property
    def targets(self) -> tuple[str, ...]:
        """Return the hosts jobs may call: the configured list, or the app's own host."""
        if self.allowed_targets:
            return self.allowed_targets
        return (urlsplit(self.app_url).hostname or "127.0.0.1",)


_ENV = {
    "GATEWAY_DATABASE_URL": "database_url",
    "GATEWAY_APP_URL": "app_url",
    "GATEWAY_BIND": "bind",
    "GATEWAY_CRON_TOKEN": "cron_token",
    "GATEWAY_ADMIN_TOKEN": "admin_token",
    "GATEWAY_ALLOWED_TARGETS": "allowed_targets",
    "GATEWAY_JOBS_FILE": "jobs_file",
    "GATEWAY_ALLOW_QUERY_TOKEN": "allow_query_token",
    "GATEWAY_SIGNING_SECRET": "signing_secret",
    "GATEWAY_SIGNING_SECRET_NEXT": "signing_secret_next",
    "GATEWAY_REQUIRE_SIGNATURE": "require_signature",
    "GATEWAY_RETENTION_DAYS": "retention_days",
    "GATEWAY_RETENTION_PER_JOB": "retention_per_job",
    "GATEWAY_METRICS_TOKEN": "metrics_token",
    "GATEWAY_LOG_FORMAT": "log_format",
    "GATEWAY_ALERT_WEBHOOK": "alert_webhook",
    "GATEWAY_ALERT_SMTP": "alert_smtp",
    "GATEWAY_ALERT_TO": "alert_to",
    "GATEWAY_ALERT_FROM": "alert_from",
    "GATEWAY_ALERT_GRACE": "alert_grace_seconds",
}


def load_settings(env: Mapping[str, str] | None = None, config_file: str | None = None) -> Settings:
    """Read config/gateway.toml (if present), then GATEWAY_* variables, which win."""
    env = os.environ if env is None else env
    path = Path(config_file or env.get("GATEWAY_CONFIG", DEFAULT_CONFIG_FILE))
    values: dict[str, Any] = _read_toml(path) if path.is_file() else {}
    for var, name in _ENV.items():
        if var in env:
            values[name] = env[var]
    return settings_from(values)


def settings_from(values: Mapping[str, Any]) -> Settings:
    """Build Settings from a mapping of field names, converting strings as the env gives them."""
    known = {f.name: f for f in fields(Settings)}
    kwargs: dict[str, Any] = {}
    for name, raw in values.items():
        if name not in known:
            raise ConfigError(f"unknown setting {name!r}", field=name)
        kwargs[name] = _convert(name, raw, Settings.__dataclass_fields__[name].type)
    return replace(Settings(), **kwargs) if kwargs else Settings()


def _convert(name: str, raw: Any, kind: object) -> Any:
    kind = str(kind)
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ConfigError(f"{name} must be true or false, not {raw!r}", field=name)
    if kind in ("int", "float"):
        try:
            return int(raw) if kind == "int" else float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number, not {raw!r}", field=name) from None
    if kind == "tuple[str, ...]":
        items = raw.split(",") if isinstance(raw, str) else list(raw)
        return tuple(str(item).strip() for item in items if str(item).strip())
    if kind == "str | None":
        return str(raw) if raw not in (None, "") else None
    return str(raw)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}", field=str(path)) from None
    return dict(data.get("gateway", data))


def _check_url(url: str, name: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http(s) URL, not {url!r}", field=name)


def _check_smtp(url: str, has_recipients: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        # Never echo the value: it may carry a password.
        raise ConfigError(
            "GATEWAY_ALERT_SMTP must look like smtp://user:password@host:587 (or smtps://)",
            field="GATEWAY_ALERT_SMTP",
        )
    if not has_recipients:
        raise ConfigError(
            "GATEWAY_ALERT_SMTP needs GATEWAY_ALERT_TO (comma-separated addresses)",
            field="GATEWAY_ALERT_TO",
        )
