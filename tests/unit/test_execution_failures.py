"""What happens when things go wrong: retries, on_error, compensations, loops back, costs and
budgets, and the operator's cancel, pause, resume, retry in place and fail."""

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest

from engine import events as ev
from engine.definition import ProcessDefinition
from engine.execution import (
    CancelStep,
    ExecutionError,
    ProcessExecution,
    RunCompensation,
    RunStep,
)
from engine.retry import NEVER_RETRIED
from engine.status import ExecutionStatus, StepStatus
from tests.support.sim import T0, fail, load, names, started, statuses, succeed

S = timedelta(seconds=1)


def retrying(retry: str, on_error: str = "fail_process") -> ProcessDefinition:
    return load(f"""
        name: retries
        steps:
          - id: call
            type: agent_task
            agent: bot
            message: call
            retry: {retry}
            on_error: {on_error}
          - {{id: after, type: agent_task, agent: bot, message: next, depends_on: [call]}}
        """)


def failed_events(x: ProcessExecution) -> list[ev.StepFailed]:
    return [e for e in x.pull_events() if isinstance(e, ev.StepFailed)]


def retry_waits(d: ProcessDefinition, failures: int,
                rand: Callable[[], float] | None = None) -> list[float]:
    """Fail `call` `failures` times, a minute apart; the waits the engine chose, in seconds."""
    x, _ = started(d)
    waits: list[float] = []
    for n in range(failures):
        now = T0 + timedelta(minutes=n)
        commands = fail(x, d, "call", "TIMEOUT", now, rand=rand)
        event = failed_events(x)[-1]
        if not event.will_retry:
            assert not any(isinstance(c, RunStep) for c in commands)
            break
        assert event.retry_at is not None
        assert commands == [RunStep("call", n + 2, event.retry_at)]
        assert x.steps["call"].next_retry_at == event.retry_at
        assert x.steps["call"].status is StepStatus.RETRYING
        waits.append((event.retry_at - now).total_seconds())
    return waits


# --- retries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("retry", "waits"), [
    ("{max_attempts: 4, initial_delay: 10s, backoff: exponential}", [10, 20, 40]),
    ("{max_attempts: 4, initial_delay: 10s, backoff: exponential, backoff_multiplier: 3}",
     [10, 30, 90]),
    ("{max_attempts: 4, initial_delay: 10s, backoff: linear}", [10, 20, 30]),
    ("{max_attempts: 4, delay: 10s, backoff: fixed}", [10, 10, 10]),
    ("{max_attempts: 5, initial_delay: 10s, max_delay: 25s}", [10, 20, 25, 25]),
    ("{max_attempts: 3}", [5, 10]),
])
def test_retry_waits_follow_the_backoff_up_to_the_cap_and_stop_after_the_last_attempt(
        retry: str, waits: list[float]) -> None:
    assert retry_waits(retrying(retry), 10) == waits


@pytest.mark.parametrize(("fraction", "waits"), [(0.0, [5, 10, 20]), (1.0, [10, 20, 40]),
                                                 (0.5, [7.5, 15, 30])])
def test_jitter_scales_each_wait_between_half_and_all_of_it(fraction: float,
                                                           waits: list[float]) -> None:
    d = retrying("{max_attempts: 4, initial_delay: 10s, jitter: true}")
    assert retry_waits(d, 10, rand=lambda: fraction) == waits


def test_when_the_attempts_are_used_up_on_error_applies_and_the_reason_says_so() -> None:
    d = retrying("{max_attempts: 2, initial_delay: 1s}")
    x, _ = started(d)
    fail(x, d, "call", "TIMEOUT")
    commands = fail(x, d, "call", "TIMEOUT", T0 + S)
    last = failed_events(x)[-1]
    assert (last.will_retry, last.retry_at) == (False, None)
    assert last.reason == "attempt 2 of 2 failed with TIMEOUT; no attempts left"
    assert commands == []
    assert x.status is ExecutionStatus.FAILED
    assert x.error == {"code": "TIMEOUT", "message": "TIMEOUT happened", "step_id": "call"}


