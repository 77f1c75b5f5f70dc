"""Expressions in process definitions: conditions, templates and agent replies.

A hand-written tokenizer and recursive-descent parser (``engine.expr_parser``) and the
evaluator below. Nothing ever reaches ``eval``, ``exec`` or ``compile``, and no Python
attribute is ever read: paths only walk mappings and lists.

The language
------------
* Two forms. A *condition* is one expression; ``{{ e }}`` inside it means ``( e )``, so
  ``"{{steps.a.output.score}} >= 80"`` compares values, not text. A *template* is text
  with ``{{ e }}`` placeholders; ``${{input.amount}}`` is a literal ``$`` then a
  placeholder, lone ``{``/``}`` are text, and ``{{ '{{' }}`` writes literal braces.
* References: ``input.x``, ``steps.<id>.output.a.b``, ``steps.<id>.status``,
  ``steps.<id>.error``, ``execution.id``, ``process.name``... A ``-`` joined to name
  characters on both sides is part of the name (``steps.route-decision``). Indexing:
  ``items[0]``, ``items[-1]``, ``items.0``, ``data["key"]``, ``data['key']``.
  ``steps.<id>.<key>``, when the step record has no such field, reads
  ``steps.<id>.output.<key>`` (the shorthand of older Trinity files).
* Literals: quoted strings (backslash escapes), integers and decimals (``-1``, ``0.5``),
  ``true``/``True``, ``false``/``False``, ``null``/``None``/``none``.
* Operators, low to high precedence: ``or``; ``and``; ``not``; comparisons
  ``== != > >= < <=``, ``in``, ``not in``, ``contains`` (not chainable); ``||`` (first
  value that is not null, "", [] or {}; else the last); filters ``| default(x)``,
  ``| length``, ``| lower``, ``| upper``, ``| json``. There is no arithmetic.
* Values: a missing key, index or field is ``null``. ``and``/``or``/``not`` give
  booleans. Ordering (``> >= < <=``) is false whenever a side is null, a boolean, or
  the sides cannot be compared; never an error. Numbers and numeric strings compare as
  numbers (``"85" >= 80``, ``"85" == 85``); two strings are equal only when identical;
  a string equals a boolean when it reads "true"/"false" in any case; ``null == null``.
* Rendering (``to_text``): null -> "", booleans -> true/false, floats as Python writes
  them (``90.0``), a dict -> its ``response`` (else ``value``) field, else JSON; lists
  -> JSON.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.expr_parser import (
    BoolOp,
    Coalesce,
    Compare,
    ExpressionError,
    Literal,
    Node,
    Not,
    Pipe,
    Placeholder,
    Reference,
    iter_references,
    parse_condition,
    parse_template,
)

__all__ = [
    "ExpressionError",
    "Reference",
    "RenderResult",
    "check_condition",
    "check_template",
    "condition_references",
    "evaluate",
    "evaluate_condition",
    "parse_agent_reply",
    "render_template",
    "render_value",
    "template_references",
    "to_text",
    "truthy",
]


@dataclass(frozen=True)
class RenderResult:
    """A rendered template and one warning per placeholder that had no value."""

    text: str
    warnings: tuple[str, ...]


def check_condition(text: str) -> None:
    """Raise ExpressionError if the condition does not parse."""
    parse_condition(text)


def check_template(text: str) -> None:
    """Raise ExpressionError for an unclosed '{{' or a bad expression inside one."""
    parse_template(text)


def condition_references(text: str) -> list[Reference]:
    """Every reference in a condition, in source order."""
    return sorted(iter_references(parse_condition(text)), key=lambda ref: ref.position)


def template_references(text: str) -> list[Reference]:
    """Every reference in a template's placeholders, in source order."""
    return [
        reference
        for segment in parse_template(text)
        if isinstance(segment, Placeholder)
        for reference in sorted(iter_references(segment.node), key=lambda ref: ref.position)
    ]


def evaluate_condition(text: str, context: Mapping[str, Any]) -> bool:
    """Evaluate a condition to a boolean (see ``truthy``)."""
    return truthy(evaluate(text, context))


def evaluate(text: str, context: Mapping[str, Any]) -> Any:
    """Evaluate a condition-form expression and return its value."""
    return _evaluate(parse_condition(text), context)


def render_template(text: str, context: Mapping[str, Any]) -> RenderResult:
    """Render a template; a placeholder without a value renders as "" and warns."""
    parts: list[str] = []
    warnings: list[str] = []
    for segment in parse_template(text):
        if isinstance(segment, str):
            parts.append(segment)
            continue
        value = _evaluate(segment.node, context)
        if value is None:
            warning = f"{{{{{segment.source}}}}} has no value; rendered as empty text"
            if warning not in warnings:
                warnings.append(warning)
        parts.append(to_text(value))
    return RenderResult("".join(parts), tuple(warnings))


