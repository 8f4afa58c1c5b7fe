"""Parse and validate cron fields into a normalized form and into a form croniter reads safely.

croniter is lenient where cron is strict (it reads `3-3` as every month, wraps reversed ranges,
accepts seven fields and impossible days), so every field is checked and expanded here, and
croniter only ever sees explicit value lists plus its `L`, `W` and `#` tokens.
"""

from __future__ import annotations

import binascii
import calendar
import re
from dataclasses import dataclass

from gateway.errors import InvalidSchedule

FIELDS = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
MAX_LENGTH = 256

_BOUNDS = {
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "day-of-month": (1, 31),
    "month": (1, 12),
    "day-of-week": (0, 6),
}
# Where croniter's hash puts each field: kept so `H` spreads jobs exactly as croniter would.
_HASH_INDEX = {
    "minute": 0,
    "hour": 1,
    "day-of-month": 2,
    "month": 3,
    "day-of-week": 4,
    "second": 5,
}
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MAX_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_ITEM = re.compile(r"^(?P<start>\*|[a-z0-9]+)(?:-(?P<end>[a-z0-9]+))?(?:/(?P<step>[0-9]+))?$")
_HASH = re.compile(r"^h(?:\((?P<begin>[0-9]+)-(?P<end>[0-9]+)\))?(?:/(?P<step>[0-9]+))?$")
_WEEKDAY = re.compile(r"^(?:(?P<a>[0-9]+)w|w(?P<b>[0-9]+))$")
_NTH = re.compile(r"^(?P<day>[a-z0-9]+)#(?P<nth>[0-9]+)$")
_LAST_DOW = re.compile(r"^(?:(?P<a>[a-z0-9]+)l|l(?P<b>[a-z0-9]+))$")


@dataclass(frozen=True)
class ParsedFields:
    """A checked expression: normalized fields (seconds first) and what croniter is given."""

    fields: tuple[str, ...]
    croniter_expr: str
    has_seconds: bool
    day_or: bool
    fixed_time: bool
    days: frozenset[int | str]
    months: frozenset[int]


@dataclass(frozen=True)
class _Context:
    expr: str
    name: str | None

    def error(self, field: str, why: str) -> InvalidSchedule:
        """Return the InvalidSchedule naming `field`, the reason and the input."""
        return InvalidSchedule(f"{field}: {why} (in '{self.expr}')", field="schedule")


def parse_fields(expr: str, name: str | None) -> ParsedFields:
    """Return the checked fields of `expr`, or raise InvalidSchedule naming the bad field."""
    if not isinstance(expr, str):
        raise InvalidSchedule("schedule: expected a cron expression string", field="schedule")
    if len(expr) > MAX_LENGTH:
        raise InvalidSchedule(f"schedule: longer than {MAX_LENGTH} characters", field="schedule")
    ctx = _Context(expr, name)
    texts = _split(expr, ctx)
    has_seconds = len(texts) == 6
    if not has_seconds:
        texts = ["0", *texts]
    parsed = [_parse_field(field, text, ctx) for field, text in zip(FIELDS, texts, strict=True)]
    fields = tuple(normal for normal, _, _ in parsed)
    dom, dow = fields[3], fields[5]
    _check_special_days(parsed, ctx)
    return ParsedFields(
        fields=fields,
        croniter_expr=" ".join(cron for _, cron, _ in parsed),
        has_seconds=has_seconds,
        day_or=not dom.startswith("*") and not dow.startswith("*"),
        fixed_time=not any(f.startswith("*") for f in fields[:3]),
        days=frozenset(parsed[3][2]),
        months=frozenset(v for v in parsed[4][2] if isinstance(v, int)),
    )


def check_days_exist(parsed: ParsedFields, expr: str) -> None:
    """Raise InvalidSchedule if the day-of-month values never occur in the chosen months."""
    if parsed.day_or and parsed.fields[5] != "*":
        return  # either field may match, and day-of-week always does some day
    days = sorted(d for d in parsed.days if isinstance(d, int))
    if not days or len(days) != len(parsed.days):
        return
    if any(days[0] <= _MAX_DAYS[m - 1] for m in parsed.months):
        return
    months = ", ".join(calendar.month_name[m] for m in sorted(parsed.months))
    values = ", ".join(str(d) for d in days)
    verb = "never occurs" if len(days) == 1 else "never occur"
    raise InvalidSchedule(
        f"day-of-month: {values} {verb} in {months} (in '{expr}')", field="schedule"
    )


def _split(expr: str, ctx: _Context) -> list[str]:
    """Return the 5 or 6 field texts of `expr` (macros expanded), lower-cased."""
    text = expr.strip().lower()
    if text.startswith("@"):
        if text == "@reboot":
            raise ctx.error("schedule", "@reboot is not a schedule: the gateway has no boot")
        if text not in MACROS:
            raise ctx.error("schedule", f"unknown macro '{expr.strip()}'")
        text = MACROS[text]
    texts = text.split()
    if len(texts) not in (5, 6):
        raise ctx.error("schedule", f"expected 5 or 6 fields, got {len(texts)}")
    return texts


def _parse_field(field: str, text: str, ctx: _Context) -> tuple[str, str, list[int | str]]:
    """Return (normalized text, croniter text, values) of one field."""
    if text == "?":
        text = "*"
    items = [_parse_item(field, item, ctx) for item in text.split(",")]
    values: list[int | str] = []
    for _, item_values in items:
        values.extend(v for v in item_values if v not in values)
    normal = ",".join(n for n, _ in items)
    if normal == "*":
        return normal, "*", values
    ints = sorted(v for v in values if isinstance(v, int))
    tokens = [str(v) for v in ints] + [v for v in values if isinstance(v, str)]
    return normal, ",".join(tokens), values


