"""`/processes`: the catalog — every process the user may read, with its version and status,
owner, triggers and next scheduled run, last runs, success rate, average duration and cost;
search and filters; a start form generated from the typed inputs (with first-run guidance);
YAML import."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from app.guard import RateLimited
from app.repositories import parsed_definition
from app.security import Denied, Permission
from app.services import InvalidInput, ServiceError
from pages.components.inputform import InputForm
from pages.components.queries import next_runs, plan, plan_totals, process_stats
from pages.components.status import ago, duration_text, money, status_chip
from pages.shell import container, frame, page_actor, to_login

__all__ = ["register", "start_dialog"]


def register() -> None:
    from nicegui import ui

    @ui.page("/processes")
    async def catalog_page(request: Request) -> Any:
        actor = await page_actor(request)
        if actor is None:
            return to_login(request)
        with frame(actor, "Processes", active="/processes"):
            ui.add_head_html('<link rel="stylesheet" href="/static/operate.css">')
            await Catalog(actor, container()).render(request.query_params.get("start"))
        return None


class Catalog:
    def __init__(self, actor: Any, c: Any) -> None:
        self.actor, self.c = actor, c
        self.filters = {"search": "", "status": None, "owner": None}
        self.rows: list[dict[str, Any]] = []

    async def render(self, start: str | None = None) -> None:
        from nicegui import ui

        with ui.row().classes("w-full items-center justify-between"):
            ui.label("Processes").classes("text-2xl font-semibold").props(
                'data-testid="catalog-title"')
            with ui.row().classes("gap-2"):
                if self.actor.can(Permission.PROCESS_CREATE) or any(
                        Permission.PROCESS_CREATE in self.actor.p.permissions_in(t)
                        for t, _ in self.actor.p.grants):
                    ui.button("Import YAML", icon="upload_file", on_click=self.import_dialog) \
                        .props('outline data-testid="catalog-import"')
                    ui.button("New process", icon="add",
                              on_click=lambda: ui.navigate.to("/processes/new")).props(
                        'data-testid="catalog-new"')
        self.rows = await self._load()
        if not self.rows:
            self._empty()
            return
        self._filter_bar()
        self.list = ui.refreshable(self._list)
        self.list()
        if start:
            row = next((r for r in self.rows if r["name"] == start), None)
            if row is not None:
                await start_dialog(self.actor, self.c, row["row"])

    async def _load(self) -> list[dict[str, Any]]:
        rows = await self.actor.processes()
        latest: dict[str, Any] = {}
        versions: dict[str, int] = {}
        for r in rows:  # newest version first per name; a published one wins over a draft
            versions[r.name] = versions.get(r.name, 0) + 1
            best = latest.get(r.name)
            if best is None or (best.status != "published" and r.status == "published"):
                latest[r.name] = r
        names = sorted(latest)
        stats = await process_stats(self.actor, self.c, names)
        schedules = await next_runs(self.c, names)
        out = []
        for name in names:
            r = latest[name]
            try:
                d = parsed_definition(r)
            except Exception:  # a stored row that no longer loads: show it, do not start it
                d = None
            out.append({"name": name, "row": r, "definition": d, "versions": versions[name],
                        "stats": stats[name], "schedules": schedules.get(name, [])})
        return out

    def _empty(self) -> None:
        from nicegui import ui

        with ui.card().classes("w-full max-w-3xl p-8 items-start gap-3").props(
                'data-testid="catalog-empty"'):
            ui.label("No processes yet").classes("text-xl font-semibold")
            ui.label("A process is a series of steps done by AI agents and people. Start from "
                     "a template, draw one from scratch, or import a YAML file.")
            with ui.row().classes("gap-2"):
                ui.button("Start from an example", icon="auto_awesome",
                          on_click=example_dialog).props('data-testid="empty-wizard"')
                ui.button("Blank process", icon="add",
                          on_click=lambda: ui.navigate.to("/processes/new")).props(
                    'outline data-testid="empty-blank"')
                ui.button("Import YAML", icon="upload_file", on_click=self.import_dialog) \
                    .props('outline data-testid="empty-import"')

    def _filter_bar(self) -> None:
        from nicegui import ui

        owners = sorted({r["row"].owner for r in self.rows if r["row"].owner})
        with ui.row().classes("w-full items-end gap-3"):
            ui.input("Search name, description or tag", on_change=self._changed("search")) \
                .props('outlined dense clearable data-testid="catalog-search"').classes("w-80")
            ui.select({None: "Any status", "published": "Published", "draft": "Draft"},
                      value=None, label="Status", on_change=self._changed("status")).props(
                'outlined dense data-testid="catalog-status"').classes("w-40")
            ui.select({None: "Any team", **{o: o for o in owners}}, value=None, label="Owner",
                      on_change=self._changed("owner")).props(
                'outlined dense data-testid="catalog-owner"').classes("w-40")

    def _changed(self, key: str) -> Any:
        def apply(e: Any) -> None:
            self.filters[key] = e.value or None if key != "search" else (e.value or "")
            self.list.refresh()
        return apply

    def _visible_rows(self) -> list[dict[str, Any]]:
        term = (self.filters["search"] or "").strip().lower()
        out = []
        for r in self.rows:
            row, d = r["row"], r["definition"]
            text = " ".join([r["name"], row.description or "", *(d.tags if d else ())]).lower()
            if term and term not in text:
                continue
            if self.filters["status"] and row.status != self.filters["status"]:
                continue
            if self.filters["owner"] and row.owner != self.filters["owner"]:
                continue
            out.append(r)
        return out

    def _list(self) -> None:
        from nicegui import ui

        rows = self._visible_rows()
        if not rows:
            ui.label("No process matches these filters.").classes("text-slate-500").props(
                'data-testid="catalog-no-match"')
            return
        with ui.column().classes("w-full gap-3").props('data-testid="catalog-list"'):
            for r in rows:
                self._card(r)

    def _card(self, r: dict[str, Any]) -> None:
        from nicegui import ui

        row, d, stats = r["row"], r["definition"], r["stats"]
        now = self.c.runtime.clock()
        with ui.card().classes("w-full p-4").props(
                f'data-testid="process-{r["name"]}" role="article"'):
            with ui.row().classes("w-full items-start justify-between no-wrap"):
                with ui.column().classes("gap-1"):
                    with ui.row().classes("items-center gap-2"):
                        ui.label(r["name"]).classes("text-lg font-semibold")
                        status_chip(row.status)
                        ui.label(f"v{row.version}" + (f" · {r['versions']} versions"
                                                      if r["versions"] > 1 else "")).classes(
                            "text-sm text-slate-500")
                    if row.description:  # its first paragraph, as the markdown it is
                        first = " ".join(row.description.strip().split("\n\n")[0].split())
                        ui.markdown(first).classes("catalog-description text-sm "
                                                   "text-slate-600").props(
                            f'data-testid="description-{r["name"]}"')
                    ui.label(self._triggers(r, now)).classes("text-xs text-slate-500")
                with ui.row().classes("gap-2 no-wrap"):
                    ui.button("Open", icon="account_tree", on_click=lambda n=r["name"]:
                              ui.navigate.to(f"/processes/{n}")).props(
                        f'flat data-testid="open-{r["name"]}"')
                    ui.button("Runs", icon="list", on_click=lambda n=r["name"]: ui.navigate.to(
                        f"/executions?process={n}")).props(f'flat data-testid="runs-{r["name"]}"')
                    if row.status == "published" and d is not None and self.actor.can(
                            Permission.EXECUTION_TRIGGER, row.owner):
                        ui.button("Start", icon="play_arrow",
                                  on_click=lambda x=row: start_dialog(self.actor, self.c, x)) \
                            .props(f'data-testid="start-{r["name"]}"')
            with ui.row().classes("w-full gap-6 text-sm items-center"):
                ui.label(f"Owner: {row.owner or 'organisation'}")
                rate = stats.success_rate
                ui.label(f"Runs: {stats.total}")
                ui.label("Success: " + ("—" if rate is None else f"{100 * rate:.0f}%"))
                ui.label(f"Avg duration: {duration_text(stats.avg_seconds)}")
                ui.label("Avg cost: " + ("—" if stats.avg_cost is None
                                         else money(stats.avg_cost)))
                if stats.recent:
                    with ui.row().classes("items-center gap-1").props(
                            'aria-label="Last runs"'):
                        ui.label("Last runs:").classes("text-slate-500")
                        for e in stats.recent[:5]:
                            with ui.link(target=f"/executions/{e.id}").classes(
                                    "no-underline").props(
                                    f'title="{e.status}, {ago(e.created_at, now)}"'):
                                status_chip(e.status)

    def _triggers(self, r: dict[str, Any], now: Any) -> str:
        d = r["definition"]
        if d is None:
            return "This version cannot be loaded; open it in the designer."
        parts = []
        for t in d.triggers:
            if not t.enabled:
                continue
            if t.type == "schedule":
                slot = next((s.next_fire_at for s in r["schedules"]
                             if s.trigger_id == t.id), None)
                parts.append(f"schedule {t.cron} ({t.timezone})" + (
                    f", next run in {duration_text((slot - now).total_seconds())}"
                    if slot else ""))
            else:
                parts.append(t.type)
        return "Triggers: " + (", ".join(parts) or "manual")

    async def import_dialog(self) -> None:
        from nicegui import ui

        with ui.dialog() as dialog, ui.card().classes("w-[48rem] max-w-full"):
            ui.label("Import a process from YAML").classes("text-lg font-semibold")
            text = ui.textarea("Paste YAML here, or upload a file below").classes(
                "w-full font-mono").props('outlined autogrow data-testid="import-text"')

            async def uploaded(e: Any) -> None:
                text.value = await e.file.text()
            ui.upload(label="YAML file", auto_upload=True, on_upload=uploaded).props(
                'accept=".yaml,.yml" flat bordered data-testid="import-upload"').classes("w-full")
            name = ui.input("Name (only for templates with name: \"{{name}}\")").props(
                'outlined dense data-testid="import-name"').classes("w-full")
            publish = ui.checkbox("Publish now (otherwise saved as a draft)").props(
                'data-testid="import-publish"')
            problems = ui.column().classes("w-full gap-0").props(
                'data-testid="import-problems" role="alert"')

            async def save() -> None:
                problems.clear()
                try:
                    from pages.components.actor import current_actor

                    self.actor = await current_actor(self.c, self.actor)
                    imported = await self.actor.save_definition(
                        text.value or "", publish=publish.value, name=name.value or None)
                except Denied as e:
                    ui.notify(e.reason, type="negative")
                    return
                except ServiceError as e:
                    with problems:
                        ui.label("The file was not imported:").classes("text-negative")
                        for issue in getattr(e, "issues", None) or []:
                            if issue.is_error:
                                ui.label(issue.format()).classes("text-sm font-mono")
                        if not getattr(e, "issues", None):
                            ui.label(str(e)).classes("text-sm")
                    return
                row = imported.row
                ui.notify(f"Imported {row.name} v{row.version} ({row.status})",
                          type="positive")
                dialog.close()
                ui.navigate.to("/processes")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button("Import", icon="upload", on_click=save).props(
                    'data-testid="import-save"')
        dialog.open()


async def start_dialog(actor: Any, c: Any, row: Any) -> None:
    """The start form of a process version; shows what will happen on a first run."""
    from nicegui import ui

    definition = parsed_definition(row)
    stats = (await process_stats(actor, c, [row.name]))[row.name]
    steps = await plan(c, definition)
    with ui.dialog() as dialog, ui.card().classes("w-[44rem] max-w-full").props(
            'data-testid="start-dialog"'):
        first = stats.total == 0
        ui.label(("First run: " if first else "Start ") + (row.name)).classes(
            "text-lg font-semibold")
        _plan_view(steps, first)
        form = InputForm(definition.inputs)

        async def submit() -> None:
            form.clear_errors()
            if not form.validate():
                return
            try:
                values = form.values()
            except ValueError as e:
                form.show_errors([f"The input is not valid JSON: {e}"])
                return
            try:
                from pages.components.actor import current_actor

                x = await (await current_actor(c, actor)).start(
                    row.name, values, version=row.version, row=row)
            except InvalidInput as e:
                form.show_errors(e.errors)
                return
            except (Denied, RateLimited, ServiceError) as e:
                ui.notify(getattr(e, "reason", None) or str(e), type="negative")
                return
            dialog.close()
            ui.navigate.to(f"/executions/{x.id}")
        with ui.row().classes("w-full justify-end gap-2"):
            ui.button("Cancel", on_click=dialog.close).props('flat data-testid="start-cancel"')
            ui.button("Start execution", icon="play_arrow", on_click=submit).props(
                'data-testid="start-submit"')
    dialog.open()


def _plan_view(steps: list[Any], first: bool) -> None:
    from nicegui import ui

    time, cost = plan_totals(steps)
    title = "This is the first run of this process. Here is what will happen:" if first \
        else "What will happen"
    with ui.expansion(title, value=first).classes("w-full").props(
            'data-testid="first-run"'), ui.column().classes("gap-1 w-full"):
        for i, s in enumerate(steps, 1):
            estimate = "" if s.seconds is None else f" · ~{duration_text(s.seconds)}"
            estimate += "" if s.cost is None else f" · ~{money(s.cost)}"
            estimate += f" ({s.basis})" if s.basis else ""
            with ui.row().classes("w-full no-wrap items-start gap-2"):
                ui.label(f"{i}.").classes("font-semibold w-6 shrink-0")
                with ui.column().classes("gap-0"):
                    ui.label(s.name).classes("font-medium")
                    ui.label(s.words + estimate).classes("text-sm text-slate-600")
        ui.label(f"Total: {time}; {cost}.").classes("text-sm font-medium mt-2").props(
            'data-testid="first-run-total"')


def example_dialog() -> None:
    """Pick one of the shipped examples to start a new process from (opens the designer)."""
    from nicegui import ui

    from pages.process_page import examples

    with ui.dialog() as dialog, ui.card().classes("w-[36rem] max-w-full").props(
            'data-testid="example-dialog"'):
        ui.label("Start from an example").classes("text-lg font-semibold")
        ui.label("The designer opens a copy you can change and save under your own name.") \
            .classes("text-sm text-slate-600")
        with ui.list().props("bordered separator").classes("w-full"):
            for stem, description in examples():
                with ui.item(on_click=lambda s=stem: ui.navigate.to(
                        f"/processes/new?example={s}")).props(
                        f'clickable data-testid="example-{stem}"'), ui.item_section():
                    ui.item_label(stem)
                    ui.item_label(description).props("caption")
        ui.button("Cancel", on_click=dialog.close).props("flat")
    dialog.open()
