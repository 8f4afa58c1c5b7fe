"""`python -m gateway cron next|explain`: schedules from the command line (being written)."""

from __future__ import annotations

import click


@click.group()
def cron() -> None:
    """Inspect cron expressions."""
