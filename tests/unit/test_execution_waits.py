"""Steps that wait durably: human approvals, timers and sub-processes."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from engine import events as ev
from engine.definition import ProcessDefinition
from engine.execution import (
    ApprovalTimeoutAction,
    ExecutionError,
    ProcessExecution,
    RequestApproval,
    RunStep,
    StartTimer,
)
from engine.status import ExecutionStatus, StepStatus
from tests.support.sim import T0, load, names, started, statuses, succeed

S = timedelta(seconds=1)
H = timedelta(hours=1)

REVIEW = """
name: review
input:
  doc: {type: string}
steps:
  - id: draft
    type: agent_task
    agent: writer
    message: "Write {{input.doc}}. Notes: {{steps.review.output.comment}}"
  - id: review
    type: human_approval
    depends_on: [draft]
    title: "Review {{input.doc}}"
    description: "Draft: {{steps.draft.output.text}}"
    artifacts: ["{{steps.draft.output.text}}", "{{steps.draft.output.link}}"]
    assignees: [ann, "team:legal", {team: ops, role: lead}]
    required_approvals: 2
    timeout: 2h
    on_changes_requested: {goto: draft, max_visits: 2}
  - {id: publish, type: agent_task, agent: bot, message: publish, depends_on: [review]}
"""

DRAFT = {"text": "hello", "link": "https://docs.example.com/1"}


def reviewing() -> tuple[ProcessExecution, ProcessDefinition]:
    d = load(REVIEW)
    x, _ = started(d, {"doc": "Q3 plan"})
    assert succeed(x, d, "draft", DRAFT) == [RequestApproval("review", T0 + 2 * H)]
    return x, d


# --- approvals -------------------------------------------------------------------------------


def test_an_approval_request_carries_the_rendered_title_description_and_artifacts() -> None:
    x, _ = reviewing()
    requested = [e for e in x.pull_events() if isinstance(e, ev.ApprovalRequested)]
    assert len(requested) == 1
    e = requested[0]
    assert (e.title, e.description) == ("Review Q3 plan", "Draft: hello")
    assert e.artifacts == ("hello", "https://docs.example.com/1")
    assert e.assignees == ("ann", "team:legal", "team:ops (lead)")
    assert (e.required_approvals, e.deadline) == (2, T0 + 2 * H)
    st = x.steps["review"]
    assert st.status is StepStatus.WAITING_APPROVAL
    assert st.approval is not None
    assert st.approval["title"] == "Review Q3 plan"
    assert st.approval["deadline"] == (T0 + 2 * H).isoformat()


def test_an_approved_step_completes_with_the_decision_as_its_output() -> None:
    x, d = reviewing()
    votes = [{"by": "ann", "decision": "approved"}, {"by": "bob", "decision": "approved"}]
    commands = x.decide_approval(d, "review", "approved", "bob", T0 + H, comment="fine",
                                 decisions=votes)
    assert commands == [RunStep("publish", 1)]
    assert x.steps["review"].status is StepStatus.COMPLETED
    assert x.steps["review"].output == {
        "decision": "approved", "decided_by": "bob", "comment": "fine",
        "decided_at": (T0 + H).isoformat(), "decisions": votes}


def test_an_approver_edit_becomes_part_of_the_output() -> None:
    x, d = reviewing()
    x.decide_approval(d, "review", "approved", "ann", T0, edited={"text": "better"})
    assert x.steps["review"].output["edited"] == {"text": "better"}


def test_a_rejection_fails_the_step_with_approval_rejected_and_the_reason() -> None:
    x, d = reviewing()
    assert x.decide_approval(d, "review", "rejected", "bob", T0 + H, comment="off topic") == []
    st = x.steps["review"]
    assert st.status is StepStatus.FAILED
    assert st.error is not None
    assert (st.error["code"], st.error["message"]) == ("APPROVAL_REJECTED",
                                                       "rejected by bob: off topic")
    assert st.output["decision"] == "rejected"
    assert x.status is ExecutionStatus.FAILED
    assert x.error is not None
    assert (x.error["code"], x.error["step_id"]) == ("APPROVAL_REJECTED", "review")


def test_asking_for_changes_runs_the_earlier_step_again_with_the_comment() -> None:
    x, d = reviewing()
    names(x)
    commands = x.decide_approval(d, "review", "needs_changes", "ann", T0 + H,
                                 comment="add numbers")
    assert commands == [RunStep("draft", 1)]
    assert names(x) == ["approval_decided", "looped_back", "step_queued"]
    assert statuses(x) == {"draft": "queued", "review": "pending", "publish": "pending"}
    assert x.rendered(d, "draft").message == "Write Q3 plan. Notes: add numbers"
    assert succeed(x, d, "draft", DRAFT) == [RequestApproval("review", T0 + 2 * H)]
    assert x.steps["review"].visits == 2
    assert x.decide_approval(d, "review", "approved", "ann", T0 + 2 * H) == [
        RunStep("publish", 1)]


def test_asking_for_changes_more_often_than_max_visits_fails_the_step() -> None:
    x, d = reviewing()
    for visit in (1, 2):
        assert x.decide_approval(d, "review", "needs_changes", "ann", T0,
                                 comment=f"round {visit}") == [RunStep("draft", 1)]
        succeed(x, d, "draft", DRAFT)
    assert x.decide_approval(d, "review", "needs_changes", "ann", T0, comment="again") == []
    assert x.steps["review"].error is not None
    assert x.steps["review"].error["code"] == "APPROVAL_REJECTED"
    assert x.status is ExecutionStatus.FAILED
    assert x.steps["draft"].visits == 3


def test_deciding_an_approval_that_is_not_waiting_is_refused_with_a_clear_message() -> None:
    x, d = reviewing()
    with pytest.raises(ExecutionError, match="step 'publish' is not waiting for a decision "
                       r"\(it is pending\)"):
        x.decide_approval(d, "publish", "approved", "ann", T0)
    x.decide_approval(d, "review", "approved", "ann", T0)
    names(x)
    with pytest.raises(ExecutionError, match=r"step 'review' is not waiting for a decision "
                       r"\(it is completed\)"):
        x.decide_approval(d, "review", "rejected", "bob", T0)
    assert names(x) == []
    assert x.steps["review"].output["decided_by"] == "ann"


def test_an_unknown_decision_is_refused() -> None:
    x, d = reviewing()
    with pytest.raises(ExecutionError, match="decision must be one of approved, rejected, "
                       "needs_changes"):
        x.decide_approval(d, "review", "maybe", "ann", T0)
    assert x.steps["review"].status is StepStatus.WAITING_APPROVAL


def timing_out(on_timeout: str, key: str = "on_timeout") -> tuple[ProcessExecution,
                                                                    ProcessDefinition]:
    d = load(f"""
        name: deadline
        steps:
          - {{id: gate, type: human_approval, title: Proceed, timeout: 30m, {key}: {on_timeout},
             escalate_to: ["team:managers"]}}
          - {{id: next, type: agent_task, agent: bot, message: go, depends_on: [gate]}}
        """)
    x, commands = started(d)
    assert commands == [RequestApproval("gate", T0 + 30 * 60 * S)]
    return x, d


def test_an_approval_that_times_out_is_rejected_by_default() -> None:
    x, d = timing_out("reject")
    assert x.approval_timed_out(d, "gate", T0 + H) == []
    assert x.steps["gate"].error is not None
    assert x.steps["gate"].error["code"] == "APPROVAL_TIMEOUT"
    assert x.status is ExecutionStatus.FAILED


def test_an_approval_set_to_auto_approve_completes_at_the_deadline() -> None:
    x, d = timing_out("auto_approve", key="timeout_action")
    assert x.approval_timed_out(d, "gate", T0 + H) == [RunStep("next", 1)]
    output = x.steps["gate"].output
    assert (output["decision"], output["decided_by"]) == ("approved", "system:timeout")


def test_an_approval_set_to_skip_is_skipped_at_the_deadline_and_passes_control_on() -> None:
    x, d = timing_out("skip")
    assert x.approval_timed_out(d, "gate", T0 + H) == [RunStep("next", 1)]
    assert x.steps["gate"].skip_reason == "timeout_skipped"
    assert x.steps["gate"].skip_detail == "nobody decided before the deadline"


@pytest.mark.parametrize("action", ["notify", "escalate"])
def test_an_approval_set_to_notify_or_escalate_keeps_waiting(action: str) -> None:
    x, d = timing_out(action)
    assert x.approval_timed_out(d, "gate", T0 + H) == [ApprovalTimeoutAction("gate", action)]
    assert x.steps["gate"].status is StepStatus.WAITING_APPROVAL
    timed_out = [e for e in x.pull_events() if isinstance(e, ev.ApprovalTimedOut)]
    assert [e.action for e in timed_out] == [action]
    assert x.decide_approval(d, "gate", "approved", "ann", T0 + 2 * H) == [RunStep("next", 1)]


def test_a_deadline_after_the_decision_is_ignored() -> None:
    x, d = timing_out("reject")
    x.decide_approval(d, "gate", "approved", "ann", T0)
    names(x)
    assert x.approval_timed_out(d, "gate", T0 + H) == []
    assert names(x) == []


# --- timers ----------------------------------------------------------------------------------


def timer(fields: str) -> ProcessDefinition:
    return load(f"""
        name: waiting
        input:
          when: {{type: string}}
        steps:
          - {{id: wait, type: timer, {fields}}}
          - {{id: next, type: agent_task, agent: bot, message: go, depends_on: [wait]}}
        """)


def test_a_delay_timer_is_due_after_the_delay_and_completes_when_it_fires() -> None:
    d = timer("delay: 1h30m")
    x, commands = started(d)
    due = T0 + timedelta(minutes=90)
    assert commands == [StartTimer("wait", due)]
    assert (x.steps["wait"].status, x.steps["wait"].due_at) == (StepStatus.WAITING_TIMER, due)
    assert x.fire_timer(d, "wait", due + S) == [RunStep("next", 1)]
    assert x.steps["wait"].output == {"fired_at": (due + S).isoformat(),
                                      "due_at": due.isoformat()}


def test_a_timer_that_fires_twice_completes_once() -> None:
    d = timer("delay: 5m")
    x, _ = started(d)
    x.fire_timer(d, "wait", T0 + 5 * 60 * S)
    names(x)
    assert x.fire_timer(d, "wait", T0 + 6 * 60 * S) == []
    assert names(x) == []


@pytest.mark.parametrize(("fields", "input", "due"), [
    ('until: "2026-03-01T10:00:00+02:00"', None, datetime(2026, 3, 1, 8, 0, tzinfo=UTC)),
    ('until: "2026-03-01T10:00:00Z"', None, datetime(2026, 3, 1, 10, 0, tzinfo=UTC)),
    ('until: "2026-07-01T09:00:00", timezone: Europe/Paris', None,
     datetime(2026, 7, 1, 7, 0, tzinfo=UTC)),
    ('until: "{{input.when}}"', "2026-02-01T00:00:00Z", datetime(2026, 2, 1, tzinfo=UTC)),
    ('until: "{{input.when}}", timezone: America/New_York', "2026-02-01T12:00:00",
     datetime(2026, 2, 1, 17, 0, tzinfo=UTC)),
])
def test_an_until_timer_is_due_at_that_moment_in_its_timezone(fields: str, input: str | None,
                                                              due: datetime) -> None:
    d = timer(fields)
    x, commands = started(d, {"when": input} if input else None)
    assert commands == [StartTimer("wait", due)]
    assert x.steps["wait"].due_at == due


def test_an_until_that_is_not_a_date_fails_the_timer_with_invalid_config() -> None:
    d = timer('until: "{{input.when}}"')
    x, commands = started(d, {"when": "next tuesday"})
    assert commands == []
    st = x.steps["wait"]
    assert st.status is StepStatus.FAILED
    assert st.error == {"code": "INVALID_CONFIG", "attempt": 1,
                        "message": "timer 'wait': until 'next tuesday' is not an ISO date-time"}
    assert x.status is ExecutionStatus.FAILED
    assert x.error is not None
    assert (x.error["code"], x.error["step_id"]) == ("INVALID_CONFIG", "wait")


def test_a_timer_that_fires_while_paused_lets_the_next_step_run_on_resume() -> None:
    d = timer("delay: 5m")
    x, _ = started(d)
    x.pause(T0)
    assert x.fire_timer(d, "wait", T0 + 5 * 60 * S) == []
    assert x.steps["wait"].status is StepStatus.COMPLETED
    assert x.resume(d, T0 + H) == [RunStep("next", 1)]


# --- sub-processes ---------------------------------------------------------------------------


def nested(wait: bool = True) -> ProcessDefinition:
    return load(f"""
        name: parent
        input:
          topic: {{type: string}}
        steps:
          - id: child
            type: sub_process
            process_name: research
            input_mapping: {{subject: "{{{{input.topic}}}}", depth: "2"}}
            wait_for_completion: {str(wait).lower()}
          - {{id: next, type: agent_task, agent: bot, message: go, depends_on: [child]}}
        """)


def test_a_sub_process_step_waits_for_the_child_and_takes_its_outputs_and_cost() -> None:
    d = nested()
    x, commands = started(d, {"topic": "tides"})
    assert commands == [RunStep("child", 1)]
    assert x.rendered(d, "child").child_input == {"subject": "tides", "depth": "2"}
    assert x.begin_attempt("child", 1, T0)
    assert x.sub_process_started(d, "child", 1, "ex-2", T0 + S) == []
    st = x.steps["child"]
    assert (st.status, st.child_id) == (StepStatus.WAITING_SUBPROCESS, "ex-2")
    assert x.sub_process_finished(d, "child", "ex-3", "completed", {}, T0 + 2 * S) == []
    commands = x.sub_process_finished(d, "child", "ex-2", "completed", {"summary": "ok"},
                                      T0 + 3 * S, cost=Decimal("0.40"), tokens=12)
    assert commands == [RunStep("next", 1)]
    assert st.output == {"execution_id": "ex-2", "status": "completed", "summary": "ok"}
    assert (st.cost, x.cost, x.tokens) == (Decimal("0.40"), Decimal("0.40"), 12)


def test_a_fire_and_forget_sub_process_completes_as_soon_as_the_child_starts() -> None:
    d = nested(wait=False)
    x, _ = started(d, {"topic": "tides"})
    assert x.begin_attempt("child", 1, T0)
    assert x.sub_process_started(d, "child", 1, "ex-2", T0) == [RunStep("next", 1)]
    assert x.steps["child"].output == {"execution_id": "ex-2", "status": "started"}
    assert "sub_process_started" not in names(x)


def test_a_failed_child_fails_the_step_with_subprocess_failed_and_still_costs() -> None:
    d = nested()
    x, _ = started(d, {"topic": "tides"})
    assert x.begin_attempt("child", 1, T0)
    x.sub_process_started(d, "child", 1, "ex-2", T0)
    assert x.sub_process_finished(d, "child", "ex-2", "failed", {}, T0 + S,
                                  cost=Decimal("0.25"), error="agent broke") == []
    st = x.steps["child"]
    assert st.error is not None
    assert (st.error["code"], st.error["message"]) == ("SUBPROCESS_FAILED",
                                                       "sub-process ex-2 failed: agent broke")
    assert x.status is ExecutionStatus.FAILED
    assert x.cost == Decimal("0.25")


# --- history and snapshots of executions that loop, pause and retry --------------------------


def test_a_history_with_loops_pauses_and_a_retry_in_place_replays_and_reloads_exactly() -> None:
    x, d = reviewing()
    history = x.pull_events()
    snapshots = []

    def record() -> None:
        history.extend(x.pull_events())
        snapshots.append(x.to_dict())

    x.decide_approval(d, "review", "needs_changes", "ann", T0 + H, comment="more")
    record()
    assert x.begin_attempt("draft", 1, T0 + H)
    x.pause(T0 + H, by="ann")
    record()
    assert x.complete_step(d, "draft", 1, DRAFT, T0 + 2 * H) == []
    record()
    assert x.resume(d, T0 + 3 * H) == [RequestApproval("review", T0 + 5 * H)]
    record()
    x.decide_approval(d, "review", "approved", "bob", T0 + 4 * H, decisions=[{"by": "bob"}])
    record()
    assert x.begin_attempt("publish", 1, T0 + 5 * H)
    x.fail_step(d, "publish", 1, "AGENT_ERROR", "down", T0 + 5 * H, retryable=False)
    record()
    assert x.status is ExecutionStatus.FAILED
    x.retry_failed_step(d, "publish", T0 + 6 * H)
    succeed(x, d, "publish", {"url": "https://example.com/q3"}, T0 + 7 * H)
    record()
    assert x.status is ExecutionStatus.COMPLETED

    wire = [ev.event_from_dict(json.loads(json.dumps(e.to_dict()))) for e in history]
    assert ProcessExecution.replay(history) == x
    assert ProcessExecution.replay(wire).to_dict() == x.to_dict()
    for snapshot in snapshots:
        loaded = ProcessExecution.from_dict(json.loads(json.dumps(snapshot)))
        assert loaded.to_dict() == snapshot
    assert [(a.visit, a.number, a.status) for a in x.steps["draft"].attempts] == [
        (1, 1, "completed"), (2, 1, "completed")]
