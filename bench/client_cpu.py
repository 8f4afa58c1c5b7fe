"""What one HTTP call costs in CPU through each client the gateway could use, in one thread.

    python bench/client_cpu.py [--calls 3000] [--port 18111]

Starts the recording target, then makes the same POST (the gateway's X-Cron-* headers, no
body) through `http.client` on one keep-alive connection, through `urllib3.PoolManager`
(streamed body, no retries), through a bare pycurl handle, and through the gateway's own
`Caller` (pycurl plus the outbound checks, redaction and the Outcome). Prints the CPU per
call of each, twice in turn, and appends them to bench/results/runs.jsonl (scenario
`client-cpu`). Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pycurl  # noqa: E402
import urllib3  # noqa: E402

from bench.run import append_in_process_result  # noqa: E402
from bench.target import serving  # noqa: E402
from gateway.scheduler.caller import Caller  # noqa: E402
from gateway.scheduler.caller import CallRequest  # noqa: E402

TOKEN = "bench-client-token-0123456789abcdef"
HEADERS = {
    "X-Cron-Token": TOKEN,
    "X-Cron-Execution-Id": "6f1c0000-0000-0000-0000-000000000000",
    "X-Cron-Trigger": "schedule",
    "X-Cron-Attempt": "1",
    "X-Cron-Scheduled-For": "2026-12-01T00:00:00+00:00",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--port", type=int, default=18111)
    args = parser.parse_args()
    with serving(args.port):
        figures = _measure(args.port, args.calls)
    for name, values in figures.items():
        print(f"{name:16s} " + ", ".join(f"{v:.1f}" for v in values) + " µs CPU per call")
    us_per_call = {name: [round(v, 1) for v in values] for name, values in figures.items()}
    append_in_process_result(
        "client-cpu", "one thread", {"calls": args.calls, "us_per_call": us_per_call}
    )


def _measure(port: int, calls: int) -> dict[str, list[float]]:
    url = f"http://127.0.0.1:{port}/crons/x"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

    def plain() -> None:
        connection.request("POST", "/crons/x", headers=HEADERS)
        connection.getresponse().read()

    pools = urllib3.PoolManager()

    def pooled() -> None:
        response = pools.urlopen(
            "POST", url, headers=HEADERS, retries=False, redirect=False, preload_content=False
        )
        for _ in response.stream(64 * 1024, decode_content=True):
            pass
        response.release_conn()

    handle = pycurl.Curl()
    header_lines = [f"{name}: {value}" for name, value in HEADERS.items()]

    def curl() -> None:
        body: list[bytes] = []
        handle.setopt(pycurl.URL, url)
        handle.setopt(pycurl.POSTFIELDS, b"")
        handle.setopt(pycurl.HTTPHEADER, header_lines)
        handle.setopt(pycurl.WRITEFUNCTION, body.append)
        handle.perform()

    caller = Caller()
    request = CallRequest(method="POST", url=url, headers=dict(HEADERS), secrets=(TOKEN,))

    def gateway() -> None:
        caller.call(request)

    clients = {"http.client": plain, "urllib3": pooled, "pycurl": curl, "gateway Caller": gateway}
    figures: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(2):  # in turn, so a slower moment of the machine is shared
        for name, call in clients.items():
            call()  # connected and warm
            figures[name].append(_cpu_us_per_call(call, calls))
    return figures


def _cpu_us_per_call(call: Callable[[], None], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - started) * 1e6 / calls


if __name__ == "__main__":
    main()
