"""`/inbox`: approval requests waiting for the signed-in user. Left, the queue (mine, my
teams, delegated to me, all for admins) with title, process, a context line, the due time
and priority; right, the selected request: description and artifacts, where it sits in the
process, the upstream outputs it depends on, the decision history, and the decision.
Keys: j/k move, a approve, r reject, c request changes. Updated live.

`watch_inbox_count(actor, state)` keeps the navigation badge's count live (pages/shell.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import Request
from sqlalchemy import select
from sqlmodel import col

from app.approval_links import verify_link
from app.repositories import DefinitionRepository, parsed_definition
from app.security import Denied, Scope
from app.services import NotFound
from app.tables import DelegationRow, ExecutionRow
from pages.components.decide import DecisionPanel
from pages.components.graph import ProcessGraph
from pages.components.jsonview import json_view
from pages.components.live import ALL, live_updates
from pages.components.status import STATUS_WORDS, until
from pages.shell import container, frame, page_actor, to_login

__all__ = ["INBOX_EVENTS", "QueueItem", "load_queue", "register", "watch_inbox_count"]

INBOX_EVENTS = ("approval_requested", "approval_decided", "approval_timed_out",
                "execution_cancelled", "execution_failed", "execution_completed", "looped_back",
                "resync")
TABS = {"mine": "Mine", "teams": "My teams", "delegated": "Delegated to me", "all": "All"}
PRIORITY = {"high": 0, "normal": 1, "low": 2}


class QueueItem:
    def __init__(self, row: Any, decisions: list[Any], tab: str, priority: str) -> None:
        self.row, self.decisions, self.tab, self.priority = row, decisions, tab, priority

    @property
    def id(self) -> str:
        return str(self.row.id)


async def load_queue(actor: Any, c: Any, everyone: bool = False) -> list[QueueItem]:
    """Pending requests the actor may decide (all of them for an admin asking for
    everyone), each put under one tab, soonest deadline first."""
    rows = await actor.inbox(everyone=everyone)
    if not rows:
        return []
    ids = [r.id for r, _ in rows]
    async with c.db.read() as s:
        delegated = set((await s.execute(select(DelegationRow.approval_id).where(
            col(DelegationRow.to_user) == actor.p.username,
            col(DelegationRow.approval_id).in_(ids)))).scalars())
        priorities = dict((await s.execute(select(ExecutionRow.id, ExecutionRow.priority).where(
            col(ExecutionRow.id).in_({r.execution_id for r, _ in rows})))).all())
    me = {actor.p.username, actor.p.email or "\0"}
    out = []
    for row, decisions in rows:
        users = {a.get("user") for a in row.assignees or []}
        if everyone:
            tab = "all"
        elif row.id in delegated:
            tab = "delegated"
        elif users & me:
            tab = "mine"
        else:
            tab = "teams"
        out.append(QueueItem(row, decisions, tab, priorities.get(row.execution_id, "normal")))
    far = datetime.max.replace(tzinfo=None)
    out.sort(key=lambda q: (q.row.deadline.replace(tzinfo=None) if q.row.deadline else far,
                            PRIORITY.get(q.priority, 1)))
    return out


def watch_inbox_count(actor: Any, state: Any,
                      reload: Callable[[], Awaitable[None]] | None = None) -> None:
    """Keep the nav badge live: when approval events arrive, call `reload()` (the shell's
    own loader) or, without one, set `state.count` to the number of pending requests for
    `actor`. Call inside a page (client context); it stops with the page."""
    c = container()

    async def changed(_batch: list[dict[str, Any]]) -> None:
        if reload is not None:
            await reload()
            return
        try:
            state.count = len(await actor.inbox())
        except Exception:  # the badge is decoration; the inbox page shows the errors
            return
    live_updates(c, ALL, changed, accept=lambda m: m.get("event") in INBOX_EVENTS,
                 debounce=0.2)


def register() -> None:
    from nicegui import ui

    @ui.page("/inbox")
    async def inbox_page(request: Request) -> Any:
        actor = await page_actor(request)
        if actor is None:
            return to_login(request)
        with frame(actor, "Inbox", active="/inbox"):
            ui.add_head_html('<link rel="stylesheet" href="/static/operate.css">')
            wanted = request.query_params.get("request") or request.query_params.get("id")
            sig = request.query_params.get("sig")
            c = container()
            if wanted and sig and not verify_link(c.settings, wanted, sig):
                ui.notify("This link has expired or is not valid; showing your inbox.",
                          type="warning")
            await Inbox(actor, c, wanted).render()
        return None


class Inbox:
    def __init__(self, actor: Any, c: Any, wanted: str | None = None) -> None:
        self.actor, self.c = actor, c
        self.wanted = wanted
        self.tab = "mine"
        self.chosen = False  # the user picked a tab: keep it even when it is empty
        self.items: list[QueueItem] = []
        self.selected: str | None = None
        self.panel: DecisionPanel | None = None
        self._lock = asyncio.Lock()

    async def render(self) -> None:
        from nicegui import ui

        with ui.row().classes("w-full items-center justify-between"):
            ui.label("Inbox").classes("text-2xl font-semibold").props('data-testid="inbox-title"')
            ui.html('Keys: <span class="kbd">j</span>/<span class="kbd">k</span> move · '
                    '<span class="kbd">a</span> approve · <span class="kbd">r</span> reject · '
                    '<span class="kbd">c</span> request changes', sanitize=False).classes(
                "text-xs text-slate-500")
        async with self._lock:  # listening first: nothing asked meanwhile is missed
            live_updates(self.c, ALL, self._on_events,
                         accept=lambda m: m.get("event") in INBOX_EVENTS, debounce=0.2)
            await self._draw()
        ui.keyboard(on_key=self._key)

    async def _draw(self) -> None:
        from nicegui import ui

        await self._reload()
        with ui.row().classes("w-full no-wrap items-start gap-4"):
            with ui.column().classes("w-96 shrink-0 gap-2"):
                self.queue = ui.refreshable(self._queue)
                self.queue()
            with ui.column().classes("grow min-w-0 gap-3"):
                self.request = ui.refreshable(self._request)
                await self.request()
                # the decision panel stays while the selection changes (a click on its
                # buttons during the switch then acts on the request just selected)
                self.panel_card = ui.card().classes("w-full p-4 gap-2")
                self._sync_panel()
                self.context = ui.refreshable(self._context_part)
                await self.context()

    async def _reload(self) -> None:
        self.items = await load_queue(self.actor, self.c,
                                      everyone=self.tab == "all" and self.actor.p.is_admin)
        if self.wanted:
            match = next((q for q in self.items if q.id == self.wanted), None)
            if match is None and self.tab != "all":
                mine = await load_queue(self.actor, self.c)
                match = next((q for q in mine if q.id == self.wanted), None)
                if match is not None:
                    self.items = mine
            if match is not None:
                self.tab, self.selected = match.tab, match.id
        if not self.chosen and not self._shown():
            self.tab = next((t for t in ("mine", "delegated", "teams")
                             if any(q.tab == t for q in self.items)), self.tab)
        shown = self._shown()
        if self.selected not in {q.id for q in shown}:
            self.selected = shown[0].id if shown else None

    def _shown(self) -> list[QueueItem]:
        return [q for q in self.items if q.tab == self.tab]

    async def _on_events(self, _batch: list[dict[str, Any]]) -> None:
        async with self._lock:
            before = self.selected
            await self._reload()
            self.queue.refresh()
            if self.selected != before or self.selected is None:
                await self._show_selected()

    async def _switch(self, tab: str) -> None:
        if tab == self.tab:
            return
        self.tab, self.wanted, self.chosen = tab, None, True
        await self._reload()
        self.queue.refresh()
        await self._show_selected()

    async def _pick(self, approval_id: str) -> None:
        self.selected, self.wanted = approval_id, None
        self._sync_panel()  # first, before anything awaits: the buttons act on this one now
        self.queue.refresh()
        await self._show_selected()

    async def _show_selected(self) -> None:
        self._sync_panel()
        await self.request.refresh()
        await self.context.refresh()

    def _current(self) -> QueueItem | None:
        return next((x for x in self.items if x.id == self.selected), None)

    def _sync_panel(self) -> None:
        q = self._current()
        self.panel_card.set_visibility(q is not None)
        if q is None:
            return
        if self.panel is None:  # made on the first selection, then kept
            with self.panel_card:
                self.panel = DecisionPanel(self.actor, self.c, q.row, self._decided)
                self.panel.render()
        else:
            self.panel.set_approval(q.row)

    def _queue(self) -> None:
        from nicegui import ui

        counts = {t: sum(1 for q in self.items if q.tab == t) for t in TABS}
        with ui.tabs(value=self.tab, on_change=lambda e: self._switch(e.value)).props(
                'dense no-caps data-testid="inbox-tabs"').classes("w-full"):
            for key, label in TABS.items():
                if key == "all" and not self.actor.p.is_admin:
                    continue
                ui.tab(key, f"{label} ({counts[key]})" if key != "all" or self.tab == "all"
                       else label).props(f'data-testid="inbox-tab-{key}"')
        shown = self._shown()
        if not shown:
            with ui.column().classes("w-full p-4 items-start gap-1").props(
                    'data-testid="inbox-empty"'):
                ui.label("Nothing waiting for you here.").classes("font-medium")
                ui.label("Requests assigned to you, your teams or delegated to you appear "
                         "here as soon as a process asks.").classes("text-sm text-slate-500")
            return
        now = self.c.runtime.clock()
        with ui.column().classes("w-full gap-1").props('role="listbox" data-testid="inbox-list"'):
            for q in shown:
                selected = q.id == self.selected
                with ui.card().classes("inbox-item w-full p-2 gap-0" + (
                        " selected" if selected else "")).props(
                        f'tabindex="0" role="option" aria-selected="{str(selected).lower()}" '
                        f'data-testid="inbox-item-{q.id}"').on(
                        "click", lambda x=q.id: self._pick(x)).on(
                        "keydown.enter", lambda x=q.id: self._pick(x)):
                    ui.label(q.row.title).classes("font-medium")
                    ui.label(f"{q.row.process_name} · {q.row.step_id}" + (
                        f" · started by {q.row.requested_by}" if q.row.requested_by else "")) \
                        .classes("text-xs text-slate-500")
                    due = until(q.row.deadline, now)
                    with ui.row().classes("gap-3 text-xs"):
                        ui.label(due).classes("inbox-overdue" if "overdue" in due else "")
                        ui.label(f"priority {q.priority}")
                        if q.row.required_approvals > 1:
                            ui.label(f"{len(q.decisions)} of {q.row.required_approvals} "
                                     "decided")

    async def _request(self) -> None:
        from nicegui import ui

        q = self._current()
        if q is None:
            if self.wanted:
                ui.label("That request is not waiting for you: it may be decided already or "
                         "assigned to someone else.").props('data-testid="inbox-not-found"')
            return
        a = q.row
        with ui.card().classes("w-full p-4 gap-2").props(f'data-testid="request-{a.id}"'):
            ui.label(a.title).classes("text-xl font-semibold").props(
                'data-testid="request-title"')
            with ui.row().classes("gap-3 text-sm text-slate-600"):
                ui.link(f"{a.process_name} · execution {a.execution_id[:8]}",
                        f"/executions/{a.execution_id}")
                ui.label(until(a.deadline, self.c.runtime.clock()))
            if a.description:
                ui.markdown(a.description).classes("w-full")
            for i, artifact in enumerate(a.artifacts or []):
                with ui.card().classes("w-full p-3 bg-slate-50").props(
                        f'data-testid="artifact-{i}"'):
                    ui.markdown(str(artifact)).classes("artifact-md w-full")

    async def _context_part(self) -> None:
        q = self._current()
        if q is not None:
            await self._context(q)

    async def _context(self, q: QueueItem) -> None:
        from nicegui import ui

        a = q.row
        try:
            access = await self.actor.execution(a.execution_id)
        except (Denied, NotFound):
            return
        async with self.c.db.read() as s:
            drow = await DefinitionRepository(s).get(access.row.definition_id)
            delegations = list((await s.execute(select(DelegationRow).where(
                col(DelegationRow.approval_id) == a.id))).scalars())
        d = parsed_definition(drow)
        x = access.execution
        upstream = [sid for sid in (s.id for s in d.steps) if sid in d.ancestors(a.step_id)]
        hidden = [] if access.scope is Scope.FULL else [
            s.id for s in d.steps if s.id not in upstream and s.id not in access.approval_steps]
        with ui.card().classes("w-full p-2"):
            ui.label("Where this request sits in the process").classes("text-sm font-medium")
            ProcessGraph(d, {sid: st.status.value for sid, st in x.steps.items()},
                         highlight=[a.step_id], hidden=hidden, testid="inbox-graph")
        if upstream:
            with ui.expansion("What it depends on", icon="input").classes("w-full").props(
                    'data-testid="upstream"'):
                for sid in upstream:
                    st = x.steps[sid]
                    ui.label(f"{d.by_id[sid].name} ({STATUS_WORDS.get(st.status.value)})") \
                        .classes("font-medium text-sm")
                    if st.output is not None:
                        json_view(st.output, sid, testid=f"upstream-{sid}")
        if q.decisions or delegations:
            with ui.column().classes("w-full gap-1").props('data-testid="decision-history"'):
                ui.label(f"Decisions ({len(q.decisions)} so far, {a.required_approvals} "
                         "needed)").classes("text-sm font-medium")
                for dec in q.decisions:
                    ui.label(f"{dec.decided_by}: {STATUS_WORDS.get(dec.decision, dec.decision)}"
                             + (f" on behalf of {dec.on_behalf_of}" if dec.on_behalf_of else "")
                             + (f" — {dec.comment}" if dec.comment else "")).classes("text-sm")
                for dl in delegations:
                    ui.label(f"{dl.from_user} delegated to {dl.to_user}: {dl.reason}").classes(
                        "text-sm text-slate-600")

    async def _decided(self, _decision: str) -> None:
        await self._reload()
        self.queue.refresh()
        await self._show_selected()

    async def _key(self, e: Any) -> None:
        if not e.action.keydown or e.modifiers.ctrl or e.modifiers.meta or e.modifiers.alt:
            return
        name = e.key.name
        shown = self._shown()
        if name in ("j", "k") and shown:
            ids = [q.id for q in shown]
            i = ids.index(self.selected) if self.selected in ids else -1
            i = min(i + 1, len(ids) - 1) if name == "j" else max(i - 1, 0)
            await self._pick(ids[i])
        elif self.panel is not None and self._current() is not None and name in ("a", "r", "c"):
            await {"a": self.panel.approve, "r": self.panel.reject,
                   "c": self.panel.request_changes}[name]()
