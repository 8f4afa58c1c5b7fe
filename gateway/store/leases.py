"""Leases: a named lock with a holder and an expiry, atomic on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import datetime
from datetime import timedelta

from peewee import IntegrityError

from gateway.store.db import database
from gateway.store.models import Lease


def acquire(name: str, holder: str, ttl: timedelta, now: datetime) -> tuple[bool, str | None]:
    """Try to take the lease; return (taken, holder whose expired lease was taken over).

    No read-then-write: an INSERT wins a free lease, and an UPDATE guarded by the expiry takes
    over an expired one, so two processes can never both succeed.
    """
    try:
        with database.atomic():
            Lease.insert(name=name, holder=holder, acquired_at=now, expires_at=now + ttl).execute()
        return True, None
    except IntegrityError:
        pass  # the lease exists: someone holds it, or held it and it may have expired
    previous = Lease.select(Lease.holder).where(Lease.name == name).scalar()
    taken = (
        Lease.update(holder=holder, acquired_at=now, expires_at=now + ttl)
        .where((Lease.name == name) & (Lease.expires_at < now) & (Lease.holder == previous))
        .execute()
    )
    return bool(taken), previous if taken else None


def take_over(name: str, old: str, new: str, ttl: timedelta, now: datetime) -> bool:
    """Give the lease held by `old` to `new` (its run was canceled); False if `old` lost it."""
    return bool(
        Lease.update(holder=new, acquired_at=now, expires_at=now + ttl)
        .where((Lease.name == name) & (Lease.holder == old))
        .execute()
    )


def renew(name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
    """Extend the lease if `holder` still holds it; return False if it was lost."""
    return bool(
        Lease.update(expires_at=now + ttl)
        .where((Lease.name == name) & (Lease.holder == holder))
        .execute()
    )


def release(name: str, holder: str) -> None:
    """Drop the lease if `holder` holds it (a lost lease is left to its new holder)."""
    Lease.delete().where((Lease.name == name) & (Lease.holder == holder)).execute()


def current(name: str) -> Lease | None:
    """Return the lease row, expired or not."""
    return Lease.get_or_none(Lease.name == name)
