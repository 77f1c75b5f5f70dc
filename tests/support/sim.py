"""Drive an execution to the end in memory: a fake clock and scripted agents.

Used by unit and property tests of the pure engine; no I/O.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from app.definitions import validate_text
from engine.definition import ProcessDefinition, StepType
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
from engine.status import StepStatus

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)

# An agent: (step id, attempt, rendered message) -> ("ok", output) | ("fail", code)
Agent = Callable[[str, int, str], tuple[str, Any]]
# An approver: (step id, visit) -> decision, or "timeout" to let the deadline pass
Approver = Callable[[str, int], str]
# Saves and loads the execution between commands; the loaded one carries on
Checkpoint = Callable[[ProcessExecution], ProcessExecution]


def echo_agent(step_id: str, attempt: int, message: str) -> tuple[str, Any]:
    return "ok", {"response": message, "step": step_id}


def approve_all(step_id: str, visit: int) -> str:
    return "approved"


def load(text: str) -> ProcessDefinition:
    """A definition from YAML text; fails the test with every issue when it is invalid."""
    definition, issues = validate_text(textwrap.dedent(text))
    assert definition is not None, "\n".join(i.format() for i in issues)
    return definition


@dataclass
class Simulation:
    definition: ProcessDefinition
    agent: Agent = echo_agent
    approver: Approver = approve_all
    cost_per_step: Decimal = Decimal(0)
    now: datetime = T0
    log: list[Command] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    checkpoint: Checkpoint | None = None
    execution: ProcessExecution | None = None
    max_rounds: int = 10_000

    def run(self, input: dict[str, Any] | None = None) -> ProcessExecution:
        """Start and drive until nothing is left to do; returns the execution.

        Every event is kept in `events`, in order; after each command `checkpoint` (when
        given) may replace the execution with a saved and loaded copy.
        """
        x = ProcessExecution.create(self.definition, "ex-1", self.now, input or {})
        self.execution = x
        queue: list[Command] = list(x.start(self.definition, self.now))
        self.events.extend(x.pull_events())
        rounds = 0
        while queue and rounds < self.max_rounds:
            rounds += 1
            queue.sort(key=lambda c: (getattr(c, "not_before", None) or getattr(
                c, "due_at", None) or self.now))
            command = queue.pop(0)
            self.log.append(command)
            queue.extend(self._do(x, command))
            self.events.extend(x.pull_events())
            if self.checkpoint is not None:
                x = self.execution = self.checkpoint(x)
        assert rounds < self.max_rounds, "simulation did not terminate"
        return x

    def _tick(self, seconds: float = 1) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    def _do(self, x: ProcessExecution, c: Command) -> list[Command]:
        if isinstance(c, RunStep):
            return self._run_step(x, c)
        if isinstance(c, StartTimer):
            self.now = max(self.now, c.due_at or self.now)
            return x.fire_timer(self.definition, c.step_id, self._tick())
        if isinstance(c, RequestApproval):
            return self._decide(x, c)
        if isinstance(c, RunCompensation):
            x.compensation_finished(c.step_id, True, "compensated", self._tick())
            return []
        if isinstance(c, CancelStep | ApprovalTimeoutAction):
            return []
        raise AssertionError(f"unexpected command {c}")

    def _run_step(self, x: ProcessExecution, c: RunStep) -> list[Command]:
        d = self.definition
        if c.not_before and c.not_before > self.now:
            self.now = c.not_before
        if not x.begin_attempt(c.step_id, c.attempt, self._tick()):
            return []
        step = d.step(c.step_id)
        if step.type is StepType.SUB_PROCESS:
            child = f"child-{c.step_id}"
            commands = x.sub_process_started(d, c.step_id, c.attempt, child, self._tick())
            if getattr(step.spec, "wait_for_completion", True):
                commands += x.sub_process_finished(d, c.step_id, child, "completed",
                                                   {"done": True}, self._tick())
            return commands
        message = x.rendered(d, c.step_id).message
        kind, value = self.agent(c.step_id, c.attempt, message)
        if kind == "ok":
            return x.complete_step(d, c.step_id, c.attempt, value, self._tick(),
                                   cost=self.cost_per_step)
        return x.fail_step(d, c.step_id, c.attempt, value, f"{value} from agent",
                           self._tick(), rand=lambda: 0.5)

    def _decide(self, x: ProcessExecution, c: RequestApproval) -> list[Command]:
        if x.step_state(c.step_id).status is not StepStatus.WAITING_APPROVAL:
            return []  # cancelled meanwhile: the approver finds nothing left to decide
        visit = x.step_state(c.step_id).visits
        decision = self.approver(c.step_id, visit)
        if decision == "timeout":
            self.now = max(self.now, c.deadline or self.now)
            return x.approval_timed_out(self.definition, c.step_id, self._tick())
        return x.decide_approval(self.definition, c.step_id, decision, "alice", self._tick(),
                                 comment=f"{decision} on visit {visit}")


# --- explicit driving for scenario tests: the test decides every result -------------------


def started(definition: ProcessDefinition, input: dict[str, Any] | None = None,
            now: datetime = T0) -> tuple[ProcessExecution, list[Command]]:
    """A new execution, started; its commands; and its events left to pull."""
    x = ProcessExecution.create(definition, "ex-1", now, input or {})
    return x, x.start(definition, now)


def succeed(x: ProcessExecution, definition: ProcessDefinition, step_id: str,
            output: Any = None, now: datetime = T0, **kwargs: Any) -> list[Command]:
    """Run the next attempt of a queued or retrying step and complete it."""
    attempt = x.steps[step_id].attempt + 1
    assert x.begin_attempt(step_id, attempt, now), f"{step_id} could not begin"
    return x.complete_step(definition, step_id, attempt, {} if output is None else output,
                           now, **kwargs)


def fail(x: ProcessExecution, definition: ProcessDefinition, step_id: str, code: str,
         now: datetime = T0, **kwargs: Any) -> list[Command]:
    """Run the next attempt of a queued or retrying step and fail it with `code`."""
    attempt = x.steps[step_id].attempt + 1
    assert x.begin_attempt(step_id, attempt, now), f"{step_id} could not begin"
    return x.fail_step(definition, step_id, attempt, code, f"{code} happened", now, **kwargs)


def statuses(x: ProcessExecution) -> dict[str, str]:
    return {step_id: st.status.value for step_id, st in x.steps.items()}


def names(x: ProcessExecution) -> list[str]:
    """Names of the events recorded since the last pull."""
    return [e.name for e in x.pull_events()]