@pytest.mark.parametrize(("retry", "code", "retried", "reason"), [
    ("{max_attempts: 3, retryable_errors: [RATE_LIMITED]}", "RATE_LIMITED", True, ""),
    ("{max_attempts: 3, retryable_errors: [RATE_LIMITED]}", "TIMEOUT", False,
     "error code TIMEOUT is not listed in retryable_errors"),
    ("{max_attempts: 3, non_retryable_errors: [AUTH_FAILED]}", "AUTH_FAILED", False,
     "error code AUTH_FAILED is listed in non_retryable_errors"),
    ("{max_attempts: 3, non_retryable_errors: [AUTH_FAILED]}", "TIMEOUT", True, ""),
])
def test_error_code_lists_decide_which_failures_are_retried(retry: str, code: str,
                                                           retried: bool, reason: str) -> None:
    d = retrying(retry)
    x, _ = started(d)
    commands = fail(x, d, "call", code)
    event = failed_events(x)[-1]
    assert event.will_retry is retried
    assert (commands == [RunStep("call", 2, T0 + 5 * S)]) is retried
    if reason:
        assert event.reason == reason
        assert x.status is ExecutionStatus.FAILED


@pytest.mark.parametrize("code", sorted(NEVER_RETRIED))
def test_rejections_timeouts_config_and_budget_errors_are_never_retried(code: str) -> None:
    d = retrying(f"{{max_attempts: 5, retryable_errors: [{code}]}}")
    x, _ = started(d)
    fail(x, d, "call", code)
    event = failed_events(x)[-1]
    assert not event.will_retry
    assert event.reason == f"error code {code} is never retried"
    assert x.steps["call"].status is StepStatus.FAILED


def test_a_failure_the_caller_marks_not_retryable_is_not_retried() -> None:
    d = retrying("{max_attempts: 5}", on_error="skip_step")
    x, _ = started(d)
    commands = fail(x, d, "call", "AGENT_NOT_FOUND", retryable=False)
    event = failed_events(x)[-1]
    assert (event.will_retry, event.retry_at) == (False, None)
    assert event.reason == "error code AGENT_NOT_FOUND was reported as not retryable"
    assert commands == [RunStep("after", 1)]
    assert x.steps["call"].skip_reason == "error_skipped"


def test_each_attempt_is_recorded_with_its_error_and_a_success_clears_the_step_error() -> None:
    d = retrying("{max_attempts: 3, initial_delay: 1s}")
    x, _ = started(d)
    fail(x, d, "call", "TIMEOUT", T0)
    assert x.steps["call"].error == {"code": "TIMEOUT", "message": "TIMEOUT happened",
                                     "attempt": 1}
    fail(x, d, "call", "RATE_LIMITED", T0 + 10 * S)
    assert succeed(x, d, "call", {"ok": 1}, T0 + 20 * S) == [RunStep("after", 1)]
    st = x.steps["call"]
    assert [(a.number, a.status, a.error_code, a.error_message) for a in st.attempts] == [
        (1, "failed", "TIMEOUT", "TIMEOUT happened"),
        (2, "failed", "RATE_LIMITED", "RATE_LIMITED happened"),
        (3, "completed", None, None),
    ]
    assert [a.finished_at for a in st.attempts] == [T0, T0 + 10 * S, T0 + 20 * S]
    assert (st.attempt, st.error, st.output) == (3, None, {"ok": 1})
    assert st.started_at == T0


def test_a_result_for_another_attempt_or_a_second_result_is_ignored() -> None:
    d = retrying("{max_attempts: 3}")
    x, _ = started(d)
    assert x.begin_attempt("call", 1, T0)
    names(x)
    assert x.complete_step(d, "call", 2, {"late": True}, T0) == []
    assert x.fail_step(d, "call", 2, "TIMEOUT", "x", T0) == []
    assert names(x) == []
    assert x.complete_step(d, "call", 1, {"first": True}, T0) == [RunStep("after", 1)]
    assert x.complete_step(d, "call", 1, {"second": True}, T0) == []
    assert x.fail_step(d, "call", 1, "TIMEOUT", "x", T0) == []
    assert x.steps["call"].output == {"first": True}


