"""Human approvals end to end: real database, Redis and worker; decisions through the service
the CLI, API and inbox all use."""

from __future__ import annotations

from typing import Any

import pytest

from app.services import ServiceError
from app.tables import TeamMemberRow, UserRow
from tests.integration.conftest import wait_for, wait_terminal

pytestmark = pytest.mark.integration


def _process(approval: str, after: str = "") -> str:
    return f"""
name: review
steps:
  - id: draft
    type: agent_task
    agent: demo-writer
    message: Draft the note
  - id: review
    type: human_approval
    depends_on: draft
    title: "Review the draft"
    description: "Please check: {{{{steps.draft.output.response}}}}"
    artifacts: ["{{{{steps.draft.output.response}}}}"]
{approval}
  - id: publish
    type: agent_task
    agent: demo-echo
    depends_on: review
    message: "Publishing {{{{steps.review.output.response}}}}"
{after}"""


async def _users(c: Any, *members: tuple[str, str, str]) -> None:
    async with c.db.write() as s:
        for username, team, role in members:
            if await s.get(UserRow, username) is None:
                s.add(UserRow(username=username, email=f"{username}@example.org"))
                await s.flush()
            s.add(TeamMemberRow(team=team, username=username, role=role))


async def _pending(c: Any, text: str, started_by: str = "starter") -> tuple[Any, Any]:
    imported = await c.definitions.import_text(text, publish=True)
    x = await c.executions.start(imported.row, {}, "test", started_by)

    async def request() -> Any:
        rows = await c.approvals.list()
        return rows[0][0] if rows else None
    row = await wait_for(request, 30, what="the approval request")
    return x, row


async def test_an_assignee_approves_and_the_execution_goes_on(
        container: Any, in_process_worker: Any) -> None:
    x, request = await _pending(container, _process("    assignees: [alice]"))
    assert request.title == "Review the draft"
    assert "demo-writer" in request.description  # rendered from the draft's output
    result = await container.approvals.decide(request.id, "approved", "alice", "looks good")
    assert result.final and result.approval.status == "approved"
    final = await wait_terminal(container, x.id)
    out = final.steps["review"].output
    assert final.status.value == "completed"
    assert (out["decision"], out["decided_by"], out["comment"]) == ("approved", "alice",
                                                                    "looks good")
    assert out["decisions"][0]["decided_by"] == "alice"


async def test_only_eligible_people_decide_and_a_closed_request_stays_closed(
        container: Any, in_process_worker: Any) -> None:
    x, request = await _pending(container, _process("    assignees: [alice]"))
    with pytest.raises(ServiceError, match="mallory may not decide this request; it is "
                                           "assigned to alice"):
        await container.approvals.decide(request.id, "approved", "mallory")
    await container.approvals.decide(request.id, "rejected", "alice", "no")
    with pytest.raises(ServiceError, match="already closed \\(rejected\\)"):
        await container.approvals.decide(request.id, "approved", "alice")
    final = await wait_terminal(container, x.id)
    assert final.status.value == "failed"
    assert final.steps["review"].error["code"] == "APPROVAL_REJECTED"
    assert final.steps["publish"].status.value == "pending"


async def test_two_of_a_team_must_approve_and_a_delegate_may_decide(
        container: Any, in_process_worker: Any) -> None:
    await _users(container, ("ann", "legal", "lawyer"), ("bob", "legal", "lawyer"),
                 ("cid", "legal", "clerk"))
    text = _process("    assignees: [{team: legal, role: lawyer}]\n"
                    "    required_approvals: 2")
    x, request = await _pending(container, text)
    with pytest.raises(ServiceError, match="cid may not decide"):
        await container.approvals.decide(request.id, "approved", "cid")
    first = await container.approvals.decide(request.id, "approved", "ann")
    assert not first.final and first.approvals_so_far == 1
    with pytest.raises(ServiceError, match="ann already decided"):
        await container.approvals.decide(request.id, "approved", "ann")
    await container.approvals.delegate(request.id, "bob", "dora", "on holiday")
    second = await container.approvals.decide(request.id, "approved", "dora")
    assert second.final
    final = await wait_terminal(container, x.id)
    decisions = final.steps["review"].output["decisions"]
    assert [(d["decided_by"], d["on_behalf_of"]) for d in decisions] == [("ann", None),
                                                                         ("dora", "bob")]


