"""The designer model: a process document that the canvas edits through intents.

Python owns the model; the browser only sends intents (drop, connect, move, remove, select,
edge-label edit) and draws what `graph()` returns. The model holds

- `doc`: the YAML document as plain data (what `yaml.safe_load` gives), and
- `text`: its YAML text, rewritten after each canvas change by `yamltext.rewrite`, which
  keeps the user's text (comments included) wherever the data did not change.

How the format maps to the canvas
- Every step is a node; `depends_on: [a]` on step `b` is the edge a → b. A gateway's edge to
  a route target is labelled with the route's condition; the edge to `default_route` is
  marked as the default.
- "Start" and "End" are drawn but never written as steps: the start node connects to every
  step without `depends_on`, and every step nothing depends on connects to the end node.
  Both edges are derived, so they round-trip without being stored.
- Positions are stored under the top-level metadata key `x-designer: {positions: {id: [x, y]}}`
  (the format keeps `x-` keys as metadata). Missing positions come from `layout.py`.

Every mutating method returns an `Outcome`; a refused intent (a cycle, an edge into the
start...) leaves the model untouched and says why.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import yaml

from pages.designer.kinds import DEFAULTS, END, KINDS, START, kind_of
from pages.designer.layout import layered_layout
from pages.designer.yamltext import rewrite

__all__ = ["META", "DesignerModel", "ModelError", "Outcome", "edge_id"]

META = "x-designer"
GRID = 20


class ModelError(ValueError):
    """Text that is not a process document the designer can show."""


@dataclass
class Outcome:
    ok: bool
    message: str | None = None
    added: list[str] = field(default_factory=list)  # ids of new nodes


def edge_id(source: str, target: str) -> str:
    return f"{source}->{target}"


class DesignerModel:
    """A process document plus positions; see the module docstring for the mapping."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.doc = _parse(text)
        self.positions: dict[str, tuple[float, float]] = {}
        self._read_positions()

    @classmethod
    def blank(cls, name: str = "new-process") -> DesignerModel:
        return cls(f"name: {name}\nsteps: []\n")

    # --- reading ----------------------------------------------------------------------------

    @property
    def steps(self) -> list[dict[str, Any]]:
        steps = self.doc.get("steps")
        return [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []

    def step(self, step_id: str) -> dict[str, Any] | None:
        return next((s for s in self.steps if s.get("id") == step_id), None)

    def ids(self) -> list[str]:
        return [s["id"] for s in self.steps if isinstance(s.get("id"), str)]

    def depends_on(self, step: dict[str, Any]) -> list[str]:
        deps = step.get("depends_on")
        if isinstance(deps, str):
            return [deps]
        return [d for d in deps if isinstance(d, str)] if isinstance(deps, list) else []

    def edges(self) -> list[tuple[str, str]]:
        """Every drawn edge (source, target), the derived start and end edges included."""
        ids = set(self.ids())
        out: list[tuple[str, str]] = []
        has_successor: set[str] = set()
        for step in self.steps:
            sid = step.get("id")
            if not isinstance(sid, str):
                continue
            deps = [d for d in self.depends_on(step) if d in ids and d != sid]
            if not deps:
                out.append((START, sid))
            out.extend((d, sid) for d in deps)
            has_successor.update(deps)
        out.extend((sid, END) for sid in ids if sid not in has_successor)
        return out

    def graph(self) -> dict[str, list[dict[str, Any]]]:
        """The browser payload: Vue Flow nodes and edges."""
        nodes = [self._node_payload(START, None), self._node_payload(END, None)]
        nodes += [self._node_payload(s["id"], s) for s in self.steps
                  if isinstance(s.get("id"), str)]
        return {"nodes": nodes, "edges": [self.edge_payload(u, v) for u, v in self.edges()]}

    def edge_payload(self, source: str, target: str) -> dict[str, Any]:
        virtual = source == START or target == END
        label, is_default, routed = "", False, False
        gateway = self.step(source)
        if gateway is not None and gateway.get("type") == "gateway":
            is_default = gateway.get("default_route") == target
            route = _route(gateway, target)
            routed = route is not None
            if route is not None:
                label = str(route.get("condition") or "")
            if is_default:
                label = "default"
            elif routed and not label and gateway.get("gateway_type") != "parallel":
                label = "always"
        return {"id": edge_id(source, target), "source": source, "target": target,
                "sourceHandle": "default" if is_default else "out", "targetHandle": "in",
                "type": "smoothstep", "label": label, "markerEnd": "arrowclosed",
                "deletable": not virtual, "selectable": not virtual,
                "class": " ".join(c for c in ("virtual" if virtual else "",
                                              "default" if is_default else "",
                                              "route" if routed else "") if c),
                "data": {"virtual": virtual, "default": is_default, "route": routed}}

    def _node_payload(self, node_id: str, step: dict[str, Any] | None) -> dict[str, Any]:
        kind = KINDS["start" if node_id == START else "end"] if step is None else kind_of(step)
        x, y = self.positions.get(node_id, (0, 0))
        label = kind.label if step is None else str(step.get("name") or node_id)
        return {"id": node_id, "type": "trinity", "position": {"x": x, "y": y},
                "deletable": step is not None,
                "data": {"kind": kind.name, "label": label, "icon": kind.icon,
                         "shape": kind.shape, "stepId": None if step is None else node_id,
                         "subtitle": "" if step is None else _subtitle(step)}}

    # --- intents ----------------------------------------------------------------------------

    def drop(self, kind_name: str, x: float, y: float) -> Outcome:
        """A palette item dropped at (x, y): a new step with a fresh id."""
        kind = KINDS.get(kind_name)
        if kind is None:
            return Outcome(False, f"unknown kind '{kind_name}'")
        position = (_snap(x), _snap(y))
        if kind.step_type is None:  # one start and one end: move it there
            self.positions[START if kind.name == "start" else END] = position
            return Outcome(True, f"there is one {kind.label.lower()}; moved it here")
        new_id = self._fresh_id(kind.name)
        step: dict[str, Any] = {"id": new_id, "name": kind.label, "type": kind.step_type}
        if kind.gateway_type:
            step["gateway_type"] = kind.gateway_type
        step.update(copy.deepcopy(DEFAULTS.get(kind.step_type, {})))
        self._step_list().append(step)
        self.positions[new_id] = position
        return Outcome(True, added=[new_id])

    def connect(self, source: str, target: str, handle: str | None = None) -> Outcome:
        """Connect source → target: target gets source in its depends_on (and a route)."""
        refusal = self._refuse_connection(source, target)
        if refusal is not None:
            return Outcome(False, refusal)
        if source == START or target == END:
            return Outcome(True)  # derived edges: already drawn
        step = self.step(target)
        gateway = self.step(source)
        assert step is not None and gateway is not None
        _set_deps(step, [*self.depends_on(step), source])
        if gateway.get("type") == "gateway":
            if handle == "default" and gateway.get("gateway_type") != "parallel":
                gateway["default_route"] = target
            else:
                gateway.setdefault("routes", []).append({"target": target})
        return Outcome(True)

    def _refuse_connection(self, source: str, target: str) -> str | None:
        ids = set(self.ids())
        if target == START:
            return "nothing can lead into the start"
        if source == END:
            return "nothing can follow the end"
        if source == target:
            return "a step cannot follow itself"
        if (source not in ids and source != START) or (target not in ids and target != END):
            return "connect two steps of this process"
        if source == START:
            step = self.step(target)
            deps = self.depends_on(step) if step else []
            return (f"'{target}' already follows {', '.join(deps)}; remove those connections "
                    "to make it a first step") if deps else None
        if target == END:
            return None
        step = self.step(target)
        if step is not None and source in self.depends_on(step):
            return f"'{target}' already follows '{source}'"
        g = nx.DiGraph([(u, v) for u, v in self.edges() if u != START and v != END])
        if target in g and source in g and nx.has_path(g, target, source):
            path = nx.shortest_path(g, target, source)
            return ("that would make a cycle: " + " → ".join([*path, target]) +
                    "; loop back with on_error goto_step or on_changes_requested instead")
        return None

    def move(self, moves: list[dict[str, Any]]) -> Outcome:
        known = {*self.ids(), START, END}
        for m in moves:
            if m.get("id") in known:
                self.positions[m["id"]] = (_snap(m.get("x", 0)), _snap(m.get("y", 0)))
        return Outcome(True)

    def remove(self, nodes: list[str], edges: list[str]) -> Outcome:
        """Delete steps (and every link to them) and edges (a dependency and its route)."""
        gone = {n for n in nodes if n not in (START, END)}
        for eid in edges:
            source, _, target = eid.partition("->")
            if source in gone or target in gone or START in (source, target) or \
                    END in (source, target):
                continue
            self._unlink(source, target)
        if gone:
            self.doc["steps"] = [s for s in self._step_list()
                                 if not (isinstance(s, dict) and s.get("id") in gone)]
            for step in self.steps:
                for dep in self.depends_on(step):
                    if dep in gone:
                        self._unlink(dep, step["id"])
                if step.get("type") == "gateway":
                    _drop_routes(step, gone)
            for n in gone:
                self.positions.pop(n, None)
        skipped = [n for n in nodes if n in (START, END)]
        return Outcome(True, "start and end cannot be deleted" if skipped and not gone
                       else None)

    def _unlink(self, source: str, target: str) -> None:
        step = self.step(target)
        if step is not None:
            _set_deps(step, [d for d in self.depends_on(step) if d != source])
        gateway = self.step(source)
        if gateway is not None and gateway.get("type") == "gateway":
            _drop_routes(gateway, {target})

    def set_edge_label(self, eid: str, label: str) -> Outcome:
        """Edit a gateway route's condition; "" makes the route unconditional."""
        source, _, target = eid.partition("->")
        gateway = self.step(source)
        if gateway is None or gateway.get("type") != "gateway":
            return Outcome(False, "only the routes of a gateway have a condition")
        label = label.strip()
        if gateway.get("default_route") == target:
            if not label or label == "default":
                return Outcome(True)
            del gateway["default_route"]
        route = _route(gateway, target)
        if route is None:
            route = {"target": target}
            gateway.setdefault("routes", []).append(route)
        if label and label != "always":
            route.clear()
            route.update({"condition": label, "target": target})
        else:
            route.pop("condition", None)
        return Outcome(True)

    def set_default(self, eid: str) -> Outcome:
        """Make this gateway edge the default route."""
        source, _, target = eid.partition("->")
        gateway = self.step(source)
        if gateway is None or gateway.get("type") != "gateway":
            return Outcome(False, "only a gateway has a default route")
        if gateway.get("gateway_type") == "parallel":
            return Outcome(False, "a parallel gateway takes every route; it has no default")
        _drop_routes(gateway, {target})
        gateway["default_route"] = target
        return Outcome(True)

    def set_field(self, step_id: str, path: list[Any], value: Any) -> Outcome:
        """Set a step field (nested by path); None, "" and [] remove it."""
        step = self.step(step_id)
        if step is None:
            return Outcome(False, f"no step '{step_id}'")
        if path == ["id"]:
            return self.rename(step_id, str(value or "").strip())
        _set_path(step, path, value)
        return Outcome(True)

    def set_process_field(self, path: list[Any], value: Any) -> Outcome:
        if path and path[0] in ("steps", META):
            return Outcome(False, f"'{path[0]}' is edited on the canvas")
        _set_path(self.doc, path, value)
        return Outcome(True)

    def rename(self, old: str, new: str) -> Outcome:
        """Change a step id and every structural reference to it."""
        if not re.match(r"^[a-z][a-z0-9_-]*$", new) or len(new) > 64:
            return Outcome(False, "an id starts with a lowercase letter and holds only "
                                  "lowercase letters, digits, - and _")
        if new == old:
            return Outcome(True)
        if new in self.ids():
            return Outcome(False, f"there is already a step '{new}'")
        for step in self.steps:
            if step.get("id") == old:
                step["id"] = new
            deps = self.depends_on(step)
            if old in deps:
                _set_deps(step, [new if d == old else d for d in deps])
            _rename_refs(step, old, new)
        if old in self.positions:
            self.positions[new] = self.positions.pop(old)
        return Outcome(True)

    def copy(self, ids: list[str]) -> list[dict[str, Any]]:
        """A clipboard: deep copies of the steps with their positions."""
        wanted = set(ids)
        return [{"step": copy.deepcopy(s), "position": self.positions.get(s["id"], (0, 0))}
                for s in self.steps if s.get("id") in wanted]

    def paste(self, clipboard: list[dict[str, Any]], offset: float = 40) -> Outcome:
        """New steps from a clipboard; links inside it are kept, links outside it dropped."""
        renames: dict[str, str] = {}
        taken = set(self.ids())
        for item in clipboard:
            old = item["step"]["id"]
            renames[old] = _unique(f"{old}-copy", taken)
            taken.add(renames[old])
        for item in clipboard:
            step = copy.deepcopy(item["step"])
            step["id"] = renames[step["id"]]
            _set_deps(step, [renames[d] for d in self.depends_on(step) if d in renames])
            if step.get("type") == "gateway":
                _drop_routes(step, {t for t in _targets(step) if t not in renames})
                for old, new in renames.items():
                    _rename_refs(step, old, new)
            self._step_list().append(step)
            x, y = item["position"]
            self.positions[step["id"]] = (_snap(x + offset), _snap(y + offset))
        return Outcome(True, added=list(renames.values()))

    # --- text -------------------------------------------------------------------------------

    def sync_text(self) -> str:
        """Write positions into the document and rewrite the text minimally."""
        self.doc[META] = _meta_with_positions(self.doc.get(META), self.positions, self.ids())
        self.text = rewrite(self.text, self.doc)
        return self.text

    def load_text(self, text: str) -> None:
        """Replace the model with edited YAML (the text is kept as typed)."""
        doc = _parse(text)
        self.text, self.doc = text, doc
        self._read_positions()

    def auto_layout(self) -> None:
        """Forget the positions and lay the graph out left to right."""
        self.positions = {}
        self._read_positions(stored=False)

    def _read_positions(self, stored: bool = True) -> None:
        meta = self.doc.get(META)
        saved = meta.get("positions") if stored and isinstance(meta, dict) else None
        nodes = [START, *self.ids(), END]
        if isinstance(saved, dict):
            for n in nodes:
                xy = saved.get(n)
                if isinstance(xy, list | tuple) and len(xy) == 2 and \
                        all(isinstance(v, int | float) for v in xy):
                    self.positions[n] = (xy[0], xy[1])
        self.positions = {n: p for n, p in self.positions.items() if n in nodes}
        if any(n not in self.positions for n in nodes):
            laid = layered_layout(nodes, self.edges())
            for n in nodes:
                self.positions.setdefault(n, laid[n])

    def _step_list(self) -> list[Any]:
        steps = self.doc.get("steps")
        if not isinstance(steps, list):
            steps = self.doc["steps"] = []
        return steps

    def _fresh_id(self, kind: str) -> str:
        return _unique(kind, set(self.ids()), first_suffix=1)


# --- helpers -------------------------------------------------------------------------------


def _parse(text: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as e:
        raise ModelError(f"YAML syntax error: {e}") from e
    if not isinstance(doc, dict):
        raise ModelError("a process definition is a mapping with 'name' and 'steps'")
    return doc


def _snap(v: Any) -> int:
    try:
        return int(round(float(v) / GRID) * GRID)
    except (TypeError, ValueError):
        return 0


def _unique(base: str, taken: set[str], first_suffix: int = 2) -> str:
    if first_suffix > 1 and base not in taken:
        return base
    n = first_suffix
    while f"{base}_{n}" in taken:
        n += 1
    return f"{base}_{n}"


def _subtitle(step: dict[str, Any]) -> str:
    for key in ("agent", "assignees", "delay", "until", "channel", "process_name",
                "process", "gateway_type"):
        value = step.get(key)
        if value:
            return ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return str(step.get("type") or "")


def _route(gateway: dict[str, Any], target: str) -> dict[str, Any] | None:
    routes = gateway.get("routes")
    if not isinstance(routes, list):
        return None
    return next((r for r in routes if isinstance(r, dict) and r.get("target") == target), None)


def _targets(gateway: dict[str, Any]) -> set[str]:
    routes = gateway.get("routes") if isinstance(gateway.get("routes"), list) else []
    found = {r.get("target") for r in routes if isinstance(r, dict)}
    found.add(gateway.get("default_route"))
    return {t for t in found if isinstance(t, str)}


def _drop_routes(gateway: dict[str, Any], targets: set[str]) -> None:
    routes = gateway.get("routes")
    if isinstance(routes, list):
        kept = [r for r in routes if not (isinstance(r, dict) and r.get("target") in targets)]
        if len(kept) != len(routes):
            if kept:
                gateway["routes"] = kept
            else:
                del gateway["routes"]
    if gateway.get("default_route") in targets:
        del gateway["default_route"]


def _set_deps(step: dict[str, Any], deps: list[str]) -> None:
    """Write depends_on in the form the user chose: a lone id stays a string, a list a list."""
    deps = list(dict.fromkeys(deps))
    if not deps:
        step.pop("depends_on", None)
    elif len(deps) == 1 and not isinstance(step.get("depends_on"), list):
        step["depends_on"] = deps[0]
    else:
        step["depends_on"] = deps


def _rename_refs(step: dict[str, Any], old: str, new: str) -> None:
    if step.get("default_route") == old:
        step["default_route"] = new
    for route in step.get("routes") or []:
        if isinstance(route, dict) and route.get("target") == old:
            route["target"] = new
    on_error = step.get("on_error")
    if isinstance(on_error, dict) and on_error.get("target_step") == old:
        on_error["target_step"] = new
    changes = step.get("on_changes_requested")
    if isinstance(changes, dict) and changes.get("goto") == old:
        changes["goto"] = new


def _set_path(target: dict[str, Any], path: list[Any], value: Any) -> None:
    """Set target[path...] = value, creating mappings on the way; an int indexes a list.
    None, "", [] and {} remove the key, and mappings left empty by that go too."""
    *parents, key = path
    chain: list[Any] = [target]
    for name in parents:
        holder = chain[-1]
        if isinstance(name, int):
            child = holder[name] if isinstance(holder, list) and name < len(holder) else None
        else:
            child = holder.get(name)
            if not isinstance(child, dict | list):
                child = holder[name] = {}
        if child is None:
            return
        chain.append(child)
    holder = chain[-1]
    if value is None or value == "" or value == [] or value == {}:
        if isinstance(holder, dict):
            holder.pop(key, None)
        for parent, name in zip(reversed(chain[:-1]), reversed(parents), strict=True):
            if isinstance(parent, dict) and parent.get(name) == {}:
                del parent[name]
    elif isinstance(holder, dict) or (isinstance(key, int) and key < len(holder)):
        holder[key] = value


def _meta_with_positions(meta: Any, positions: dict[str, tuple[float, float]],
                         ids: list[str]) -> dict[str, Any]:
    out = dict(meta) if isinstance(meta, dict) else {}
    order = [START, *ids, END]
    out["positions"] = {n: [positions[n][0], positions[n][1]] for n in order if n in positions}
    return out
