"""Semantic validation of a normalized definition tree: ids, the dependency graph, gateways,
loops, per-type rules. Expression references are checked in `engine.references`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import networkx as nx

from engine import schema
from engine.issues import Issue, Level, did_you_mean
from engine.references import check_references
from engine.structure import REJECTED

__all__ = ["SubProcessLookup", "check_semantics"]

# Given a process name, the names of the processes its sub_process steps start (None: unknown).
SubProcessLookup = Callable[[str], Iterable[str] | None]

_STEP_ID = re.compile(schema.STEP_ID_PATTERN)


def check_semantics(tree: Mapping[str, Any], lookup: SubProcessLookup | None = None
                    ) -> list[Issue]:
    """Every semantic problem of the tree; structural problems are reported elsewhere."""
    # Paths come from each step's own position: a duplicate id must not borrow the first's.
    located = [(f"steps[{i}]", s) for i, s in enumerate(tree.get("steps", ()))
               if isinstance(s.get("id"), str)]
    steps = [s for _, s in located]
    issues: list[Issue] = []
    index = _index_steps(tree.get("steps", ()), issues)
    graph = _graph(located, index, issues)
    _check_cycles(graph, index, issues)
    for path, s in located:
        _check_step(s, path, graph, index, issues)
    _check_sub_processes(tree, steps, index, lookup, issues)
    _check_triggers(tree, issues)
    _check_inputs(tree, issues)
    _check_outputs(tree, issues)
    issues.extend(check_references(tree, graph, {k: v[0] for k, v in index.items()}))
    return issues


def _error(issues: list[Issue], path: str, code: str, message: str,
           hint: str | None = None) -> None:
    issues.append(Issue(Level.ERROR, code, path, message, hint))


def _warning(issues: list[Issue], path: str, code: str, message: str,
             hint: str | None = None) -> None:
    issues.append(Issue(Level.WARNING, code, path, message, hint))


# --- ids and graph -------------------------------------------------------------------------


def _index_steps(steps: Iterable[Mapping[str, Any]], issues: list[Issue]
                 ) -> dict[str, tuple[str, Mapping[str, Any]]]:
    index: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for i, s in enumerate(steps):
        step_id = s.get("id")
        path = f"steps[{i}]"
        if not isinstance(step_id, str):
            continue
        if not _STEP_ID.match(step_id) or len(step_id) > schema.STEP_ID_MAX:
            _error(issues, f"{path}.id", "bad-step-id",
                   f"step id '{step_id}' must start with a lowercase letter and hold only "
                   f"lowercase letters, digits, '-' and '_' (at most {schema.STEP_ID_MAX})",
                   f"for example '{_suggest_id(step_id)}'")
        if step_id in index:
            _error(issues, f"{path}.id", "duplicate-step-id",
                   f"step id '{step_id}' is used twice (first at {index[step_id][0]})",
                   "give every step its own id")
            continue
        index[step_id] = (path, s)
    return index


def _graph(steps: list[tuple[str, Mapping[str, Any]]], index: Mapping[str, tuple[str, Any]],
           issues: list[Issue]) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(index)
    for path, s in steps:
        for j, dep in enumerate(s.get("depends_on", ())):
            dep_path = f"{path}.depends_on[{j}]"
            if dep == s["id"]:
                _error(issues, dep_path, "self-dependency",
                       f"step '{dep}' depends on itself", "remove it from depends_on")
            elif dep not in index:
                _error(issues, dep_path, "unknown-step",
                       f"step '{s['id']}' depends on '{dep}', which is not a step of this "
                       "process", did_you_mean(dep, index) or _known(index))
            else:
                g.add_edge(dep, s["id"])
    return g


def _check_cycles(g: nx.DiGraph, index: Mapping[str, tuple[str, Any]],
                  issues: list[Issue]) -> None:
    in_cycle: set[str] = set()
    for component in nx.strongly_connected_components(g):
        if len(component) < 2:
            continue
        cycle = nx.find_cycle(g.subgraph(component))
        nodes = [u for u, _ in cycle]
        in_cycle.update(component)
        loop = " → ".join([*nodes, nodes[0]])
        first = min(nodes, key=lambda n: index[n][0])
        _error(issues, f"{index[first][0]}.depends_on", "cycle",
               f"the dependencies form a cycle: {loop}",
               "depends_on must not loop; use on_error goto_step or on_changes_requested "
               "for an explicit back-jump")
    entries = [n for n in g if g.in_degree(n) == 0]
    if not entries and len(g):
        _error(issues, "steps", "no-entry-step",
               "every step depends on another, so nothing can start",
               "at least one step must have no depends_on")
    reachable = set(entries).union(*(nx.descendants(g, e) for e in entries))
    for node in g:
        if node not in reachable and node not in in_cycle:
            _error(issues, index[node][0], "unreachable",
                   f"step '{node}' can never run: it only follows steps caught in a cycle")


# --- per-step rules ------------------------------------------------------------------------


def _check_step(s: Mapping[str, Any], path: str, g: nx.DiGraph,
                index: Mapping[str, tuple[str, Any]], issues: list[Issue]) -> None:
    step_type = s.get("type")
    if step_type == "gateway":
        _check_gateway(s, path, g, index, issues)
    elif step_type == "timer":
        _check_timer(s, path, issues)
    elif step_type == "notification":
        _check_notification(s, path, issues)
    elif step_type == "human_approval":
        _check_approval(s, path, g, index, issues)
    _check_on_error(s, path, g, index, issues)
    if "compensation" in s:
        _check_compensation(s["compensation"], f"{path}.compensation", issues)


def _check_gateway(s: Mapping[str, Any], path: str, g: nx.DiGraph,
                   index: Mapping[str, tuple[str, Any]], issues: list[Issue]) -> None:
    kind = s.get("gateway_type", "exclusive")
    routes = s.get("routes", ())
    if not routes and not s.get("default_route") and not _rejected(s, "routes",
                                                                   "default_route"):
        _error(issues, path, "gateway-without-routes",
               f"gateway '{s['id']}' has no routes and no default_route",
               "add routes: [{condition, target}]")
    targets = [(f"{path}.routes[{i}].target", r["target"]) for i, r in enumerate(routes)
               if "target" in r]
    if s.get("default_route"):
        targets.append((f"{path}.default_route", s["default_route"]))
        if kind == "parallel":
            _warning(issues, f"{path}.default_route", "ignored-field",
                     "a parallel gateway takes every route; default_route is ignored")
    for i, r in enumerate(routes):
        if kind == "parallel" and r.get("condition"):
            _warning(issues, f"{path}.routes[{i}].condition", "ignored-field",
                     "a parallel gateway takes every route; the condition is ignored",
                     "use an inclusive gateway to take only the routes whose condition holds")
    for target_path, target in targets:
        _check_route_target(s["id"], target, target_path, g, index, issues)


def _check_route_target(gateway: str, target: str, path: str, g: nx.DiGraph,
                        index: Mapping[str, tuple[str, Any]], issues: list[Issue]) -> None:
    if target not in index:
        _error(issues, path, "unknown-step",
               f"gateway '{gateway}' routes to '{target}', which is not a step of this process",
               did_you_mean(target, index) or _known(index))
    elif target not in nx.descendants(g, gateway):
        upstream = target == gateway or target in nx.ancestors(g, gateway)
        _error(issues, path, "target-not-downstream",
               f"gateway '{gateway}' routes to '{target}', which does not come after it",
               "a gateway routes forward; loop back with on_error goto_step or "
               "on_changes_requested" if upstream else
               f"add '{gateway}' to the depends_on of '{target}'")
    elif not g.has_edge(gateway, target):
        _warning(issues, path, "indirect-target",
                 f"'{target}' does not depend on gateway '{gateway}' directly, so the route "
                 "choice does not control it", f"add '{gateway}' to its depends_on")


def _check_timer(s: Mapping[str, Any], path: str, issues: list[Issue]) -> None:
    has_delay = "delay" in s or _rejected(s, "delay")
    has_until = "until" in s or _rejected(s, "until")
    if has_delay and has_until:
        _error(issues, path, "timer-conflict",
               f"timer '{s['id']}' has both delay and until", "keep one of them")
    elif not has_delay and not has_until:
        _error(issues, path, "timer-without-time",
               f"timer '{s['id']}' needs a delay (like 10m) or an until time",
               "delay: 10m")
    if "timeout" in s:
        _warning(issues, f"{path}.timeout", "ignored-field",
                 "timers wait durably; the step timeout does not apply to them")


def _check_notification(s: Mapping[str, Any], path: str, issues: list[Issue]) -> None:
    channels = _channels(s, path, issues)
    if not s.get("message") and not _rejected(s, "message"):
        _error(issues, path, "missing-field",
               f"notification '{s['id']}' needs a message", "message: Done with {{input.x}}")
    _check_channel_needs(s, channels, path, issues)


def _channels(s: Mapping[str, Any], path: str, issues: list[Issue]) -> list[str]:
    channels = list(s.get("channels", ()))
    for i, ch in enumerate(channels):
        if ch not in schema.CHANNELS:
            _error(issues, f"{path}.channels[{i}]", "bad-choice",
                   f"channel must be one of {', '.join(schema.CHANNELS)}, not '{ch}'",
                   did_you_mean(ch, schema.CHANNELS))
    if s.get("channel"):
        channels.insert(0, s["channel"])
    if not channels and not _rejected(s, "channel", "channels"):
        _error(issues, path, "missing-field", "a notification needs a channel",
               "channel: slack, email or webhook")
    return channels


def _check_channel_needs(s: Mapping[str, Any], channels: list[str], path: str,
                         issues: list[Issue]) -> None:
    if "webhook" in channels and not s.get("webhook_url"):
        _warning(issues, path, "default-webhook",
                 "the webhook channel has no webhook_url; the installation's default webhook "
                 "(TRINITY_WEBHOOK_URL) is used, and the step fails if none is set",
                 "webhook_url: https://example.org/hook or ${MY_HOOK_URL}")
    if "email" in channels and not s.get("recipients") and not _rejected(s, "recipients"):
        _error(issues, path, "missing-field", "the email channel needs recipients",
               "recipients: [ops@example.org]")


def _check_compensation(c: Mapping[str, Any], path: str, issues: list[Issue]) -> None:
    if c.get("type") == "agent_task" and not c.get("agent") and not _rejected(c, "agent"):
        _error(issues, path, "missing-field", "an agent_task compensation needs an agent")
    if c.get("type") == "notification":
        _check_channel_needs(c, _channels(c, path, issues), path, issues)
    if not c.get("message") and not _rejected(c, "message"):
        _error(issues, path, "missing-field", "a compensation needs a message")


def _check_approval(s: Mapping[str, Any], path: str, g: nx.DiGraph,
                    index: Mapping[str, tuple[str, Any]], issues: list[Issue]) -> None:
    if s.get("on_timeout") == "escalate" and not s.get("escalate_to") and \
            not _rejected(s, "escalate_to"):
        _error(issues, f"{path}.on_timeout", "missing-field",
               "on_timeout: escalate needs escalate_to", "escalate_to: [team:managers]")
    assignees = s.get("assignees", ())
    needed = s.get("required_approvals", 1)
    users = [a for a in assignees if isinstance(a, str) and not a.startswith("team:")]
    if assignees and len(users) == len(assignees) and needed > len(users):
        _error(issues, f"{path}.required_approvals", "impossible-approval",
               f"{needed} approvals are required but only {len(users)} people are assigned")
    changes = s.get("on_changes_requested")
    if changes and "goto" in changes:
        _check_back_jump(s["id"], changes["goto"], f"{path}.on_changes_requested.goto",
                         g, index, issues)


def _check_on_error(s: Mapping[str, Any], path: str, g: nx.DiGraph,
                    index: Mapping[str, tuple[str, Any]], issues: list[Issue]) -> None:
    on_error = s.get("on_error")
    if not on_error:
        return
    target = on_error.get("target_step")
    if on_error.get("action") == "goto_step":
        if not target and not _rejected(on_error, "target_step"):
            _error(issues, f"{path}.on_error", "missing-field",
                   "on_error goto_step needs a target_step")
        elif target:
            _check_back_jump(s["id"], target, f"{path}.on_error.target_step", g, index, issues)
    elif target:
        _warning(issues, f"{path}.on_error.target_step", "ignored-field",
                 "target_step only applies to on_error: goto_step")


def _check_back_jump(source: str, target: str, path: str, g: nx.DiGraph,
                     index: Mapping[str, tuple[str, Any]], issues: list[Issue]) -> None:
    if target not in index:
        _error(issues, path, "unknown-step",
               f"'{source}' jumps back to '{target}', which is not a step of this process",
               did_you_mean(target, index) or _known(index))
    elif target != source and target not in nx.ancestors(g, source):
        _error(issues, path, "bad-back-jump",
               f"'{source}' jumps back to '{target}', which does not come before it",
               "a loop goes back to a step that this one depends on")


# --- processes, triggers, inputs, outputs --------------------------------------------------


def _check_sub_processes(tree: Mapping[str, Any], steps: list[Mapping[str, Any]],
                         index: Mapping[str, tuple[str, Any]],
                         lookup: SubProcessLookup | None, issues: list[Issue]) -> None:
    me = tree.get("name")
    for s in steps:
        child = s.get("process_name") if s.get("type") == "sub_process" else None
        if not child:
            continue
        path = f"{index[s['id']][0]}.process_name"
        chain = [me, child] if child == me else _call_chain(child, me, lookup)
        if chain:
            _error(issues, path, "recursive-sub-process",
                   "sub-processes call each other in a loop: " + " → ".join(map(str, chain)),
                   "a process may not start itself, directly or through others")


def _call_chain(start: str, me: Any, lookup: SubProcessLookup | None) -> list[str] | None:
    if lookup is None:
        return None
    stack: list[list[str]] = [[start]]
    seen: set[str] = set()
    while stack:
        chain = stack.pop()
        children = lookup(chain[-1]) or ()
        for child in children:
            if child == me:
                return [str(me), *chain, str(me)]
            if child not in seen:
                seen.add(child)
                stack.append([*chain, child])
    return None


def _check_triggers(tree: Mapping[str, Any], issues: list[Issue]) -> None:
    seen: dict[str, int] = {}
    for i, t in enumerate(tree.get("triggers", ())):
        tid = t.get("id")
        if tid is None:
            continue
        if tid in seen:
            _error(issues, f"triggers[{i}].id", "duplicate-trigger-id",
                   f"trigger id '{tid}' is used twice (first at triggers[{seen[tid]}])")
        seen.setdefault(tid, i)


_PY_TYPES: Mapping[str, tuple[type, ...]] = {
    "string": (str,), "number": (int, float), "integer": (int,), "boolean": (bool,),
    "object": (dict,), "array": (list, tuple),
}


def _check_inputs(tree: Mapping[str, Any], issues: list[Issue]) -> None:
    for name, f in tree.get("input", {}).items():
        path = f"input.{name}"
        default = f.get("default")
        kind = f.get("type", "string")
        if default is not None and not _is_type(default, kind):
            _error(issues, f"{path}.default", "bad-default",
                   f"the default of input '{name}' is not a {kind}")
        enum = f.get("enum")
        if enum is not None and not isinstance(enum, list | tuple):
            _error(issues, f"{path}.enum", "bad-type", "enum must be a list of allowed values")
        elif enum is not None and default is not None and default not in enum:
            _error(issues, f"{path}.default", "bad-default",
                   f"the default of input '{name}' is not one of its enum values")


def _is_type(value: Any, kind: str) -> bool:
    if isinstance(value, bool) and kind != "boolean":
        return False
    return isinstance(value, _PY_TYPES.get(kind, (object,)))


def _check_outputs(tree: Mapping[str, Any], issues: list[Issue]) -> None:
    seen: set[str] = set()
    for i, o in enumerate(tree.get("outputs", ())):
        name = o.get("name")
        if name is None:
            continue
        if name in seen:
            _error(issues, f"outputs[{i}].name", "duplicate-output",
                   f"output '{name}' is defined twice")
        seen.add(name)


def _rejected(node: Mapping[str, Any], *keys: str) -> bool:
    """Whether one of these fields was written but rejected, and so already reported."""
    return any(key in node.get(REJECTED, ()) for key in keys)


def _known(index: Iterable[str]) -> str:
    names = sorted(index)
    shown = ", ".join(names[:12]) + (", …" if len(names) > 12 else "")
    return f"steps of this process: {shown}" if names else "this process has no steps yet"


def _suggest_id(step_id: str) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", step_id.lower()).strip("-")
    if not slug or not slug[0].isalpha():
        slug = "step-" + slug
    return slug[: schema.STEP_ID_MAX]
