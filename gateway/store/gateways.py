"""Gateway rows: each gateway process says who it is and that it is alive (its heartbeat)."""

from __future__ import annotations

from datetime import datetime

from gateway.store.models import Gateway


def register(instance: str, host: str, pid: int, now: datetime, role: str) -> None:
    """Insert this gateway's row (instance ids are unique per process start)."""
    row = {"host": host, "pid": pid, "started_at": now, "seen_at": now, "role": role}
    Gateway.insert(instance=instance, **row).on_conflict(
        conflict_target=[Gateway.instance], update=row
    ).execute()


def beat(instance: str, now: datetime, role: str) -> None:
    """Record that the gateway is alive now, in `role` (active or standby)."""
    Gateway.update(seen_at=now, role=role).where(Gateway.instance == instance).execute()


def retire(instance: str, now: datetime) -> None:
    """Record a clean stop. The row stays for the gateways page; its runs are already ended."""
    Gateway.update(seen_at=now, role="stopped").where(Gateway.instance == instance).execute()


def list_gateways() -> list[Gateway]:
    return list(Gateway.select().order_by(Gateway.seen_at.desc()))
