"""Durations as written in process files: ``90s``, ``5m``, ``1h30m``, ``2d``, ``PT5M``, ``90``."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

__all__ = ["DurationError", "format_duration", "parse_duration"]


class DurationError(ValueError):
    """A value that is not a duration; the message says what is wrong and how to write one."""


def parse_duration(value: object) -> timedelta:
    """Read a duration: seconds as a number, unit text like ``1h30m`` or ISO 8601 like ``PT5M``.

    Units (case-insensitive, in any order, each at most once, spaces allowed):
    ``ms``, ``s``, ``m``, ``h``, ``d``, ``w`` and their long forms (``min``, ``hours``...).
    Negative, empty and unreadable values raise :class:`DurationError`.
    """
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise DurationError(f"duration {format_duration(value)} is negative")
        return value
    if isinstance(value, bool):
        raise DurationError(f"{value!r} is not a duration; {_HINT}")
    if isinstance(value, int | float | Decimal):
        return _from_micros(_number(str(value), repr(value)) * _MICROS["s"], repr(value))
    if not isinstance(value, str):
        raise DurationError(f"{value!r} is not a duration; {_HINT}")
    text = value.strip()
    if not text:
        raise DurationError(f"an empty value is not a duration; {_HINT}")
    if text.startswith("-"):
        raise DurationError(f"duration '{text}' is negative; a duration must be zero or more")
    if _NUMBER.fullmatch(text):
        return _from_micros(Decimal(text) * _MICROS["s"], f"'{text}'")
    if text[0] in "pP":
        return _from_micros(_parse_iso(text), f"'{text}'")
    return _from_micros(_parse_units(text), f"'{text}'")


def format_duration(td: timedelta) -> str:
    """Write a duration in its canonical short form: ``1h30m``, ``1m30s``, ``0s``, ``500ms``.

    Days are the largest unit; a negative duration gets a leading ``-``.
    ``parse_duration(format_duration(td)) == td`` for every non-negative ``td``.
    """
    if td < timedelta(0):
        return "-" + format_duration(-td)
    micros = td // timedelta(microseconds=1)
    if micros == 0:
        return "0s"
    parts: list[str] = []
    for unit in ("d", "h", "m", "s"):
        count, micros = divmod(micros, _MICROS[unit])
        if count:
            parts.append(f"{count}{unit}")
    if micros:
        millis = Decimal(micros) / _MICROS["ms"]
        parts.append(f"{format(millis.normalize(), 'f')}ms")
    return "".join(parts)


_HINT = "use a number of seconds or units s, m, h, d like 90s, 5m, 1h30m, 2d"

_MICROS: dict[str, int] = {
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
    "w": 604_800_000_000,
}

_ALIASES: dict[str, str] = {
    **{name: "ms" for name in ("ms", "msec", "msecs", "millisecond", "milliseconds")},
    **{name: "s" for name in ("s", "sec", "secs", "second", "seconds")},
    **{name: "m" for name in ("m", "min", "mins", "minute", "minutes")},
    **{name: "h" for name in ("h", "hr", "hrs", "hour", "hours")},
    **{name: "d" for name in ("d", "day", "days")},
    **{name: "w" for name in ("w", "wk", "wks", "week", "weeks")},
}

# Months and years have no fixed length, so they get their own message.
_CALENDAR_UNITS = frozenset({"mo", "mon", "month", "months", "y", "yr", "yrs", "year", "years"})

_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)"
_NUMBER = re.compile(_NUM)
_UNIT_TEXT = re.compile(rf"(?:{_NUM}\s*[a-z]+\s*)+", re.IGNORECASE)
_UNIT_PART = re.compile(rf"({_NUM})\s*([a-z]+)", re.IGNORECASE)
_ISO = re.compile(
    rf"P(?:(?P<y>{_NUM})Y)?(?:(?P<mo>{_NUM})M)?(?:(?P<w>{_NUM})W)?(?:(?P<d>{_NUM})D)?"
    rf"(?:T(?:(?P<h>{_NUM})H)?(?:(?P<m>{_NUM})M)?(?:(?P<s>{_NUM})S)?)?",
    re.IGNORECASE,
)
_MAX_MICROS = timedelta.max // timedelta(microseconds=1)


def _parse_units(text: str) -> Decimal:
    if not _UNIT_TEXT.fullmatch(text):
        raise DurationError(f"'{text}' is not a duration; {_HINT}")
    total = Decimal(0)
    seen: set[str] = set()
    for number, word in _UNIT_PART.findall(text):
        word = word.lower()
        if word in _CALENDAR_UNITS:
            raise DurationError(
                f"'{text}': months and years have no fixed length; use days, like 30d"
            )
        unit = _ALIASES.get(word)
        if unit is None:
            raise DurationError(f"'{text}' is not a duration (unknown unit '{word}'); {_HINT}")
        if unit in seen:
            raise DurationError(f"'{text}' gives the unit '{unit}' more than once; {_HINT}")
        seen.add(unit)
        total += Decimal(number) * _MICROS[unit]
    return total


def _parse_iso(text: str) -> Decimal:
    match = _ISO.fullmatch(text)
    parts = match.groupdict() if match else {}
    if not match or not any(parts.values()) or text.upper().endswith("T"):
        raise DurationError(f"'{text}' is not an ISO 8601 duration like PT5M or P1DT2H; {_HINT}")
    if parts["y"] or parts["mo"]:
        raise DurationError(f"'{text}': months and years have no fixed length; use days, like P30D")
    return sum(
        (Decimal(parts[unit]) * _MICROS[unit] for unit in ("w", "d", "h", "m", "s") if parts[unit]),
        Decimal(0),
    )


def _number(text: str, shown: str) -> Decimal:
    try:
        number = Decimal(text)
    except InvalidOperation as e:
        raise DurationError(f"{shown} is not a duration; {_HINT}") from e
    if not number.is_finite():
        raise DurationError(f"{shown} is not a duration; {_HINT}")
    if number < 0:
        raise DurationError(f"duration {shown} is negative; a duration must be zero or more")
    return number


def _from_micros(micros: Decimal, shown: str) -> timedelta:
    whole = int(micros.to_integral_value(rounding=ROUND_HALF_EVEN))
    if whole > _MAX_MICROS:
        raise DurationError(f"duration {shown} is too long")
    return timedelta(microseconds=whole)
