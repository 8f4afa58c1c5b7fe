"""What one call of a protected endpoint costs in CPU, in one process, without gunicorn.

    python bench/endpoint_cpu.py [--calls 2000] [--profile]

Calls `bench.flask_app`'s protected job and bare route through Flask's test client against a
fresh SQLite file, one call after another (no lock waits, no network), and prints the CPU
per call of each and how many SQL statements a protected call runs, and appends them to
bench/results/runs.jsonl (scenario `endpoint-cpu`). With --profile, the top of cProfile's
cumulative table for the protected calls (then nothing is appended: the profiler's overhead
is in the figures). Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN = "bench-endpoint-token-0123456789abcdef"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-endpoint-cpu-"))
    os.environ.update(
        GATEWAY_DATABASE_URL=f"sqlite:///{work / 'endpoint.db'}",
        GATEWAY_CRON_TOKEN=TOKEN,
        GATEWAY_CONFIG=str(work / "none.toml"),
    )
    from bench.flask_app import bare_app
    from bench.flask_app import protected_app
    from gateway.store.db import database

    protected = protected_app().test_client()
    bare = bare_app().test_client()
    headers = {"X-Cron-Token": TOKEN}
    assert protected.post("/crons/ping0", headers=headers).status_code == 200  # warm up
    assert bare.post("/ping").status_code == 200

    one_call = lambda: protected.post("/crons/ping0", headers=headers)  # noqa: E731
    statements = _count_statements(database, one_call)
    bare_ms = _cpu_ms_per_call(lambda: bare.post("/ping"), args.calls)
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    protected_ms = _cpu_ms_per_call(one_call, args.calls)
    if profiler is not None:
        profiler.disable()
    print(f"bare route:         {bare_ms:.3f} ms CPU per call ({args.calls} calls)")
    print(f"protected endpoint: {protected_ms:.3f} ms CPU per call ({args.calls} calls)")
    print(f"protected - bare:   {protected_ms - bare_ms:.3f} ms; {statements} SQL statements")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        return
    from bench.run import append_in_process_result

    figures = {
        "calls": args.calls,
        "bare_cpu_ms": round(bare_ms, 3),
        "protected_cpu_ms": round(protected_ms, 3),
        "protected_statements": statements,
    }
    append_in_process_result("endpoint-cpu", "flask test client", figures)


def _cpu_ms_per_call(call: object, calls: int) -> float:
    assert callable(call)
    started = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - started) * 1000 / calls


def _count_statements(database: object, call: object) -> int:
    """Return how many statements one call sends to SQLite (BEGIN and COMMIT included)."""
    import sqlite3

    assert callable(call)
    connection = database.connection()  # type: ignore[attr-defined]
    assert isinstance(connection, sqlite3.Connection)
    seen: list[str] = []
    connection.set_trace_callback(seen.append)
    try:
        call()
    finally:
        connection.set_trace_callback(None)
    return len(seen)


if __name__ == "__main__":
    main()
