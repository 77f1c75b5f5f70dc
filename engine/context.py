"""Pure helpers the execution uses to decide: the expression context, rendered step input,
gateway routing, timer due times and execution outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.definition import (
    AgentTask,
    Approval,
    Gateway,
    GatewayType,
    Notification,
    ProcessDefinition,
    Step,
    SubProcess,
    Timer,
)
from engine.expressions import evaluate_condition, render_template, render_value
from engine.state import ExecutionState

__all__ = ["RenderedStep", "Routing", "build_context", "compute_outputs", "render_step",
           "route_gateway", "timer_due"]


@dataclass(frozen=True)
class RenderedStep:
    """What a job hands to an agent, a channel or a child process."""

    step_id: str
    message: str
    agent: str | None = None
    title: str | None = None
    subject: str | None = None
    url: str | None = None
    recipients: tuple[str, ...] = ()
    artifacts: tuple[str, ...] = ()
    child_input: Mapping[str, Any] | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Routing:
    routes: tuple[str, ...]
    is_default: bool
    evaluated: tuple[Mapping[str, Any], ...]


def build_context(x: ExecutionState, definition: ProcessDefinition) -> dict[str, Any]:
    """The names an expression can see: input, steps, execution, process."""
    inputs = {name: f.default for name, f in definition.inputs.items() if f.default is not None}
    inputs.update(x.input)
    return {
        "input": inputs,
        "steps": {sid: {"output": st.output, "status": st.status.value, "error": st.error}
                  for sid, st in x.steps.items()},
        "execution": {"id": x.id, "started_at": _iso(x.started_at),
                      "triggered_by": x.triggered_by, "started_by": x.started_by,
                      "parent_id": x.parent_id},
        "process": {"name": definition.name, "version": definition.version},
    }


def render_step(x: ExecutionState, definition: ProcessDefinition, step_id: str) -> RenderedStep:
    """Render the templates of a step against the current context."""
    step = definition.step(step_id)
    ctx = build_context(x, definition)
    warnings: list[str] = []

    def text(template: str | None) -> str:
        if not template:
            return ""
        result = render_template(template, ctx)
        warnings.extend(result.warnings)
        return result.text

    spec = step.spec
    if isinstance(spec, AgentTask):
        return RenderedStep(step_id, text(spec.message), agent=text(spec.agent),
                            warnings=tuple(warnings))
    if isinstance(spec, Notification):
        return RenderedStep(step_id, text(spec.message), subject=text(spec.subject),
                            url=text(spec.webhook_url) or None,
                            recipients=tuple(text(r) for r in spec.recipients),
                            warnings=tuple(warnings))
    if isinstance(spec, Approval):
        return RenderedStep(step_id, text(spec.description), title=text(spec.title),
                            artifacts=tuple(text(a) for a in spec.artifacts),
                            warnings=tuple(warnings))
    if isinstance(spec, SubProcess):
        child = {k: render_value(v, ctx) for k, v in spec.input_mapping.items()}
        return RenderedStep(step_id, "", child_input=child, warnings=tuple(warnings))
    return RenderedStep(step_id, "", warnings=tuple(warnings))


def condition_holds(x: ExecutionState, definition: ProcessDefinition, step: Step) -> bool:
    """A step's condition against the current context (no condition: true)."""
    if not step.condition:
        return True
    return evaluate_condition(step.condition, build_context(x, definition))


def route_gateway(x: ExecutionState, definition: ProcessDefinition, step: Step) -> Routing:
    """Which routes a gateway takes, and how each condition evaluated."""
    assert isinstance(step.spec, Gateway)
    gw = step.spec
    ctx = build_context(x, definition)
    evaluated: list[dict[str, Any]] = []
    chosen: list[str] = []
    for route in gw.routes:
        if gw.gateway_type is GatewayType.PARALLEL:
            result = True
        elif gw.gateway_type is GatewayType.EXCLUSIVE and chosen:
            evaluated.append({"target": route.target, "condition": route.condition,
                              "result": None})
            continue
        else:
            result = route.condition is None or evaluate_condition(route.condition, ctx)
        evaluated.append({"target": route.target, "condition": route.condition,
                          "result": result})
        if result and route.target not in chosen:
            chosen.append(route.target)
    if chosen or not gw.default_route:
        return Routing(tuple(chosen), False, tuple(evaluated))
    return Routing((gw.default_route,), True, tuple(evaluated))


def timer_due(x: ExecutionState, definition: ProcessDefinition, step: Step,
              now: datetime) -> datetime:
    """When a timer fires; ValueError with a clear message for a bad `until`."""
    assert isinstance(step.spec, Timer)
    timer = step.spec
    if timer.delay is not None:
        return now + timer.delay
    raw = timer.until or ""
    text = render_template(raw, build_context(x, definition)).text.strip()
    try:
        due = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise ValueError(f"timer '{step.id}': until '{text}' is not an ISO date-time") from e
    if due.tzinfo is None:
        due = due.replace(tzinfo=ZoneInfo(timer.timezone))
    return due


def compute_outputs(x: ExecutionState, definition: ProcessDefinition
                    ) -> tuple[dict[str, Any], list[str]]:
    """Execution outputs from their templates, and warnings for missing values."""
    ctx = build_context(x, definition)
    outputs: dict[str, Any] = {}
    warnings: list[str] = []
    for o in definition.outputs:
        outputs[o.name] = render_value(o.source, ctx)
        warnings.extend(f"output '{o.name}': {w}" for w in render_template(o.source, ctx)
                        .warnings)
    return outputs, warnings


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


ZERO = timedelta(0)
