"""`/executions`: the list with filters, search (id, process, input values), saved views and
keyset pagination; `/executions/{id}`, the live view (pages/components/live_view.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import Request

from app.security import Permission
from pages.components.live import ALL, live_updates
from pages.components.queries import ExecutionFilters, list_executions
from pages.components.status import STATUS_WORDS, ago, duration_text, money, seconds_between
from pages.shell import container, frame, page_actor, to_login

__all__ = ["ExecutionList", "register"]

PAGE = 50
STATUSES = ("pending", "running", "paused", "completed", "failed", "cancelled")
TRIGGERS = ("manual", "webhook", "schedule", "retry", "sub_process")
RANGES = {"": "Any time", "1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days",
          "30d": "Last 30 days"}
VIEWS_KEY = "execution_views"


def register() -> None:
    from nicegui import ui

    @ui.page("/executions")
    async def executions_page(request: Request) -> Any:
        actor = await page_actor(request)
        if actor is None:
            return to_login(request)
        with frame(actor, "Executions", active="/executions"):
            ui.add_head_html('<link rel="stylesheet" href="/static/operate.css">')
            f = ExecutionFilters.from_dict({k: v for k, v in request.query_params.items()
                                            if k in ExecutionFilters.__dataclass_fields__
                                            and k not in ("since", "until")})
            await ExecutionList(actor, container(), f,
                                request.query_params.get("range", "")).render()
        return None

    @ui.page("/executions/{execution_id}")
    async def execution_page(request: Request, execution_id: str) -> Any:
        actor = await page_actor(request)
        if actor is None:
            return to_login(request)
        from pages.components.live_view import LiveView

        with frame(actor, "Execution", active="/executions"):
            ui.add_head_html('<link rel="stylesheet" href="/static/operate.css">')
            await LiveView(actor, container(), execution_id).render()
        return None


class ExecutionList:
    def __init__(self, actor: Any, c: Any, filters: ExecutionFilters, range_: str = ""
                 ) -> None:
        self.actor, self.c, self.f = actor, c, filters
        self.range = ""
        self._apply_range(range_)  # a saved view reopens with its time range
        self.cursors: list[Any] = [None]  # keyset cursor of each page shown so far
        self.rows: list[Any] = []

    async def render(self) -> None:
        from nicegui import ui

        ui.label("Executions").classes("text-2xl font-semibold").props(
            'data-testid="executions-title"')
        processes = sorted({r.name for r in await self.actor.processes()})
        self._filters(processes)
        self.table = ui.refreshable(self._table)
        await self.table()
        live_updates(self.c, ALL, self._on_events, accept=_list_event, debounce=0.5)

    def _filters(self, processes: list[str]) -> None:
        from nicegui import ui

        f = self.f
        with ui.row().classes("w-full items-end gap-2").props('data-testid="execution-filters"'):
            ui.input("Search id, process or input value", value=f.search or "",
                     on_change=lambda e: self._set("search", e.value)).props(
                'outlined dense clearable debounce=300 data-testid="filter-search"').classes(
                "w-72")
            ui.select({"": "Any process", **{p: p for p in processes}}, value=f.process or "",
                      label="Process", with_input=True,
                      on_change=lambda e: self._set("process", e.value)).props(
                'outlined dense data-testid="filter-process"').classes("w-48")
            ui.input("Version", value=f.version or "",
                     on_change=lambda e: self._set("version", e.value)).props(
                'outlined dense clearable debounce=300 data-testid="filter-version"').classes(
                "w-24")
            ui.select({"": "Any status", **{s: STATUS_WORDS[s] for s in STATUSES}},
                      value=f.status or "", label="Status",
                      on_change=lambda e: self._set("status", e.value)).props(
                'outlined dense data-testid="filter-status"').classes("w-40")
            ui.select({"": "Any trigger", **{t: t for t in TRIGGERS}},
                      value=f.triggered_by or "", label="Trigger",
                      on_change=lambda e: self._set("triggered_by", e.value)).props(
                'outlined dense data-testid="filter-trigger"').classes("w-36")
            ui.input("Started by", value=f.started_by or "",
                     on_change=lambda e: self._set("started_by", e.value)).props(
                'outlined dense clearable debounce=300 data-testid="filter-started-by"') \
                .classes("w-36")
            ui.select(RANGES, value=self.range, label="Time",
                      on_change=lambda e: self._set_range(e.value)).props(
                'outlined dense data-testid="filter-range"').classes("w-40")
        self.views = ui.refreshable(self._views)
        self.views()

    def _views(self) -> None:
        from nicegui import app, ui

        saved: dict[str, Any] = app.storage.user.get(VIEWS_KEY, {})
        with ui.row().classes("items-center gap-2").props('data-testid="saved-views"'):
            ui.label("Saved views:").classes("text-sm text-slate-500")
            if not saved:
                ui.label("none yet").classes("text-sm text-slate-400")
            for name, data in sorted(saved.items()):
                with ui.button(name, on_click=lambda d=data: self._apply_view(d)).props(
                        f'outline dense no-caps size=sm data-testid="view-{name}"'):
                    ui.button(icon="close", on_click=lambda n=name: self._delete_view(n)).props(
                        f'flat round dense size=xs aria-label="Delete view {name}"').on(
                        "click.stop", lambda: None)
            ui.button("Save this view", icon="bookmark_add", on_click=self._save_view).props(
                'flat dense no-caps data-testid="view-save"')

    async def _save_view(self) -> None:
        from nicegui import app, ui

        with ui.dialog() as dialog, ui.card():
            name = ui.input("Name of the view").props(
                'outlined autofocus data-testid="view-name"')

            def save() -> None:
                if not (name.value or "").strip():
                    return
                views = dict(app.storage.user.get(VIEWS_KEY, {}))
                views[name.value.strip()] = self.f.as_dict() | (
                    {"range": self.range} if self.range else {})
                app.storage.user[VIEWS_KEY] = views
                dialog.close()
                self.views.refresh()
            name.on("keydown.enter", save)
            ui.button("Save", on_click=save).props('data-testid="view-name-save"')
        dialog.open()

    def _delete_view(self, name: str) -> None:
        from nicegui import app

        views = dict(app.storage.user.get(VIEWS_KEY, {}))
        views.pop(name, None)
        app.storage.user[VIEWS_KEY] = views
        self.views.refresh()

    async def _apply_view(self, data: dict[str, Any]) -> None:
        from nicegui import ui

        query = urlencode({k: v for k, v in data.items() if k not in ("since", "until")})
        ui.navigate.to(f"/executions?{query}")

    async def _set(self, key: str, value: Any) -> None:
        setattr(self.f, key, value or None)
        self.cursors = [None]
        self.table.refresh()

    async def _set_range(self, value: str) -> None:
        self._apply_range(value)
        self.cursors = [None]
        self.table.refresh()

    def _apply_range(self, value: str | None) -> None:
        self.range = value if value in RANGES else ""
        span = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7),
                "30d": timedelta(days=30)}.get(self.range)
        self.f.since = self.c.runtime.clock() - span if span else None

    async def _on_events(self, batch: list[dict[str, Any]]) -> None:
        if len(self.cursors) == 1:  # only the first page moves; older pages stay put
            self.table.refresh()

    async def _table(self) -> None:
        from nicegui import ui

        self.rows = await list_executions(self.actor, self.c, self.f, PAGE + 1,
                                          self.cursors[-1])
        more = len(self.rows) > PAGE
        rows = self.rows[:PAGE]
        if not rows:
            self._empty()
            return
        now = self.c.runtime.clock()
        table_rows = [{
            "id": r.id, "short": r.id[:8], "process": r.process_name,
            "version": r.process_version, "status": r.status,
            "status_words": STATUS_WORDS.get(r.status, r.status),
            "trigger": r.triggered_by, "by": r.started_by or "—",
            "created": ago(r.created_at, now),
            "duration": duration_text(seconds_between(r.started_at, r.finished_at or (
                now if r.status in ("running", "pending") else None))),
            "cost": money(r.cost), "error": r.error_code or ""} for r in rows]
        columns = [{"name": n, "label": label, "field": n, "align": "left"} for n, label in (
            ("status", "Status"), ("process", "Process"), ("version", "Version"),
            ("short", "Execution"), ("trigger", "Trigger"), ("by", "Started by"),
            ("created", "Started"), ("duration", "Duration"), ("cost", "Cost"),
            ("error", "Error"))]
        table = ui.table(columns=columns, rows=table_rows, row_key="id").classes("w-full").props(
            'flat bordered dense hide-pagination :pagination="{rowsPerPage: 0}" '
            'data-testid="executions-table"')
        table.add_slot("body-cell-status", '<q-td :props="props"><span :class="\'status-chip '
                       'status-\' + props.row.status" :data-status="props.row.status">'
                       '{{ props.row.status_words }}</span></q-td>')
        table.add_slot("body-cell-short", '<q-td :props="props"><a class="font-mono '
                       'text-primary" :href="\'/executions/\' + props.row.id" '
                       ':data-testid="\'execution-link-\' + props.row.id">{{ props.value }}'
                       '</a></q-td>')
        with ui.row().classes("w-full items-center justify-between"):
            ui.label(f"Showing {len(rows)}" + (" (more below)" if more else "")).classes(
                "text-sm text-slate-500")
            with ui.row().classes("gap-2"):
                ui.button("Newer", icon="chevron_left", on_click=self._newer).props(
                    'flat data-testid="page-newer"').set_enabled(len(self.cursors) > 1)
                ui.button("Older", icon="chevron_right", on_click=lambda: self._older(rows)) \
                    .props('flat data-testid="page-older"').set_enabled(more)

    def _older(self, rows: list[Any]) -> None:
        last = rows[-1]
        self.cursors.append((last.created_at, last.id))
        self.table.refresh()

    def _newer(self) -> None:
        if len(self.cursors) > 1:
            self.cursors.pop()
        self.table.refresh()

    def _empty(self) -> None:
        from nicegui import ui

        filtered = any(v not in (None, "") for v in vars(self.f).values())
        with ui.card().classes("w-full p-6 items-start gap-2").props(
                'data-testid="executions-empty"'):
            if filtered:
                ui.label("No execution matches these filters.").classes("text-lg")
                ui.button("Clear filters", on_click=lambda: ui.navigate.to("/executions")) \
                    .props('outline data-testid="clear-filters"')
            else:
                ui.label("No executions yet.").classes("text-lg")
                ui.label("Start a process from the catalog; its runs show up here live.")
                if self.actor.can(Permission.EXECUTION_TRIGGER) or any(
                        Permission.EXECUTION_TRIGGER in self.actor.p.permissions_in(t)
                        for t, _ in self.actor.p.grants):
                    ui.button("Open the catalog", icon="account_tree",
                              on_click=lambda: ui.navigate.to("/processes")).props(
                        'data-testid="empty-catalog"')


def _list_event(message: dict[str, Any]) -> bool:
    return str(message.get("event", "")).startswith("execution_")
