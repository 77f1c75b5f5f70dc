"""How control flows through an execution: ordering, gateways, conditions, skips, outputs,
the status transition tables and the event wire format."""

import dataclasses
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine import events as ev
from engine.execution import ProcessExecution, RunStep
from engine.status import (
    EXECUTION_TRANSITIONS,
    STEP_TRANSITIONS,
    ExecutionStatus,
    StepStatus,
    TransitionError,
    check_execution_transition,
    check_step_transition,
)
from tests.support.sim import T0, Simulation, fail, load, names, started, statuses, succeed

COMPAT = Path("/work/shared/compat/trinity")
S = timedelta(seconds=1)


def agent_steps(*specs: str) -> str:
    """YAML for agent tasks written as 'id' or 'id<-dep1,dep2'."""
    lines = []
    for spec in specs:
        step_id, _, deps = spec.partition("<-")
        depends = f", depends_on: [{deps}]" if deps else ""
        lines.append(f"  - {{id: {step_id}, type: agent_task, agent: bot, "
                     f"message: do {step_id}{depends}}}")
    return "\n".join(lines)


def process(*specs: str, extra: str = "") -> Any:
    return load("name: flow\nsteps:\n" + agent_steps(*specs) + "\n" + extra)


# --- ordering --------------------------------------------------------------------------------


def test_a_sequential_chain_runs_each_step_after_the_previous_one_and_then_completes() -> None:
    d = process("a", "b<-a", "c<-b")
    x, commands = started(d)
    assert commands == [RunStep("a", 1)]
    assert names(x) == ["execution_created", "execution_started", "step_queued"]
    assert statuses(x) == {"a": "queued", "b": "pending", "c": "pending"}

    assert succeed(x, d, "a", {"n": 1}) == [RunStep("b", 1)]
    assert succeed(x, d, "b", {"n": 2}) == [RunStep("c", 1)]
    assert succeed(x, d, "c", {"n": 3}) == []
    assert x.status is ExecutionStatus.COMPLETED
    assert statuses(x) == {"a": "completed", "b": "completed", "c": "completed"}
    assert x.steps["b"].output == {"n": 2}
    assert names(x)[-2:] == ["step_completed", "execution_completed"]


def test_in_a_diamond_the_join_runs_once_after_both_branches_finish() -> None:
    d = process("a", "left<-a", "right<-a", "join<-left,right")
    x, _ = started(d)
    assert succeed(x, d, "a") == [RunStep("left", 1), RunStep("right", 1)]
    assert succeed(x, d, "left") == []
    assert x.steps["join"].status is StepStatus.PENDING
    assert succeed(x, d, "right") == [RunStep("join", 1)]
    succeed(x, d, "join")
    assert x.status is ExecutionStatus.COMPLETED
    queued = [e for e in x.pull_events() if isinstance(e, ev.StepQueued)]
    assert [e.step_id for e in queued].count("join") == 1


def test_a_fast_branch_moves_on_while_its_slow_sibling_is_still_running() -> None:
    d = process("slow", "fast", "after_fast<-fast", "join<-slow,after_fast")
    x, commands = started(d)
    assert commands == [RunStep("slow", 1), RunStep("fast", 1)]
    assert x.begin_attempt("slow", 1, T0)
    assert succeed(x, d, "fast") == [RunStep("after_fast", 1)]
    assert x.steps["slow"].status is StepStatus.RUNNING
    assert succeed(x, d, "after_fast") == []
    assert x.complete_step(d, "slow", 1, {}, T0) == [RunStep("join", 1)]


# --- gateways --------------------------------------------------------------------------------

EXCLUSIVE = """
  - id: route
    type: gateway
    depends_on: [score]
    routes:
      - {target: high, condition: "steps.score.output.value >= 50"}
      - {target: top, condition: "steps.score.output.value >= 80"}
    default_route: low
"""


def exclusive() -> Any:
    return process("score", "high<-route", "top<-route", "low<-route", extra=EXCLUSIVE)


