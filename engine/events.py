"""Domain events of an execution: past tense, JSON-serializable, enough to rebuild state."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache, cached_property
from typing import Any, ClassVar

__all__ = [
    "ApprovalDecided", "ApprovalRequested", "ApprovalTimedOut", "BudgetWarning",
    "CompensationFinished", "CompensationsQueued", "Event", "ExecutionCancelled",
    "ExecutionCompleted", "ExecutionCreated", "ExecutionFailed", "ExecutionPaused",
    "ExecutionResumed", "ExecutionStarted", "GatewayEvaluated", "LoopedBack", "StepCancelled",
    "StepCompleted", "StepFailed", "StepQueued", "StepRetryRequested", "StepSkipped",
    "StepStarted", "SubProcessStarted", "TimerFired", "TimerStarted", "event_from_dict",
]


@dataclass(frozen=True)
class Event:
    """Base of all events; `name` is the stable wire name."""

    at: datetime
    name: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: datetimes as ISO text, money as text, durations as seconds."""
        return dict(self._wire)

    @cached_property
    def _wire(self) -> dict[str, Any]:
        # an event is stored and published after every transition: convert it once
        out: dict[str, Any] = {"event": self.name}
        for f in dataclasses.fields(self):
            out[f.name] = _dump(getattr(self, f.name))
        return out


@dataclass(frozen=True)
class ExecutionCreated(Event):
    execution_id: str = ""
    process_name: str = ""
    process_version: str = ""
    step_ids: tuple[str, ...] = ()
    input: Mapping[str, Any] = field(default_factory=dict)
    triggered_by: str = "manual"
    started_by: str | None = None
    parent_id: str | None = None
    parent_step_id: str | None = None
    name: ClassVar[str] = "execution_created"


@dataclass(frozen=True)
class ExecutionStarted(Event):
    name: ClassVar[str] = "execution_started"


@dataclass(frozen=True)
class ExecutionCompleted(Event):
    outputs: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    name: ClassVar[str] = "execution_completed"


@dataclass(frozen=True)
class ExecutionFailed(Event):
    code: str = ""
    message: str = ""
    step_id: str | None = None
    name: ClassVar[str] = "execution_failed"


@dataclass(frozen=True)
class ExecutionCancelled(Event):
    by: str | None = None
    reason: str = ""
    name: ClassVar[str] = "execution_cancelled"


@dataclass(frozen=True)
class ExecutionPaused(Event):
    by: str | None = None
    name: ClassVar[str] = "execution_paused"


@dataclass(frozen=True)
class ExecutionResumed(Event):
    by: str | None = None
    name: ClassVar[str] = "execution_resumed"


@dataclass(frozen=True)
class StepQueued(Event):
    step_id: str = ""
    attempt: int = 1
    name: ClassVar[str] = "step_queued"


@dataclass(frozen=True)
class StepStarted(Event):
    step_id: str = ""
    attempt: int = 1
    worker: str | None = None
    input: Any = None
    name: ClassVar[str] = "step_started"


@dataclass(frozen=True)
class StepCompleted(Event):
    step_id: str = ""
    output: Any = None
    cost: Decimal = Decimal(0)
    tokens: int = 0
    warnings: tuple[str, ...] = ()
    name: ClassVar[str] = "step_completed"


@dataclass(frozen=True)
class StepFailed(Event):
    step_id: str = ""
    attempt: int = 1
    code: str = ""
    message: str = ""
    cost: Decimal = Decimal(0)
    tokens: int = 0
    will_retry: bool = False
    retry_at: datetime | None = None
    reason: str = ""
    name: ClassVar[str] = "step_failed"


@dataclass(frozen=True)
class StepSkipped(Event):
    step_id: str = ""
    reason: str = ""
    detail: str = ""
    name: ClassVar[str] = "step_skipped"


@dataclass(frozen=True)
class StepCancelled(Event):
    step_id: str = ""
    name: ClassVar[str] = "step_cancelled"


@dataclass(frozen=True)
class StepRetryRequested(Event):
    step_id: str = ""
    by: str | None = None
    name: ClassVar[str] = "step_retry_requested"


