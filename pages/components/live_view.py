"""The live execution view (`/executions/{id}`): header, actions, the process graph coloured
by step status, the selected step's details, the attempt timeline, input/outputs and
events. Redrawn when the execution's events arrive over Redis pub/sub (`app.live`), never
on a timer. Approvers with approval scope see only their approval steps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from app.repositories import DefinitionRepository, parsed_definition
from app.security import Denied, Permission, Scope
from app.services import NotFound, ServiceError
from app.tables import ApprovalDecisionRow, ApprovalRow
from app.views import execution_view
from engine.definition import AgentTask
from pages.components.actor import current_actor
from pages.components.decide import DecisionPanel
from pages.components.graph import ProcessGraph
from pages.components.jsonview import json_view
from pages.components.live import live_updates
from pages.components.status import (
    STATUS_WORDS,
    duration_text,
    money,
    seconds_between,
    skip_words,
    status_chip,
    until,
)
from pages.components.timeline import bars_from_runs, timeline

__all__ = ["LiveView"]

ACTIVE = ("queued", "running", "retrying", "waiting_approval", "waiting_timer",
          "waiting_subprocess", "failed")


class LiveView:
    def __init__(self, actor: Any, c: Any, execution_id: str) -> None:
        self.actor, self.c, self.id = actor, c, execution_id
        self.selected: str | None = None
        self.updated: list[Callable[[float], None]] = []  # bench: called with the redraw time
        self._lock = asyncio.Lock()

    async def render(self) -> None:
        # Listen before the first read: events committed while the page is being drawn
        # would otherwise be missed, and the page would stay behind until the next one
        # (for a run that then waits for a person: for good). They are handled once the
        # page stands (the lock), with a fresh read.
        async with self._lock:
            sub = live_updates(self.c, self.id, self._on_events)
            if not await self._draw():
                sub.close()

    async def _draw(self) -> bool:
        from nicegui import ui

        if not await self._load():
            return False
        self.header = ui.refreshable(self._header)
        await self.header()
        with ui.card().classes("w-full p-2"):
            self.graph = ProcessGraph(self.d, self._statuses(), hidden=self._hidden(),
                                      on_select=self._select)
        with ui.row().classes("w-full no-wrap items-start gap-4"):
            with ui.column().classes("w-72 shrink-0 gap-1"):
                self.step_list = ui.refreshable(self._step_list)
                self.step_list()
            with ui.column().classes("grow gap-2 min-w-0"):
                self.detail = ui.refreshable(self._detail)
                await self.detail()
        with ui.tabs().props("dense no-caps align=left") as tabs:
            t_time = ui.tab("Timeline")
            t_data = ui.tab("Input and outputs")
            t_events = ui.tab("Events")
        with ui.tab_panels(tabs, value=t_time).classes("w-full"):
            with ui.tab_panel(t_time):
                self.timeline = ui.refreshable(self._timeline)
                self.timeline()
            with ui.tab_panel(t_data):
                self.data = ui.refreshable(self._data)
                self.data()
            with ui.tab_panel(t_events):
                self.events = ui.refreshable(self._events)
                self.events()
        return True

    # --- loading -----------------------------------------------------------------------------

    async def _load(self) -> bool:
        from nicegui import ui

        try:
            self.access = await self.actor.execution(self.id)
        except Denied:
            self._message("You do not have access to this execution.",
                          "Ask an owner of its process to share it with your team.")
            return False
        except NotFound:
            self._message("There is no such execution.",
                          "It may have been removed; the list shows the ones that exist.")
            return False
        row = self.access.row
        async with self.c.db.read() as s:
            definition_row = await DefinitionRepository(s).get(row.definition_id)
            approvals = list((await s.execute(select(ApprovalRow).where(
                col(ApprovalRow.execution_id) == self.id).order_by(
                col(ApprovalRow.created_at)))).scalars())
            ids = [a.id for a in approvals]
            decisions = list((await s.execute(select(ApprovalDecisionRow).where(
                col(ApprovalDecisionRow.approval_id).in_(ids)))).scalars()) if ids else []
        self.d = parsed_definition(definition_row)
        self.view = execution_view(row, self.access.execution, self.d)
        self.steps = {s["id"]: s for s in self.view["steps"] if self._may_see(s["id"])}
        self.approvals = {a.step_id: a for a in approvals if self._may_see(a.step_id)}
        self.decisions = decisions
        self.my_requests = {a.id for a, _ in await self.actor.inbox()} if any(
            a.status == "pending" for a in approvals) else set()
        self.events_rows, self.runs = await self.c.executions.history(self.id)
        if self.selected not in self.steps:
            self.selected = next((sid for sid, s in self.steps.items()
                                  if s["status"] in ACTIVE), next(iter(self.steps), None))
        ui.page_title(f"{row.process_name} {self.id[:8]} · Trinity Processes")
        return True

    def _may_see(self, step_id: str) -> bool:
        return self.access.scope is Scope.FULL or step_id in self.access.approval_steps

    def _hidden(self) -> list[str]:
        return [s.id for s in self.d.steps if not self._may_see(s.id)]

    def _statuses(self) -> dict[str, str]:
        return {sid: s["status"] for sid, s in self.steps.items()}

    def _message(self, title: str, hint: str) -> None:
        from nicegui import ui

        with ui.card().classes("p-6").props('data-testid="execution-missing"'):
            ui.label(title).classes("text-lg font-semibold")
            ui.label(hint)
            ui.link("Back to executions", "/executions")

    async def _on_events(self, batch: list[dict[str, Any]]) -> None:
        async with self._lock:  # an action's redraw and a live one never interleave
            await self._redraw()

    async def _redraw(self) -> None:
        started = time.perf_counter()
        if not await self._load():
            return
        self.graph.update(self._statuses(), self.selected)
        await self.header.refresh()
        self.step_list.refresh()
        await self.detail.refresh()
        self.timeline.refresh()
        self.data.refresh()
        self.events.refresh()
        for callback in self.updated:
            callback(time.perf_counter() - started)

    async def _select(self, step_id: str) -> None:
        if step_id in self.steps:
            self.selected = step_id
            self.graph.update(self._statuses(), step_id)
            self.step_list.refresh()
            await self.detail.refresh()

    # --- header and actions ------------------------------------------------------------------

    async def _header(self) -> None:
        from nicegui import ui

        v, row = self.view, self.access.row
        now = self.c.runtime.clock()
        full = self.access.scope is Scope.FULL
        with ui.row().classes("w-full items-center justify-between"):
            with ui.row().classes("items-center gap-3"):
                ui.label(f"{v['process']} v{v['version']}").classes("text-2xl font-semibold")
                status_chip(v["status"], testid="execution-status")
                ui.label(v["id"]).classes("font-mono text-xs text-slate-500").props(
                    'data-testid="execution-id"')
            if full:
                self._actions()
        with ui.row().classes("w-full gap-6 text-sm"):
            ui.label(f"Trigger: {v['triggered_by']}" + (
                f" by {v['started_by']}" if v["started_by"] else ""))
            end = v["finished_at"] or (now if v["status"] in ("running", "pending") else None)
            ui.label(f"Duration: {duration_text(seconds_between(v['started_at'], end))}")
            ui.label(self._cost_text()).props('data-testid="execution-cost"')
            if v["parent_id"]:
                ui.link("Parent execution", f"/executions/{v['parent_id']}")
            if row.retry_of:
                ui.link("Retry of an earlier run", f"/executions/{row.retry_of}")
            for s in self.steps.values():
                if s["child_id"]:
                    ui.link(f"Sub-process of {s['name']}", f"/executions/{s['child_id']}")
        if v["error"] and full:
            with ui.row().classes("w-full p-2 rounded bg-red-50 text-red-900 items-center gap-2") \
                    .props('role="alert" data-testid="execution-error"'):
                ui.icon("error")
                ui.label(f"{v['error'].get('code', '')}: {v['error'].get('message', '')}")

    def _cost_text(self) -> str:
        budget = self.d.config.max_cost
        text = f"Cost: {money(self.view['cost'])}"
        if budget:
            try:
                share = Decimal(self.view["cost"]) / budget
            except (InvalidOperation, ZeroDivisionError):
                share = Decimal(0)
            text += f" of {money(budget)} budget ({100 * share:.0f}%)"
        return text + f" · {self.view['tokens']} tokens"

    def _actions(self) -> None:
        from nicegui import ui

        team, status = self.access.row.owner_team, self.view["status"]
        may_cancel = self.actor.can(Permission.EXECUTION_CANCEL, team)
        may_retry = self.actor.can(Permission.EXECUTION_RETRY, team)
        failed_step = any(s["status"] == "failed" for s in self.steps.values())
        buttons = [
            ("Pause", "pause", "pause", may_cancel and status == "running", "flat"),
            ("Resume", "play_arrow", "resume", may_retry and status == "paused", "flat"),
            ("Retry failed step", "replay", "resume",
             may_retry and status == "failed" and failed_step, "flat"),
            ("Run again", "restart_alt", "retry",
             may_retry and status in ("failed", "cancelled", "completed"), "flat"),
            ("Cancel", "cancel", "cancel", may_cancel and status in (
                "pending", "running", "paused"), "flat color=negative"),
        ]
        with ui.row().classes("gap-1"):
            for label, icon, action, shown, props in buttons:
                if shown:
                    ui.button(label, icon=icon,
                              on_click=lambda a=action, t=label: self._confirm(a, t)).props(
                        f'{props} data-testid="action-{label.lower().replace(" ", "-")}"')

    async def _confirm(self, action: str, label: str) -> None:
        from nicegui import ui

        what = {"cancel": "Cancel this execution? Running steps are stopped and "
                          "compensations run.",
                "pause": "Pause this execution? Running steps finish; nothing new starts.",
                "resume": "Go on from where it stopped (a failed step runs again)?",
                "retry": "Start a new execution with the same input?"}[action]
        with ui.dialog() as dialog, ui.card().props('data-testid="confirm-dialog"'):
            ui.label(what)
            reason = ui.input("Reason (optional)").props("outlined dense").classes(
                "w-full") if action == "cancel" else None

            async def go() -> None:
                dialog.close()
                try:  # the rights as they are now, not as when the page opened
                    self.actor = await current_actor(self.c, self.actor)
                    result = await self.actor.act(self.id, action,
                                                  (reason.value or "") if reason else "")
                except Denied as e:
                    ui.notify(e.reason, type="negative")
                    await self._on_events([])  # the buttons follow the present rights
                    return
                except ServiceError as e:
                    ui.notify(str(e), type="negative")
                    return
                if action == "retry":
                    ui.navigate.to(f"/executions/{result.id}")
                    return
                ui.notify(f"{label}: done", type="positive")
                await self._on_events([])
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Back", on_click=dialog.close).props("flat autofocus")
                ui.button(label, on_click=go).props('data-testid="confirm-yes"')
        dialog.open()

    # --- steps ---------------------------------------------------------------------------------

    def _step_list(self) -> None:
        from nicegui import ui

        with ui.list().props('dense bordered separator data-testid="step-list"').classes(
                "w-full rounded"):
            for sid, s in self.steps.items():
                with ui.item(on_click=lambda x=sid: self._select(x)).classes(
                        "bg-violet-50" if sid == self.selected else "").props(
                        f'clickable data-testid="step-item-{sid}" tabindex="0"'):
                    with ui.item_section():
                        ui.item_label(s["name"])
                    with ui.item_section().props("side"):
                        status_chip(s["status"], testid=f"step-status-{sid}")

    async def _detail(self) -> None:
        from nicegui import ui

        s = self.steps.get(self.selected or "")
        if s is None:
            ui.label("No step to show.").classes("text-slate-500")
            return
        step = self.d.by_id[s["id"]]
        with ui.card().classes("w-full p-4 gap-2").props(f'data-testid="step-detail-{s["id"]}"'):
            with ui.row().classes("items-center gap-2"):
                ui.label(s["name"]).classes("text-lg font-semibold")
                status_chip(s["status"])
                ui.label(step.type.value.replace("_", " ")).classes("text-xs text-slate-500")
            approval = self.approvals.get(s["id"])
            # an approval's description is a template: show it as rendered for the request
            about = approval.description if approval is not None and approval.description \
                else step.description
            if about:
                ui.markdown(about).classes("text-sm text-slate-600").props(
                    'data-testid="step-description"')
            for line in await self._facts(s, step):
                ui.label(line).classes("text-sm")
            if s["error"]:
                ui.label(f"Error {s['error'].get('code', '')}: {s['error'].get('message', '')}") \
                    .classes("text-sm text-red-700").props('data-testid="step-error"')
            if s["id"] in self.approvals:
                self._approval(self.approvals[s["id"]])
            if s["input"] not in (None, "", {}):
                ui.label("Input").classes("font-medium mt-2")
                if isinstance(s["input"], str):
                    ui.label(s["input"]).classes("text-sm whitespace-pre-wrap font-mono")
                else:
                    json_view(s["input"], "input", testid="step-input")
            if s["output"] is not None:
                ui.label("Output").classes("font-medium mt-2")
                json_view(s["output"], "output", testid="step-output")

    async def _facts(self, s: dict[str, Any], step: Any) -> list[str]:
        now = self.c.runtime.clock()
        out = []
        if s["status"] == "skipped":
            out.append(skip_words(s["skip_reason"], s["skip_detail"]).capitalize())
        if s["attempts"]:
            line = f"Attempt {s['attempts']} of {s['max_attempts'] or 1}"
            if s["visits"] > 1:
                line += f" (pass {s['visits']})"
            out.append(line)
        failed = [a for a in s["history"] if a.get("error_code")]
        if failed and s["status"] in ("retrying", "running", "queued"):
            last = failed[-1]
            out.append(f"Last error: {last['error_code']} {last.get('error_message') or ''}")
        if s["next_retry_at"]:
            out.append(f"Next retry {until(s['next_retry_at'], now).replace('due ', '')}")
        if s["due_at"] and s["status"] == "waiting_timer":
            out.append(f"Timer {until(s['due_at'], now)}")
        if isinstance(step.spec, AgentTask):
            out.append(f"Agent: {step.spec.agent}" + await self._queue(s, step.spec.agent))
        if s["cost"] not in ("0", None) or s["tokens"]:
            out.append(f"Cost {money(s['cost'])}, {s['tokens']} tokens")
        started, finished = s["started_at"], s["finished_at"]
        if started:
            out.append(f"Took {duration_text(seconds_between(started, finished or now))}")
        return out

    async def _queue(self, s: dict[str, Any], agent: str) -> str:
        if s["status"] not in ("queued", "running"):
            return ""
        key = f"{self.id}:{s['id']}:{max(s['visits'], 1)}:{max(s['attempts'], 1)}"
        try:
            position = await self.c.agents.queue_position(agent, key)
        except Exception:  # Redis unreachable: the rest of the page still shows
            return ""
        if position is None:
            return " (waiting for a worker)"
        return " (working on it)" if position == 0 else f" (number {position} in its queue)"

    def _approval(self, a: Any) -> None:
        from nicegui import ui

        mine = [d for d in self.decisions if d.approval_id == a.id]
        who = ", ".join(x.get("user") or f"team:{x.get('team')}" for x in a.assignees or []) \
            or "anyone who may approve"
        with ui.column().classes("w-full gap-1 p-2 rounded bg-amber-50").props(
                'data-testid="approval-state"'):
            due = f" · {until(a.deadline, self.c.runtime.clock())}" \
                if a.status == "pending" else ""  # a closed request is due no more
            ui.label(f"Approval: {STATUS_WORDS.get(a.status, a.status)} · "
                     f"{len([d for d in mine if d.decision == 'approved'])} of "
                     f"{a.required_approvals} approvals{due}").classes("text-sm font-medium")
            ui.label(f"Who may decide: {who}").classes("text-sm")
            for d in mine:
                ui.label(f"{d.decided_by}: {STATUS_WORDS.get(d.decision, d.decision)}"
                         + (f" — {d.comment}" if d.comment else "")).classes("text-sm")
            if a.status == "pending" and a.id in self.my_requests:
                async def done(_decision: str) -> None:
                    await self._on_events([])
                ui.link("Open in the inbox", f"/inbox?request={a.id}").classes("text-sm")
                DecisionPanel(self.actor, self.c, a, done).render()

    # --- tabs ----------------------------------------------------------------------------------

    def _timeline(self) -> None:
        names = {sid: s["name"] for sid, s in self.steps.items()}
        runs = [r for r in self.runs if r.step_id in self.steps]
        timeline(bars_from_runs(runs, names, self.view["started_at"], self.c.runtime.clock()))

    def _data(self) -> None:
        from nicegui import ui

        if self.access.scope is not Scope.FULL:
            ui.label("The input and outputs are visible to the process's team only.").classes(
                "text-slate-500")
            return
        with ui.row().classes("w-full gap-4 no-wrap items-start"):
            with ui.column().classes("w-1/2"):
                ui.label("Input").classes("font-medium")
                json_view(self.view["input"], "input", testid="execution-input")
            with ui.column().classes("w-1/2"):
                ui.label("Outputs").classes("font-medium")
                json_view(self.view["outputs"], "outputs", testid="execution-outputs")
                for w in self.view["output_warnings"] or []:
                    ui.label(str(w)).classes("text-xs text-amber-700")

    def _events(self) -> None:
        from nicegui import ui

        rows = [{"seq": e.seq, "at": e.at.strftime("%H:%M:%S.%f")[:-3] if e.at else "",
                 "event": e.name, "step": e.step_id or ""}
                for e in self.events_rows if not e.step_id or e.step_id in self.steps][-300:]
        ui.table(columns=[{"name": k, "label": k.capitalize(), "field": k, "align": "left"}
                          for k in ("seq", "at", "event", "step")], rows=rows,
                 row_key="seq").classes("w-full").props(
            'flat dense bordered :pagination="{rowsPerPage: 0}" data-testid="event-table"')