def test_an_exclusive_gateway_takes_the_first_route_whose_condition_holds() -> None:
    d = exclusive()
    x, _ = started(d)
    assert succeed(x, d, "score", {"value": 90}) == [RunStep("high", 1)]
    assert x.steps["route"].output == {
        "route": "high", "routes": ["high"], "is_default": False,
        "evaluated_conditions": [
            {"target": "high", "condition": "steps.score.output.value >= 50", "result": True},
            {"target": "top", "condition": "steps.score.output.value >= 80", "result": None},
        ]}
    for untaken in ("top", "low"):
        assert x.steps[untaken].status is StepStatus.SKIPPED
        assert x.steps[untaken].skip_reason == "route_not_taken"
        assert x.steps[untaken].skip_detail == "route not taken by route"
    evaluated = [e for e in x.pull_events() if isinstance(e, ev.GatewayEvaluated)]
    assert [(e.gateway_type, e.routes, e.is_default) for e in evaluated] == [
        ("exclusive", ("high",), False)]


def test_an_exclusive_gateway_takes_its_default_route_when_no_condition_holds() -> None:
    d = exclusive()
    x, _ = started(d)
    assert succeed(x, d, "score", {"value": 10}) == [RunStep("low", 1)]
    output = x.steps["route"].output
    assert (output["route"], output["routes"], output["is_default"]) == ("low", ["low"], True)
    assert [c["result"] for c in output["evaluated_conditions"]] == [False, False]
    assert x.steps["high"].skip_reason == x.steps["top"].skip_reason == "route_not_taken"


NO_DEFAULT = """
  - id: route
    type: gateway
    depends_on: [score]
    routes:
      - {target: high, condition: "steps.score.output.value >= 50"}
"""


def test_a_gateway_with_no_matching_route_and_no_default_fails_the_execution() -> None:
    d = process("score", "high<-route", "other", extra=NO_DEFAULT)
    x, _ = started(d)
    assert x.begin_attempt("other", 1, T0)
    commands = succeed(x, d, "score", {"value": 1})
    assert x.steps["route"].status is StepStatus.FAILED
    assert x.steps["route"].error is not None
    assert x.steps["route"].error["code"] == "NO_MATCHING_ROUTE"
    assert x.status is ExecutionStatus.FAILED
    assert x.error is not None
    assert (x.error["code"], x.error["step_id"]) == ("NO_MATCHING_ROUTE", "route")
    assert "route" in x.error["message"] and "default_route" in x.error["message"]
    assert [type(c).__name__ for c in commands] == ["CancelStep"]
    assert x.steps["high"].status is StepStatus.PENDING


def test_after_a_failed_gateway_no_step_is_decided_or_dispatched_any_more() -> None:
    d = load("""
        name: late
        steps:
          - {id: slow, type: agent_task, agent: bot, message: wait}
          - {id: score, type: agent_task, agent: bot, message: rate}
          - id: route
            type: gateway
            depends_on: [score]
            routes: [{target: high, condition: "steps.score.output.value >= 50"}]
          - {id: high, type: agent_task, agent: bot, message: go, depends_on: [route]}
          - {id: after, type: agent_task, agent: bot, message: go, depends_on: [slow, score]}
        """)
    x, _ = started(d)
    assert x.begin_attempt("slow", 1, T0)
    commands = succeed(x, d, "score", {"value": 1})
    assert x.status is ExecutionStatus.FAILED
    assert not any(isinstance(c, RunStep) for c in commands)
    assert statuses(x) == {"slow": "cancelled", "score": "completed", "route": "failed",
                           "high": "pending", "after": "pending"}
    assert names(x)[-1] == "execution_failed"


def test_a_gateway_without_a_route_skipped_by_on_error_passes_control_to_its_targets() -> None:
    extra = NO_DEFAULT + "    on_error: skip_step\n"
    d = process("score", "high<-route", extra=extra)
    x, _ = started(d)
    assert succeed(x, d, "score", {"value": 1}) == [RunStep("high", 1)]
    assert x.steps["route"].skip_reason == "error_skipped"
    assert "NO_MATCHING_ROUTE" in (x.steps["route"].skip_detail or "")


