"""/api/keys: list keys (never a secret), create one (its secret shown once), revoke one."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from gateway.api import bodies
from gateway.api import params
from gateway.app_context import now
from gateway.errors import NotFoundError
from gateway.store import keys as store


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/keys", view_func=list_keys, methods=["GET"])
    bp.add_url_rule("/keys", view_func=create_key, methods=["POST"])
    bp.add_url_rule("/keys/<name>", view_func=revoke_key, methods=["DELETE"])


def list_keys() -> Any:
    params.check_known(("include_revoked",))
    include_revoked = params.boolean("include_revoked", True)
    return {"keys": [store.key_as_dict(k) for k in store.list_keys(include_revoked)]}


def create_key() -> Any:
    params.check_known(())
    body = bodies.only(bodies.json_object(), ("name", "scope", "job"))
    name = bodies.text(body, "name", required=True, limit=100)
    scope = bodies.text(body, "scope", required=True, limit=20)
    job = bodies.text(body, "job", limit=100)
    assert name is not None and scope is not None
    key, secret = store.create_key(name, scope, now(), job=job)
    return {**store.key_as_dict(key), "secret": secret}, 201


def revoke_key(name: str) -> Any:
    params.check_known(())
    if not store.revoke_key(name, now()):
        raise NotFoundError(f"no active key named {name[:100]!r}", field="name")
    revoked = [k for k in store.list_keys() if k.name == name]
    return store.key_as_dict(revoked[0])
