"""JSON Schema (draft 2020-12) of the process format, generated from `engine.schema`."""

from __future__ import annotations

from typing import Any

from engine import schema
from engine.schema import Field, Kind, Spec

__all__ = ["json_schema"]

_DURATION = {"type": ["string", "number"], "description": "90s, 5m, 1h30m, 2d or seconds",
             "pattern": r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d|w)?\s*)+$|^P"}
_SCALARS: dict[Kind, dict[str, Any]] = {
    # Not a "pattern": a name that is not a slug is only a warning (PROCESS_FORMAT.md), and
    # template files are named "{{name}}".
    Kind.SLUG: {"type": "string", "format": "slug"},
    Kind.STRING: {"type": "string"},
    Kind.TEXT: {"type": "string"},
    Kind.TEMPLATE: {"type": "string", "format": "template"},
    Kind.CONDITION: {"type": ["string", "boolean"], "format": "condition"},
    Kind.DURATION: _DURATION,
    Kind.INTEGER: {"type": "integer"},
    Kind.NUMBER: {"type": "number"},
    Kind.BOOLEAN: {"type": "boolean"},
    Kind.VERSION: {"type": ["string", "number"], "pattern": r"^\d+(\.\d+)?$"},
    Kind.STEP_ID: {"type": "string", "format": "step-id"},
    Kind.STEP_IDS: {"oneOf": [{"type": "string"},
                              {"type": "array", "items": {"type": "string"}}],
                    "format": "step-ids"},
    Kind.STRINGS: {"oneOf": [{"type": "string"},
                             {"type": "array", "items": {"type": "string"}}]},
    Kind.TEMPLATES: {"oneOf": [{"type": "string"},
                               {"type": "array", "items": {"type": "string"}}],
                     "format": "templates"},
    Kind.MONEY: {"type": ["string", "number"], "description": "\"$5.00\" or a number"},
    Kind.CRON: {"type": "string", "format": "cron"},
    Kind.TIMEZONE: {"type": "string", "format": "timezone"},
    Kind.WHEN: {"type": "string", "format": "date-time-or-template"},
    Kind.ANY: {},
    Kind.MAPPING: {"type": "object"},
    Kind.TEMPLATE_MAP: {"type": "object", "additionalProperties": {"type": "string"}},
    Kind.JSON_SCHEMA: {"type": "object"},
}


def json_schema() -> dict[str, Any]:
    """The whole format as one JSON Schema document."""
    defs: dict[str, Any] = {}
    for name, spec in schema.STEP_TYPES.items():
        defs[f"step_{name}"] = _object(spec, {"type": {"const": name}})
    untyped = schema.TRIGGER_TYPES["webhook"].by_name["type"].default
    for name, spec in schema.TRIGGER_TYPES.items():
        defs[f"trigger_{name}"] = trigger = _object(spec, {"type": {"const": name}})
        if name != untyped:  # a trigger without a type is a webhook, and only that
            trigger["required"] = [*trigger.get("required", ()), "type"]
    root = _object(schema.TOP_LEVEL)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://trinity-processes.dev/schema/process-v1.json",
        "title": "Trinity process definition (v1)",
        **root,
        "$defs": defs,
    }


def _object(spec: Spec, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for f in spec.fields:
        properties[f.name] = _field(f)
        for alias in f.aliases:
            properties[alias] = {**_field(f), "description": f"Alias of {f.name}."}
    properties.update(overrides or {})
    for key in spec.metadata_keys:  # a real field of the same name keeps its type and doc
        properties.setdefault(key, {"description": "Kept as metadata."})
    out: dict[str, Any] = {
        "type": "object",
        "description": spec.doc,
        "properties": properties,
        "patternProperties": {"^x-": {}},
        "additionalProperties": False,
    }
    required = [f.name for f in spec.fields if f.required and not f.aliases]
    if required:
        out["required"] = required
    return out


def _field(f: Field) -> dict[str, Any]:
    out = dict(_kind(f))
    out["description"] = f.doc
    if f.default is not None:
        out["default"] = f.default
    if f.choices:
        out["enum"] = list(f.choices)
    if f.minimum is not None:
        out["minimum"] = f.minimum
    if f.maximum is not None:
        out["maximum"] = f.maximum
    if f.new:
        out["x-new"] = True
    out["x-kind"] = f.kind.value
    return out


def _kind(f: Field) -> dict[str, Any]:
    if f.kind in _SCALARS:
        return _SCALARS[f.kind]
    if f.kind is Kind.ENUM:
        return {"type": "string"}
    if f.kind is Kind.OBJECT and f.spec:
        return _object(f.spec)
    if f.kind is Kind.OBJECTS and f.spec:
        return {"type": "array", "items": _object(f.spec)}
    if f.kind is Kind.OBJECT_MAP and f.spec:
        return {"type": "object", "additionalProperties": _object(f.spec)}
    if f.kind is Kind.ON_ERROR and f.spec:
        return {"oneOf": [{"type": "string", "enum": list(schema.ERROR_ACTIONS)},
                          _object(f.spec)]}
    if f.kind is Kind.ASSIGNEES:
        member = {"oneOf": [{"type": "string"}, {
            "type": "object", "properties": {"team": {"type": "string"},
                                             "role": {"type": "string"}},
            "required": ["team"], "additionalProperties": False}]}
        return {"oneOf": [{"type": "string"}, {"type": "array", "items": member}]}
    if f.kind is Kind.OUTPUTS and f.spec:
        return {"type": "array", "items": {"oneOf": [{"type": "string"}, _object(f.spec)]}}
    if f.kind is Kind.STEPS:
        return {"type": "array", "minItems": 1, "items": {"oneOf": [
            {"$ref": f"#/$defs/step_{n}"} for n in schema.STEP_TYPES]}}
    if f.kind is Kind.TRIGGERS:
        return {"type": "array", "items": {"oneOf": [
            {"$ref": f"#/$defs/trigger_{n}"} for n in schema.TRIGGER_TYPES]}}
    raise AssertionError(f"no JSON Schema for {f.kind}")
