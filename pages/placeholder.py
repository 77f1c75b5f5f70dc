"""A first page until the web application lands: what is installed and where to go next."""

from __future__ import annotations

from pathlib import Path

from app.definitions import validate_files

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def register_pages() -> None:
    """The placeholder home page."""
    from nicegui import ui

    @ui.page("/")
    def home() -> None:
        ui.label("Trinity Processes").classes("text-3xl font-bold")
        ui.label("The engine core is installed. The web application is being built; "
                 "meanwhile validate processes with `trinity validate FILE`.")
        results = validate_files(sorted(EXAMPLES.glob("*.yaml")))
        if not results:
            ui.label("No examples found.")
        columns = [{"name": "file", "label": "Example", "field": "file", "align": "left"},
                   {"name": "valid", "label": "Valid", "field": "valid"},
                   {"name": "steps", "label": "Steps", "field": "steps"}]
        rows = [{"file": r.path.name, "valid": "yes" if not r.errors else "no",
                 "steps": len(r.definition.steps) if r.definition else "-"} for r in results]
        ui.table(columns=columns, rows=rows, row_key="file")