async def test_request_rules_are_enforced_with_clear_messages(
        container: Any, in_process_worker: Any) -> None:
    text = _process("    assignees: [alice, starter]\n    require_reason_on_reject: true\n"
                    "    forbid_self_approval: true\n    allow_edit: true")
    x, request = await _pending(container, text)
    with pytest.raises(ServiceError, match="needs a reason"):
        await container.approvals.decide(request.id, "rejected", "alice")
    with pytest.raises(ServiceError, match="starter started this execution"):
        await container.approvals.decide(request.id, "approved", "starter")
    await container.approvals.decide(request.id, "approved", "alice", edited="A better note")
    final = await wait_terminal(container, x.id)
    _row, decisions = await container.approvals.get(request.id)
    assert "+A better note" in decisions[0].diff
    assert final.steps["review"].output["edited"] == "A better note"
    assert final.steps["publish"].input == "Publishing A better note"


async def test_requested_changes_loop_back_with_the_comment(
        container: Any, in_process_worker: Any) -> None:
    text = """
name: loop
steps:
  - id: draft
    type: agent_task
    agent: demo-echo
    message: "Draft. Feedback: {{steps.review.output.comment}}"
  - id: review
    type: human_approval
    depends_on: draft
    assignees: [alice]
    on_changes_requested: {goto: draft, max_visits: 2}
"""
    x, request = await _pending(container, text)
    await container.approvals.decide(request.id, "needs_changes", "alice", "shorter please")

    async def second_request() -> Any:
        rows = await container.approvals.list()
        return rows[0][0] if rows and rows[0][0].id != request.id else None
    again = await wait_for(second_request, 30, what="the second approval request")
    _row, cur = await container.executions.get(x.id)
    assert cur.steps["draft"].input == "Draft. Feedback: shorter please"
    assert again.visit == 2
    await container.approvals.decide(again.id, "approved", "alice")
    final = await wait_terminal(container, x.id)
    assert final.status.value == "completed"
    old, _decisions = await container.approvals.get(request.id)
    assert old.status == "needs_changes"


async def test_a_rejection_with_skip_step_takes_the_rejection_path(
        container: Any, in_process_worker: Any) -> None:
    text = _process("    assignees: [alice]\n    on_error: skip_step", after="""
  - id: tell-author
    type: agent_task
    agent: demo-echo
    depends_on: review
    condition: "steps.review.output.decision == 'rejected'"
    message: "Rejected because {{steps.review.output.comment}}"
""").replace("    depends_on: review\n    message: \"Publishing",
             "    depends_on: review\n    condition: \"steps.review.output.decision == "
             "'approved'\"\n    message: \"Publishing")
    x, request = await _pending(container, text)
    await container.approvals.decide(request.id, "rejected", "alice", "too long")
    final = await wait_terminal(container, x.id)
    assert final.status.value == "completed"
    assert final.steps["review"].skip_reason == "error_skipped"
    assert final.steps["publish"].skip_reason == "condition_not_met"
    assert final.steps["tell-author"].input == "Rejected because too long"


async def test_a_cancelled_execution_closes_its_open_requests(
        container: Any, in_process_worker: Any) -> None:
    x, request = await _pending(container, _process("    assignees: [alice]"))
    await container.executions.cancel(x.id, "operator")
    row, decisions = await container.approvals.get(request.id)
    assert row.status == "cancelled" and decisions == []
    with pytest.raises(ServiceError, match="already closed"):
        await container.approvals.decide(request.id, "approved", "alice")


