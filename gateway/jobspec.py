"""validate_job: the one check of a job definition, shared by the CLI, sync, the API and the UI."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

from gateway.config import Settings
from gateway.errors import ValidationError
from gateway.schedule import cached_schedule
from gateway.schedule import validate_timezone

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MODES = ("blocking", "async", "stream")
OVERLAPS = ("forbid", "allow", "replace")
MISFIRES = ("skip", "once", "all")
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_TAGS = 20
MAX_URL_LENGTH = 2000
WEEK_SECONDS = 7 * 24 * 3600
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-cron-token"}
_SECRET_WORDS = ("token", "secret", "password", "api-key", "apikey", "api_key")
SECRETS_HINT = "secrets go in keys (python -m gateway keys), never in a job definition"


def _fail(field: str, why: str) -> ValidationError:
    return ValidationError(f"{field}: {why}", field=field)


def _quote(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _slug(field: str, value: Any) -> str:
    if not isinstance(value, str) or not _SLUG.match(value):
        raise _fail(field, f"{_quote(value)} is not a slug (a-z, 0-9, '-', '_'; up to 100)")
    return value


def _text(limit: int) -> Callable[[str, Any], str]:
    def check(field: str, value: Any) -> str:
        if not isinstance(value, str):
            raise _fail(field, f"expected a string, not {_quote(value)}")
        if len(value) > limit:
            raise _fail(field, f"longer than {limit} characters")
        return value

    return check


def _integer(low: int, high: int | None, *, nullable: bool = False) -> Callable[[str, Any], Any]:
    def check(field: str, value: Any) -> int | None:
        if value is None and nullable:
            return None
        # bool is an int in Python; `true` for a number is a mistake, not 1.
        if not isinstance(value, int) or isinstance(value, bool):
            raise _fail(field, f"expected a whole number, not {_quote(value)}")
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise _fail(field, f"{value} is out of range; it must be {bounds}")
        return value

    return check


def _boolean(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(field, f"expected true or false, not {_quote(value)}")
    return value


def _choice(options: tuple[str, ...], *, upper: bool = False) -> Callable[[str, Any], str]:
    def check(field: str, value: Any) -> str:
        text = value.upper() if upper and isinstance(value, str) else value
        if text not in options:
            raise _fail(field, f"{_quote(value)} is not one of {', '.join(options)}")
        return str(text)

    return check


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SECRET_HEADERS or any(word in lowered for word in _SECRET_WORDS)


def _headers(field: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise _fail(field, f"expected a table of names to strings, not {_quote(value)}")
    clean: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise _fail(field, f"{_quote(name)} is not a valid header name")
        if _is_secret_name(name):
            raise _fail(field, f"{name!r} would carry a secret; {SECRETS_HINT}")
        if name.lower().startswith("x-cron-"):
            raise _fail(field, f"{name!r} is reserved: the gateway sets the X-Cron-* headers")
        if not isinstance(text, str) or "\r" in text or "\n" in text or len(text) > 4000:
            raise _fail(field, f"{name!r} must be a one-line string, not {_quote(text)}")
        clean[name] = text
    return clean


def check_payload(value: Any) -> Any:
    """Return `value` if it is a JSON document of at most 64 KiB (a run's or a job's payload)."""
    return _payload("payload", value)


def _payload(field: str, value: Any) -> Any:
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise _fail(field, f"not JSON: {e}") from None
    if len(text.encode()) > MAX_PAYLOAD_BYTES:
        raise _fail(field, f"{len(text.encode())} bytes of JSON; at most {MAX_PAYLOAD_BYTES}")
    return json.loads(text)  # a plain copy: tuples become lists, as they will be stored


def _tags(field: str, value: Any) -> list[str]:
    if not isinstance(value, list | tuple):
        raise _fail(field, f"expected a list of slugs, not {_quote(value)}")
    clean = list(dict.fromkeys(_slug(field, tag) for tag in value))
    if len(clean) > MAX_TAGS:
        raise _fail(field, f"{len(clean)} tags; at most {MAX_TAGS}")
    return clean


def _schedule(field: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(field, f"expected a cron expression or null, not {_quote(value)}")
    return value.strip()


def _tz(field: str, value: Any) -> str:
    validate_timezone(value)
    return str(value)


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "name": _slug,
    "title": _text(200),
    "description": _text(10_000),
    "url": _text(MAX_URL_LENGTH),  # then checked against the allowed targets
    "method": _choice(METHODS, upper=True),
    "headers": _headers,
    "payload": _payload,
    "schedule": _schedule,
    "tz": _tz,
    "mode": _choice(MODES),
    "enabled": _boolean,
    "tags": _tags,
    "timeout": _integer(1, 86_400),
    "max_attempts": _integer(1, 10),
    "backoff": _integer(0, 3600),
    "overlap": _choice(OVERLAPS),
    "misfire": _choice(MISFIRES),
    "catchup_window": _integer(0, WEEK_SECONDS),
    "max_runs": _integer(1, None, nullable=True),
    "retry_abandoned": _boolean,
    "auto_pause_after": _integer(1, 1000, nullable=True),
    "signed": _boolean,  # send X-Cron-Signature (needs GATEWAY_SIGNING_SECRET)
    # Alerts: a watch-only job is never called by the gateway, only watched; a success is
    # expected every `expect_every` seconds (or by the schedule), `grace` seconds late at most.
    "watch_only": _boolean,
    "expect_every": _integer(60, 366 * 24 * 3600, nullable=True),
    "grace": _integer(0, WEEK_SECONDS, nullable=True),
    "min_duration_ms": _integer(0, None, nullable=True),
    "max_duration_ms": _integer(1, None, nullable=True),
}
FIELDS = tuple(_CHECKS)
REQUIRED = ("name", "url")


def validate_job(
    data: Mapping[str, Any], *, partial: bool = False, settings: Settings
) -> dict[str, Any]:
    """Return `data` as clean Job field values, or raise naming the first bad field.

    With `partial`, only the fields given are checked (an edit); otherwise `name` and `url`
    are required and the rest take the model's defaults. Bad schedules and zones raise
    InvalidSchedule; everything else raises ValidationError. Nothing here converts strings
    from a command line: "10" is not a number.
    """
    if not isinstance(data, Mapping):
        raise ValidationError("a job definition must be a table of fields", field=None)
    for key in data:
        if key not in _CHECKS:
            known = ", ".join(FIELDS)
            raise ValidationError(f"unknown field {_quote(key)} (known: {known})", field=str(key))
    if not partial:
        for key in REQUIRED:
            if key not in data:
                raise _fail(key, "is required")
    clean = {key: _CHECKS[key](key, value) for key, value in data.items()}
    if "url" in clean:
        clean["url"] = check_url(clean["url"], settings)
    low, high = clean.get("min_duration_ms"), clean.get("max_duration_ms")
    if low is not None and high is not None and low > high:
        raise _fail("min_duration_ms", f"{low} is more than max_duration_ms ({high})")
    if clean.get("schedule") is not None:
        cached_schedule(clean["schedule"], clean.get("tz", "UTC"), clean.get("name"))
    return clean


def check_url(url: str, settings: Settings) -> str:
    """Return `url` if the gateway may call it: a path on the app, or an allowed http(s) host."""
    if url.startswith("/"):
        if url.startswith("//"):
            raise _fail("url", f"{_quote(url)} is not a path; write the full http(s) URL")
        # A path points at GATEWAY_APP_URL, which the operator chose: always allowed.
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail("url", f"{_quote(url)} must be an http(s) URL or a path starting with '/'")
    if parts.username is not None or parts.password is not None:
        raise _fail("url", f"credentials in the URL are not allowed; {SECRETS_HINT}")
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if _is_secret_name(name):
            raise _fail("url", f"query parameter {name!r} would carry a secret; {SECRETS_HINT}")
    if not host_allowed(parts.hostname, settings.targets):
        allowed = ", ".join(settings.targets)
        raise _fail(
            "url",
            f"host {parts.hostname!r} is not an allowed target ({allowed}); "
            "set GATEWAY_ALLOWED_TARGETS",
        )
    return url


def host_allowed(host: str, targets: tuple[str, ...]) -> bool:
    """Return True if `host` is one of `targets` (exact, `*.example.com` for subdomains, or
    `*` for any host; the gateway still refuses non-public addresses that only `*` allows)."""
    host = host.lower().rstrip(".")
    for target in targets:
        target = target.lower().rstrip(".")
        if target == "*":
            return True
        if target.startswith("*."):
            if host.endswith(target[1:]) and len(host) > len(target) - 1:
                return True
        elif host == target:
            return True
    return False
