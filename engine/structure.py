"""Structural check of a definition against `engine.schema`: types, keys, aliases, defaults.

`check_structure` turns raw data (from YAML or JSON) into a normalized tree keyed by canonical
field names, with values converted (durations to timedelta, money to Decimal, lists to tuples),
and collects every problem instead of stopping at the first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from engine import schema
from engine.cron import CronError, check_timezone, parse_cron
from engine.durations import DurationError, parse_duration
from engine.expressions import ExpressionError, check_condition, check_template
from engine.issues import Issue, Level, did_you_mean
from engine.money import MoneyError, parse_money
from engine.schema import Field, Kind, Spec

__all__ = ["INVALID", "REJECTED", "StructureChecker", "check_structure"]

INVALID: Any = object()  # a value that failed its check; the field is left out of the tree
# Stands in for a list item that is not a mapping, so later items keep their index (and
# their path, hence their line). It has no id, name or target: checks pass over it.
_HOLE: Mapping[str, Any] = MappingProxyType({})
# Tree key listing the fields that were written but rejected (each with its own error), so the
# semantic checks do not add a second "missing ..." error for the same mistake.
REJECTED = "_rejected"
_VERSION = re.compile(r"^\d+(\.\d+)?$")
_NAME = re.compile(schema.NAME_PATTERN)


def check_structure(data: object) -> tuple[dict[str, Any] | None, list[Issue]]:
    """Normalize a whole definition; returns (tree or None when unusable, issues)."""
    checker = StructureChecker()
    if not isinstance(data, Mapping):
        kind = "empty" if data is None else type(data).__name__
        checker.error("", "not-a-mapping",
                      f"a process definition must be a mapping of keys, not {kind}",
                      "start with 'name:' and 'steps:'")
        return None, checker.issues
    tree = checker.mapping(data, schema.TOP_LEVEL, "")
    return tree, checker.issues


class StructureChecker:
    """Walks data against specs; one instance per document."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def error(self, path: str, code: str, message: str, hint: str | None = None) -> None:
        self.issues.append(Issue(Level.ERROR, code, path, message, hint))

    def warning(self, path: str, code: str, message: str, hint: str | None = None) -> None:
        self.issues.append(Issue(Level.WARNING, code, path, message, hint))

    # --- mappings ------------------------------------------------------------------------

    def mapping(self, data: Mapping[Any, Any], spec: Spec, path: str) -> dict[str, Any]:
        """Check a mapping against a spec; unknown keys are errors with a hint."""
        out: dict[str, Any] = {}
        metadata: dict[str, Any] = {}
        seen_from: dict[str, str] = {}
        for raw_key, value in data.items():
            key = str(raw_key)
            key_path = _join(path, key)
            f = spec.by_name.get(key)
            if f is None:
                if key in spec.metadata_keys or key.startswith("x-"):
                    metadata[key] = value
                else:
                    self._unknown_key(key, spec, key_path)
                continue
            if f.name in seen_from:
                self.error(key_path, "duplicate-alias",
                           f"'{key}' and '{seen_from[f.name]}' mean the same thing",
                           f"keep only '{f.name}'")
                continue
            seen_from[f.name] = key
            converted = self.value(value, f, key_path)
            if converted is not INVALID:
                out[f.name] = converted
        rejected = tuple(name for name in seen_from if name not in out)
        self._required_and_defaults(spec, out, path, seen_from)
        if metadata:
            out["metadata"] = metadata
        if rejected:
            out[REJECTED] = rejected
        return out

    def _required_and_defaults(self, spec: Spec, out: dict[str, Any], path: str,
                               given: Mapping[str, str]) -> None:
        for f in spec.fields:
            if f.name in out:
                continue
            if f.required and f.name not in given:
                where = f"in {path}" if path else "at the top level"
                self.error(_join(path, f.name), "missing-field",
                           f"'{f.name}' is required {where} of {_a(spec.name)}",
                           f"{f.name}: {f.doc}")
            elif f.default is not None and f.name not in given:
                converted = self.value(f.default, f, _join(path, f.name))
                if converted is not INVALID:
                    out[f.name] = converted

    def _unknown_key(self, key: str, spec: Spec, path: str) -> None:
        # A key that another step type knows is a sure diagnosis; a near miss only a guess.
        guess = did_you_mean(key, spec.names())
        owners = _other_step_types_with(key, spec)
        hint = f"'{key}' belongs to {' and '.join(owners)} steps" if owners else guess
        if owners and guess:
            hint = f"{hint}; or {guess}"
        if hint is None:
            hint = "known keys: " + ", ".join(f.name for f in spec.fields)
        self.error(path, "unknown-key", f"unknown key '{key}' in {_a(spec.name)}", hint)

    # --- values --------------------------------------------------------------------------

    def value(self, value: Any, f: Field, path: str) -> Any:
        """Check and convert one value by its field's kind."""
        check = _CHECKS.get(f.kind)
        if check is None:
            return self._composite(value, f, path)
        return check(self, value, f, path)

    def _composite(self, value: Any, f: Field, path: str) -> Any:
        handler: dict[Kind, Callable[[Any, Field, str], Any]] = {
            Kind.OBJECT: self._object,
            Kind.OBJECTS: self._objects,
            Kind.OBJECT_MAP: self._object_map,
            Kind.ON_ERROR: self._on_error,
            Kind.ASSIGNEES: self._assignees,
            Kind.OUTPUTS: self._outputs,
            Kind.STEPS: self._steps,
            Kind.TRIGGERS: self._triggers,
        }
        return handler[f.kind](value, f, path)

    def _object(self, value: Any, f: Field, path: str) -> Any:
        if value is None:
            return INVALID
        if not isinstance(value, Mapping):
            return self._type_error(path, f, value, "a mapping")
        assert f.spec is not None
        return self.mapping(value, f.spec, path)

    def _objects(self, value: Any, f: Field, path: str) -> Any:
        items = self._list(value, f, path)
        if items is INVALID:
            return INVALID
        out = []
        for i, item in enumerate(items):
            item_path = f"{path}[{i}]"
            if not isinstance(item, Mapping):
                self._type_error(item_path, f, item, "a mapping")
                out.append(_HOLE)
                continue
            assert f.spec is not None
            out.append(self.mapping(item, f.spec, item_path))
        return tuple(out)

    def _object_map(self, value: Any, f: Field, path: str) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            return self._type_error(path, f, value, "a mapping of names")
        assert f.spec is not None
        out: dict[str, Any] = {}
        for name, item in value.items():
            item_path = _join(path, str(name))
            if item is None:
                item = {}
            if not isinstance(item, Mapping):
                self._type_error(item_path, f, item, "a mapping like {type: string}")
                continue
            out[str(name)] = self.mapping(item, f.spec, item_path)
        return out

    def _on_error(self, value: Any, f: Field, path: str) -> Any:
        if isinstance(value, str):
            value = {"action": value}
        return self._object(value, f, path)

    def _assignees(self, value: Any, f: Field, path: str) -> Any:
        items = self._list(value, f, path)
        if items is INVALID:
            return INVALID
        out: list[Any] = []
        for i, item in enumerate(items):
            item_path = f"{path}[{i}]"
            if isinstance(item, str) and item.strip():
                out.append(item.strip())
            elif isinstance(item, Mapping):
                assignee = self._team_role(item, item_path)
                if assignee is not INVALID:
                    out.append(assignee)
            else:
                self.error(item_path, "bad-assignee",
                           f"an assignee must be a username, an email, 'team:<slug>' or "
                           f"{{team, role}}, not {_describe(item)}")
        return tuple(out)

    def _team_role(self, item: Mapping[Any, Any], path: str) -> Any:
        extra = sorted(str(k) for k in item if k not in ("team", "role"))
        if extra:
            self.error(f"{path}.{extra[0]}", "unknown-key",
                       f"unknown key '{extra[0]}' in an assignee", "use {team, role}")
        team = item.get("team")
        if not isinstance(team, str) or not team:
            self.error(path, "bad-assignee", "a {team, role} assignee needs a team slug")
            return INVALID
        role = item.get("role")
        if role is not None and not isinstance(role, str):
            self.error(f"{path}.role", "bad-type", "role must be text")
            return INVALID
        return {"team": team, "role": role}

    def _outputs(self, value: Any, f: Field, path: str) -> Any:
        items = self._list(value, f, path)
        if items is INVALID:
            return INVALID
        out = []
        for i, item in enumerate(items):
            item_path = f"{path}[{i}]"
            if isinstance(item, str):
                item = {"name": _output_name(item, i), "source": item}
            if not isinstance(item, Mapping):
                self._type_error(item_path, f, item, "a mapping or a template")
                out.append(_HOLE)
                continue
            assert f.spec is not None
            out.append(self.mapping(item, f.spec, item_path))
        return tuple(out)

    def _steps(self, value: Any, f: Field, path: str) -> Any:
        items = self._list(value, f, path)
        if items is INVALID:
            return INVALID
        if not items:
            self.error(path, "empty-process", "a process needs at least one step",
                       "add a step under 'steps:'")
        out = []
        for i, item in enumerate(items):
            item_path = f"{path}[{i}]"
            if not isinstance(item, Mapping):
                self._type_error(item_path, f, item, "a mapping with id and type")
                out.append(_HOLE)
                continue
            out.append(self._step(item, item_path))
        return tuple(out)

    def _step(self, item: Mapping[Any, Any], path: str) -> dict[str, Any]:
        step_type = item.get("type")
        spec = schema.step_spec(step_type) if isinstance(step_type, str) else None
        if spec is None:
            common = schema.Spec("step", "A step.", schema.STEP_COMMON)
            known_keys = {name for s in schema.STEP_TYPES.values() for name in s.names()}
            narrowed = {k: v for k, v in item.items() if str(k) in common.by_name or
                        str(k) not in known_keys}
            return self.mapping(narrowed, common, path)
        return self.mapping(item, spec, path)

    def _triggers(self, value: Any, f: Field, path: str) -> Any:
        items = self._list(value, f, path)
        if items is INVALID:
            return INVALID
        out = []
        for i, item in enumerate(items):
            item_path = f"{path}[{i}]"
            if not isinstance(item, Mapping):
                self._type_error(item_path, f, item, "a mapping with type and id")
                out.append(_HOLE)
                continue
            trigger_type = item.get("type", "webhook")
            spec = schema.trigger_spec(trigger_type) if isinstance(trigger_type, str) else None
            if spec is None:
                spec = schema.Spec("trigger", "A trigger.", schema.TRIGGER_TYPES["manual"].fields)
            out.append(self.mapping(item, spec, item_path))
        return tuple(out)

    # --- helpers -------------------------------------------------------------------------

    def _list(self, value: Any, f: Field, path: str) -> Any:
        if value is None:
            return []
        if isinstance(value, list | tuple):
            return list(value)
        return self._type_error(path, f, value, "a list")

    def _type_error(self, path: str, f: Field, value: Any, expected: str) -> Any:
        self.error(path, "bad-type", f"'{f.name}' must be {expected}, not {_describe(value)}",
                   f.doc)
        return INVALID


