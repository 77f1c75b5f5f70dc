"""Closed status enums, terminal sets and the written transition tables."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "EXECUTION_TRANSITIONS",
    "STEP_TRANSITIONS",
    "ExecutionStatus",
    "SkipReason",
    "StepStatus",
    "TransitionError",
    "check_execution_transition",
    "check_step_transition",
]


class ExecutionStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED,
                        ExecutionStatus.CANCELLED)


class StepStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    WAITING_APPROVAL = "waiting_approval"
    WAITING_TIMER = "waiting_timer"
    WAITING_SUBPROCESS = "waiting_subprocess"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        """Completed, failed, skipped or cancelled: nothing more will happen to it."""
        return self in _FINISHED

    @property
    def is_active(self) -> bool:
        """Dispatched and not finished: queued, running, retrying or waiting."""
        return self not in _FINISHED and self is not StepStatus.PENDING


_FINISHED = frozenset({StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.SKIPPED,
                       StepStatus.CANCELLED})


class SkipReason(StrEnum):
    CONDITION_NOT_MET = "condition_not_met"
    ROUTE_NOT_TAKEN = "route_not_taken"
    UPSTREAM_SKIPPED = "upstream_skipped"
    ERROR_SKIPPED = "error_skipped"  # on_error: skip_step; passes control on
    TIMEOUT_SKIPPED = "timeout_skipped"  # approval on_timeout: skip; passes control on

    @property
    def passes_control(self) -> bool:
        return self in (SkipReason.ERROR_SKIPPED, SkipReason.TIMEOUT_SKIPPED)


class TransitionError(ValueError):
    """A status change the transition table does not allow."""


E = ExecutionStatus
EXECUTION_TRANSITIONS: dict[ExecutionStatus, frozenset[ExecutionStatus]] = {
    E.PENDING: frozenset({E.RUNNING, E.CANCELLED, E.FAILED}),
    E.RUNNING: frozenset({E.PAUSED, E.COMPLETED, E.FAILED, E.CANCELLED}),
    E.PAUSED: frozenset({E.RUNNING, E.CANCELLED, E.FAILED}),
    E.FAILED: frozenset({E.RUNNING}),  # a failed step retried in place
    E.COMPLETED: frozenset(),
    E.CANCELLED: frozenset(),
}

S = StepStatus
_WAITING = {S.WAITING_APPROVAL, S.WAITING_TIMER, S.WAITING_SUBPROCESS}
STEP_TRANSITIONS: dict[StepStatus, frozenset[StepStatus]] = {
    S.PENDING: frozenset({S.QUEUED, S.RUNNING, S.COMPLETED, S.SKIPPED, S.CANCELLED, S.FAILED,
                          *_WAITING}),
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED, S.FAILED, S.SKIPPED, S.COMPLETED,
                         S.WAITING_SUBPROCESS}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.RETRYING, S.SKIPPED, S.CANCELLED,
                          S.WAITING_SUBPROCESS, S.PENDING}),
    S.RETRYING: frozenset({S.QUEUED, S.RUNNING, S.CANCELLED}),
    S.WAITING_APPROVAL: frozenset({S.COMPLETED, S.FAILED, S.SKIPPED, S.CANCELLED, S.PENDING,
                                   S.RETRYING}),
    S.WAITING_TIMER: frozenset({S.COMPLETED, S.CANCELLED}),
    S.WAITING_SUBPROCESS: frozenset({S.COMPLETED, S.FAILED, S.CANCELLED, S.RETRYING}),
    S.COMPLETED: frozenset({S.PENDING}),  # reset by a loop back
    S.SKIPPED: frozenset({S.PENDING}),
    S.FAILED: frozenset({S.PENDING, S.SKIPPED}),  # loop back or retry in place; skip_step
    S.CANCELLED: frozenset({S.PENDING}),
}


def check_execution_transition(old: ExecutionStatus, new: ExecutionStatus) -> None:
    """Raise TransitionError unless the table allows old → new."""
    if new is not old and new not in EXECUTION_TRANSITIONS[old]:
        raise TransitionError(f"an execution cannot go from {old} to {new}")


def check_step_transition(step_id: str, old: StepStatus, new: StepStatus) -> None:
    """Raise TransitionError unless the table allows old → new."""
    if new is not old and new not in STEP_TRANSITIONS[old]:
        raise TransitionError(f"step '{step_id}' cannot go from {old} to {new}")
