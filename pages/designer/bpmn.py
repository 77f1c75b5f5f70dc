"""BPMN 2.0 XML import and export of process documents.

Export writes one BPMN process with a start event, an end event, one flow node per step and
one sequence flow per edge, plus BPMNDI shapes and edges (positions from `x-designer`), so
Camunda Modeler and bpmn.io open it. What BPMN cannot say (agents, messages, retries, inputs…)
travels as JSON in `<trinity:step>` / `<trinity:process>` extension elements, so export then
import gives back the same definition.

Import maps: task, serviceTask, scriptTask, businessRuleTask, receiveTask → agent_task;
userTask, manualTask → human_approval; exclusive/parallel/inclusive gateways → gateway;
intermediateCatchEvent with a timerEventDefinition → timer; sendTask → notification;
callActivity → sub_process. Sequence flows become depends_on; flows out of a gateway become
routes (conditionExpression → condition, the gateway's `default` flow → default_route).
Start and end events are visual only. Anything else is reported by id and type and left out.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from engine.durations import DurationError, format_duration, parse_duration
from pages.designer.kinds import END, START
from pages.designer.layout import layered_layout
from pages.designer.model import META

__all__ = ["BpmnError", "BpmnImport", "from_bpmn", "to_bpmn"]

NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
    "di": "http://www.omg.org/spec/DD/20100524/DI",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "trinity": "https://trinity-processes.org/schema/bpmn",
}
for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)

_EXPORT_TAG = {"agent_task": "serviceTask", "human_approval": "userTask",
               "notification": "sendTask", "sub_process": "callActivity"}
_IMPORT_TYPE = {"task": "agent_task", "serviceTask": "agent_task", "scriptTask": "agent_task",
                "businessRuleTask": "agent_task", "receiveTask": "agent_task",
                "userTask": "human_approval", "manualTask": "human_approval",
                "sendTask": "notification", "callActivity": "sub_process",
                "exclusiveGateway": "gateway", "parallelGateway": "gateway",
                "inclusiveGateway": "gateway", "intermediateCatchEvent": "timer"}
_IGNORED = {"documentation", "extensionElements", "incoming", "outgoing", "laneSet",
            "textAnnotation", "association", "sequenceFlow"}
_SIZE = {"event": (36, 36), "gateway": (50, 50), "task": (100, 80)}
_STRUCTURE = ("depends_on", "routes", "default_route")


class BpmnError(ValueError):
    """XML that is not a BPMN 2.0 document with a process."""


@dataclass
class BpmnImport:
    doc: dict[str, Any]
    unsupported: list[str] = field(default_factory=list)  # "id (type)" of what was left out


def _q(prefix: str, tag: str) -> str:
    return f"{{{NS[prefix]}}}{tag}"


# --- export ---------------------------------------------------------------------------------


def to_bpmn(doc: dict[str, Any]) -> str:
    """BPMN 2.0 XML with diagram interchange for a process document."""
    steps = [s for s in doc.get("steps") or [] if isinstance(s, dict) and "id" in s]
    ids = [str(s["id"]) for s in steps]
    bpmn_id = {START: "StartEvent_1", END: "EndEvent_1", **{i: i for i in ids}}
    name = str(doc.get("name") or "process")
    root = ET.Element(_q("bpmn", "definitions"), {
        "id": "Definitions_1", "targetNamespace": "http://bpmn.io/schema/bpmn",
        "exporter": "Trinity Processes", "exporterVersion": "1"})
    process = ET.SubElement(root, _q("bpmn", "process"),
                            {"id": _process_id(name), "name": name, "isExecutable": "true"})
    settings = {k: v for k, v in doc.items() if k not in ("steps", META)}
    _extension(process, "process", settings)
    flows = _flows(steps, ids)
    ET.SubElement(process, _q("bpmn", "startEvent"), {"id": bpmn_id[START], "name": "Start"})
    for step in steps:
        _flow_node(process, step, flows)
    ET.SubElement(process, _q("bpmn", "endEvent"), {"id": bpmn_id[END], "name": "End"})
    for f in flows:
        flow = ET.SubElement(process, _q("bpmn", "sequenceFlow"), {
            "id": f.id, "sourceRef": bpmn_id[f.source], "targetRef": bpmn_id[f.target]})
        if f.condition:
            expr = ET.SubElement(flow, _q("bpmn", "conditionExpression"),
                                 {_q("xsi", "type"): "bpmn:tFormalExpression"})
            expr.text = f.condition
    _diagram(root, process.get("id", ""), doc, steps, flows, bpmn_id)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _process_id(name: str) -> str:
    return "Process_" + re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _deps(step: dict[str, Any]) -> list[str]:
    deps = step.get("depends_on")
    return [deps] if isinstance(deps, str) else [d for d in deps or [] if isinstance(d, str)]


@dataclass(frozen=True)
class _Flow:
    id: str
    source: str
    target: str
    condition: str | None = None
    default: bool = False


def _flows(steps: list[dict[str, Any]], ids: list[str]) -> list[_Flow]:
    """One flow per dependency, or per route when a gateway routes to the step (a gateway may
    route to one step under two conditions, or by a route and by default)."""
    known = set(ids)
    by_id = {str(s["id"]): s for s in steps}
    out: list[_Flow] = []
    has_successor: set[str] = set()

    def add(source: str, target: str, condition: str | None = None,
            default: bool = False) -> None:
        out.append(_Flow(f"Flow_{len(out) + 1}", source, target, condition, default))

    for step in steps:
        sid = str(step["id"])
        deps = [d for d in dict.fromkeys(_deps(step)) if d in known]
        if not deps:
            add(START, sid)
        for dep in deps:
            has_successor.add(dep)
            routed = _routes_to(by_id[dep], sid)
            for route in routed:
                add(dep, sid, str(route["condition"]) if route.get("condition") else None)
            is_default = by_id[dep].get("type") == "gateway" and \
                by_id[dep].get("default_route") == sid
            if is_default or not routed:
                add(dep, sid, default=is_default)
    for sid in ids:
        if sid not in has_successor:
            add(sid, END)
    return out


def _routes_to(source: dict[str, Any], target: str) -> list[dict[str, Any]]:
    if source.get("type") != "gateway":
        return []
    return [r for r in source.get("routes") or []
            if isinstance(r, dict) and r.get("target") == target]


def _flow_node(process: ET.Element, step: dict[str, Any], flows: list[_Flow]) -> None:
    step_type = step.get("type")
    sid = str(step["id"])
    attrs = {"id": sid, "name": str(step.get("name") or sid)}
    if step_type == "gateway":
        tag = f"{step.get('gateway_type') or 'exclusive'}Gateway"
        default = next((f.id for f in flows if f.source == sid and f.default), None)
        if default:
            attrs["default"] = default
    elif step_type == "timer":
        tag = "intermediateCatchEvent"
    else:
        tag = _EXPORT_TAG.get(str(step_type), "task")
    if step_type == "sub_process" and (step.get("process_name") or step.get("process")):
        attrs["calledElement"] = str(step.get("process_name") or step.get("process"))
    node = ET.SubElement(process, _q("bpmn", tag), attrs)
    _extension(node, "step", dict(step))
    for f in flows:
        if f.target == sid:
            ET.SubElement(node, _q("bpmn", "incoming")).text = f.id
    for f in flows:
        if f.source == sid:
            ET.SubElement(node, _q("bpmn", "outgoing")).text = f.id
    if step_type == "timer":
        _timer_definition(node, step)


def _timer_definition(node: ET.Element, step: dict[str, Any]) -> None:
    definition = ET.SubElement(node, _q("bpmn", "timerEventDefinition"))
    delay = step.get("delay") or step.get("duration") or step.get("wait_duration")
    if step.get("until"):
        ET.SubElement(definition, _q("bpmn", "timeDate"),
                      {_q("xsi", "type"): "bpmn:tFormalExpression"}).text = str(step["until"])
    elif delay is not None:
        ET.SubElement(definition, _q("bpmn", "timeDuration"),
                      {_q("xsi", "type"): "bpmn:tFormalExpression"}).text = _iso(delay)


def _extension(node: ET.Element, kind: str, data: dict[str, Any]) -> None:
    ext = ET.SubElement(node, _q("bpmn", "extensionElements"))
    ET.SubElement(ext, _q("trinity", kind)).text = json.dumps(data, default=str,
                                                              ensure_ascii=False)


def _diagram(root: ET.Element, process_id: str, doc: dict[str, Any],
             steps: list[dict[str, Any]], flows: list[_Flow], bpmn_id: dict[str, str]) -> None:
    boxes = _boxes(doc, steps, [(f.source, f.target) for f in flows])
    diagram = ET.SubElement(root, _q("bpmndi", "BPMNDiagram"), {"id": "BPMNDiagram_1"})
    plane = ET.SubElement(diagram, _q("bpmndi", "BPMNPlane"),
                          {"id": "BPMNPlane_1", "bpmnElement": process_id})
    for node, (x, y, w, h) in boxes.items():
        shape = ET.SubElement(plane, _q("bpmndi", "BPMNShape"),
                              {"id": f"{bpmn_id[node]}_di", "bpmnElement": bpmn_id[node]})
        ET.SubElement(shape, _q("dc", "Bounds"),
                      {"x": _n(x), "y": _n(y), "width": _n(w), "height": _n(h)})
    for f in flows:
        edge = ET.SubElement(plane, _q("bpmndi", "BPMNEdge"),
                             {"id": f"{f.id}_di", "bpmnElement": f.id})
        sx, sy, sw, sh = boxes[f.source]
        tx, ty, _, th = boxes[f.target]
        for x, y in ((sx + sw, sy + sh / 2), (tx, ty + th / 2)):
            ET.SubElement(edge, _q("di", "waypoint"), {"x": _n(x), "y": _n(y)})


def _boxes(doc: dict[str, Any], steps: list[dict[str, Any]], edges: list[tuple[str, str]]
           ) -> dict[str, tuple[float, float, float, float]]:
    meta = doc.get(META)
    saved = meta.get("positions") if isinstance(meta, dict) else None
    saved = saved if isinstance(saved, dict) else {}
    nodes = [START, *(str(s["id"]) for s in steps), END]
    laid = layered_layout(nodes, edges)
    types = {str(s["id"]): s.get("type") for s in steps}
    out: dict[str, tuple[float, float, float, float]] = {}
    for n in nodes:
        xy = saved.get(n)
        x, y = (xy[0], xy[1]) if isinstance(xy, list) and len(xy) == 2 else laid[n]
        shape = "event" if n in (START, END) or types.get(n) == "timer" else \
            "gateway" if types.get(n) == "gateway" else "task"
        out[n] = (x, y, *_SIZE[shape])
    return out


def _n(v: float) -> str:
    return str(round(v))


def _iso(delay: Any) -> str:
    try:
        seconds = int(parse_duration(delay).total_seconds())
    except (DurationError, TypeError, ValueError, AttributeError):
        return str(delay)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    clock = "".join(f"{v}{u}" for v, u in ((hours, "H"), (minutes, "M"), (secs, "S")) if v)
    return out + ("T" + clock if clock else "" if days else "T0S")


def _from_iso(text: str) -> str:
    try:
        return format_duration(parse_duration(text.strip()))
    except (DurationError, TypeError, ValueError):
        return text.strip()


# --- import ---------------------------------------------------------------------------------


def from_bpmn(xml_text: str) -> BpmnImport:
    """A process document from BPMN 2.0 XML; unsupported elements are listed, not fatal."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as e:
        raise BpmnError(f"not well-formed XML: {e}") from e
    process = root.find("bpmn:process", NS)
    if root.tag != _q("bpmn", "definitions") or process is None:
        raise BpmnError("not a BPMN 2.0 document with a <bpmn:process>")
    result = BpmnImport(_process_settings(process))
    nodes, events, ids = _read_nodes(process, result)
    steps = {ids[bid]: step for bid, step in nodes.items()}
    _read_flows(process, nodes, events, ids, result)
    result.doc["steps"] = list(steps.values())
    positions = _read_positions(root, ids, events)
    if positions:
        result.doc[META] = {"positions": positions}
    return result


