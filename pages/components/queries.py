"""Read models for the operate pages, always filtered by what the actor may see.

`app.guard.Actor.executions` is the gate's list; these helpers add what the pages need
and the gate does not offer: column-only reads (no snapshots, so 100,000 rows stay cheap),
per-process statistics, a search in input values, and first-run estimates. Their
visibility clause is the gate's (`visible_clause`): owner teams, the actor's own
executions, executions that asked the actor for a decision, and shared processes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import String, cast, func, or_, select
from sqlmodel import col

from app.security import Permission
from app.tables import AgentRow, ExecutionRow, ScheduleRow, StepRunRow
from engine.definition import (
    AgentTask,
    Approval,
    Gateway,
    Notification,
    ProcessDefinition,
    SubProcess,
    Timer,
)
from pages.components.status import duration_text, money

__all__ = ["LIST_COLUMNS", "ExecutionFilters", "PlanStep", "ProcessStats", "list_executions",
           "plan", "process_stats", "visible_clause"]

FINISHED = ("completed", "failed", "cancelled")
LIST_COLUMNS = (ExecutionRow.id, ExecutionRow.process_name, ExecutionRow.process_version,
                ExecutionRow.status, ExecutionRow.triggered_by, ExecutionRow.started_by,
                ExecutionRow.created_at, ExecutionRow.started_at, ExecutionRow.finished_at,
                ExecutionRow.cost, ExecutionRow.input, ExecutionRow.error_code,
                ExecutionRow.parent_id)


async def visible_clause(actor: Any) -> Any | None:
    """The WHERE clause limiting executions to those `actor` may see (None: all)."""
    teams = actor.policy.visible_execution_teams(actor.p)
    if teams is None:
        return None
    clauses: list[Any] = [col(ExecutionRow.started_by) == actor.p.username,
                          col(ExecutionRow.id).in_(await actor._approver_execution_ids())]
    if teams:
        clauses += [col(ExecutionRow.owner_team).in_(teams),
                    col(ExecutionRow.owner_team).is_(None)]
    shared = [n for n, t in (await actor._all_shares("process")).items()
              if any(actor.policy.has(actor.p, Permission.EXECUTION_VIEW, "\0", {k: v})
                     for k, v in t.items())]
    if shared:
        clauses.append(col(ExecutionRow.process_name).in_(shared))
    return or_(*clauses)


@dataclass
class ExecutionFilters:
    process: str | None = None
    version: str | None = None
    status: str | None = None
    triggered_by: str | None = None
    started_by: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None  # id prefix, process name, or a value in the input

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v)
                for k, v in vars(self).items() if v not in (None, "")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecutionFilters:
        out = cls()
        for k, v in data.items():
            if hasattr(out, k) and v not in (None, ""):
                setattr(out, k, datetime.fromisoformat(v) if k in ("since", "until") else v)
        return out


async def list_executions(actor: Any, c: Any, f: ExecutionFilters, limit: int = 50,
                          before: tuple[datetime, str] | None = None) -> list[Any]:
    """Visible executions, newest first, as light rows (no snapshot); keyset pagination
    with `before` = (created_at, id) of the previous page's last row."""
    q = select(*LIST_COLUMNS)
    visible = await visible_clause(actor)
    if visible is not None:
        q = q.where(visible)
    for column, value in ((ExecutionRow.status, f.status), (ExecutionRow.process_name, f.process),
                          (ExecutionRow.process_version, f.version),
                          (ExecutionRow.triggered_by, f.triggered_by),
                          (ExecutionRow.started_by, f.started_by)):
        if value:
            q = q.where(col(column) == value)
    created = col(ExecutionRow.created_at)
    if f.since is not None:
        q = q.where(created >= f.since)
    if f.until is not None:
        q = q.where(created <= f.until)
    if f.search and f.search.strip():
        term = f.search.strip()
        # JSON stored as text on SQLite and cast to text on PostgreSQL: a substring match
        # of the input's serialised form (keys and values)
        q = q.where(or_(col(ExecutionRow.id).startswith(term),
                        col(ExecutionRow.process_name).contains(term),
                        cast(ExecutionRow.input, String).contains(term)))
    if before is not None:
        q = q.where(or_(created < before[0],
                        (created == before[0]) & (col(ExecutionRow.id) < before[1])))
    q = q.order_by(created.desc(), col(ExecutionRow.id).desc()).limit(limit)
    async with c.db.read() as s:
        return list((await s.execute(q)).all())


@dataclass
class ProcessStats:
    counts: dict[str, int] = field(default_factory=dict)
    recent: list[Any] = field(default_factory=list)  # newest first: id, status, created_at
    avg_seconds: float | None = None
    avg_cost: Decimal | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def success_rate(self) -> float | None:
        finished = sum(self.counts.get(s, 0) for s in FINISHED)
        return self.counts.get("completed", 0) / finished if finished else None


async def process_stats(actor: Any, c: Any, names: Sequence[str], recent: int = 20
                        ) -> dict[str, ProcessStats]:
    """Per process: executions by status, the last `recent` runs, average duration and cost
    of the finished ones among them."""
    out = {n: ProcessStats() for n in names}
    if not names:
        return out
    visible = await visible_clause(actor)
    q = select(ExecutionRow.process_name, ExecutionRow.status, func.count()).where(
        col(ExecutionRow.process_name).in_(names)).group_by(ExecutionRow.process_name,
                                                            ExecutionRow.status)
    if visible is not None:
        q = q.where(visible)
    async with c.db.read() as s:
        for name, status, n in (await s.execute(q)).all():
            out[name].counts[status] = int(n)
        for name in names:
            if not out[name].total:
                continue
            rq = select(ExecutionRow.id, ExecutionRow.status, ExecutionRow.created_at,
                        ExecutionRow.started_at, ExecutionRow.finished_at, ExecutionRow.cost
                        ).where(col(ExecutionRow.process_name) == name)
            if visible is not None:
                rq = rq.where(visible)
            rows = (await s.execute(rq.order_by(col(ExecutionRow.created_at).desc())
                                    .limit(recent))).all()
            _averages(out[name], rows)
    return out