INCLUSIVE = """
  - id: route
    type: gateway
    gateway_type: inclusive
    depends_on: [score]
    routes:
      - {target: legal, condition: "steps.score.output.risk >= 5"}
      - {target: finance, condition: "steps.score.output.amount > 1000"}
      - {target: ops, condition: "steps.score.output.urgent == true"}
    default_route: auto
"""


def inclusive() -> Any:
    return process("score", "legal<-route", "finance<-route", "ops<-route", "auto<-route",
                   "join<-legal,finance,ops,auto", extra=INCLUSIVE)


def test_an_inclusive_gateway_takes_every_route_whose_condition_holds() -> None:
    d = inclusive()
    x, _ = started(d)
    commands = succeed(x, d, "score", {"risk": 7, "amount": 5000, "urgent": False})
    assert commands == [RunStep("legal", 1), RunStep("finance", 1)]
    assert x.steps["route"].output["routes"] == ["legal", "finance"]
    assert x.steps["route"].output["route"] == "legal"
    assert [c["result"] for c in x.steps["route"].output["evaluated_conditions"]] == [
        True, True, False]
    assert x.steps["ops"].skip_reason == x.steps["auto"].skip_reason == "route_not_taken"
    assert succeed(x, d, "legal") == []
    assert succeed(x, d, "finance") == [RunStep("join", 1)]


def test_an_inclusive_gateway_takes_its_default_route_when_no_condition_holds() -> None:
    d = inclusive()
    x, _ = started(d)
    assert succeed(x, d, "score", {"risk": 1, "amount": 5, "urgent": False}) == [
        RunStep("auto", 1)]
    assert x.steps["route"].output["is_default"] is True
    assert succeed(x, d, "auto") == [RunStep("join", 1)]


def test_a_parallel_gateway_takes_every_route() -> None:
    extra = """
  - id: fan
    type: gateway
    gateway_type: parallel
    depends_on: [a]
    routes: [{target: b}, {target: c}]
"""
    d = process("a", "b<-fan", "c<-fan", "join<-b,c", extra=extra)
    x, _ = started(d)
    assert succeed(x, d, "a") == [RunStep("b", 1), RunStep("c", 1)]
    assert x.steps["fan"].output["routes"] == ["b", "c"]
    assert x.steps["fan"].output["evaluated_conditions"] == [
        {"target": "b", "condition": None, "result": True},
        {"target": "c", "condition": None, "result": True}]


def test_a_join_after_an_exclusive_gateway_runs_once_and_untaken_branches_skip_through() -> None:
    extra = """
  - id: route
    type: gateway
    depends_on: [score]
    routes:
      - {target: accept, condition: "steps.score.output.ok == true"}
    default_route: decline
"""
    d = process("score", "accept<-route", "accept_more<-accept", "decline<-route",
                "join<-accept_more,decline", extra=extra)
    x, _ = started(d)
    assert succeed(x, d, "score", {"ok": False}) == [RunStep("decline", 1)]
    assert x.steps["accept"].skip_reason == "route_not_taken"
    assert x.steps["accept_more"].skip_reason == "upstream_skipped"
    assert x.steps["accept_more"].skip_detail == "skipped because accept passed no control"
    assert succeed(x, d, "decline") == [RunStep("join", 1)]
    succeed(x, d, "join")
    assert x.status is ExecutionStatus.COMPLETED
    assert statuses(x) == {"score": "completed", "route": "completed", "accept": "skipped",
                           "accept_more": "skipped", "decline": "completed", "join": "completed"}


def test_a_step_that_depends_on_a_gateway_but_is_not_one_of_its_targets_still_runs() -> None:
    extra = """
  - id: route
    type: gateway
    depends_on: [score]
    routes:
      - {target: chosen, condition: "steps.score.output.ok == true"}
      - {target: other, condition: "steps.score.output.ok == false"}
"""
    d = process("score", "chosen<-route", "other<-route", "audit<-route", extra=extra)
    x, _ = started(d)
    assert succeed(x, d, "score", {"ok": True}) == [RunStep("chosen", 1), RunStep("audit", 1)]
    assert x.steps["other"].skip_reason == "route_not_taken"


