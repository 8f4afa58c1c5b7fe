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

# /metrics in multiprocess mode: each worker writes its counters to files in one directory,
# and a scrape sums them, whichever worker answers. The directory belongs to this gunicorn
# (per master pid) unless PROMETHEUS_MULTIPROC_DIR names one; it must be set before a worker
# imports prometheus_client, hence here, in the master.
_metrics_dir_ours = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _metrics_dir_ours:
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(
        tempfile.gettempdir(), f"cron-gateway-metrics-{os.getpid()}"
    )


def on_starting(server: object) -> None:
    """Start from an empty metrics directory: files of an earlier master are stale."""
    import shutil

    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    if _metrics_dir_ours:
        shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)


def child_exit(server: object, worker: object) -> None:
    """Drop a dead worker's live gauges (its counters stay summed in, as Prometheus expects)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]


def on_exit(server: object) -> None:
    if _metrics_dir_ours:
        import shutil

        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
