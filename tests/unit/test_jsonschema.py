"""The JSON Schema served by `trinity schema` and the API: well-formed draft 2020-12, generated
from engine.schema without losing a field, and accepting every valid definition we have.

The `jsonschema` package is used when installed; otherwise a small validator below checks
the subset of keywords the generated schema uses, so the test still runs.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.definitions import validate_text
from app.yamlio import parse_yaml
from engine import schema
from engine.jsonschema import json_schema
from engine.schema import Field, Kind, Spec

try:
    import jsonschema
except ImportError:  # not a dependency of the project
    jsonschema = None

ROOT = Path(__file__).resolve().parents[2]
COMPAT_DIR = Path(os.environ.get("TRINITY_COMPAT_DIR") or
                  ROOT.parent / "shared" / "compat" / "trinity")
DRAFT = "https://json-schema.org/draft/2020-12/schema"
JSON_TYPES = {"null", "boolean", "object", "array", "number", "string", "integer"}
KEYWORDS = {  # draft 2020-12 keywords the generator may use
    "$schema", "$id", "$ref", "$defs", "title", "description", "default", "type", "enum",
    "const", "oneOf", "anyOf", "allOf", "properties", "patternProperties",
    "additionalProperties", "required", "items", "minItems", "pattern", "minimum", "maximum",
    "format", "examples",
}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return json_schema()


def _valid_definition_files() -> list[Path]:
    """The examples and the compat corpus, without the files that have errors."""
    examples = sorted((ROOT / "examples").glob("*.yaml"))
    compat = sorted(p for p in COMPAT_DIR.glob("*.yaml")
                    if not p.name.endswith("__template.yaml")) if COMPAT_DIR.is_dir() else []
    return [p for p in examples + compat
            if not any(i.is_error for i in validate_text(p.read_text(encoding="utf-8"))[1])]


# --- well-formed ---------------------------------------------------------------------------


def test_the_schema_declares_draft_2020_12_and_is_plain_json(doc: dict[str, Any]) -> None:
    assert doc["$schema"] == DRAFT
    assert doc["$id"].endswith(".json")
    assert json.loads(json.dumps(doc)) == doc


def test_the_schema_uses_only_draft_2020_12_keywords_correctly(doc: dict[str, Any]) -> None:
    problems = [f"{where}: {problem}" for where, node in _subschemas(doc, "#")
                for problem in _keyword_problems(node, doc)]
    assert problems == []


@pytest.mark.skipif(jsonschema is None, reason="the jsonschema package is not installed")
def test_the_jsonschema_package_accepts_the_schema(doc: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(doc)


def test_every_default_in_the_schema_is_valid_for_its_own_field(doc: dict[str, Any]) -> None:
    bad = [f"{where}: {node['default']!r}" for where, node in _subschemas(doc, "#")
           if "default" in node and _errors(node["default"], node, doc)]
    assert bad == []


# --- complete ------------------------------------------------------------------------------


def test_the_schema_lists_every_step_type(doc: dict[str, Any]) -> None:
    refs = [o["$ref"] for o in doc["properties"]["steps"]["items"]["oneOf"]]
    assert refs == [f"#/$defs/step_{name}" for name in schema.STEP_TYPE_NAMES]
    for name in schema.STEP_TYPE_NAMES:
        step = doc["$defs"][f"step_{name}"]
        assert step["properties"]["type"] == {"const": name}
        assert "type" in step["required"] and "id" in step["required"]


def test_the_schema_lists_every_trigger_type(doc: dict[str, Any]) -> None:
    refs = [o["$ref"] for o in doc["properties"]["triggers"]["items"]["oneOf"]]
    assert refs == [f"#/$defs/trigger_{name}" for name in schema.TRIGGER_TYPES]


def test_the_schema_has_every_field_and_alias_of_engine_schema(doc: dict[str, Any]) -> None:
    missing = []
    for where, spec, node in _spec_nodes(doc):
        properties = node["properties"]
        for f in spec.fields:
            if f.name not in properties:
                missing.append(f"{where}.{f.name}")
            for alias in f.aliases:
                if properties.get(alias, {}).get("description") != f"Alias of {f.name}.":
                    missing.append(f"{where}.{alias} (alias of {f.name})")
        assert node["additionalProperties"] is False, where
        assert set(node["patternProperties"]) == {"^x-"}, where
    assert missing == []


def test_the_schema_keeps_required_fields_choices_and_defaults(doc: dict[str, Any]) -> None:
    for where, spec, node in _spec_nodes(doc):
        for f in spec.fields:
            prop = node["properties"][f.name]
            if f.required and not f.aliases:
                assert f.name in node.get("required", []), f"{where}.{f.name}"
            if f.kind is Kind.ENUM and f.name != "type":
                assert prop["enum"] == list(f.choices), f"{where}.{f.name}"
            if f.default is not None and f.name != "type":
                assert prop["default"] == f.default, f"{where}.{f.name}"
            if f.name != "type" or where == "#":
                assert prop["description"] == f.doc, f"{where}.{f.name}"


def test_every_field_and_every_block_of_the_format_is_documented() -> None:
    undocumented = [f"{spec.name}.{f.name}" for spec, f in _spec_fields() if not f.doc.strip()]
    undocumented += [spec.name for spec in _specs() if not spec.doc.strip()]
    assert undocumented == []


# --- accepts what the validator accepts ----------------------------------------------------


@pytest.mark.parametrize("path", _valid_definition_files(), ids=lambda p: p.name)
def test_every_valid_definition_we_have_matches_the_schema(path: Path,
                                                          doc: dict[str, Any]) -> None:
    data = _as_json(parse_yaml(path.read_text(encoding="utf-8")).data)
    assert _errors(data, doc, doc) == []


def test_a_typo_that_the_validator_rejects_is_also_rejected_by_the_schema(
        doc: dict[str, Any]) -> None:
    data = {"name": "demo", "steps": [{"id": "a", "type": "timer", "dely": "5m"}]}
    assert _errors(data, doc, doc) != []


def test_a_trigger_without_a_type_matches_exactly_the_webhook_trigger(
        doc: dict[str, Any]) -> None:
    data = {"name": "demo", "triggers": [{"id": "hook"}],
            "steps": [{"id": "a", "type": "timer", "delay": "5m"}]}
    assert _errors(data, doc, doc) == []


def test_a_name_that_is_only_a_warning_for_the_validator_is_accepted_by_the_schema(
        doc: dict[str, Any]) -> None:
    for name in ("{{name}}", "Invoice Approval"):
        data = {"name": name, "steps": [{"id": "a", "type": "timer", "delay": "5m"}]}
        assert _errors(data, doc, doc) == []


# --- helpers -------------------------------------------------------------------------------


def _specs() -> Iterator[Spec]:
    seen: set[str] = set()
    stack = [schema.TOP_LEVEL, *schema.STEP_TYPES.values(), *schema.TRIGGER_TYPES.values()]
    while stack:
        spec = stack.pop()
        if spec.name not in seen:
            seen.add(spec.name)
            yield spec
            stack.extend(f.spec for f in spec.fields if f.spec is not None)


def _spec_fields() -> Iterator[tuple[Spec, Field]]:
    for spec in _specs():
        for f in spec.fields:
            yield spec, f


def _spec_nodes(doc: dict[str, Any]) -> Iterator[tuple[str, Spec, dict[str, Any]]]:
    """Every object schema generated from a spec, with that spec, down every nesting."""
    stack: list[tuple[str, Spec, dict[str, Any]]] = [("#", schema.TOP_LEVEL, doc)]
    stack += [(f"#/$defs/step_{n}", s, doc["$defs"][f"step_{n}"])
              for n, s in schema.STEP_TYPES.items()]
    stack += [(f"#/$defs/trigger_{n}", s, doc["$defs"][f"trigger_{n}"])
              for n, s in schema.TRIGGER_TYPES.items()]
    while stack:
        where, spec, node = stack.pop()
        yield where, spec, node
        for f in spec.fields:
            if f.spec is not None:
                stack.append((f"{where}.{f.name}", f.spec,
                              _nested_object(node["properties"][f.name], f)))


def _nested_object(prop: dict[str, Any], f: Field) -> dict[str, Any]:
    if f.kind is Kind.OBJECT:
        return prop
    if f.kind is Kind.OBJECTS:
        return prop["items"]
    if f.kind is Kind.OBJECT_MAP:
        return prop["additionalProperties"]
    if f.kind is Kind.ON_ERROR:
        return prop["oneOf"][1]
    if f.kind is Kind.OUTPUTS:
        return prop["items"]["oneOf"][1]
    raise AssertionError(f"no nested object for {f.kind}")


def _subschemas(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(node, dict):
        return
    yield where, node
    for key in ("properties", "patternProperties", "$defs"):
        for name, sub in node.get(key, {}).items():
            yield from _subschemas(sub, f"{where}/{key}/{name}")
    for key in ("items", "additionalProperties"):
        yield from _subschemas(node.get(key), f"{where}/{key}")
    for key in ("oneOf", "anyOf", "allOf"):
        for i, sub in enumerate(node.get(key, [])):
            yield from _subschemas(sub, f"{where}/{key}/{i}")


def _keyword_problems(node: dict[str, Any], doc: dict[str, Any]) -> Iterator[str]:
    for key in node:
        if key not in KEYWORDS and not key.startswith("x-"):
            yield f"unknown keyword {key}"
    types = node.get("type", [])
    for t in types if isinstance(types, list) else [types]:
        if t not in JSON_TYPES:
            yield f"bad type {t}"
    if "required" in node and not set(node["required"]) <= set(node.get("properties", {})):
        yield f"required names an unknown property: {node['required']}"
    if "enum" in node and (not node["enum"] or len(set(map(str, node["enum"]))) <
                           len(node["enum"])):
        yield "enum must be a non-empty list of distinct values"
    for key in ("oneOf", "anyOf", "allOf"):
        if key in node and (not isinstance(node[key], list) or not node[key]):
            yield f"{key} must be a non-empty list"
    if "pattern" in node:
        re.compile(node["pattern"])
    if "$ref" in node and _resolve(node["$ref"], doc) is None:
        yield f"unresolved $ref {node['$ref']}"
    if not isinstance(node.get("additionalProperties", False), bool | dict):
        yield "additionalProperties must be a boolean or a schema"


def _resolve(ref: str, doc: dict[str, Any]) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _as_json(data: Any) -> Any:
    # YAML reads unquoted dates as datetimes; a JSON client would send text.
    return json.loads(json.dumps(data, default=str))


def _errors(value: Any, node: Any, doc: dict[str, Any], where: str = "$") -> list[str]:
    if jsonschema is not None and node is doc:
        validator = jsonschema.Draft202012Validator(doc)
        return [f"{'/'.join(map(str, e.path))}: {e.message}"
                for e in validator.iter_errors(value)]
    return _mini_errors(value, node, doc, where)


def _mini_errors(value: Any, node: Any, doc: dict[str, Any], where: str) -> list[str]:
    """The keywords the generated schema uses, checked like a draft 2020-12 validator."""
    if "$ref" in node:
        return _mini_errors(value, _resolve(node["$ref"], doc), doc, where)
    types = node.get("type")
    if types is not None and not any(
            _is_type(value, t) for t in (types if isinstance(types, list) else [types])):
        return [f"{where}: {value!r} is not of type {types}"]
    out = [f"{where}: {m}" for m in _scalar_problems(value, node)]
    if "oneOf" in node:
        matches = [s for s in node["oneOf"] if not _mini_errors(value, s, doc, where)]
        if len(matches) != 1:
            out.append(f"{where}: matches {len(matches)} of oneOf, not exactly one")
    if isinstance(value, dict):
        out += _object_errors(value, node, doc, where)
    if isinstance(value, list):
        if len(value) < node.get("minItems", 0):
            out.append(f"{where}: fewer than {node['minItems']} items")
        for i, item in enumerate(value):
            out += _mini_errors(item, node.get("items", {}), doc, f"{where}[{i}]")
    return out


def _object_errors(value: dict[str, Any], node: Any, doc: dict[str, Any],
                   where: str) -> list[str]:
    out = [f"{where}: '{k}' is required" for k in node.get("required", []) if k not in value]
    properties = node.get("properties", {})
    for key, item in value.items():
        if key in properties:
            out += _mini_errors(item, properties[key], doc, f"{where}.{key}")
        elif any(re.search(p, key) for p in node.get("patternProperties", {})):
            continue
        elif node.get("additionalProperties") is False:
            out.append(f"{where}: '{key}' is not allowed")
        elif isinstance(node.get("additionalProperties"), dict):
            out += _mini_errors(item, node["additionalProperties"], doc, f"{where}.{key}")
    return out


def _scalar_problems(value: Any, node: Any) -> Iterator[str]:
    if "const" in node and value != node["const"]:
        yield f"{value!r} is not {node['const']!r}"
    if "enum" in node and value not in node["enum"]:
        yield f"{value!r} is not one of {node['enum']}"
    if "pattern" in node and isinstance(value, str) and not re.search(node["pattern"], value):
        yield f"{value!r} does not match {node['pattern']}"
    if _is_type(value, "number"):
        if "minimum" in node and value < node["minimum"]:
            yield f"{value} is below {node['minimum']}"
        if "maximum" in node and value > node["maximum"]:
            yield f"{value} is above {node['maximum']}"


def _is_type(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    python = {"null": type(None), "boolean": bool, "object": dict, "array": list,
              "number": (int, float), "string": str}[name]
    return isinstance(value, python)
