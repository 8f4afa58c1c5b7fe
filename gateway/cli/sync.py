"""`python -m gateway sync`: upsert the jobs the apps' manifests and the jobs file declare."""

from __future__ import annotations

import click

from gateway.cli.common import echo_json
from gateway.cli.common import open_store
from gateway.clock import SYSTEM_CLOCK
from gateway.sync import sync_jobs


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def sync(ctx: click.Context, as_json: bool) -> None:
    """Read each app's GET /crons and the jobs file; create, update and orphan jobs.

    Exit 1 if an app could not be read (its jobs are left as they are); 2 for a bad jobs file
    (then nothing changes).
    """
    settings = open_store()
    report = sync_jobs(settings, SYSTEM_CLOCK.now())
    if as_json:
        echo_json(report.as_dict())
    else:
        for label in ("created", "updated", "orphaned"):
            names = getattr(report, label)
            if names:
                click.echo(f"{label}: {', '.join(names)}")
        click.echo(f"unchanged: {len(report.unchanged)} job(s)")
        for error in report.errors:
            click.echo(f"error: {error}", err=True)
    ctx.exit(1 if report.errors else 0)
