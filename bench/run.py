"""The bench driver: run one scheduler under test against the recording target and measure it.

    python bench/run.py same-1000 --system gateway --workers 64 --seconds 60
    python bench/run.py same-1000 --system apscheduler
    python bench/run.py same-1000 --system cron-curl
    python bench/run.py idle-100k --system gateway
    python bench/run.py endpoint

Timed scenarios: the target starts, the system starts and gets ready, the window opens at the
next 5 s boundary at least 2 s later and lasts --seconds; calls for slots in the window are
compared with the expected (job, slot) pairs. The system is stopped (SIGTERM) --drain seconds
after the window. CPU is utime+stime+cutime+cstime of the system's process over the window
(/proc/<pid>/stat) plus utime+stime of its live descendants (cron's running shells and curls),
memory their VmHWM summed. Each result is printed as JSON and appended to
bench/results/runs.jsonl.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# --code REV: the gateway package comes from a snapshot of that commit, not the working tree.
CODE = os.environ.get("BENCH_GATEWAY_CODE")
if CODE:
    sys.path.insert(0, CODE)

from bench.scenarios import SCENARIOS  # noqa: E402
from bench.scenarios import Scenario  # noqa: E402
from bench.scenarios import cron_expr  # noqa: E402
from bench.scenarios import expected_slots  # noqa: E402
from bench.scenarios import job_name  # noqa: E402
from bench.target import wait_ready  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CREATE_JOB_MS: list[float] = []  # idle: ms per create_job on a sample
TOKEN = "cg_bench_" + "x" * 32
CLK = os.sysconf("SC_CLK_TCK")


# -- process measurements -----------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def descendants(pid: int) -> list[int]:
    """Return the live processes under `pid` (the gateway's sender processes, say)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents.setdefault(int(_stat(int(entry))[1]), []).append(int(entry))
            except (OSError, IndexError):
                continue  # gone meanwhile
    found, todo = [], list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo += parents.get(child, [])
    return found


def cpu_seconds(pid: int) -> float:
    """Return utime+stime+cutime+cstime of `pid` (children that were reaped included), plus
    utime+stime of its live descendants."""
    total = sum(int(x) for x in _stat(pid)[11:15])
    for child in descendants(pid):
        try:
            total += sum(int(x) for x in _stat(child)[11:13])
        except OSError:
            continue
    return total / CLK


def machine_busy() -> float:
    """Return the CPU seconds the whole machine has been busy (all cores, /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / CLK  # minus idle and iowait


def load_average() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def memory_mb(pid: int) -> dict[str, float]:
    """Return VmHWM (peak) and VmRSS in MB of `pid` plus its live descendants (summed: the
    peaks of several processes need not coincide, so that is an upper bound)."""
    out: dict[str, float] = {}
    tree = [pid, *descendants(pid)]
    for one in tree:
        try:
            with open(f"/proc/{one}/status") as f:
                for line in f:
                    if line.startswith(("VmHWM", "VmRSS")):
                        key = line.split(":")[0]
                        out[key] = round(out.get(key, 0.0) + int(line.split()[1]) / 1024, 1)
        except OSError:
            continue
    out["processes"] = len(tree)
    return out


def percentile(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


# -- the target ---------------------------------------------------------------------------------


class Target:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "target.py"), "--port", str(port)],
            stdout=subprocess.DEVNULL,
        )
        wait_ready(port)

    def records(self) -> list[list[Any]]:
        with urllib.request.urlopen(self.url + "/__records", timeout=60) as r:
            return json.load(r)

    def count(self) -> int:
        with urllib.request.urlopen(self.url + "/__count", timeout=10) as r:
            return int(r.read())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def slot_seconds(value: str | None) -> float | None:
    if not value:
        return None
    if "T" in value:
        return datetime.fromisoformat(value).timestamp()
    return float(value)


def analyze(scenario: Scenario, records: list[list[Any]], start: int, end: int) -> dict[str, Any]:
    """Compare the calls for slots in [start, end) with the expected (job, slot) pairs."""
    expected = expected_slots(scenario, start, end)
    seen: dict[tuple[str, int], int] = {}
    lateness: list[float] = []
    ticks: dict[int, list[float]] = {}
    for arrived_ns, path, slot_text, _ in records:
        if not path.startswith("/t/"):
            continue
        slot = slot_seconds(slot_text)
        if slot is None or not start <= slot < end:
            continue
        key = (path[3:], round(slot))
        seen[key] = seen.get(key, 0) + 1
        arrived = arrived_ns / 1e9
        lateness.append((arrived - slot) * 1000)
        ticks.setdefault(round(slot), []).append(arrived)
    spreads = [(max(v) - min(v)) * 1000 for v in ticks.values()]
    distinct = set(seen)
    return {
        "expected": len(expected),
        "calls": sum(seen.values()),
        "lost": len(expected - distinct),
        "lost_pct": round(100 * len(expected - distinct) / max(1, len(expected)), 2),
        "duplicates": sum(n - 1 for n in seen.values()),
        "unexpected": len(distinct - expected),
        "lateness_ms": {
            "min": round(min(lateness, default=math.nan), 1),  # the first call out
            "p50": round(percentile(lateness, 50), 1),
            "p95": round(percentile(lateness, 95), 1),
            "p99": round(percentile(lateness, 99), 1),
            "max": round(max(lateness, default=math.nan), 1),
        },
        "tick_spread_ms": {
            "p50": round(percentile(spreads, 50), 1),
            "max": round(max(spreads, default=math.nan), 1),
        },
    }


# -- systems under test -------------------------------------------------------------------------


def gateway_env(
    work: Path, target_url: str, workers: int, per_host: int, senders: int = 0
) -> dict[str, str]:
    config = work / "gateway.toml"
    lines = ["[gateway]", f"gateway_workers = {workers}", f"gateway_per_host = {per_host}"]
    if senders:  # not written when 0: a --code commit before the setting would refuse it
        lines.append(f"gateway_senders = {senders}")
    config.write_text("\n".join(lines) + "\n")
    env = dict(os.environ)
    env.update(
        GATEWAY_CONFIG=str(config),
        GATEWAY_DATABASE_URL=f"sqlite:///{work / 'gateway.db'}",
        GATEWAY_APP_URL=target_url,
        GATEWAY_ALLOWED_TARGETS="127.0.0.1",
        GATEWAY_CRON_TOKEN=TOKEN,
        GATEWAY_JOBS_FILE=str(work / "no-jobs.toml"),
        PYTHONPATH=os.pathsep.join(p for p in (CODE, str(ROOT)) if p),
    )
    return env


def load_gateway_jobs(scenario: Scenario, env: dict[str, str], target_url: str) -> float:
    """Write the scenario's jobs into the fresh database; return the seconds it took.

    The first job goes through create_job (validation, next_run_at); the others are bulk
    copies of its row with their own name, URL, schedule and next slot.
    """
    from gateway.config import load_settings
    from gateway.schedule import Schedule
    from gateway.store.db import database
    from gateway.store.db import ensure_open
    from gateway.store.jobs import create_job
    from gateway.store.models import Job

    try:
        from gateway.store.bulk import insert_models
    except ImportError:
        insert_models = None  # type: ignore[assignment]
    settings = load_settings(env)
    started = time.monotonic()
    ensure_open(settings.database_url)
    now = datetime.now(UTC)
    first = create_job(
        {
            "name": job_name(0),
            "url": f"{target_url}/t/{job_name(0)}",
            "schedule": cron_expr(scenario, 0, now),
        },
        now,
        settings=settings,
    )
    template = {k: v for k, v in first.__data__.items() if k != "id"}
    bulk_from = 1
    if scenario.kind == "idle":  # the API's path, one job at a time, on a sample of 500
        sample = time.monotonic()
        for i in range(1, 501):
            create_job(
                {
                    "name": job_name(i),
                    "url": f"{target_url}/t/{job_name(i)}",
                    "schedule": cron_expr(scenario, i, now),
                },
                now,
                settings=settings,
            )
        CREATE_JOB_MS.append(1000 * (time.monotonic() - sample) / 500)
        bulk_from = 501
    nexts: dict[str, datetime] = {}
    rows = []
    for i in range(bulk_from, scenario.jobs):
        expr = cron_expr(scenario, i, now)
        if expr not in nexts:
            nexts[expr] = Schedule(expr, "UTC").next_times(now, 1)[0].astimezone(UTC)
        rows.append(
            template
            | {
                "name": job_name(i),
                "url": f"{target_url}/t/{job_name(i)}",
                "schedule": expr,
                "next_run_at": nexts[expr],
            }
        )
    with database.atomic():  # the store's bulk insert, the one `sync` uses for new jobs
        if insert_models is not None:
            insert_models([Job(**row) for row in rows])
        else:  # --code of a commit before gateway.store.bulk
            for k in range(0, len(rows), 500):
                Job.insert_many(rows[k : k + 500]).execute()
    elapsed = time.monotonic() - started
    database.close()
    return elapsed


def gateway_runs(env: dict[str, str], start: int, end: int) -> dict[str, int]:
    """Count the run rows for slots in [start, end), by status."""
    from peewee import fn

    from gateway.store.db import close_database
    from gateway.store.db import ensure_open
    from gateway.store.models import Run

    close_database()
    ensure_open(env["GATEWAY_DATABASE_URL"])
    lo = datetime.fromtimestamp(start, UTC)
    hi = datetime.fromtimestamp(end, UTC)
    query = (
        Run.select(Run.status, fn.COUNT(Run.id))
        .where((Run.scheduled_for >= lo) & (Run.scheduled_for < hi))
        .group_by(Run.status)
        .tuples()
    )
    return {status: n for status, n in query}


class System:
    """A scheduler under test in its own process; `ready()` blocks until it works."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path, ready: str) -> None:
        self.log = log
        self.ready_text = ready
        self.handle = log.open("w")
        self.proc = subprocess.Popen(
            command, env=env, stdout=self.handle, stderr=subprocess.STDOUT, cwd=CODE or ROOT
        )
        self.started = time.monotonic()

    def ready(self, timeout: float = 600) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_text in self.log.read_text(errors="replace"):
                return time.monotonic() - self.started
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.log} ended: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"not ready after {timeout} s: {self.log}")

    def stop(self, timeout: float = 60) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.handle.close()

    def line(self, prefix: str) -> dict[str, Any]:
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith(prefix + " "):
                return json.loads(line[len(prefix) + 1 :])
        return {}


