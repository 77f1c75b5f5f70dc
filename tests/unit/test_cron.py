from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.cron import PRESETS, CronError, CronSchedule, check_timezone, parse_cron

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def fire_times(expression: str, after: datetime, tz: str, count: int) -> list[datetime]:
    schedule, times = parse_cron(expression), []
    for _ in range(count):
        after = schedule.next_after(after, tz)
        times.append(after)
    return times


# --- parsing -----------------------------------------------------------------------------


def test_a_five_field_expression_is_expanded_into_sets_of_values() -> None:
    schedule = parse_cron("0,30 9-17 1,15 */3 MON-FRI")
    assert schedule.minutes == {0, 30}
    assert schedule.hours == set(range(9, 18))
    assert schedule.days == {1, 15}
    assert schedule.months == {1, 4, 7, 10}
    assert schedule.weekdays == {1, 2, 3, 4, 5}


def test_steps_work_on_ranges_and_on_a_single_start_value() -> None:
    assert parse_cron("10-30/10 * * * *").minutes == {10, 20, 30}
    assert parse_cron("45/5 * * * *").minutes == {45, 50, 55}


def test_month_and_day_names_are_case_insensitive() -> None:
    schedule = parse_cron("0 12 * jan,Jul sun")
    assert schedule.months == {1, 7}
    assert schedule.weekdays == {0}
    assert schedule.expression == "0 12 * JAN,JUL SUN"


def test_seven_is_sunday_too() -> None:
    assert parse_cron("0 0 * * 7").weekdays == {0}
    assert parse_cron("0 0 * * 5-7").weekdays == {5, 6, 0}


def test_extra_whitespace_is_normalized_in_the_expression() -> None:
    assert parse_cron("  0   9 *  * 1 ").expression == "0 9 * * 1"


@pytest.mark.parametrize(
    ("name", "expression"),
    [
        ("hourly", "0 * * * *"),
        ("daily", "0 9 * * *"),
        ("weekly", "0 9 * * 1"),
        ("monthly", "0 9 1 * *"),
        ("weekdays", "0 9 * * 1-5"),
    ],
)
def test_presets_expand_with_or_without_an_at_sign(name: str, expression: str) -> None:
    assert PRESETS[name] == expression
    assert parse_cron(name).expression == expression
    assert parse_cron("@" + name).expression == expression
    assert parse_cron(name.upper()).expression == expression


def test_a_day_field_starting_with_a_star_counts_as_unrestricted() -> None:
    assert not parse_cron("0 9 */2 * *").day_restricted
    assert parse_cron("0 9 1-31 * *").day_restricted
    assert parse_cron("0 9 * * 1").weekday_restricted
    assert not parse_cron("0 9 * * *").weekday_restricted


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", "minute field '61' is out of range 0-59"),
        ("* 24 * * *", "hour field '24' is out of range 0-23"),
        ("* * 0 * *", "day-of-month field '0' is out of range 1-31"),
        ("* * * 13 *", "month field '13' is out of range 1-12"),
        ("* * * * 8", "day-of-week field '8' is out of range 0-7"),
        ("*/0 * * * *", "minute field step '0' is out of range"),
        ("5-1 * * * *", "minute field '5-1' is a range that runs backwards"),
        ("* * * FOO *", "month field 'FOO' is not a number"),
        ("* * * * funday", "day-of-week field 'funday' is not a number"),
        ("1,,2 * * * *", "minute field '' is not valid"),
        ("*-5 * * * *", "minute field '*-5' is not valid"),
        ("0 0 30 2 *", "day-of-month field '30' never occurs in month field '2'"),
        ("0 0 31 4,6,9,11 *", "never occurs"),
    ],
)
def test_errors_name_the_field_and_the_bad_token(expression: str, message: str) -> None:
    with pytest.raises(CronError) as error:
        parse_cron(expression)
    assert message in str(error.value)


@pytest.mark.parametrize("expression", ["* * * *", "0 0 * * * *", ""])
def test_a_wrong_number_of_fields_is_rejected_with_the_field_order_and_presets(
    expression: str,
) -> None:
    with pytest.raises(CronError) as error:
        parse_cron(expression)
    message = str(error.value)
    assert "minute hour day-of-month month day-of-week" in message
    assert "weekdays" in message


def test_an_unknown_preset_is_reported_as_not_a_preset() -> None:
    with pytest.raises(CronError, match="'@reboot' is not a preset"):
        parse_cron("@reboot")


