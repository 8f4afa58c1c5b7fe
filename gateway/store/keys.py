"""Keys: create (secret returned once), verify a presented token, revoke. Only hashes are stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

from peewee import IntegrityError

from gateway import tokens
from gateway.errors import ConflictError
from gateway.errors import ValidationError
from gateway.store.models import Job
from gateway.store.models import Key

SCOPES = ("invoke", "admin")
# last_used_at is kept to the minute: a write per call would cost every endpoint a transaction.
_LAST_USED_PRECISION = timedelta(seconds=60)


@dataclass(frozen=True)
class Caller:
    """Who called: a key's name and scope (never its secret)."""

    name: str
    scope: str
    job: str | None = None

    def may_invoke(self, job: str) -> bool:
        """Return True if this caller may run `job`."""
        return self.scope == "admin" or self.job is None or self.job == job


def create_key(name: str, scope: str, now: datetime, job: str | None = None) -> tuple[Key, str]:
    """Store a new key and return it with its secret, which is never shown again."""
    if scope not in SCOPES:
        raise ValidationError(f"scope must be one of {', '.join(SCOPES)}", field="scope")
    if not name or len(name) > 100:
        raise ValidationError("name must be 1 to 100 characters", field="name")
    if job is not None and scope != "invoke":
        raise ValidationError("only invoke keys can be limited to one job", field="job")
    secret = tokens.generate()
    try:
        key = Key.create(
            name=name,
            scope=scope,
            job=job,
            prefix=tokens.prefix_of(secret),
            secret_hash=tokens.hash_token(secret),
            created_at=now,
        )
    except IntegrityError:
        raise ConflictError(f"a key named {name!r} already exists", field="name") from None
    return key, secret


def check_key_job(job: str | None) -> None:
    """Raise ValidationError unless `job` is None or names a job that is not deleted.

    Separate from create_key: a code job's row appears only at its first call or sync, so the
    surfaces an operator uses (CLI, API) check, while code may create a key ahead of the job.
    """
    if job is not None and Job.get_or_none((Job.name == job) & Job.deleted_at.is_null()) is None:
        raise ValidationError(f"no job named {job!r}", field="job")


def verify_key(presented: str, now: datetime) -> Caller | None:
    """Return the caller a token belongs to, or None; revoked keys never match.

    The lookup is by SHA-256 of the token, so its timing says nothing about the secret.
    """
    key = Key.get_or_none(
        (Key.secret_hash == tokens.hash_token(presented)) & Key.revoked_at.is_null()
    )
    if key is None:
        return None
    if key.last_used_at is None or now - key.last_used_at >= _LAST_USED_PRECISION:
        Key.update(last_used_at=now).where(Key.id == key.id).execute()
    return Caller(name=key.name, scope=key.scope, job=key.job)


def revoke_key(name: str, now: datetime) -> bool:
    """Revoke a key by name; return False if there is no such active key."""
    return bool(
        Key.update(revoked_at=now).where((Key.name == name) & Key.revoked_at.is_null()).execute()
    )


def list_keys(include_revoked: bool = True) -> list[Key]:
    """Return the keys by name; with `include_revoked` False, only the active ones."""
    query = Key.select().order_by(Key.name)
    if not include_revoked:
        query = query.where(Key.revoked_at.is_null())
    return list(query)


def key_as_dict(key: Key) -> dict[str, Any]:
    """Return the public form of a key: never its secret or its hash."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "name": key.name,
        "scope": key.scope,
        "job": key.job,
        "prefix": key.prefix,
        "created_at": iso(key.created_at),
        "last_used_at": iso(key.last_used_at),
        "revoked_at": iso(key.revoked_at),
    }
