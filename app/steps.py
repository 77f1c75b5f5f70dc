"""Running one attempt of a step that does I/O: agent tasks, notifications, sub-processes.

A job calls `StepRunner.run`; the runner marks the attempt running (which takes a lease),
does the work under the step timeout while renewing the lease, records the result, and then
runs the next ready step of the same execution inline instead of paying a queue hop. While
this worker has spare capacity (fewer than `max_parallel` attempts running), the same
transaction also begins more of the execution's queued steps, which run concurrently in the
same job: a fan-out costs one transaction per branch instead of a job and two. Their jobs,
already enqueued, find the attempt running and do nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from app.agents.base import AgentConfig, AgentError, AgentReply, AgentRequest
from app.repositories import ExecutionRepository
from app.runtime import Runtime
from engine.context import RenderedStep
from engine.definition import AgentTask, ProcessDefinition, Step, StepType
from engine.execution import Command, ProcessExecution, RunStep
from engine.status import StepStatus

__all__ = ["StepFailure", "StepRunner"]

log = logging.getLogger("trinity.steps")
DEFAULT_TIMEOUT = timedelta(minutes=5)


class StepFailure(Exception):
    """A step's work failed with an error code; `retryable` None lets the policy decide."""

    def __init__(self, code: str, message: str, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.retryable = code, message, retryable


@dataclass(frozen=True)
class Work:
    """What one attempt produced."""

    output: Any
    cost: Decimal = Decimal(0)
    tokens: int = 0
    child_id: str | None = None  # a sub-process was started: wait for it


class Agents(Protocol):
    async def call(self, agent: AgentConfig, request: AgentRequest) -> AgentReply: ...


AgentLookup = Callable[[str], Awaitable[AgentConfig | None]]
Begun = tuple[ProcessExecution, ProcessDefinition, RenderedStep, int]
Performer = Callable[[ProcessExecution, ProcessDefinition, Step, RenderedStep, int],
                     Awaitable[Work]]


class StepRunner:
    def __init__(self, runtime: Runtime, agents: Agents, lookup_agent: AgentLookup,
                 worker_name: str, lease_seconds: float = 15.0,
                 performers: dict[StepType, Performer] | None = None,
                 max_parallel: int = 10) -> None:
        self.runtime = runtime
        self.agents = agents
        self.lookup_agent = lookup_agent
        self.worker_name = worker_name
        self.lease_seconds = lease_seconds
        self.performers: dict[StepType, Performer] = {StepType.AGENT_TASK: self._agent_task}
        self.performers.update(performers or {})
        self.max_parallel = max_parallel
        self._running: dict[tuple[str, str, int], asyncio.Task[Work]] = {}
        self._chains = 0  # attempts begun or running in this runner, and room promised

    async def run(self, execution_id: str, step_id: str, attempt: int) -> None:
        """Run this attempt, then the steps it makes ready, inline."""
        begun = await self._begin(execution_id, step_id, attempt)
        if begun is not None:
            self._chains += 1
            await self._chain(begun)

    async def _chain(self, begun: Begun) -> None:
        """Run an attempt and then the next ready step, until none is left; steps begun
        beside the next one run concurrently as branches of this chain."""
        branches: list[asyncio.Task[None]] = []
        try:
            next_steps = [begun]
            while next_steps:
                first, *others = next_steps
                branches += [asyncio.create_task(self._chain(b)) for b in others]
                next_steps = await self._execute(first)
        except BaseException:  # this job is failing or being cancelled: so are its branches
            for branch in branches:
                branch.cancel()
            raise
        finally:
            self._chains -= 1
            results = await asyncio.gather(*branches, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]

    def cancel(self, execution_id: str, step_id: str, attempt: int) -> bool:
        """Stop a running attempt of this worker; True when there was one."""
        task = self._running.get((execution_id, step_id, attempt))
        if task is None or task.done():
            return False
        task.cancel()
        return True

    async def _execute(self, begun: Begun) -> list[Begun]:
        x, definition, rendered, attempt = begun
        step_id = rendered.step_id
        step = definition.step(step_id)
        key = (x.id, step_id, attempt)
        task = asyncio.create_task(self._perform(x, definition, step, rendered, attempt))
        self._running[key] = task
        heartbeat = _Heartbeat(self._heartbeat(x.id, step_id, attempt, x.steps[step_id].visits),
                               self._beat_every)
        try:
            work = await task
            record = _completer(step_id, attempt, work)
        except asyncio.CancelledError:
            if task.cancelled() and not _current_task_cancelling():
                log.info("step %s of %s cancelled", step_id, x.id)
                return []
            raise
        except StepFailure as e:
            record = _failer(step_id, attempt, e.code, e.message, e.retryable)
        finally:
            heartbeat.cancel()
            self._running.pop(key, None)
        return await self._record_and_chain(x.id, record)

    async def _record_and_chain(self, execution_id: str, record: Any) -> list[Begun]:
        """Record the result and, in the same transaction, begin the next ready step to run
        inline, and more queued steps of the execution while this worker has room (the
        other ready steps are dispatched as jobs)."""
        chained: list[tuple[RenderedStep, int]] = []
        room = max(0, self.max_parallel - self._chains)  # for branches beside the next step
        self._chains += room  # promised now: concurrent chains must not promise it too

        def decide(x: ProcessExecution, d: ProcessDefinition, now: datetime) -> list[Command]:
            chained.clear()  # a transition may be tried again after a concurrent update
            commands: list[Command] = record(x, d, now)
            ready = {c.step_id: c for c in commands
                     if isinstance(c, RunStep) and c.not_before is None}
            # the steps this result made ready first, then those whose job has not begun yet
            for step_id in [*ready, *(s for s in _queued(x) if s not in ready)]:
                if len(chained) > room:
                    break
                attempt = ready[step_id].attempt if step_id in ready else \
                    x.steps[step_id].attempt + 1
                if self._begin_inline(x, d, step_id, attempt, now, chained) and \
                        step_id in ready:
                    commands = [c for c in commands if c is not ready[step_id]]
            return commands

        try:
            outcome = await self.runtime.transition(execution_id, decide)
        finally:
            self._chains -= room
        self._chains += max(0, len(chained) - 1)  # the first goes on in this chain
        return [(outcome.execution, outcome.definition, r, attempt) for r, attempt in chained]

    def _begin_inline(self, x: ProcessExecution, d: ProcessDefinition, step_id: str,
                      attempt: int, now: datetime, chained: list[tuple[RenderedStep, int]]
                      ) -> bool:
        r = x.rendered(d, step_id)
        if not x.begin_attempt(step_id, attempt, now, self.worker_name,
                               input=r.message or None):
            return False
        chained.append((r, attempt))
        return True

    async def _begin(self, execution_id: str, step_id: str, attempt: int) -> Begun | None:
        rendered: list[RenderedStep] = []

        def begin(x: ProcessExecution, d: ProcessDefinition, now: datetime) -> None:
            rendered.clear()  # a transition may be tried again after a concurrent update
            st = x.steps.get(step_id)
            if st is None or st.status not in (StepStatus.QUEUED, StepStatus.RETRYING):
                return
            r = x.rendered(d, step_id)
            if x.begin_attempt(step_id, attempt, now, self.worker_name, input=r.message or None):
                rendered.append(r)

        outcome = await self.runtime.transition(execution_id, begin)
        if not rendered:
            return None
        return outcome.execution, outcome.definition, rendered[0], attempt

    async def _perform(self, x: ProcessExecution, definition: ProcessDefinition, step: Step,
                       rendered: RenderedStep, attempt: int) -> Work:
        performer = self.performers.get(step.type)
        if performer is None:
            raise StepFailure("INVALID_CONFIG", f"{step.type} steps cannot run here yet", False)
        timeout = (step.timeout or DEFAULT_TIMEOUT).total_seconds()
        try:
            async with asyncio.timeout(timeout):  # in this task: wait_for would add one
                return await performer(x, definition, step, rendered, attempt)
        except TimeoutError:
            raise StepFailure("TIMEOUT", f"step '{step.id}' took longer than its timeout of "
                              f"{timeout:g}s") from None

    async def _agent_task(self, x: ProcessExecution, definition: ProcessDefinition, step: Step,
                          rendered: RenderedStep, attempt: int) -> Work:
        assert isinstance(step.spec, AgentTask)
        name = rendered.agent or step.spec.agent
        agent = await self.lookup_agent(name)
        if agent is None:
            # the retry policy decides: an operator may register the agent meanwhile
            raise StepFailure("AGENT_NOT_FOUND", f"no agent named '{name}' is registered; "
                              f"add it with `trinity agents add {name} --kind …`")
        timeout = (step.timeout or DEFAULT_TIMEOUT).total_seconds()
        request = AgentRequest(
            message=_reprompt(rendered.message, x, step), execution_id=x.id, step_id=step.id,
            attempt=attempt,
            idempotency_key=f"{x.id}:{step.id}:{x.steps[step.id].visits}:{attempt}",
            context={"process": definition.name, "version": definition.version,
                     "step_name": step.name},
            model=step.spec.model, temperature=step.spec.temperature, timeout=timeout)
        try:
            reply = await self.agents.call(agent, request)
        except AgentError as e:
            raise StepFailure(e.code, e.message, e.retryable) from None
        if step.spec.output_schema:
            problem = schema_problem(reply.output, step.spec.output_schema)
            if problem:
                raise StepFailure("OUTPUT_INVALID", f"the reply does not match output_schema: "
                                  f"{problem}", True)
        return Work(reply.output, reply.cost, reply.tokens)

    @property
    def _beat_every(self) -> float:
        return max(self.lease_seconds / 3, 0.2)

    async def _heartbeat(self, execution_id: str, step_id: str, attempt: int,
                         visit: int) -> None:
        """Renew the lease now and every `_beat_every` seconds (started by `_Heartbeat` once
        the step has run that long)."""
        while True:
            expires = self.runtime.clock() + timedelta(seconds=self.lease_seconds)
            try:
                async with self.runtime.db.write() as s:
                    await ExecutionRepository(s).set_lease(execution_id, step_id, visit,
                                                           attempt, expires, self.worker_name)
            except Exception:  # a missed beat is harmless; the next one retries
                log.warning("lease renewal failed for %s/%s", execution_id, step_id,
                            exc_info=True)
            await asyncio.sleep(self._beat_every)


class _Heartbeat:
    """Runs `beats` (a coroutine) as a task once `delay` seconds have passed, until
    cancelled: most steps end before their first beat, and then no task is ever made."""

    def __init__(self, beats: Coroutine[Any, Any, None], delay: float) -> None:
        self._beats: Coroutine[Any, Any, None] | None = beats
        self._task: asyncio.Task[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(delay, self._start)

    def _start(self) -> None:
        if self._beats is not None:
            self._task = asyncio.create_task(self._beats)
            self._beats = None

    def cancel(self) -> None:
        self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
        if self._beats is not None:
            self._beats.close()  # never started: no "never awaited" warning
            self._beats = None


def schema_problem(output: Any, schema: Any) -> str | None:
    """What is wrong with an agent reply against the step's output_schema, or None."""
    import jsonschema

    value = output
    if isinstance(output, dict) and "response" in output and "response" not in (
            schema.get("properties") or {}):
        value = {k: v for k, v in output.items() if k != "response"}
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as e:
        where = "/".join(map(str, e.absolute_path))
        return f"{where + ': ' if where else ''}{e.message}"
    except jsonschema.SchemaError as e:
        return f"output_schema itself is invalid: {e.message}"
    return None


def _reprompt(message: str, x: ProcessExecution, step: Step) -> str:
    """After an OUTPUT_INVALID attempt, tell the agent what was wrong and what is wanted."""
    import json

    last = x.steps[step.id].error or {}
    if last.get("code") != "OUTPUT_INVALID" or not isinstance(step.spec, AgentTask):
        return message
    return (f"{message}\n\nYour previous reply was not accepted: {last.get('message')}.\n"
            f"Reply with only a JSON object matching this JSON Schema:\n"
            f"{json.dumps(step.spec.output_schema, indent=2)}")


def _queued(x: ProcessExecution) -> list[str]:
    """Steps waiting for their job to start (their job will find them running and stop)."""
    return [step_id for step_id, st in x.steps.items() if st.status is StepStatus.QUEUED]


def _completer(step_id: str, attempt: int, work: Work) -> Any:
    def decide(x: ProcessExecution, d: ProcessDefinition, now: datetime) -> list[Command]:
        if work.child_id is not None:
            return x.sub_process_started(d, step_id, attempt, work.child_id, now)
        return x.complete_step(d, step_id, attempt, work.output, now, work.cost, work.tokens)
    return decide


def _failer(step_id: str, attempt: int, code: str, message: str,
            retryable: bool | None) -> Any:
    def decide(x: ProcessExecution, d: ProcessDefinition, now: datetime) -> list[Command]:
        return x.fail_step(d, step_id, attempt, code, message, now, retryable=retryable)
    return decide


def _current_task_cancelling() -> bool:
    current = asyncio.current_task()
    return bool(current and current.cancelling())

