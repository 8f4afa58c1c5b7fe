"""`python -m gateway prune|backfill|doctor`: keep the history small, fill gaps, check the setup."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from datetime import datetime

import click

from gateway.backfill import DEFAULT_MAX
from gateway.backfill import BackfillPlan
from gateway.backfill import backfill as backfill_slots
from gateway.backfill import ended_statuses
from gateway.cli.common import echo_json
from gateway.cli.common import open_store
from gateway.clock import SYSTEM_CLOCK
from gateway.doctor import run_checks
from gateway.store.retention import PruneReport
from gateway.store.retention import prune as prune_runs

POLL_SECONDS = 0.2


@click.command()
@click.option("--days", type=click.IntRange(min=0), help="Keep runs this many days (0: forever).")
@click.option("--per-job", type=click.IntRange(min=0), help="Keep the newest N runs per job.")
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def prune(days: int | None, per_job: int | None, dry_run: bool, as_json: bool) -> None:
    """Delete finished runs older than --days or beyond the newest --per-job of each job.

    The defaults come from GATEWAY_RETENTION_DAYS (30) and GATEWAY_RETENTION_PER_JOB (10000).
    Queued and running runs are never deleted.
    """
    settings = open_store()
    days = settings.retention_days if days is None else days
    per_job = settings.retention_per_job if per_job is None else per_job
    report = prune_runs(SYSTEM_CLOCK.now(), days=days, per_job=per_job, dry_run=dry_run)
    if as_json:
        echo_json({**report.as_dict(), "days": days, "per_job": per_job})
        return
    click.echo(_prune_line(report, days, per_job))


def _prune_line(report: PruneReport, days: int, per_job: int) -> str:
    verb = "would prune" if report.dry_run else "pruned"
    parts = []
    if days:
        parts.append(f"{report.by_age} older than {days} days")
    if per_job:
        parts.append(f"{report.by_count} beyond the newest {per_job} per job")
    detail = f" ({', '.join(parts)})" if parts else " (retention is off)"
    return f"{verb} {report.deleted} runs{detail}"


def _when(text: str, option: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO time", param_hint=option) from None
    if when.tzinfo is None:
        raise click.BadParameter("give an offset, e.g. 2026-11-01T00:00Z", param_hint=option)
    return when


@click.command()
@click.argument("job")
@click.option("--from", "start", required=True, help="First slot time (ISO, with offset).")
@click.option("--to", "end", required=True, help="End of the range, excluded (ISO, with offset).")
@click.option("--max", "limit", type=click.IntRange(min=1), default=DEFAULT_MAX, show_default=True)
@click.option("--dry-run", is_flag=True, help="List the slots; queue nothing.")
@click.option("--wait", is_flag=True, help="Show progress until every run has ended.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def backfill(
    ctx: click.Context,
    job: str,
    start: str,
    end: str,
    limit: int,
    dry_run: bool,
    wait: bool,
    as_json: bool,
) -> None:
    """Run the slots of JOB's schedule in [--from, --to) that have no run yet (trigger backfill)."""
    begin, finish = _when(start, "--from"), _when(end, "--to")
    open_store()
    plan = backfill_slots(job, begin, finish, SYSTEM_CLOCK.now(), limit=limit, dry_run=dry_run)
    statuses = _wait_for(plan.queued) if wait and plan.queued else {}
    summary = _summary(plan, dry_run, statuses)
    if as_json:
        echo_json(summary)
    else:
        click.echo(_summary_line(summary))
    ctx.exit(1 if any(s != "success" for s in statuses.values()) else 0)


def _wait_for(execution_ids: list[str]) -> dict[str, str]:
    """Poll until every run has ended, drawing a progress bar on stderr; return their statuses."""
    done: dict[str, str] = {}
    with click.progressbar(length=len(execution_ids), label="backfill", file=sys.stderr) as bar:
        while len(done) < len(execution_ids):
            ended = ended_statuses([e for e in execution_ids if e not in done])
            done.update(ended)
            bar.update(len(ended))
            if len(done) < len(execution_ids):
                time.sleep(POLL_SECONDS)
    return done


def _summary(plan: BackfillPlan, dry_run: bool, statuses: dict[str, str]) -> dict[str, object]:
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    return {
        "job": plan.job,
        "dry_run": dry_run,
        "slots": len(plan.slots),
        "queued": len(plan.queued),
        "already_run": len(plan.existing),
        "first": plan.slots[0].isoformat() if plan.slots else None,
        "last": plan.slots[-1].isoformat() if plan.slots else None,
        "results": counts,
    }


def _summary_line(summary: dict[str, object]) -> str:
    verb = "would queue" if summary["dry_run"] else "queued"
    line = (
        f"{summary['job']}: {summary['slots']} slots ({summary['first']} .. {summary['last']}); "
        f"{verb} {summary['queued'] if not summary['dry_run'] else summary['slots']} - "
        f"{summary['already_run']} already had a run"
    )
    results = summary["results"]
    if isinstance(results, dict) and results:
        line += "; " + ", ".join(f"{n} {s}" for s, n in sorted(results.items()))
    return line


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check settings, database, schema, tokens, targets, clock and gateway; say what to fix.

    Exit 0 if nothing failed (warnings allowed), 1 otherwise.
    """
    checks = run_checks(SYSTEM_CLOCK)
    if as_json:
        echo_json([asdict(c) for c in checks])
    else:
        for check in checks:
            click.echo(f"{check.status:<4}  {check.name}: {check.message}")
            if check.fix and check.status != "OK":
                click.echo(f"      fix: {check.fix}")
    ctx.exit(1 if any(c.status == "FAIL" for c in checks) else 0)


maintenance_commands = [prune, backfill, doctor]