def _process_settings(process: ET.Element) -> dict[str, Any]:
    settings = _extension_data(process, "process")
    if settings is None:
        name = process.get("name") or process.get("id") or "imported-process"
        settings = {"name": _slug(name, r"[^a-z0-9._-]+") or "imported-process"}
    return dict(settings)


def _read_nodes(process: ET.Element, result: BpmnImport
                ) -> tuple[dict[str, dict[str, Any]], dict[str, str], dict[str, str]]:
    nodes: dict[str, dict[str, Any]] = {}
    events: dict[str, str] = {}  # BPMN id → START or END
    ids: dict[str, str] = {}
    for child in process:
        tag = child.tag.rpartition("}")[2]
        bid = child.get("id", "")
        if tag in _IGNORED:
            continue
        if tag in ("startEvent", "endEvent"):
            events[bid] = START if tag == "startEvent" else END
            continue
        step = _step_from(child, tag)
        if step is None:
            result.unsupported.append(f"{bid or '?'} ({tag})")
            continue
        ids[bid] = _unique_id(str(step.get("id") or bid), set(ids.values()))
        step["id"] = ids[bid]
        nodes[bid] = step
    return nodes, events, ids


def _step_from(node: ET.Element, tag: str) -> dict[str, Any] | None:
    step_type = _IMPORT_TYPE.get(tag)
    timer = node.find("bpmn:timerEventDefinition", NS)
    if step_type is None or (step_type == "timer" and timer is None):
        return None
    saved = _extension_data(node, "step")
    if saved is not None:
        return dict(saved)
    step: dict[str, Any] = {"id": _slug(node.get("id", ""), r"[^a-z0-9_-]+")}
    if node.get("name"):
        step["name"] = node.get("name")
    step["type"] = step_type
    if step_type == "gateway":
        step["gateway_type"] = tag.removesuffix("Gateway")
    elif step_type == "sub_process" and node.get("calledElement"):
        step["process_name"] = node.get("calledElement")
    elif timer is not None:
        duration = timer.find("bpmn:timeDuration", NS)
        date = timer.find("bpmn:timeDate", NS)
        if duration is not None and duration.text:
            step["delay"] = _from_iso(duration.text)
        elif date is not None and date.text:
            step["until"] = date.text.strip()
    return step