def render_value(text: str, context: Mapping[str, Any]) -> Any:
    """The raw value when the template is one placeholder (whitespace around it
    allowed), otherwise the rendered text."""
    segments = parse_template(text)
    placeholders = [segment for segment in segments if isinstance(segment, Placeholder)]
    only_space = all(isinstance(s, Placeholder) or not s.strip() for s in segments)
    if len(placeholders) == 1 and only_space:
        return _evaluate(placeholders[0].node, context)
    return render_template(text, context).text


def parse_agent_reply(text: str) -> Any:
    """A dict when the reply is a JSON object, holds exactly one fenced JSON object, or
    (failing both) contains a JSON object; the raw text is kept under "response"
    unless the object has its own. Any other reply is returned unchanged."""
    found = _whole_json(text)
    if found is _NOT_JSON:
        found = _fenced_json(text)
    if found is _NOT_JSON:
        found = _embedded_json(text)
    if not isinstance(found, dict):
        return text
    found.setdefault("response", text)
    return found


def to_text(value: Any) -> str:
    """How one value is written into a template (see the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        for key in ("response", "value"):
            if key in value:
                return to_text(value[key])
        return _dumps(value)
    if isinstance(value, list | tuple):
        return _dumps(value)
    return str(value)


def truthy(value: Any) -> bool:
    """Whether a value counts as true: null, "", empty containers, zero and the strings
    "false", "no", "null", "none" and "0" (any case, trimmed) are false."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        number = _as_number(value)
        if number is not None:
            return not number.is_zero()
        return value.strip().lower() not in _FALSE_WORDS
    if isinstance(value, Decimal):
        return not value.is_zero()
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return len(value) > 0
    return True


# --- evaluation -----------------------------------------------------------------------

_FALSE_WORDS = frozenset({"", "false", "no", "null", "none"})
# Fields an engine step record may have; other names fall through to the output.
_STEP_FIELDS = frozenset({"output", "status", "error"})
_NUMERIC_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_MAX_INDEX_DIGITS = 18


def _evaluate(node: Node, context: Mapping[str, Any]) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Reference):
        return _resolve(node, context)
    if isinstance(node, Not):
        return not truthy(_evaluate(node.operand, context))
    if isinstance(node, BoolOp):
        return _evaluate_bool_op(node, context)
    if isinstance(node, Compare):
        return _compare(node.op, _evaluate(node.left, context), _evaluate(node.right, context))
    if isinstance(node, Coalesce):
        return _evaluate_coalesce(node, context)
    return _evaluate_pipe(node, context)


def _evaluate_bool_op(node: BoolOp, context: Mapping[str, Any]) -> bool:
    operands = (truthy(_evaluate(operand, context)) for operand in node.operands)
    return any(operands) if node.op == "or" else all(operands)


def _evaluate_coalesce(node: Coalesce, context: Mapping[str, Any]) -> Any:
    value = None
    for operand in node.operands:
        value = _evaluate(operand, context)
        if not _is_empty(value):
            return value
    return value


def _evaluate_pipe(node: Pipe, context: Mapping[str, Any]) -> Any:
    value = _evaluate(node.value, context)
    for call in node.filters:
        args = [_evaluate(arg, context) for arg in call.args]
        value = _FILTERS[call.name](value, args)
    return value


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | tuple | dict) and len(value) == 0)


def _filter_default(value: Any, args: list[Any]) -> Any:
    return args[0] if value is None or value == "" else value


def _filter_length(value: Any, args: list[Any]) -> int:
    if value is None:
        return 0
    if isinstance(value, str | Mapping | list | tuple | set | frozenset):
        return len(value)
    return len(to_text(value))


def _filter_lower(value: Any, args: list[Any]) -> Any:
    return None if value is None else to_text(value).lower()


def _filter_upper(value: Any, args: list[Any]) -> Any:
    return None if value is None else to_text(value).upper()


def _filter_json(value: Any, args: list[Any]) -> str:
    return _dumps(value)


_FILTERS: dict[str, Callable[[Any, list[Any]], Any]] = {
    "default": _filter_default,
    "length": _filter_length,
    "lower": _filter_lower,
    "upper": _filter_upper,
    "json": _filter_json,
}


# --- paths ----------------------------------------------------------------------------


def _resolve(reference: Reference, context: Mapping[str, Any]) -> Any:
    value = context.get(reference.root)
    for segment in _effective_path(reference, value):
        value = _child(value, segment)
        if value is None:
            return None
    return value


def _effective_path(reference: Reference, root: Any) -> tuple[str | int, ...]:
    path = reference.path
    if reference.root != "steps" or len(path) < 2:
        return path
    name = path[1]
    record = _child(root, path[0])
    shorthand = isinstance(name, str) and name not in _STEP_FIELDS
    if shorthand and isinstance(record, Mapping) and name not in record:
        return (path[0], "output", *path[1:])
    return path