def start_system(
    name: str, scenario: Scenario, work: Path, target: Target, args: argparse.Namespace
) -> tuple[System, dict[str, Any]]:
    py = sys.executable
    info: dict[str, Any] = {}
    if name == "gateway":
        env = gateway_env(work, target.url, args.workers, args.per_host, args.senders)
        info["load_s"] = round(load_gateway_jobs(scenario, env, target.url), 2)
        if CREATE_JOB_MS:
            info["create_job_ms"] = round(CREATE_JOB_MS[0], 2)
        info["workers"], info["per_host"] = args.workers, args.per_host
        info["senders"] = args.senders
        system = System(
            [py, "-m", "gateway", "scheduler"], env, work / "gateway.log", "is now active"
        )
        system.env = env  # type: ignore[attr-defined]
    elif name == "apscheduler":
        command = [
            py,
            str(ROOT / "bench/peers/apscheduler_peer.py"),
            scenario.name,
            "--url",
            target.url,
            "--db",
            str(work / "aps.db"),
        ]
        system = System(command, dict(os.environ), work / "aps.log", "ready ")
    elif name == "cron-curl":
        command = [py, str(ROOT / "bench/peers/cron_curl.py"), scenario.name, "--url", target.url]
        system = System(command, dict(os.environ), work / "cron.log", "ready ")
    else:
        raise SystemExit(f"unknown system {name!r}")
    info["ready_s"] = round(system.ready(), 2)
    info |= system.line("ready")
    return system, info


