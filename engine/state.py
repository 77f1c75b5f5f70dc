"""Execution state: plain data changed only by applying events, so replay rebuilds it exactly.

`engine.execution.ProcessExecution` adds the decisions on top of this class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Self

from engine import events as ev
from engine.status import (
    ExecutionStatus,
    StepStatus,
    check_execution_transition,
    check_step_transition,
)

__all__ = ["Attempt", "ExecutionState", "StepState"]


@dataclass
class Attempt:
    """One try of a step."""

    number: int
    started_at: datetime
    worker: str | None = None
    visit: int = 1
    finished_at: datetime | None = None
    status: str = "running"
    error_code: str | None = None
    error_message: str | None = None
    cost: Decimal = Decimal(0)
    tokens: int = 0


@dataclass
class StepState:
    """Where one step stands within an execution."""

    step_id: str
    status: StepStatus = StepStatus.PENDING
    attempt: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    skip_reason: str | None = None
    skip_detail: str | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cost: Decimal = Decimal(0)
    tokens: int = 0
    next_retry_at: datetime | None = None
    due_at: datetime | None = None
    child_id: str | None = None
    approval: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    visits: int = 0
    completed_seq: int | None = None


@dataclass
class ExecutionState:
    """The aggregate's data. Mutated only in `_apply`."""

    id: str = ""
    process_name: str = ""
    process_version: str = ""
    status: ExecutionStatus = ExecutionStatus.PENDING
    input: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, StepState] = field(default_factory=dict)
    triggered_by: str = "manual"
    started_by: str | None = None
    parent_id: str | None = None
    parent_step_id: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    cost: Decimal = Decimal(0)
    tokens: int = 0
    outputs: dict[str, Any] = field(default_factory=dict)
    output_warnings: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None
    jumps: dict[str, int] = field(default_factory=dict)
    budget_warned: bool = False
    compensations: list[dict[str, Any]] = field(default_factory=list)
    seq: int = 0
    event_count: int = 0
    _pending: list[ev.Event] = field(default_factory=list, repr=False, compare=False)

    # --- events --------------------------------------------------------------------------

    def pull_events(self) -> list[ev.Event]:
        """Events recorded since the last call (the unit of work writes them)."""
        out, self._pending = self._pending, []
        return out

    @classmethod
    def replay(cls, events: Iterable[ev.Event]) -> Self:
        """Rebuild an execution from its whole event history."""
        execution = cls()
        for event in events:
            execution._apply(event)
        return execution

    def _record(self, event: ev.Event) -> None:
        self._apply(event)
        self._pending.append(event)

    def _apply(self, event: ev.Event) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)
        self.updated_at = event.at
        self.event_count += 1

    def _set_status(self, status: ExecutionStatus) -> None:
        check_execution_transition(self.status, status)
        self.status = status

    def _set_step(self, step_id: str, status: StepStatus) -> StepState:
        st = self.steps[step_id]
        check_step_transition(step_id, st.status, status)
        st.status = status
        return st

    # --- snapshot ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A portable JSON-ready snapshot (also the checkpoint format).

        Written on every transition, so typed fields are converted directly; only the
        free-form values (input, outputs, errors) are walked.
        """
        data = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        for key in _EXECUTION_DATES:
            if data[key] is not None:
                data[key] = data[key].isoformat()
        data["status"] = self.status.value
        data["cost"] = str(self.cost)
        for key in ("input", "outputs", "error", "compensations"):
            data[key] = ev._dump(data[key])
        data["output_warnings"] = list(self.output_warnings)
        data["jumps"] = dict(self.jumps)
        data["steps"] = {k: _step_to(v) for k, v in self.steps.items()}
        return {"format": 1, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The execution a `to_dict` snapshot describes."""
        raw = {k: v for k, v in data.items() if k not in ("format", "steps")}
        for key in _EXECUTION_DATES:
            if raw.get(key) is not None:
                raw[key] = datetime.fromisoformat(raw[key])
        raw["status"] = ExecutionStatus(raw["status"])
        raw["cost"] = Decimal(raw["cost"])
        out = cls(**raw)
        out.steps = {k: _step_from(v) for k, v in data["steps"].items()}
        return out


_EXECUTION_DATES = ("created_at", "started_at", "finished_at", "updated_at")
_STEP_DATES = ("queued_at", "started_at", "finished_at", "next_retry_at", "due_at")
_ATTEMPT_DATES = ("started_at", "finished_at")


def _step_to(st: StepState) -> dict[str, Any]:
    d = dict(vars(st))
    for key in _STEP_DATES:
        if d[key] is not None:
            d[key] = d[key].isoformat()
    d["status"] = st.status.value
    d["cost"] = str(st.cost)
    for key in ("input", "output", "error", "approval"):
        if d[key] is not None:
            d[key] = ev._dump(d[key])
    d["warnings"] = list(st.warnings)
    d["attempts"] = [_attempt_to(a) for a in st.attempts]
    return d