# --- conditions and skips --------------------------------------------------------------------


def conditional(condition: str) -> Any:
    return load(f"""
        name: cond
        steps:
          - {{id: score, type: agent_task, agent: bot, message: rate it}}
          - id: publish
            type: agent_task
            agent: bot
            message: publish
            depends_on: [score]
            condition: "{condition}"
          - {{id: announce, type: agent_task, agent: bot, message: tell, depends_on: [publish]}}
        """)


def test_a_step_whose_condition_is_false_is_skipped_and_its_dependents_skip_too() -> None:
    d = conditional("steps.score.output.value >= 80")
    x, _ = started(d)
    assert succeed(x, d, "score", {"value": 40}) == []
    assert x.status is ExecutionStatus.COMPLETED
    assert x.steps["publish"].skip_reason == "condition_not_met"
    assert x.steps["publish"].skip_detail == "condition not met: steps.score.output.value >= 80"
    assert x.steps["announce"].skip_reason == "upstream_skipped"


@pytest.mark.parametrize(("value", "runs"), [("85", True), ("9", False), (80, True),
                                             ("80.5", True), ("abc", False)])
def test_numbers_an_agent_returns_as_text_are_compared_as_numbers(value: Any,
                                                                  runs: bool) -> None:
    d = conditional("steps.score.output.value >= 80")
    x, _ = started(d)
    commands = succeed(x, d, "score", {"value": value})
    assert (commands == [RunStep("publish", 1)]) is runs


def test_a_condition_written_with_placeholders_compares_values_not_text() -> None:
    d = conditional("{{steps.score.output.value}} >= 80")
    x, _ = started(d)
    assert succeed(x, d, "score", {"value": "100"}) == [RunStep("publish", 1)]


def test_a_step_skipped_by_on_error_passes_control_to_the_steps_after_it() -> None:
    d = load("""
        name: skipper
        steps:
          - {id: flaky, type: agent_task, agent: bot, message: try, on_error: skip_step,
             retry: {max_attempts: 1}}
          - {id: next, type: agent_task, agent: bot, message: go on, depends_on: [flaky]}
        """)
    x, _ = started(d)
    assert fail(x, d, "flaky", "AGENT_ERROR") == [RunStep("next", 1)]
    st = x.steps["flaky"]
    assert (st.status, st.skip_reason) == (StepStatus.SKIPPED, "error_skipped")
    assert st.skip_detail == "skipped after error AGENT_ERROR: AGENT_ERROR happened"
    assert st.error == {"code": "AGENT_ERROR", "message": "AGENT_ERROR happened", "attempt": 1}
    succeed(x, d, "next")
    assert x.status is ExecutionStatus.COMPLETED


def i3(score: Any, decision: str) -> dict[str, tuple[str, str | None]]:
    d = load((COMPAT / "i3-complex-workflow.yaml").read_text())

    def agent(step_id: str, attempt: int, message: str) -> tuple[str, Any]:
        return "ok", {"quality_score": score} if step_id == "analyze-data" else {"ok": True}

    x = Simulation(d, agent=agent, approver=lambda step_id, visit: decision).run()
    assert x.status is ExecutionStatus.COMPLETED
    return {k: (st.status.value, st.skip_reason) for k, st in x.steps.items()}


def test_a_rejection_skipped_by_on_error_lets_a_status_condition_downstream_run() -> None:
    assert i3("85", "rejected") == {
        "analyze-data": ("completed", None),
        "score-router": ("completed", None),
        "quality-review": ("skipped", "error_skipped"),
        "auto-archive": ("skipped", "route_not_taken"),
        "publish-high-quality": ("skipped", "condition_not_met"),
        "decline-high-quality": ("completed", None),
        "final-report": ("completed", None),
    }


def test_an_approval_in_the_complex_workflow_publishes_and_skips_the_decline() -> None:
    steps = i3(92, "approved")
    assert steps["publish-high-quality"] == ("completed", None)
    assert steps["decline-high-quality"] == ("skipped", "condition_not_met")
    assert steps["final-report"] == ("completed", None)


