"""Inline SVG charts rendered on the server: run durations and success rate over time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from markupsafe import Markup
from markupsafe import escape

from gateway.store.run_queries import RunBrief
from gateway.web.display import duration
from gateway.web.display import tone

WIDTH, HEIGHT, PAD = 600, 140, 24
BUCKETS = 12


def duration_chart(runs: Sequence[RunBrief]) -> Markup:
    """Return a bar per run (oldest left), its height the duration, its colour the status."""
    timed = [r for r in runs if r.duration_ms is not None]
    if not timed:
        return Markup('<p class="muted">No finished runs with a duration yet.</p>')
    timed.sort(key=lambda r: r.id)
    top = max(r.duration_ms or 0 for r in timed) or 1
    step = min(24.0, (WIDTH - PAD) / len(timed))  # a few runs: thin bars, not one slab
    bars = []
    for i, run in enumerate(timed):
        h = max(1.0, (run.duration_ms or 0) / top * (HEIGHT - PAD))
        x, y = PAD + i * step, HEIGHT - PAD - h
        label = f"{run.status}, {duration(run.duration_ms)}, {_when(run.queued_at)}"
        bars.append(
            f'<rect class="bar {tone(run.status)}" x="{x:.1f}" y="{y:.1f}" '
            f'width="{max(1.0, step - 1):.1f}" height="{h:.1f}">'
            f"<title>{escape(label)}</title></rect>"
        )
    return _svg(
        "Run durations",
        "".join(bars),
        f"max {duration(top)}",
        f"{len(timed)} runs, oldest on the left",
    )


def success_chart(runs: Sequence[RunBrief]) -> Markup:
    """Return the share of successful runs in equal slices of time, as a line with points."""
    ended = sorted(
        (r for r in runs if r.status not in ("queued", "dispatched", "running")),
        key=lambda r: r.queued_at,
    )
    if not ended:
        return Markup('<p class="muted">No finished runs yet.</p>')
    first, last = ended[0].queued_at, ended[-1].queued_at
    span = (last - first).total_seconds() or 1.0
    buckets: list[list[RunBrief]] = [[] for _ in range(BUCKETS)]
    for run in ended:
        index = min(BUCKETS - 1, int((run.queued_at - first).total_seconds() / span * BUCKETS))
        buckets[index].append(run)
    points = []
    for i, bucket in enumerate(buckets):
        if not bucket:
            continue
        rate = sum(r.status == "success" for r in bucket) / len(bucket)
        x = PAD + (i + 0.5) * (WIDTH - PAD) / BUCKETS
        y = HEIGHT - PAD - rate * (HEIGHT - PAD - 4)
        label = f"{rate:.0%} of {len(bucket)} runs from {_when(bucket[0].queued_at)}"
        points.append((x, y, label))
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4"><title>{escape(label)}</title></circle>'
        for x, y, label in points
    )
    total = sum(r.status == "success" for r in ended) / len(ended)
    return _svg(
        "Success rate over time",
        f'<polyline class="rate" points="{line}"/>{dots}',
        "100%",
        f"{total:.0%} of {len(ended)} runs, {_when(first)} to {_when(last)}",
    )


def _svg(title: str, body: str, top_label: str, caption: str) -> Markup:
    axis = (
        f'<line class="axis" x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH}" y2="{HEIGHT - PAD}"/>'
        f'<text class="label" x="{PAD}" y="12">{escape(top_label)}</text>'
        f'<text class="label" x="{PAD}" y="{HEIGHT - 6}">{escape(caption)}</text>'
    )
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}: {escape(caption)}">{axis}{body}</svg>'
    )


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")