def sleep_until(t: float) -> None:
    while (delay := t - time.time()) > 0:
        time.sleep(min(delay, 0.5))


def run_timed(scenario: Scenario, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    target = Target(args.port)
    profiler = None
    try:
        system, info = start_system(args.system, scenario, work, target, args)
        start = math.ceil((time.time() + 2) / 5) * 5
        end = start + args.seconds
        sleep_until(start)
        cpu0 = cpu_seconds(system.proc.pid)
        busy0, target0, t0 = machine_busy(), cpu_seconds(target.proc.pid), time.monotonic()
        if args.profile:
            profiler = start_profiler(system.proc.pid, args.seconds, args.profile)
        sleep_until(end + (args.drain or scenario.drain))
        cpu = cpu_seconds(system.proc.pid) - cpu0
        target_cpu = cpu_seconds(target.proc.pid) - target0
        others = machine_busy() - busy0 - cpu - target_cpu
        noise = {
            "other_cpu_pct": round(100 * others / (time.monotonic() - t0) / (os.cpu_count() or 1)),
            "load_average": load_average(),
        }
        mem = memory_mb(system.proc.pid)
        system.stop()
        if profiler is not None:
            profiler.wait()
        result = analyze(scenario, target.records(), start, end)
        result |= info
        result["cpu_s"] = round(cpu, 2)
        result["cpu_ms_per_call"] = round(1000 * cpu / max(1, result["calls"]), 3)
        result["memory_mb"] = mem
        result["noise"] = noise  # other processes' share of the machine during the window
        if args.system == "gateway":
            rows = gateway_runs(system.env, start, end)  # type: ignore[attr-defined]
            result["run_rows"] = rows
            result["rows_match_calls"] = rows.get("success", 0) == result["calls"]
        if args.system == "apscheduler":
            import sqlite3

            db = sqlite3.connect(work / "aps.db")
            (n,) = db.execute(
                "SELECT COUNT(*) FROM run WHERE scheduled_for >= ? AND scheduled_for < ?",
                (start, end),
            ).fetchone()
            result["run_rows"] = {"success": n}
            result["rows_match_calls"] = n == result["calls"]
            result["misfires_logged"] = system.log.read_text().count("was missed by")
            result["max_instances_logged"] = system.log.read_text().count(
                "maximum number of running instances"
            )
        if args.system == "cron-curl":
            result["cron"] = system.line("stats")
        result["window"] = [start, end]
        return result
    finally:
        target.close()


def start_profiler(pid: int, seconds: int, out: str) -> subprocess.Popen[bytes]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--rate",
            "200",
            "--format",
            "raw",
            "-o",
            out,
            "--nonblocking",
            *os.environ.get("BENCH_PYSPY_ARGS", "").split(),
        ],  # e.g. --gil: only GIL holders
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# -- idle ---------------------------------------------------------------------------------------