def test_a_cron_error_is_a_value_error() -> None:
    assert issubclass(CronError, ValueError)


# --- timezones ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
def test_known_timezones_are_accepted(name: str) -> None:
    check_timezone(name)


@pytest.mark.parametrize("name", ["Mars/Base", "", "Europe", "../etc/passwd"])
def test_an_unknown_timezone_is_rejected_with_an_example(name: str) -> None:
    with pytest.raises(CronError) as error:
        check_timezone(name)
    assert str(error.value) == f"unknown timezone '{name}'; use an IANA name like 'Europe/Berlin'"


def test_a_timezone_in_the_wrong_case_gets_a_suggestion() -> None:
    with pytest.raises(CronError, match="did you mean 'Europe/Berlin'"):
        check_timezone("europe/berlin")


def test_next_after_rejects_an_unknown_timezone() -> None:
    with pytest.raises(CronError, match="unknown timezone"):
        parse_cron("hourly").next_after(utc(2025, 1, 1), "Nowhere/Town")


# --- next_after --------------------------------------------------------------------------


def test_the_next_fire_time_is_strictly_after_the_given_time() -> None:
    schedule = parse_cron("0 9 * * *")
    assert schedule.next_after(utc(2025, 1, 1, 9, 0)) == utc(2025, 1, 2, 9, 0)
    assert schedule.next_after(utc(2025, 1, 1, 8, 59, 59)) == utc(2025, 1, 1, 9, 0)


def test_seconds_in_the_given_time_do_not_cause_a_fire_in_the_same_minute() -> None:
    assert parse_cron("* * * * *").next_after(utc(2025, 1, 1, 0, 0, 30)) == utc(2025, 1, 1, 0, 1)


def test_the_result_is_an_aware_utc_datetime() -> None:
    after = datetime(2025, 6, 1, 12, tzinfo=BERLIN)
    result = parse_cron("daily").next_after(after, "Europe/Berlin")
    assert result.tzinfo is UTC
    assert result == datetime(2025, 6, 2, 9, tzinfo=BERLIN)


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(CronError, match="timezone-aware"):
        parse_cron("hourly").next_after(datetime(2025, 1, 1))


def test_the_daily_preset_fires_at_nine_local_time() -> None:
    times = fire_times("daily", utc(2025, 1, 1), "America/New_York", 2)
    assert times == [utc(2025, 1, 1, 14), utc(2025, 1, 2, 14)]


def test_the_weekdays_preset_skips_the_weekend() -> None:
    friday = utc(2025, 1, 3, 10)
    assert parse_cron("weekdays").next_after(friday) == utc(2025, 1, 6, 9)


def test_the_31st_fires_only_in_months_that_have_one() -> None:
    times = fire_times("0 0 31 * *", utc(2025, 1, 31, 12), "UTC", 4)
    assert times == [utc(2025, 3, 31), utc(2025, 5, 31), utc(2025, 7, 31), utc(2025, 8, 31)]


def test_february_29th_fires_only_in_leap_years() -> None:
    times = fire_times("0 0 29 2 *", utc(2025, 1, 1), "UTC", 3)
    assert times == [utc(2028, 2, 29), utc(2032, 2, 29), utc(2036, 2, 29)]


def test_february_29th_skips_1900_style_century_years() -> None:
    assert parse_cron("0 0 29 2 *").next_after(utc(2097, 1, 1)) == utc(2104, 2, 29)


def test_day_and_weekday_both_restricted_fire_when_either_matches() -> None:
    # Friday the 13th in Vixie cron means "every 13th and every Friday".
    times = fire_times("0 0 13 * FRI", utc(2025, 1, 1), "UTC", 5)
    assert times == [
        utc(2025, 1, 3),
        utc(2025, 1, 10),
        utc(2025, 1, 13),
        utc(2025, 1, 17),
        utc(2025, 1, 24),
    ]


def test_a_starred_day_field_with_a_step_requires_both_day_and_weekday() -> None:
    # '*/2' starts with '*', so Vixie cron treats the day as unrestricted: both must match.
    times = fire_times("0 0 */2 * MON", utc(2025, 1, 1), "UTC", 3)
    assert times == [utc(2025, 1, 13), utc(2025, 1, 27), utc(2025, 2, 3)]


def test_a_rare_date_on_a_given_weekday_is_found_quickly() -> None:
    # Feb 29 that is also a Sunday ('*/7' keeps the AND rule): next one is in 2032.
    assert parse_cron("0 0 29 2 */7").next_after(utc(2025, 1, 1)) == utc(2032, 2, 29)