def test_a_low_score_in_the_complex_workflow_archives_and_skips_the_review_branch() -> None:
    steps = i3("12", "approved")
    assert steps["quality-review"] == ("skipped", "route_not_taken")
    assert steps["publish-high-quality"] == ("skipped", "upstream_skipped")
    assert steps["decline-high-quality"] == ("skipped", "upstream_skipped")
    assert steps["auto-archive"] == ("completed", None)
    assert steps["final-report"] == ("completed", None)


# --- execution outputs -----------------------------------------------------------------------


def test_execution_outputs_are_rendered_from_templates_when_the_execution_completes() -> None:
    d = load("""
        name: outs
        steps:
          - {id: a, type: agent_task, agent: bot, message: go}
        outputs:
          - {name: whole, source: "{{ steps.a.output }}"}
          - {name: padded, source: "  {{ steps.a.output.count }} "}
          - {name: text, source: "score {{ steps.a.output.count }}"}
          - {name: fallback, source: "{{ steps.a.output.missing || steps.a.output.name }}"}
          - {name: defaulted, source: "{{ steps.a.output.missing | default('none') }}"}
          - {name: absent, source: "{{ steps.a.output.missing }}"}
          - "{{ steps.a.output.name }}"
        """)
    x, _ = started(d)
    succeed(x, d, "a", {"count": 3, "name": "zed", "response": "raw"})
    assert x.status is ExecutionStatus.COMPLETED
    outputs = dict(x.outputs)
    assert outputs.pop("whole") == {"count": 3, "name": "zed", "response": "raw"}
    assert outputs.pop("padded") == 3
    assert outputs.pop("text") == "score 3"
    assert outputs.pop("fallback") == "zed"
    assert outputs.pop("defaulted") == "none"
    assert outputs.pop("absent") is None
    assert list(outputs.values()) == ["zed"]
    assert len(x.output_warnings) == 1
    assert x.output_warnings[0].startswith("output 'absent': ")
    assert "steps.a.output.missing" in x.output_warnings[0]
    completed = [e for e in x.pull_events() if isinstance(e, ev.ExecutionCompleted)]
    assert completed[0].outputs == x.outputs


# --- transition tables -----------------------------------------------------------------------


def _illegal(table: dict[Any, frozenset[Any]]) -> list[tuple[Any, Any]]:
    return [(old, new) for old in table for new in type(old)
            if new is not old and new not in table[old]]


@pytest.mark.parametrize(("old", "new"), _illegal(EXECUTION_TRANSITIONS))
def test_an_execution_status_change_outside_the_table_is_refused(
        old: ExecutionStatus, new: ExecutionStatus) -> None:
    with pytest.raises(TransitionError, match=f"cannot go from {old} to {new}"):
        check_execution_transition(old, new)


@pytest.mark.parametrize(("old", "new"), _illegal(STEP_TRANSITIONS))
def test_a_step_status_change_outside_the_table_is_refused(old: StepStatus,
                                                           new: StepStatus) -> None:
    with pytest.raises(TransitionError, match=f"step 'x' cannot go from {old} to {new}"):
        check_step_transition("x", old, new)


def test_every_status_has_a_row_and_terminal_executions_cannot_move_on() -> None:
    assert set(EXECUTION_TRANSITIONS) == set(ExecutionStatus)
    assert set(STEP_TRANSITIONS) == set(StepStatus)
    for old, allowed in EXECUTION_TRANSITIONS.items():
        for new in allowed:
            check_execution_transition(old, new)
    for old_step, allowed_steps in STEP_TRANSITIONS.items():
        for new_step in allowed_steps:
            check_step_transition("x", old_step, new_step)
    assert EXECUTION_TRANSITIONS[ExecutionStatus.COMPLETED] == frozenset()
    assert EXECUTION_TRANSITIONS[ExecutionStatus.CANCELLED] == frozenset()