def _read_flows(process: ET.Element, nodes: dict[str, dict[str, Any]], events: dict[str, str],
                ids: dict[str, str], result: BpmnImport) -> None:
    deps: dict[str, list[str]] = {bid: [] for bid in nodes}
    routes: dict[str, list[dict[str, Any]]] = {bid: [] for bid in nodes}
    defaults: dict[str, str] = {}
    for flow in process.findall("bpmn:sequenceFlow", NS):
        source, target = flow.get("sourceRef", ""), flow.get("targetRef", "")
        if events.get(source) == START or events.get(target) == END:
            continue
        if source not in nodes or target not in nodes:
            result.unsupported.append(f"{flow.get('id', '?')} (sequenceFlow between "
                                      f"{source} and {target})")
            continue
        if ids[source] not in deps[target]:
            deps[target].append(ids[source])
        if nodes[source].get("type") != "gateway":
            continue
        gateway = process.find(f"*[@id='{source}']")
        if gateway is not None and gateway.get("default") == flow.get("id"):
            defaults[source] = ids[target]
            continue
        expr = flow.find("bpmn:conditionExpression", NS)
        route: dict[str, Any] = {"target": ids[target]}
        if expr is not None and expr.text and expr.text.strip():
            route = {"condition": expr.text.strip(), "target": ids[target]}
        routes[source].append(route)
    for bid, step in nodes.items():
        _apply_structure(step, deps[bid], routes[bid], defaults.get(bid))


