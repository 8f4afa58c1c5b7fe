"""`python -m gateway alerts list`: the alerts recorded, and whether each was delivered."""

from __future__ import annotations

from typing import Any

import click

from gateway.alerts.records import alert_as_dict
from gateway.alerts.records import list_alerts
from gateway.cli.common import echo_json
from gateway.cli.common import echo_table
from gateway.cli.common import open_store


@click.group()
def alerts() -> None:
    """Read alerts (failures, recoveries, late jobs, odd durations or pace)."""


@alerts.command("list")
@click.option("--job", help="Only alerts of this job.")
@click.option("--open", "only_open", is_flag=True, help="Only conditions that still hold.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array for scripts.")
def list_command(job: str | None, only_open: bool, limit: int, as_json: bool) -> None:
    """List alerts, newest first."""
    open_store()
    found = [alert_as_dict(a) for a in list_alerts(job=job, only_open=only_open, limit=limit)]
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo("no alerts")
        return
    echo_table(["OPENED", "JOB", "KIND", "STATE", "DELIVERY", "MESSAGE"], [_row(a) for a in found])


def _row(alert: dict[str, Any]) -> list[str]:
    if alert["delivered_at"]:
        delivery = f"sent {alert['delivered_at'][:19].replace('T', ' ')}"
    elif alert["next_attempt_at"]:
        delivery = f"retrying ({alert['attempts']} tries): {alert['last_error'] or ''}"[:60]
    elif alert["attempts"]:
        delivery = f"failed: {alert['last_error'] or ''}"[:60]
    else:
        delivery = "no channel"
    return [
        alert["opened_at"][:19].replace("T", " "),
        alert["job"],
        alert["kind"],
        alert["state"],
        delivery,
        alert["message"][:80],
    ]
