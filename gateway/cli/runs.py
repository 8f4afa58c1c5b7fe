"""`python -m gateway runs list`: read run history (being written)."""

from __future__ import annotations

import click


@click.group()
def runs() -> None:
    """Read run history."""
