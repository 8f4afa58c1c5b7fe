"""`python -m gateway runs list`: read run history as a table or as JSON."""

from __future__ import annotations

from typing import Any

import click

from gateway.cli.common import echo_json
from gateway.cli.common import echo_table
from gateway.cli.common import open_store
from gateway.store.models import RUN_STATUSES
from gateway.store.run_queries import list_runs
from gateway.store.run_queries import run_as_dict


@click.group()
def runs() -> None:
    """Read run history."""


@runs.command("list")
@click.option("--job", help="Only runs of this job.")
@click.option("--status", type=click.Choice(RUN_STATUSES), help="Only runs with this status.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array for scripts.")
def list_command(job: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """List runs, newest first."""
    open_store()
    found = [run_as_dict(r) for r in list_runs(job=job, status=status, limit=limit)]
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo("no runs")
        return
    echo_table(
        ["STARTED", "JOB", "TRIGGER", "STATUS", "DURATION", "HTTP", "EXECUTION", "ERROR"],
        [_row(r) for r in found],
    )


def _row(run: dict[str, Any]) -> list[str]:
    when = run["started_at"] or run["scheduled_for"] or run["queued_at"] or ""
    duration = f"{run['duration_ms']} ms" if run["duration_ms"] is not None else "-"
    error = (run["error"] or "").splitlines()[0][:60] if run["error"] else ""
    return [
        when[:19].replace("T", " "),
        run["job"],
        run["trigger"],
        run["status"],
        duration,
        str(run["http_status"] or "-"),
        run["execution_id"][:8],
        error,
    ]
