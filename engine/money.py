"""Amounts of money in US dollars, as ``Decimal`` (never float arithmetic)."""

from __future__ import annotations

import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext

__all__ = ["MoneyError", "format_money", "parse_money"]


class MoneyError(ValueError):
    """A value that is not an amount of US dollars; the message says how to write one."""


def parse_money(value: object) -> Decimal:
    """Read a non-negative amount of US dollars: ``5``, ``5.5``, ``"$5.00"``, ``"USD 5"``.

    Floats go through ``str`` first, so ``0.1`` becomes ``Decimal("0.1")``. Thousands
    separators (``"$1,250.50"``) are accepted; other currencies and negatives are not.
    """
    if isinstance(value, bool):
        raise MoneyError(f"{value!r} is not an amount of money; {_HINT}")
    if isinstance(value, Decimal):
        amount, shown = value, str(value)
    elif isinstance(value, int | float):
        amount, shown = _decimal(str(value), repr(value)), repr(value)
    elif isinstance(value, str):
        amount, shown = _parse_text(value), f"'{value.strip()}'"
    else:
        raise MoneyError(f"{value!r} is not an amount of money; {_HINT}")
    if not amount.is_finite():
        raise MoneyError(f"{shown} is not an amount of money; {_HINT}")
    if amount < 0:
        raise MoneyError(f"{shown} is negative; an amount of money must be zero or more")
    return amount


def format_money(amount: Decimal) -> str:
    """Write dollars with 2 to 6 decimals: ``$5.00``, ``$0.0123``, ``$0.123457`` (rounded)."""
    if not amount.is_finite():
        raise MoneyError(f"{amount} is not an amount of money")
    with localcontext() as context:
        context.prec = max(28, amount.adjusted() + 10)
        rounded = amount.quantize(_MICRO, rounding=ROUND_HALF_UP)
        whole, _, decimals = format(abs(rounded), "f").partition(".")
    sign = "-" if rounded < 0 else ""
    return f"{sign}${whole}.{decimals.rstrip('0').ljust(2, '0')}"


_HINT = "use a number of US dollars like 5, 0.25, '$5.00' or '5 USD'"
_MICRO = Decimal("0.000001")
_NUMBER = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+"
_TEXT = re.compile(
    rf"(?P<sign>-?)\s*(?:USD\s*)?\$?\s*(?P<sign2>-?)\s*(?P<number>{_NUMBER})\s*(?:USD)?",
    re.IGNORECASE,
)
_CURRENCY_CODE = re.compile(r"(?<![A-Z])[A-Z]{3}(?![A-Z])", re.IGNORECASE)


def _parse_text(value: str) -> Decimal:
    text = value.strip()
    if not text:
        raise MoneyError(f"an empty value is not an amount of money; {_HINT}")
    match = _TEXT.fullmatch(text)
    if match is None:
        if _foreign_currency(text):
            raise MoneyError(f"'{text}' is not in US dollars; amounts are in USD only, {_HINT}")
        raise MoneyError(f"'{text}' is not an amount of money; {_HINT}")
    if match["sign"] or match["sign2"]:
        raise MoneyError(f"'{text}' is negative; an amount of money must be zero or more")
    return _decimal(match["number"].replace(",", ""), f"'{text}'")


def _foreign_currency(text: str) -> bool:
    symbols = {char for char in text if unicodedata.category(char) == "Sc"} - {"$"}
    # Three letters beside a number ("EUR 3") read as a currency; "ten" alone does not.
    codes = {code.upper() for code in _CURRENCY_CODE.findall(text)} - {"USD"}
    return bool(symbols) or (bool(codes) and any(char.isdigit() for char in text))


def _decimal(text: str, shown: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation as e:
        raise MoneyError(f"{shown} is not an amount of money; {_HINT}") from e
