"""Check and coerce the input of a new execution against the definition's typed `input`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.definition import InputField, ProcessDefinition
from engine.issues import did_you_mean

__all__ = ["InputError", "validate_input"]


@dataclass(frozen=True)
class InputError:
    """One problem with one input field."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"input '{self.field}': {self.message}" if self.field else self.message


def validate_input(definition: ProcessDefinition, raw: Mapping[str, Any] | None
                   ) -> tuple[dict[str, Any], list[InputError]]:
    """The input with defaults applied and text coerced to the declared types, and every
    problem at once. Without a declared `input` block anything is accepted as given."""
    given = dict(raw or {})
    if not definition.inputs:
        return given, []
    out: dict[str, Any] = {}
    errors: list[InputError] = []
    for name in given:
        if name not in definition.inputs:
            hint = did_you_mean(name, definition.inputs)
            errors.append(InputError(name, "is not an input of this process"
                                     + (f"; {hint}" if hint else "")))
    for name, spec in definition.inputs.items():
        if name not in given or given[name] is None or given[name] == "":
            if spec.default is not None:
                out[name] = spec.default
            elif spec.required:
                errors.append(InputError(name, "is required" + (
                    f" ({spec.description})" if spec.description else "")))
            continue
        value, problem = _coerce(given[name], spec)
        if problem:
            errors.append(InputError(name, problem))
        else:
            out[name] = value
    # keep extra keys out of the input only when they are errors; nothing else is dropped
    return out, errors


def _coerce(value: Any, spec: InputField) -> tuple[Any, str | None]:
    kind = spec.type
    converted, ok = _CONVERT.get(kind, _as_is)(value)
    if not ok:
        return value, f"must be {_ARTICLE.get(kind, 'a ' + kind)}, not {value!r}"
    if spec.enum is not None and converted not in spec.enum:
        allowed = ", ".join(repr(v) for v in spec.enum)
        return value, f"must be one of {allowed}, not {converted!r}"
    return converted, None


def _as_is(value: Any) -> tuple[Any, bool]:
    return value, True


def _string(value: Any) -> tuple[Any, bool]:
    if isinstance(value, str):
        return value, True
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        return value, False
    return str(value), True


def _number(value: Any) -> tuple[Any, bool]:
    if isinstance(value, bool):
        return value, False
    if isinstance(value, int | float):
        return value, True
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return value, False
        if not number.is_finite():
            return value, False
        return (int(number) if number == number.to_integral_value() and "." not in value
                else float(number)), True
    return value, False


def _integer(value: Any) -> tuple[Any, bool]:
    number, ok = _number(value)
    if not ok or (isinstance(number, float) and not number.is_integer()):
        return value, False
    return int(number), True


def _boolean(value: Any) -> tuple[Any, bool]:
    if isinstance(value, bool):
        return value, True
    if isinstance(value, str) and value.strip().lower() in _BOOLS:
        return _BOOLS[value.strip().lower()], True
    return value, False


def _structured(kind: type) -> Any:
    def convert(value: Any) -> tuple[Any, bool]:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return value, False
        return value, isinstance(value, kind)
    return convert


_BOOLS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}
_CONVERT = {"string": _string, "number": _number, "integer": _integer, "boolean": _boolean,
            "object": _structured(dict), "array": _structured(list)}
_ARTICLE = {"string": "text", "number": "a number", "integer": "a whole number",
            "boolean": "true or false", "object": "a JSON object", "array": "a JSON list"}
