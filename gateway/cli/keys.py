"""`python -m gateway keys create|list|revoke`: a new key's secret is printed once, never again."""

from __future__ import annotations

from typing import Any

import click

from gateway.cli.common import echo_json
from gateway.cli.common import echo_table
from gateway.cli.common import open_store
from gateway.clock import SYSTEM_CLOCK
from gateway.store import keys as store


@click.group()
def keys() -> None:
    """Create, list and revoke the keys that call endpoints and the management API."""


@keys.command("create")
@click.argument("name")
@click.option("--scope", type=click.Choice(store.SCOPES), required=True, help="What it may do.")
@click.option("--job", help="Limit an invoke key to this job.")
@click.option("--json", "as_json", is_flag=True, help="Print the key and its secret as JSON.")
def create(name: str, scope: str, job: str | None, as_json: bool) -> None:
    """Create a key and print its secret (shown this once only)."""
    open_store()
    store.check_key_job(job)
    key, secret = store.create_key(name, scope, SYSTEM_CLOCK.now(), job=job)
    if as_json:
        echo_json({**store.key_as_dict(key), "secret": secret})
        return
    limit = f", job {key.job}" if key.job else ""
    click.echo(f"created key {key.name!r} ({key.scope}{limit})")
    click.echo(f"secret: {secret}")
    click.echo("store the secret now: it will not be shown again")


@keys.command("list")
@click.option("--active", is_flag=True, help="Leave out revoked keys.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array for scripts.")
def list_command(active: bool, as_json: bool) -> None:
    """List keys by name (never their secrets)."""
    open_store()
    found = [store.key_as_dict(k) for k in store.list_keys(include_revoked=not active)]
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo("no keys")
        return
    echo_table(["NAME", "SCOPE", "JOB", "PREFIX", "CREATED", "LAST USED", "STATE"], _rows(found))


def _rows(found: list[dict[str, Any]]) -> list[list[str]]:
    def when(value: str | None) -> str:
        return value[:19].replace("T", " ") if value else "-"

    return [
        [
            k["name"],
            k["scope"],
            k["job"] or "-",
            k["prefix"] + "…",
            when(k["created_at"]),
            when(k["last_used_at"]),
            f"revoked {when(k['revoked_at'])}" if k["revoked_at"] else "active",
        ]
        for k in found
    ]


@keys.command("revoke")
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke a key: every worker refuses it from the next call on."""
    open_store()
    if not store.revoke_key(name, SYSTEM_CLOCK.now()):
        raise click.UsageError(f"no active key named {name!r}")
    click.echo(f"key {name!r} revoked")
