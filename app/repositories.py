"""Repositories: explicit mappers between rows and domain objects, inside a given session."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.sqlite_fast import FastStatement, first
from app.tables import AgentRow, DefinitionRow, EventRow, ExecutionRow, StepRunRow, WakeupRow
from engine.definition import ProcessDefinition
from engine.events import Event, ExecutionCreated, LoopedBack, event_from_dict
from engine.execution import ProcessExecution
from engine.loader import load_definition

__all__ = [
    "ConcurrentUpdate",
    "DefinitionRepository",
    "ExecutionRepository",
    "ExecutionStore",
    "parsed_definition",
]


class ConcurrentUpdate(RuntimeError):
    """Another transaction changed the execution first (optimistic version mismatch)."""


_PARSED: dict[tuple[str, str], ProcessDefinition] = {}


def parsed_definition(row: DefinitionRow) -> ProcessDefinition:
    """The typed definition of a row, cached by id and last change (a published version's
    data never changes; a draft's cache entry is replaced when it is edited)."""
    key = (row.id, str(row.updated_at))
    definition = _PARSED.get(key)
    if definition is None:
        if len(_PARSED) > 1024:
            _PARSED.clear()
        definition = _PARSED[key] = load_definition(row.data)
    return definition


class DefinitionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def get(self, definition_id: str) -> DefinitionRow | None:
        return await self.s.get(DefinitionRow, definition_id)

    async def find(self, name: str, version: str | None = None,
                   statuses: Sequence[str] = ("published",)) -> DefinitionRow | None:
        """A named version, or the newest version with one of `statuses`."""
        q = select(DefinitionRow).where(DefinitionRow.name == name)
        if version is not None:
            q = q.where(DefinitionRow.version == version)
        else:
            q = q.where(DefinitionRow.status.in_(statuses))  # type: ignore[attr-defined]
        q = q.order_by(DefinitionRow.version_major.desc(),  # type: ignore[attr-defined]
                       DefinitionRow.version_minor.desc())  # type: ignore[attr-defined]
        return (await self.s.execute(q.limit(1))).scalars().first()

    async def list(self) -> list[DefinitionRow]:
        q = select(DefinitionRow).order_by(DefinitionRow.name,
                                           DefinitionRow.version_major.desc(),  # type: ignore
                                           DefinitionRow.version_minor.desc())  # type: ignore
        return list((await self.s.execute(q)).scalars())

    def add(self, row: DefinitionRow) -> None:
        self.s.add(row)


class ExecutionRepository:
    def __init__(self, session: AsyncSession, lease_seconds: float = 15.0) -> None:
        self.s = session
        self.lease = timedelta(seconds=lease_seconds)

    async def get_row(self, execution_id: str, for_update: bool = False) -> ExecutionRow | None:
        q = select(ExecutionRow).where(ExecutionRow.id == execution_id)
        if for_update:
            q = q.with_for_update()
        return (await self.s.execute(q)).scalars().first()

    async def to_domain(self, row: ExecutionRow) -> ProcessExecution:
        return await self.rebuild(row.id, row.snapshot, row.snapshot_seq)

    async def rebuild(self, execution_id: str, snapshot: Any, snapshot_seq: int
                      ) -> ProcessExecution:
        """The current state: the stored snapshot plus the events recorded after it."""
        x = _from_snapshot(execution_id, snapshot, snapshot_seq)
        rows = await self.s.execute(_EVENTS_AFTER, {"key_id": execution_id,
                                                    "after": snapshot_seq})
        return _replayed(x, rows)

    async def set_lease(self, execution_id: str, step_id: str, visit: int, attempt: int,
                        expires: datetime, worker: str | None = None) -> bool:
        values: dict[str, Any] = {"lease_expires_at": expires}
        if worker:
            values["worker"] = worker
        result = await self.s.execute(
            update(StepRunRow).where(StepRunRow.execution_id == execution_id,
                                     StepRunRow.step_id == step_id, StepRunRow.visit == visit,
                                     StepRunRow.attempt == attempt,
                                     StepRunRow.status == "running")
            .values(**values).execution_options(synchronize_session=False))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def events(self, execution_id: str) -> list[EventRow]:
        q = select(EventRow).where(EventRow.execution_id == execution_id).order_by(
            EventRow.seq)  # type: ignore[arg-type]
        return list((await self.s.execute(q)).scalars())

    async def step_runs(self, execution_id: str) -> list[StepRunRow]:
        q = select(StepRunRow).where(StepRunRow.execution_id == execution_id).order_by(
            StepRunRow.id)  # type: ignore[arg-type]
        return list((await self.s.execute(q)).scalars())

    async def expired_leases(self, now: datetime, limit: int = 200) -> list[StepRunRow]:
        """Running attempts whose worker stopped renewing the lease."""
        q = select(StepRunRow).where(StepRunRow.status == "running",
                                     StepRunRow.lease_expires_at < now).limit(limit)
        return list((await self.s.execute(q)).scalars())

    async def ids_with_status(self, statuses: Sequence[str], limit: int = 10_000
                              ) -> list[tuple[str, datetime | None]]:
        q = select(ExecutionRow.id, ExecutionRow.updated_at).where(
            ExecutionRow.status.in_(statuses)).limit(limit)  # type: ignore[attr-defined]
        return [(i, u) for i, u in (await self.s.execute(q)).all()]

    async def count_by_status(self) -> dict[str, int]:
        q = select(ExecutionRow.status, func.count()).group_by(ExecutionRow.status)
        return {status: n for status, n in (await self.s.execute(q)).all()}


class ExecutionStore:
    """The writes of a transition, on a synchronous session: `Database.transact` runs them
    in one thread hop on SQLite and in the async session's greenlet on PostgreSQL."""

    def __init__(self, session: Session, lease_seconds: float = 15.0) -> None:
        self.s = session
        self.lease = timedelta(seconds=lease_seconds)

    def lock_head(self, execution_id: str) -> Head | None:
        """(id, definition_id, version, snapshot_seq) locked for update: the hot path of
        every transition, so plain columns, no ORM object and no snapshot."""
        row = first(_LOCK.run(self.s, [{"key_id": execution_id}]))
        return None if row is None else Head(*row)

    def current(self, execution_id: str) -> ProcessExecution:
        """The stored snapshot plus the events recorded after it."""
        snapshot, snapshot_seq = self.s.execute(_SNAPSHOT, {"key_id": execution_id}).one()
        x = _from_snapshot(execution_id, snapshot, snapshot_seq)
        return _replayed(x, self.s.execute(_EVENTS_AFTER, {"key_id": execution_id,
                                                           "after": snapshot_seq}))

    def definition(self, definition_id: str) -> DefinitionRow | None:
        return self.s.get(DefinitionRow, definition_id)

    def create(self, x: ProcessExecution, definition_id: str, events: Sequence[Event],
               now: datetime, retry_of: str | None = None, priority: str = "normal",
               owner_team: str | None = None) -> int:
        """Insert a new execution's row (version 1, its full snapshot), its events and step
        runs: one INSERT each, where an ORM `add` + `flush` and the first `save` cost about
        four times as much. Returns the snapshot sequence stored."""
        created = next(e for e in events if isinstance(e, ExecutionCreated))
        values = _row_values(x, now)
        values.update(id=x.id, definition_id=definition_id, process_name=x.process_name,
                      process_version=x.process_version, version=1, input=x.input,
                      snapshot=x.to_dict(), snapshot_seq=x.event_count, retry_of=retry_of,
                      priority=priority, triggered_by=created.triggered_by,
                      started_by=created.started_by, parent_id=created.parent_id,
                      parent_step_id=created.parent_step_id, created_at=x.created_at,
                      owner_team=owner_team)
        _INSERT.run(self.s, [values])
        self._append(x, events)
        return x.event_count

    def save(self, x: ProcessExecution, events: Sequence[Event], expected_version: int,
             now: datetime, snapshot_seq: int) -> int:
        """Write the new state's columns, its events and step runs; refuse a stale version.
        The full snapshot is rewritten only every SNAPSHOT_EVERY events and at the end.
        Returns the snapshot sequence now stored."""
        values = _row_values(x, now)
        values.update(new_version=expected_version + 1, key_id=x.id,
                      key_version=expected_version)
        statement = _SAVE
        if x.status.is_terminal or x.event_count - snapshot_seq >= SNAPSHOT_EVERY:
            values.update(snapshot=x.to_dict(), snapshot_seq=x.event_count)
            statement, snapshot_seq = _SAVE_SNAPSHOT, x.event_count
        result = statement.run(self.s, [values])
        if result.rowcount != 1:
            raise ConcurrentUpdate(f"execution {x.id} changed concurrently")
        self._append(x, events)
        return snapshot_seq

    def _append(self, x: ProcessExecution, events: Sequence[Event]) -> None:
        """The events just recorded (the last of `x`'s) and the step runs they touched."""
        first_seq = x.event_count - len(events) + 1
        _EVENT_INSERT.run(self.s, [
            {"execution_id": x.id, "seq": first_seq + i, "name": e.name,
             "step_id": getattr(e, "step_id", None) or None, "data": e.to_dict(), "at": e.at}
            for i, e in enumerate(events)])
        self._write_step_runs(x, _touched_steps(events))

    def add_wakeup(self, execution_id: str, step_id: str, kind: str, key: str,
                   due_at: datetime, now: datetime) -> None:
        existing = self.s.execute(_wakeup_query(execution_id, step_id, kind, key)
                                  ).scalars().first()
        if existing is None:
            self.s.add(WakeupRow(execution_id=execution_id, step_id=step_id, kind=kind,
                                 key=key, due_at=due_at, created_at=now))
        else:
            existing.due_at, existing.done = due_at, False

    def _write_step_runs(self, x: ProcessExecution, step_ids: Iterable[str]) -> None:
        """One upsert per attempt of each touched step (no read needed)."""
        rows = []
        for step_id in step_ids:
            for a in x.steps[step_id].attempts:
                lease = None if a.finished_at is not None else a.started_at + self.lease
                rows.append({"execution_id": x.id, "step_id": step_id, "visit": a.visit,
                             "attempt": a.number, "status": a.status,
                             "started_at": a.started_at, "finished_at": a.finished_at,
                             "error_code": a.error_code, "error_message": a.error_message,
                             "cost": str(a.cost), "tokens": a.tokens, "worker": a.worker,
                             "lease_expires_at": lease})
        if rows:
            _step_run_upsert(_dialect(self.s)).run(self.s, rows)


class WakeupRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def add(self, execution_id: str, step_id: str, kind: str, key: str,
                  due_at: datetime, now: datetime) -> None:
        existing = (await self.s.execute(_wakeup_query(execution_id, step_id, kind, key)
                                         )).scalars().first()
        if existing is None:
            self.s.add(WakeupRow(execution_id=execution_id, step_id=step_id, kind=kind,
                                 key=key, due_at=due_at, created_at=now))
        else:
            existing.due_at, existing.done = due_at, False

    async def due(self, now: datetime, limit: int = 500) -> list[WakeupRow]:
        q = select(WakeupRow).where(WakeupRow.done == False,  # noqa: E712
                                    WakeupRow.due_at <= now).order_by(
            WakeupRow.due_at).limit(limit)  # type: ignore[arg-type]
        return list((await self.s.execute(q)).scalars())

    async def mark_done(self, execution_id: str, step_id: str, kind: str) -> None:
        await self.s.execute(update(WakeupRow).where(
            WakeupRow.execution_id == execution_id, WakeupRow.step_id == step_id,
            WakeupRow.kind == kind).values(done=True))


class AgentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def get(self, name: str) -> AgentRow | None:
        return await self.s.get(AgentRow, name)

    async def list(self) -> list[AgentRow]:
        return list((await self.s.execute(select(AgentRow).order_by(AgentRow.name))).scalars())

    def add(self, row: AgentRow) -> None:
        self.s.add(row)


class Head(NamedTuple):
    """An execution's row as a transition first reads (and locks) it."""

    id: str
    definition_id: str
    version: int
    snapshot_seq: int


_EVENT_COLUMNS = ("execution_id", "seq", "name", "step_id", "data", "at")
_EVENT_INSERT = FastStatement(EventRow.__table__.insert(),  # type: ignore[attr-defined]
                              _EVENT_COLUMNS)
_EXECUTIONS = ExecutionRow.__table__  # type: ignore[attr-defined]
_INSERT = FastStatement(_EXECUTIONS.insert(), [c.key for c in _EXECUTIONS.columns])
SNAPSHOT_EVERY = 32
_COLUMNS = ("status", "outputs", "cost", "tokens", "error_code", "error_message", "started_at",
            "finished_at", "updated_at")


def _save_statement(*extra: str) -> Any:
    return (update(_EXECUTIONS)
            .where(_EXECUTIONS.c.id == bindparam("key_id"),
                   _EXECUTIONS.c.version == bindparam("key_version"))
            .values(version=bindparam("new_version"),
                    **{name: bindparam(name) for name in (*_COLUMNS, *extra)}))


_SAVE = FastStatement(_save_statement())
_SAVE_SNAPSHOT = FastStatement(_save_statement("snapshot", "snapshot_seq"))
_LOCK = FastStatement(select(_EXECUTIONS.c.id, _EXECUTIONS.c.definition_id,
                             _EXECUTIONS.c.version, _EXECUTIONS.c.snapshot_seq)
                      .where(_EXECUTIONS.c.id == bindparam("key_id")).with_for_update())
_SNAPSHOT = select(_EXECUTIONS.c.snapshot, _EXECUTIONS.c.snapshot_seq).where(
    _EXECUTIONS.c.id == bindparam("key_id"))
_EVENTS = EventRow.__table__  # type: ignore[attr-defined]
_EVENTS_AFTER = (select(_EVENTS.c.data)
                 .where(_EVENTS.c.execution_id == bindparam("key_id"),
                        _EVENTS.c.seq > bindparam("after"))
                 .order_by(_EVENTS.c.seq))
_UPSERTS: dict[str, FastStatement] = {}
_STEP_RUN_COLUMNS = ("execution_id", "step_id", "visit", "attempt", "status", "started_at",
                     "finished_at", "error_code", "error_message", "cost", "tokens", "worker",
                     "lease_expires_at")


def _wakeup_query(execution_id: str, step_id: str, kind: str, key: str) -> Any:
    return select(WakeupRow).where(WakeupRow.execution_id == execution_id,
                                   WakeupRow.step_id == step_id, WakeupRow.kind == kind,
                                   WakeupRow.key == key)


def _from_snapshot(execution_id: str, snapshot: Any, snapshot_seq: int) -> ProcessExecution:
    x = ProcessExecution.from_dict(snapshot)
    if x.event_count != snapshot_seq:
        raise RuntimeError(f"execution {execution_id}: snapshot holds {x.event_count} "
                           f"events but claims {snapshot_seq}")
    return x


def _replayed(x: ProcessExecution, rows: Iterable[Any]) -> ProcessExecution:
    for (data,) in rows:
        x._apply(event_from_dict(data))
    return x


def _dialect(session: AsyncSession | Session) -> str:
    bind = session.bind
    return bind.dialect.name if bind is not None else "sqlite"


def _step_run_upsert(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO UPDATE for step runs, built once per dialect so it is
    compiled once. A running attempt keeps the lease its heartbeat extended."""
    if dialect in _UPSERTS:
        return _UPSERTS[dialect]
    from sqlalchemy import case

    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    table = StepRunRow.__table__  # type: ignore[attr-defined]
    stmt = insert(table)
    ex = stmt.excluded
    lease = case((ex.finished_at.is_(None),
                  func.coalesce(table.c.lease_expires_at, ex.lease_expires_at)), else_=None)
    stmt = stmt.on_conflict_do_update(
        index_elements=["execution_id", "step_id", "visit", "attempt"],
        set_={"status": ex.status, "finished_at": ex.finished_at, "error_code": ex.error_code,
              "error_message": ex.error_message, "cost": ex.cost, "tokens": ex.tokens,
              "worker": ex.worker, "lease_expires_at": lease})
    _UPSERTS[dialect] = fast = FastStatement(stmt, _STEP_RUN_COLUMNS)
    return fast


def _row_values(x: ProcessExecution, now: datetime) -> dict[str, Any]:
    error = x.error or {}
    return {
        "status": x.status.value,
        "outputs": x.outputs or None,
        "cost": str(x.cost),
        "tokens": x.tokens,
        "error_code": error.get("code"),
        "error_message": error.get("message"),
        "started_at": x.started_at,
        "finished_at": x.finished_at,
        "updated_at": now,
    }


def _touched_steps(events: Sequence[Event]) -> list[str]:
    out: dict[str, None] = {}
    for e in events:
        step_id = getattr(e, "step_id", None)
        if step_id:
            out[step_id] = None
        if isinstance(e, LoopedBack):
            out.update(dict.fromkeys(e.reset))
    return list(out)


def money(text: str | None) -> Decimal:
    return Decimal(text or "0")
