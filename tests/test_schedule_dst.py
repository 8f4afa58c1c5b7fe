"""Daylight-saving behaviour, as a hand-checked table.

The rules (Debian/Vixie cron):
- A job whose seconds, minute and hour fields do not start with `*` is *fixed-time*
  (a 5-field expression has an implicit seconds field of "0").
  - Its wall time skipped by a spring-forward: it fires ONCE at the transition instant
    (the first wall time after the jump), however many of its matches were skipped.
  - Its wall time repeated by a fall-back: it fires once, in the FIRST pass.
- Every other job follows real time: skipped wall times never happen (nothing is moved to
  after the jump), repeated wall times happen twice, in chronological order.

The 2026 transitions used (local wall times):
- Europe/Berlin      03-29 02:00+01 -> 03:00+02 (gap 02:00-02:59)
                     10-25 03:00+02 -> 02:00+01 (02:00-02:59 twice)
- America/New_York   03-08 02:00-05 -> 03:00-04; 11-01 02:00-04 -> 01:00-05 (01:xx twice)
- Australia/Lord_Howe (30 minutes) 04-05 02:00+11 -> 01:30+10:30 (01:30-01:59 twice)
                     10-04 02:00+10:30 -> 02:30+11 (gap 02:00-02:29)
- Australia/Sydney   04-05 03:00+11 -> 02:00+10 (02:xx twice); 10-04 02:00+10 -> 03:00+11
- America/Santiago (southern, at midnight) 04-05 00:00-03 -> 04-04 23:00-04 (23:xx on
  04-04 twice); 09-06 00:00-04 -> 01:00-03 (gap 00:00-00:59 on 09-06)
Every expected value below was worked out from these rules by hand.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from gateway.schedule import Schedule

DST_TABLE = [
    # Europe/Berlin, spring forward
    (
        "30 2 * * *",
        "Europe/Berlin",
        "2026-03-28T12:00:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
    ),
    (
        "0,30 2 * * *",
        "Europe/Berlin",
        "2026-03-28T12:00:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00", "2026-03-30T02:30:00+02:00"],
    ),
    (
        "30 2 29 3 *",
        "Europe/Berlin",
        "2026-03-28T12:00:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2027-03-29T02:30:00+02:00"],
    ),
    ("0 30 3 * * *", "Europe/Berlin", "2026-03-29T00:00:00+01:00", ["2026-03-29T03:30:00+02:00"]),
    (
        "15 30 2 * * *",
        "Europe/Berlin",
        "2026-03-28T12:00:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:15+02:00"],
    ),
    (
        "0 */2 * * *",
        "Europe/Berlin",
        "2026-03-28T23:30:00+01:00",
        ["2026-03-29T00:00:00+01:00", "2026-03-29T04:00:00+02:00", "2026-03-29T06:00:00+02:00"],
    ),
    (
        "*/30 * * * *",
        "Europe/Berlin",
        "2026-03-29T01:00:00+01:00",
        ["2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"],
    ),
    ("*/15 2 * * *", "Europe/Berlin", "2026-03-28T23:30:00+01:00", ["2026-03-30T02:00:00+02:00"]),
    (
        "0 * 2 * * *",
        "Europe/Berlin",
        "2026-03-29T01:59:30+01:00",
        ["2026-03-30T02:00:00+02:00", "2026-03-30T02:01:00+02:00"],
    ),
    # Europe/Berlin, fall back
    (
        "30 2 * * *",
        "Europe/Berlin",
        "2026-10-24T12:00:00+02:00",
        ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
    ),
    ("30 2 * * *", "Europe/Berlin", "2026-10-25T02:10:00+01:00", ["2026-10-26T02:30:00+01:00"]),
    (
        "45 30 2 * * *",
        "Europe/Berlin",
        "2026-10-25T00:00:00+02:00",
        ["2026-10-25T02:30:45+02:00", "2026-10-26T02:30:45+01:00"],
    ),
    (
        "*/30 * * * *",
        "Europe/Berlin",
        "2026-10-25T01:15:00+02:00",
        [
            "2026-10-25T01:30:00+02:00",
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T02:30:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ],
    ),
    (
        "*/30 * * * *",
        "Europe/Berlin",
        "2026-10-25T02:10:00+01:00",
        ["2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00"],
    ),
    (
        "*/20 30 2 * * *",
        "Europe/Berlin",
        "2026-10-25T02:00:00+02:00",
        [
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:30:20+02:00",
            "2026-10-25T02:30:40+02:00",
            "2026-10-25T02:30:00+01:00",
            "2026-10-25T02:30:20+01:00",
            "2026-10-25T02:30:40+01:00",
        ],
    ),
    # America/New_York
    (
        "30 2 * * *",
        "America/New_York",
        "2026-03-07T12:00:00-05:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    (
        "*/30 * * * *",
        "America/New_York",
        "2026-03-08T01:00:00-05:00",
        ["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00"],
    ),
    (
        "30 1 * * *",
        "America/New_York",
        "2026-10-31T12:00:00-04:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    ),
    (
        "0 * * * *",
        "America/New_York",
        "2026-11-01T00:30:00-04:00",
        ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"],
    ),
    # Australia/Lord_Howe: 30-minute shifts
    (
        "45 1 * * *",
        "Australia/Lord_Howe",
        "2026-04-04T12:00:00+11:00",
        ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"],
    ),
    (
        "*/15 1 * * *",
        "Australia/Lord_Howe",
        "2026-04-05T01:20:00+11:00",
        [
            "2026-04-05T01:30:00+11:00",
            "2026-04-05T01:45:00+11:00",
            "2026-04-05T01:30:00+10:30",
            "2026-04-05T01:45:00+10:30",
            "2026-04-06T01:00:00+10:30",
        ],
    ),
    (
        "15 2 * * *",
        "Australia/Lord_Howe",
        "2026-10-03T12:00:00+10:30",
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"],
    ),
    (
        "40 2 * * *",
        "Australia/Lord_Howe",
        "2026-10-03T12:00:00+10:30",
        ["2026-10-04T02:40:00+11:00"],
    ),
    (
        "30 15 2 * * *",
        "Australia/Lord_Howe",
        "2026-10-03T12:00:00+10:30",
        ["2026-10-04T02:30:00+11:00"],
    ),
    (
        "*/10 2 * * *",
        "Australia/Lord_Howe",
        "2026-10-04T01:55:00+10:30",
        ["2026-10-04T02:30:00+11:00", "2026-10-04T02:40:00+11:00", "2026-10-04T02:50:00+11:00"],
    ),
    # Australia/Sydney (southern hemisphere)
    (
        "30 2 * * *",
        "Australia/Sydney",
        "2026-04-04T12:00:00+11:00",
        ["2026-04-05T02:30:00+11:00", "2026-04-06T02:30:00+10:00"],
    ),
    (
        "30 2 * * *",
        "Australia/Sydney",
        "2026-10-03T12:00:00+10:00",
        ["2026-10-04T03:00:00+11:00", "2026-10-05T02:30:00+11:00"],
    ),
    (
        "*/30 2 * * *",
        "Australia/Sydney",
        "2026-04-05T00:00:00+11:00",
        [
            "2026-04-05T02:00:00+11:00",
            "2026-04-05T02:30:00+11:00",
            "2026-04-05T02:00:00+10:00",
            "2026-04-05T02:30:00+10:00",
            "2026-04-06T02:00:00+10:00",
        ],
    ),
    # America/Santiago: transitions at midnight
    (
        "@daily",
        "America/Santiago",
        "2026-09-05T12:00:00-04:00",
        ["2026-09-06T01:00:00-03:00", "2026-09-07T00:00:00-03:00"],
    ),
    ("0 0 0 * * *", "America/Santiago", "2026-09-05T12:00:00-04:00", ["2026-09-06T01:00:00-03:00"]),
    (
        "0 0 6 9 *",
        "America/Santiago",
        "2026-09-05T12:00:00-04:00",
        ["2026-09-06T01:00:00-03:00", "2027-09-06T00:00:00-03:00"],
    ),
    (
        "0 * * * *",
        "America/Santiago",
        "2026-09-05T22:30:00-04:00",
        ["2026-09-05T23:00:00-04:00", "2026-09-06T01:00:00-03:00", "2026-09-06T02:00:00-03:00"],
    ),
    (
        "*/30 0 * * * *",
        "America/Santiago",
        "2026-09-05T23:59:00-04:00",
        ["2026-09-06T01:00:00-03:00", "2026-09-06T01:00:30-03:00"],
    ),
    (
        "30 23 * * *",
        "America/Santiago",
        "2026-04-04T12:00:00-03:00",
        ["2026-04-04T23:30:00-03:00", "2026-04-05T23:30:00-04:00"],
    ),
    (
        "0 * * * *",
        "America/Santiago",
        "2026-04-04T22:30:00-03:00",
        ["2026-04-04T23:00:00-03:00", "2026-04-04T23:00:00-04:00", "2026-04-05T00:00:00-04:00"],
    ),
]


@pytest.mark.parametrize(("expr", "tz", "start", "expected"), DST_TABLE)
def test_dst_table(expr: str, tz: str, start: str, expected: list[str]) -> None:
    times = Schedule(expr, tz=tz).next_times(datetime.fromisoformat(start), len(expected))
    assert [t.isoformat() for t in times] == expected


def test_the_start_may_be_in_any_zone() -> None:
    start = datetime.fromisoformat("2026-10-25T00:15:00+00:00")  # 02:15+02:00 in Berlin
    times = Schedule("*/30 * * * *", tz="Europe/Berlin").next_times(start, 3)
    assert [t.isoformat() for t in times] == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:30:00+01:00",
    ]


def test_dst_notes_say_when_a_fire_moved() -> None:
    start = datetime.fromisoformat("2026-03-28T12:00:00+01:00")
    notes = Schedule("30 2 * * *", tz="Europe/Berlin").dst_notes(start, 2)
    assert notes[0][1] is not None and notes[0][1].startswith("moved")
    assert notes[1][1] is None


def test_dst_notes_mark_the_second_pass() -> None:
    start = datetime.fromisoformat("2026-10-25T01:45:00+02:00")
    notes = Schedule("*/30 * * * *", tz="Europe/Berlin").dst_notes(start, 4)
    kinds = [note.split(":")[0] if note else None for _, note in notes]
    assert kinds == ["first pass of an hour that repeats when clocks go back"] * 2 + ["again"] * 2


def test_dst_notes_say_a_fixed_job_runs_once() -> None:
    start = datetime.fromisoformat("2026-10-24T12:00:00+02:00")
    notes = Schedule("30 2 * * *", tz="Europe/Berlin").dst_notes(start, 1)
    assert notes[0][1] is not None and notes[0][1].startswith("once")