_PEAK_AT_EXIT = (
    "import atexit, runpy, sys; "
    "atexit.register(lambda: sys.stderr.write(open('/proc/self/status').read())); "
    "sys.argv[0] = 'gateway'; runpy.run_module('gateway', run_name='__main__')"
)


def write_jobs_file(scenario: Scenario, path: Path, target_url: str) -> None:
    """Write a jobs file declaring the scenario's jobs, each calling `target_url`/t/<name>."""
    now = datetime.now(UTC)
    with path.open("w") as f:
        for i in range(scenario.jobs):
            name = job_name(i)
            f.write(
                f'[[job]]\nname = "{name}"\nurl = "{target_url}/t/{name}"\n'
                f'schedule = "{cron_expr(scenario, i, now)}"\n\n'
            )


def sync_jobs_file(scenario: Scenario, work: Path) -> dict[str, Any]:
    """Time `python -m gateway sync` of a jobs file declaring the scenario's jobs: the
    product's path for declaring many jobs at once. On a fresh database, then again with
    nothing changed (what the gateway does every few minutes). Returns seconds and peak MB."""
    folder = work / "sync"
    folder.mkdir()
    write_jobs_file(scenario, folder / "jobs.toml", "http://127.0.0.1:9")
    env = gateway_env(folder, "http://127.0.0.1:9", 1, 1)  # no app: its manifest is an error
    env["GATEWAY_DATABASE_URL"] = f"sqlite:///{folder / 'gateway.db'}"
    env["GATEWAY_JOBS_FILE"] = str(folder / "jobs.toml")
    result: dict[str, Any] = {}
    for label in ("fresh", "unchanged"):
        started = time.monotonic()
        # The child prints its own VmHWM at exit: a child's ru_maxrss would include the
        # RSS this process had when it forked.
        proc = subprocess.run(
            [sys.executable, "-c", _PEAK_AT_EXIT, "sync", "--json"],
            env=env,
            capture_output=True,
            check=False,
        )
        if not proc.stdout.strip():  # exit 1 is expected (no app to read); no report is not
            raise SystemExit(f"sync printed no report: {proc.stderr.decode()[-2000:]}")
        report = json.loads(proc.stdout)
        peak = [ln for ln in proc.stderr.decode().splitlines() if ln.startswith("VmHWM:")]
        result[label] = {
            "s": round(time.monotonic() - started, 2),
            "peak_mb": round(int(peak[0].split()[1]) / 1024, 1) if peak else None,
            "created": len(report["created"]),
            "unchanged": len(report["unchanged"]),
        }
    return result


def run_idle(scenario: Scenario, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    target = Target(args.port)
    try:
        system, info = start_system(args.system, scenario, work, target, args)
        started = time.time()
        time.sleep(5)  # settle: the first rounds after start are not idle
        cpu0, busy0 = cpu_seconds(system.proc.pid), machine_busy()
        profiler = None
        if args.profile:
            profiler = start_profiler(system.proc.pid, args.idle_seconds, args.profile)
        time.sleep(args.idle_seconds)
        if profiler is not None:
            profiler.wait()
        cpu = cpu_seconds(system.proc.pid) - cpu0
        others = machine_busy() - busy0 - cpu
        steady = steady_others = None
        if args.steady_after:  # again, once the alert rounds' 2-minute look-back has passed
            sleep_until(started + args.steady_after)
            cpu1, busy1 = cpu_seconds(system.proc.pid), machine_busy()
            if args.profile:
                profiler = start_profiler(
                    system.proc.pid, args.idle_seconds, args.profile + ".later"
                )
            time.sleep(args.idle_seconds)
            if profiler is not None:
                profiler.wait()
            steady = cpu_seconds(system.proc.pid) - cpu1
            steady_others = machine_busy() - busy1 - steady
        result = info | {
            "jobs": scenario.jobs,
            "idle_seconds": args.idle_seconds,
            "idle_cpu_s": round(cpu, 3),
            "idle_cpu_pct": round(100 * cpu / args.idle_seconds, 2),
            "steady_after_s": args.steady_after,
            "steady_cpu_pct": None
            if steady is None
            else round(100 * steady / args.idle_seconds, 2),
            "steady_other_cpu_pct": None
            if steady_others is None
            else round(100 * steady_others / args.idle_seconds / (os.cpu_count() or 1)),
            "memory_mb": memory_mb(system.proc.pid),
            "calls_while_idle": target.count(),
            "noise": {
                "other_cpu_pct": round(100 * others / args.idle_seconds / (os.cpu_count() or 1)),
                "load_average": load_average(),
            },
        }
        if args.system == "gateway":
            result["db_mb"] = round((work / "gateway.db").stat().st_size / 2**20, 1)
        system.stop()
        if args.system == "gateway":
            result["sync_file"] = sync_jobs_file(scenario, work)
        return result
    finally:
        target.close()


# -- endpoint -----------------------------------------------------------------------------------


def load(url: str, headers: dict[str, str], seconds: float, concurrency: int) -> dict[str, Any]:
    """Keep-alive POSTs from `concurrency` threads for `seconds`; latency percentiles, req/s.

    `{k}` in the URL becomes the thread's number (one job per thread: a job never overlaps
    itself, so one job under 8 threads would mostly answer 409)."""
    import http.client
    from urllib.parse import urlsplit

    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    statuses: dict[int, int] = {}
    stop_at = time.monotonic() + seconds

    def worker(k: int) -> None:
        parts = urlsplit(url.format(k=k))
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        while (t0 := time.monotonic()) < stop_at:
            conn.request("POST", parts.path, body=b"", headers=headers)
            response = conn.getresponse()
            response.read()
            latencies[k].append(time.monotonic() - t0)
            statuses[response.status] = statuses.get(response.status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [x * 1000 for lat in latencies for x in lat]
    return {
        "requests": len(every),
        "statuses": statuses,
        "req_per_s": round(len(every) / seconds),
        "p50_ms": round(percentile(every, 50), 2),
        "p99_ms": round(percentile(every, 99), 2),
    }


def run_endpoint(scenario: Scenario, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    database = urlsplit(args.database_url).scheme if args.database_url else "sqlite"
    result: dict[str, Any] = {"seconds": args.seconds, "concurrency": 8, "database": database}
    env = dict(os.environ)
    env.update(
        GATEWAY_DATABASE_URL=args.database_url or f"sqlite:///{work / 'endpoint.db'}",
        GATEWAY_CRON_TOKEN=TOKEN,
        GATEWAY_CONFIG=str(work / "none.toml"),
        PYTHONPATH=os.pathsep.join(p for p in (CODE, str(ROOT)) if p),
    )
    cases = {
        "bare": ("bench.flask_app:bare_app()", "/ping", {}),
        "protected": ("bench.flask_app:protected_app()", "/crons/ping{k}", {"X-Cron-Token": TOKEN}),
    }
    for name, (app, path, headers) in cases.items():
        port = args.port + 1
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "2",
            "-k",
            "gthread",
            "--threads",
            "8",
            "-b",
            f"127.0.0.1:{port}",
            "--pythonpath",
            ",".join(p for p in (CODE, str(ROOT)) if p),
            app,
        ]
        log = (work / f"gunicorn-{name}.log").open("w")
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(port, 30)
            load(f"http://127.0.0.1:{port}{path}", headers, 1.0, 8)  # warm up both workers
            result[name] = load(f"http://127.0.0.1:{port}{path}", headers, args.seconds, 8)
        finally:
            server.terminate()
            server.wait()
            log.close()
    result["p50_extra_ms"] = round(result["protected"]["p50_ms"] - result["bare"]["p50_ms"], 2)
    return result


# -- main ---------------------------------------------------------------------------------------


def code_state() -> dict[str, Any]:
    """Return what gateway code was measured: HEAD and a hash of uncommitted changes to it."""
    import hashlib

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout

    if CODE:
        return {"rev": os.environ["BENCH_CODE_REV"], "gateway_dirty": []}
    diff = git("diff", "HEAD", "--", "gateway")
    return {
        "head": git("rev-parse", "--short", "HEAD").strip(),
        "gateway_diff_sha": hashlib.sha1(diff.encode()).hexdigest()[:10] if diff else None,
        "gateway_dirty": git("diff", "--name-only", "HEAD", "--", "gateway").split()
        + git("ls-files", "--others", "--exclude-standard", "--", "gateway").split(),
    }


def append_in_process_result(scenario: str, system: str, figures: dict[str, Any]) -> None:
    """Append the figures of an in-process measure (bench/endpoint_cpu.py, client_cpu.py) to
    results/runs.jsonl, with when, the command and the code measured."""
    script = Path(sys.argv[0]).name
    record = {
        "scenario": scenario,
        "system": system,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", f"bench/{script}", *sys.argv[1:]]),
        "code": code_state(),
    } | figures
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / "runs.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")


def snapshot_and_exec(rev: str) -> None:
    """Export gateway/ at `rev` to /tmp/bench-code-<sha> and run this command again on it."""
    sha = subprocess.run(
        ["git", "rev-parse", rev], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    code = Path(tempfile.gettempdir()) / f"bench-code-{sha[:12]}"
    if not (code / "gateway").is_dir():
        code.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", sha, "gateway"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(code)], input=archive, check=True)
    env = dict(os.environ, BENCH_GATEWAY_CODE=str(code), BENCH_CODE_REV=sha[:12])
    os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], env)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument(
        "--system", default="gateway", choices=("gateway", "apscheduler", "cron-curl")
    )
    parser.add_argument("--seconds", type=int, default=None, help="window (default 60; endpoint 8)")
    parser.add_argument("--drain", type=float, default=None)
    parser.add_argument(
        "--database-url",
        default=None,
        help="endpoint: the apps' database (default: a fresh SQLite file), e.g.\n"
        "postgresql://postgres@127.0.0.1:5432/bench",
    )
    parser.add_argument("--workers", type=int, default=32, help="gateway_workers")
    parser.add_argument("--per-host", type=int, default=256, help="gateway_per_host")
    parser.add_argument("--senders", type=int, default=0, help="gateway_senders")
    parser.add_argument("--idle-seconds", type=int, default=30)
    parser.add_argument(
        "--steady-after", type=int, default=180, help="idle: measure again this long after start"
    )
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--profile", default=None, help="py-spy raw output file (window)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--code",
        default=None,
        help="measure gateway/ as committed at REV (default: the working tree)",
    )
    args = parser.parse_args()
    if args.code and not CODE:
        snapshot_and_exec(args.code)
    scenario = SCENARIOS[args.scenario]
    if args.seconds is None:
        args.seconds = 8 if scenario.kind == "endpoint" else 60
    work = Path(tempfile.mkdtemp(prefix=f"bench-{scenario.name}-"))
    started = time.monotonic()
    try:
        if scenario.kind == "idle":
            result = run_idle(scenario, args, work)
        elif scenario.kind == "endpoint":
            result = run_endpoint(scenario, args, work)
        else:
            result = run_timed(scenario, args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result = {
        "scenario": scenario.name,
        "system": args.system if scenario.kind != "endpoint" else "gunicorn",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/run.py", *sys.argv[1:]]),
        "took_s": round(time.monotonic() - started, 1),
        "code": code_state(),
    } | result
    print(json.dumps(result, indent=1))
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / "runs.jsonl").open("a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
