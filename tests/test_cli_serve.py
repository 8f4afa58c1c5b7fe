"""`up` points the gateway at the app it starts: the URL a bind is reached at."""

from __future__ import annotations

import pytest

from gateway.cli.serve import _local_url


@pytest.mark.parametrize(
    ("bind", "url"),
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("0.0.0.0:9000", "http://127.0.0.1:9000"),
        ("[::]:9000", "http://[::1]:9000"),
        ("localhost:8080", "http://localhost:8080"),
        ("unix:/run/gateway.sock", None),
        ("nonsense", None),
    ],
)
def test_the_app_url_follows_the_bind(bind: str, url: str | None) -> None:
    assert _local_url(bind) == url
