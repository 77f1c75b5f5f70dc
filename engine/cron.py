"""Five-field cron schedules, evaluated in an IANA timezone, standard library only.

Semantics follow Vixie cron: when both day-of-month and day-of-week are restricted (their
field does not start with ``*``), a day matches if either one matches. Wall times that do
not exist (spring forward) are skipped; ambiguous ones (fall back) fire once, at the first
occurrence (``fold=0``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

__all__ = ["PRESETS", "CronError", "CronSchedule", "check_timezone", "parse_cron"]


class CronError(ValueError):
    """A cron expression or timezone that cannot be used; the message names the field."""


PRESETS: Mapping[str, str] = MappingProxyType(
    {
        "hourly": "0 * * * *",
        "daily": "0 9 * * *",
        "weekly": "0 9 * * 1",
        "monthly": "0 9 1 * *",
        "weekdays": "0 9 * * 1-5",
    }
)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed schedule; weekdays run 0=Sunday..6=Saturday."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_restricted: bool
    weekday_restricted: bool

    def next_after(self, after: datetime, tz: str = "UTC") -> datetime:
        """The first fire time strictly after the aware datetime ``after``, in UTC."""
        if after.tzinfo is None or after.utcoffset() is None:
            raise CronError(f"next_after needs a timezone-aware datetime, got {after!r}")
        zone = _zone(tz)
        wall = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0, fold=0)
        wall += _MINUTE
        while True:
            found = self._next_wall(wall)
            if found is None:
                raise CronError(f"cron '{self.expression}' does not fire again after {after}")
            instant = found.replace(tzinfo=zone).astimezone(UTC)
            exists = instant.astimezone(zone).replace(tzinfo=None) == found
            if exists and instant > after:
                return instant
            wall = found + _MINUTE

    def slots_between(
        self, start: datetime, end: datetime, tz: str = "UTC", limit: int = 1000
    ) -> list[datetime]:
        """Every fire time in ``(start, end]``, oldest first, at most ``limit`` of them."""
        slots: list[datetime] = []
        current = start
        while len(slots) < limit:
            current = self.next_after(current, tz)
            if current > end:
                break
            slots.append(current)
        return slots

    def describe(self) -> str:
        """A sentence for people: ``at 09:00 on weekdays (Mon–Fri)``, ``every 15 minutes``."""
        time_text = _describe_time(sorted(self.minutes), sorted(self.hours))
        day_text = self._describe_days()
        month_text = "" if len(self.months) == 12 else "in " + _months_text(self.months)
        if time_text.startswith("at ") and not day_text and not month_text:
            day_text = "every day"
        return " ".join(part for part in (time_text, day_text, month_text) if part)

    def _day_matches(self, day: date) -> bool:
        in_month = day.day in self.days
        in_week = day.isoweekday() % 7 in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return in_month or in_week
        return in_month and in_week

    def _next_wall(self, t: datetime) -> datetime | None:
        """The first matching naive wall time at or after ``t``, skipping by month/day/hour."""
        # The Gregorian calendar repeats every 400 years; parse_cron rejects impossible dates.
        horizon = min(t.year + 401, datetime.max.year - 1)
        while t.year <= horizon:
            if t.month not in self.months:
                month = _first_at_least(self.months, t.month + 1)
                t = datetime(t.year + 1, 1, 1) if month is None else datetime(t.year, month, 1)
                continue
            hour = _first_at_least(self.hours, t.hour)
            if not self._day_matches(t.date()) or hour is None:
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
                continue
            if hour != t.hour:
                t = t.replace(hour=hour, minute=0)
            minute = _first_at_least(self.minutes, t.minute)
            if minute is None:
                t = t.replace(minute=0) + timedelta(hours=1)
                continue
            return t.replace(minute=minute)
        return None

    def _describe_days(self) -> str:
        month_days = _days_text(self.days)
        week_days = _weekdays_text(self.weekdays)
        if self.day_restricted and self.weekday_restricted:
            return f"{month_days} or {week_days}"
        if len(self.days) < 31 and len(self.weekdays) < 7:
            names = " or ".join(_DAY_FULL[day] for day in _week_order(self.weekdays))
            return f"{month_days} when that is a {names}"
        if len(self.days) < 31:
            return month_days
        return week_days if len(self.weekdays) < 7 else ""


def parse_cron(text: str) -> CronSchedule:
    """Parse five cron fields or a preset name (``daily``, ``@weekly``...)."""
    cleaned = " ".join(str(text).split())
    preset = PRESETS.get(cleaned.lower().removeprefix("@"))
    fields = (preset or cleaned).split()
    if len(fields) != 5:
        problem = "is not a preset" if len(fields) == 1 else f"has {len(fields)} fields"
        raise CronError(
            f"cron '{cleaned}' {problem}; use 5 fields (minute hour day-of-month month "
            f"day-of-week, like '0 9 * * 1-5') or a preset: {', '.join(PRESETS)}"
        )
    values = [_parse_field(field, *spec) for field, spec in zip(fields, _FIELDS, strict=True)]
    schedule = CronSchedule(
        expression=" ".join(fields).upper(),
        minutes=values[0],
        hours=values[1],
        days=values[2],
        months=values[3],
        weekdays=frozenset(day % 7 for day in values[4]),
        day_restricted=not fields[2].startswith("*"),
        weekday_restricted=not fields[4].startswith("*"),
    )
    if not (schedule.day_restricted and schedule.weekday_restricted) and not any(
        day <= _MONTH_LENGTH[month] for day in schedule.days for month in schedule.months
    ):
        raise CronError(
            f"day-of-month field '{fields[2]}' never occurs in month field '{fields[3]}'; "
            "this schedule would never fire"
        )
    return schedule


def check_timezone(name: str) -> None:
    """Raise :class:`CronError` unless ``name`` is a known IANA timezone (``UTC`` always is)."""
    _zone(name)


_MINUTE = timedelta(minutes=1)
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_MONTH_FULL = ("January", "February", "March", "April", "May", "June", "July", "August",
               "September", "October", "November", "December")  # fmt: skip
_DAY_FULL = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTH_LENGTH = dict(enumerate((31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), start=1))
_NO_NAMES: Mapping[str, int] = {}
# (field name, lowest, highest, highest for '*' and 'a/n', names)
_FIELDS: tuple[tuple[str, int, int, int, Mapping[str, int]], ...] = (
    ("minute", 0, 59, 59, _NO_NAMES),
    ("hour", 0, 23, 23, _NO_NAMES),
    ("day-of-month", 1, 31, 31, _NO_NAMES),
    ("month", 1, 12, 12, {name: number for number, name in enumerate(_MONTHS, start=1)}),
    # 7 is also Sunday when written, but '*' and steps stop at Saturday.
    ("day-of-week", 0, 7, 6, {name: number for number, name in enumerate(_DAYS)}),
)
_PART = re.compile(r"(?P<start>\*|\w+)(?:-(?P<end>\w+))?(?:/(?P<step>\w+))?")


def _parse_field(
    text: str, name: str, low: int, high: int, open_high: int, names: Mapping[str, int]
) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        match = _PART.fullmatch(part)
        if not match or (match["start"] == "*" and match["end"]):
            raise CronError(
                f"{name} field '{part}' is not valid; use *, a number, a list a,b, "
                "a range a-b or a step */n"
            )
        step = _number(match["step"] or "1", name, 1, high, _NO_NAMES, step=True)
        if match["start"] == "*":
            first, last = low, open_high
        else:
            first = _number(match["start"], name, low, high, names)
            last = first if not (match["end"] or match["step"]) else open_high
            if match["end"]:
                last = _number(match["end"], name, low, high, names)
            if last < first:
                raise CronError(f"{name} field '{part}' is a range that runs backwards")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _number(
    token: str, name: str, low: int, high: int, names: Mapping[str, int], step: bool = False
) -> int:
    label = f"{name} field step" if step else f"{name} field"
    if token.isascii() and token.isdigit():
        number = int(token)
    elif token.upper() in names:
        return names[token.upper()]
    else:
        hint = f" or a name like {next(iter(names))}" if names else ""
        raise CronError(f"{label} '{token}' is not a number{hint}")
    if not low <= number <= high:
        raise CronError(f"{label} '{token}' is out of range {low}-{high}")
    return number


def _zone(name: str) -> tzinfo:
    if name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:
        known = {key.lower(): key for key in available_timezones()}
        guess = known.get(str(name).lower())
        hint = f"did you mean '{guess}'?" if guess else "use an IANA name like 'Europe/Berlin'"
        raise CronError(f"unknown timezone '{name}'; {hint}") from e


def _first_at_least(values: Iterable[int], floor: int) -> int | None:
    return min((value for value in values if value >= floor), default=None)


def _describe_time(minutes: list[int], hours: list[int]) -> str:
    minute_text = _minutes_text(minutes)
    if len(hours) == 24:
        if minute_text.startswith("every"):
            return minute_text
        return f"every hour {minute_text}"
    if len(minutes) == 1 and len(hours) <= 6:
        return "at " + _join([f"{hour:02d}:{minutes[0]:02d}" for hour in hours])
    hour_step = _step(hours, 24)
    if hour_step and len(minutes) == 1:
        return f"every {hour_step} hours {minute_text}"
    hour_text = _ranges(hours, str)
    return f"{minute_text} during hour{'s' if len(hours) > 1 else ''} {hour_text}"


def _minutes_text(minutes: list[int]) -> str:
    if len(minutes) == 60:
        return "every minute"
    step = _step(minutes, 60)
    if step:
        return f"every {step} minutes"
    plural = "s" if len(minutes) > 1 else ""
    return f"at minute{plural} {_ranges(minutes, str)}"


def _days_text(days: frozenset[int]) -> str:
    ordered = sorted(days)
    if len(days) > 2 and ordered == list(range(1, 32, ordered[1] - 1)):
        return f"on day 1 of the month and every {ordered[1] - 1} days after"
    plural = "s" if len(days) > 1 else ""
    return f"on day{plural} {_ranges(sorted(days), str)} of the month"


def _weekdays_text(weekdays: frozenset[int]) -> str:
    if weekdays == {1, 2, 3, 4, 5}:
        return "on weekdays (Mon–Fri)"
    if weekdays == {0, 6}:
        return "on weekends (Sat and Sun)"
    # Monday first, as people read a week.
    order = [(day + 6) % 7 for day in _week_order(weekdays)]
    return "on " + _ranges(order, lambda index: _DAY_FULL[(index + 1) % 7])


def _months_text(months: frozenset[int]) -> str:
    return _ranges(sorted(months), lambda month: _MONTH_FULL[month - 1])


def _week_order(weekdays: frozenset[int]) -> list[int]:
    return sorted(weekdays, key=lambda day: (day + 6) % 7)


def _step(values: list[int], size: int) -> int | None:
    """The n of ``*/n`` if ``values`` are exactly 0, n, 2n... below ``size``."""
    if len(values) < 2 or values[0] != 0:
        return None
    step = values[1]
    return step if values == list(range(0, size, step)) else None


def _ranges(values: list[int], show: Callable[[int], str]) -> str:
    """``1–5, 7 and 9`` from sorted values; runs of three or more become ranges."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    words: list[str] = []
    for run in runs:
        if len(run) >= 3:
            words.append(f"{show(run[0])}–{show(run[-1])}")
        else:
            words.extend(show(value) for value in run)
    return _join(words)


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