def test_beginning_an_attempt_twice_or_out_of_turn_does_nothing_the_second_time() -> None:
    d = retrying("{max_attempts: 3}")
    x, _ = started(d)
    names(x)
    assert not x.begin_attempt("call", 2, T0)
    assert x.begin_attempt("call", 1, T0, worker="w1", input="call")
    assert not x.begin_attempt("call", 1, T0 + S, worker="w2")
    assert names(x) == ["step_started"]
    assert [(a.number, a.worker) for a in x.steps["call"].attempts] == [(1, "w1")]
    assert x.steps["call"].input == "call"


def test_an_unknown_step_is_refused_with_a_clear_message() -> None:
    d = retrying("{max_attempts: 1}")
    x, _ = started(d)
    with pytest.raises(ExecutionError, match="execution ex-1 has no step 'nope'"):
        x.begin_attempt("nope", 1, T0)


# --- on_error: fail_process and compensations ------------------------------------------------

COMPENSATED = """
name: shop
steps:
  - id: reserve
    type: agent_task
    agent: bot
    message: reserve
    compensation: {type: agent_task, agent: bot, message: release}
  - id: charge
    type: agent_task
    agent: bot
    message: charge
    compensation: {type: notification, channel: slack, message: refund,
                   webhook_url: "https://hooks.example.com/x"}
  - {id: slow, type: agent_task, agent: bot, message: wait}
  - {id: audit, type: agent_task, agent: bot, message: log}
  - id: ship
    type: agent_task
    agent: bot
    message: ship
    depends_on: [reserve, charge, audit]
    retry: {max_attempts: 1}
"""


def test_a_failing_step_cancels_the_others_and_compensates_in_reverse_completion_order() -> None:
    d = load(COMPENSATED)
    x, _ = started(d)
    succeed(x, d, "charge", now=T0)
    succeed(x, d, "audit", now=T0 + S)
    assert x.begin_attempt("slow", 1, T0 + S)
    succeed(x, d, "reserve", now=T0 + 2 * S)
    names(x)
    commands = fail(x, d, "ship", "AGENT_ERROR", T0 + 3 * S)
    assert commands == [CancelStep("slow", 1), RunCompensation("reserve", 0),
                        RunCompensation("charge", 1)]
    assert names(x) == ["step_started", "step_failed", "step_cancelled",
                        "compensations_queued", "execution_failed"]
    assert x.status is ExecutionStatus.FAILED
    assert x.error == {"code": "AGENT_ERROR", "message": "AGENT_ERROR happened",
                       "step_id": "ship"}
    assert x.finished_at == T0 + 3 * S
    assert statuses(x)["slow"] == "cancelled"
    assert [c["step_id"] for c in x.compensations] == ["reserve", "charge"]
    x.compensation_finished("reserve", True, "released", T0 + 4 * S)
    x.compensation_finished("charge", False, "refund refused", T0 + 4 * S)
    assert x.compensations == [
        {"step_id": "reserve", "status": "completed", "message": "released"},
        {"step_id": "charge", "status": "failed", "message": "refund refused"}]


def test_a_late_result_of_a_step_cancelled_by_the_failure_is_ignored() -> None:
    d = load(COMPENSATED)
    x, _ = started(d)
    assert x.begin_attempt("slow", 1, T0)
    for step_id in ("reserve", "charge", "audit"):
        succeed(x, d, step_id)
    fail(x, d, "ship", "AGENT_ERROR")
    names(x)
    assert x.complete_step(d, "slow", 1, {"late": True}, T0 + S) == []
    assert x.fail_step(d, "slow", 1, "TIMEOUT", "late", T0 + S) == []
    assert names(x) == []
    assert x.steps["slow"].output is None


LOOP = """
name: loop
steps:
  - {id: draft, type: agent_task, agent: bot, message: write}
  - {id: side, type: agent_task, agent: bot, message: side, depends_on: [draft]}
  - id: check
    type: agent_task
    agent: bot
    message: check
    depends_on: [draft]
    retry: {max_attempts: 1}
    on_error: {action: goto_step, target_step: draft, max_visits: 2}
"""


