"""What the CLI commands share: settings, the database, and output helpers."""

from __future__ import annotations

import json
from typing import Any

import click

from gateway.config import Settings
from gateway.config import load_settings
from gateway.store.db import ensure_open


def open_store() -> Settings:
    """Load the settings and open the database (creating the schema on first use)."""
    settings = load_settings()
    ensure_open(settings.database_url)
    return settings


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def echo_table(headers: list[str], rows: list[list[str]]) -> None:
    """Print rows as aligned columns under their headers."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
