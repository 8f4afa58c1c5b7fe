"""The recording HTTP target: answers every call 200 at once and notes when it arrived.

One asyncio process, raw streams, HTTP/1.1 keep-alive. Each call is recorded as
(arrival time.time_ns(), path, X-Cron-Scheduled-For or X-Bench-Slot, X-Cron-Execution-Id).
Control paths: GET /__records (JSON list of every record so far), /__count, POST /__reset;
GET /crons answers an empty manifest (the gateway's sync reads it).

    python bench/target.py --port 18080            # serve until SIGTERM
    python bench/target.py --selftest              # measure its own capacity and exit
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

RECORDS: list[tuple[int, str, str | None, str | None]] = []


def _answer(path: str, execution_id: str | None) -> bytes:
    job = path.rsplit("/", 1)[-1]
    body = (
        b'{"execution_id":"%s","job":"%s","status":"success","duration_ms":0,'
        b'"summary":null,"error":null}' % ((execution_id or "").encode(), job.encode())
    )
    return _response(200, body)


def _response(code: int, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Connection: keep-alive\r\n\r\n%s" % (code, len(body), body)
    )


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            arrived = time.time_ns()
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0") or 0)
            if length:
                await reader.readexactly(length)
            if path.startswith("/__records"):
                out = _response(200, json.dumps(RECORDS).encode())
            elif path.startswith("/__count"):
                out = _response(200, b"%d" % len(RECORDS))
            elif path == "/crons":  # the gateway's manifest sync: no code-declared jobs
                out = _response(200, b'{"jobs":[]}')
            elif path.startswith("/__reset"):
                RECORDS.clear()
                out = _response(200, b"{}")
            else:
                slot = headers.get("x-cron-scheduled-for") or headers.get("x-bench-slot")
                exec_id = headers.get("x-cron-execution-id")
                RECORDS.append((arrived, path, slot, exec_id))
                out = _answer(path, exec_id)
            writer.write(out)
            if headers.get("connection", "").lower() == "close":
                await writer.drain()
                break
            if writer.transport.get_write_buffer_size() > 65536:
                await writer.drain()
    finally:
        writer.close()


async def serve(host: str, port: int, ready: threading.Event | None = None) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = await asyncio.start_server(handle, sock=sock, backlog=4096)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"target listening on http://{host}:{port}", flush=True)
    async with server:
        await stop.wait()


def _client(port: int, n: int, out: list[float]) -> None:
    """One keep-alive client: n GETs with http.client (cheaper than requests)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(n):
        conn.request("GET", f"/t/load-{i}", headers={"X-Bench-Slot": "0"})
        conn.getresponse().read()
    conn.close()
    out.append(time.monotonic())


def _load_process(port: int, threads: int, n: int, queue: object) -> None:
    done: list[float] = []
    workers = [threading.Thread(target=_client, args=(port, n, done)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    queue.put(threads * n)  # type: ignore[attr-defined]


def selftest(port: int, processes: int, threads: int, per_thread: int) -> dict[str, float]:
    """Start the target, hit it from `processes` x `threads` keep-alive clients, return req/s."""
    import multiprocessing as mp
    import subprocess
    import urllib.request

    target = subprocess.Popen(
        [sys.executable, __file__, "--port", str(port)], stdout=subprocess.DEVNULL
    )
    try:
        wait_ready(port)
        q: mp.Queue[int] = mp.Queue()
        started = time.monotonic()
        cpu0 = _cpu(target.pid)
        procs = [
            mp.Process(target=_load_process, args=(port, threads, per_thread, q))
            for _ in range(processes)
        ]
        for p in procs:
            p.start()
        total = sum(q.get() for _ in procs)
        for p in procs:
            p.join()
        elapsed = time.monotonic() - started
        cpu = _cpu(target.pid) - cpu0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/__records") as r:
            recorded = len(json.load(r))
    finally:
        target.terminate()
        target.wait()
    return {
        "requests": total,
        "recorded": recorded,
        "seconds": round(elapsed, 2),
        "req_per_s": round(total / elapsed),
        "target_cpu_s": round(cpu, 2),
        "target_cpu_us_per_req": round(cpu / total * 1e6, 1),
    }


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in parts[11:15]) / os.sysconf("SC_CLK_TCK")


def wait_ready(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"target on port {port} did not start")


@contextlib.contextmanager
def serving(port: int) -> Iterator[None]:
    """Run the target on 127.0.0.1:`port` in its own process for the block (in-process
    measures: bench/client_cpu.py, bench/sender_burst.py)."""
    target = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(port, 30)
        yield
    finally:
        target.terminate()
        target.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--selftest", action="store_true")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2500, help="per client thread")
    args = parser.parse_args()
    if args.selftest:
        result = selftest(args.port, args.processes, args.threads, args.requests)
        print(json.dumps(result))
        return
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