def test_goto_step_runs_the_target_again_and_resets_the_steps_after_it() -> None:
    d = load(LOOP)
    x, _ = started(d)
    assert succeed(x, d, "draft", {"v": 1}) == [RunStep("side", 1), RunStep("check", 1)]
    assert x.begin_attempt("side", 1, T0)
    names(x)
    commands = fail(x, d, "check", "BAD_DRAFT")
    assert commands == [CancelStep("side", 1), RunStep("draft", 1)]
    assert names(x) == ["step_started", "step_failed", "step_cancelled", "looped_back",
                        "step_queued"]
    assert statuses(x) == {"draft": "queued", "side": "pending", "check": "pending"}
    assert x.jumps == {"check>draft": 1}
    assert x.steps["check"].error is None
    assert x.complete_step(d, "side", 1, {"late": True}, T0) == []
    assert succeed(x, d, "draft", {"v": 2}) == [RunStep("side", 1), RunStep("check", 1)]
    assert x.steps["draft"].visits == 2
    assert [a.visit for a in x.steps["draft"].attempts] == [1, 2]


def test_goto_step_is_bounded_by_max_visits_and_then_fails_the_execution() -> None:
    d = load(LOOP)
    x, _ = started(d)
    for visit in (1, 2):
        succeed(x, d, "draft")
        succeed(x, d, "side")
        assert fail(x, d, "check", "BAD_DRAFT") == [RunStep("draft", 1)]
        assert x.jumps == {"check>draft": visit}
    succeed(x, d, "draft")
    succeed(x, d, "side")
    assert fail(x, d, "check", "BAD_DRAFT") == []
    assert x.status is ExecutionStatus.FAILED
    assert x.error is not None
    assert (x.error["code"], x.error["step_id"]) == ("BAD_DRAFT", "check")
    assert "goto_step to 'draft' already used 2 times" in x.error["message"]
    assert x.steps["draft"].visits == 3


# --- cost and budget -------------------------------------------------------------------------

BUDGET = """
name: spend
config:
  budget: {max_cost: "$1.00", warn_at: 0.5}
steps:
  - {id: a, type: agent_task, agent: bot, message: a}
  - {id: b, type: agent_task, agent: bot, message: b, depends_on: [a]}
  - {id: c, type: agent_task, agent: bot, message: c, depends_on: [a],
     retry: {max_attempts: 3, initial_delay: 1s}}
  - {id: d, type: agent_task, agent: bot, message: d, depends_on: [b, c]}
"""


def test_costs_and_tokens_add_up_exactly_per_step_and_per_execution() -> None:
    d = load(BUDGET)
    x, _ = started(d)
    succeed(x, d, "a", cost=Decimal("0.10"), tokens=100)
    fail(x, d, "c", "TIMEOUT", cost=Decimal("0.05"), tokens=7)
    succeed(x, d, "c", cost=Decimal("0.10"), tokens=20)
    succeed(x, d, "b", cost=Decimal("0.05"), tokens=3)
    assert x.steps["c"].cost == Decimal("0.15")
    assert x.steps["c"].tokens == 27
    assert [a.cost for a in x.steps["c"].attempts] == [Decimal("0.05"), Decimal("0.10")]
    assert x.cost == Decimal("0.30")
    assert isinstance(x.cost, Decimal)
    assert x.tokens == 130


def test_a_budget_warning_is_recorded_once_when_the_cost_reaches_warn_at() -> None:
    d = load(BUDGET)
    x, _ = started(d)
    succeed(x, d, "a", cost=Decimal("0.49"))
    assert "budget_warning" not in names(x)
    succeed(x, d, "b", cost=Decimal("0.01"))
    warnings = [e for e in x.pull_events() if isinstance(e, ev.BudgetWarning)]
    assert [(w.cost, w.limit) for w in warnings] == [(Decimal("0.50"), Decimal("1.00"))]
    assert x.budget_warned
    succeed(x, d, "c", cost=Decimal("0.10"))
    assert "budget_warning" not in names(x)
    assert x.status is ExecutionStatus.RUNNING


