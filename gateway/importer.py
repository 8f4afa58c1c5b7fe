"""Import a crontab's `curl …` lines as jobs; tokens found in them are moved into hashed keys."""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from gateway import tokens
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.jobspec import validate_job
from gateway.schedule import validate_timezone
from gateway.store.jobs import create_job
from gateway.store.keys import create_key
from gateway.store.models import Job
from gateway.store.models import Key

_ENV_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_VAR = re.compile(r"^\$(?:\{(\w+)\}|(\w+))$")
_SEPARATORS = {"&&", "||", ";", "|", "&"}
_REDIRECT = re.compile(r"^[<>&]+$")
# curl options that take a value: the ones we read, and the ones we may ignore safely.
_READ = {
    "-X": "method", "--request": "method", "-H": "header", "--header": "header",
    "-d": "data", "--data": "data", "--data-raw": "data", "--data-binary": "data",
    "--data-ascii": "data", "--json": "json", "-m": "timeout", "--max-time": "timeout",
    "--url": "url",
}  # fmt: skip
_IGNORED = {
    "-o", "--output", "-A", "--user-agent", "-e", "--referer", "-w", "--write-out",
    "--retry", "--retry-delay", "--retry-max-time", "--connect-timeout", "--cacert",
    "--resolve", "--max-redirs", "-x", "--proxy", "-D", "--dump-header",
}  # fmt: skip
_REFUSED = {
    "-u": "credentials (-u)", "--user": "credentials (--user)", "-b": "cookies (-b)",
    "--cookie": "cookies (--cookie)", "-F": "a form body (-F)", "--form": "a form body (--form)",
    "-K": "a curl config file (-K)", "--config": "a curl config file (--config)",
    "-T": "an upload (-T)", "--upload-file": "an upload", "-G": "data sent as a query (-G)",
    "--get": "data sent as a query (--get)", "-I": "a HEAD request (-I)",
    "--head": "a HEAD request",
    "--data-urlencode": "a form-encoded body",
}  # fmt: skip
_SHORT_WITH_VALUE = {o[1] for o in (*_READ, *_IGNORED, *_REFUSED) if len(o) == 2} - {"G", "I"}


class LineError(GatewayError):
    """A curl line that cannot become a job; the message says why."""


@dataclass
class CurlCall:
    """What one curl command does: the job fields, and the token it presented (if any)."""

    method: str
    url: str
    headers: dict[str, str]
    payload: Any
    timeout: int | None
    secret: str | None = None
    secret_from: str | None = None  # `$NAME` the token came from, when the crontab lacks it


@dataclass
class ImportReport:
    """What an import did (or, dry, would do), line by line."""

    dry_run: bool
    jobs: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    keys: list[dict[str, Any]] = field(default_factory=list)


def parse_curl(command: str, env: dict[str, str]) -> CurlCall:
    """Return the curl call in a crontab command, or raise LineError (not curl: "not curl")."""
    command = re.split(r"(?<!\\)%", command, maxsplit=1)[0].replace("\\%", "%")
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError as e:
        raise LineError(f"cannot read the command: {e}") from None
    segment = _curl_segment(words)
    return _read_options(_drop_redirects(segment), env)


def _curl_segment(words: list[str]) -> list[str]:
    segments: list[list[str]] = [[]]
    for word in words:
        if word in _SEPARATORS:
            segments.append([])
        else:
            segments[-1].append(word)
    for segment in segments:
        while segment and _ENV_LINE.match(segment[0]):  # FOO=bar curl …
            segment = segment[1:]
        for skip in (0, 1):  # /etc/crontab and cron.d lines have a user field first
            if len(segment) > skip and segment[skip].rsplit("/", 1)[-1] == "curl":
                return segment[skip + 1 :]
    raise LineError("not curl")


def _drop_redirects(words: list[str]) -> list[str]:
    kept: list[str] = []
    skip_next = False
    for i, word in enumerate(words):
        if skip_next:
            skip_next = False
        elif _REDIRECT.match(word):
            skip_next = True
        elif word.isdigit() and i + 1 < len(words) and _REDIRECT.match(words[i + 1]):
            continue  # the 2 of 2>&1
        else:
            kept.append(word)
    return kept


