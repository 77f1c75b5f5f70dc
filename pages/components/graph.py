"""The read-only process graph: an SVG drawn here from a layered layout of the definition's
dependency graph, each step coloured by its status. No JavaScript library: the page swaps
the SVG when a status changes, and a click or Enter on a step selects it.

Columns are dependency depth (longest path from an entry step); inside a column steps are
ordered by the mean position of their parents, which removes most crossings for the
shapes processes have (chains, fan-out/fan-in, gateway branches). Loop-backs
(`on_changes_requested`, `on_error: goto_step`) are drawn as dashed arcs below.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

from engine.definition import Approval, ErrorAction, Gateway, ProcessDefinition, StepType
from pages.components.status import STATUS_WORDS

__all__ = ["Layout", "ProcessGraph", "graph_svg", "layout"]

W, H, GX, GY, PAD, TOP = 176, 54, 56, 22, 16, 30  # TOP: room for long edges
KIND = {StepType.AGENT_TASK: "AGENT", StepType.HUMAN_APPROVAL: "APPROVAL",
        StepType.GATEWAY: "GATEWAY", StepType.TIMER: "TIMER",
        StepType.NOTIFICATION: "NOTIFICATION", StepType.SUB_PROCESS: "SUB-PROCESS"}


@dataclass(frozen=True)
class Layout:
    positions: Mapping[str, tuple[float, float]]  # top-left corner per step
    width: float
    height: float


def layout(definition: ProcessDefinition) -> Layout:
    depth: dict[str, int] = {}
    for step in definition.steps:  # definitions are validated: dependencies come first
        deps = [d for d in step.depends_on if d in depth]
        depth[step.id] = 1 + max((depth[d] for d in deps), default=-1)
    columns: dict[int, list[str]] = {}
    for sid, d in depth.items():
        columns.setdefault(d, []).append(sid)
    rank: dict[str, float] = {}
    for d in sorted(columns):
        order = {sid: i for i, sid in enumerate(columns[d])}

        def key(sid: str, order: dict[str, int] = order) -> tuple[float, int]:
            parents = [rank[p] for p in definition.by_id[sid].depends_on if p in rank]
            return (sum(parents) / len(parents) if parents else order[sid], order[sid])
        columns[d].sort(key=key)
        for i, sid in enumerate(columns[d]):
            rank[sid] = float(i)
    tallest = max((len(c) for c in columns.values()), default=1)
    positions = {}
    for d, sids in columns.items():
        offset = (tallest - len(sids)) * (H + GY) / 2
        for i, sid in enumerate(sids):
            positions[sid] = (PAD + d * (W + GX), PAD + TOP + offset + i * (H + GY))
    width = PAD * 2 + (max(columns, default=0) + 1) * (W + GX) - GX
    height = PAD * 2 + TOP + tallest * (H + GY) - GY + 36  # room for loop-back arcs
    return Layout(positions, width, height)


def graph_svg(definition: ProcessDefinition, statuses: Mapping[str, str] | None = None,
              highlight: Collection[str] = (), hidden: Collection[str] = (),
              selected: str | None = None) -> str:
    """The SVG text. `hidden` steps are drawn without name or status (an approver sees
    where their step sits, not what the others hold)."""
    statuses = statuses or {}
    lay = layout(definition)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="tg-graph" role="group" '
             f'aria-label="Process graph of {escape(definition.name)}" '
             f'viewBox="0 0 {lay.width:.0f} {lay.height:.0f}" width="{lay.width:.0f}" '
             f'height="{lay.height:.0f}">',
             '<defs><marker id="tg-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
             'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
             '<path d="M0,0 L10,5 L0,10 z" class="tg-arrowhead"/></marker></defs>']
    parts += _edges(definition, lay, statuses)
    parts += _loops(definition, lay)
    for step in definition.steps:
        parts.append(_node(step, lay.positions[step.id], statuses.get(step.id, "pending"),
                           step.id in highlight, step.id in hidden, step.id == selected))
    parts.append("</svg>")
    return "".join(parts)


def _edges(definition: ProcessDefinition, lay: Layout, statuses: Mapping[str, str]
           ) -> list[str]:
    out = []
    for step in definition.steps:
        x2, y2 = lay.positions[step.id]
        for dep in step.depends_on:
            if dep not in lay.positions:
                continue
            x1, y1 = lay.positions[dep]
            sx, sy, ex, ey = x1 + W, y1 + H / 2, x2, y2 + H / 2
            mid = (sx + ex) / 2
            long = x2 - x1 > W + GX + 1  # skips a column: arc over the steps between
            curve = (f"C{sx + 40:.0f},{PAD - 12:.0f} {ex - 40:.0f},{PAD - 12:.0f}" if long
                     else f"C{mid:.0f},{sy:.0f} {mid:.0f},{ey:.0f}")
            state = "done" if statuses.get(dep) == "completed" and statuses.get(
                step.id) not in (None, "pending", "skipped") else (
                "dead" if statuses.get(step.id) == "skipped" else "open")
            label = ""
            spec = definition.by_id[dep].spec
            if isinstance(spec, Gateway) and step.id in spec.targets:
                label = _route_label(spec, step.id)
            out.append(f'<path class="tg-edge tg-edge-{state}" d="M{sx:.0f},{sy:.0f} '
                       f'{curve} {ex - 2:.0f},{ey:.0f}" marker-end="url(#tg-arrow)"/>')
            if label:
                ly = PAD + 4 if long else (sy + ey) / 2 - 4
                out.append(f'<text class="tg-edge-label" x="{mid:.0f}" y="{ly:.0f}" '
                           f'text-anchor="middle">{escape(label)}</text>')
    return out


def _route_label(spec: Gateway, target: str) -> str:
    for route in spec.routes:
        if route.target == target and route.condition:
            text = route.condition.replace("{{", "").replace("}}", "").strip()
            return text if len(text) <= 26 else text[:25] + "…"
    return "default" if spec.default_route == target else ""


def _loops(definition: ProcessDefinition, lay: Layout) -> list[str]:
    out = []
    bottom = lay.height - 10
    for step in definition.steps:
        targets = []
        if isinstance(step.spec, Approval) and step.spec.changes_goto:
            targets.append((step.spec.changes_goto, "changes requested"))
        if step.on_error.action is ErrorAction.GOTO_STEP and step.on_error.target_step:
            targets.append((step.on_error.target_step, "on error"))
        for target, label in targets:
            if target not in lay.positions:
                continue
            (x1, y1), (x2, y2) = lay.positions[step.id], lay.positions[target]
            sx, ex = x1 + W / 2, x2 + W / 2
            out.append(f'<path class="tg-loop" d="M{sx:.0f},{y1 + H:.0f} C{sx:.0f},{bottom:.0f} '
                       f'{ex:.0f},{bottom:.0f} {ex:.0f},{y2 + H + 2:.0f}" '
                       f'marker-end="url(#tg-arrow)"/>'
                       f'<text class="tg-edge-label" x="{(sx + ex) / 2:.0f}" y="{bottom - 2:.0f}" '
                       f'text-anchor="middle">{escape(label)}</text>')
    return out


def _node(step: Any, pos: tuple[float, float], status: str, highlighted: bool, hidden: bool,
          selected: bool) -> str:
    x, y = pos
    name = "(not shared with you)" if hidden else step.name
    short = name if len(name) <= 24 else name[:23] + "…"
    words = "" if hidden else STATUS_WORDS.get(status, status)
    classes = ["tg-node", f"tg-{'hidden' if hidden else status}"]
    if highlighted:
        classes.append("tg-highlight")
    if selected:
        classes.append("tg-selected")
    kind = KIND.get(step.type, "")
    label = f"{name}: {words}" if words else name
    return (f'<g class="{" ".join(classes)}" data-step="{escape(step.id)}" '
            f'data-status="{escape(status)}" tabindex="0" role="button" '
            f'aria-label="{escape(label)}"><title>{escape(label)}</title>'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{W}" height="{H}" rx="10"/>'
            f'<text class="tg-kind" x="{x + 10:.0f}" y="{y + 14:.0f}">{kind}</text>'
            f'<text class="tg-name" x="{x + 10:.0f}" y="{y + 31:.0f}">{escape(short)}</text>'
            f'<text class="tg-state" x="{x + 10:.0f}" y="{y + 46:.0f}">{escape(words)}</text>'
            '</g>')


class ProcessGraph:
    """The graph on a page: `update(statuses)` redraws, `on_select(step_id)` is called on a
    click or Enter on a step."""

    def __init__(self, definition: ProcessDefinition, statuses: Mapping[str, str] | None = None,
                 highlight: Collection[str] = (), hidden: Collection[str] = (),
                 on_select: Callable[[str], Any] | None = None, testid: str = "graph") -> None:
        from nicegui import ui

        self.definition = definition
        self.highlight, self.hidden = tuple(highlight), tuple(hidden)
        self.statuses: dict[str, str] = dict(statuses or {})
        self.selected: str | None = None
        self.element = ui.html(self._svg(), sanitize=False).classes(
            "tg-graph-box w-full overflow-auto").props(f'data-testid="{testid}"')
        if on_select is not None:
            pick = ("(e) => { const g = e.target.closest('[data-step]'); "
                    "if (g && (e.type === 'click' || e.key === 'Enter' || e.key === ' ')) "
                    "{ e.preventDefault(); emit(g.dataset.step); } }")
            for kind in ("click", "keydown"):
                self.element.on(kind, lambda e: on_select(str(e.args)), js_handler=pick)

    def _svg(self) -> str:
        return graph_svg(self.definition, self.statuses, self.highlight, self.hidden,
                         self.selected)

    def update(self, statuses: Mapping[str, str], selected: str | None = None) -> None:
        self.statuses = dict(statuses)
        self.selected = selected if selected is not None else self.selected
        svg = self._svg()
        if svg != self.element.content:
            self.element.set_content(svg)