def test_going_over_the_budget_fails_the_execution_with_budget_exceeded() -> None:
    d = load(BUDGET)
    x, _ = started(d)
    succeed(x, d, "a", cost=Decimal("0.60"))
    assert x.begin_attempt("b", 1, T0)
    commands = succeed(x, d, "c", cost=Decimal("0.45"))
    assert commands == [CancelStep("b", 1)]
    assert x.status is ExecutionStatus.FAILED
    assert x.error == {"code": "BUDGET_EXCEEDED", "step_id": None,
                       "message": "the execution cost 1.05 exceeds its budget of 1.00"}
    assert statuses(x) == {"a": "completed", "b": "cancelled", "c": "completed",
                           "d": "pending"}


def test_a_failed_attempt_that_uses_up_the_budget_is_not_retried() -> None:
    d = load(BUDGET)
    x, _ = started(d)
    succeed(x, d, "a", cost=Decimal("0.60"))
    commands = fail(x, d, "c", "TIMEOUT", cost=Decimal("0.50"))
    assert not any(isinstance(c, RunStep) and c.step_id == "c" for c in commands)
    assert x.status is ExecutionStatus.FAILED
    assert x.error is not None
    assert x.error["code"] == "BUDGET_EXCEEDED"
    assert x.cost == Decimal("1.10")


def test_a_step_that_costs_more_than_its_max_cost_fails_without_retrying() -> None:
    d = load("""
        name: capped
        steps:
          - {id: pricey, type: agent_task, agent: bot, message: go, max_cost: "$0.50",
             retry: {max_attempts: 3}}
        """)
    x, _ = started(d)
    assert succeed(x, d, "pricey", {"r": 1}, cost=Decimal("0.75"), tokens=10) == []
    event = failed_events(x)[-1]
    assert (event.code, event.will_retry) == ("BUDGET_EXCEEDED", False)
    assert event.message == "the step cost 0.75 exceeds its max_cost 0.50"
    assert x.steps["pricey"].status is StepStatus.FAILED
    assert x.steps["pricey"].output is None
    assert (x.cost, x.tokens) == (Decimal("0.75"), 10)
    assert x.error is not None
    assert (x.error["code"], x.error["step_id"]) == ("BUDGET_EXCEEDED", "pricey")


# --- cancel, pause, resume, retry in place, fail ---------------------------------------------

PAIR = """
name: pair
steps:
  - {id: a, type: agent_task, agent: bot, message: a}
  - {id: b, type: agent_task, agent: bot, message: b}
  - {id: c, type: agent_task, agent: bot, message: c, depends_on: [a],
     retry: {max_attempts: 1}}
  - {id: d, type: agent_task, agent: bot, message: d, depends_on: [c, b]}
"""


def test_cancelling_stops_the_active_steps_and_ignores_their_late_results() -> None:
    d = load(PAIR)
    x, _ = started(d)
    assert x.begin_attempt("a", 1, T0)
    names(x)
    commands = x.cancel(T0 + S, by="ann", reason="wrong input")
    assert commands == [CancelStep("a", 1), CancelStep("b", 0)]
    assert names(x) == ["step_cancelled", "step_cancelled", "execution_cancelled"]
    assert x.status is ExecutionStatus.CANCELLED
    assert x.error == {"code": "CANCELLED", "message": "wrong input", "by": "ann"}
    assert statuses(x) == {"a": "cancelled", "b": "cancelled", "c": "pending", "d": "pending"}
    assert x.complete_step(d, "a", 1, {}, T0 + 2 * S) == []
    assert not x.begin_attempt("b", 1, T0 + 2 * S)
    assert names(x) == []


def test_cancelling_a_finished_execution_twice_is_refused() -> None:
    d = load(PAIR)
    x, _ = started(d)
    x.cancel(T0)
    with pytest.raises(ExecutionError, match="execution ex-1 is already cancelled"):
        x.cancel(T0)


def test_a_paused_execution_dispatches_nothing_new_until_it_is_resumed() -> None:
    d = load(PAIR)
    x, _ = started(d)
    assert x.begin_attempt("a", 1, T0)
    x.pause(T0 + S, by="ann")
    assert x.status is ExecutionStatus.PAUSED
    assert x.complete_step(d, "a", 1, {}, T0 + 2 * S) == []
    assert x.steps["a"].status is StepStatus.COMPLETED
    assert x.steps["c"].status is StepStatus.PENDING
    with pytest.raises(ExecutionError, match="cannot pause execution ex-1: it is paused"):
        x.pause(T0)
    assert RunStep("c", 1) in x.resume(d, T0 + 3 * S, by="ann")
    assert x.status is ExecutionStatus.RUNNING
    with pytest.raises(ExecutionError, match="cannot resume execution ex-1: it is running"):
        x.resume(d, T0)


