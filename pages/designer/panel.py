"""Property forms generated from `engine.schema`: one widget per Field, by its Kind.

`render_spec(spec, values, ctx, path)` builds the fields of a Spec into the current NiceGUI
container. Every edit calls `ctx.on_set(path, value)`, where `path` is the list of keys from
the edited mapping's root (`["retry", "max_attempts"]`) and None removes the key. The Field's
doc is shown as the widget's hint, so help text comes from the schema too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from nicegui import ui

from engine.cron import CronError, parse_cron
from engine.durations import DurationError, format_duration, parse_duration
from engine.schema import Field, Kind, Spec

__all__ = ["FormContext", "cron_preview", "duration_preview", "render_spec"]

Setter = Callable[[list[Any], Any], None]
_TEXT_KINDS = {Kind.STRING, Kind.SLUG, Kind.VERSION, Kind.MONEY, Kind.TIMEZONE, Kind.WHEN}
_YAML_KINDS = {Kind.JSON_SCHEMA, Kind.MAPPING, Kind.TEMPLATE_MAP, Kind.ANY, Kind.OBJECTS,
               Kind.OUTPUTS, Kind.TRIGGERS, Kind.OBJECT_MAP, Kind.STEPS}


@dataclass
class FormContext:
    on_set: Setter
    step_ids: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)  # input.x, steps.y.output
    read_only: bool = False
    testid: str = "prop"


def duration_preview(value: Any) -> str:
    try:
        return "= " + format_duration(parse_duration(value))
    except (DurationError, TypeError, ValueError):
        return "not a duration: use 90s, 5m, 1h30m, 2d"


def cron_preview(value: Any) -> str:
    try:
        return parse_cron(str(value)).describe()
    except CronError as e:
        return str(e)


def render_spec(spec: Spec, values: dict[str, Any], ctx: FormContext, path: list[Any],
                skip: tuple[str, ...] = ()) -> None:
    for f in spec.fields:
        if f.name in skip:
            continue
        current = next((values[k] for k in (f.name, *f.aliases) if k in values), None)
        key = next((k for k in (f.name, *f.aliases) if k in values), f.name)
        _render_field(f, current, ctx, [*path, key])


def _render_field(f: Field, value: Any, ctx: FormContext, path: list[Any]) -> None:
    testid = f"{ctx.testid}-{'-'.join(map(str, path))}"
    label = f.name + (" *" if f.required else "")
    widget: Any
    if f.kind in (Kind.OBJECT, Kind.ON_ERROR) and f.spec is not None:
        _nested(f, value, ctx, path)
        return
    if f.kind in _YAML_KINDS or (f.kind is Kind.ASSIGNEES and _has_mappings(value)):
        widget = _yaml_field(f, value, ctx, path, label)
    elif f.name == "agent":
        widget = _picker(label, value, ctx.agents, ctx, path, multiple=False)
    elif f.kind is Kind.ASSIGNEES:
        widget = _picker(label, value, ctx.assignees, ctx, path, multiple=True)
    elif f.kind in (Kind.STEP_ID, Kind.STEP_IDS):
        widget = _picker(label, value, ctx.step_ids, ctx, path,
                         multiple=f.kind is Kind.STEP_IDS, new_values=False)
    elif f.kind is Kind.ENUM:
        widget = ui.select(list(f.choices), label=label, value=value if value in f.choices
                           else None, clearable=True,
                           on_change=lambda e: ctx.on_set(path, e.value))
    elif f.kind is Kind.BOOLEAN:
        widget = ui.switch(label, value=bool(f.default) if value is None else bool(value),
                           on_change=lambda e: ctx.on_set(path, e.value))
    elif f.kind in (Kind.INTEGER, Kind.NUMBER):
        widget = ui.number(label, value=value if isinstance(value, int | float) else None,
                           min=f.minimum, max=f.maximum,
                           format="%d" if f.kind is Kind.INTEGER else None,
                           on_change=lambda e: ctx.on_set(path, _number(e.value, f.kind)))
    elif f.kind in (Kind.STRINGS, Kind.TEMPLATES):
        items = [value] if isinstance(value, str) else list(value or [])
        widget = ui.input_chips(label, value=[str(v) for v in items], new_value_mode="add-unique",
                                on_change=lambda e: ctx.on_set(path, list(e.value) or None))
    else:
        widget = _text_field(f, value, ctx, path, label)
    widget.classes("w-full").props(f'data-testid="{testid}"').mark(testid)
    widget.props["hint"] = f.doc
    if ctx.read_only:
        widget.disable()


def _text_field(f: Field, value: Any, ctx: FormContext, path: list[Any], label: str) -> Any:
    text = "" if value is None else str(value)
    if f.kind in (Kind.TEMPLATE, Kind.TEXT) and (f.kind is Kind.TEXT or "\n" in text
                                                 or f.name in ("message", "description")):
        widget = ui.textarea(label, value=text,
                             on_change=lambda e: ctx.on_set(path, e.value or None))
        widget.props("autogrow")
        if f.kind is Kind.TEMPLATE and ctx.references:
            _insert_menu(widget, ctx.references)
        return widget
    if path == ["id"]:  # renaming on every keystroke would rewire the graph letter by letter
        widget = ui.input(label, value=text)
        widget.on("blur", lambda: ctx.on_set(path, widget.value))
        widget.on("keydown.enter", lambda: ctx.on_set(path, widget.value))
        return widget
    completions = ctx.references if f.kind in (Kind.TEMPLATE, Kind.CONDITION) else None
    if f.kind is Kind.TEMPLATE and completions:
        completions = ["{{ " + r + " }}" for r in completions]
    widget = ui.input(label, value=text, autocomplete=completions,
                      on_change=lambda e: ctx.on_set(path, e.value or None))
    preview = duration_preview if f.kind is Kind.DURATION else \
        cron_preview if f.kind is Kind.CRON else None
    if preview is not None:
        shown = ui.label(preview(text) if text else "").classes("text-xs text-grey-7 -mt-1")
        shown.props(f'data-testid="{ctx.testid}-{"-".join(map(str, path))}-preview"')
        widget.on_value_change(lambda e: shown.set_text(preview(e.value) if e.value else ""))
    return widget


def _insert_menu(widget: Any, references: list[str]) -> None:
    """A menu of the references to insert. Its items are built when it first opens: built
    up front, a step of a 200-step process carried 600 menu items (three template fields)
    and selecting it took seconds."""
    with widget.add_slot("append"), ui.button(icon="data_object").props(
            "flat dense round data-testid=insert-reference"):
        menu = ui.menu().props("data-testid=insert-reference-menu")

    def fill() -> None:
        if menu.default_slot.children:
            return
        with menu:
            for ref in references:
                ui.menu_item(ref, on_click=lambda r=ref: widget.set_value(
                    (widget.value or "") + "{{ " + r + " }}"))

    menu.on_value_change(lambda e: fill() if e.value else None)


def _picker(label: str, value: Any, choices: list[str], ctx: FormContext, path: list[Any], *,
            multiple: bool, new_values: bool = True) -> Any:
    if multiple:
        current = [value] if isinstance(value, str) else [str(v) for v in value or []]
    else:
        current = None if value is None else str(value)
    options = list(dict.fromkeys([*choices, *(current if isinstance(current, list) else
                                               [current] if current else [])]))

    def changed(e: Any) -> None:
        new = e.value
        if multiple:
            new = list(new or []) or None
        ctx.on_set(path, new)

    widget = ui.select(options, label=label, value=current, multiple=multiple, clearable=True,
                       with_input=True, new_value_mode="add-unique" if new_values else None,
                       on_change=changed)
    if multiple:
        widget.props("use-chips")
    return widget


def _nested(f: Field, value: Any, ctx: FormContext, path: list[Any]) -> None:
    assert f.spec is not None
    if f.kind is Kind.ON_ERROR and isinstance(value, str):
        value = {"action": value}
    values = value if isinstance(value, dict) else {}
    with ui.expansion(f.name, caption=f.doc, value=bool(values)).classes("w-full").props(
            f'dense data-testid="{ctx.testid}-{"-".join(map(str, path))}"'):
        if f.kind is Kind.ON_ERROR:
            def set_on_error(sub: list[str], new: Any) -> None:
                merged = {**values, sub[-1]: new}
                merged = {k: v for k, v in merged.items() if v not in (None, "")}
                values.clear()
                values.update(merged)
                ctx.on_set(path, merged.get("action") if list(merged) == ["action"]
                           else (merged or None))
            inner = FormContext(set_on_error, ctx.step_ids, ctx.agents, ctx.assignees,
                                ctx.references, ctx.read_only, ctx.testid)
            render_spec(f.spec, values, inner, [])
        else:
            render_spec(f.spec, values, ctx, path)


def _yaml_field(f: Field, value: Any, ctx: FormContext, path: list[Any], label: str) -> Any:
    text = "" if value is None else yaml.safe_dump(value, sort_keys=False,
                                                   allow_unicode=True).strip()
    error = ui.label("").classes("text-xs text-negative")

    def apply(typed: str | None) -> None:
        try:
            parsed = yaml.safe_load(typed) if (typed or "").strip() else None
        except yaml.YAMLError as exc:
            error.set_text(f"not YAML: {str(exc).splitlines()[0]}")
            return
        error.set_text("")
        if parsed != value:
            ctx.on_set(path, parsed)

    widget = ui.textarea(f"{label} (YAML)", value=text).props("autogrow input-class=font-mono")
    widget.on("blur", lambda: apply(widget.value))
    return widget


def _has_mappings(value: Any) -> bool:
    return isinstance(value, list) and any(isinstance(v, dict) for v in value)


def _number(value: Any, kind: Kind) -> Any:
    if value is None or value == "":
        return None
    if kind is Kind.INTEGER:
        return int(value)
    number = float(value)
    return int(number) if number.is_integer() else number