def _options(words: list[str]) -> list[tuple[str, str | None]]:
    """Return (option, value) pairs; a bare word is ("url", word)."""
    pairs: list[tuple[str, str | None]] = []
    i = 0
    while i < len(words):
        word, i = words[i], i + 1
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            if eq or name not in {*_READ, *_IGNORED, *_REFUSED} - {"--get", "--head"}:
                pairs.append((name, value if eq else None))
                continue
            if i >= len(words):
                raise LineError(f"curl option {name} needs a value")
            pairs.append((name, words[i]))
            i += 1
        elif word.startswith("-") and len(word) > 1:
            for j, letter in enumerate(word[1:], start=2):
                if letter in _SHORT_WITH_VALUE:
                    given = word[j:] if j < len(word) else (words[i] if i < len(words) else None)
                    if given is None:
                        raise LineError(f"curl option -{letter} needs a value")
                    i += 0 if j < len(word) else 1
                    pairs.append((f"-{letter}", given))
                    break
                pairs.append((f"-{letter}", None))
        else:
            pairs.append(("url", word))
    return pairs


def _read_options(words: list[str], env: dict[str, str]) -> CurlCall:
    method: str | None = None
    urls: list[str] = []
    headers: dict[str, str] = {}
    bodies: list[str] = []
    timeout: int | None = None
    for option, value in _options(words):
        if option in _REFUSED:
            raise LineError(f"the command uses {_REFUSED[option]}, which a job cannot carry")
        kind = "url" if option == "url" else _READ.get(option)
        if kind is None or value is None:
            continue
        if kind == "method":
            method = value.upper()
        elif kind == "header":
            name, _, text = value.partition(":")
            headers[name.strip()] = text.strip()
        elif kind in ("data", "json"):
            bodies.append(value)
            if kind == "json":
                headers.setdefault("Content-Type", "application/json")
        elif kind == "timeout":
            timeout = _timeout(value)
        else:
            urls.append(value)
    if len(urls) != 1:
        raise LineError(f"expected one URL in the curl command, found {len(urls)}")
    call = CurlCall(method or ("POST" if bodies else "GET"), urls[0], headers, None, timeout)
    call.payload = _payload(bodies)
    _move_secret(call, env)
    return call


def _timeout(value: str) -> int:
    try:
        return max(1, math.ceil(float(value)))
    except ValueError:
        raise LineError(f"curl -m {value!r} is not a number of seconds") from None


def _payload(bodies: list[str]) -> Any:
    if not bodies:
        return None
    if len(bodies) > 1 or bodies[0].startswith("@"):
        raise LineError("the body is several -d values or a file (@…); only one JSON body is read")
    try:
        return json.loads(bodies[0])
    except ValueError:
        raise LineError(
            f"the body {bodies[0][:40]!r} is not JSON; only JSON bodies are read"
        ) from None


def _move_secret(call: CurlCall, env: dict[str, str]) -> None:
    """Take the token out of the headers or the URL; keep it on the call, resolved from env."""
    found: list[str] = []
    for name in list(call.headers):
        value, lowered = call.headers[name], name.lower()
        if lowered == "x-cron-token":
            found.append(call.headers.pop(name))
        elif lowered == "authorization" and value.lower().startswith("bearer "):
            found.append(call.headers.pop(name)[len("bearer ") :].strip())
        elif lowered == "content-type" and value.lower().startswith("application/json"):
            del call.headers[name]  # the gateway sends its JSON body with this type anyway
    parts = urlsplit(call.url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "cronToken" for name, _ in query):
        found += [value for name, value in query if name == "cronToken"]
        kept = [(name, value) for name, value in query if name != "cronToken"]
        call.url = urlunsplit(parts._replace(query=urlencode(kept)))
    if found:
        call.secret = _resolve(found[0], env)
        call.secret_from = found[0] if call.secret is None else None


def _resolve(value: str, env: dict[str, str]) -> str | None:
    """Return the secret, looking `$NAME` up in the crontab's variables; None if unknown."""
    if match := _VAR.match(value):
        return env.get(match[1] or match[2])
    return None if "$" in value else value


