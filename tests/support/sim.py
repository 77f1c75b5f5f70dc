"""Drive an execution to the end in memory: a fake clock and scripted agents.

Used by unit and property tests of the pure engine; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from engine.definition import ProcessDefinition
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

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)

# An agent: (step id, attempt, rendered message) -> ("ok", output) | ("fail", code)
Agent = Callable[[str, int, str], tuple[str, Any]]
# An approver: (step id, visit) -> decision
Approver = Callable[[str, int], str]


def echo_agent(step_id: str, attempt: int, message: str) -> tuple[str, Any]:
    return "ok", {"response": message, "step": step_id}


@dataclass
class Simulation:
    definition: ProcessDefinition
    agent: Agent = echo_agent
    approver: Approver = lambda step_id, visit: "approved"  # noqa: E731
    cost_per_step: Decimal = Decimal(0)
    now: datetime = T0
    log: list[Command] = field(default_factory=list)
    execution: ProcessExecution | None = None
    max_rounds: int = 10_000

    def run(self, input: dict[str, Any] | None = None) -> ProcessExecution:
        """Start and drive until nothing is left to do; returns the execution."""
        x = ProcessExecution.create(self.definition, "ex-1", self.now, input or {})
        self.execution = x
        queue: list[Command] = list(x.start(self.definition, self.now))
        rounds = 0
        while queue and rounds < self.max_rounds:
            rounds += 1
            queue.sort(key=lambda c: (getattr(c, "not_before", None) or getattr(
                c, "due_at", None) or self.now))
            command = queue.pop(0)
            self.log.append(command)
            queue.extend(self._do(x, command))
        assert rounds < self.max_rounds, "simulation did not terminate"
        return x

    def _tick(self, seconds: float = 1) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    def _do(self, x: ProcessExecution, c: Command) -> list[Command]:
        d = self.definition
        if isinstance(c, RunStep):
            if c.not_before and c.not_before > self.now:
                self.now = c.not_before
            if not x.begin_attempt(c.step_id, c.attempt, self._tick()):
                return []
            step = d.step(c.step_id)
            if step.type == "sub_process":
                return x.sub_process_started(d, c.step_id, c.attempt, f"child-{c.step_id}",
                                             self._tick()) + x.sub_process_finished(
                    d, c.step_id, f"child-{c.step_id}", "completed", {"done": True},
                    self._tick()) if step.spec.wait_for_completion else \
                    x.sub_process_started(d, c.step_id, c.attempt, f"child-{c.step_id}",
                                          self._tick())
            message = x.rendered(d, c.step_id).message
            kind, value = self.agent(c.step_id, c.attempt, message)
            if kind == "ok":
                return x.complete_step(d, c.step_id, c.attempt, value, self._tick(),
                                       cost=self.cost_per_step)
            return x.fail_step(d, c.step_id, c.attempt, value, f"{value} from agent",
                               self._tick(), rand=lambda: 0.5)
        if isinstance(c, StartTimer):
            self.now = max(self.now, c.due_at or self.now)
            return x.fire_timer(d, c.step_id, self._tick())
        if isinstance(c, RequestApproval):
            visit = x.step_state(c.step_id).visits
            decision = self.approver(c.step_id, visit)
            if decision == "timeout":
                self.now = max(self.now, c.deadline or self.now)
                return x.approval_timed_out(d, c.step_id, self._tick())
            return x.decide_approval(d, c.step_id, decision, "alice", self._tick(),
                                     comment=f"{decision} on visit {visit}")
        if isinstance(c, RunCompensation):
            x.compensation_finished(c.step_id, True, "compensated", self._tick())
            return []
        if isinstance(c, CancelStep | ApprovalTimeoutAction):
            return []
        raise AssertionError(f"unexpected command {c}")