@dataclass(frozen=True)
class GatewayEvaluated(Event):
    step_id: str = ""
    gateway_type: str = ""
    routes: tuple[str, ...] = ()
    is_default: bool = False
    evaluated_conditions: tuple[Mapping[str, Any], ...] = ()
    name: ClassVar[str] = "gateway_evaluated"


@dataclass(frozen=True)
class ApprovalRequested(Event):
    step_id: str = ""
    title: str = ""
    description: str = ""
    artifacts: tuple[str, ...] = ()
    assignees: tuple[str, ...] = ()
    required_approvals: int = 1
    deadline: datetime | None = None
    name: ClassVar[str] = "approval_requested"


@dataclass(frozen=True)
class ApprovalDecided(Event):
    step_id: str = ""
    decision: str = ""
    decided_by: str = ""
    comment: str | None = None
    decisions: tuple[Mapping[str, Any], ...] = ()
    edited: Any = None
    name: ClassVar[str] = "approval_decided"


@dataclass(frozen=True)
class ApprovalTimedOut(Event):
    step_id: str = ""
    action: str = ""
    name: ClassVar[str] = "approval_timed_out"


@dataclass(frozen=True)
class TimerStarted(Event):
    step_id: str = ""
    due_at: datetime | None = None
    name: ClassVar[str] = "timer_started"


@dataclass(frozen=True)
class TimerFired(Event):
    step_id: str = ""
    name: ClassVar[str] = "timer_fired"


@dataclass(frozen=True)
class SubProcessStarted(Event):
    step_id: str = ""
    child_id: str = ""
    name: ClassVar[str] = "sub_process_started"


@dataclass(frozen=True)
class LoopedBack(Event):
    source: str = ""
    target: str = ""
    reset: tuple[str, ...] = ()
    visit: int = 1
    reason: str = ""
    name: ClassVar[str] = "looped_back"


@dataclass(frozen=True)
class BudgetWarning(Event):
    cost: Decimal = Decimal(0)
    limit: Decimal = Decimal(0)
    name: ClassVar[str] = "budget_warning"


@dataclass(frozen=True)
class CompensationsQueued(Event):
    step_ids: tuple[str, ...] = ()
    name: ClassVar[str] = "compensations_queued"


@dataclass(frozen=True)
class CompensationFinished(Event):
    step_id: str = ""
    ok: bool = True
    message: str = ""
    name: ClassVar[str] = "compensation_finished"


_REGISTRY: dict[str, type[Event]] = {
    cls.name: cls for cls in (
        ExecutionCreated, ExecutionStarted, ExecutionCompleted, ExecutionFailed,
        ExecutionCancelled, ExecutionPaused, ExecutionResumed, StepQueued, StepStarted,
        StepCompleted, StepFailed, StepSkipped, StepCancelled, StepRetryRequested,
        GatewayEvaluated, ApprovalRequested, ApprovalDecided, ApprovalTimedOut, TimerStarted,
        TimerFired, SubProcessStarted, LoopedBack, BudgetWarning, CompensationsQueued,
        CompensationFinished)
}


def event_from_dict(data: Mapping[str, Any]) -> Event:
    """Rebuild an event from its `to_dict` form (KeyError for an unknown event name)."""
    name = data["event"]
    cls = _REGISTRY[name]
    hints = _hints(name)
    kwargs = {f.name: _load(data[f.name], hints[f.name])
              for f in dataclasses.fields(cls) if f.name in data}
    return cls(**kwargs)


@cache
def _hints(name: str) -> dict[str, Any]:
    return typing.get_type_hints(_REGISTRY[name])


def _dump(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return {str(k): _dump(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_dump(v) for v in value]
    return value


def _load(value: Any, hint: Any) -> Any:
    if value is None:
        return None
    args = typing.get_args(hint)
    base = [a for a in args if a is not type(None)] if args else [hint]
    if datetime in base:
        return datetime.fromisoformat(value)
    if Decimal in base:
        return Decimal(value)
    if typing.get_origin(hint) is tuple and isinstance(value, list):
        return tuple(value)
    return value