def _attempt_to(a: Attempt) -> dict[str, Any]:
    d = dict(vars(a))
    for key in _ATTEMPT_DATES:
        if d[key] is not None:
            d[key] = d[key].isoformat()
    d["cost"] = str(a.cost)
    return d


def _step_from(data: Mapping[str, Any]) -> StepState:
    raw = {k: v for k, v in data.items() if k != "attempts"}
    for key in _STEP_DATES:
        if raw.get(key) is not None:
            raw[key] = datetime.fromisoformat(raw[key])
    raw["status"] = StepStatus(raw["status"])
    raw["cost"] = Decimal(raw["cost"])
    st = StepState(**raw)
    st.attempts = [_attempt_from(a) for a in data.get("attempts", ())]
    return st


def _attempt_from(data: Mapping[str, Any]) -> Attempt:
    raw = dict(data)
    for key in _ATTEMPT_DATES:
        if raw.get(key) is not None:
            raw[key] = datetime.fromisoformat(raw[key])
    raw["cost"] = Decimal(raw["cost"])
    return Attempt(**raw)


# --- how each event changes the state ------------------------------------------------------


def _created(x: ExecutionState, e: ev.ExecutionCreated) -> None:
    x.id, x.process_name, x.process_version = e.execution_id, e.process_name, e.process_version
    x.input = dict(e.input)
    x.triggered_by, x.started_by = e.triggered_by, e.started_by
    x.parent_id, x.parent_step_id = e.parent_id, e.parent_step_id
    x.created_at = e.at
    x.steps = {s: StepState(s) for s in e.step_ids}


def _started(x: ExecutionState, e: ev.ExecutionStarted) -> None:
    x._set_status(ExecutionStatus.RUNNING)
    x.started_at = e.at


def _completed(x: ExecutionState, e: ev.ExecutionCompleted) -> None:
    x._set_status(ExecutionStatus.COMPLETED)
    x.outputs, x.output_warnings = dict(e.outputs), list(e.warnings)
    x.finished_at = e.at


def _failed(x: ExecutionState, e: ev.ExecutionFailed) -> None:
    x._set_status(ExecutionStatus.FAILED)
    x.error = {"code": e.code, "message": e.message, "step_id": e.step_id}
    x.finished_at = e.at


def _cancelled(x: ExecutionState, e: ev.ExecutionCancelled) -> None:
    x._set_status(ExecutionStatus.CANCELLED)
    x.error = {"code": "CANCELLED", "message": e.reason or "cancelled", "by": e.by}
    x.finished_at = e.at


def _paused(x: ExecutionState, e: ev.ExecutionPaused) -> None:
    x._set_status(ExecutionStatus.PAUSED)


def _resumed(x: ExecutionState, e: ev.ExecutionResumed) -> None:
    x._set_status(ExecutionStatus.RUNNING)


def _step_queued(x: ExecutionState, e: ev.StepQueued) -> None:
    st = x._set_step(e.step_id, StepStatus.QUEUED)
    st.queued_at = e.at
    st.next_retry_at = None
    if e.attempt == 1:
        st.visits += 1


def _step_started(x: ExecutionState, e: ev.StepStarted) -> None:
    st = x._set_step(e.step_id, StepStatus.RUNNING)
    st.attempt = e.attempt
    st.attempts.append(Attempt(e.attempt, e.at, e.worker, max(st.visits, 1)))
    st.started_at = st.started_at if e.attempt > 1 and st.started_at else e.at
    st.next_retry_at = None
    if e.input is not None:
        st.input = e.input


def _finish_attempt(st: StepState, e: ev.StepCompleted | ev.StepFailed, status: str) -> None:
    if st.attempts and st.attempts[-1].finished_at is None:
        a = st.attempts[-1]
        a.finished_at, a.status, a.cost, a.tokens = e.at, status, e.cost, e.tokens
        if isinstance(e, ev.StepFailed):
            a.error_code, a.error_message = e.code, e.message


def _step_completed(x: ExecutionState, e: ev.StepCompleted) -> None:
    st = x._set_step(e.step_id, StepStatus.COMPLETED)
    _finish_attempt(st, e, "completed")
    st.output, st.error = e.output, None
    st.cost += e.cost
    st.tokens += e.tokens
    st.warnings = list(e.warnings)
    st.finished_at = e.at
    x.cost += e.cost
    x.tokens += e.tokens
    x.seq += 1
    st.completed_seq = x.seq


def _step_failed(x: ExecutionState, e: ev.StepFailed) -> None:
    st = x.steps[e.step_id]
    _finish_attempt(st, e, "failed")
    st.cost += e.cost
    st.tokens += e.tokens
    x.cost += e.cost
    x.tokens += e.tokens
    st.error = {"code": e.code, "message": e.message, "attempt": e.attempt}
    if e.will_retry:
        x._set_step(e.step_id, StepStatus.RETRYING)
        st.next_retry_at = e.retry_at
    else:
        x._set_step(e.step_id, StepStatus.FAILED)
        st.finished_at = e.at


