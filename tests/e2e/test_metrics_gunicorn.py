"""/metrics from a real gunicorn with two workers: every scrape says the same, whoever answers.

The store figures are read from the database; the HTTP counters are summed over the workers'
files in PROMETHEUS_MULTIPROC_DIR (set by config/gunicorn.conf.py, per master, removed at exit).
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.procs import Server
from tests.e2e.procs import gunicorn_workers
from tests.e2e.procs import wait_until

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def calls_counted(samples: Samples) -> float:
    """POST /crons/<name> requests answered, whatever their status (200, or 409 on overlap)."""
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "cron_gateway_http_requests_total" and ("route", "/crons/<name>") in labels
    )


def runs_counted(samples: Samples) -> float:
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "cron_gateway_runs_last_hour" and ("job", "fast") in labels
    )


def scrape(server: Server) -> Samples:
    """One scrape on a new connection (so any worker may answer), without per-scrape figures."""
    response = requests.get(server.url + "/metrics", headers={"Connection": "close"}, timeout=10)
    assert response.status_code == 200, response.text
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            labels = tuple(sorted(s.labels.items()))
            if s.name == "cron_gateway_scrape_store_seconds" or ("route", "/metrics") in labels:
                continue
            samples[(s.name, labels)] = s.value
    return samples


def call_fast(server: Server, times: int, parallel: int = 8) -> None:
    """Call /crons/fast `times` times from `parallel` threads, each on a new connection."""
    errors: list[int] = []

    def worker(n: int) -> None:
        for _ in range(n):
            r = server.call(
                "/crons/fast", headers={"X-Cron-Token": server.token, "Connection": "close"}
            )
            if r.status_code not in (200, 409):  # 409: the job was running in another call
                errors.append(r.status_code)

    threads = [threading.Thread(target=worker, args=(times // parallel,)) for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors


def metrics_dir(server: Server) -> Path:
    return Path(tempfile.gettempdir()) / f"cron-gateway-metrics-{server.proc.pid}"


def counted_by(directory: Path) -> set[int]:
    """The pids that wrote counters into the multiprocess directory."""
    return {int(p.stem.split("_")[-1]) for p in directory.glob("counter_*.db")}


def test_every_worker_answers_the_same_figures(start_server: Callable[..., Server]) -> None:
    server = start_server(GATEWAY_WEB_THREADS="2")
    directory = metrics_dir(server)
    assert directory.is_dir()  # made by the master (config/gunicorn.conf.py), per master pid
    workers = set(gunicorn_workers(server.proc.pid))
    total = 0
    while not workers <= counted_by(directory):  # until both workers have served some calls
        call_fast(server, 16)
        total += 16
        assert total <= 320, f"only {counted_by(directory)} of {workers} ever answered"
    call_fast(server, 8, parallel=2)
    total += 8

    scrapes = [scrape(server) for _ in range(20)]

    assert all(s == scrapes[0] for s in scrapes), "two scrapes disagree"
    figures = scrapes[0]
    assert calls_counted(figures) == total  # summed over both workers
    assert runs_counted(figures) == total  # read from the database
    assert figures[("cron_gateway_database_up", ())] == 1

    # A worker killed with -9 is replaced; what it counted is still in the sum.
    victim = sorted(workers)[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: len(set(gunicorn_workers(server.proc.pid)) - {victim}) == 2 or None,
        20,
        "a replacement worker",
    )
    assert calls_counted(scrape(server)) == total

    server.proc.stop(signal.SIGTERM)
    assert not directory.exists()  # removed when the master exits


def test_a_given_multiprocess_directory_is_used_and_kept(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    directory = tmp_path / "prom"
    server = start_server(PROMETHEUS_MULTIPROC_DIR=str(directory))
    call_fast(server, 4, parallel=2)
    assert calls_counted(scrape(server)) == 4
    assert counted_by(directory)
    server.proc.stop(signal.SIGTERM)
    assert directory.is_dir()  # the operator's directory: not ours to remove