async def test_an_approval_deadline_survives_a_worker_restart_and_fires_once(
        container: Any, worker_factory: Any) -> None:
    first = worker_factory()
    x, request = await _pending(container, _process("    assignees: [alice]\n    timeout: 2s"))
    first.kill()  # down while the deadline passes
    _row, waiting = await container.executions.get(x.id)
    assert waiting.steps["review"].status.value == "waiting_approval"
    worker_factory()
    final = await wait_terminal(container, x.id, 60)
    assert final.status.value == "failed"
    assert final.steps["review"].error["code"] == "APPROVAL_TIMEOUT"
    events, _runs = await container.executions.history(x.id)
    assert [e.name for e in events].count("approval_timed_out") == 1
    row, _ = await container.approvals.get(request.id)
    assert row.status == "timed_out"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_approvals_are_listed_and_decided_from_the_cli(settings: Any, redis_url: str,
                                                       tmp_path: Any) -> None:
    import json
    import subprocess
    import sys

    from tests.integration.conftest import ROOT, worker_env

    env = worker_env(settings, redis_url)
    process = tmp_path / "review.yaml"
    process.write_text(_process("    assignees: [alice]"))

    def trinity(*args: str) -> Any:
        done = subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        return done

    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis as redis_lib

    client = redis_lib.Redis.from_url(redis_url)
    try:
        import time as time_mod
        ready = time_mod.monotonic() + 30
        while not client.exists(f"{settings.queue_name}:health-check"):
            assert time_mod.monotonic() < ready, "worker did not start"
            time_mod.sleep(0.05)
        started = trinity("start", str(process), "--json")
        assert started.returncode == 0, started.stderr
        execution = json.loads(started.stdout)["id"]
        import time
        deadline = time.monotonic() + 60
        mine: list[Any] = []
        while time.monotonic() < deadline and not mine:
            mine = json.loads(trinity("approvals", "list", "--mine", "--as", "alice",
                                      "--json").stdout)
        assert mine and mine[0]["execution_id"] == execution
        assert json.loads(trinity("approvals", "list", "--mine", "--as", "bob",
                                  "--json").stdout) == []
        denied = trinity("approvals", "decide", mine[0]["id"], "--decision", "approve",
                         "--as", "bob")
        assert denied.returncode != 0 and "bob may not decide" in denied.stderr
        ok = trinity("approvals", "decide", mine[0]["id"], "--decision", "approve",
                     "--comment", "fine", "--as", "alice")
        assert ok.returncode == 0, ok.stderr
        assert "approved by alice; request approved" in ok.stdout
        while time.monotonic() < deadline:
            shown = json.loads(trinity("executions", "show", execution, "--json").stdout)
            if shown["status"] == "completed":
                break
        assert shown["status"] == "completed"
    finally:
        client.close()
        worker.terminate()
        worker.wait(15)


async def test_an_unanswered_request_escalates_once_then_times_out(
        container: Any, in_process_worker: Any) -> None:
    text = _process("    assignees: [alice]\n    timeout: 1s\n    on_timeout: escalate\n"
                    "    escalate_to: [boss]")
    x, request = await _pending(container, text)

    async def escalated() -> Any:
        row, _ = await container.approvals.get(request.id)
        return row if row.escalated else None
    row = await wait_for(escalated, 30, what="the escalation")
    assert row.status == "pending" and row.deadline > request.deadline
    final = await wait_terminal(container, x.id, 30)  # nobody decides the escalation either
    assert final.steps["review"].error["code"] == "APPROVAL_TIMEOUT"
    events, _ = await container.executions.history(x.id)
    actions = [e.data["action"] for e in events if e.name == "approval_timed_out"]
    assert actions == ["escalate", "reject"]


async def test_an_escalated_request_can_be_decided_by_the_escalation_target(
        container: Any, in_process_worker: Any) -> None:
    text = _process("    assignees: [alice]\n    timeout: 1s\n    on_timeout: escalate\n"
                    "    escalate_to: [boss]")
    x, request = await _pending(container, text)
    with pytest.raises(ServiceError, match="boss may not decide"):
        await container.approvals.decide(request.id, "approved", "boss")

    async def escalated() -> Any:
        row, _ = await container.approvals.get(request.id)
        return row if row.escalated else None
    await wait_for(escalated, 30, what="the escalation")
    await container.approvals.decide(request.id, "approved", "boss")
    final = await wait_terminal(container, x.id)
    assert final.status.value == "completed"


async def test_reminders_come_round_while_a_request_waits(
        container: Any, in_process_worker: Any) -> None:
    _x, request = await _pending(container, _process("    assignees: [alice]\n"
                                                     "    reminder_every: 1s"))

    async def reminded() -> Any:
        row, _ = await container.approvals.get(request.id)
        return row.last_reminder_at
    first = await wait_for(reminded, 30, what="a reminder")

    async def reminded_again() -> Any:
        row, _ = await container.approvals.get(request.id)
        return row.last_reminder_at if row.last_reminder_at > first else None
    assert await wait_for(reminded_again, 30, what="a second reminder") > first
