"""A real HTTP server on 127.0.0.1 for a Flask app, in a thread of the test process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from werkzeug.serving import make_server


@contextmanager
def serving(app: Flask, tls: tuple[str, str] | None = None) -> Iterator[str]:
    """Serve `app` on a free port of 127.0.0.1 (threaded) and yield its base URL; over HTTPS
    with `tls` (certificate and key files)."""
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=tls)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="test-server", daemon=True
    )
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
