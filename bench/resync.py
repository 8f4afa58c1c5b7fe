"""What the gateway's periodic resync costs with a large jobs file, in one process.

    python bench/resync.py [--jobs 100000]

Writes a jobs file declaring the idle scenario's jobs, serves an empty manifest on 127.0.0.1,
and runs the gateway's Resync three times against a fresh SQLite file: the start-up sync
(creates every job), the next one (applies in full: the first changed the store), and a
resync with nothing changed, passed over. Prints wall and CPU seconds of each, and the
process's peak RSS after each (cumulative: ru_maxrss). Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import resource
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import write_jobs_file  # noqa: E402
from bench.scenarios import SCENARIOS  # noqa: E402
from gateway.config import load_settings  # noqa: E402
from gateway.scheduler.resync import Resync  # noqa: E402
from gateway.store.db import ensure_open  # noqa: E402


class EmptyManifest(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        body = b'{"jobs": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=SCENARIOS["idle-100k"].jobs)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EmptyManifest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    app = f"http://127.0.0.1:{server.server_port}"
    with tempfile.TemporaryDirectory(prefix="bench-resync-") as work:
        jobs_file = Path(work) / "jobs.toml"
        scenario = replace(SCENARIOS["idle-100k"], jobs=args.jobs)
        write_jobs_file(scenario, jobs_file, app)
        file_mb = round(jobs_file.stat().st_size / 2**20, 1)
        settings = load_settings(
            {
                "GATEWAY_DATABASE_URL": f"sqlite:///{work}/gateway.db",
                "GATEWAY_JOBS_FILE": str(jobs_file),
                "GATEWAY_APP_URL": app,
                "GATEWAY_ALLOWED_TARGETS": "127.0.0.1",
                "GATEWAY_CONFIG": os.path.join(work, "none.toml"),
            }
        )
        ensure_open(settings.database_url)
        resync = Resync(settings)
        phases = {}
        for tick, label in enumerate(("start-up", "next (in full)", "unchanged (passed over)")):
            wall, cpu = time.perf_counter(), time.process_time()
            report = resync.run(lambda: datetime.now(UTC), tick=float(tick))
            phases[label] = {
                "wall_s": round(time.perf_counter() - wall, 3),
                "cpu_s": round(time.process_time() - cpu, 3),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "applied": report is not None,
                "created": len(report.created) if report else 0,
                "unchanged": len(report.unchanged) if report else 0,
            }
    server.shutdown()
    print(json.dumps({"jobs": args.jobs, "file_mb": file_mb, "phases": phases}, indent=2))


if __name__ == "__main__":
    main()
