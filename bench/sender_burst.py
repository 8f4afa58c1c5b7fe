"""A burst of calls due together out of the sender processes alone: no database, no loop.

    python bench/sender_burst.py [--calls 100] [--senders 2] [--bursts 8] [--port 18113]
    python bench/sender_burst.py --senders 0      # the in-process Dispatcher and its threads

Starts the recording target, then a SenderPool (or, with --senders 0, the gateway's own
Dispatcher of call threads) and hands it, a quarter second ahead as the loop does, --calls
runs due at the same second, --bursts times. Prints each burst's first, median and last
arrival after the slot, then the lateness p50 / p99 over the bursts after the first two
(warm), and appends the figures to bench/results/runs.jsonl (scenario `sender-burst`). It
isolates the cost of sending from the gateway's database work. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.request
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import append_in_process_result  # noqa: E402
from bench.run import percentile  # noqa: E402
from bench.target import serving  # noqa: E402
from gateway import outbound  # noqa: E402
from gateway.clock import SYSTEM_CLOCK  # noqa: E402
from gateway.config import load_settings  # noqa: E402
from gateway.scheduler.caller import Caller  # noqa: E402
from gateway.scheduler.dispatch import Dispatcher  # noqa: E402
from gateway.scheduler.senders import SenderPool  # noqa: E402
from gateway.scheduler.sending import Sender  # noqa: E402
from gateway.scheduler.sending import Sent  # noqa: E402
from gateway.store.claims import Dispatch  # noqa: E402

TOKEN = "bench-burst-token-0123456789abcdef"
WORKERS = 32  # as in bench/suite.sh


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--bursts", type=int, default=8)
    parser.add_argument("--port", type=int, default=18113)
    args = parser.parse_args()
    with serving(args.port):
        lateness = _bursts(args.port, args.calls, args.senders, args.bursts)
    figures = {"p50": round(percentile(lateness, 50), 1), "p99": round(percentile(lateness, 99), 1)}
    print(f"lateness over the warm bursts: p50 {figures['p50']} ms, p99 {figures['p99']} ms")
    system = f"{args.senders} senders" if args.senders else "in-process threads"
    append_in_process_result(
        "sender-burst", system, {"calls": args.calls, "bursts": args.bursts} | figures
    )


def _bursts(port: int, calls: int, senders: int, bursts: int) -> list[float]:
    settings = load_settings(
        {
            "GATEWAY_CRON_TOKEN": TOKEN,
            "GATEWAY_APP_URL": f"http://127.0.0.1:{port}",
            "GATEWAY_ALLOWED_TARGETS": "127.0.0.1",
        }
    )
    answered = threading.Semaphore(0)

    def on_sent(sent: Sent) -> None:
        answered.release()

    pool: SenderPool | Dispatcher
    if senders:
        pool = SenderPool(
            settings, TOKEN, on_sent, processes=senders, workers=WORKERS, per_host=WORKERS
        )
        while not pool.ready:
            time.sleep(0.1)
    else:
        sender = Sender(settings, TOKEN, Caller(outbound.pools_for(settings)), SYSTEM_CLOCK)
        pool = Dispatcher(lambda d: on_sent(sender(d)), WORKERS, WORKERS)
    warm: list[float] = []
    try:
        for burst in range(bursts):
            due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
            runs = [_dispatch(port, burst * calls + n, n, due) for n in range(calls)]
            time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds() - 0.25))
            pool.submit_all(runs)
            for _ in range(calls):
                answered.acquire(timeout=30)
            arrivals = sorted(_arrivals_ms(port, due))
            if burst >= 2:
                warm += arrivals
            print(
                f"burst {burst}: {len(arrivals)} calls, first {arrivals[0]:.1f} ms, "
                f"median {arrivals[len(arrivals) // 2]:.1f}, last {arrivals[-1]:.1f}"
            )
    finally:
        pool.close()
    return warm


def _dispatch(port: int, run_id: int, n: int, due: datetime) -> Dispatch:
    return Dispatch(
        run_id=run_id,
        execution_id=f"burst-{run_id}",
        attempt=1,
        trigger="schedule",
        scheduled_for=due,
        job=f"j{n}",
        url=f"http://127.0.0.1:{port}/t/j{n}",
        method="POST",
        headers={},
        payload=None,
        timeout_s=30.0,
        due_at=due,
    )


def _arrivals_ms(port: int, due: datetime) -> list[float]:
    """Return each call's arrival after `due` in ms, and clear the target's records."""
    base = f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(f"{base}/__records", timeout=30) as r:
        records = json.load(r)
    urllib.request.urlopen(urllib.request.Request(f"{base}/__reset", method="POST"), timeout=30)
    return [(r[0] / 1e9 - due.timestamp()) * 1000 for r in records if r[1].startswith("/t/")]


if __name__ == "__main__":
    main()
