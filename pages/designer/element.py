"""`ProcessDesigner`: the Vue Flow canvas as a NiceGUI element.

The component (`static/designer/process_designer.js`) imports the bundle through the import
map name `trinity-vueflow` (NiceGUI 3 `esm=`); `vue` inside the bundle resolves to NiceGUI's
own Vue. Built files live in `static/designer/dist/` (see `frontend/designer/`).

Browser → Python events (declared in the component's `emits`): `drop {kind, x, y}`,
`connect {source, target, sourceHandle}`, `move [{id, x, y}]`, `remove {nodes, edges}`,
`select {kind, id}`, `edge-label {id, label}`, `copy {ids}`, `paste`, `undo`, `redo`, `ready`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nicegui import ui

__all__ = ["DND_MIME", "ProcessDesigner"]

STATIC = Path(__file__).resolve().parents[2] / "static" / "designer"
DND_MIME = "application/x-trinity-kind"


class ProcessDesigner(ui.element, component=str(STATIC / "process_designer.js"),
                      esm={"trinity-vueflow": str(STATIC / "dist")}):

    def __init__(self, graph: dict[str, Any], *, read_only: bool = False) -> None:
        super().__init__()
        self.add_resource(STATIC)
        self._props["nodes"] = graph["nodes"]
        self._props["edges"] = graph["edges"]
        self._props["errors"] = {}
        self._props["dnd-mime"] = DND_MIME
        self._props["read-only"] = read_only
        self.graph = graph

    def sync(self, graph: dict[str, Any]) -> None:
        """Show this graph; the browser applies only the differences."""
        self.graph = graph
        # Kept in the props (without an update) so a reconnecting client renders the current
        # graph, never sent on each change.
        self._props["nodes"] = graph["nodes"]
        self._props["edges"] = graph["edges"]
        self.run_method("syncGraph", graph)

    def reload(self, graph: dict[str, Any]) -> None:
        """Replace the whole graph (YAML edited, undo) and fit it into view."""
        self.graph = graph
        self._props["nodes"] = graph["nodes"]
        self._props["edges"] = graph["edges"]
        self.run_method("setGraph", graph)

    def set_errors(self, errors: dict[str, list[str]]) -> None:
        if self._props.get("errors") != errors:
            self._props["errors"] = errors
            self.update()

    @property
    def errors(self) -> dict[str, list[str]]:
        return dict(self._props.get("errors") or {})

    def focus(self, element_id: str) -> None:
        self.run_method("focus", element_id)

    def fit_view(self) -> None:
        self.run_method("fitView")

    def highlight(self, ids: list[str], css_class: str) -> None:
        self.run_method("highlight", ids, css_class)