def test_steps_fire_at_each_multiple() -> None:
    times = fire_times("*/20 */6 * * *", utc(2025, 1, 1, 0, 30), "UTC", 4)
    assert times == [utc(2025, 1, 1, 0, 40), utc(2025, 1, 1, 6), utc(2025, 1, 1, 6, 20),
                     utc(2025, 1, 1, 6, 40)]  # fmt: skip


def test_next_after_crosses_the_end_of_the_year() -> None:
    assert parse_cron("0 0 1 1 *").next_after(utc(2025, 6, 1)) == utc(2026, 1, 1)


# --- daylight saving time ------------------------------------------------------------------


def test_a_wall_time_skipped_by_spring_forward_in_berlin_does_not_fire_that_day() -> None:
    times = fire_times("30 2 * * *", utc(2025, 3, 29, 12), "Europe/Berlin", 2)
    local = [t.astimezone(BERLIN) for t in times]
    assert [t.date().isoformat() for t in local] == ["2025-03-31", "2025-04-01"]
    assert all((t.hour, t.minute) == (2, 30) for t in local)


def test_hourly_in_new_york_skips_the_missing_two_oclock_hour() -> None:
    times = fire_times("hourly", utc(2025, 3, 9, 5), "America/New_York", 3)
    local = [t.astimezone(NEW_YORK).hour for t in times]
    assert local == [1, 3, 4]
    assert times[1] - times[0] == timedelta(hours=1)


def test_an_ambiguous_wall_time_in_berlin_fires_once_at_its_first_occurrence() -> None:
    times = fire_times("30 2 * * *", utc(2025, 10, 25, 12), "Europe/Berlin", 2)
    assert times == [utc(2025, 10, 26, 0, 30), utc(2025, 10, 27, 1, 30)]


def test_during_the_repeated_hour_in_new_york_each_minute_fires_only_once() -> None:
    start = datetime(2025, 11, 2, 0, 50, tzinfo=NEW_YORK)
    end = datetime(2025, 11, 2, 2, 10, tzinfo=NEW_YORK)
    slots = parse_cron("*/15 * * * *").slots_between(start, end, "America/New_York")
    walls = [t.astimezone(NEW_YORK).strftime("%H:%M") for t in slots]
    assert walls == ["01:00", "01:15", "01:30", "01:45", "02:00"]
    assert len(set(slots)) == len(slots)


def test_next_after_from_inside_the_repeated_hour_moves_on_past_it() -> None:
    second_pass = datetime(2025, 10, 26, 2, 10, fold=1, tzinfo=BERLIN)
    result = parse_cron("*/30 * * * *").next_after(second_pass, "Europe/Berlin")
    assert result == datetime(2025, 10, 26, 3, 0, tzinfo=BERLIN)
    assert result > second_pass


# --- slots_between -------------------------------------------------------------------------


def test_slots_between_lists_fire_times_after_start_up_to_and_including_end() -> None:
    slots = parse_cron("0 * * * *").slots_between(utc(2025, 1, 1, 0), utc(2025, 1, 1, 3))
    assert slots == [utc(2025, 1, 1, 1), utc(2025, 1, 1, 2), utc(2025, 1, 1, 3)]


def test_slots_between_stops_at_the_limit() -> None:
    slots = parse_cron("* * * * *").slots_between(utc(2025, 1, 1), utc(2025, 2, 1), limit=5)
    assert len(slots) == 5
    assert slots[-1] == utc(2025, 1, 1, 0, 5)


def test_slots_between_is_empty_when_nothing_fires_in_the_window() -> None:
    assert parse_cron("daily").slots_between(utc(2025, 1, 1, 10), utc(2025, 1, 2, 8)) == []


