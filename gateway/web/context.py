"""Safe places for a page to go back to after a form (no open redirects)."""

from __future__ import annotations

from flask import request


def back_to(default: str) -> str:
    """Return the form's `next` if it is a path on this site, else `default` (no open redirect)."""
    target = request.form.get("next") or request.args.get("next") or ""
    if target.startswith("/") and not target.startswith(("//", "/\\")) and len(target) < 2000:
        return target
    return default
