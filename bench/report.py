"""Write bench/results/latest.md from bench/results/runs.jsonl (the latest run of each case).

python bench/report.py [--since 2026-11-23T10:40]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
SYSTEMS = ("gateway", "apscheduler", "cron-curl")


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    free = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.strip()
    return f"nproc {os.cpu_count()}, CPU {model}\n\n```\n{free}\n```"


def label(r: dict[str, Any]) -> str:
    if r["system"] == "gateway" and "workers" in r:
        senders = f", {r['senders']} senders" if r.get("senders") else ""
        return f"gateway (workers {r['workers']}{senders})"
    return {"apscheduler": "APScheduler 3.11 (20 threads)", "cron-curl": "cron + curl"}.get(
        r["system"], r["system"]
    )


def timed_rows(runs: list[dict[str, Any]]) -> list[str]:
    out = [
        "| scenario | system | code | window | lateness p50 / p95 / p99 / max (ms)"
        " | tick spread p50 / max (ms) | lost | dup | CPU s (ms/call) | peak MB"
        " | run rows = calls | other load | run took |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lat, spread = r["lateness_ms"], r["tick_spread_ms"]
        rows = r.get("run_rows")
        match = "—" if rows is None else ("yes" if r.get("rows_match_calls") else f"no {rows}")
        if rows and r["system"] == "gateway" and set(rows) - {"success"}:
            match += " " + ", ".join(f"{k} {v}" for k, v in rows.items() if k != "success")
        out.append(
            f"| {r['scenario']} | {label(r)} | {code(r)} | {r['window'][1] - r['window'][0]} s "
            f"| {lat['p50']:.0f} / {lat['p95']:.0f} / {lat['p99']:.0f} / {lat['max']:.0f} "
            f"| {spread['p50']:.0f} / {spread['max']:.0f} "
            f"| {r['lost']} of {r['expected']} ({r['lost_pct']}%) | {r['duplicates']} "
            f"| {r['cpu_s']} ({r['cpu_ms_per_call']}) | {r['memory_mb'].get('VmHWM')} "
            f"| {match} | {_noise(r)} | {r['took_s']} s |"
        )
    return out


def code(r: dict[str, Any]) -> str:
    """Return the gateway code measured: a pinned commit, or the working tree at HEAD."""
    if r["system"] != "gateway":
        return "—"
    c = r.get("code") or {}
    if c.get("rev"):
        return f"`{c['rev']}`"
    hot = [f for f in c.get("gateway_dirty", []) if "/scheduler/" in f or "/store/" in f]
    return f"tree `{c.get('head')}`" + (" + uncommitted " + ", ".join(hot) if hot else "")


def _noise(r: dict[str, Any]) -> str:
    noise = r.get("noise")
    if not noise:
        return "not measured"
    return f"{noise['other_cpu_pct']}% CPU, load {noise['load_average']}"


def idle_rows(runs: list[dict[str, Any]]) -> list[str]:
    out = [
        "| system | code | load 100k schedules | start until working | idle CPU over 30 s"
        " (5 s after start; later) | peak MB"
        " / RSS MB | notes | other load | run took |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        if r["system"] == "gateway":
            load = f"{r['load_s']} s (bulk rows; create_job {r.get('create_job_ms')} ms/job)"
            notes = f"SQLite file {r.get('db_mb')} MB"
            if sync := r.get("sync_file"):
                fresh, again = sync["fresh"], sync["unchanged"]
                load += (
                    f"; jobs file: `sync` {fresh['s']} s ({fresh['peak_mb']} MB), "
                    f"unchanged {again['s']} s"
                )
        else:
            load = f"{r.get('add_s')} s (add_job x 100k, running scheduler)"
            notes = "MemoryJobStore"
        mem = r["memory_mb"]
        later = ""
        if r.get("steady_cpu_pct") is not None:
            later = f"; {r['steady_cpu_pct']}% from {r['steady_after_s']} s"
        out.append(
            f"| {label(r)} | {code(r)} | {load} | {r['ready_s']} s | {r['idle_cpu_s']} s "
            f"({r['idle_cpu_pct']}%){later} | {mem.get('VmHWM')} / {mem.get('VmRSS')} | {notes} "
            f"| {_noise(r)} | {r['took_s']} s |"
        )
    return out


def endpoint_rows(r: dict[str, Any]) -> list[str]:
    out = [
        "| route (gunicorn -w 2 -k gthread --threads 8) | req/s | p50 ms | p99 ms | statuses |",
        "|---|---|---|---|---|",
    ]
    for name in ("bare", "protected"):
        c = r[name]
        out.append(
            f"| {name} | {c['req_per_s']} | {c['p50_ms']} | {c['p99_ms']} | {c['statuses']} |"
        )
    out.append(f"\nProtected costs **{r['p50_extra_ms']} ms more at p50** ({r['took_s']} s run).")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--since", default="")
    parser.add_argument("--out", default=str(RESULTS / "latest.md"))
    parser.add_argument("--notes", default=None, help="a markdown file appended at the end")
    args = parser.parse_args()
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for line in (RESULTS / "runs.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["scenario"] in ("endpoint-cpu", "client-cpu"):  # in process, not a sitting row
            continue
        if r["when"] >= args.since:
            window = r["window"][1] - r["window"][0] if "window" in r else None
            pinned = (r.get("code") or {}).get("rev")
            case = (r["scenario"], r["system"], r.get("workers"), r.get("senders"), window, pinned)
            latest[case] = r
    order = ["same-100", "same-1000", "rate-5000", "spread-10000"]
    timed = sorted(
        (r for r in latest.values() if r["scenario"] in order),
        key=lambda r: (
            order.index(r["scenario"]),
            SYSTEMS.index(r["system"]),
            bool(r["code"].get("rev")),
            r.get("workers", 0),
            r.get("senders") or 0,
            r["window"][0],
        ),
    )
    idle = [r for r in latest.values() if r["scenario"] == "idle-100k"]
    endpoint = [r for r in latest.values() if r["scenario"] == "endpoint"]
    target = [
        json.loads(x)
        for x in (RESULTS / "target.jsonl").read_text().splitlines()
        if x.startswith("{")
    ]
    when = max((r["when"] for r in latest.values()), default="?")
    codes = sorted({json.dumps(r.get("code")) for r in latest.values()})
    lines = [
        "# Bench results",
        "",
        f"Latest run: {when} (UTC). Machine: {machine()}",
        "",
        "Gateway code measured (HEAD, and a hash of uncommitted changes under gateway/):",
        *[f"- `{c}`" for c in codes],
        "",
        "## Target capacity",
        "",
        "`python bench/target.py --selftest` (2 load processes x 8 keep-alive http.client threads"
        " on the same 2 cores):",
        "",
        *[
            f"- {t['req_per_s']} req/s ({t['requests']} requests, {t['recorded']} recorded),"
            f" target CPU {t['target_cpu_us_per_req']} µs/request"
            for t in target[-1:]
        ],
        "",
        "## Timed scenarios (every job = one HTTP call + one run row in SQLite)",
        "",
        *timed_rows(timed),
        "",
        "## 100,000 schedules held, none due",
        "",
        *idle_rows(idle),
        "",
        "## Protected endpoint vs bare Flask route",
        "",
        *(endpoint_rows(endpoint[-1]) if endpoint else ["(not run)"]),
        "",
        "## Commands",
        "",
        "```",
        "python bench/target.py --selftest --port 18099",
        *sorted({r["command"] for r in latest.values()}),
        "python bench/report.py",
        "```",
    ]
    if args.notes:
        lines += ["", Path(args.notes).read_text().rstrip()]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