# --- describe ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "text"),
    [
        ("* * * * *", "every minute"),
        ("*/15 * * * *", "every 15 minutes"),
        ("hourly", "every hour at minute 0"),
        ("5,35 * * * *", "every hour at minutes 5 and 35"),
        ("daily", "at 09:00 every day"),
        ("weekly", "at 09:00 on Monday"),
        ("weekdays", "at 09:00 on weekdays (Mon–Fri)"),
        ("monthly", "at 09:00 on day 1 of the month"),
        ("0 9 * * 0,6", "at 09:00 on weekends (Sat and Sun)"),
        ("0 8,12,18 * * MON,WED,FRI", "at 08:00, 12:00 and 18:00 on Monday, Wednesday and Friday"),
        ("0 */2 * * *", "every 2 hours at minute 0"),
        ("*/30 9-17 * * 1-5", "every 30 minutes during hours 9–17 on weekdays (Mon–Fri)"),
        ("0 0 13 * 5", "at 00:00 on day 13 of the month or on Friday"),
        ("0 12 1 JAN,JUL *", "at 12:00 on day 1 of the month in January and July"),
        ("0 6 * * 0-3", "at 06:00 on Monday–Wednesday and Sunday"),
    ],
)
def test_schedules_are_described_in_plain_words(expression: str, text: str) -> None:
    assert parse_cron(expression).describe() == text


# --- property: next_after agrees with a minute-by-minute search ------------------------------


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    return st.one_of(
        st.just("*"),
        st.just("*"),
        number.map(str),
        st.lists(number, min_size=1, max_size=4).map(lambda xs: ",".join(map(str, xs))),
        st.tuples(number, number).map(lambda ab: f"{min(ab)}-{max(ab)}"),
        st.integers(1, high - low or 1).map(lambda n: f"*/{n}"),
        st.tuples(number, st.integers(1, 5)).map(lambda a: f"{a[0]}/{a[1]}"),
    )


def _expressions() -> st.SearchStrategy[str]:
    fields = st.tuples(_field(0, 59), _field(0, 23), _field(1, 31), _field(1, 12), _field(0, 7))
    return fields.map(" ".join)


def _try_parse(expression: str) -> CronSchedule | None:
    try:
        return parse_cron(expression)
    except CronError:
        return None


def _matches(schedule: CronSchedule, wall: datetime) -> bool:
    fields = schedule.expression.split()
    in_month = wall.day in schedule.days
    in_week = wall.isoweekday() % 7 in schedule.weekdays
    either = not fields[2].startswith("*") and not fields[4].startswith("*")
    day_ok = (in_month or in_week) if either else (in_month and in_week)
    return (
        wall.minute in schedule.minutes
        and wall.hour in schedule.hours
        and wall.month in schedule.months
        and day_ok
    )


def _brute_force(schedule: CronSchedule, after: datetime, minutes: int, tz: str) -> datetime | None:
    zone = ZoneInfo(tz)
    candidate = after.replace(second=0, microsecond=0)
    for _ in range(minutes):
        candidate += timedelta(minutes=1)
        local = candidate.astimezone(zone)
        # An ambiguous wall time fires at its first occurrence only (fold=0).
        if local.fold == 0 and _matches(schedule, local.replace(tzinfo=None)):
            return candidate
    return None


WINDOW = 3 * 24 * 60


@settings(max_examples=150, deadline=None)
@given(
    expression=_expressions(),
    after=st.datetimes(datetime(2020, 1, 1), datetime(2030, 12, 31)),
)
def test_next_after_agrees_with_a_minute_by_minute_search_in_utc(
    expression: str, after: datetime
) -> None:
    schedule = _try_parse(expression)
    if schedule is None:
        return
    after = after.replace(tzinfo=UTC)
    expected = _brute_force(schedule, after, WINDOW, "UTC")
    actual = schedule.next_after(after)
    if expected is None:
        assert actual > after + timedelta(minutes=WINDOW)
    else:
        assert actual == expected


TRANSITIONS = [
    utc(2025, 3, 30, 1),  # Berlin springs forward
    utc(2025, 10, 26, 1),  # Berlin falls back
    utc(2025, 3, 9, 7),  # New York springs forward
    utc(2025, 11, 2, 6),  # New York falls back
]


@settings(max_examples=150, deadline=None)
@given(
    minute=_field(0, 59),
    hour=_field(0, 23),
    tz=st.sampled_from(["Europe/Berlin", "America/New_York"]),
    transition=st.sampled_from(TRANSITIONS),
    offset=st.integers(-240, 240),
)
def test_next_after_agrees_with_a_minute_by_minute_search_across_dst_changes(
    minute: str, hour: str, tz: str, transition: datetime, offset: int
) -> None:
    schedule = parse_cron(f"{minute} {hour} * * *")
    after = transition + timedelta(minutes=offset, seconds=offset % 7)
    expected = _brute_force(schedule, after, 2 * 24 * 60, tz)
    assert expected is not None
    assert schedule.next_after(after, tz) == expected
