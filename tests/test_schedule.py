"""Schedule: cronsim-style tables of expected fire times, validation, H hashing, properties."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from gateway.errors import InvalidSchedule
from gateway.schedule import Schedule
from gateway.schedule import validate_timezone

# Monday 2026-01-05 10:00 UTC unless a row says otherwise.
START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def iso_times(expr: str, count: int, *, start: datetime = START, tz: str = "UTC") -> list[str]:
    """Return the next `count` fire times of `expr` as ISO strings."""
    return [t.isoformat() for t in Schedule(expr, tz=tz, name="job").next_times(start, count)]


TABLE = [
    ("* * * * *", 2, ["2026-01-05T10:01:00+00:00", "2026-01-05T10:02:00+00:00"]),
    (
        "*/20 * * * * *",
        3,
        ["2026-01-05T10:00:20+00:00", "2026-01-05T10:00:40+00:00", "2026-01-05T10:01:00+00:00"],
    ),
    (
        "30 9-17/4 * * *",
        3,
        ["2026-01-05T13:30:00+00:00", "2026-01-05T17:30:00+00:00", "2026-01-06T09:30:00+00:00"],
    ),
    ("0 0 * * mon-fri", 2, ["2026-01-06T00:00:00+00:00", "2026-01-07T00:00:00+00:00"]),
    ("0 12 * * SAT,sun", 2, ["2026-01-10T12:00:00+00:00", "2026-01-11T12:00:00+00:00"]),
    ("0 0 1 jan,JUL *", 2, ["2026-07-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"]),
    ("0 0 * * 7", 1, ["2026-01-11T00:00:00+00:00"]),
    (
        "0 0 * * 5-7",
        3,
        ["2026-01-09T00:00:00+00:00", "2026-01-10T00:00:00+00:00", "2026-01-11T00:00:00+00:00"],
    ),
    ("0 0 L * *", 2, ["2026-01-31T00:00:00+00:00", "2026-02-28T00:00:00+00:00"]),
    ("0 0 L 2 *", 2, ["2026-02-28T00:00:00+00:00", "2027-02-28T00:00:00+00:00"]),
    ("0 0 15W * *", 2, ["2026-01-15T00:00:00+00:00", "2026-02-16T00:00:00+00:00"]),
    ("0 0 * * 5#2", 2, ["2026-01-09T00:00:00+00:00", "2026-02-13T00:00:00+00:00"]),
    ("0 0 * * 5L", 2, ["2026-01-30T00:00:00+00:00", "2026-02-27T00:00:00+00:00"]),
    ("0 0 29 2 *", 2, ["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"]),
    ("@hourly", 1, ["2026-01-05T11:00:00+00:00"]),
    ("@daily", 1, ["2026-01-06T00:00:00+00:00"]),
    ("@midnight", 1, ["2026-01-06T00:00:00+00:00"]),
    ("@weekly", 1, ["2026-01-11T00:00:00+00:00"]),
    ("@monthly", 1, ["2026-02-01T00:00:00+00:00"]),
    ("@yearly", 1, ["2027-01-01T00:00:00+00:00"]),
    ("@ANNUALLY", 1, ["2027-01-01T00:00:00+00:00"]),
    ("0 0 ? * 1", 1, ["2026-01-12T00:00:00+00:00"]),
    (
        "5/20 10 * * *",
        3,
        ["2026-01-05T10:05:00+00:00", "2026-01-05T10:25:00+00:00", "2026-01-05T10:45:00+00:00"],
    ),
]


@pytest.mark.parametrize(("expr", "count", "expected"), TABLE)
def test_the_table(expr: str, count: int, expected: list[str]) -> None:
    assert iso_times(expr, count) == expected


def test_times_are_in_the_jobs_zone() -> None:
    times = iso_times("0 9 * * *", 1, tz="America/New_York")
    assert times == ["2026-01-05T09:00:00-05:00"]


def test_the_result_is_strictly_after_the_start() -> None:
    exact = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    assert iso_times("0 10 * * *", 1, start=exact) == ["2026-01-06T10:00:00+00:00"]
    just_before = exact - timedelta(microseconds=1)
    assert iso_times("0 10 * * *", 1, start=just_before) == ["2026-01-05T10:00:00+00:00"]


def test_a_start_with_microseconds_still_gives_whole_seconds() -> None:
    start = datetime(2026, 1, 5, 10, 0, 0, 500_000, tzinfo=UTC)
    assert iso_times("* * * * * *", 1, start=start) == ["2026-01-05T10:00:01+00:00"]


def test_an_every_second_job_is_fast() -> None:
    schedule = Schedule("* * * * * *", tz="Europe/Berlin")
    times = schedule.next_times(START, 1000)
    assert times[-1] - times[0] == timedelta(seconds=999)


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        Schedule("* * * * *").next_times(datetime(2026, 1, 1))


@pytest.mark.parametrize("count", [0, -1, 1001])
def test_count_is_bounded(count: int) -> None:
    with pytest.raises(ValueError, match="count"):
        Schedule("* * * * *").next_times(START, count)


def test_next_time_is_the_first_of_next_times() -> None:
    assert Schedule("*/5 * * * *").next_time(START) == START + timedelta(minutes=5)


def test_the_calendar_end_gives_fewer_times() -> None:
    end = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
    assert Schedule("0 * * * *").next_times(end, 3) == []


# Each croniter quirk the wrapper corrects, by name.


def test_a_single_value_range_is_that_value() -> None:
    # croniter reads `3-3` as "every month"
    assert iso_times("0 0 1 3-3 *", 2) == ["2026-03-01T00:00:00+00:00", "2027-03-01T00:00:00+00:00"]
    assert Schedule("0 5-5 * * *").fields[2] == "5"


def test_day_fields_or_when_both_are_restricted() -> None:
    # 2026-01-15 is a Thursday; Mondays are the 12th and 19th
    assert iso_times("0 0 15 * 1", 3) == [
        "2026-01-12T00:00:00+00:00",
        "2026-01-15T00:00:00+00:00",
        "2026-01-19T00:00:00+00:00",
    ]


def test_a_day_field_starting_with_a_star_ands() -> None:
    # croniter ORs `*/2`; Vixie cron treats it as unrestricted, so both fields must match:
    # odd days that are Mondays
    assert iso_times("0 0 */2 * 1", 3) == [
        "2026-01-19T00:00:00+00:00",
        "2026-02-09T00:00:00+00:00",
        "2026-02-23T00:00:00+00:00",
    ]


def test_seconds_come_first_in_six_fields() -> None:
    assert iso_times("30 0 10 * * *", 1) == ["2026-01-05T10:00:30+00:00"]


def test_it_fires_once_in_the_repeated_hour() -> None:
    # croniter fires at 02:30+02:00 and again at 02:30+01:00
    start = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    assert iso_times("30 2 * * *", 2, start=start, tz="Europe/Berlin") == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]


def test_a_wildcard_job_does_not_fire_after_the_gap() -> None:
    # croniter fires `0 */2 * * *` at 03:00+02:00 because 02:00 was skipped
    start = datetime(2026, 3, 28, 22, 30, tzinfo=UTC)  # 23:30+01:00
    assert iso_times("0 */2 * * *", 2, start=start, tz="Europe/Berlin") == [
        "2026-03-29T00:00:00+01:00",
        "2026-03-29T04:00:00+02:00",
    ]
    assert iso_times("*/15 2 * * *", 1, start=start, tz="Europe/Berlin") == [
        "2026-03-30T02:00:00+02:00"
    ]


def test_macros_are_not_hashed() -> None:
    # croniter turns @daily into a hashed time when given a hash id
    assert Schedule("@daily", name="cleanup").fields == ("0", "0", "0", "*", "*", "*")


# Invalid input: expression, field named by the message, a fragment of the message.
INVALID = [
    ("0 0 * * * * *", "schedule", "expected 5 or 6 fields, got 7"),
    ("* * * *", "schedule", "got 4"),
    ("", "schedule", "got 0"),
    ("0 0 31 2 *", "day-of-month", "31 never occurs in February"),
    ("0 0 30 2 *", "day-of-month", "30 never occurs in February"),
    ("0 0 30,31 2 *", "day-of-month", "never occur in February"),
    ("0 0 31 4,6,9,11 *", "day-of-month", "April, June, September, November"),
    ("0 0 31 2 */2", "day-of-month", "never occurs in February"),
    ("10-5 * * * *", "minute", "range '10-5' is reversed"),
    ("0 0 * * FRI-MON", "day-of-week", "range 'FRI-MON' is reversed"),
    ("0 0 * * 5-1", "day-of-week", "reversed"),
    ("0 0 * NOV-FEB *", "month", "reversed"),
    ("60 * * * *", "minute", "60 is out of range 0-59"),
    ("60 0 * * * *", "second", "60 is out of range"),
    ("0 24 * * *", "hour", "24 is out of range 0-23"),
    ("0 0 0 * *", "day-of-month", "0 is out of range 1-31"),
    ("0 0 32 * *", "day-of-month", "32 is out of range"),
    ("0 0 * 0 *", "month", "0 is out of range 1-12"),
    ("0 0 * 13 *", "month", "13 is out of range"),
    ("0 0 * * 8", "day-of-week", "8 is out of range 0-7"),
    ("*/0 * * * *", "minute", "step 0"),
    ("1,,2 * * * *", "minute", "empty value"),
    ("1, * * * *", "minute", "empty value"),
    ("a b c d e", "minute", "cannot read 'a'"),
    ("0 0 * FOO *", "month", "cannot read 'foo'"),
    ("0 0 * * MON-FOO", "day-of-week", "cannot read"),
    ("-1 * * * *", "minute", "cannot read"),
    ("1-2-3 * * * *", "minute", "cannot read"),
    ("* * * * * " * 60, "schedule", "longer than 256"),
    ("@reboot", "schedule", "@reboot is not a schedule"),
    ("@every_5m", "schedule", "unknown macro"),
    ("H * * * *", "minute", "needs a job name"),
    ("R * * * *", "minute", "cannot read"),
    ("0 0 * * 5#6", "day-of-week", "must be 1-5"),
    ("0 0 1 * 5#2", "day-of-week", "needs the other day field"),
    ("0 0 15W,20 * *", "day-of-month", "stand alone"),
]


@pytest.mark.parametrize(("expr", "field", "fragment"), INVALID)
def test_invalid_expressions_name_the_field(expr: str, field: str, fragment: str) -> None:
    with pytest.raises(InvalidSchedule) as info:
        Schedule(expr)
    message = str(info.value)
    assert info.value.field == "schedule"
    assert message.startswith(f"{field}:")
    assert fragment in message
    assert expr.strip()[:20] in message or "longer than" in message


def test_h_with_a_name_in_range_is_checked() -> None:
    with pytest.raises(InvalidSchedule, match="minute: 99 is out of range"):
        Schedule("H(0-99) * * * *", name="job")


@pytest.mark.parametrize(
    "tz",
    [
        "",
        "Mars/Olympus",
        "../etc/passwd",
        "local",
        "localtime",
        "Europe/Berlin/../../x",
        "right/UTC",
        " UTC",
    ],
)
def test_unknown_zones_are_refused(tz: str) -> None:
    with pytest.raises(InvalidSchedule) as info:
        Schedule("* * * * *", tz=tz)
    assert info.value.field == "tz"
    assert str(info.value).startswith("tz:")


def test_validate_timezone_returns_the_zone() -> None:
    assert validate_timezone("Europe/Berlin") == ZoneInfo("Europe/Berlin")


def test_a_schedule_carries_its_parts() -> None:
    schedule = Schedule("*/5 9-17 ? JAN mon-fri", tz="Europe/Berlin", name="n")
    assert (schedule.expr, schedule.tz, schedule.name) == (
        "*/5 9-17 ? JAN mon-fri",
        "Europe/Berlin",
        "n",
    )
    assert schedule.zone == ZoneInfo("Europe/Berlin")
    assert schedule.fields == ("0", "*/5", "9-17", "*", "1", "1-5")
    assert not schedule.has_seconds
    assert not schedule.fixed_time
    assert Schedule("15 30 2 * * *").fixed_time
    assert Schedule("15 30 2 * * *").has_seconds
    assert not Schedule("* 30 2 * * *").fixed_time


# H: hashed by job name, Jenkins-style.


def test_h_is_the_same_for_the_same_name() -> None:
    one = Schedule("H H * * *", name="backup").next_times(START, 3)
    two = Schedule("H H * * *", name="backup").next_times(START, 3)
    assert one == two


def test_h_spreads_different_names() -> None:
    minutes = {Schedule("H * * * *", name=f"job-{i}").fields[1] for i in range(40)}
    assert len(minutes) > 15


def test_h_with_a_step_keeps_the_step() -> None:
    fields = Schedule("H/15 * * * *", name="backup").fields
    offset = int(fields[1].split("-")[0])
    assert 0 <= offset < 15
    assert fields[1] == f"{offset}-59/15"


def test_h_in_day_of_month_exists_in_every_month() -> None:
    days = {int(Schedule("0 0 H * *", name=f"job-{i}").fields[3]) for i in range(200)}
    assert max(days) <= 28


# explain()


@pytest.mark.parametrize(
    ("expr", "tz", "expected"),
    [
        ("30 2 * * 1", "Europe/Berlin", "At 02:30, only on Monday (Europe/Berlin)"),
        ("15 30 14 * * *", "UTC", "At 14:30:15 (UTC)"),
        ("*/5 * * * *", "UTC", "Every 5 minutes (UTC)"),
        ("@daily", "UTC", "At 00:00 (UTC)"),
        ("0 0 ? * 1#2", "UTC", "At 00:00, on the second Monday of the month (UTC)"),
    ],
)
def test_explain(expr: str, tz: str, expected: str) -> None:
    assert Schedule(expr, tz=tz).explain() == expected


def test_explain_shows_the_hashed_values() -> None:
    schedule = Schedule("H H * * *", name="backup")
    minute, hour = schedule.fields[1], schedule.fields[2]
    assert schedule.explain() == f"At {int(hour):02}:{int(minute):02} (UTC)"


# Properties against cronsim (a test-only oracle). cronsim agrees with Vixie cron on the
# day-of-month/day-of-week rule and, for 5-field jobs, on DST; it applies no DST rule to
# 6-field jobs, returns a gap fire once per skipped match, and slips when the start lies in
# the second pass of a repeated hour, so the comparisons stay away from those cases.


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    value = st.integers(low, high)
    # cronsim reads `a-a/s` as the whole field, so ranges here have two distinct ends.
    ends = st.lists(value, min_size=2, max_size=2, unique=True).map(sorted)
    return st.one_of(
        st.just("*"),
        value.map(str),
        ends.map(lambda p: f"{p[0]}-{p[1]}"),
        st.integers(1, high - low + 1).map(lambda s: f"*/{s}"),
        st.tuples(ends, st.integers(1, 10)).map(lambda p: f"{p[0][0]}-{p[0][1]}/{p[1]}"),
        st.lists(value, min_size=2, max_size=3, unique=True).map(lambda v: ",".join(map(str, v))),
    )


FIVE_FIELDS = st.tuples(
    _field(0, 59), _field(0, 23), _field(1, 28), _field(1, 12), _field(0, 6)
).map(" ".join)
SIX_FIELDS = st.tuples(_field(0, 59), FIVE_FIELDS).map(" ".join)
STARTS = st.datetimes(datetime(2020, 1, 1), datetime(2030, 12, 31))


def _oracle(expr: str, start: datetime, count: int) -> list[datetime]:
    """Return cronsim's next distinct instants, in order."""
    times: list[datetime] = []
    for t in CronSim(expr, start):
        if not times or t != times[-1]:
            times.append(t)
        if len(times) == count:
            break
    return times


