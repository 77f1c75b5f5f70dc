"""The start form, generated from a process's typed inputs (`input:` in the definition).

Each field checks itself as the user types (required, number, whole number, JSON, choice);
what the server still refuses (`app.services.InvalidInput`) is shown on the field it names.
A process without declared inputs gets one JSON box for the whole input.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from engine.definition import InputField

__all__ = ["InputForm", "check_value"]

FREE = "__json__"  # the key of the single JSON box of a process without typed inputs


def check_value(spec: InputField, value: Any) -> str | None:
    """The problem with one field's value in words, or None (mirrors engine.inputs)."""
    empty = value is None or (isinstance(value, str) and not value.strip())
    if empty:
        return "Required" if spec.required and spec.default is None else None
    kind = spec.type
    if kind in ("number", "integer"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return "Enter a number"
        if kind == "integer" and not number.is_integer():
            return "Enter a whole number"
    if kind in ("object", "array") and isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError as e:
            return f"Not valid JSON: {e.msg} (line {e.lineno})"
        if not isinstance(parsed, dict if kind == "object" else list):
            return f"Enter a JSON {'object {…}' if kind == 'object' else 'list […]'}"
    if spec.enum is not None and value not in spec.enum and str(value) not in map(
            str, spec.enum):
        return "Choose one of the listed values"
    return None


class InputForm:
    """Fields for `inputs`; `values()` gives the input to start with, `show_errors()` puts the
    server's messages on their fields."""

    def __init__(self, inputs: Mapping[str, InputField], initial: Mapping[str, Any] | None = None
                 ) -> None:
        from nicegui import ui

        self.inputs = dict(inputs)
        self.fields: dict[str, Any] = {}
        self.general = ui.label("").classes("text-negative text-sm").props(
            'data-testid="input-error" role="alert"')
        self.general.set_visibility(False)
        initial = dict(initial or {})
        if not self.inputs:
            ui.label("This process declares no inputs; give any input as JSON (optional).") \
                .classes("text-sm text-slate-500")
            self.fields[FREE] = ui.textarea(
                "Input (JSON object)", value=json.dumps(initial) if initial else "",
                validation=_json_object_check).classes("w-full font-mono").props(
                'outlined autogrow data-testid="input-json"')
            return
        for name, spec in self.inputs.items():
            self.fields[name] = self._field(name, spec, initial.get(name, spec.default))

    def _field(self, name: str, spec: InputField, value: Any) -> Any:
        from nicegui import ui

        label = name.replace("_", " ").capitalize() + (" *" if spec.required else "")
        hint = spec.description or ""
        props = f'outlined data-testid="input-{name}"'

        def validation(v: Any, spec: InputField = spec) -> str | None:
            return check_value(spec, v)
        if spec.enum is not None:
            options = {str(v): str(v) for v in spec.enum}
            field = ui.select(options, label=label, value=None if value is None else str(value),
                              validation=validation).props(props)
        elif spec.type == "boolean":
            field = ui.checkbox(label, value=bool(value)).props(f'data-testid="input-{name}"')
        elif spec.type in ("object", "array"):
            text = json.dumps(value, indent=2) if value is not None else ""
            field = ui.textarea(label, value=text, validation=validation).classes(
                "font-mono").props(props + " autogrow")
        else:
            kind = ' type="number"' if spec.type in ("number", "integer") else ""
            field = ui.input(label, value="" if value is None else str(value),
                             validation=validation).props(props + kind)
        field.classes("w-full")
        if hint:
            field.props(f'hint="{_attr(hint)}"')
        return field

    def values(self) -> dict[str, Any]:
        """The input as typed (the engine coerces text to the declared types)."""
        if FREE in self.fields:
            text = (self.fields[FREE].value or "").strip()
            return json.loads(text) if text else {}
        out: dict[str, Any] = {}
        for name, field in self.fields.items():
            value = field.value
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            out[name] = value
        return out

    def validate(self) -> bool:
        """Check every field now; False (and messages on the fields) when one is wrong."""
        ok = True
        for field in self.fields.values():
            if hasattr(field, "validate") and not field.validate():
                ok = False
        return ok

    def show_errors(self, errors: list[Any]) -> None:
        """`InputError`s from the server: on their field, or above the form."""
        general = []
        for e in errors:
            field = self.fields.get(getattr(e, "field", ""))
            if field is not None and hasattr(field, "error"):
                field.error = str(getattr(e, "message", e)).capitalize()
            else:
                general.append(str(e))
        self.general.set_text("; ".join(general))
        self.general.set_visibility(bool(general))

    def clear_errors(self) -> None:
        for field in self.fields.values():
            if hasattr(field, "error"):
                field.error = None
        self.general.set_visibility(False)


def _json_object_check(value: str) -> str | None:
    if not (value or "").strip():
        return None
    try:
        parsed = json.loads(value)
    except ValueError as e:
        return f"Not valid JSON: {e.msg} (line {e.lineno})"
    return None if isinstance(parsed, dict) else "Enter a JSON object {…}"


def _attr(text: str) -> str:
    return text.replace('"', "&quot;").replace("\n", " ")
