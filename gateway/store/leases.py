"""Leases: a named lock with a holder and an expiry, atomic on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import datetime
from datetime import timedelta

from gateway.store import rendered
from gateway.store.bulk import insert_sql
from gateway.store.models import Lease


def acquire(name: str, holder: str, ttl: timedelta, now: datetime) -> tuple[bool, str | None]:
    """Try to take the lease; return (taken, holder whose expired lease was taken over).

    No read-then-write: an INSERT wins a free lease, and an UPDATE guarded by the expiry takes
    over an expired one, so two processes can never both succeed. The INSERT does nothing
    if the lease exists (no error, so no savepoint around it inside a transaction).
    """
    values = (name, holder, Lease.acquired_at.db_value(now), Lease.expires_at.db_value(now + ttl))
    if rendered.execute("lease.insert", _insert_sql, values).rowcount:
        return True, None
    # The lease exists: someone holds it, or held it and it may have expired.
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
    rendered.execute("lease.release", _release_sql, (name, holder))


def current(name: str) -> Lease | None:
    """Return the lease row, expired or not."""
    return Lease.get_or_none(Lease.name == name)


def _insert_sql(param: str) -> str:
    columns = (Lease.name, Lease.holder, Lease.acquired_at, Lease.expires_at)
    return insert_sql(Lease, columns, param, skip_duplicates=True)


def _release_sql(param: str) -> str:
    return (
        f"DELETE FROM {Lease._meta.table_name} "
        f"WHERE {Lease.name.column_name} = {param} AND {Lease.holder.column_name} = {param}"
    )
