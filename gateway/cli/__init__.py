"""The `python -m gateway` command line: a click group whose commands live one module per noun."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from gateway.errors import GatewayError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Cron Gateway: cron jobs as API routes."""


def _register() -> None:
    # Imported here so that each command module can import `cli` helpers without a cycle.
    from gateway.cli.alerts import alerts
    from gateway.cli.cron import cron
    from gateway.cli.export import export
    from gateway.cli.imports import import_
    from gateway.cli.jobs import jobs
    from gateway.cli.keys import keys
    from gateway.cli.maintenance import maintenance_commands
    from gateway.cli.runs import runs
    from gateway.cli.serve import serve_commands
    from gateway.cli.sync import sync

    cli.add_command(alerts)
    cli.add_command(cron)
    cli.add_command(export)
    cli.add_command(import_)
    cli.add_command(jobs)
    cli.add_command(keys)
    cli.add_command(runs)
    cli.add_command(sync)
    for command in [*serve_commands, *maintenance_commands]:
        cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI: exit 0 on success, 2 with one line on stderr for bad input."""
    _register()
    try:
        code = cli.main(args=argv, prog_name="python -m gateway", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(2)
    except GatewayError as e:
        click.echo(f"error: {e.message}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
