"""`python -m gateway up|web`: start the processes (being written)."""

from __future__ import annotations

import click

serve_commands: list[click.Command] = []