def import_crontab(
    text: str, now: datetime, *, settings: Settings, tz: str = "UTC", dry_run: bool = False
) -> ImportReport:
    """Turn the curl lines of a crontab into jobs (source "import") and report every line.

    Lines that are not curl are skipped; curl lines that cannot be jobs are refused (the
    reason given). Each distinct token becomes an invoke key `imported-<host>` holding only
    its hash, so existing callers keep working until it is revoked; it is never printed.
    """
    report = ImportReport(dry_run=dry_run)
    env: dict[str, str] = {}
    names = {job.name for job in Job.select(Job.name)}
    keys: dict[str, dict[str, Any]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if (assignment := _ENV_LINE.match(line)) and not line.startswith("@"):
            name, value = assignment[1], _unquote(assignment[2])
            env[name] = value
            if name == "CRON_TZ":
                tz = _zone(value, number, report) or tz
            continue
        try:
            schedule, command = _split_line(line)
            call = parse_curl(command, env)
        except LineError as e:
            target = report.skipped if str(e) == "not curl" else report.refused
            target.append({"line": number, "reason": _reason(e, line)})
            continue
        _add_job(report, number, schedule, tz, call, names, keys, now, settings)
    report.keys = list(keys.values())
    _store_keys(report.keys, now, dry_run)
    for job in report.jobs:
        job["key"] = job["key"]["name"] if job["key"] is not None else None
    return report


def _reason(error: LineError, line: str) -> str:
    if str(error) == "not curl":
        return f"not a curl command: {line[:80]}"
    return str(error)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _zone(value: str, number: int, report: ImportReport) -> str | None:
    try:
        validate_timezone(value)
    except GatewayError as e:
        report.refused.append({"line": number, "reason": f"CRON_TZ: {e}"})
        return None
    return value


def _split_line(line: str) -> tuple[str, str]:
    """Return (schedule, command) of a crontab entry."""
    if line.startswith("@"):
        macro, _, command = line.partition(" ")
        if macro == "@reboot":
            raise LineError("@reboot is not a schedule")
        return macro, command.strip()
    fields = line.split(None, 5)
    if len(fields) < 6:
        raise LineError(f"expected five time fields and a command: {line[:80]}")
    return " ".join(fields[:5]), fields[5]


def _add_job(
    report: ImportReport,
    number: int,
    schedule: str,
    tz: str,
    call: CurlCall,
    names: set[str],
    keys: dict[str, dict[str, Any]],
    now: datetime,
    settings: Settings,
) -> None:
    name = _unique(_slug_of(call.url), names)
    data: dict[str, Any] = {"name": name, "url": call.url, "method": call.method}
    data |= {"schedule": schedule, "tz": tz, "headers": call.headers}
    data |= {k: v for k, v in (("payload", call.payload), ("timeout", call.timeout)) if v}
    try:
        validate_job(data, settings=settings)
        if not report.dry_run:
            create_job(data, now, settings=settings, source="import")
    except GatewayError as e:
        report.refused.append({"line": number, "reason": str(e)})
        return
    names.add(name)
    entry = {"line": number, **data, "key": None}
    if call.secret_from is not None:
        entry["note"] = (
            f"the token came from {call.secret_from}, which the crontab does not set: "
            "the gateway sends its own token (GATEWAY_CRON_TOKEN) instead"
        )
    if call.secret is not None and call.secret != settings.cron_token:
        key = keys.setdefault(call.secret, {"secret": call.secret, "host": _host(call.url)})
        key.setdefault("lines", []).append(number)
        entry["key"] = key
    report.jobs.append(entry)


def _slug_of(url: str) -> str:
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    base = segments[-1] if segments else parts.hostname or "imported"
    slug = re.sub(r"[^a-z0-9_-]+", "-", base.lower()).strip("-_")[:90]
    return slug or "imported"


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    return candidate


def _host(url: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", (urlsplit(url).hostname or "app").lower())


def _store_keys(keys: list[dict[str, Any]], now: datetime, dry_run: bool) -> None:
    """Keep each token as a hashed invoke key `imported-<host>`; take the secrets out of `keys`."""
    taken = {key.name for key in Key.select(Key.name)}
    for key in keys:
        secret, host = key.pop("secret"), key.pop("host")
        existing = Key.get_or_none(Key.secret_hash == tokens.hash_token(secret))
        if existing is not None:
            key["name"], key["created"] = existing.name, False
            continue
        name = _unique(f"imported-{host}", taken)
        taken.add(name)
        key["name"], key["created"] = name, not dry_run
        if dry_run:
            continue
        row, _ = create_key(name, "invoke", now)
        # create_key made a random secret; the key must accept the token callers already use.
        Key.update(secret_hash=tokens.hash_token(secret), prefix=tokens.prefix_of(secret)).where(
            Key.id == row.id
        ).execute()