def _averages(stats: ProcessStats, rows: Sequence[Any]) -> None:
    stats.recent = list(rows)
    done = [r for r in rows if r.status in FINISHED and r.started_at and r.finished_at]
    if done:
        stats.avg_seconds = sum((r.finished_at - r.started_at).total_seconds()
                                for r in done) / len(done)
        total = Decimal(0)
        for r in done:
            with contextlib.suppress(InvalidOperation):
                total += Decimal(r.cost or "0")
        stats.avg_cost = total / len(done)


async def next_runs(c: Any, names: Sequence[str]) -> dict[str, list[Any]]:
    """The registered schedule triggers of these processes (with their next slot)."""
    if not names:
        return {}
    async with c.db.read() as s:
        rows = (await s.execute(select(ScheduleRow).where(
            col(ScheduleRow.process_name).in_(names)))).scalars()
        out: dict[str, list[Any]] = {}
        for r in rows:
            out.setdefault(r.process_name, []).append(r)
    return out


__all__ += ["next_runs"]


# --- first-run guidance (IT5 §3.4) ----------------------------------------------------------


@dataclass(frozen=True)
class PlanStep:
    step_id: str
    name: str
    kind: str
    words: str  # what happens, in plain words
    seconds: float | None  # estimated duration (None: depends on people or the agent)
    cost: Decimal | None
    basis: str  # "past runs", "agent settings", "" …


async def plan(c: Any, definition: ProcessDefinition) -> list[PlanStep]:
    """The steps in order with what they do and what they probably take: averages of past
    attempts of this process when there are some, else the agents' demo settings."""
    async with c.db.read() as s:
        agents = {a.name: a for a in (await s.execute(select(AgentRow))).scalars()}
        past_q = select(StepRunRow.step_id, StepRunRow.started_at, StepRunRow.finished_at,
                        StepRunRow.cost).join(
            ExecutionRow, col(ExecutionRow.id) == StepRunRow.execution_id).where(
            col(ExecutionRow.process_name) == definition.name,
            col(StepRunRow.status) == "completed").order_by(col(StepRunRow.id).desc()).limit(500)
        past: dict[str, list[tuple[float, Decimal]]] = {}
        for sid, started, finished, cost in (await s.execute(past_q)).all():
            if started and finished:
                with contextlib.suppress(InvalidOperation):
                    past.setdefault(sid, []).append(((finished - started).total_seconds(),
                                                     Decimal(cost or "0")))
    return [_plan_step(step, agents, past.get(step.id)) for step in definition.steps]


def _plan_step(step: Any, agents: dict[str, AgentRow],
               past: list[tuple[float, Decimal]] | None) -> PlanStep:
    spec = step.spec
    words, seconds, cost, basis = step.description or "", None, None, ""
    if isinstance(spec, AgentTask):
        agent = agents.get(spec.agent)
        words = words or f"Agent “{spec.agent}” works on it."
        if agent is not None and agent.kind == "demo":
            config = agent.config or {}
            seconds = float(config.get("latency", 0) or 0)
            with contextlib.suppress(InvalidOperation):
                cost = Decimal(str(config.get("cost", "0")))
            basis = "agent settings"
        elif agent is None:
            words += f" (no agent named “{spec.agent}” is registered yet)"
    elif isinstance(spec, Approval):
        who = ", ".join(map(str, spec.assignees)) or "anyone who may approve"
        need = f"{spec.required_approvals} of them" if spec.required_approvals > 1 else "one"
        words = f"Waits for {who} to decide ({need}); the deadline is " \
                f"{duration_text(step.timeout.total_seconds()) if step.timeout else '24 h'}."
    elif isinstance(spec, Gateway):
        words = "Decides at once which way to go: " + ", ".join(spec.targets) + "."
        seconds, cost = 0.0, Decimal(0)
    elif isinstance(spec, Timer):
        words = f"Waits {duration_text(spec.delay.total_seconds())}." if spec.delay else \
            f"Waits until {spec.until}."
        seconds = spec.delay.total_seconds() if spec.delay else None
    elif isinstance(spec, Notification):
        words = words or f"Sends a message by {', '.join(spec.channels)}."
        seconds, cost = 1.0, Decimal(0)
    elif isinstance(spec, SubProcess):
        words = words or f"Runs the process “{spec.process_name}” and waits for it."
    if past:
        seconds = sum(p[0] for p in past) / len(past)
        cost = sum((p[1] for p in past), Decimal(0)) / len(past)
        basis = f"average of {len(past)} past run{'s' if len(past) > 1 else ''}"
    return PlanStep(step.id, step.name, step.type.value, words, seconds, cost, basis)


def plan_totals(steps: Sequence[PlanStep]) -> tuple[str, str]:
    """(time, cost) in words for the whole plan (human waits are named, not guessed)."""
    seconds = sum(s.seconds or 0 for s in steps)
    cost = sum((s.cost or Decimal(0) for s in steps), Decimal(0))
    waits = any(s.kind == "human_approval" for s in steps)
    unknown = any(s.seconds is None and s.kind != "human_approval" for s in steps)
    time = f"about {duration_text(seconds)} of machine time" + (
        " plus the time people take to decide" if waits else "") + (
        " (some steps cannot be estimated)" if unknown else "")
    return time, f"about {money(cost)}"


__all__ += ["plan_totals"]
