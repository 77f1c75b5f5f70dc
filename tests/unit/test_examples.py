"""The example processes in examples/ are clean (no error, no warning) and together show every
step type, every gateway type and every field of the format (engine.schema)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from app.definitions import ValidatedFile, validate_files
from app.yamlio import parse_yaml
from engine import schema
from engine.schema import Field, Kind, Spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILES = sorted(EXAMPLES.glob("*.yaml"))
DEMO_AGENTS = {"demo-writer", "demo-analyst", "demo-reviewer", "demo-echo"}

# Fields the examples cannot show, with the reason. Empty: every field is shown.
NOT_COVERED: dict[tuple[str, str], str] = {}

COMMON = "step (common)"  # fields every step type shares are counted once, for all steps


@pytest.fixture(scope="module")
def results() -> dict[str, ValidatedFile]:
    # Validated together, as `trinity validate examples/*.yaml` does: sub-process loops count.
    return {r.path.name: r for r in validate_files(FILES)}


@pytest.fixture(scope="module")
def documents() -> dict[str, Any]:
    return {p.name: parse_yaml(p.read_text(encoding="utf-8")).data for p in FILES}


def test_there_are_six_to_eight_examples() -> None:
    assert 6 <= len(FILES) <= 10, [p.name for p in FILES]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_example_validates_without_any_error_or_warning(
        path: Path, results: dict[str, ValidatedFile]) -> None:
    result = results[path.name]
    assert [i.format(path.name) for i in result.issues] == []
    assert result.definition is not None


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_example_starts_by_saying_what_it_shows_and_how_to_run_it(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    header = text[:text.index("\nname:")]
    assert all(line.startswith("#") for line in header.splitlines()), "a comment block first"
    assert f"trinity start examples/{path.name}" in header
    assert "--wait" in header


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_example_uses_only_the_demo_agents(
        path: Path, results: dict[str, ValidatedFile]) -> None:
    definition = results[path.name].definition
    assert definition is not None
    agents = {getattr(s.spec, "agent", None) for s in definition.steps} - {None}
    agents |= {s.compensation.agent for s in definition.steps
               if s.compensation and s.compensation.agent}
    assert agents <= DEMO_AGENTS


def test_every_sub_process_an_example_starts_is_another_example(
        results: dict[str, ValidatedFile]) -> None:
    names = {r.definition.name for r in results.values() if r.definition}
    children = {s.spec.process_name for r in results.values() if r.definition
                for s in r.definition.steps if s.type == "sub_process"}
    assert children
    assert children <= names


def test_the_examples_show_every_step_gateway_trigger_and_compensation_type(
        results: dict[str, ValidatedFile]) -> None:
    steps = [s for r in results.values() if r.definition for s in r.definition.steps]
    assert {s.type.value for s in steps} == set(schema.STEP_TYPE_NAMES)
    assert {s.spec.gateway_type.value for s in steps if s.type == "gateway"} == \
        {"exclusive", "parallel", "inclusive"}
    triggers = [t for r in results.values() if r.definition for t in r.definition.triggers]
    assert {t.type for t in triggers} == set(schema.TRIGGER_TYPES)
    assert {s.compensation.type for s in steps if s.compensation} == \
        {"agent_task", "notification"}


def test_the_examples_show_the_forms_the_format_allows(
        results: dict[str, ValidatedFile], documents: dict[str, Any]) -> None:
    definitions = [r.definition for r in results.values() if r.definition]
    steps = [s for d in definitions for s in d.steps]
    raw_steps = [s for doc in documents.values() for s in doc["steps"]]
    timers = [s.spec for s in steps if s.type == "timer"]
    assert any(t.delay for t in timers) and any(t.until for t in timers)
    channels = {c for s in steps if s.type == "notification" for c in s.spec.channels}
    assert channels == set(schema.CHANNELS)
    assert any("channels" in s for s in raw_steps if s["type"] == "notification")
    subs = [s.spec for s in steps if s.type == "sub_process"]
    assert any(sp.input_mapping for sp in subs)
    assert any(not sp.wait_for_completion for sp in subs)
    assert any(isinstance(s.get("on_error"), str) for s in raw_steps)
    assert any(isinstance(s.get("on_error"), dict) and s["on_error"].get("action") == "goto_step"
               and "max_visits" in s["on_error"] for s in raw_steps)
    assignees = [a for s in steps if s.type == "human_approval" for a in s.spec.assignees]
    assert any(a.user for a in assignees)
    assert any(a.team and not a.role for a in assignees)
    assert any(a.team and a.role for a in assignees)
    triggers = [t for d in definitions for t in d.triggers]
    assert any(t.secret and t.secret.startswith("${") for t in triggers if t.type == "webhook")
    assert any(t.cron in schema.CRON_PRESETS and t.timezone != "UTC" and t.input
               for t in triggers if t.type == "schedule")
    sources = [o.source for d in definitions for o in d.outputs]
    assert any("||" in s for s in sources)
    assert any("| " in s.replace("||", "") for s in sources)
    assert any(isinstance(o, str) for doc in documents.values() for o in doc.get("outputs", []))


def test_together_the_examples_use_every_field_of_the_format(
        documents: dict[str, Any]) -> None:
    used: set[tuple[str, str]] = set()
    for doc in documents.values():
        used |= set(_used(doc, schema.TOP_LEVEL))
    missing = sorted(set(_every_field()) - used - set(NOT_COVERED))
    assert not missing, "fields no example uses: " + ", ".join(f"{o}.{f}" for o, f in missing)


def test_the_field_walk_knows_fields_of_every_level() -> None:
    # Guards the coverage test: it must see nested, per-type and common fields.
    every = set(_every_field())
    assert {("process", "config"), ("retry", "jitter"), ("on_changes_requested", "goto"),
            ("route", "target"), ("schedule trigger", "input"), (COMMON, "compensation"),
            ("timer step", "until"), ("input field", "enum")} <= every
    assert not any(alias in {f for _, f in every} for alias in ("timeout_action", "process"))


# --- walking specs and documents -----------------------------------------------------------


def _owner(spec: Spec, f: Field) -> str:
    return COMMON if f in schema.STEP_COMMON else spec.name


def _every_field() -> Iterator[tuple[str, str]]:
    seen: set[str] = set()
    stack = [schema.TOP_LEVEL, *schema.STEP_TYPES.values(), *schema.TRIGGER_TYPES.values()]
    while stack:
        spec = stack.pop()
        if spec.name in seen:
            continue
        seen.add(spec.name)
        for f in spec.fields:
            yield _owner(spec, f), f.name
            if f.spec is not None:
                stack.append(f.spec)


def _used(data: Any, spec: Spec) -> Iterator[tuple[str, str]]:
    """(owner, field) for every canonical key written in `data`; aliases do not count."""
    if not isinstance(data, Mapping):
        return
    for key, value in data.items():
        f = spec.by_name.get(key)
        if f is None or f.name != key:
            continue
        yield _owner(spec, f), f.name
        yield from _used_below(value, f)


def _used_below(value: Any, f: Field) -> Iterator[tuple[str, str]]:
    items = value if isinstance(value, list) else [value]
    if f.kind is Kind.STEPS:
        for step in items:
            step_spec = schema.step_spec(step.get("type", ""))
            if step_spec:
                yield from _used(step, step_spec)
    elif f.kind is Kind.TRIGGERS:
        for trigger in items:
            trigger_spec = schema.trigger_spec(trigger.get("type", "webhook"))
            if trigger_spec:
                yield from _used(trigger, trigger_spec)
    elif f.kind is Kind.OBJECT_MAP and f.spec and isinstance(value, Mapping):
        for item in value.values():
            yield from _used(item, f.spec)
    elif f.spec is not None:
        for item in items:
            yield from _used(item, f.spec)
