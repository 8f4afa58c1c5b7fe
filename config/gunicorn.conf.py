# gunicorn settings for the web app (python -m gateway web / up).
from __future__ import annotations

import os

bind = os.environ.get("GATEWAY_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GATEWAY_WEB_WORKERS", "2"))
# Threads, not sync workers: with gthread a long blocking or streamed job does not trip the
# worker timeout (that timeout watches the worker's main loop, not each request).
worker_class = "gthread"
threads = int(os.environ.get("GATEWAY_WEB_THREADS", "8"))
timeout = 60
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
# Access log lines go through gateway.logs, which redacts ?cronToken= and bearer tokens.
logger_class = "gateway.logs.RedactingLogger"
control_socket_disable = True  # several gunicorns (tests, replicas) must not share one socket
