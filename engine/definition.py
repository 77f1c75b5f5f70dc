"""The process definition aggregate: an immutable, typed view of a validated definition."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import Any

import networkx as nx

from engine import schema
from engine.durations import parse_duration
from engine.retry import Backoff, RetryPolicy

__all__ = [
    "AgentTask",
    "Approval",
    "Assignee",
    "Compensation",
    "ErrorAction",
    "Gateway",
    "GatewayType",
    "InputField",
    "Notification",
    "OnError",
    "OutputSpec",
    "ProcessConfig",
    "ProcessDefinition",
    "Route",
    "Step",
    "StepType",
    "SubProcess",
    "Timer",
    "Trigger",
    "build_definition",
]


class StepType(StrEnum):
    AGENT_TASK = "agent_task"
    HUMAN_APPROVAL = "human_approval"
    GATEWAY = "gateway"
    TIMER = "timer"
    NOTIFICATION = "notification"
    SUB_PROCESS = "sub_process"


class GatewayType(StrEnum):
    EXCLUSIVE = "exclusive"
    PARALLEL = "parallel"
    INCLUSIVE = "inclusive"


class ErrorAction(StrEnum):
    FAIL_PROCESS = "fail_process"
    SKIP_STEP = "skip_step"
    GOTO_STEP = "goto_step"


@dataclass(frozen=True)
class OnError:
    action: ErrorAction = ErrorAction.FAIL_PROCESS
    target_step: str | None = None
    max_visits: int = 3


@dataclass(frozen=True)
class Assignee:
    """A username or email, `team:<slug>`, or a team with a role."""

    user: str | None = None
    team: str | None = None
    role: str | None = None

    def __str__(self) -> str:
        if self.user:
            return self.user
        return f"team:{self.team}" + (f" ({self.role})" if self.role else "")


@dataclass(frozen=True)
class Compensation:
    type: str
    agent: str | None = None
    message: str = ""
    channels: tuple[str, ...] = ()
    webhook_url: str | None = None
    recipients: tuple[str, ...] = ()
    subject: str | None = None
    timeout: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class AgentTask:
    agent: str
    message: str
    model: str | None = None
    temperature: float | None = None
    max_cost: Decimal | None = None
    output_schema: Mapping[str, Any] | None = None
    output_key: str | None = None


@dataclass(frozen=True)
class Approval:
    title: str
    description: str
    assignees: tuple[Assignee, ...] = ()
    required_approvals: int = 1
    on_timeout: str = "reject"
    escalate_to: tuple[Assignee, ...] = ()
    reminder_every: timedelta | None = None
    artifacts: tuple[str, ...] = ()
    allow_comments: bool = True
    require_reason_on_reject: bool = False
    allow_edit: bool = False
    changes_goto: str | None = None
    changes_max_visits: int = 3
    forbid_self_approval: bool = False


@dataclass(frozen=True)
class Route:
    target: str
    condition: str | None = None


@dataclass(frozen=True)
class Gateway:
    gateway_type: GatewayType = GatewayType.EXCLUSIVE
    routes: tuple[Route, ...] = ()
    default_route: str | None = None

    @property
    def targets(self) -> tuple[str, ...]:
        """Every step this gateway can route to, routes first, then the default."""
        seen = [r.target for r in self.routes]
        if self.default_route and self.default_route not in seen:
            seen.append(self.default_route)
        return tuple(dict.fromkeys(seen))


@dataclass(frozen=True)
class Timer:
    delay: timedelta | None = None
    until: str | None = None
    timezone: str = "UTC"


@dataclass(frozen=True)
class Notification:
    channels: tuple[str, ...]
    message: str
    webhook_url: str | None = None
    recipients: tuple[str, ...] = ()
    subject: str | None = None


@dataclass(frozen=True)
class SubProcess:
    process_name: str
    version: str | None = None
    input_mapping: Mapping[str, str] = field(default_factory=dict)
    output_key: str | None = None
    wait_for_completion: bool = True


StepSpec = AgentTask | Approval | Gateway | Timer | Notification | SubProcess


@dataclass(frozen=True)
class Step:
    id: str
    name: str
    type: StepType
    spec: StepSpec
    description: str | None = None
    depends_on: tuple[str, ...] = ()
    condition: str | None = None
    timeout: timedelta | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    on_error: OnError = field(default_factory=OnError)
    compensation: Compensation | None = None
    executor: str | None = None
    monitors: tuple[str, ...] = ()
    informed: tuple[str, ...] = ()
    data_handling: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InputField:
    name: str
    type: str = "string"
    description: str | None = None
    default: Any = None
    required: bool = False
    enum: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Trigger:
    id: str
    type: str
    enabled: bool = True
    description: str | None = None
    secret: str | None = None
    cron: str | None = None
    timezone: str = "UTC"
    input: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputSpec:
    name: str
    source: str
    description: str | None = None


@dataclass(frozen=True)
class ProcessConfig:
    max_concurrent_instances: int | None = None
    priority: str = "normal"
    max_cost: Decimal | None = None
    warn_at: float = 0.8
    timeout: timedelta | None = None


@dataclass(frozen=True)
class ProcessDefinition:
    """A validated definition. Built by `engine.loader`; never mutated."""

    name: str
    version: str
    steps: tuple[Step, ...]
    description: str | None = None
    owner: str | None = None
    data_classification: str = "internal"
    tags: tuple[str, ...] = ()
    allowed_users: tuple[str, ...] = ()
    inputs: Mapping[str, InputField] = field(default_factory=dict)
    config: ProcessConfig = field(default_factory=ProcessConfig)
    triggers: tuple[Trigger, ...] = ()
    outputs: tuple[OutputSpec, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def by_id(self) -> Mapping[str, Step]:
        return {s.id: s for s in self.steps}

    def step(self, step_id: str) -> Step:
        """The step with this id (KeyError when there is none)."""
        return self.by_id[step_id]

    @cached_property
    def graph(self) -> nx.DiGraph:
        """Dependency graph: an edge dep → step for every `depends_on` entry."""
        g = nx.DiGraph()
        g.add_nodes_from(s.id for s in self.steps)
        for s in self.steps:
            g.add_edges_from((d, s.id) for d in s.depends_on if d in self.by_id)
        return g

    @cached_property
    def entry_steps(self) -> tuple[str, ...]:
        """Steps with no dependencies: where an execution starts."""
        return tuple(s.id for s in self.steps if not s.depends_on)

    @cached_property
    def dependents(self) -> Mapping[str, tuple[str, ...]]:
        """Direct dependents of each step, in definition order."""
        out: dict[str, list[str]] = {s.id: [] for s in self.steps}
        for s in self.steps:
            for d in s.depends_on:
                if d in out:
                    out[d].append(s.id)
        return {k: tuple(v) for k, v in out.items()}

    def ancestors(self, step_id: str) -> frozenset[str]:
        """Steps that always finish before `step_id` (transitive dependencies)."""
        return frozenset(nx.ancestors(self.graph, step_id))

    def descendants(self, step_id: str) -> frozenset[str]:
        """Steps that come after `step_id`."""
        return frozenset(nx.descendants(self.graph, step_id))

    @property
    def version_tuple(self) -> tuple[int, int]:
        major, _, minor = self.version.partition(".")
        return int(major), int(minor or 0)


# --- building from the normalized tree -----------------------------------------------------


def build_definition(tree: Mapping[str, Any]) -> ProcessDefinition:
    """Typed definition from a structurally valid tree (`engine.structure`)."""
    config = tree.get("config", {})
    default_retry = config.get("default_retry")
    return ProcessDefinition(
        name=tree["name"],
        version=tree.get("version", "1"),
        description=tree.get("description"),
        owner=tree.get("owner"),
        data_classification=tree.get("data_classification", "internal"),
        tags=tuple(tree.get("tags", ())),
        allowed_users=tuple(tree.get("allowed_users", ())),
        inputs={n: _input(n, f) for n, f in tree.get("input", {}).items()},
        config=_config(config),
        triggers=tuple(_trigger(t, i) for i, t in enumerate(tree.get("triggers", ()))),
        steps=tuple(_step(s, default_retry) for s in tree.get("steps", ())),
        outputs=tuple(OutputSpec(o["name"], o["source"], o.get("description"))
                      for o in tree.get("outputs", ())),
        metadata=tree.get("metadata", {}),
    )


def retry_policy(block: Mapping[str, Any] | None, step_type: str) -> RetryPolicy:
    """The retry policy of a step from its (normalized) retry block and type defaults."""
    default_attempts = schema.DEFAULT_MAX_ATTEMPTS.get(step_type, 1)
    if not block:
        return RetryPolicy(max_attempts=default_attempts)
    return RetryPolicy(
        max_attempts=block.get("max_attempts", default_attempts),
        initial_delay=block.get("initial_delay", timedelta(seconds=5)),
        backoff=Backoff(block.get("backoff", "exponential")),
        backoff_multiplier=block.get("backoff_multiplier", 2.0),
        max_delay=block.get("max_delay", timedelta(minutes=5)),
        jitter=block.get("jitter", False),
        retryable_errors=frozenset(block.get("retryable_errors", ())),
        non_retryable_errors=frozenset(block.get("non_retryable_errors", ())),
    )


def _step(s: Mapping[str, Any], default_retry: Mapping[str, Any] | None) -> Step:
    step_type = StepType(s["type"])
    roles = s.get("roles", {})
    on_error = s.get("on_error", {})
    timeout = s.get("timeout")
    if timeout is None and step_type in schema.DEFAULT_TIMEOUTS:
        timeout = parse_duration(schema.DEFAULT_TIMEOUTS[step_type])
    return Step(
        id=s["id"],
        name=s.get("name") or s["id"],
        type=step_type,
        spec=_SPEC_BUILDERS[step_type](s),
        description=s.get("description"),
        depends_on=tuple(dict.fromkeys(s.get("depends_on", ()))),
        condition=s.get("condition"),
        timeout=timeout,
        retry=retry_policy(s.get("retry", default_retry), step_type),
        on_error=OnError(
            action=ErrorAction(on_error.get("action", "fail_process")),
            target_step=on_error.get("target_step"),
            max_visits=on_error.get("max_visits", 3),
        ),
        compensation=_compensation(s["compensation"]) if "compensation" in s else None,
        executor=roles.get("executor"),
        monitors=tuple(roles.get("monitors", ())),
        informed=tuple(roles.get("informed", ())),
        data_handling=s.get("data_handling", {}),
        metadata=s.get("metadata", {}),
    )


def _agent_task(s: Mapping[str, Any]) -> AgentTask:
    return AgentTask(agent=s["agent"], message=s["message"], model=s.get("model"),
                     temperature=s.get("temperature"), max_cost=s.get("max_cost"),
                     output_schema=s.get("output_schema"),
                     output_key=s.get("output_key") or s.get("metadata", {}).get("output_key"))


def _approval(s: Mapping[str, Any]) -> Approval:
    changes = s.get("on_changes_requested") or {}
    return Approval(
        title=s.get("title") or s.get("name") or s["id"],
        description=s.get("description") or "",
        assignees=tuple(_assignee(a) for a in s.get("assignees", ())),
        required_approvals=s.get("required_approvals", 1),
        on_timeout=s.get("on_timeout", "reject"),
        escalate_to=tuple(_assignee(a) for a in s.get("escalate_to", ())),
        reminder_every=s.get("reminder_every"),
        artifacts=tuple(s.get("artifacts", ())),
        allow_comments=s.get("allow_comments", True),
        require_reason_on_reject=s.get("require_reason_on_reject", False),
        allow_edit=s.get("allow_edit", False),
        changes_goto=changes.get("goto"),
        changes_max_visits=changes.get("max_visits", 3),
        forbid_self_approval=s.get("forbid_self_approval", False),
    )


def _gateway(s: Mapping[str, Any]) -> Gateway:
    return Gateway(
        gateway_type=GatewayType(s.get("gateway_type", "exclusive")),
        routes=tuple(Route(r["target"], r.get("condition")) for r in s.get("routes", ())
                     if "target" in r),
        default_route=s.get("default_route"),
    )


def _timer(s: Mapping[str, Any]) -> Timer:
    return Timer(delay=s.get("delay"), until=s.get("until"), timezone=s.get("timezone", "UTC"))


def _notification(s: Mapping[str, Any]) -> Notification:
    return Notification(channels=_channels(s), message=s.get("message", ""),
                        webhook_url=s.get("webhook_url"), recipients=tuple(s.get("recipients", ())),
                        subject=s.get("subject"))


def _sub_process(s: Mapping[str, Any]) -> SubProcess:
    return SubProcess(process_name=s["process_name"], version=s.get("version"),
                      input_mapping=dict(s.get("input_mapping", {})),
                      output_key=s.get("output_key") or s.get("metadata", {}).get("output_key"),
                      wait_for_completion=s.get("wait_for_completion", True))


_SPEC_BUILDERS: Mapping[StepType, Any] = {
    StepType.AGENT_TASK: _agent_task,
    StepType.HUMAN_APPROVAL: _approval,
    StepType.GATEWAY: _gateway,
    StepType.TIMER: _timer,
    StepType.NOTIFICATION: _notification,
    StepType.SUB_PROCESS: _sub_process,
}


def _channels(s: Mapping[str, Any]) -> tuple[str, ...]:
    channels = list(s.get("channels", ()))
    if s.get("channel"):
        channels.insert(0, s["channel"])
    return tuple(dict.fromkeys(channels))


def _compensation(c: Mapping[str, Any]) -> Compensation:
    return Compensation(type=c["type"], agent=c.get("agent"), message=c.get("message", ""),
                        channels=_channels(c), webhook_url=c.get("webhook_url"),
                        recipients=tuple(c.get("recipients", ())), subject=c.get("subject"),
                        timeout=c.get("timeout", timedelta(minutes=5)))


def _assignee(a: str | Mapping[str, Any]) -> Assignee:
    if isinstance(a, Mapping):
        return Assignee(team=a["team"], role=a.get("role"))
    if a.startswith("team:"):
        return Assignee(team=a[5:])
    return Assignee(user=a)


def _input(name: str, f: Mapping[str, Any]) -> InputField:
    enum = f.get("enum")
    return InputField(name=name, type=f.get("type", "string"), description=f.get("description"),
                      default=f.get("default"), required=f.get("required", False),
                      enum=tuple(enum) if isinstance(enum, list | tuple) else None)


def _trigger(t: Mapping[str, Any], index: int) -> Trigger:
    return Trigger(id=t.get("id") or f"trigger-{index + 1}", type=t.get("type", "webhook"),
                   enabled=t.get("enabled", True), description=t.get("description"),
                   secret=t.get("secret"), cron=t.get("cron"),
                   timezone=t.get("timezone", "UTC"), input=t.get("input", {}))


def _config(c: Mapping[str, Any]) -> ProcessConfig:
    budget = c.get("budget", {})
    return ProcessConfig(max_concurrent_instances=c.get("max_concurrent_instances"),
                         priority=c.get("priority", "normal"), max_cost=budget.get("max_cost"),
                         warn_at=budget.get("warn_at", 0.8), timeout=c.get("timeout"))
