"""The UI's door: login with an admin key, the session cookie, CSRF on every form, logout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.store.keys import create_key
from gateway.store.keys import revoke_key
from gateway.store.models import Job
from gateway.web import session_secret
from tests.conftest import ADMIN_TOKEN
from tests.conftest import CRON_TOKEN
from tests.fakes import FakeClock

PAGES = ("/", "/jobs/anything", "/runs/0000", "/keys", "/gateways")


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def login(client: FlaskClient, token: str = ADMIN_TOKEN) -> str:
    """Log in through the form and return the session's CSRF token."""
    csrf = csrf_of(client.get("/login").text)
    r = client.post("/login", data={"token": token, "csrf": csrf})
    assert r.status_code == 302, r.text
    return csrf_of(client.get("/keys").text)


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_a_stranger_to_the_login_form(client: FlaskClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/login?next=")


def test_the_preview_endpoint_answers_401_json_without_a_login(client: FlaskClient) -> None:
    r = client.get("/ui/preview?expr=*+*+*+*+*")
    assert r.status_code == 401
    assert r.json is not None and r.json["error"]["code"] == "unauthorized"


def test_the_admin_token_logs_in_and_the_cookie_is_httponly_and_lax(client: FlaskClient) -> None:
    csrf = csrf_of(client.get("/login").text)
    r = client.post("/login", data={"token": ADMIN_TOKEN, "csrf": csrf, "next": "/keys"})
    assert r.status_code == 302 and r.headers["Location"] == "/keys"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert ADMIN_TOKEN not in cookie
    assert client.get("/").status_code == 200


def test_over_https_the_cookie_is_secure(client: FlaskClient) -> None:
    csrf = csrf_of(client.get("/login", base_url="https://localhost").text)
    r = client.post(
        "/login", data={"token": ADMIN_TOKEN, "csrf": csrf}, base_url="https://localhost"
    )
    assert r.status_code == 302
    assert "Secure" in r.headers["Set-Cookie"]


@pytest.mark.parametrize("token", ["", "wrong-token-0123456789", CRON_TOKEN, "x" * 600])
def test_a_bad_token_is_refused_with_the_form_again(client: FlaskClient, token: str) -> None:
    csrf = csrf_of(client.get("/login").text)
    r = client.post("/login", data={"token": token, "csrf": csrf})
    assert r.status_code == 401
    assert "That is not an admin key." in r.text and 'name="token"' in r.text
    assert client.get("/").status_code == 302


def test_an_invoke_key_cannot_log_in_and_an_admin_key_can_until_revoked(
    client: FlaskClient, clock: FakeClock, db: str
) -> None:
    now = clock.now()
    _, invoke = create_key("ci", "invoke", now)
    _, admin = create_key("ops", "admin", now)
    csrf = csrf_of(client.get("/login").text)
    assert client.post("/login", data={"token": invoke, "csrf": csrf}).status_code == 401
    login(client, admin)
    assert client.get("/").status_code == 200
    revoke_key("ops", now)  # a revoked key's sessions end at once
    assert client.get("/").status_code == 302


def test_a_form_without_or_with_a_wrong_csrf_token_is_400_and_changes_nothing(
    client: FlaskClient, db: str
) -> None:
    login(client)
    before = Job.select().count()
    for data in ({"name": "k1", "scope": "invoke"}, {"name": "k1", "scope": "invoke", "csrf": "x"}):
        r = client.post("/keys", data=data)
        assert r.status_code == 400
        assert "security token" in r.text
    assert "k1" not in client.get("/keys").text
    assert Job.select().count() == before


def test_the_login_form_needs_its_csrf_token_too(client: FlaskClient) -> None:
    client.get("/login")
    assert client.post("/login", data={"token": ADMIN_TOKEN}).status_code == 400


def test_logout_ends_the_session(client: FlaskClient) -> None:
    csrf = login(client)
    r = client.post("/logout", data={"csrf": csrf})
    assert r.status_code == 302 and r.headers["Location"] == "/login"
    assert client.get("/").status_code == 302


def test_a_login_never_sends_you_to_another_site(client: FlaskClient) -> None:
    csrf = csrf_of(client.get("/login").text)
    for target in ("https://evil.example", "//evil.example", "/\\evil.example"):
        r = client.post("/login", data={"token": ADMIN_TOKEN, "csrf": csrf, "next": target})
        assert r.headers["Location"] == "/"
        csrf = csrf_of(client.get("/keys").text)


def test_the_session_secret_comes_from_the_admin_token_or_a_kept_file(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = app.config["GATEWAY_SETTINGS"]
    assert app.secret_key == session_secret(settings) and ADMIN_TOKEN not in str(app.secret_key)
    monkeypatch.chdir(tmp_path)
    bare = type(settings)(database_url=settings.database_url)
    first = session_secret(bare)
    assert len(first) == 64 and session_secret(bare) == first  # kept in var/ui-secret


def test_repeated_bad_logins_are_slowed_down_even_for_the_right_key(
    client: FlaskClient,
) -> None:
    csrf = csrf_of(client.get("/login").text)
    for _ in range(10):
        r = client.post("/login", data={"token": "wrong-key-0123456789", "csrf": csrf})
        assert r.status_code == 401
    r = client.post("/login", data={"token": ADMIN_TOKEN, "csrf": csrf})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert "try again" in r.text and client.get("/").status_code == 302  # not logged in


def test_a_key_that_logged_in_before_from_this_address_is_not_locked_out(
    client: FlaskClient,
) -> None:
    csrf = csrf_of(client.get("/login").text)
    assert client.post("/login", data={"token": ADMIN_TOKEN, "csrf": csrf}).status_code == 302
    client.post("/logout", data={"csrf": csrf_of(client.get("/").text)})
    csrf = csrf_of(client.get("/login").text)
    for _ in range(10):
        client.post("/login", data={"token": "wrong-key-0123456789", "csrf": csrf})
    wrong = client.post("/login", data={"token": "wrong-key-0123456789", "csrf": csrf})
    assert wrong.status_code == 429
    r = client.post("/login", data={"token": ADMIN_TOKEN, "csrf": csrf})
    assert r.status_code == 302 and client.get("/").status_code == 200
