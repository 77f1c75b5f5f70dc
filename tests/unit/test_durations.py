from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (90, timedelta(seconds=90)),
        (1.5, timedelta(seconds=1.5)),
        (0, timedelta(0)),
        (Decimal("2.25"), timedelta(seconds=2.25)),
        ("90", timedelta(seconds=90)),
        ("1.5", timedelta(seconds=1.5)),
        ("90s", timedelta(seconds=90)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1d2h", timedelta(days=1, hours=2)),
        ("500ms", timedelta(milliseconds=500)),
        ("1w", timedelta(weeks=1)),
        ("0s", timedelta(0)),
    ],
)
def test_numbers_and_unit_text_are_read_as_durations(value: object, expected: timedelta) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize("text", ["1h 30m", "1H30M", " 1h30m ", "30m1h", "1 hour 30 minutes"])
def test_spaces_case_order_and_long_unit_names_do_not_matter(text: str) -> None:
    assert parse_duration(text) == timedelta(hours=1, minutes=30)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT5M", timedelta(minutes=5)),
        ("P1D", timedelta(days=1)),
        ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
        ("pt1.5s", timedelta(seconds=1.5)),
        ("P2W", timedelta(weeks=2)),
    ],
)
def test_iso_8601_durations_are_accepted(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_fractions_are_exact_to_the_microsecond_without_float_error() -> None:
    assert parse_duration("0.1s") == timedelta(microseconds=100_000)
    assert parse_duration(0.1) == timedelta(microseconds=100_000)
    assert parse_duration("1.5ms") == timedelta(microseconds=1500)


def test_a_timedelta_passes_through_unchanged() -> None:
    assert parse_duration(timedelta(minutes=3)) == timedelta(minutes=3)


def test_an_unknown_unit_is_rejected_with_the_accepted_forms_in_the_message() -> None:
    with pytest.raises(DurationError) as error:
        parse_duration("5x")
    message = str(error.value)
    assert "'5x' is not a duration" in message
    assert "90s, 5m, 1h30m, 2d" in message


@pytest.mark.parametrize("value", ["-5", "-5m", -1, -0.5, timedelta(seconds=-1)])
def test_negative_durations_are_rejected(value: object) -> None:
    with pytest.raises(DurationError, match="negative"):
        parse_duration(value)


@pytest.mark.parametrize("value", ["", "   ", "abc", "1h30", "1e3", "h", "5 m x", None, [], True])
def test_empty_garbage_and_non_numbers_are_rejected(value: object) -> None:
    with pytest.raises(DurationError, match="not a duration"):
        parse_duration(value)


def test_a_bool_is_not_taken_for_one_second() -> None:
    with pytest.raises(DurationError):
        parse_duration(False)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_and_infinity_are_rejected(value: float) -> None:
    with pytest.raises(DurationError):
        parse_duration(value)


def test_a_repeated_unit_is_rejected_and_named() -> None:
    with pytest.raises(DurationError, match="'m' more than once"):
        parse_duration("5m1h5m")


def test_a_repeated_unit_counts_aliases_as_the_same_unit() -> None:
    with pytest.raises(DurationError, match="more than once"):
        parse_duration("1h 2hours")


@pytest.mark.parametrize("text", ["1mo", "2 years", "P1M", "P1Y"])
def test_months_and_years_are_rejected_because_their_length_varies(text: str) -> None:
    with pytest.raises(DurationError, match="no fixed length"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["P", "PT", "P1DT", "P5X"])
def test_incomplete_iso_durations_are_rejected(text: str) -> None:
    with pytest.raises(DurationError, match="ISO 8601"):
        parse_duration(text)


def test_a_duration_beyond_what_can_be_stored_is_rejected_as_too_long() -> None:
    with pytest.raises(DurationError, match="too long"):
        parse_duration("9999999999d")


@pytest.mark.parametrize(
    ("td", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(days=2), "2d"),
        (timedelta(weeks=1), "7d"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(seconds=1, milliseconds=500), "1s500ms"),
        (timedelta(microseconds=1500), "1.5ms"),
        (timedelta(days=1, hours=2, minutes=3, seconds=4), "1d2h3m4s"),
        (timedelta(seconds=-5), "-5s"),
    ],
)
def test_durations_are_written_in_the_canonical_short_form(td: timedelta, text: str) -> None:
    assert format_duration(td) == text


@given(st.timedeltas(min_value=timedelta(0)))
def test_every_formatted_duration_reads_back_to_the_same_value(td: timedelta) -> None:
    assert parse_duration(format_duration(td)) == td