def _apply_structure(step: dict[str, Any], deps: list[str], routes: list[dict[str, Any]],
                     default: str | None) -> None:
    """Flows are the truth; keep the saved form of depends_on and routes when they agree."""
    if set(_deps(step)) != set(deps) or len(_deps(step)) != len(deps):
        if deps:
            step["depends_on"] = deps[0] if len(deps) == 1 else deps
        else:
            step.pop("depends_on", None)
    if step.get("type") != "gateway":
        return
    saved = [(r.get("target"), r.get("condition") or None) for r in step.get("routes") or []
             if isinstance(r, dict)]
    # Route order matters (an exclusive gateway takes the first match): the saved order wins
    # when BPMN holds the same routes.
    if sorted(saved, key=str) != sorted(((r["target"], r.get("condition")) for r in routes),
                                        key=str):
        if routes:
            step["routes"] = routes
        else:
            step.pop("routes", None)
    if default:
        step["default_route"] = default
    else:
        step.pop("default_route", None)


def _read_positions(root: ET.Element, ids: dict[str, str], events: dict[str, str]
                    ) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for shape in root.iter(_q("bpmndi", "BPMNShape")):
        element = shape.get("bpmnElement", "")
        node = ids.get(element) or events.get(element)
        bounds = shape.find("dc:Bounds", NS)
        if node is None or bounds is None or node in out:
            continue
        out[node] = [int(float(bounds.get("x", 0))), int(float(bounds.get("y", 0)))]
    return out


def _extension_data(node: ET.Element, kind: str) -> dict[str, Any] | None:
    found = node.find(f"bpmn:extensionElements/trinity:{kind}", NS)
    if found is None or not found.text:
        return None
    try:
        data = json.loads(found.text)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _slug(text: str, bad: str) -> str:
    slug = re.sub(bad, "-", text.strip().lower()).strip("-")
    if slug and not slug[0].isalpha():
        slug = "s-" + slug
    return slug[:64]


def _unique_id(base: str, taken: set[str]) -> str:
    base = base or "step"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate
