"""cron + curl peer: at each slot, start one `/bin/sh -c "curl ..."` per due job, as cron does.

Real cron fires once a minute at most, so this process plays crond: it sleeps to each second
at which jobs are due and spawns all of them at once (posix_spawn, like cron's fork + exec),
and reaps them in a thread. Each curl sends X-Bench-Slot: the slot's epoch seconds.

    python bench/peers/cron_curl.py SCENARIO --url http://127.0.0.1:18080

Prints `ready {}` at once; on SIGTERM prints `stats {...}`: per tick, the time from the first
spawn to the last exit (the cost of N concurrent curls), and the CPU per fire (sh + curl,
children reaped: cutime + cstime).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.scenarios import SCENARIOS  # noqa: E402
from bench.scenarios import due_jobs  # noqa: E402
from bench.scenarios import job_name  # noqa: E402

_lock = threading.Lock()
_tick_of: dict[int, int] = {}  # pid -> slot
_left: dict[int, int] = {}  # slot -> children still running
_spawned_at: dict[int, float] = {}
_spawn_s: dict[int, float] = {}
_done_s: dict[int, float] = {}


def _reaper(stop: threading.Event) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            if stop.is_set():
                return
            time.sleep(0.01)
            continue
        now = time.monotonic()
        with _lock:
            slot = _tick_of.pop(pid, None)
            if slot is None:
                continue
            _left[slot] -= 1
            if _left[slot] == 0:
                _done_s[slot] = now - _spawned_at[slot]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--url", required=True)
    args = parser.parse_args()
    scenario = SCENARIOS[args.scenario]
    url = args.url.rstrip("/")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    reaper = threading.Thread(target=_reaper, args=(stop,), daemon=True)
    reaper.start()
    fires = 0
    print("ready {}", flush=True)
    second = int(time.time()) + 1
    while not stop.is_set():
        delay = second - time.time()
        if delay > 0 and stop.wait(delay):
            break
        jobs = due_jobs(scenario, second)
        if jobs:
            started = time.monotonic()
            with _lock:
                _spawned_at[second] = started
                _left[second] = 0
            for i in jobs:
                command = (
                    f"curl -s -o /dev/null -X POST -H 'X-Bench-Slot: {second}' "
                    f"{url}/t/{job_name(i)}"
                )
                pid = os.posix_spawn("/bin/sh", ["sh", "-c", command], os.environ)
                with _lock:
                    _tick_of[pid] = second
                    _left[second] += 1
                fires += 1
            _spawn_s[second] = time.monotonic() - started
        second += 1
    deadline = time.monotonic() + 30
    while _tick_of and time.monotonic() < deadline:
        time.sleep(0.05)
    times = os.times()
    stats = {
        "fires": fires,
        "children_cpu_s": round(times.children_user + times.children_system, 3),
        "cpu_per_fire_ms": round(
            (times.children_user + times.children_system) / max(fires, 1) * 1000, 2
        ),
        "spawn_s_per_tick": sorted(round(v, 3) for v in _spawn_s.values()),
        "done_s_per_tick": sorted(round(v, 3) for v in _done_s.values()),
    }
    print("stats " + json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
