"""Checks every expression's references: unknown steps, steps that cannot have run before the
one that reads them, unknown inputs, unknown names.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import networkx as nx

from engine import schema
from engine.expressions import ExpressionError, Reference, condition_references, template_references
from engine.issues import Issue, Level, did_you_mean
from engine.schema import Kind, Spec

__all__ = ["EXECUTION_FIELDS", "PROCESS_FIELDS", "STEP_FIELDS", "check_references"]

STEP_FIELDS = ("output", "status", "error")
EXECUTION_FIELDS = ("id", "started_at", "triggered_by", "started_by", "parent_id")
PROCESS_FIELDS = ("name", "version")
_ROOTS = ("input", "steps", "execution", "process")
_TEXT_KINDS = (Kind.TEMPLATE, Kind.CONDITION, Kind.TEMPLATES, Kind.TEMPLATE_MAP, Kind.WHEN)


def check_references(tree: Mapping[str, Any], graph: nx.DiGraph,
                     step_paths: Mapping[str, str]) -> list[Issue]:
    """Issues for every reference in every template and condition of the definition."""
    inputs = tree.get("input")
    declared = set(inputs) if isinstance(inputs, Mapping) and "input" in tree else None
    loops = _loop_sources(tree, graph)
    issues: list[Issue] = []
    for i, s in enumerate(tree.get("steps", ())):
        step_id = s.get("id")
        if step_id not in step_paths or step_paths[step_id] is None:
            continue
        spec = schema.step_spec(s.get("type", "")) or Spec("step", "", schema.STEP_COMMON)
        allowed = _allowed(step_id, graph, loops)
        for path, text, kind in _texts(s, spec, f"steps[{i}]"):
            own = step_id if kind == "compensation" else None
            after = set(nx.descendants(graph, step_id)) | {step_id}
            for ref in _refs(text, kind, path, issues):
                _check(ref, path, kind, step_id, allowed | ({own} if own else set()), after,
                       step_paths, declared, issues)
    for i, o in enumerate(tree.get("outputs", ())):
        path = f"outputs[{i}].source"
        for ref in _refs(o.get("source", ""), "template", path, issues):
            _check(ref, path, "template", None, set(step_paths), set(), step_paths, declared,
                   issues)
    return issues


def _texts(node: Mapping[str, Any], spec: Spec, path: str) -> Iterator[tuple[str, str, str]]:
    """(path, text, kind) for every template or condition below `node`."""
    for f in spec.fields:
        value = node.get(f.name)
        if value is None:
            continue
        fpath = f"{path}.{f.name}"
        if f.kind in _TEXT_KINDS:
            yield from _flatten(value, fpath, "condition" if f.kind is Kind.CONDITION
                                else "template")
        elif f.kind in (Kind.OBJECT, Kind.ON_ERROR) and f.spec and isinstance(value, Mapping):
            sub = "compensation" if f.name == "compensation" else None
            for p, t, k in _texts(value, f.spec, fpath):
                yield p, t, sub or k
        elif f.kind is Kind.OBJECTS and f.spec:
            for i, item in enumerate(value):
                yield from _texts(item, f.spec, f"{fpath}[{i}]")


def _flatten(value: Any, path: str, kind: str) -> Iterator[tuple[str, str, str]]:
    if isinstance(value, str):
        yield path, value, kind
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _flatten(item, f"{path}.{key}", kind)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _flatten(item, f"{path}[{i}]", kind)


def _refs(text: str, kind: str, path: str, issues: list[Issue]) -> list[Reference]:
    try:
        if kind == "condition":
            return condition_references(text)
        return template_references(text)
    except ExpressionError:
        return []  # already reported by the structural check


def _check(ref: Reference, path: str, kind: str, me: str | None, allowed: set[str],
           descendants: set[str], step_paths: Mapping[str, str], declared: set[str] | None,
           issues: list[Issue]) -> None:
    def error(code: str, message: str, hint: str | None = None) -> None:
        issues.append(Issue(Level.ERROR, code, path, message, hint))

    def warn(code: str, message: str, hint: str | None = None) -> None:
        issues.append(Issue(Level.WARNING, code, path, message, hint))

    written = _written(ref)
    if ref.root == "steps":
        _check_step_ref(ref, written, me, allowed, step_paths, error, warn, kind, descendants)
    elif ref.root == "input":
        name = ref.path[0] if ref.path else None
        if declared is not None and isinstance(name, str) and name not in declared:
            error("unknown-input", f"{written} refers to input '{name}', which is not declared "
                  "under input", did_you_mean(name, declared) or f"add '{name}' under input:")
    elif ref.root == "execution":
        _check_field(ref, written, EXECUTION_FIELDS, error)
    elif ref.root == "process":
        _check_field(ref, written, PROCESS_FIELDS, error)
    else:
        error("unknown-name", f"'{ref.root}' is not something an expression can refer to",
              f"references start with {', '.join(_ROOTS)}; quote text like '{ref.root}'")


def _check_step_ref(ref: Reference, written: str, me: str | None, allowed: set[str],
                    step_paths: Mapping[str, str], error: Any, warn: Any, kind: str,
                    descendants: set[str]) -> None:
    target = ref.step_id
    if not isinstance(target, str):
        error("bad-reference", f"{written} must name a step: steps.<id>.output")
        return
    if target not in step_paths:
        error("unknown-step", f"{written} refers to step '{target}', which does not exist",
              did_you_mean(target, step_paths))
        return
    if ref.field is None:
        error("bad-reference", f"{written}: a step offers {', '.join(STEP_FIELDS)}",
              f"write steps.{target}.output")
    elif ref.field not in STEP_FIELDS:
        warn("output-shorthand", f"{written} is read as steps.{target}.output.{ref.field} "
             "(legacy shorthand)", f"write steps.{target}.output.{ref.field}")
    if target == me and target not in allowed:
        error("self-reference", f"{written} refers to the step's own result, which does not "
              "exist yet while it runs")
    elif target not in allowed and (kind == "condition" or me is None
                                    or target in descendants):
        error("not-before", f"{written} refers to step '{target}', which cannot have run "
              f"before '{me}'", f"'{target}' runs after '{me}'; read it in a later step"
              if target in descendants else f"add '{target}' to the depends_on of '{me}'")
    elif target not in allowed:
        warn("maybe-not-run", f"{written} refers to step '{target}', which runs in parallel "
             f"with '{me}' and may not have finished; it then renders as empty text",
             f"add '{target}' to the depends_on of '{me}' to wait for it")


def _check_field(ref: Reference, written: str, fields: tuple[str, ...], error: Any) -> None:
    name = ref.path[0] if ref.path else None
    if name not in fields:
        error("bad-reference", f"{written}: {ref.root} offers {', '.join(fields)}",
              did_you_mean(str(name), fields))


def _written(ref: Reference) -> str:
    parts = [ref.root]
    for p in ref.path:
        parts.append(f"[{p}]" if isinstance(p, int) else f".{p}")
    return "".join(parts)


def _allowed(step_id: str, graph: nx.DiGraph, loops: Mapping[str, set[str]]) -> set[str]:
    allowed = set(nx.ancestors(graph, step_id)) if step_id in graph else set()
    allowed |= loops.get(step_id, set())
    return allowed


def _loop_sources(tree: Mapping[str, Any], graph: nx.DiGraph) -> dict[str, set[str]]:
    """Steps re-run by a back-jump may read the result of the step that jumped back."""
    loops: dict[str, set[str]] = {}
    for s in tree.get("steps", ()):
        source = s.get("id")
        targets = [(s.get("on_error") or {}).get("target_step"),
                   (s.get("on_changes_requested") or {}).get("goto")]
        for target in targets:
            if not target or target not in graph or source not in graph:
                continue
            between = (nx.descendants(graph, target) | {target}) & (
                nx.ancestors(graph, source) | {source})
            for step in between:
                loops.setdefault(step, set()).add(source)
    return loops
