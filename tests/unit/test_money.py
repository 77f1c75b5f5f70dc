from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.money import MoneyError, format_money, parse_money


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("$5.00", Decimal("5.00")),
        ("5", Decimal("5")),
        (5, Decimal("5")),
        (5.5, Decimal("5.5")),
        ("USD 5", Decimal("5")),
        ("5 USD", Decimal("5")),
        ("usd 2.50", Decimal("2.50")),
        ("$ 0.25", Decimal("0.25")),
        (".5", Decimal("0.5")),
        ("$1,250.50", Decimal("1250.50")),
        ("0", Decimal("0")),
        (Decimal("3.14"), Decimal("3.14")),
    ],
)
def test_amounts_in_dollars_are_read_as_decimals(value: object, expected: Decimal) -> None:
    result = parse_money(value)
    assert isinstance(result, Decimal)
    assert result == expected


def test_floats_are_read_through_their_text_so_no_binary_error_creeps_in() -> None:
    assert parse_money(0.1) == Decimal("0.1")
    assert parse_money(0.1) + parse_money(0.2) == Decimal("0.3")


def test_the_written_precision_is_kept() -> None:
    assert str(parse_money("$5.00")) == "5.00"


@pytest.mark.parametrize("value", ["€3", "3 EUR", "eur 3", "£2", "¥100", "GBP 4.50"])
def test_other_currencies_are_rejected_with_a_usd_only_message(value: str) -> None:
    with pytest.raises(MoneyError) as error:
        parse_money(value)
    message = str(error.value)
    assert "not in US dollars" in message
    assert "'$5.00'" in message


@pytest.mark.parametrize("value", ["-5", "-$5", "$-5", "- 5 USD", -1, -0.01, Decimal("-2")])
def test_negative_amounts_are_rejected(value: object) -> None:
    with pytest.raises(MoneyError, match="negative"):
        parse_money(value)


@pytest.mark.parametrize(
    "value", ["", "  ", "ten", "five dollars", "5$", "1e3", "$", "1,2", None, True, [5], "NaN"]
)
def test_text_that_is_not_an_amount_is_rejected_with_an_example(value: object) -> None:
    with pytest.raises(MoneyError) as error:
        parse_money(value)
    assert "like 5, 0.25, '$5.00' or '5 USD'" in str(error.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), Decimal("Infinity")])
def test_not_a_number_and_infinity_are_rejected(value: object) -> None:
    with pytest.raises(MoneyError):
        parse_money(value)


def test_a_money_error_is_a_value_error() -> None:
    assert issubclass(MoneyError, ValueError)


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("0", "$0.00"),
        ("5", "$5.00"),
        ("5.5", "$5.50"),
        ("0.0123", "$0.0123"),
        ("0.123456", "$0.123456"),
        ("0.1234565", "$0.123457"),
        ("1234.5", "$1234.50"),
        ("0.0000004", "$0.00"),
        ("-2.5", "-$2.50"),
        ("1E+3", "$1000.00"),
        ("12345678901234567890123456789.25", "$12345678901234567890123456789.25"),
    ],
)
def test_amounts_are_written_with_two_to_six_decimals(amount: str, text: str) -> None:
    assert format_money(Decimal(amount)) == text


def test_formatting_a_non_number_is_an_error() -> None:
    with pytest.raises(MoneyError):
        format_money(Decimal("NaN"))


@given(st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False))
def test_every_formatted_amount_reads_back_to_the_same_value(amount: Decimal) -> None:
    assert parse_money(format_money(amount)) == amount