def _parse_item(field: str, item: str, ctx: _Context) -> tuple[str, list[int | str]]:
    """Return (normalized text, values) of one comma-separated item; values may hold tokens."""
    if not item:
        raise ctx.error(field, "empty value")
    if item.startswith("h"):
        item = _unhash(field, item, ctx)
    special = _parse_special(field, item, ctx)
    if special is not None:
        return special
    match = _ITEM.match(item)
    if match is None:
        raise ctx.error(field, f"cannot read '{item}'")
    low, high = _bounds(field)
    start = low if match["start"] == "*" else _value(field, match["start"], ctx)
    end = high if match["start"] == "*" or match["step"] else start
    if match["end"] is not None:
        if match["start"] == "*":
            raise ctx.error(field, f"cannot read '{item}'")
        end = _value(field, match["end"], ctx)
        if end < start:
            low, high = _bounds(field)
            hint = f"{start}-{high},{low}-{end}"
            raise ctx.error(field, f"range '{item.upper()}' is reversed; write '{hint}'")
    step = _step(field, match["step"], item, ctx)
    numbers = range(start, end + 1, step)
    values: list[int | str] = sorted({v % 7 if field == "day-of-week" else v for v in numbers})
    return _normal(match, start, end, step), values


def _normal(match: re.Match[str], start: int, end: int, step: int) -> str:
    """Return an item's normalized text: `a-a` is `a`, names are numbers, `*` stays."""
    if match["end"] is not None:
        return str(start) if end == start else f"{start}-{end}" + (f"/{step}" * (step > 1))
    head = "*" if match["start"] == "*" else str(start)
    return f"{head}/{step}" if match["step"] else head


def _step(field: str, text: str | None, item: str, ctx: _Context) -> int:
    if text is None:
        return 1
    step = int(text)
    if step == 0:
        raise ctx.error(field, f"step 0 in '{item}'")
    return step


def _bounds(field: str) -> tuple[int, int]:
    return _BOUNDS[field]


def _value(field: str, text: str, ctx: _Context) -> int:
    """Return the number for `text` (digits or a month/day name), checked against the field."""
    names = _MONTHS if field == "month" else _DAYS if field == "day-of-week" else {}
    if text in names:
        return names[text]
    if not text.isdigit():
        raise ctx.error(field, f"cannot read '{text}'")
    value = int(text)
    low, high = _bounds(field)
    high = 7 if field == "day-of-week" else high
    if not low <= value <= high:
        raise ctx.error(field, f"{value} is out of range {low}-{high}")
    return value


def _unhash(field: str, item: str, ctx: _Context) -> str:
    """Return `item` with Jenkins-style `H` replaced by the value hashed from the job name."""
    match = _HASH.match(item)
    if match is None:
        raise ctx.error(field, f"cannot read '{item}'")
    if not ctx.name:
        raise ctx.error(field, f"'{item.upper()}' needs a job name to hash")
    low, high = _bounds(field)
    if field == "day-of-month":
        high = 28  # Jenkins: a hashed day exists in every month
    if match["begin"] is not None:
        low, high = _value(field, match["begin"], ctx), _value(field, match["end"], ctx)
        if high <= low:
            raise ctx.error(field, f"hash range in '{item.upper()}' must be increasing")
    step = _step(field, match["step"], item, ctx)
    top = min(low + step - 1, high) if match["step"] else high
    crc = binascii.crc32(ctx.name.encode()) & 0xFFFFFFFF
    value = ((crc >> _HASH_INDEX[field]) % (top - low + 1)) + low
    if not match["step"] or value == high:
        return str(value)
    return f"{value}-{high}/{step}"


def _parse_special(field: str, item: str, ctx: _Context) -> tuple[str, list[int | str]] | None:
    """Return (normal, [token]) for `L`, `W` and `#` items, or None for ordinary items."""
    if field == "day-of-month":
        if item == "l":
            return "L", ["l"]
        if weekday := _WEEKDAY.match(item):
            day = _value(field, weekday["a"] or weekday["b"], ctx)
            return f"{day}W", [f"{day}w"]
    if field == "day-of-week":
        if nth := _NTH.match(item):
            day, n = _value(field, nth["day"], ctx) % 7, int(nth["nth"])
            if not 1 <= n <= 5:
                raise ctx.error(field, f"'#{n}' in '{item}' must be 1-5")
            return f"{day}#{n}", [f"{day}#{n}"]
        if last := _LAST_DOW.match(item):
            day = _value(field, last["a"] or last["b"], ctx) % 7
            return f"{day}L", [f"l{day}"]
    return None


def _check_special_days(parsed: list[tuple[str, str, list[int | str]]], ctx: _Context) -> None:
    """Reject `W`, `#` and weekday-`L` where croniter cannot combine them correctly."""
    dom, dow = parsed[3], parsed[5]
    for field, this, other in (("day-of-month", dom, dow), ("day-of-week", dow, dom)):
        tokens = [v for v in this[2] if isinstance(v, str) and v != "l"]
        if not tokens:
            continue
        if len(this[2]) > 1:
            raise ctx.error(field, f"'{this[0]}' can only stand alone, not in a list")
        if other[0] != "*":
            raise ctx.error(field, f"'{this[0]}' needs the other day field to be '*'")