# --- scalar checks (module level so the table below can name them) -------------------------


def _text(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    if isinstance(v, bool) or v is None:
        return c._type_error(path, f, v, "text")
    if isinstance(v, int | float | Decimal):
        return str(v)
    if isinstance(v, datetime | date):
        return v.isoformat()
    if not isinstance(v, str):
        return c._type_error(path, f, v, "text")
    return v


def _string(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    return _text(c, v, f, path)


def _slug(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    text = _text(c, v, f, path)
    if text is not INVALID and not _NAME.match(text) and "{{name}}" not in text:
        c.warning(path, "name-not-slug",
                  f"'{text}' is not a slug (lowercase letters, digits, '.', '_', '-')",
                  f"for example '{_slugify(text)}'")
    return text


def _template(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    text = _text(c, v, f, path)
    if text is INVALID:
        return INVALID
    try:
        check_template(text)
    except ExpressionError as e:
        c.error(path, "bad-expression", e.message,
                "placeholders look like {{ steps.<id>.output.<field> }}")
    return text


def _condition(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    if isinstance(v, bool):
        v = "true" if v else "false"
    text = _text(c, v, f, path)
    if text is INVALID:
        return INVALID
    try:
        check_condition(text)
    except ExpressionError as e:
        c.error(path, "bad-expression", e.message,
                "a condition looks like steps.check.output.score >= 80")
        return INVALID
    return text


def _duration(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    try:
        return parse_duration(v)
    except DurationError as e:
        c.error(path, "bad-duration", str(e))
        return INVALID


def _number_in_range(c: StructureChecker, n: float, f: Field, path: str) -> bool:
    if f.minimum is not None and n < f.minimum:
        c.error(path, "out-of-range", f"'{f.name}' must be at least {f.minimum:g}, not {n:g}")
        return False
    if f.maximum is not None and n > f.maximum:
        c.error(path, "out-of-range", f"'{f.name}' must be at most {f.maximum:g}, not {n:g}")
        return False
    return True


def _integer(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        return c._type_error(path, f, v, "a whole number")
    return v if _number_in_range(c, v, f, path) else INVALID


def _number(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return c._type_error(path, f, v, "a number")
    if isinstance(v, bool) or not isinstance(v, int | float):
        return c._type_error(path, f, v, "a number")
    return float(v) if _number_in_range(c, float(v), f, path) else INVALID


def _boolean(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    if isinstance(v, str) and v.lower() in ("true", "false", "yes", "no"):
        return v.lower() in ("true", "yes")
    if not isinstance(v, bool):
        return c._type_error(path, f, v, "true or false")
    return v


def _enum(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    if not isinstance(v, str) or v not in f.choices:
        hint = did_you_mean(str(v), f.choices) if isinstance(v, str) else None
        c.error(path, "bad-choice",
                f"'{f.name}' must be one of {', '.join(f.choices)}, not {_describe(v)}",
                hint)
        return INVALID
    return v


def _version(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    text = str(v).strip() if isinstance(v, int | float | str) and not isinstance(v, bool) else ""
    if not _VERSION.match(text):
        c.error(path, "bad-version", f"version must be like 1, \"1\" or \"1.2\", not "
                f"{_describe(v)}")
        return INVALID
    return text


def _step_id(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    if not isinstance(v, str) or not v:
        return c._type_error(path, f, v, "a step id")
    return v


def _step_ids(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    if v is None:
        return ()
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list | tuple):
        return c._type_error(path, f, v, "a step id or a list of step ids")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item:
            c._type_error(f"{path}[{i}]", f, item, "a step id")
        else:
            out.append(item)
    return tuple(out)


def _strings(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    if v is None:
        return ()
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list | tuple):
        return c._type_error(path, f, v, "a list of text")
    out = []
    for i, item in enumerate(items):
        text = _text(c, item, f, f"{path}[{i}]")
        if text is not INVALID:
            out.append(text)
    return tuple(out)


def _templates(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    texts = _strings(c, v, f, path)
    if texts is INVALID:
        return INVALID
    for i, text in enumerate(texts):
        _template(c, text, f, f"{path}[{i}]")
    return texts


def _money(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    try:
        return parse_money(v)
    except MoneyError as e:
        c.error(path, "bad-money", str(e))
        return INVALID


def _cron(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    text = _text(c, v, f, path)
    if text is INVALID:
        return INVALID
    try:
        parse_cron(text)
    except CronError as e:
        c.error(path, "bad-cron", str(e),
                "5 fields (minute hour day month weekday) or " + ", ".join(schema.CRON_PRESETS))
        return INVALID
    return text


def _timezone(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    text = _text(c, v, f, path)
    if text is INVALID:
        return INVALID
    try:
        check_timezone(text)
    except CronError as e:
        c.error(path, "bad-timezone", str(e))
        return INVALID
    return text


def _when(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    text = _text(c, v, f, path)
    if text is INVALID:
        return INVALID
    if "{{" in text:
        return _template(c, text, f, path)
    try:
        datetime.fromisoformat(text)
    except ValueError:
        c.error(path, "bad-datetime",
                f"'{text}' is neither an ISO date-time nor a template",
                "for example 2026-12-01T09:00:00 or {{ input.deadline }}")
        return INVALID
    return text


def _any(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    return v


def _mapping(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        return c._type_error(path, f, v, "a mapping")
    return {str(k): val for k, val in v.items()}


def _template_map(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    raw = _mapping(c, v, f, path)
    if raw is INVALID:
        return INVALID
    out = {}
    for key, item in raw.items():
        text = _template(c, item, f, _join(path, key))
        if text is not INVALID:
            out[key] = text
    return out


def _json_schema(c: StructureChecker, v: Any, f: Field, path: str) -> Any:
    if not isinstance(v, Mapping):
        return c._type_error(path, f, v, "a JSON Schema mapping")
    return dict(v)


_CHECKS: dict[Kind, Callable[[StructureChecker, Any, Field, str], Any]] = {
    Kind.SLUG: _slug,
    Kind.STRING: _string,
    Kind.TEXT: _text,
    Kind.TEMPLATE: _template,
    Kind.CONDITION: _condition,
    Kind.DURATION: _duration,
    Kind.INTEGER: _integer,
    Kind.NUMBER: _number,
    Kind.BOOLEAN: _boolean,
    Kind.ENUM: _enum,
    Kind.VERSION: _version,
    Kind.STEP_ID: _step_id,
    Kind.STEP_IDS: _step_ids,
    Kind.STRINGS: _strings,
    Kind.TEMPLATES: _templates,
    Kind.MONEY: _money,
    Kind.CRON: _cron,
    Kind.TIMEZONE: _timezone,
    Kind.WHEN: _when,
    Kind.ANY: _any,
    Kind.MAPPING: _mapping,
    Kind.TEMPLATE_MAP: _template_map,
    Kind.JSON_SCHEMA: _json_schema,
}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return f"a {type(value).__name__}".replace("a dict", "a mapping").replace("a list", "a list")


def _slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-")
    return slug or "my-process"


def _output_name(source: str, index: int) -> str:
    match = re.fullmatch(r"\s*\{\{\s*steps\.([a-z][a-z0-9_-]*)\.output\s*\}\}\s*", source)
    return match.group(1) if match else f"output_{index + 1}"


def _other_step_types_with(key: str, spec: Spec) -> list[str]:
    if not spec.name.endswith(" step"):
        return []
    return [name for name, other in schema.STEP_TYPES.items()
            if other is not spec and key in other.by_name]


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1] in ("a", "e", "i", "o", "u") else f"a {noun}"
