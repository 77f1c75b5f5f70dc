"""Transitions: load for update → pure decision → write state, events and step runs in one
transaction → commit → enqueue jobs and publish events. A crash between commit and enqueue
is repaired by the sweep, which re-dispatches from the database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.db import Database
from app.repositories import (
    ConcurrentUpdate,
    DefinitionRepository,
    ExecutionRepository,
    ExecutionStore,
    parsed_definition,
)
from app.tables import ExecutionRow
from engine.definition import ProcessDefinition
from engine.events import Event
from engine.execution import (
    ApprovalTimeoutAction,
    CancelStep,
    Command,
    ProcessExecution,
    RequestApproval,
    RunCompensation,
    RunStep,
    StartTimer,
)

__all__ = ["Clock", "Dispatcher", "ExecutionNotFound", "Outcome", "Runtime", "new_id", "utcnow"]

Decide = Callable[[ProcessExecution, ProcessDefinition, datetime], list[Command] | None]
Prepare = Callable[[Any, ProcessExecution, datetime], Awaitable[None]]
# rows kept in step with executions: synchronous, inside the transition's transaction
Hook = Callable[[Session, ProcessExecution, ProcessDefinition, Sequence[Command],
                 Sequence[Event], datetime], None]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


Clock = Callable[[], datetime]
_PINNED: dict[str, ProcessDefinition] = {}
STATE_CACHE_SIZE = 2000


class ExecutionNotFound(LookupError):
    def __init__(self, execution_id: str) -> None:
        super().__init__(f"no execution with id '{execution_id}'")
        self.execution_id = execution_id


class Dispatcher(Protocol):
    """Where commands become jobs and events become messages (arq + Redis in production)."""

    async def dispatch(self, x: ProcessExecution, commands: Sequence[Command]) -> None: ...

    async def publish(self, execution_id: str, events: Sequence[Event]) -> None: ...

    async def notify_parent(self, x: ProcessExecution) -> None: ...


@dataclass
class Outcome:
    execution: ProcessExecution
    definition: ProcessDefinition
    commands: list[Command] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


class Runtime:
    """Applies decisions to stored executions, durably, one transaction each."""

    def __init__(self, db: Database, dispatcher: Dispatcher, clock: Clock = utcnow,
                 lease_seconds: float = 15.0) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self.clock = clock
        self.lease_seconds = lease_seconds
        # per-process copies of live executions: (version, snapshot seq, state)
        self._states: dict[str, tuple[int, int, ProcessExecution]] = {}
        # rows other modules keep in step with executions, written in the same transaction
        self.hooks: list[Hook] = []
        # called after commit with (execution, events): outbound webhooks and the like
        self.observers: list[Callable[[ProcessExecution, Sequence[Event]], Awaitable[None]]] = []

    async def transition(self, execution_id: str, decide: Decide,
                         dispatch: bool = True, prepare: Prepare | None = None) -> Outcome:
        """Run `decide` on the current state and store what it recorded. `prepare` runs
        first in the same transaction (e.g. to check and record an approval decision)."""
        for attempt in range(8):
            try:
                outcome = await self._transition_once(execution_id, decide, prepare)
                break
            except (ConcurrentUpdate, OperationalError):
                if attempt == 7:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))
        if dispatch:
            await self.after_commit(outcome)
        return outcome

    async def _transition_once(self, execution_id: str, decide: Decide,
                               prepare: Prepare | None = None) -> Outcome:
        try:
            if prepare is None:
                outcome, cached = await self.db.transact(
                    lambda s: self._apply(s, self._load(s, execution_id), decide),
                    key=execution_id)
            else:  # `prepare` is async: the session is async, the writes the same
                async with self.db.write() as s:
                    loaded = await s.run_sync(self._load, execution_id)
                    await prepare(s, loaded.execution, loaded.now)
                    outcome, cached = await s.run_sync(self._apply, loaded, decide)
        except BaseException:
            self._states.pop(execution_id, None)  # the copy may hold uncommitted changes
            raise
        self._remember(execution_id, cached)
        return outcome

    def _load(self, s: Session, execution_id: str) -> _Loaded:
        """Lock the execution and take its current state (inside the transaction)."""
        store = ExecutionStore(s, self.lease_seconds)
        head = store.lock_head(execution_id)
        if head is None:
            raise ExecutionNotFound(execution_id)
        definition = self._definition(s, head)
        known = self._states.get(execution_id)
        if known is not None and known[0] == head.version:
            x = known[2]  # this process's copy is still current
        else:
            x = store.current(execution_id)
        return _Loaded(head, definition, x, self.clock())

    def _apply(self, s: Session, loaded: _Loaded, decide: Decide
               ) -> tuple[Outcome, tuple[int, int, ProcessExecution]]:
        """Decide and store what the decision recorded (inside the transaction)."""
        head, definition, x, now = loaded.head, loaded.definition, loaded.execution, loaded.now
        commands = decide(x, definition, now) or []
        events = x.pull_events()
        version, seq = head.version, head.snapshot_seq
        if events:
            seq = ExecutionStore(s, self.lease_seconds).save(x, events, version, now, seq)
            self._in_transaction(s, x, definition, commands, events, now)
            version += 1
        return Outcome(x, definition, list(commands), events), (version, seq, x)

    def _remember(self, execution_id: str, entry: Any) -> None:
        _version, _seq, x = entry
        if x.status.is_terminal:
            self._states.pop(execution_id, None)
            return
        if len(self._states) >= STATE_CACHE_SIZE:
            self._states.pop(next(iter(self._states)))
        self._states[execution_id] = entry

    async def create(self, x: ProcessExecution, definition_id: str, definition: ProcessDefinition,
                     retry_of: str | None = None) -> Outcome:
        """Store a new execution and start it in the same transaction."""
        def store(s: Session) -> tuple[Outcome, int]:
            now = self.clock()
            commands = x.start(definition, now)
            events = x.pull_events()
            repo = ExecutionStore(s, self.lease_seconds)
            seq = repo.create(x, definition_id, events, now, retry_of,
                              priority=definition.config.priority, owner_team=definition.owner)
            self._in_transaction(s, x, definition, commands, events, now)
            return Outcome(x, definition, commands, events), seq

        outcome, seq = await self.db.transact(store, key=x.id)
        self._remember(x.id, (1, seq, x))
        await self.after_commit(outcome)
        return outcome

    async def after_commit(self, outcome: Outcome) -> None:
        if outcome.commands:
            await self.dispatcher.dispatch(outcome.execution, outcome.commands)
        if outcome.events:
            await self.dispatcher.publish(outcome.execution.id, outcome.events)
            for observer in self.observers:
                await observer(outcome.execution, outcome.events)
            x = outcome.execution
            if x.parent_id and x.status.is_terminal and any(
                    e.name.startswith("execution_") for e in outcome.events):
                await self.dispatcher.notify_parent(x)

    async def definition_for(self, s: Any, row: Any) -> ProcessDefinition:
        """The pinned definition. Cached by id: a version used by an execution never changes
        (the definition service refuses to edit it)."""
        cached = _PINNED.get(row.definition_id)
        if cached is not None:
            return cached
        definition_row = await DefinitionRepository(s).get(row.definition_id)
        if definition_row is None:  # a foreign key makes this impossible short of corruption
            raise LookupError(f"execution {row.id} pins a missing definition")
        if len(_PINNED) > 2048:
            _PINNED.clear()
        _PINNED[row.definition_id] = parsed = parsed_definition(definition_row)
        return parsed

    def _definition(self, s: Session, row: Any) -> ProcessDefinition:
        """`definition_for` inside a synchronous transaction."""
        cached = _PINNED.get(row.definition_id)
        if cached is not None:
            return cached
        definition_row = ExecutionStore(s).definition(row.definition_id)
        if definition_row is None:
            raise LookupError(f"execution {row.id} pins a missing definition")
        if len(_PINNED) > 2048:
            _PINNED.clear()
        _PINNED[row.definition_id] = parsed = parsed_definition(definition_row)
        return parsed

    async def load(self, execution_id: str) -> tuple[ExecutionRow, ProcessExecution]:
        """The stored row and state, read without locks (pages, CLI, API)."""
        async with self.db.read() as s:
            repo = ExecutionRepository(s)
            row = await repo.get_row(execution_id)
            if row is None:
                raise ExecutionNotFound(execution_id)
            return row, await repo.to_domain(row)

    def _in_transaction(self, s: Session, x: ProcessExecution, definition: ProcessDefinition,
                        commands: Sequence[Command], events: Sequence[Event],
                        now: datetime) -> None:
        _record_wakeups(ExecutionStore(s), x, commands, now)
        for hook in self.hooks:
            hook(s, x, definition, commands, events, now)


@dataclass
class _Loaded:
    head: Any  # (id, definition_id, version, snapshot_seq), locked
    definition: ProcessDefinition
    execution: ProcessExecution
    now: datetime


def _record_wakeups(store: ExecutionStore, x: ProcessExecution, commands: Sequence[Command],
                    now: datetime) -> None:
    """Due times go to the database too, so a lost deferred job is found by the sweep."""
    for c in commands:
        if isinstance(c, RunStep) and c.not_before is not None:
            store.add_wakeup(x.id, c.step_id, "retry", str(c.attempt), c.not_before, now)
        elif isinstance(c, StartTimer) and c.due_at is not None:
            store.add_wakeup(x.id, c.step_id, "timer", str(x.steps[c.step_id].visits),
                             c.due_at, now)
        elif isinstance(c, RequestApproval) and c.deadline is not None:
            store.add_wakeup(x.id, c.step_id, "approval_timeout",
                             str(x.steps[c.step_id].visits), c.deadline, now)

def job_id(kind: str, execution_id: str, step_id: str, *parts: object) -> str:
    """Deterministic arq job ids: a duplicate enqueue is refused by arq."""
    return ":".join([kind, execution_id, step_id, *map(str, parts)])


def command_jobs(x: ProcessExecution, commands: Sequence[Command]
                 ) -> list[tuple[str, str, tuple[Any, ...], datetime | None]]:
    """(function, job id, args, defer until) for every command that becomes a job."""
    jobs: list[tuple[str, str, tuple[Any, ...], datetime | None]] = []
    for c in commands:
        visit = x.steps[c.step_id].visits if c.step_id in x.steps else 0
        if isinstance(c, RunStep):
            jobs.append(("run_step", job_id("step", x.id, c.step_id, visit, c.attempt),
                         (x.id, c.step_id, c.attempt), c.not_before))
        elif isinstance(c, StartTimer):
            jobs.append(("fire_timer", job_id("timer", x.id, c.step_id, visit),
                         (x.id, c.step_id, visit), c.due_at))
        elif isinstance(c, RequestApproval):
            jobs.append(("approval_deadline", job_id("deadline", x.id, c.step_id, visit),
                         (x.id, c.step_id, visit), c.deadline))
        elif isinstance(c, RunCompensation) and c.order == 0:
            jobs.append(("compensate", job_id("compensate", x.id, "all", x.event_count),
                         (x.id,), None))
    return jobs


def cancellations(commands: Sequence[Command]) -> list[CancelStep]:
    return [c for c in commands if isinstance(c, CancelStep)]


def timeout_actions(commands: Sequence[Command]) -> list[ApprovalTimeoutAction]:
    return [c for c in commands if isinstance(c, ApprovalTimeoutAction)]


def event_payload(execution_id: str, event: Event) -> dict[str, Any]:
    """What subscribers get for one event: its fields plus the execution id."""
    return {"execution_id": execution_id, **event.to_dict()}