@settings(max_examples=200, deadline=None, derandomize=True)
@given(expr=st.one_of(FIVE_FIELDS, SIX_FIELDS), naive=STARTS)
def test_it_agrees_with_cronsim_in_utc(expr: str, naive: datetime) -> None:
    start = naive.replace(tzinfo=UTC)
    assert Schedule(expr).next_times(start, 5) == _oracle(expr, start, 5)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    expr=FIVE_FIELDS,
    tz=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Sydney"]),
    naive=st.one_of(
        STARTS,
        st.sampled_from(
            [
                datetime(2026, 3, 28, 23),
                datetime(2026, 10, 24, 23),
                datetime(2026, 3, 7, 23),
                datetime(2026, 10, 31, 23),
                datetime(2026, 4, 4, 23),
                datetime(2026, 10, 3, 23),
            ]
        ),
    ),
)
def test_it_agrees_with_cronsim_across_dst(expr: str, tz: str, naive: datetime) -> None:
    zone = ZoneInfo(tz)
    start = naive.replace(tzinfo=zone)
    mine = [t for t in Schedule(expr, tz=tz).next_times(start, 5)]
    oracle = _oracle(expr, start, 5)
    assert [t.astimezone(UTC) for t in mine] == [t.astimezone(UTC) for t in oracle]


