"""Properties of executions of random valid acyclic processes, driven by random agents and
approvers: they end, respect dependencies, never block on skipped branches, and their
history and snapshots rebuild them exactly."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine import events as ev
from engine.definition import Gateway, ProcessDefinition
from engine.execution import ProcessExecution
from engine.loader import Validation, validate_definition
from engine.status import ExecutionStatus, SkipReason, StepStatus
from tests.support.sim import Simulation

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

CODES = ("TIMEOUT", "AGENT_ERROR", "RATE_LIMITED", "VALIDATION_ERROR")
DECISIONS = ("approved", "rejected", "needs_changes", "timeout")
# Events that show a step was taken up: it must not happen before its dependencies finished.
TAKEN_UP = (ev.StepQueued, ev.StepStarted, ev.ApprovalRequested, ev.TimerStarted,
            ev.GatewayEvaluated)
DISPATCHED = (ev.StepQueued, ev.ApprovalRequested, ev.TimerStarted, ev.GatewayEvaluated)


# --- random processes ------------------------------------------------------------------------
# Strategies are built once here: building them inside the draws dominates the run time.

BOOL = st.booleans()
THRESHOLD = st.integers(0, 100)
OPERATOR = st.sampled_from([">=", "<", ">"])
ATTEMPTS = st.integers(1, 3)
DELAY = st.integers(1, 30)
BACKOFF = st.sampled_from(["fixed", "linear", "exponential"])
CODE_LIST = st.lists(st.sampled_from(CODES), max_size=2, unique=True)
CODE_FIELD = st.sampled_from(["retryable_errors", "non_retryable_errors"])
ONE_IN_FOUR = st.integers(0, 3)
ONE_IN_EIGHT = st.integers(0, 7)
GATEWAY_TYPE = st.sampled_from(["exclusive", "inclusive", "parallel"])
ON_TIMEOUT = st.sampled_from(["reject", "auto_approve", "skip"])
TIMER_DELAY = st.integers(1, 600)
DEP_COUNT = st.sampled_from([0, 1, 1, 1, 2, 2, 3])
KIND = st.sampled_from(["agent_task"] * 5 + ["human_approval", "timer", "notification"])
KIND_OR_GATEWAY = st.sampled_from(["agent_task"] * 5 + ["human_approval", "timer",
                                                         "notification"] + ["gateway"] * 3)
ON_ERROR = st.sampled_from(["skip_step", "skip_step", "fail_process"])


def _score_condition(draw: st.DrawFn, agents: list[str]) -> str:
    """`steps.<agent>.output.score >= N` on an earlier agent, else on the input."""
    test = f"{draw(OPERATOR)} {draw(THRESHOLD)}"
    if agents and draw(BOOL):
        return f"steps.{draw(st.sampled_from(agents))}.output.score {test}"
    return f"input.level {test}"


def _retry(draw: st.DrawFn) -> dict[str, Any]:
    block: dict[str, Any] = {"max_attempts": draw(ATTEMPTS),
                             "initial_delay": f"{draw(DELAY)}s", "backoff": draw(BACKOFF)}
    codes = draw(CODE_LIST)
    if codes:
        block[draw(CODE_FIELD)] = codes
    if draw(BOOL):
        block["jitter"] = True
    return block


def _gateway(draw: st.DrawFn, step: dict[str, Any], dependents: list[str],
             agents: list[str]) -> None:
    kind = draw(GATEWAY_TYPE)
    targets = draw(st.lists(st.sampled_from(dependents), min_size=1, unique=True))
    step.update(type="gateway", gateway_type=kind)
    if kind == "parallel":
        step["routes"] = [{"target": t} for t in targets]
        return
    step["routes"] = [{"target": t, "condition": _score_condition(draw, agents)}
                      for t in targets]
    if draw(BOOL):
        step["default_route"] = draw(st.sampled_from(dependents))


def _typed(draw: st.DrawFn, step: dict[str, Any], kind: str) -> None:
    step["type"] = kind
    if kind in ("agent_task", "notification"):
        if kind == "agent_task":
            step.update(agent="bot", message=f"do {step['id']}")
        else:
            step.update(channel="webhook", message=f"tell {step['id']}",
                        webhook_url="https://hooks.example.com/x")
        if draw(BOOL):
            step["retry"] = _retry(draw)
        if draw(ONE_IN_FOUR) == 0:
            step["compensation"] = {"type": "agent_task", "agent": "bot", "message": "undo"}
    elif kind == "human_approval":
        step.update(title=f"approve {step['id']}", timeout="1h", on_timeout=draw(ON_TIMEOUT))
    elif kind == "timer":
        if draw(BOOL):
            step["delay"] = f"{draw(TIMER_DELAY)}s"
        else:
            step["until"] = "2026-01-02T00:00:00Z"


@st.composite
def processes(draw: st.DrawFn) -> dict[str, Any]:
    """A random valid acyclic process, as the dict a YAML file would give."""
    n = draw(st.integers(3, 15))
    ids = [f"s{i}" for i in range(n)]
    deps: list[list[str]] = [[]]
    for i in range(1, n):
        k = min(draw(DEP_COUNT), i)
        deps.append(draw(st.lists(st.sampled_from(ids[:i]), min_size=k, max_size=k,
                                  unique=True)))
    dependents = {s: [ids[j] for j in range(n) if s in deps[j]] for s in ids}
    ancestors: dict[str, set[str]] = {}
    kinds: dict[str, str] = {}
    steps: list[dict[str, Any]] = []
    for i, step_id in enumerate(ids):
        ancestors[step_id] = set(deps[i]).union(*(ancestors[d] for d in deps[i]))
        agents = sorted(a for a in ancestors[step_id] if kinds[a] == "agent_task")
        kinds[step_id] = draw(KIND_OR_GATEWAY if dependents[step_id] else KIND)
        step: dict[str, Any] = {"id": step_id}
        if deps[i]:
            step["depends_on"] = deps[i]
        if kinds[step_id] == "gateway":
            _gateway(draw, step, dependents[step_id], agents)
        else:
            _typed(draw, step, kinds[step_id])
        if draw(ONE_IN_FOUR) == 0:
            step["condition"] = _score_condition(draw, agents)
        if kinds[step_id] != "timer" and draw(BOOL):
            step["on_error"] = draw(ON_ERROR)
        steps.append(step)
    process: dict[str, Any] = {"name": "random", "steps": steps}
    if draw(ONE_IN_EIGHT) == 0:
        process["config"] = {"budget": {"max_cost": "$0.50", "warn_at": 0.5}}
    return process


Outcome = tuple[str, Any]


def _outcome(kind: int, score: int, as_text: bool, code: str) -> Outcome:
    if kind >= 4:
        return "fail", code
    return "ok", {"score": str(score) if as_text else score}


# Mostly successes (shrinking towards them), scores sometimes written as text; one outcome
# for each of the first three attempts.
OUTCOME = st.builds(_outcome, st.integers(0, 5), THRESHOLD, BOOL, st.sampled_from(CODES))
OUTCOMES = st.tuples(OUTCOME, OUTCOME, OUTCOME)
DECISION = st.sampled_from(["approved", "approved", "approved", *DECISIONS[1:]])


@dataclass(frozen=True)
class Case:
    """A process with the agents' and approvers' behaviour fixed in advance."""

    data: dict[str, Any]
    level: int
    outcomes: Mapping[str, tuple[Outcome, ...]]
    decisions: Mapping[str, str]

    @cached_property
    def validation(self) -> Validation:
        return validate_definition(self.data)

    @property
    def definition(self) -> ProcessDefinition:
        assert self.validation.definition is not None, [
            i.format() for i in self.validation.errors]
        return self.validation.definition

    def agent(self, step_id: str, attempt: int, message: str) -> Outcome:
        tries = self.outcomes[step_id]
        return tries[min(attempt, len(tries)) - 1]

    def approver(self, step_id: str, visit: int) -> str:
        return self.decisions[step_id]

    def simulation(self) -> Simulation:
        return Simulation(self.definition, agent=self.agent, approver=self.approver,
                          cost_per_step=Decimal("0.10"))


@st.composite
def cases(draw: st.DrawFn) -> Case:
    data = draw(processes())
    by_type: dict[str, list[str]] = {}
    for s in data["steps"]:
        by_type.setdefault(s["type"], []).append(s["id"])
    workers = by_type.get("agent_task", []) + by_type.get("notification", [])
    return Case(data=data, level=draw(THRESHOLD),
                outcomes={s: draw(OUTCOMES) for s in workers},
                decisions={s: draw(DECISION) for s in by_type.get("human_approval", [])})


def run(case: Case, sim: Simulation | None = None) -> tuple[ProcessExecution, Simulation]:
    assume(case.validation.ok)
    sim = sim or case.simulation()
    return sim.run({"level": case.level}), sim


# --- helpers for the checks ------------------------------------------------------------------


def passes_control(x: ProcessExecution, d: ProcessDefinition, dep: str, step_id: str) -> bool:
    st_ = x.steps[dep]
    if st_.status is StepStatus.SKIPPED:
        return SkipReason(st_.skip_reason).passes_control
    if st_.status is not StepStatus.COMPLETED:
        return False
    spec = d.step(dep).spec
    if isinstance(spec, Gateway) and step_id in spec.targets:
        return step_id in st_.output["routes"]
    return True


def not_chosen(x: ProcessExecution, d: ProcessDefinition, dep: str, step_id: str) -> bool:
    spec = d.step(dep).spec
    return (isinstance(spec, Gateway) and step_id in spec.targets
            and x.steps[dep].status is StepStatus.COMPLETED
            and step_id not in x.steps[dep].output["routes"])


def finishes(event: ev.Event) -> str | None:
    """The step an event finishes, if it finishes one."""
    if isinstance(event, ev.StepCompleted | ev.StepSkipped | ev.StepCancelled):
        return event.step_id
    if isinstance(event, ev.StepFailed) and not event.will_retry:
        return event.step_id
    return None


def round_trip(x: ProcessExecution) -> ProcessExecution:
    return ProcessExecution.from_dict(json.loads(json.dumps(x.to_dict())))


# --- properties ------------------------------------------------------------------------------


@SETTINGS
@given(cases())
def test_every_execution_ends_completed_or_failed_with_no_step_left_active(case: Case) -> None:
    x, _ = run(case)
    assert x.status in (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED)
    assert not [s for s, st_ in x.steps.items() if st_.status.is_active]
    assert x.finished_at is not None
    if x.status is ExecutionStatus.FAILED:
        assert x.error is not None
        failed = [s for s, st_ in x.steps.items() if st_.status is StepStatus.FAILED]
        assert failed == ([x.error["step_id"]] if x.error["step_id"] else [])


@SETTINGS
@given(cases())
def test_no_step_is_taken_up_before_all_its_dependencies_have_finished(case: Case) -> None:
    _, sim = run(case)
    d = case.definition
    finished: set[str] = set()
    for event in sim.events:
        step_id = getattr(event, "step_id", None)
        decided = isinstance(event, ev.StepSkipped) and event.reason != "error_skipped"
        if step_id is not None and (isinstance(event, TAKEN_UP) or decided):
            missing = set(d.step(step_id).depends_on) - finished
            assert not missing, f"{event.name} of {step_id} before {missing} finished"
        done = finishes(event)
        if done is not None:
            error_skip = isinstance(event, ev.StepSkipped) and event.reason == "error_skipped"
            assert done not in finished or error_skip, f"{done} finished twice"
            finished.add(done)


@SETTINGS
@given(cases())
def test_every_step_and_so_every_join_is_taken_up_at_most_once(case: Case) -> None:
    _, sim = run(case)
    d = case.definition
    taken: dict[str, int] = {}
    for event in sim.events:
        if isinstance(event, DISPATCHED) and getattr(event, "attempt", 1) == 1:
            taken[event.step_id] = taken.get(event.step_id, 0) + 1
    assert all(n == 1 for n in taken.values()), taken
    joins = [s.id for s in d.steps if len(s.depends_on) >= 2]
    completions = [e.step_id for e in sim.events if isinstance(e, ev.StepCompleted)]
    for join in joins:
        assert completions.count(join) <= 1


@SETTINGS
@given(cases())
def test_skipped_branches_never_block_and_only_steps_without_control_skip_through(
        case: Case) -> None:
    x, _ = run(case)
    d = case.definition
    if x.status is ExecutionStatus.COMPLETED:
        assert {st_.status for st_ in x.steps.values()} <= {StepStatus.COMPLETED,
                                                             StepStatus.SKIPPED}
    for step in d.steps:
        st_ = x.steps[step.id]
        if st_.status is StepStatus.PENDING:
            continue
        control = not step.depends_on or any(passes_control(x, d, dep, step.id)
                                             for dep in step.depends_on)
        reason = st_.skip_reason
        if reason in (SkipReason.ROUTE_NOT_TAKEN, SkipReason.UPSTREAM_SKIPPED):
            assert not control, f"{step.id} was skipped ({reason}) although control passed"
            unchosen = any(not_chosen(x, d, dep, step.id) for dep in step.depends_on)
            assert (reason == SkipReason.ROUTE_NOT_TAKEN) is unchosen
        else:
            assert control, f"{step.id} is {st_.status} although no dependency passed control"


@SETTINGS
@given(cases())
def test_replaying_the_history_rebuilds_the_same_execution(case: Case) -> None:
    x, sim = run(case)
    assert x.pull_events() == []
    assert ProcessExecution.replay(sim.events).to_dict() == x.to_dict()
    wire = [json.loads(json.dumps(e.to_dict())) for e in sim.events]
    replayed = ProcessExecution.replay(ev.event_from_dict(e) for e in wire)
    assert replayed.to_dict() == x.to_dict()
    assert replayed == x
    assert replayed.event_count == len(sim.events)


@SETTINGS
@given(cases())
def test_a_snapshot_saved_after_any_command_loads_as_an_equal_execution_that_ends_the_same(
        case: Case) -> None:
    plain, _ = run(case)
    saved: list[int] = []

    def save_and_load(x: ProcessExecution) -> ProcessExecution:
        loaded = round_trip(x)
        assert loaded.to_dict() == x.to_dict()
        assert loaded == x
        saved.append(x.event_count)
        return loaded

    sim = case.simulation()
    sim.checkpoint = save_and_load
    reloaded, sim = run(case, sim)
    assert len(saved) == len(sim.log)
    assert reloaded is sim.execution
    assert reloaded.to_dict() == plain.to_dict()