def test_a_queued_step_refused_while_paused_is_dispatched_again_on_resume() -> None:
    d = load(PAIR)
    x, _ = started(d)
    x.pause(T0)
    assert not x.begin_attempt("a", 1, T0 + S)
    assert x.steps["a"].status is StepStatus.QUEUED
    commands = x.resume(d, T0 + 2 * S)
    assert RunStep("a", 1) in commands
    assert RunStep("b", 1) in commands
    succeed(x, d, "a")
    assert x.steps["c"].status is StepStatus.QUEUED


def test_a_retry_due_while_paused_is_dispatched_again_on_resume() -> None:
    d = load(BUDGET)
    x, _ = started(d)
    succeed(x, d, "a")
    fail(x, d, "c", "TIMEOUT")
    retry_at = x.steps["c"].next_retry_at
    x.pause(T0)
    assert not x.begin_attempt("c", 2, T0 + 10 * S)
    assert RunStep("c", 2, retry_at) in x.resume(d, T0 + 20 * S)
    assert x.begin_attempt("c", 2, T0 + 21 * S)


def test_a_failed_step_retried_in_place_runs_again_and_the_execution_completes() -> None:
    d = load(PAIR)
    x, _ = started(d)
    succeed(x, d, "a")
    assert x.begin_attempt("b", 1, T0)
    fail(x, d, "c", "AGENT_ERROR")
    assert x.status is ExecutionStatus.FAILED
    names(x)
    commands = x.retry_failed_step(d, "c", T0 + S, by="ann")
    assert commands == [RunStep("b", 1), RunStep("c", 1)]
    assert names(x) == ["step_retry_requested", "step_queued", "step_queued"]
    assert x.status is ExecutionStatus.RUNNING
    assert (x.error, x.finished_at) == (None, None)
    assert statuses(x) == {"a": "completed", "b": "queued", "c": "queued", "d": "pending"}
    succeed(x, d, "b")
    assert succeed(x, d, "c") == [RunStep("d", 1)]
    succeed(x, d, "d")
    assert x.status is ExecutionStatus.COMPLETED
    assert [(a.number, a.status) for a in x.steps["c"].attempts] == [
        (1, "failed"), (1, "completed")]


def test_only_a_failed_step_of_a_failed_execution_can_be_retried_in_place() -> None:
    d = load(PAIR)
    x, _ = started(d)
    succeed(x, d, "a")
    with pytest.raises(ExecutionError, match="only a failed step of a failed execution"):
        x.retry_failed_step(d, "a", T0)


def test_failing_an_execution_stops_its_steps_and_a_second_failure_changes_nothing() -> None:
    d = load(PAIR)
    x, _ = started(d)
    assert x.begin_attempt("a", 1, T0)
    commands = x.fail(d, "DEADLINE", "the execution ran past its timeout", T0 + S)
    assert commands == [CancelStep("a", 1), CancelStep("b", 0)]
    assert x.status is ExecutionStatus.FAILED
    assert x.error == {"code": "DEADLINE", "message": "the execution ran past its timeout",
                       "step_id": None}
    names(x)
    assert x.fail(d, "OTHER", "again", T0 + 2 * S) == []
    assert names(x) == []
    assert x.error["code"] == "DEADLINE"


def test_an_execution_can_be_failed_or_cancelled_before_it_starts() -> None:
    d = load(PAIR)
    x = ProcessExecution.create(d, "ex-1", T0)
    assert x.fail(d, "INVALID_INPUT", "bad", T0) == []
    assert x.status is ExecutionStatus.FAILED
    y = ProcessExecution.create(d, "ex-2", T0)
    assert y.cancel(T0) == []
    assert y.status is ExecutionStatus.CANCELLED
    with pytest.raises(ExecutionError, match="cannot start execution ex-2: it is cancelled"):
        y.start(d, T0)

