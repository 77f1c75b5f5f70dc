"""A value shown two ways: an expandable tree and the raw JSON (with a copy button)."""

from __future__ import annotations

import itertools
import json
from typing import Any

__all__ = ["json_nodes", "json_view"]

MAX_NODES = 400  # a huge output stays readable as raw JSON; the tree stops here


def json_nodes(value: Any, label: str = "output") -> list[dict[str, Any]]:
    """Quasar tree nodes for a JSON value (ids unique, leaves show their value)."""
    counter = itertools.count()

    def node(key: str, v: Any) -> dict[str, Any]:
        nid = f"n{next(counter)}"
        if isinstance(v, dict):
            children = [node(str(k), x) for k, x in itertools.islice(v.items(), MAX_NODES)]
            return {"id": nid, "label": f"{key} {{{len(v)}}}", "children": children}
        if isinstance(v, list):
            children = [node(f"[{i}]", x) for i, x in enumerate(v[:MAX_NODES])]
            return {"id": nid, "label": f"{key} [{len(v)}]", "children": children}
        text = json.dumps(v, default=str, ensure_ascii=False)
        return {"id": nid, "label": f"{key}: {text[:300]}" + ("…" if len(text) > 300 else "")}

    return [node(label, value)]


def json_view(value: Any, label: str = "output", testid: str = "json") -> None:
    """Tabs 'Tree' and 'Raw'; text values are shown as text first."""
    from nicegui import ui

    raw = json.dumps(value, indent=2, default=str, ensure_ascii=False)
    with ui.tabs().props(f'dense no-caps align=left data-testid="{testid}-tabs"').classes(
            "text-xs") as tabs:
        tree_tab = ui.tab("Tree").props(f'data-testid="{testid}-tree"')
        raw_tab = ui.tab("Raw").props(f'data-testid="{testid}-raw"')
    with ui.tab_panels(tabs, value=tree_tab).classes("w-full bg-transparent").props(
            f'data-testid="{testid}"'):
        with ui.tab_panel(tree_tab).classes("p-1"):
            if isinstance(value, dict | list):
                ui.tree(json_nodes(value, label), node_key="id").props("dense").classes(
                    "text-xs font-mono").expand()
            else:
                ui.label(str(value) if value is not None else "(nothing)").classes(
                    "whitespace-pre-wrap text-sm")
        with ui.tab_panel(raw_tab).classes("p-1"):
            ui.code(raw, language="json").classes("w-full text-xs max-h-96 overflow-auto")