def _child(value: Any, segment: str | int) -> Any:
    if isinstance(value, Mapping):
        if segment in value:
            return value[segment]
        return value.get(str(segment)) if isinstance(segment, int) else None
    if isinstance(value, list | tuple):
        index = _as_index(segment)
        if index is not None and -len(value) <= index < len(value):
            return value[index]
    return None


def _as_index(segment: str | int) -> int | None:
    if isinstance(segment, int):
        return segment
    if segment.isascii() and segment.isdigit() and len(segment) <= _MAX_INDEX_DIGITS:
        return int(segment)
    return None


# --- comparisons ----------------------------------------------------------------------

_ORDERINGS: dict[str, Callable[[int], bool]] = {
    ">": lambda order: order > 0,
    ">=": lambda order: order >= 0,
    "<": lambda order: order < 0,
    "<=": lambda order: order <= 0,
}


def _compare(operator: str, left: Any, right: Any) -> bool:
    if operator == "==":
        return _equal(left, right)
    if operator == "!=":
        return not _equal(left, right)
    if operator == "in":
        return _contains(right, left)
    if operator == "not in":
        return not _contains(right, left)
    if operator == "contains":
        return _contains(left, right)
    order = _order(left, right)
    return order is not None and _ORDERINGS[operator](order)


def _equal(left: Any, right: Any) -> bool:
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, bool) or isinstance(right, bool):
        return _bool_equal(left, right)
    if _is_number(left) or _is_number(right):
        left_number, right_number = _as_number(left), _as_number(right)
        return left_number is not None and left_number == right_number
    try:
        return bool(left == right)
    except (TypeError, ValueError, ArithmeticError):
        return False


def _bool_equal(left: Any, right: Any) -> bool:
    if isinstance(left, bool) and isinstance(right, bool):
        return left is right
    flag, other = (left, right) if isinstance(left, bool) else (right, left)
    return isinstance(other, str) and other.strip().lower() == ("true" if flag else "false")


def _order(left: Any, right: Any) -> int | None:
    """-1, 0 or 1; None when the two values have no meaningful order."""
    if left is None or right is None or isinstance(left, bool) or isinstance(right, bool):
        return None
    left_number, right_number = _as_number(left), _as_number(right)
    if left_number is not None and right_number is not None:
        return (left_number > right_number) - (left_number < right_number)
    if isinstance(left, str) and isinstance(right, str):
        return (left > right) - (left < right)
    return None


def _contains(container: Any, item: Any) -> bool:
    if item is None:
        return False
    if isinstance(container, str):
        return not isinstance(item, Mapping | list | tuple) and to_text(item) in container
    if isinstance(container, Mapping):
        if isinstance(item, Mapping | list | tuple | set):
            return False
        return item in container or to_text(item) in container
    if isinstance(container, list | tuple | set | frozenset):
        return any(_equal(item, element) for element in container)
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _as_number(value: Any) -> Decimal | None:
    """The value as a Decimal when it is a number or a numeric string; NaN is not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return None if value.is_nan() else value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return None if math.isnan(value) else Decimal(repr(value))
    if isinstance(value, str) and _NUMERIC_TEXT.fullmatch(value.strip()):
        try:
            return Decimal(value.strip())
        except InvalidOperation:  # exponent beyond what Decimal can hold
            return None
    return None


# --- JSON -----------------------------------------------------------------------------

_NOT_JSON = object()
_FENCE = re.compile(r"```([A-Za-z]*)(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()
_OBJECT_START = re.compile(r"\{\s*[\"}]")
_MAX_EMBEDDED_ATTEMPTS = 200


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    except (TypeError, ValueError):  # circular or exotic data: still render something
        return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def _load(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return _NOT_JSON


def _whole_json(text: str) -> Any:
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return _NOT_JSON
    return _load(stripped)


def _fenced_json(text: str) -> Any:
    """The one object among ```json / ``` blocks; None (so: plain text) when the blocks
    hold JSON but not exactly one object; _NOT_JSON when none holds JSON."""
    parsed = [
        _load(match.group(2).strip())
        for match in _FENCE.finditer(text)
        if match.group(1).lower() in ("", "json")
    ]
    parsed = [value for value in parsed if value is not _NOT_JSON]
    objects = [value for value in parsed if isinstance(value, dict)]
    if len(objects) == 1:
        return objects[0]
    return None if parsed else _NOT_JSON


def _embedded_json(text: str) -> Any:
    # Each failed attempt costs O(len(text)) (the decoder's error counts lines), so
    # only plausible starts are tried, and only so many of them.
    for attempt, match in enumerate(_OBJECT_START.finditer(text)):
        if attempt >= _MAX_EMBEDDED_ATTEMPTS:
            break
        try:
            value, _ = _DECODER.raw_decode(text, match.start())
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None
