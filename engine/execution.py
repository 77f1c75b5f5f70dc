"""The execution aggregate: decides what happens next and records it as events.

Every public method takes the pinned definition and the current time (never reads a clock),
records events (applied to the state at once) and returns commands: the I/O the runtime must
do next (run a step, open an approval, arm a timer, cancel a step, compensate).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Self

from engine import events as ev
from engine.context import compute_outputs, condition_holds, render_step, route_gateway, timer_due
from engine.definition import (
    Approval,
    ErrorAction,
    Gateway,
    ProcessDefinition,
    Step,
    StepType,
    SubProcess,
)
from engine.retry import decide_retry
from engine.state import ExecutionState, StepState
from engine.status import ExecutionStatus, SkipReason, StepStatus

__all__ = [
    "CancelStep",
    "Command",
    "ExecutionError",
    "ProcessExecution",
    "RequestApproval",
    "RunCompensation",
    "RunStep",
    "StartTimer",
]

APPROVAL_DECISIONS = ("approved", "rejected", "needs_changes")


class ExecutionError(ValueError):
    """A request the execution cannot honour in its current state; the message says why."""


@dataclass(frozen=True)
class Command:
    step_id: str


@dataclass(frozen=True)
class RunStep(Command):
    """Run an attempt of an agent task, notification or sub-process (not before `not_before`)."""

    attempt: int = 1
    not_before: datetime | None = None


@dataclass(frozen=True)
class RequestApproval(Command):
    deadline: datetime | None = None


@dataclass(frozen=True)
class StartTimer(Command):
    due_at: datetime | None = None


@dataclass(frozen=True)
class CancelStep(Command):
    attempt: int = 0


@dataclass(frozen=True)
class RunCompensation(Command):
    order: int = 0


@dataclass(frozen=True)
class ApprovalTimeoutAction(Command):
    """Notify or escalate an approval that timed out; the step keeps waiting."""

    action: str = "notify"


Rand = Callable[[], float]
_IO_TYPES = (StepType.AGENT_TASK, StepType.NOTIFICATION, StepType.SUB_PROCESS)


class ProcessExecution(ExecutionState):
    """A running instance of a process definition."""

    # --- lifecycle -----------------------------------------------------------------------

    @classmethod
    def create(cls, definition: ProcessDefinition, execution_id: str, now: datetime,
               input: Mapping[str, Any] | None = None, triggered_by: str = "manual",
               started_by: str | None = None, parent_id: str | None = None,
               parent_step_id: str | None = None) -> Self:
        """A new pending execution pinned to `definition`."""
        x = cls()
        x._record(ev.ExecutionCreated(
            now, execution_id=execution_id, process_name=definition.name,
            process_version=definition.version, step_ids=tuple(s.id for s in definition.steps),
            input=dict(input or {}), triggered_by=triggered_by, started_by=started_by,
            parent_id=parent_id, parent_step_id=parent_step_id))
        return x

    def start(self, definition: ProcessDefinition, now: datetime) -> list[Command]:
        """Start: decide every step that can be decided and dispatch the ready ones."""
        self._require(ExecutionStatus.PENDING, "start")
        self._record(ev.ExecutionStarted(now))
        return self._advance(definition, now)

    def cancel(self, now: datetime, by: str | None = None, reason: str = "") -> list[Command]:
        """Cancel: active steps are stopped; nothing else runs."""
        if self.status.is_terminal:
            raise ExecutionError(f"execution {self.id} is already {self.status}")
        commands = self._cancel_active(now)
        self._record(ev.ExecutionCancelled(now, by=by, reason=reason))
        return commands

    def pause(self, now: datetime, by: str | None = None) -> None:
        """Pause: running steps finish, nothing new is dispatched until resume."""
        self._require(ExecutionStatus.RUNNING, "pause")
        self._record(ev.ExecutionPaused(now, by=by))

    def resume(self, definition: ProcessDefinition, now: datetime,
               by: str | None = None) -> list[Command]:
        """Resume a paused execution and dispatch what became ready meanwhile."""
        self._require(ExecutionStatus.PAUSED, "resume")
        self._record(ev.ExecutionResumed(now, by=by))
        # begin_attempt refuses attempts while paused, so dispatch the waiting ones again;
        # a duplicate is harmless because each attempt can begin only once.
        again: list[Command] = [RunStep(st.step_id, st.attempt + 1, st.next_retry_at)
                                for st in self.steps.values()
                                if st.status in (StepStatus.QUEUED, StepStatus.RETRYING)]
        return again + self._advance(definition, now)

    def fail(self, definition: ProcessDefinition, code: str, message: str,
             now: datetime) -> list[Command]:
        """Fail the whole execution (deadline passed, idle too long, budget...)."""
        if self.status.is_terminal:
            return []
        return self._fail_execution(definition, code, message, None, now)

    def retry_failed_step(self, definition: ProcessDefinition, step_id: str, now: datetime,
                          by: str | None = None) -> list[Command]:
        """Run a failed step again in place; the execution continues from there."""
        st = self._state(step_id)
        if self.status is not ExecutionStatus.FAILED or st.status is not StepStatus.FAILED:
            raise ExecutionError(f"step '{step_id}' is {st.status} in a {self.status} "
                                 "execution; only a failed step of a failed execution can be "
                                 "retried in place")
        self._record(ev.StepRetryRequested(now, step_id=step_id, by=by))
        return self._advance(definition, now)

    # --- step results --------------------------------------------------------------------

    def begin_attempt(self, step_id: str, attempt: int, now: datetime,
                      worker: str | None = None, input: Any = None) -> bool:
        """Mark an attempt running. False when it is stale or already running (do nothing)."""
        st = self._state(step_id)
        if self.status is not ExecutionStatus.RUNNING:
            return False
        if st.status not in (StepStatus.QUEUED, StepStatus.RETRYING) or attempt != st.attempt + 1:
            return False
        self._record(ev.StepStarted(now, step_id=step_id, attempt=attempt, worker=worker,
                                    input=input))
        return True

    def complete_step(self, definition: ProcessDefinition, step_id: str, attempt: int,
                      output: Any, now: datetime, cost: Decimal = Decimal(0), tokens: int = 0,
                      warnings: Sequence[str] = ()) -> list[Command]:
        """An attempt succeeded. A stale or duplicate result is ignored."""
        if not self._is_current(step_id, attempt):
            return []
        step = definition.step(step_id)
        limit = getattr(step.spec, "max_cost", None)
        if limit is not None and cost > limit:
            return self.fail_step(definition, step_id, attempt, "BUDGET_EXCEEDED",
                                  f"the step cost {cost} exceeds its max_cost {limit}", now,
                                  cost=cost, tokens=tokens)
        self._record(ev.StepCompleted(now, step_id=step_id, output=output, cost=cost,
                                      tokens=tokens, warnings=tuple(warnings)))
        ended = self._after_cost(definition, now)
        return ended if ended is not None else self._advance(definition, now)

    def fail_step(self, definition: ProcessDefinition, step_id: str, attempt: int, code: str,
                  message: str, now: datetime, retryable: bool | None = None,
                  cost: Decimal = Decimal(0), tokens: int = 0,
                  rand: Rand | None = None) -> list[Command]:
        """An attempt failed: retry with backoff, or apply the step's on_error."""
        if not self._is_current(step_id, attempt):
            return []
        step = definition.step(step_id)
        lost = sum(1 for a in self.steps[step_id].attempts if a.error_code == "WORKER_LOST")
        decision = decide_retry(step.retry, attempt - lost, code, rand)
        will_retry = decision.retry and retryable is not False
        retry_at = now + decision.delay if will_retry else None
        reason = decision.reason if will_retry or not decision.retry else (
            f"error code {code.upper()} was reported as not retryable")
        self._record(ev.StepFailed(now, step_id=step_id, attempt=attempt, code=code,
                                   message=message, cost=cost, tokens=tokens,
                                   will_retry=will_retry, retry_at=retry_at, reason=reason))
        # The cost of a failed attempt counts too: over budget, nothing is retried.
        ended = self._after_cost(definition, now)
        if ended is not None:
            return ended
        if will_retry:
            return [RunStep(step_id, attempt + 1, retry_at)]
        return self._on_error(definition, step, code, message, now)

    # --- approvals, timers, sub-processes ------------------------------------------------

    def decide_approval(self, definition: ProcessDefinition, step_id: str, decision: str,
                        decided_by: str, now: datetime, comment: str | None = None,
                        decisions: Sequence[Mapping[str, Any]] = (),
                        edited: Any = None) -> list[Command]:
        """The final decision of an approval (N-of-M is counted by the approval service)."""
        st = self._state(step_id)
        if st.status is not StepStatus.WAITING_APPROVAL:
            raise ExecutionError(f"step '{step_id}' is not waiting for a decision "
                                 f"(it is {st.status})")
        if decision not in APPROVAL_DECISIONS:
            raise ExecutionError(f"decision must be one of {', '.join(APPROVAL_DECISIONS)}")
        self._record(ev.ApprovalDecided(now, step_id=step_id, decision=decision,
                                        decided_by=decided_by, comment=comment,
                                        decisions=tuple(decisions), edited=edited))
        step = definition.step(step_id)
        if decision == "approved":
            self._record(ev.StepCompleted(now, step_id=step_id, output=st.output))
            return self._advance(definition, now)
        if decision == "needs_changes":
            looped = self._changes_requested(definition, step, now)
            if looped is not None:
                return looped
        reason = f"rejected by {decided_by}" + (f": {comment}" if comment else "")
        return self._fail_waiting(definition, step, "APPROVAL_REJECTED", reason, now)

    def approval_timed_out(self, definition: ProcessDefinition, step_id: str,
                           now: datetime, action: str | None = None) -> list[Command]:
        """Apply the approval's on_timeout (or `action`, e.g. `reject` when an escalated
        request times out again). Ignored when the step no longer waits."""
        st = self._state(step_id)
        step = definition.step(step_id)
        if st.status is not StepStatus.WAITING_APPROVAL or not isinstance(step.spec, Approval):
            return []
        action = action or step.spec.on_timeout
        self._record(ev.ApprovalTimedOut(now, step_id=step_id, action=action))
        if action == "auto_approve":
            self._record(ev.ApprovalDecided(now, step_id=step_id, decision="approved",
                                            decided_by="system:timeout",
                                            comment="approved automatically at the deadline"))
            self._record(ev.StepCompleted(now, step_id=step_id, output=st.output))
            return self._advance(definition, now)
        if action == "skip":
            self._record(ev.StepSkipped(now, step_id=step_id, reason=SkipReason.TIMEOUT_SKIPPED,
                                        detail="nobody decided before the deadline"))
            return self._advance(definition, now)
        if action in ("notify", "escalate"):
            return [ApprovalTimeoutAction(step_id, action)]
        return self._fail_waiting(definition, step, "APPROVAL_TIMEOUT",
                                  "nobody decided before the deadline", now)

    def fire_timer(self, definition: ProcessDefinition, step_id: str,
                   now: datetime) -> list[Command]:
        """A timer is due. Ignored when it already fired or was cancelled."""
        st = self._state(step_id)
        if st.status is not StepStatus.WAITING_TIMER or self.status.is_terminal:
            return []
        self._record(ev.TimerFired(now, step_id=step_id))
        self._record(ev.StepCompleted(now, step_id=step_id, output={
            "fired_at": now.isoformat(), "due_at": st.due_at.isoformat() if st.due_at else None}))
        return self._advance(definition, now)

    def sub_process_started(self, definition: ProcessDefinition, step_id: str, attempt: int,
                            child_id: str, now: datetime) -> list[Command]:
        """The child execution exists; wait for it, or go on when fire-and-forget."""
        if not self._is_current(step_id, attempt):
            return []
        step = definition.step(step_id)
        assert isinstance(step.spec, SubProcess)
        if not step.spec.wait_for_completion:
            return self.complete_step(definition, step_id, attempt,
                                      {"execution_id": child_id, "status": "started"}, now)
        self._record(ev.SubProcessStarted(now, step_id=step_id, child_id=child_id))
        return []

    def sub_process_finished(self, definition: ProcessDefinition, step_id: str, child_id: str,
                             status: str, outputs: Mapping[str, Any], now: datetime,
                             cost: Decimal = Decimal(0), tokens: int = 0,
                             error: str = "") -> list[Command]:
        """The child ended: its outputs become this step's output, its cost counts here."""
        st = self._state(step_id)
        if st.status is not StepStatus.WAITING_SUBPROCESS or st.child_id != child_id:
            return []
        output = {"execution_id": child_id, "status": status, **dict(outputs)}
        if status == "completed":
            self._record(ev.StepCompleted(now, step_id=step_id, output=output, cost=cost,
                                          tokens=tokens))
            ended = self._after_cost(definition, now)
            return ended if ended is not None else self._advance(definition, now)
        return self._fail_waiting(definition, definition.step(step_id), "SUBPROCESS_FAILED",
                                  f"sub-process {child_id} {status}: {error}".rstrip(": "),
                                  now, cost=cost, tokens=tokens)

    def requeue_lost_attempt(self, definition: ProcessDefinition, step_id: str, attempt: int,
                             now: datetime, max_lost: int = 5) -> list[Command]:
        """The worker running this attempt vanished (its lease expired): run it again.

        A lost attempt does not use up the step's retry policy, but after `max_lost` of them
        the step fails with WORKER_LOST, so a step that kills its worker cannot loop forever.
        """
        if not self._is_current(step_id, attempt):
            return []
        st = self.steps[step_id]
        lost = sum(1 for a in st.attempts if a.error_code == "WORKER_LOST") + 1
        message = f"the worker running attempt {attempt} stopped responding"
        if lost > max_lost:
            self._record(ev.StepFailed(now, step_id=step_id, attempt=attempt,
                                       code="WORKER_LOST", message=message,
                                       reason=f"{lost} attempts lost; giving up"))
            return self._on_error(definition, definition.step(step_id), "WORKER_LOST",
                                  message, now)
        self._record(ev.StepFailed(now, step_id=step_id, attempt=attempt, code="WORKER_LOST",
                                   message=message, will_retry=True, retry_at=now,
                                   reason="re-dispatched after the lease expired"))
        return [RunStep(step_id, attempt + 1)]

    def compensation_finished(self, step_id: str, ok: bool, message: str,
                              now: datetime) -> None:
        """Record the outcome of one compensation."""
        self._record(ev.CompensationFinished(now, step_id=step_id, ok=ok, message=message))

    # --- queries -------------------------------------------------------------------------

    def step_state(self, step_id: str) -> StepState:
        """The state of one step (ExecutionError for an unknown id)."""
        return self._state(step_id)

    def rendered(self, definition: ProcessDefinition, step_id: str) -> Any:
        """The step's templates rendered against the current context."""
        return render_step(self, definition, step_id)

    # --- the decision loop ---------------------------------------------------------------

    def _advance(self, definition: ProcessDefinition, now: datetime) -> list[Command]:
        """Decide every decidable step until nothing changes; dispatch the ready ones."""
        if self.status is not ExecutionStatus.RUNNING:
            return []
        commands: list[Command] = []
        changed = True
        while changed and self.status is ExecutionStatus.RUNNING:
            changed = False
            for step in definition.steps:
                if self.status is not ExecutionStatus.RUNNING:
                    break  # a decision ended the execution: nothing more may be dispatched
                if self.steps[step.id].status is StepStatus.PENDING and self._decidable(step):
                    commands.extend(self._decide(definition, step, now))
                    changed = True
        if self.status is ExecutionStatus.RUNNING and all(
                st.status.is_finished for st in self.steps.values()):
            outputs, warnings = compute_outputs(self, definition)
            self._record(ev.ExecutionCompleted(now, outputs=outputs, warnings=tuple(warnings)))
        return commands

    def _decidable(self, step: Step) -> bool:
        return all(self.steps[d].status.is_finished for d in step.depends_on)

    def _decide(self, definition: ProcessDefinition, step: Step,
                now: datetime) -> list[Command]:
        skip = self._control_skip(definition, step)
        if skip is not None:
            self._record(ev.StepSkipped(now, step_id=step.id, reason=skip[0], detail=skip[1]))
            return []
        if not condition_holds(self, definition, step):
            self._record(ev.StepSkipped(now, step_id=step.id,
                                        reason=SkipReason.CONDITION_NOT_MET,
                                        detail=f"condition not met: {step.condition}"))
            return []
        return self._dispatch(definition, step, now)

    def _control_skip(self, definition: ProcessDefinition,
                      step: Step) -> tuple[str, str] | None:
        """Why no dependency passes control to `step`, or None when one does."""
        if not step.depends_on:
            return None
        not_taken: list[str] = []
        for dep in step.depends_on:
            st = self.steps[dep]
            if st.status is StepStatus.COMPLETED:
                spec = definition.step(dep).spec
                if not isinstance(spec, Gateway) or step.id not in spec.targets:
                    return None
                if step.id in (st.output or {}).get("routes", ()):
                    return None
                not_taken.append(dep)
            elif st.status is StepStatus.SKIPPED and SkipReason(
                    st.skip_reason or SkipReason.UPSTREAM_SKIPPED).passes_control:
                return None
        if not_taken:
            return SkipReason.ROUTE_NOT_TAKEN, f"route not taken by {', '.join(not_taken)}"
        return SkipReason.UPSTREAM_SKIPPED, "skipped because " + ", ".join(
            step.depends_on) + " passed no control"

    def _dispatch(self, definition: ProcessDefinition, step: Step,
                  now: datetime) -> list[Command]:
        if step.type is StepType.GATEWAY:
            routing = route_gateway(self, definition, step)
            assert isinstance(step.spec, Gateway)
            self._record(ev.GatewayEvaluated(
                now, step_id=step.id, gateway_type=step.spec.gateway_type.value,
                routes=routing.routes, is_default=routing.is_default,
                evaluated_conditions=routing.evaluated))
            if not routing.routes:
                message = (f"gateway '{step.id}': no route condition holds and there is no "
                           "default_route")
                self._record(ev.StepFailed(now, step_id=step.id, code="NO_MATCHING_ROUTE",
                                           message=message))
                return self._on_error(definition, step, "NO_MATCHING_ROUTE", message, now)
            output = {"route": routing.routes[0], "routes": list(routing.routes),
                      "is_default": routing.is_default,
                      "evaluated_conditions": [dict(c) for c in routing.evaluated]}
            self._record(ev.StepCompleted(now, step_id=step.id, output=output))
            return []
        if step.type is StepType.TIMER:
            return self._start_timer(definition, step, now)
        if step.type is StepType.HUMAN_APPROVAL:
            return self._request_approval(definition, step, now)
        self._record(ev.StepQueued(now, step_id=step.id, attempt=1))
        return [RunStep(step.id, 1)]

    def _start_timer(self, definition: ProcessDefinition, step: Step,
                     now: datetime) -> list[Command]:
        try:
            due = timer_due(self, definition, step, now)
        except ValueError as e:
            self._record(ev.StepFailed(now, step_id=step.id, code="INVALID_CONFIG",
                                       message=str(e)))
            return self._on_error(definition, step, "INVALID_CONFIG", str(e), now)
        self._record(ev.TimerStarted(now, step_id=step.id, due_at=due))
        return [StartTimer(step.id, due)]

    def _request_approval(self, definition: ProcessDefinition, step: Step,
                          now: datetime) -> list[Command]:
        assert isinstance(step.spec, Approval)
        rendered = render_step(self, definition, step.id)
        deadline = now + (step.timeout or timedelta(hours=24))
        self._record(ev.ApprovalRequested(
            now, step_id=step.id, title=rendered.title or step.name,
            description=rendered.message, artifacts=rendered.artifacts,
            assignees=tuple(str(a) for a in step.spec.assignees),
            required_approvals=step.spec.required_approvals, deadline=deadline))
        return [RequestApproval(step.id, deadline)]

    # --- failure handling ----------------------------------------------------------------

    def _on_error(self, definition: ProcessDefinition, step: Step, code: str, message: str,
                  now: datetime) -> list[Command]:
        action = step.on_error.action
        if action is ErrorAction.SKIP_STEP:
            self._record(ev.StepSkipped(now, step_id=step.id, reason=SkipReason.ERROR_SKIPPED,
                                        detail=f"skipped after error {code}: {message}"))
            return self._advance(definition, now)
        if action is ErrorAction.GOTO_STEP and step.on_error.target_step:
            looped = self._loop_back(definition, step.id, step.on_error.target_step,
                                     step.on_error.max_visits, f"on_error after {code}", now)
            if looped is not None:
                return looped
            message = (f"{message} (goto_step to '{step.on_error.target_step}' already used "
                       f"{step.on_error.max_visits} times)")
        return self._fail_execution(definition, code, message, step.id, now)

    def _fail_waiting(self, definition: ProcessDefinition, step: Step, code: str,
                      message: str, now: datetime, cost: Decimal = Decimal(0),
                      tokens: int = 0) -> list[Command]:
        self._record(ev.StepFailed(now, step_id=step.id, attempt=self.steps[step.id].attempt,
                                   code=code, message=message, cost=cost, tokens=tokens))
        ended = self._after_cost(definition, now)
        return ended if ended is not None else self._on_error(definition, step, code, message,
                                                              now)

    def _changes_requested(self, definition: ProcessDefinition, step: Step,
                           now: datetime) -> list[Command] | None:
        assert isinstance(step.spec, Approval)
        if not step.spec.changes_goto:
            return None
        return self._loop_back(definition, step.id, step.spec.changes_goto,
                               step.spec.changes_max_visits, "changes requested", now)

    def _loop_back(self, definition: ProcessDefinition, source: str, target: str,
                   max_visits: int, reason: str, now: datetime) -> list[Command] | None:
        """Jump back to `target`, resetting it and everything after it; None when used up."""
        visit = self.jumps.get(f"{source}>{target}", 0) + 1
        if visit > max_visits:
            return None
        reset = {target} | definition.descendants(target) | {source}
        ordered = tuple(s.id for s in definition.steps if s.id in reset)
        commands = [CancelStep(sid, self.steps[sid].attempt) for sid in ordered
                    if self.steps[sid].status.is_active and sid != source]
        for cmd in commands:
            self._record(ev.StepCancelled(now, step_id=cmd.step_id))
        self._record(ev.LoopedBack(now, source=source, target=target, reset=ordered,
                                   visit=visit, reason=reason))
        return commands + self._advance(definition, now)

    def _fail_execution(self, definition: ProcessDefinition, code: str, message: str,
                        step_id: str | None, now: datetime) -> list[Command]:
        commands: list[Command] = self._cancel_active(now)
        done = sorted((st for st in self.steps.values()
                       if st.status is StepStatus.COMPLETED and st.completed_seq is not None
                       and definition.step(st.step_id).compensation is not None),
                      key=lambda st: st.completed_seq or 0, reverse=True)
        if done:
            self._record(ev.CompensationsQueued(now, step_ids=tuple(st.step_id for st in done)))
            commands.extend(RunCompensation(st.step_id, i) for i, st in enumerate(done))
        self._record(ev.ExecutionFailed(now, code=code, message=message, step_id=step_id))
        return commands

    def _cancel_active(self, now: datetime) -> list[Command]:
        commands: list[Command] = []
        for st in self.steps.values():
            if st.status.is_active:
                commands.append(CancelStep(st.step_id, st.attempt))
                self._record(ev.StepCancelled(now, step_id=st.step_id))
        return commands

    def _after_cost(self, definition: ProcessDefinition, now: datetime) -> list[Command] | None:
        """Budget checks after cost was added: None to carry on, else the execution ended."""
        limit = definition.config.max_cost
        if limit is None or self.status.is_terminal:
            return None
        if self.cost > limit:
            return self._fail_execution(
                definition, "BUDGET_EXCEEDED",
                f"the execution cost {self.cost} exceeds its budget of {limit}", None, now)
        warn_at = limit * Decimal(str(definition.config.warn_at))
        if not self.budget_warned and self.cost >= warn_at:
            self._record(ev.BudgetWarning(now, cost=self.cost, limit=limit))
        return None

    # --- small helpers -------------------------------------------------------------------

    def _state(self, step_id: str) -> StepState:
        try:
            return self.steps[step_id]
        except KeyError:
            raise ExecutionError(f"execution {self.id} has no step '{step_id}'") from None

    def _require(self, status: ExecutionStatus, verb: str) -> None:
        if self.status is not status:
            raise ExecutionError(f"cannot {verb} execution {self.id}: it is {self.status}")

    def _is_current(self, step_id: str, attempt: int) -> bool:
        st = self._state(step_id)
        return (not self.status.is_terminal and st.status is StepStatus.RUNNING
                and st.attempt == attempt)
