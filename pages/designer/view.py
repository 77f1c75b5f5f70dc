"""The whole designer UI, built into the current NiceGUI container by `designer_view`.

    designer = await designer_view(
        yaml_text=text_or_None, name="invoice-approval",
        agents=["demo-writer", ...], assignees=["alice", "team:editors", ...],
        on_save=save, on_publish=publish, on_test_run=test_run,
        read_only=False, lookup=None, baseline_text=published_text_or_None)

- `on_save(yaml_text) -> error message | None` and `on_publish(yaml_text) -> error | None`
  are awaited; a message is shown as a negative notification, None as success. Publish is
  disabled while the engine reports an error.
- `on_test_run(yaml_text, input_values)` is awaited after the generated start form is sent.
- `lookup` is the engine's `SubProcessLookup` (recursion check across processes), optional.
- `baseline_text` is what "Compare" diffs against (default: the text the designer opened).
- Any callback may be None: its button is then hidden.

Layout: toolbar; palette | canvas | YAML editor | property panel; problems list below.
The returned `Designer` exposes `model`, `canvas`, `editor`, `problems` and the intent
handlers, which is what the User-fixture tests drive.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from nicegui import events, ui

from engine import schema
from pages.designer.bpmn import BpmnError, from_bpmn, to_bpmn
from pages.designer.checks import Problem, check, compare, errors_by_element
from pages.designer.element import DND_MIME, ProcessDesigner
from pages.designer.kinds import END, KINDS, PALETTE, START
from pages.designer.model import DesignerModel, ModelError, Outcome
from pages.designer.panel import FormContext, render_spec
from pages.designer.yamltext import dump

__all__ = ["Designer", "History", "designer_view"]

TextCallback = Callable[[str], Awaitable[str | None]]
TestRun = Callable[[str, dict[str, Any]], Awaitable[None]]
Snapshot = tuple[str, dict[str, tuple[float, float]]]


async def designer_view(*, yaml_text: str | None, name: str | None = None,
                        agents: Sequence[str] = (), assignees: Sequence[str] = (),
                        on_save: TextCallback | None = None,
                        on_publish: TextCallback | None = None,
                        on_test_run: TestRun | None = None, read_only: bool = False,
                        lookup: Any = None, baseline_text: str | None = None) -> Designer:
    """Build the designer for a process (None: a new one called `name`)."""
    try:
        model = DesignerModel(yaml_text) if yaml_text else \
            DesignerModel.blank(name or "new-process")
    except ModelError as e:
        ui.notify(f"cannot show this definition on the canvas: {e}", type="negative")
        model = DesignerModel.blank(name or "new-process")
    designer = Designer(model, agents=list(agents), assignees=list(assignees), on_save=on_save,
                        on_publish=on_publish, on_test_run=on_test_run, read_only=read_only,
                        lookup=lookup, baseline_text=baseline_text)
    designer.build()
    return designer


class History:
    """Undo and redo over Python-owned snapshots; edits to one field coalesce into one step."""

    def __init__(self, limit: int = 200) -> None:
        self.undo_stack: list[Snapshot] = []
        self.redo_stack: list[Snapshot] = []
        self.limit = limit
        self._last_key: object = None

    def push(self, snapshot: Snapshot, key: object = None) -> None:
        if key is not None and key == self._last_key:
            return
        self.undo_stack = [*self.undo_stack[-self.limit + 1:], snapshot]
        self.redo_stack.clear()
        self._last_key = key

    def undo(self, current: Snapshot) -> Snapshot | None:
        if not self.undo_stack:
            return None
        self.redo_stack.append(current)
        self._last_key = None
        return self.undo_stack.pop()

    def redo(self, current: Snapshot) -> Snapshot | None:
        if not self.redo_stack:
            return None
        self.undo_stack.append(current)
        self._last_key = None
        return self.redo_stack.pop()


class Designer:
    def __init__(self, model: DesignerModel, *, agents: list[str], assignees: list[str],
                 on_save: TextCallback | None, on_publish: TextCallback | None,
                 on_test_run: TestRun | None, read_only: bool, lookup: Any,
                 baseline_text: str | None) -> None:
        self.model = model
        self.agents, self.assignees = agents, assignees
        self.on_save, self.on_publish, self.on_test_run = on_save, on_publish, on_test_run
        self.read_only, self.lookup = read_only, lookup
        self.baseline = baseline_text if baseline_text is not None else model.text
        self.history = History()
        self.clipboard: list[dict[str, Any]] = []
        self.selection: tuple[str, str | None] = ("process", None)
        self.selected_ids: list[str] = []
        self.problems: list[Problem] = []
        self.canvas: ProcessDesigner
        self.editor: Any = None
        self.yaml_error: Any = None
        self.publish_button: Any = None

    # --- layout -------------------------------------------------------------------------

    def build(self) -> None:
        with ui.column().classes("w-full gap-2").props('data-testid="designer"'):
            self._toolbar()
            with ui.row().classes("w-full no-wrap items-stretch gap-2").style("height: 70vh"):
                if not self.read_only:  # nothing can be dropped: the canvas gets the room
                    self._palette()
                with ui.splitter(value=62).classes("grow h-full") as split:
                    with split.before:
                        self.canvas = ProcessDesigner(self.model.graph(),
                                                      read_only=self.read_only)
                        self.canvas.classes("w-full h-full")
                        self._wire_canvas()
                    with split.after:
                        self._yaml_editor()
                with ui.scroll_area().classes("w-96 h-full border rounded").props(
                        'data-testid="designer-panel"'):
                    self.panel()
            with ui.card().classes("w-full").props('data-testid="designer-problems"'):
                self.problem_list()
        self.revalidate()

    def _toolbar(self) -> None:
        editable = not self.read_only
        with ui.row().classes("items-center gap-1"):
            for icon, tip, testid, handler, show in (
                ("undo", "Undo (Ctrl+Z)", "tb-undo", self.undo, editable),
                ("redo", "Redo (Ctrl+Shift+Z)", "tb-redo", self.redo, editable),
                ("content_copy", "Copy (Ctrl+C)", "tb-copy", self.copy_selection, editable),
                ("content_paste", "Paste (Ctrl+V)", "tb-paste", self.paste, editable),
                ("delete", "Delete the selection", "tb-delete", self.delete_selection, editable),
                ("auto_graph", "Arrange automatically", "tb-layout", self.auto_layout, editable),
                ("fit_screen", "Fit to view", "tb-fit", lambda: self.canvas.fit_view(), True),
                ("difference", "Compare with the saved version", "tb-compare", self.show_compare,
                 True),
                ("upload_file", "Import YAML or BPMN", "tb-import", self.show_import, editable),
                ("download", "Export YAML", "tb-export-yaml", self.export_yaml, True),
                ("schema", "Export BPMN 2.0", "tb-export-bpmn", self.export_bpmn, True),
            ):
                if show:
                    ui.button(icon=icon, on_click=handler).props(
                        f'flat dense data-testid="{testid}"').mark(testid).tooltip(tip)
            ui.space()
            if self.on_test_run is not None:
                ui.button("Test run", icon="play_arrow", on_click=self.show_test_run).props(
                    'outline data-testid="tb-test-run"').mark("tb-test-run")
            if self.on_save is not None and editable:
                ui.button("Save", icon="save", on_click=self.save).props(
                    'data-testid="tb-save"').mark("tb-save")
            if self.on_publish is not None and editable:
                self.publish_button = ui.button("Publish", icon="publish",
                                                on_click=self.publish).props(
                    'color=positive data-testid="tb-publish"').mark("tb-publish")

    def _palette(self) -> None:
        with ui.column().classes("w-44 gap-1").props('data-testid="designer-palette"'):
            ui.label("Palette").classes("text-xs uppercase text-grey-7")
            for kind in PALETTE:
                item = ui.item().props(
                    f'draggable dense data-testid="palette-{kind.name}"').mark(
                    f"palette-{kind.name}").classes(
                    "border rounded cursor-grab bg-white")
                item.on("dragstart", js_handler=(
                    f"(e) => {{ e.dataTransfer.setData('{DND_MIME}', '{kind.name}'); "
                    "e.dataTransfer.effectAllowed = 'move'; }"))
                with item:
                    with ui.item_section().props("avatar"):
                        ui.icon(kind.icon)
                    with ui.item_section():
                        ui.item_label(kind.label)
                item.tooltip(kind.help)

    def _wire_canvas(self) -> None:
        c = self.canvas
        c.on("drop", lambda e: self.drop(e.args))
        c.on("connect", lambda e: self.connect(e.args))
        c.on("move", lambda e: self.move(e.args))
        c.on("remove", lambda e: self.remove(e.args))
        c.on("select", lambda e: self.select(e.args))
        c.on("edge-label", lambda e: self.edge_label(e.args))
        c.on("copy", lambda e: self.copy_selection((e.args or {}).get("ids")))
        c.on("paste", lambda _: self.paste())
        c.on("undo", lambda _: self.undo())
        c.on("redo", lambda _: self.redo())

    def _yaml_editor(self) -> None:
        with ui.column().classes("w-full h-full gap-1"):
            self.editor = ui.codemirror(self.model.text, language="YAML",
                                        on_change=lambda e: self.yaml_edited(e.value))
            self.editor.classes("w-full grow").props('data-testid="designer-yaml"')
            if self.read_only:
                self.editor.disable()
            self.yaml_error = ui.label("").classes("text-negative text-xs").props(
                'data-testid="designer-yaml-error"')

    # --- intents from the canvas ---------------------------------------------------------

    def drop(self, args: dict[str, Any]) -> Outcome:
        outcome = self._apply(lambda: self.model.drop(str(args.get("kind")), args.get("x", 0),
                                                      args.get("y", 0)))
        if outcome.ok and outcome.added:
            self._select("node", outcome.added[0])
        return outcome

    def connect(self, args: dict[str, Any]) -> Outcome:
        return self._apply(lambda: self.model.connect(str(args.get("source")),
                                                      str(args.get("target")),
                                                      args.get("sourceHandle")))

    def move(self, args: Any) -> Outcome:
        moves = args if isinstance(args, list) else [args]
        return self._apply(lambda: self.model.move(moves), redraw=False)

    def remove(self, args: dict[str, Any]) -> Outcome:
        outcome = self._apply(lambda: self.model.remove(list(args.get("nodes") or []),
                                                        list(args.get("edges") or [])))
        if self.selection[1] is not None and self.selection[1] not in self._element_ids():
            self._select("process", None)
        return outcome

    def select(self, args: dict[str, Any]) -> None:
        kind = args.get("kind")
        self.selected_ids = list(args.get("ids") or ([args["id"]] if kind == "node" else []))
        if kind == "node" and args.get("id"):
            self._select("node", str(args["id"]))
        elif kind == "edge" and args.get("id"):
            self._select("edge", str(args["id"]))
        else:
            self._select("process", None)

    def edge_label(self, args: dict[str, Any]) -> Outcome:
        return self._apply(lambda: self.model.set_edge_label(str(args.get("id")),
                                                             str(args.get("label") or "")))

    def copy_selection(self, ids: list[str] | None = None) -> None:
        wanted = ids if ids else self.selected_ids or (
            [self.selection[1]] if self.selection[0] == "node" and self.selection[1] else [])
        self.clipboard = self.model.copy([i for i in wanted if i])
        if self.clipboard:
            ui.notify(f"copied {len(self.clipboard)} step(s)")

    def paste(self) -> Outcome:
        if not self.clipboard:
            return Outcome(False, "nothing to paste")
        return self._apply(lambda: self.model.paste(self.clipboard))

    def delete_selection(self) -> Outcome:
        kind, element = self.selection
        nodes = self.selected_ids or ([element] if kind == "node" and element else [])
        edges = [element] if kind == "edge" and element else []
        if not nodes and not edges:
            return Outcome(False, "select a step or a connection first")
        return self.remove({"nodes": nodes, "edges": edges})

    def auto_layout(self) -> Outcome:
        outcome = self._apply(self._layout, reload=True)
        return outcome

    def _layout(self) -> Outcome:
        self.model.auto_layout()
        return Outcome(True)

    def undo(self) -> bool:
        return self._restore(self.history.undo(self._snapshot()))

    def redo(self) -> bool:
        return self._restore(self.history.redo(self._snapshot()))

    # --- property panel ------------------------------------------------------------------

    def set_step_field(self, step_id: str, path: list[Any], value: Any) -> Outcome:
        renamed = path == ["id"]
        outcome = self._apply(lambda: self.model.set_field(step_id, path, value),
                              key=None if renamed else ("step", step_id, tuple(path)))
        if outcome.ok and renamed and value and self.model.step(str(value)) is not None:
            self._select("node", str(value))
        elif outcome.ok and path in (["type"], ["gateway_type"]):
            self.panel.refresh()
        return outcome

    def set_process_field(self, path: list[Any], value: Any, refresh: bool = False) -> Outcome:
        outcome = self._apply(lambda: self.model.set_process_field(path, value),
                              key=("process", tuple(path)))
        if refresh:
            self.panel.refresh()
        return outcome

    @ui.refreshable_method
    def panel(self) -> None:
        kind, element = self.selection
        with ui.column().classes("w-full p-2 gap-1"):
            if kind == "node" and element in (START, END):
                info = KINDS["start" if element == START else "end"]
                ui.label(info.label).classes("text-lg font-semibold")
                ui.label(f"{info.help} Drawn only: it is not a step in the YAML; it connects "
                         "to the steps without depends_on (start) or from the last steps "
                         "(end).").classes("text-sm text-grey-8")
            elif kind == "node" and element and self.model.step(element) is not None:
                self._step_form(element)
            elif kind == "edge" and element:
                self._edge_form(element)
            else:
                self._process_form()

    def _context(self, on_set: Callable[[list[Any], Any], None], step_id: str | None = None,
                 testid: str = "prop") -> FormContext:
        return FormContext(on_set, [i for i in self.model.ids() if i != step_id], self.agents,
                           self.assignees, self._references(step_id), self.read_only, testid)

    def _step_form(self, step_id: str) -> None:
        step = self.model.step(step_id)
        assert step is not None
        spec = schema.step_spec(str(step.get("type")))
        with ui.row().classes("items-center gap-2"):
            ui.label(str(step.get("name") or step_id)).classes("text-lg font-semibold")
            ui.badge(str(step.get("type")))
        if spec is None:
            ui.label(f"unknown step type '{step.get('type')}': fix it in the YAML").classes(
                "text-negative")
            return
        ui.label(spec.doc).classes("text-sm text-grey-8")
        ctx = self._context(lambda path, v: self.set_step_field(step_id, path, v), step_id)
        render_spec(spec, step, ctx, [])

    def _edge_form(self, eid: str) -> None:
        source, _, target = eid.partition("->")
        ui.label(f"{source} → {target}").classes("text-lg font-semibold")
        gateway = self.model.step(source)
        if gateway is None or gateway.get("type") != "gateway":
            ui.label(f"'{target}' runs after '{source}' (depends_on).").classes("text-sm")
        else:
            edge = self.model.edge_payload(source, target)
            value = "" if edge["label"] in ("always", "default") else edge["label"]
            field = schema.ROUTE.by_name["condition"]
            condition = ui.input("condition", value=value,
                                 autocomplete=self._references(None)).classes("w-full").props(
                'data-testid="prop-edge-condition"')
            condition.props["hint"] = field.doc
            if self.read_only:  # shown, not editable (it once answered each blur "read only")
                condition.disable()
            else:
                condition.on("blur", lambda: self.edge_label({"id": eid,
                                                              "label": condition.value}))
                condition.on("keydown.enter",
                             lambda: self.edge_label({"id": eid, "label": condition.value}))
            if gateway.get("gateway_type") != "parallel" and not self.read_only:
                ui.button("Make default route", icon="alt_route",
                          on_click=lambda: self._apply(lambda: self.model.set_default(eid))
                          ).props('flat data-testid="prop-edge-default"')
        if not self.read_only:
            ui.button("Delete connection", icon="delete",
                      on_click=lambda: self.remove({"nodes": [], "edges": [eid]})).props(
                'flat color=negative data-testid="prop-edge-delete"')

    def _process_form(self) -> None:
        ui.label("Process").classes("text-lg font-semibold")
        ctx = self._context(lambda path, v: self.set_process_field(path, v), testid="proc")
        render_spec(schema.TOP_LEVEL, self.model.doc, ctx, [],
                    skip=("steps", "input", "triggers"))
        self._inputs_form()
        self._triggers_form()

    def _inputs_form(self) -> None:
        inputs = self.model.doc.get("input") if isinstance(self.model.doc.get("input"),
                                                            dict) else {}
        with ui.expansion("input: typed inputs", value=bool(inputs)).classes("w-full").props(
                'dense data-testid="proc-input"'):
            for name, spec in inputs.items():
                with ui.row().classes("w-full items-center no-wrap"):
                    ui.label(name).classes("font-mono grow")
                    ui.button(icon="close", on_click=lambda n=name: self.set_process_field(
                        ["input", n], None, refresh=True)).props("flat dense round")
                ctx = self._context(lambda path, v: self.set_process_field(path, v),
                                    testid="proc")
                render_spec(schema.INPUT_FIELD, spec if isinstance(spec, dict) else {}, ctx,
                            ["input", name])
            with ui.row().classes("w-full items-center no-wrap"):
                new_name = ui.input("new input name").props('dense data-testid="proc-input-new"')
                ui.button(icon="add", on_click=lambda: new_name.value and self.set_process_field(
                    ["input", new_name.value], {"type": "string"}, refresh=True)).props(
                    'flat dense data-testid="proc-input-add"')

    def _triggers_form(self) -> None:
        triggers = self.model.doc.get("triggers")
        triggers = triggers if isinstance(triggers, list) else []
        with ui.expansion("triggers", value=bool(triggers)).classes("w-full").props(
                'dense data-testid="proc-triggers"'):
            for i, trigger in enumerate(triggers):
                if not isinstance(trigger, dict):
                    continue
                spec = schema.trigger_spec(str(trigger.get("type") or "webhook"))
                with ui.row().classes("w-full items-center no-wrap"):
                    ui.label(f"{trigger.get('type') or 'webhook'} {trigger.get('id') or ''}")
                    ui.space()
                    ui.button(icon="close", on_click=lambda i=i: self._drop_trigger(i)).props(
                        "flat dense round")
                if spec is not None:
                    ctx = self._context(lambda path, v: self.set_process_field(
                        path, v, refresh=path[-1] == "type"), testid="proc")
                    render_spec(spec, trigger, ctx, ["triggers", i])
            with ui.row():
                for kind in schema.TRIGGER_TYPES:
                    ui.button(kind, icon="add", on_click=lambda k=kind: self._add_trigger(k)
                              ).props(f'flat dense data-testid="proc-trigger-add-{kind}"')

    def _add_trigger(self, kind: str) -> None:
        triggers = list(self.model.doc.get("triggers") or [])
        new: dict[str, Any] = {"id": f"{kind}-{len(triggers) + 1}", "type": kind}
        if kind == "schedule":
            new["cron"] = "daily"
        self.set_process_field(["triggers"], [*triggers, new], refresh=True)

    def _drop_trigger(self, index: int) -> None:
        triggers = list(self.model.doc.get("triggers") or [])
        del triggers[index]
        self.set_process_field(["triggers"], triggers or None, refresh=True)

    # --- problems ------------------------------------------------------------------------

    @ui.refreshable_method
    def problem_list(self) -> None:
        errors = sum(p.is_error for p in self.problems)
        ui.label(f"Problems: {errors} error(s), {len(self.problems) - errors} warning(s)"
                 ).classes("text-sm font-semibold").props('data-testid="problems-summary"')
        with ui.list().props("dense separator").classes("w-full"):
            for i, p in enumerate(self.problems):
                with ui.item(on_click=lambda p=p: self.reveal(p)).props(
                        f'clickable data-testid="problem-{i}"').mark(f"problem-{i}"):
                    with ui.item_section().props("avatar"):
                        ui.icon("error" if p.is_error else "warning",
                                color="negative" if p.is_error else "warning")
                    with ui.item_section():
                        where = f"line {p.line} · " if p.line else ""
                        ui.item_label(p.message)
                        ui.item_label(f"{where}{p.path or 'process'}"
                                      + (f" · {p.hint}" if p.hint else "")).props("caption")

    def reveal(self, problem: Problem) -> None:
        """Select the element a problem is about (or the process settings)."""
        element = problem.element
        if element and element in self._element_ids():
            self.canvas.focus(element)
            self._select("edge" if "->" in element else "node", element)
        else:
            self._select("process", None)

    def revalidate(self) -> None:
        self.problems = check(self.model.text, self.lookup)
        self.canvas.set_errors(errors_by_element(self.problems))
        self.problem_list.refresh()
        if self.publish_button is not None:
            self.publish_button.set_enabled(not self.has_errors)

    @property
    def has_errors(self) -> bool:
        return any(p.is_error for p in self.problems)

    # --- YAML ----------------------------------------------------------------------------

    def yaml_edited(self, text: str) -> None:
        if text == self.model.text:  # our own rewrite coming back: no echo
            return
        before = self._snapshot()
        try:
            self.model.load_text(text)
        except ModelError as e:
            self.yaml_error.set_text(str(e).splitlines()[0])
            self.problems = check(text, self.lookup)
            self.problem_list.refresh()
            if self.publish_button is not None:
                self.publish_button.set_enabled(False)
            return
        self.yaml_error.set_text("")
        self.history.push(before, key="yaml")
        self.canvas.sync(self.model.graph())
        if self.selection[1] is not None and self.selection[1] not in self._element_ids():
            self.selection = ("process", None)
        self.panel.refresh()
        self.revalidate()

    def load_document(self, text: str) -> None:
        """Replace the process with another document (import)."""
        before = self._snapshot()
        self.model.load_text(text)
        self.history.push(before)
        self._set_editor(self.model.text)
        self.canvas.reload(self.model.graph())
        self._select("process", None)
        self.revalidate()

    # --- toolbar actions -----------------------------------------------------------------

    async def save(self) -> None:
        assert self.on_save is not None
        error = await self.on_save(self.model.text)
        if error:
            ui.notify(error, type="negative", multi_line=True)
        else:
            self.baseline = self.model.text
            ui.notify("saved", type="positive")

    async def publish(self) -> None:
        assert self.on_publish is not None
        if self.has_errors:
            ui.notify("fix the errors before publishing", type="warning")
            return
        error = await self.on_publish(self.model.text)
        ui.notify(error or "published", type="negative" if error else "positive")

    def export_yaml(self) -> None:
        ui.download.content(self.model.text, f"{self._name()}.yaml", "application/yaml")

    def export_bpmn(self) -> None:
        ui.download.content(to_bpmn(self.model.doc), f"{self._name()}.bpmn",
                            "application/xml")

    def show_import(self) -> None:
        with ui.dialog() as dialog, ui.card().classes("w-[32rem]"):
            ui.label("Import a process").classes("text-lg font-semibold")
            ui.label("A YAML definition or a BPMN 2.0 XML file (.bpmn, .xml). It replaces "
                     "what is on the canvas; undo brings it back.").classes("text-sm")

            async def uploaded(e: events.UploadEventArguments) -> None:
                self.import_text(await e.file.text())
                dialog.close()

            ui.upload(on_upload=uploaded, auto_upload=True).props(
                'accept=".yaml,.yml,.bpmn,.xml" data-testid="import-upload"').classes("w-full")
        dialog.open()

    def import_text(self, text: str) -> bool:
        """Import YAML or BPMN text; unsupported BPMN elements are reported."""
        try:
            if text.lstrip().startswith("<"):
                result = from_bpmn(text)
                if result.unsupported:
                    ui.notify("left out (unsupported): " + ", ".join(result.unsupported),
                              type="warning", multi_line=True)
                text = dump(result.doc)
            self.load_document(text)
        except (BpmnError, ModelError) as e:
            ui.notify(f"cannot import: {e}", type="negative")
            return False
        return True

    def show_compare(self) -> None:
        result = compare(self.baseline, self.model.text, "saved", "current")
        self.canvas.highlight(result.added, "diff-added")
        self.canvas.highlight(result.changed, "diff-changed")
        with ui.dialog() as dialog, ui.card().classes("w-[48rem] max-w-full"):
            ui.label("Changes since the saved version").classes("text-lg font-semibold")
            ui.label(f"added: {', '.join(result.added) or '—'} · removed: "
                     f"{', '.join(result.removed) or '—'} · changed: "
                     f"{', '.join(result.changed) or '—'}").props('data-testid="compare-summary"')
            ui.code(result.diff or "no changes", language="diff").classes("w-full")
            ui.button("Close", on_click=dialog.close)
        dialog.open()

    def show_test_run(self) -> None:
        inputs = self.model.doc.get("input") if isinstance(self.model.doc.get("input"),
                                                            dict) else {}
        fields: dict[str, Any] = {}
        with ui.dialog() as dialog, ui.card().classes("w-[32rem]"):
            ui.label("Test run").classes("text-lg font-semibold")
            for name, spec in inputs.items():
                fields[name] = _input_widget(name, spec if isinstance(spec, dict) else {})
            if not inputs:
                ui.label("This process declares no inputs.").classes("text-sm")

            async def run() -> None:
                assert self.on_test_run is not None
                values = {n: _input_value(w, inputs.get(n) or {}) for n, w in fields.items()}
                await self.on_test_run(self.model.text, {k: v for k, v in values.items()
                                                         if v is not None})
                dialog.close()

            ui.button("Start", icon="play_arrow", on_click=run).props(
                'data-testid="test-run-start"').mark("test-run-start")
        dialog.open()

    # --- internals -----------------------------------------------------------------------

    def _apply(self, change: Callable[[], Outcome], *, key: object = None,
               redraw: bool = True, reload: bool = False) -> Outcome:
        if self.read_only:
            return Outcome(False, "read only")
        before = self._snapshot()
        outcome = change()
        if not outcome.ok:
            ui.notify(outcome.message or "not possible", type="warning")
            return outcome
        if outcome.message:
            ui.notify(outcome.message)
        self.history.push(before, key)
        self.model.sync_text()
        self._set_editor(self.model.text)
        graph = self.model.graph()
        if reload:
            self.canvas.reload(graph)
        elif redraw:
            self.canvas.sync(graph)
        else:
            self.canvas.graph = graph
        self.revalidate()
        return outcome

    def _snapshot(self) -> Snapshot:
        return (self.model.text, dict(self.model.positions))

    def _restore(self, snapshot: Snapshot | None) -> bool:
        if snapshot is None:
            return False
        text, positions = snapshot
        self.model.load_text(text)
        self.model.positions = dict(positions)
        self._set_editor(text)
        self.canvas.sync(self.model.graph())
        if self.selection[1] is not None and self.selection[1] not in self._element_ids():
            self.selection = ("process", None)
        self.panel.refresh()
        self.revalidate()
        return True

    def _set_editor(self, text: str) -> None:
        if self.editor is not None and self.editor.value != text:
            self.editor.value = text  # yaml_edited sees model.text and ignores it

    def _select(self, kind: str, element: str | None) -> None:
        self.selection = (kind, element)
        self.panel.refresh()

    def _element_ids(self) -> set[str]:
        from pages.designer.model import edge_id

        return {START, END, *self.model.ids(), *(edge_id(u, v) for u, v in self.model.edges())}

    def _references(self, step_id: str | None) -> list[str]:
        inputs = self.model.doc.get("input")
        refs = [f"input.{n}" for n in inputs] if isinstance(inputs, dict) else []
        refs += [f"steps.{i}.output" for i in self.model.ids() if i != step_id]
        return refs

    def _name(self) -> str:
        return str(self.model.doc.get("name") or "process")


def _input_widget(name: str, spec: dict[str, Any]) -> Any:
    kind, label = spec.get("type") or "string", name + (" *" if spec.get("required") else "")
    default = spec.get("default")
    if isinstance(spec.get("enum"), list):
        widget: Any = ui.select(list(spec["enum"]), label=label, value=default)
    elif kind == "boolean":
        widget = ui.checkbox(label, value=bool(default))
    elif kind in ("number", "integer"):
        widget = ui.number(label, value=default, format="%d" if kind == "integer" else None)
    elif kind in ("object", "array"):
        widget = ui.textarea(f"{label} (JSON)",
                             value=json.dumps(default) if default is not None else "")
    else:
        widget = ui.input(label, value=default or "")
    if spec.get("description"):
        widget.props["hint"] = str(spec["description"])
    return widget.classes("w-full").props(f'data-testid="test-input-{name}"').mark(
        f"test-input-{name}")


def _input_value(widget: Any, spec: dict[str, Any]) -> Any:
    value = widget.value
    kind = spec.get("type") or "string"
    if value in ("", None):
        return None
    if kind == "integer":
        return int(value)
    if kind in ("object", "array") and isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
