"""`/dashboard`: the health of the whole system at a glance (IT5 §1.5) — what is running,
what is waiting, what fails, how busy the workers and agents are."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi import Request
from sqlalchemy import func, or_, select
from sqlmodel import col

from app.tables import ApprovalRow, ExecutionRow, StepRunRow
from pages.shell import container, frame, page_actor, to_login

__all__ = ["Health", "load_health", "register"]

ACTIVE = ("pending", "running", "waiting", "paused")
REFRESH_SECONDS = 5.0


@dataclass
class Health:
    by_status: dict[str, int] = field(default_factory=dict)
    finished_24h: int = 0
    completed_24h: int = 0
    per_process: list[dict[str, Any]] = field(default_factory=list)
    hot_spots: list[dict[str, Any]] = field(default_factory=list)
    per_hour: list[tuple[str, int, int]] = field(default_factory=list)  # hour, ok, failed
    approvals_pending: int = 0
    queue_depth: int | None = None
    worker_alive: bool | None = None

    @property
    def success_rate(self) -> float | None:
        return self.completed_24h / self.finished_24h if self.finished_24h else None


def _visible(actor: Any, q: Any) -> Any:
    teams = actor.policy.visible_execution_teams(actor.p)
    if teams is None:
        return q
    clauses: list[Any] = [col(ExecutionRow.started_by) == actor.p.username]
    if teams:
        clauses += [col(ExecutionRow.owner_team).in_(teams),
                    col(ExecutionRow.owner_team).is_(None)]
    return q.where(or_(*clauses))


async def load_health(actor: Any, c: Any, now: datetime) -> Health:
    h = Health()
    since = now - timedelta(hours=24)
    async with c.db.read() as s:
        q = _visible(actor, select(ExecutionRow.status, func.count()).group_by(
            ExecutionRow.status))
        h.by_status = {status: int(n) for status, n in (await s.execute(q)).all()}
        recent = _visible(actor, select(
            ExecutionRow.process_name, ExecutionRow.status, ExecutionRow.started_at,
            ExecutionRow.finished_at, ExecutionRow.cost).where(
            col(ExecutionRow.finished_at) >= since))
        rows = (await s.execute(recent)).all()
        failed = _visible(actor, select(
            ExecutionRow.process_name, StepRunRow.step_id, StepRunRow.error_code,
            func.count()).join(StepRunRow, col(StepRunRow.execution_id) == ExecutionRow.id)
            .where(col(StepRunRow.status) == "failed", col(StepRunRow.finished_at) >= since)
            .group_by(ExecutionRow.process_name, StepRunRow.step_id, StepRunRow.error_code)
            .order_by(func.count().desc()).limit(8))
        h.hot_spots = [{"process": p, "step": st, "error": code or "—", "failures": int(n)}
                       for p, st, code, n in (await s.execute(failed)).all()]
        h.approvals_pending = int((await s.execute(select(func.count()).select_from(
            ApprovalRow).where(col(ApprovalRow.status) == "pending"))).scalar() or 0)
    _summarise(h, rows, now)
    try:
        h.queue_depth = int(await c.redis.zcard(c.settings.queue_name))
        h.worker_alive = bool(await c.redis.exists(f"{c.settings.queue_name}:health-check"))
    except Exception:  # Redis down: the numbers from the database still show
        h.queue_depth, h.worker_alive = None, None
    return h


def _summarise(h: Health, rows: list[Any], now: datetime) -> None:
    per: dict[str, dict[str, Any]] = {}
    hours: dict[str, list[int]] = {}
    for i in range(23, -1, -1):
        hours[(now - timedelta(hours=i)).strftime("%H:00")] = [0, 0]
    for name, status, started, finished, cost in rows:
        h.finished_24h += 1
        ok = status == "completed"
        h.completed_24h += ok
        p = per.setdefault(name, {"process": name, "runs": 0, "completed": 0, "seconds": 0.0,
                                  "cost": Decimal(0)})
        p["runs"] += 1
        p["completed"] += ok
        if started and finished:
            p["seconds"] += (finished - started).total_seconds()
        with contextlib.suppress(ArithmeticError):
            p["cost"] += Decimal(cost or "0")
        key = finished.strftime("%H:00")
        if key in hours:
            hours[key][0 if ok else 1] += 1
    h.per_hour = [(k, v[0], v[1]) for k, v in hours.items()]
    h.per_process = sorted(({
        "process": p["process"], "runs": p["runs"],
        "success": f"{100 * p['completed'] / p['runs']:.0f}%",
        "avg_duration": f"{p['seconds'] / p['runs']:.1f} s",
        "cost": f"${p['cost']:.2f}"} for p in per.values()), key=lambda r: -r["runs"])


def register() -> None:
    from nicegui import ui

    @ui.page("/dashboard")
    async def dashboard(request: Request) -> Any:
        actor = await page_actor(request)
        if actor is None:
            return to_login(request)
        c = container()
        with frame(actor, "Dashboard", active="/dashboard"):
            ui.label("System health").classes("text-2xl font-semibold")
            view = ui.refreshable(_render)
            await view(actor, c)
            ui.timer(REFRESH_SECONDS, view.refresh)
        return None


async def _render(actor: Any, c: Any) -> None:
    from nicegui import ui

    h = await load_health(actor, c, c.runtime.clock())
    active = sum(h.by_status.get(s, 0) for s in ACTIVE)
    rate = "—" if h.success_rate is None else f"{100 * h.success_rate:.0f}%"
    worker = {True: "alive", False: "none running", None: "unknown (Redis down)"}[
        h.worker_alive]
    with ui.row().classes("gap-4 w-full"):
        for label, value, testid in (
                ("Active executions", active, "active"),
                ("Finished (24 h)", h.finished_24h, "finished"),
                ("Success rate (24 h)", rate, "success"),
                ("Approvals waiting", h.approvals_pending, "approvals"),
                ("Queued jobs", "—" if h.queue_depth is None else h.queue_depth, "queue"),
                ("Workers", worker, "workers")):
            with ui.card().classes("p-4 min-w-40"):
                ui.label(label).classes("text-sm text-slate-500")
                ui.label(str(value)).classes("text-2xl font-bold").props(
                    f'data-testid="health-{testid}"')
    if not h.by_status:
        ui.label("No executions yet: start a process from the catalog to see its health "
                 "here.").classes("text-slate-500")
        return
    with ui.row().classes("w-full gap-4 no-wrap"):
        ui.echart({
            "title": {"text": "Executions by status", "textStyle": {"fontSize": 14}},
            "tooltip": {"trigger": "item"},
            "series": [{"type": "pie", "radius": ["40%", "70%"],
                        "data": [{"name": k, "value": v} for k, v in sorted(
                            h.by_status.items())]}],
        }).classes("w-1/3 h-64")
        ui.echart({
            "title": {"text": "Finished per hour (24 h)", "textStyle": {"fontSize": 14}},
            "tooltip": {"trigger": "axis"}, "legend": {"bottom": 0},
            "xAxis": {"type": "category", "data": [x[0] for x in h.per_hour]},
            "yAxis": {"type": "value", "minInterval": 1},
            "series": [{"name": "completed", "type": "bar", "stack": "a",
                        "data": [x[1] for x in h.per_hour], "color": "#16a34a"},
                       {"name": "not completed", "type": "bar", "stack": "a",
                        "data": [x[2] for x in h.per_hour], "color": "#dc2626"}],
        }).classes("w-2/3 h-64")
    with ui.row().classes("w-full gap-4 no-wrap items-start"):
        with ui.column().classes("w-1/2"):
            ui.label("Processes (24 h)").classes("font-semibold")
            ui.table(columns=[{"name": k, "label": label, "field": k, "align": "left"}
                              for k, label in (("process", "Process"), ("runs", "Runs"),
                                               ("success", "Success"),
                                               ("avg_duration", "Avg duration"),
                                               ("cost", "Cost"))],
                     rows=h.per_process, row_key="process").classes("w-full").props(
                'flat bordered dense data-testid="health-processes"')
        with ui.column().classes("w-1/2"):
            ui.label("Hot spots: failing steps (24 h)").classes("font-semibold")
            if not h.hot_spots:
                ui.label("No step failed in the last 24 hours.").classes("text-slate-500")
            else:
                ui.table(columns=[{"name": k, "label": k.capitalize(), "field": k,
                                   "align": "left"}
                                  for k in ("process", "step", "error", "failures")],
                         rows=h.hot_spots, row_key="step").classes("w-full").props(
                    "flat bordered dense")
