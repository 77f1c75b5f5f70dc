"""Validation and lifecycle helpers of the designer, pure and testable.

- `check(text)`: the engine's validation of the YAML text, each issue tied to the canvas
  element at fault (a node `id`, an edge `source->target`, or None for process settings).
- `compare(old, new)`: a unified YAML diff plus which step ids were added, removed or changed,
  for highlighting the graph.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from app.definitions import validate_text
from engine.issues import Issue
from pages.designer.model import META, edge_id

__all__ = ["Comparison", "Problem", "check", "compare", "element_for", "errors_by_element"]

_STEP_PATH = re.compile(r"^steps\[(\d+)\](?:\.(\w+)(?:\[(\d+)\])?(?:\.(\w+))?)?")


@dataclass(frozen=True)
class Problem:
    level: str
    code: str
    message: str
    path: str
    hint: str | None = None
    line: int | None = None
    element: str | None = None  # node id, edge id or None (process settings)

    @property
    def is_error(self) -> bool:
        return self.level == "error"


def check(text: str, lookup: Any = None) -> list[Problem]:
    """Every issue of the YAML text, with the canvas element it belongs to."""
    _, issues = validate_text(text, lookup)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        doc = None
    return [_problem(i, doc) for i in issues]


def errors_by_element(problems: list[Problem]) -> dict[str, list[str]]:
    """{element id: messages}: what the canvas shows as badges (errors and warnings)."""
    out: dict[str, list[str]] = {}
    for p in problems:
        if p.element:
            out.setdefault(p.element, []).append(f"{p.level}: {p.message}")
    return out


def element_for(path: str, doc: Any) -> str | None:
    """The node or edge an issue path points at."""
    m = _STEP_PATH.match(path)
    steps = doc.get("steps") if isinstance(doc, dict) else None
    if not m or not isinstance(steps, list) or int(m.group(1)) >= len(steps):
        return None
    step = steps[int(m.group(1))]
    if not isinstance(step, dict) or not isinstance(step.get("id"), str):
        return None
    sid, key, index = step["id"], m.group(2), m.group(3)
    # An edge only when both ends are drawn; a link to an unknown step is the step's fault.
    ids = {s.get("id") for s in steps if isinstance(s, dict)}
    deps = step.get("depends_on")
    deps = [deps] if isinstance(deps, str) else deps if isinstance(deps, list) else []
    other: Any = None
    if key == "depends_on" and index is not None and int(index) < len(deps):
        other = deps[int(index)]
        return edge_id(str(other), sid) if other in ids else sid
    routes = step.get("routes") if isinstance(step.get("routes"), list) else []
    if key == "routes" and index is not None and int(index) < len(routes):
        route = routes[int(index)]
        other = route.get("target") if isinstance(route, dict) else None
    elif key == "default_route":
        other = step.get("default_route")
    return edge_id(sid, other) if other in ids and _follows(steps, other, sid) else sid


def _follows(steps: list[Any], step_id: Any, source: str) -> bool:
    """Whether step `step_id` depends on `source`, so the edge source → step is drawn."""
    for s in steps:
        if isinstance(s, dict) and s.get("id") == step_id:
            deps = s.get("depends_on")
            return source == deps or (isinstance(deps, list) and source in deps)
    return False


def _problem(issue: Issue, doc: Any) -> Problem:
    return Problem(issue.level.value, issue.code, issue.message, issue.path, issue.hint,
                   issue.line, element_for(issue.path, doc))


@dataclass(frozen=True)
class Comparison:
    diff: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    process_changed: bool = False  # a top-level setting other than steps changed


def compare(old_text: str, new_text: str, old_label: str = "before",
            new_label: str = "after") -> Comparison:
    """What changed between two versions (positions in x-designer do not count)."""
    diff = "".join(difflib.unified_diff(old_text.splitlines(keepends=True),
                                        new_text.splitlines(keepends=True),
                                        old_label, new_label))
    old, new = _load(old_text), _load(new_text)
    before, after = _steps_by_id(old), _steps_by_id(new)
    settings = [k for k in {*old, *new} if k not in ("steps", META)]
    return Comparison(
        diff,
        added=[s for s in after if s not in before],
        removed=[s for s in before if s not in after],
        changed=[s for s in after if s in before and after[s] != before[s]],
        process_changed=any(old.get(k) != new.get(k) for k in settings))


def _load(text: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _steps_by_id(doc: dict[str, Any]) -> dict[str, Any]:
    steps = doc.get("steps") if isinstance(doc.get("steps"), list) else []
    return {s["id"]: s for s in steps if isinstance(s, dict) and isinstance(s.get("id"), str)}