JUNK = st.text(st.sampled_from(list("0123456789*/-,?LWH#() @adefjmnorstuy²\u00a0\t")), max_size=40)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(expr=JUNK, name=st.sampled_from([None, "job"]))
def test_any_text_is_a_schedule_or_an_invalid_schedule(expr: str, name: str | None) -> None:
    try:
        schedule = Schedule(expr, name=name)
    except InvalidSchedule as e:
        assert e.field == "schedule"
        return
    assert len(schedule.next_times(START, 3)) == 3
    assert schedule.explain().endswith("(UTC)")


def test_remembered_next_times_answer_as_next_times_and_walk_once_per_slot() -> None:
    from gateway.schedule import _times_cached
    from gateway.schedule import cached_schedule
    from gateway.schedule import remembered_next_times

    schedule = cached_schedule("*/5 * * * * *", "Europe/Berlin", None)
    after = datetime(2026, 3, 29, 0, 59, 58, tzinfo=UTC)  # the spring-forward hour in Berlin
    times = remembered_next_times(schedule)
    for count in (1, 2, 4, 9):
        assert times(after, count) == schedule.next_times(after, count)
    hits = _times_cached.cache_info().hits
    for _ in range(1000):  # a burst: a thousand jobs on one expression at one slot
        times(after, 1)
    assert _times_cached.cache_info().hits == hits + 1000
    first = times(after, 2)
    first.append(after)  # a caller's list is its own
    assert times(after, 2) == schedule.next_times(after, 2)