def _step_skipped(x: ExecutionState, e: ev.StepSkipped) -> None:
    st = x._set_step(e.step_id, StepStatus.SKIPPED)
    st.skip_reason, st.skip_detail = e.reason, e.detail
    st.finished_at = e.at


def _step_cancelled(x: ExecutionState, e: ev.StepCancelled) -> None:
    st = x._set_step(e.step_id, StepStatus.CANCELLED)
    st.finished_at = e.at
    if st.attempts and st.attempts[-1].finished_at is None:
        st.attempts[-1].finished_at, st.attempts[-1].status = e.at, "cancelled"


def _retry_requested(x: ExecutionState, e: ev.StepRetryRequested) -> None:
    x._set_status(ExecutionStatus.RUNNING)
    x.error, x.finished_at = None, None
    for st in x.steps.values():
        if st.step_id == e.step_id or st.status is StepStatus.CANCELLED:
            _reset(x, st)
            if st.step_id == e.step_id:
                st.attempt = 0


def _reset(x: ExecutionState, st: StepState) -> None:
    x._set_step(st.step_id, StepStatus.PENDING)
    st.error = st.skip_reason = st.skip_detail = None
    st.finished_at = st.next_retry_at = st.due_at = None
    st.child_id, st.approval = None, None
    st.attempt = 0


def _gateway(x: ExecutionState, e: ev.GatewayEvaluated) -> None:
    x._set_step(e.step_id, StepStatus.RUNNING).visits += 1


def _approval_requested(x: ExecutionState, e: ev.ApprovalRequested) -> None:
    st = x._set_step(e.step_id, StepStatus.WAITING_APPROVAL)
    st.visits += 1
    st.started_at = e.at
    st.approval = {"title": e.title, "description": e.description,
                   "artifacts": list(e.artifacts), "assignees": list(e.assignees),
                   "required_approvals": e.required_approvals,
                   "deadline": e.deadline.isoformat() if e.deadline else None}


def _approval_decided(x: ExecutionState, e: ev.ApprovalDecided) -> None:
    st = x.steps[e.step_id]
    st.output = {"decision": e.decision, "decided_by": e.decided_by, "comment": e.comment,
                 "decided_at": e.at.isoformat(), "decisions": list(e.decisions)}
    if e.edited is not None:  # the approver's edit becomes what the step hands on
        st.output["edited"] = e.edited
        st.output["response"] = e.edited


def _timer_started(x: ExecutionState, e: ev.TimerStarted) -> None:
    st = x._set_step(e.step_id, StepStatus.WAITING_TIMER)
    st.visits += 1
    st.started_at, st.due_at = e.at, e.due_at


def _sub_started(x: ExecutionState, e: ev.SubProcessStarted) -> None:
    st = x._set_step(e.step_id, StepStatus.WAITING_SUBPROCESS)
    st.child_id = e.child_id


def _looped_back(x: ExecutionState, e: ev.LoopedBack) -> None:
    key = f"{e.source}>{e.target}"
    x.jumps[key] = e.visit
    for step_id in e.reset:
        _reset(x, x.steps[step_id])


def _budget(x: ExecutionState, e: ev.BudgetWarning) -> None:
    x.budget_warned = True


def _compensations(x: ExecutionState, e: ev.CompensationsQueued) -> None:
    x.compensations = [{"step_id": s, "status": "queued", "message": ""} for s in e.step_ids]


def _compensation_done(x: ExecutionState, e: ev.CompensationFinished) -> None:
    for c in x.compensations:
        if c["step_id"] == e.step_id:
            c["status"], c["message"] = ("completed" if e.ok else "failed"), e.message


_HANDLERS: dict[type[ev.Event], Callable[[Any, Any], None]] = {
    ev.ExecutionCreated: _created,
    ev.ExecutionStarted: _started,
    ev.ExecutionCompleted: _completed,
    ev.ExecutionFailed: _failed,
    ev.ExecutionCancelled: _cancelled,
    ev.ExecutionPaused: _paused,
    ev.ExecutionResumed: _resumed,
    ev.StepQueued: _step_queued,
    ev.StepStarted: _step_started,
    ev.StepCompleted: _step_completed,
    ev.StepFailed: _step_failed,
    ev.StepSkipped: _step_skipped,
    ev.StepCancelled: _step_cancelled,
    ev.StepRetryRequested: _retry_requested,
    ev.GatewayEvaluated: _gateway,
    ev.ApprovalRequested: _approval_requested,
    ev.ApprovalDecided: _approval_decided,
    ev.TimerStarted: _timer_started,
    ev.SubProcessStarted: _sub_started,
    ev.LoopedBack: _looped_back,
    ev.BudgetWarning: _budget,
    ev.CompensationsQueued: _compensations,
    ev.CompensationFinished: _compensation_done,
}
