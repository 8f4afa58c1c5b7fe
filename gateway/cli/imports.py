"""`python -m gateway import crontab FILE`: migrate "cron + curl" lines to jobs in one step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gateway.cli.common import echo_json
from gateway.cli.common import open_store
from gateway.clock import SYSTEM_CLOCK
from gateway.importer import ImportReport
from gateway.importer import import_crontab
from gateway.schedule import validate_timezone


@click.group("import")
def import_() -> None:
    """Turn another scheduler's definitions into jobs."""


@import_.command("crontab")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tz", default="UTC", show_default=True, help="Zone of lines before any CRON_TZ.")
@click.option("--dry-run", is_flag=True, help="Report what would be imported; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def crontab(ctx: click.Context, path: Path, tz: str, dry_run: bool, as_json: bool) -> None:
    """Import the curl lines of a crontab as jobs; tokens become hashed keys, never printed.

    Exit 0 if every curl line became a job, 1 if some were refused (each is named), 2 if the
    file cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise click.UsageError(f"cannot read {path}: {e}") from None
    validate_timezone(tz)
    settings = open_store()
    report = import_crontab(text, SYSTEM_CLOCK.now(), settings=settings, tz=tz, dry_run=dry_run)
    if as_json:
        echo_json(_as_dict(report))
    else:
        _print(report)
    ctx.exit(1 if report.refused else 0)


def _as_dict(report: ImportReport) -> dict[str, Any]:
    return {
        "dry_run": report.dry_run,
        "jobs": report.jobs,
        "skipped": report.skipped,
        "refused": report.refused,
        "keys": report.keys,
    }


def _print(report: ImportReport) -> None:
    lines = [(j["line"], f"job {j['name']}: {_job_text(j)}") for j in report.jobs]
    lines += [(s["line"], f"skipped: {s['reason']}") for s in report.skipped]
    lines += [(r["line"], f"refused: {r['reason']}") for r in report.refused]
    for number, text in sorted(lines, key=lambda item: item[0]):
        click.echo(f"line {number}: {text}")
    for key in report.keys:
        on = ", ".join(str(n) for n in key["lines"])
        state = "new key" if key["created"] else "key"
        click.echo(
            f"{state} {key['name']}: the token on lines {on} (stored hashed, not shown); "
            "it keeps working for existing callers: rotate it (keys create, switch the "
            f"callers, keys revoke {key['name']})"
        )
    verb = "would import" if report.dry_run else "imported"
    click.echo(
        f"{verb} {len(report.jobs)} jobs; skipped {len(report.skipped)} lines, "
        f"refused {len(report.refused)}"
    )


def _job_text(job: dict[str, Any]) -> str:
    return f"{job['schedule']} {job['tz']}, {job['method']} {job['url']}"
