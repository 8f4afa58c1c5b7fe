"""Export jobs as crontab lines that call their endpoints with curl (token from an env file)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime

from gateway.export import ExportError
from gateway.export import Rejected
from gateway.export import absolute_url
from gateway.export import normalized_fields
from gateway.store.models import Job

DEFAULT_ENV_FILE = "/etc/cron-gateway.env"
_SPECIAL = ("L", "W", "#")


@dataclass
class CrontabExport:
    """The crontab text and the jobs left out of it."""

    text: str
    rejected: list[Rejected] = field(default_factory=list)


def cron_fields(job: Job) -> str:
    """Return the job's schedule as five system cron fields, or raise ExportError."""
    second, minute, hour, dom, month, dow = normalized_fields(job)
    if second != "0":
        raise ExportError(
            f"{job.name}: system cron cannot schedule below one minute "
            f"(seconds field '{second}' in '{job.schedule}')"
        )
    for name, text in (("day-of-month", dom), ("day-of-week", dow)):
        if any(token in text for token in _SPECIAL):
            raise ExportError(
                f"{job.name}: system cron cannot express {name} '{text}' "
                f"(L, W and # are not cron syntax; in '{job.schedule}')"
            )
    # Vixie cron and cronie read the day fields as we do (a field starting with `*` counts as
    # unrestricted, otherwise either day field may match), so the normalized fields carry over.
    return " ".join((minute, hour, dom, month, dow))


def curl_command(job: Job, app_url: str, env_file: str) -> str:
    """Return the shell command that calls the job; the token is read from `env_file`."""
    parts = ["curl", "-fsS", "-m", str(job.timeout), "-X", job.method]
    parts += ["-H", '"X-Cron-Token: $GATEWAY_CRON_TOKEN"']
    for name, value in (job.headers or {}).items():
        parts += ["-H", shlex.quote(f"{name}: {value}")]
    if job.payload is not None:
        body = json.dumps(job.payload, separators=(",", ":"), ensure_ascii=False)
        parts += ["-H", shlex.quote("Content-Type: application/json"), "--data", shlex.quote(body)]
    parts.append(shlex.quote(absolute_url(job, app_url)))
    command = f". {shlex.quote(env_file)} && " + " ".join(parts)
    # In a crontab an unescaped % ends the command (the rest goes to stdin).
    return command.replace("%", "\\%")


def export_crontab(
    jobs: Sequence[Job],
    app_url: str,
    now: datetime,
    *,
    env_file: str = DEFAULT_ENV_FILE,
) -> CrontabExport:
    """Return a crontab for `jobs`, grouped by CRON_TZ zone.

    A job whose schedule system cron cannot express is left out, with a comment saying why,
    and listed in `rejected` (the CLI fails on it unless told to skip).
    """
    lines: dict[str, list[str]] = {}
    rejected: list[Rejected] = []
    for job in jobs:
        try:
            fields = cron_fields(job)
        except ExportError as e:
            rejected.append(Rejected(job.name, str(e)))
            continue
        prefix = "" if job.enabled else "# (paused) "
        command = curl_command(job, app_url, env_file)
        lines.setdefault(job.tz, []).append(f"{prefix}{fields} {command}  # {job.name}")
    return CrontabExport(_render(lines, rejected, env_file, now), rejected)


def _render(
    groups: dict[str, list[str]], rejected: list[Rejected], env_file: str, now: datetime
) -> str:
    out = [
        f"# Cron Gateway jobs, exported {now.isoformat(timespec='seconds')}",
        f"# The token is read at run time from {env_file} (mode 600, owned by the cron user),",
        "# which holds one line: GATEWAY_CRON_TOKEN=<token>. It is never written here.",
        "# CRON_TZ needs cronie (RHEL, Fedora, Arch) or another cron that supports it; Debian's",
        "# cron ignores it and reads the times in the machine's zone.",
        "SHELL=/bin/sh",
    ]
    for reject in rejected:
        out.append(f"# left out: {reject.reason}")
    for zone in sorted(groups):
        out += ["", f"CRON_TZ={zone}", *groups[zone]]
    return "\n".join(out) + "\n"