def test_a_replayed_history_with_an_illegal_step_change_is_refused() -> None:
    history = [ev.ExecutionCreated(T0, execution_id="e", step_ids=("a",)),
               ev.ExecutionStarted(T0), ev.StepCompleted(T0, step_id="a"),
               ev.StepStarted(T0, step_id="a")]
    with pytest.raises(TransitionError, match="step 'a' cannot go from completed to running"):
        ProcessExecution.replay(history)


# --- event wire format -----------------------------------------------------------------------

LATER = T0 + 90 * S
SAMPLES: list[ev.Event] = [
    ev.ExecutionCreated(T0, execution_id="e1", process_name="p", process_version="1.2",
                        step_ids=("a", "b"), input={"n": 1, "tags": ["x"]},
                        triggered_by="webhook", started_by="ann", parent_id="e0",
                        parent_step_id="s"),
    ev.ExecutionStarted(T0),
    ev.ExecutionCompleted(T0, outputs={"r": {"k": [1, 2]}}, warnings=("w1", "w2")),
    ev.ExecutionFailed(T0, code="BOOM", message="it broke", step_id="a"),
    ev.ExecutionCancelled(T0, by="bob", reason="no longer needed"),
    ev.ExecutionPaused(T0, by="bob"),
    ev.ExecutionResumed(T0, by="bob"),
    ev.StepQueued(T0, step_id="a", attempt=2),
    ev.StepStarted(T0, step_id="a", attempt=2, worker="w-1", input="hello"),
    ev.StepCompleted(T0, step_id="a", output={"score": 3}, cost=Decimal("0.0123"), tokens=9,
                     warnings=("missing x",)),
    ev.StepFailed(T0, step_id="a", attempt=2, code="TIMEOUT", message="slow",
                  cost=Decimal("1.5"), tokens=4, will_retry=True, retry_at=LATER,
                  reason="retrying in 1m30s"),
    ev.StepSkipped(T0, step_id="a", reason="condition_not_met", detail="no"),
    ev.StepCancelled(T0, step_id="a"),
    ev.StepRetryRequested(T0, step_id="a", by="carol"),
    ev.GatewayEvaluated(T0, step_id="g", gateway_type="inclusive", routes=("a", "b"),
                        is_default=True, evaluated_conditions=(
                            {"target": "a", "condition": "x > 1", "result": False},)),
    ev.ApprovalRequested(T0, step_id="r", title="T", description="D", artifacts=("a1",),
                         assignees=("ann", "team:ops"), required_approvals=2,
                         deadline=LATER),
    ev.ApprovalDecided(T0, step_id="r", decision="approved", decided_by="ann", comment="ok",
                       decisions=({"by": "ann", "decision": "approved"},),
                       edited={"text": "new"}),
    ev.ApprovalTimedOut(T0, step_id="r", action="escalate"),
    ev.TimerStarted(T0, step_id="t", due_at=LATER),
    ev.TimerFired(T0, step_id="t"),
    ev.SubProcessStarted(T0, step_id="s", child_id="c1"),
    ev.LoopedBack(T0, source="b", target="a", reset=("a", "b"), visit=2, reason="again"),
    ev.BudgetWarning(T0, cost=Decimal("4.01"), limit=Decimal("5")),
    ev.CompensationsQueued(T0, step_ids=("b", "a")),
    ev.CompensationFinished(T0, step_id="a", ok=False, message="could not undo"),
]


def _all_event_classes() -> set[type[ev.Event]]:
    found: set[type[ev.Event]] = set()
    todo = [ev.Event]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub)
            todo.append(sub)
    return found


def test_the_samples_cover_every_event_class() -> None:
    assert {type(e) for e in SAMPLES} == _all_event_classes()


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.name)
def test_every_event_survives_a_trip_through_json(event: ev.Event) -> None:
    wire = json.loads(json.dumps(event.to_dict()))
    assert wire["event"] == event.name
    back = ev.event_from_dict(wire)
    assert back == event
    assert type(back) is type(event)
    for f in dataclasses.fields(event):
        assert type(getattr(back, f.name)) is type(getattr(event, f.name)), f.name


def test_an_unknown_event_name_is_refused() -> None:
    with pytest.raises(KeyError):
        ev.event_from_dict({"event": "step_exploded", "at": T0.isoformat()})
