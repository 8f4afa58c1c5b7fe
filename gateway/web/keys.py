"""The keys page: list, create (the secret is shown once, on this response only), revoke."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from gateway.app_context import now
from gateway.errors import GatewayError
from gateway.errors import NotFoundError
from gateway.store.keys import SCOPES
from gateway.store.keys import check_key_job
from gateway.store.keys import create_key
from gateway.store.keys import list_keys
from gateway.store.keys import revoke_key


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/keys", view_func=keys_page, methods=["GET"])
    bp.add_url_rule("/keys", view_func=create, methods=["POST"], endpoint="create_key")
    bp.add_url_rule("/keys/<name>/revoke", view_func=revoke, methods=["POST"])


def keys_page(**extra: Any) -> str:
    return render_template("keys.html", keys=list_keys(), scopes=SCOPES, **extra)


def create(**_: Any) -> Any:
    name = request.form.get("name", "").strip()
    scope = request.form.get("scope", "")
    job = request.form.get("job", "").strip() or None
    try:
        check_key_job(job)
        key, secret = create_key(name, scope, now(), job)
    except GatewayError as e:
        return keys_page(error=e.message, form=request.form), e.status
    # Rendered, not redirected: the secret must not travel through the session cookie.
    return keys_page(created=key, secret=secret), 201


def revoke(name: str) -> Any:
    if not revoke_key(name, now()):
        e = NotFoundError(f"no active key named {name[:100]!r}", field="name")
        return keys_page(error=e.message), e.status
    flash(f"Revoked the key {name}. Callers using it are refused from now on.", "good")
    return redirect(url_for("ui.keys_page"))
