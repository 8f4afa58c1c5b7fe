"""validate_job: every field's good and bad values, as a table (no database, no clock)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import Settings
from gateway.errors import InvalidSchedule
from gateway.errors import ValidationError
from gateway.jobspec import host_allowed
from gateway.jobspec import validate_job

SETTINGS = Settings(allowed_targets=("api.example.com", "*.example.org", "127.0.0.1"))
BASE = {"name": "report", "url": "/crons/report"}


def valid(**fields: Any) -> dict[str, Any]:
    return validate_job({**BASE, **fields}, settings=SETTINGS)


GOOD: list[tuple[str, Any, Any]] = [
    # (field, given, stored)
    ("name", "a", "a"),
    ("name", "nightly-report_2", "nightly-report_2"),
    ("name", "x" * 100, "x" * 100),
    ("title", "Nightly report", "Nightly report"),
    ("description", "", ""),
    ("url", "/crons/report?x=1", "/crons/report?x=1"),
    ("url", "https://api.example.com/run", "https://api.example.com/run"),
    ("url", "http://API.example.com:8080/run", "http://API.example.com:8080/run"),
    ("url", "https://eu.example.org/x", "https://eu.example.org/x"),
    ("url", "http://127.0.0.1:9000/x", "http://127.0.0.1:9000/x"),
    ("method", "GET", "GET"),
    ("method", "delete", "DELETE"),
    ("headers", {}, {}),
    ("headers", {"X-Report-Format": "pdf", "Accept": "application/json"}, None),
    ("payload", None, None),
    ("payload", {"days": 1, "teams": ["a", "b"]}, None),
    ("payload", [1, 2.5, "x", True, None], None),
    ("payload", "text", "text"),
    ("payload", ("a", "b"), ["a", "b"]),
    ("schedule", None, None),
    ("schedule", "*/5 * * * *", "*/5 * * * *"),
    ("schedule", " @daily ", "@daily"),
    ("schedule", "*/10 * * * * *", "*/10 * * * * *"),
    ("schedule", "H 3 * * *", "H 3 * * *"),
    ("tz", "Europe/Berlin", "Europe/Berlin"),
    ("tz", "UTC", "UTC"),
    ("mode", "async", "async"),
    ("mode", "stream", "stream"),
    ("enabled", False, False),
    ("tags", [], []),
    ("tags", ["ops", "nightly", "ops"], ["ops", "nightly"]),
    ("tags", [f"t{i}" for i in range(20)], [f"t{i}" for i in range(20)]),
    ("timeout", 1, 1),
    ("timeout", 86_400, 86_400),
    ("max_attempts", 1, 1),
    ("max_attempts", 10, 10),
    ("backoff", 0, 0),
    ("backoff", 3600, 3600),
    ("overlap", "replace", "replace"),
    ("misfire", "all", "all"),
    ("catchup_window", 0, 0),
    ("catchup_window", 7 * 86_400, 7 * 86_400),
    ("max_runs", None, None),
    ("max_runs", 1, 1),
    ("retry_abandoned", True, True),
    ("auto_pause_after", None, None),
    ("auto_pause_after", 1000, 1000),
]


@pytest.mark.parametrize(("field", "given", "stored"), GOOD)
def test_a_good_value_is_kept(field: str, given: Any, stored: Any) -> None:
    clean = valid(**{field: given})
    assert clean[field] == (given if stored is None else stored)


BAD: list[tuple[str, Any, str]] = [
    # (field, given, a fragment of the message)
    ("name", "Report", "'Report' is not a slug"),
    ("name", "-report", "not a slug"),
    ("name", "x" * 101, "not a slug"),
    ("name", "", "not a slug"),
    ("name", 7, "7 is not a slug"),
    ("title", "x" * 201, "longer than 200"),
    ("title", 3, "expected a string"),
    ("description", None, "expected a string"),
    ("url", "crons/report", "must be an http(s) URL or a path"),
    ("url", "//evil.com/x", "is not a path"),
    ("url", "ftp://api.example.com/x", "must be an http(s) URL"),
    ("url", "https://evil.com/x", "host 'evil.com' is not an allowed target"),
    ("url", "https://example.org/x", "host 'example.org' is not an allowed target"),
    ("url", "https://user:pw@api.example.com/x", "credentials in the URL"),
    ("url", "https://api.example.com/x?cronToken=abc", "'cronToken' would carry a secret"),
    ("url", "/x" * 1001, "longer than 2000"),
    ("method", "HEAD", "'HEAD' is not one of GET, POST, PUT, PATCH, DELETE"),
    ("method", 1, "1 is not one of"),
    ("headers", "X-A: b", "expected a table"),
    ("headers", {"Authorization": "Bearer x"}, "'Authorization' would carry a secret"),
    ("headers", {"x-cron-token": "abc"}, "secrets go in keys"),
    ("headers", {"Cookie": "a=b"}, "would carry a secret"),
    ("headers", {"Proxy-Authorization": "x"}, "would carry a secret"),
    ("headers", {"X-Api-Key": "x"}, "would carry a secret"),
    ("headers", {"X-Auth-Token": "x"}, "would carry a secret"),
    ("headers", {"X-Client-SECRET": "x"}, "would carry a secret"),
    ("headers", {"DB-Password": "x"}, "would carry a secret"),
    ("headers", {"X-Cron-Trigger": "manual"}, "reserved"),
    ("headers", {"Bad Name": "x"}, "'Bad Name' is not a valid header name"),
    ("headers", {"X-A": 1}, "must be a one-line string"),
    ("headers", {"X-A": "a\r\nX-B: b"}, "must be a one-line string"),
    ("payload", {"x": float("nan")}, "not JSON"),
    ("payload", {"x": {1, 2}}, "not JSON"),
    ("payload", "x" * 70_000, "bytes of JSON; at most 65536"),
    ("schedule", "", "expected a cron expression or null"),
    ("schedule", 5, "expected a cron expression"),
    ("mode", "batch", "'batch' is not one of blocking, async, stream"),
    ("enabled", "yes", "expected true or false, not 'yes'"),
    ("enabled", 1, "expected true or false"),
    ("tags", "ops", "expected a list of slugs"),
    ("tags", ["Ops"], "'Ops' is not a slug"),
    ("tags", [f"t{i}" for i in range(21)], "21 tags; at most 20"),
    ("timeout", "ten", "expected a whole number, not 'ten'"),
    ("timeout", "10", "expected a whole number"),
    ("timeout", True, "expected a whole number, not true"),
    ("timeout", 1.5, "expected a whole number"),
    ("timeout", 0, "0 is out of range; it must be between 1 and 86400"),
    ("timeout", 86_401, "out of range"),
    ("max_attempts", 0, "between 1 and 10"),
    ("max_attempts", 11, "between 1 and 10"),
    ("backoff", -1, "between 0 and 3600"),
    ("backoff", 3601, "between 0 and 3600"),
    ("overlap", "queue", "not one of forbid, allow, replace"),
    ("misfire", "never", "not one of skip, once, all"),
    ("catchup_window", -1, "between 0 and 604800"),
    ("catchup_window", 7 * 86_400 + 1, "between 0 and 604800"),
    ("max_runs", 0, "it must be at least 1"),
    ("max_runs", False, "expected a whole number"),
    ("retry_abandoned", None, "expected true or false"),
    ("auto_pause_after", 0, "between 1 and 1000"),
    ("auto_pause_after", 1001, "between 1 and 1000"),
]


@pytest.mark.parametrize(("field", "given", "fragment"), BAD)
def test_a_bad_value_names_the_field(field: str, given: Any, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        valid(**{field: given})
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("schedule", "tz", "field", "fragment"),
    [
        ("0 0 31 2 *", "UTC", "schedule", "31 never occurs in February"),
        ("* * *", "UTC", "schedule", "expected 5 or 6 fields"),
        ("61 * * * *", "UTC", "schedule", "61"),
        ("0 3 * * *", "Europe/Nowhere", "tz", "tz: 'Europe/Nowhere' is not a known IANA"),
        (None, "Mars/Base", "tz", "'Mars/Base' is not a known IANA time zone"),
        (None, None, "tz", "tz: a time zone is required"),
    ],
)
def test_a_bad_schedule_or_zone_raises_invalid_schedule(
    schedule: str | None, tz: str | None, field: str, fragment: str
) -> None:
    with pytest.raises(InvalidSchedule) as info:
        valid(schedule=schedule, tz=tz)
    assert info.value.field == field and fragment in str(info.value)


def test_unknown_fields_are_named() -> None:
    with pytest.raises(ValidationError) as info:
        valid(retries=3)
    assert info.value.field == "retries" and "unknown field 'retries'" in str(info.value)


@pytest.mark.parametrize("missing", ["name", "url"])
def test_name_and_url_are_required_unless_partial(missing: str) -> None:
    data = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(ValidationError) as info:
        validate_job(data, settings=SETTINGS)
    assert info.value.field == missing and "is required" in str(info.value)
    assert validate_job(data, partial=True, settings=SETTINGS) == data


def test_only_given_fields_come_back() -> None:
    assert valid(timeout=30) == {**BASE, "timeout": 30}
    assert validate_job({"tz": "Asia/Tokyo"}, partial=True, settings=SETTINGS) == {
        "tz": "Asia/Tokyo"
    }


def test_the_app_host_is_the_default_target() -> None:
    settings = Settings(app_url="https://jobs.example.net")
    assert validate_job({**BASE, "url": "https://jobs.example.net/x"}, settings=settings)
    with pytest.raises(ValidationError, match="not an allowed target"):
        validate_job({**BASE, "url": "https://api.example.com/x"}, settings=settings)


def test_a_definition_must_be_a_table() -> None:
    with pytest.raises(ValidationError, match="must be a table"):
        validate_job(["name", "x"], settings=SETTINGS)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("api.example.com", True),
        ("API.EXAMPLE.COM.", True),
        ("x.api.example.com", False),
        ("a.example.org", True),
        ("a.b.example.org", True),
        ("example.org", False),
        ("evilexample.org", False),
    ],
)
def test_host_allowed(host: str, allowed: bool) -> None:
    assert host_allowed(host, SETTINGS.targets) is allowed
