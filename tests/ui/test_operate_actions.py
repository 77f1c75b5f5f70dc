"""Actions and details of the operate pages through NiceGUI's simulated User: live view
actions (cancel, run again, retry a failed step in place, resume) with their permission
checks; inbox decisions (reject with a reason, request changes, delegate, edit the artifact,
N-of-M history); the executions list's saved views, time range, trigger filter and pages;
the catalog's YAML import, start-form validation and first-run guidance; the live view's
step details (skip reason, attempt N of M, JSON tree/raw, cost against budget).

Real container, database and Redis; no worker: what a worker would do to a step is recorded
through the runtime (`_attempt`), the same transitions the step runner makes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from nicegui import ui
from nicegui.elements.upload_files import SmallFileUpload
from nicegui.testing.user import User
from sqlalchemy import select, update
from sqlmodel import col

from app.tables import DefinitionRow, ExecutionRow
from tests.ui.conftest import find, make_user, see, see_text, sign_in

WORK = """\
name: work
version: "1"
owner: ops
config:
  budget:
    max_cost: "$2.00"
input:
  ticket: {type: string, required: true}
steps:
  - id: fetch
    name: Fetch the ticket
    type: agent_task
    agent: demo-writer
    message: "fetch {{ input.ticket }}"
    retry:
      max_attempts: 3
      initial_delay: 2m
      backoff: fixed
  - id: extra
    name: Extra work
    type: agent_task
    depends_on: fetch
    condition: "input.ticket == 'never'"
    agent: demo-writer
    message: extra
"""

SIGN = """\
name: sign-off
version: "1"
owner: ops
input:
  item: {type: string, required: true}
steps:
  - id: ok
    name: Sign it off
    type: human_approval
    title: "Sign off {{ input.item }}?"
    assignees: [carol]
    artifacts: ["First line of {{ input.item }}", "Second line"]
    require_reason_on_reject: true
    allow_edit: true
  - id: after
    type: agent_task
    depends_on: ok
    agent: demo-writer
    message: done
"""

LOOP = """\
name: drafting
version: "1"
owner: ops
input:
  topic: {type: string, required: true}
steps:
  - id: draft
    name: Write the draft
    type: agent_task
    agent: demo-writer
    message: "write about {{ input.topic }}"
  - id: review
    name: Review the draft
    type: human_approval
    depends_on: draft
    title: "Review {{ input.topic }}"
    assignees: [carol]
    on_changes_requested:
      goto: draft
      max_visits: 3
"""

PAIR = """\
name: two-keys
version: "1"
owner: ops
input:
  item: {type: string, required: true}
steps:
  - id: both
    name: Two people agree
    type: human_approval
    title: "Two keys for {{ input.item }}"
    assignees: [carol, dave]
    required_approvals: 2
"""

FORM = """\
name: typed
version: "1"
owner: ops
input:
  title: {type: string, required: true}
  count: {type: integer, default: 3}
  ratio: {type: number}
  options: {type: object}
steps:
  - id: wait
    name: Wait for a person
    type: human_approval
    title: "Check {{ input.title }}"
"""


async def _setup(c: Any, *texts: str) -> Any:
    actor = c.guard.system()
    for text in texts:
        await actor.save_definition(text, publish=True)
    return actor


async def _as(c: Any, username: str) -> Any:
    principal = await c.identity.principal(username)
    return c.guard.actor(principal)


async def _attempt(c: Any, execution_id: str, step_id: str, *, output: Any = None,
                   error: tuple[str, str] | None = None, retryable: bool | None = None,
                   cost: str = "0", tokens: int = 0) -> None:
    """What a worker does with the step's next attempt: begin it, then complete or fail it."""
    def decide(x: Any, d: Any, now: Any) -> Any:
        attempt = x.steps[step_id].attempt + 1
        assert x.begin_attempt(step_id, attempt, now, "test-worker"), x.steps[step_id]
        if error is not None:
            return x.fail_step(d, step_id, attempt, error[0], error[1], now,
                               retryable=retryable)
        return x.complete_step(d, step_id, attempt, output, now, Decimal(cost), tokens)
    await c.runtime.transition(execution_id, decide)


async def _until(check: Callable[[], Awaitable[Any]], what: str, seconds: float = 5.0) -> Any:
    """Poll `check` until it returns something true, or fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _status(c: Any, execution_id: str) -> str:
    row, _ = await c.executions.get(execution_id)
    return str(row.status)


def _texts(user: User) -> list[str]:
    """Every label text on the page (to check a line exactly, not just a substring)."""
    assert user.client is not None
    return [el.text for el in user.client.layout.descendants() if isinstance(el, ui.label)]


async def _see_line(user: User, line: str, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while line not in _texts(user):
        if time.monotonic() > deadline:
            near = [t for t in _texts(user) if t[:6] == line[:6]]
            raise AssertionError(f"no label {line!r} on the page; similar: {near}")
        await asyncio.sleep(0.05)


def _notified(user: User) -> list[str]:
    return [str(n) for n in user.notify.messages]


async def _see_notice(user: User, part: str, seconds: float = 3.0) -> str:
    deadline = time.monotonic() + seconds
    while True:
        found = [m for m in _notified(user) if part in m]
        if found:
            return found[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no notification with {part!r}: {_notified(user)}")
        await asyncio.sleep(0.05)


# --- live view actions ---------------------------------------------------------------------


async def test_cancel_asks_first_and_then_ends_the_running_execution(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, WORK)
    x = await actor.start("work", {"ticket": "T-1"})
    await make_user(ui_container, "olga", ("*", "operator"))
    await sign_in(app_user, ui_container, "olga")
    await app_user.open(f"/executions/{x.id}")
    assert await _status(ui_container, x.id) == "running"

    find(app_user, "action-cancel").click()
    await see(app_user, "confirm-dialog")
    await see_text(app_user, "Cancel this execution? Running steps are stopped")
    app_user.find("Back").click()  # changing one's mind does nothing
    await asyncio.sleep(0.2)
    assert await _status(ui_container, x.id) == "running"

    find(app_user, "action-cancel").click()
    await see(app_user, "confirm-dialog")
    app_user.find(kind=ui.input, content="Reason (optional)").type("wrong ticket")
    find(app_user, "confirm-yes").click()

    await _until(lambda: _is(ui_container, x.id, "cancelled"), "the cancellation")
    _, after = await ui_container.executions.get(x.id)
    assert after.steps["fetch"].status.value == "cancelled"
    await _see_notice(app_user, "Cancel: done")
    await see(app_user, "action-run-again")
    await app_user.should_not_see(marker="action-cancel")
    [status] = find(app_user, "execution-status").elements
    assert status.props["data-status"] == "cancelled"


async def _is(c: Any, execution_id: str, status: str) -> bool:
    return await _status(c, execution_id) == status


async def test_run_again_starts_a_new_execution_with_the_same_input_and_opens_it(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, WORK)
    x = await actor.start("work", {"ticket": "T-2"})
    await actor.act(x.id, "cancel")
    await make_user(ui_container, "olga", ("*", "operator"))
    await sign_in(app_user, ui_container, "olga")
    await app_user.open(f"/executions/{x.id}")

    find(app_user, "action-run-again").click()
    await see(app_user, "confirm-dialog")
    await see_text(app_user, "Start a new execution with the same input?")
    find(app_user, "confirm-yes").click()

    async def new_one() -> Any:
        rows = [r for r in await ui_container.executions.list() if r.id != x.id]
        return rows[0] if rows else None
    retry = await _until(new_one, "the new execution")
    assert retry.retry_of == x.id
    assert retry.triggered_by == "retry"
    assert retry.input == {"ticket": "T-2"}
    assert await _status(ui_container, x.id) == "cancelled"  # the old one stays as it was

    async def on_new_page() -> bool:
        ids = [el.text for el in find(app_user, "execution-id").elements] \
            if app_user.client else []
        return ids == [retry.id]
    await _until(on_new_page, "the page of the new execution")
    await see_text(app_user, "Retry of an earlier run")


async def test_retry_failed_step_runs_the_step_again_in_the_same_execution(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, WORK)
    x = await actor.start("work", {"ticket": "T-3"})
    await _attempt(ui_container, x.id, "fetch", error=("BAD_INPUT", "no such ticket"),
                   retryable=False)
    assert await _status(ui_container, x.id) == "failed"
    await make_user(ui_container, "olga", ("*", "operator"))
    await sign_in(app_user, ui_container, "olga")
    await app_user.open(f"/executions/{x.id}")
    await see(app_user, "execution-error")
    await see_text(app_user, "Error BAD_INPUT: no such ticket")

    find(app_user, "action-retry-failed-step").click()
    await see(app_user, "confirm-dialog")
    await see_text(app_user, "Go on from where it stopped (a failed step runs again)?")
    find(app_user, "confirm-yes").click()

    await _until(lambda: _is(ui_container, x.id, "running"), "the execution to run again")
    _, after = await ui_container.executions.get(x.id)
    assert after.steps["fetch"].status.value == "queued"
    assert [r.id for r in await ui_container.executions.list()] == [x.id]  # no new one
    await _see_notice(app_user, "Retry failed step: done")
    await see(app_user, "action-cancel")
    await app_user.should_not_see(marker="action-retry-failed-step")


async def test_resume_continues_a_paused_execution(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, WORK)
    x = await actor.start("work", {"ticket": "T-4"})
    await actor.act(x.id, "pause")
    await make_user(ui_container, "olga", ("*", "operator"))
    await sign_in(app_user, ui_container, "olga")
    await app_user.open(f"/executions/{x.id}")
    [status] = find(app_user, "execution-status").elements
    assert status.props["data-status"] == "paused"
    await app_user.should_not_see(marker="action-pause")

    find(app_user, "action-resume").click()
    await see(app_user, "confirm-dialog")
    find(app_user, "confirm-yes").click()

    await _until(lambda: _is(ui_container, x.id, "running"), "the resumed execution")
    await see(app_user, "action-pause")
    await app_user.should_not_see(marker="action-resume")


async def test_a_viewer_gets_no_actions_on_failed_paused_or_running_executions(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, WORK)
    failed = await actor.start("work", {"ticket": "F"})
    await _attempt(ui_container, failed.id, "fetch", error=("BAD", "x"), retryable=False)
    paused = await actor.start("work", {"ticket": "P"})
    await actor.act(paused.id, "pause")
    await make_user(ui_container, "vera", ("*", "viewer"))
    await make_user(ui_container, "olga", ("*", "operator"))

    await sign_in(app_user, ui_container, "olga")  # the same pages do show them to operators
    await app_user.open(f"/executions/{failed.id}")
    await see(app_user, "action-retry-failed-step")
    await see(app_user, "action-run-again")

    await sign_in(app_user, ui_container, "vera")
    for x in (failed, paused):
        await app_user.open(f"/executions/{x.id}")
        await see(app_user, "execution-status")
        for action in ("cancel", "pause", "resume", "retry-failed-step", "run-again"):
            await app_user.should_not_see(marker=f"action-{action}", retries=1)


async def test_an_action_refused_after_the_page_opened_says_why_and_changes_nothing(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, WORK)
    x = await actor.start("work", {"ticket": "T-5"})
    await make_user(ui_container, "olga", ("*", "operator"))
    await sign_in(app_user, ui_container, "olga")
    await app_user.open(f"/executions/{x.id}")
    find(app_user, "action-cancel").click()
    await see(app_user, "confirm-dialog")

    # meanwhile an administrator takes the operator role away
    await ui_container.identity.revoke("olga", "*", "operator")
    await ui_container.identity.grant("olga", "*", "viewer")
    find(app_user, "confirm-yes").click()

    message = await _see_notice(app_user, "execution:cancel")
    assert "you lack" in message
    assert await _status(ui_container, x.id) == "running"
    await app_user.should_not_see(marker="action-cancel")  # the buttons follow the rights


async def test_an_action_overtaken_by_another_user_shows_the_problem_not_a_traceback(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, WORK)
    x = await actor.start("work", {"ticket": "T-6"})
    await make_user(ui_container, "olga", ("*", "operator"))
    await sign_in(app_user, ui_container, "olga")
    await app_user.open(f"/executions/{x.id}")
    find(app_user, "action-pause").click()
    await see(app_user, "confirm-dialog")

    await actor.act(x.id, "cancel")  # someone else was quicker
    find(app_user, "confirm-yes").click()

    await _see_notice(app_user, "cancelled")
    assert await _status(ui_container, x.id) == "cancelled"


# --- inbox ---------------------------------------------------------------------------------


async def _open_request(user: User, c: Any, name: str, step_title: str) -> Any:
    [(request, _)] = await c.approvals.list()
    await sign_in(user, c, name)
    await user.open("/inbox")
    await see(user, f"request-{request.id}")
    await see_text(user, step_title)
    return request


async def test_a_rejection_needs_its_reason_and_then_fails_the_step_with_it(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, SIGN)
    x = await actor.start("sign-off", {"item": "the budget"})
    await make_user(ui_container, "carol", ("*", "approver"))
    request = await _open_request(app_user, ui_container, "carol", "Sign off the budget?")

    find(app_user, "decide-reject").click()
    await _see_notice(app_user, "Give a reason for the rejection in the comment.")
    row, decisions = await ui_container.approvals.get(request.id)
    assert (row.status, decisions) == ("pending", [])

    find(app_user, "decision-comment").type("   ")  # blanks are no reason either
    find(app_user, "decide-reject").click()
    await asyncio.sleep(0.1)
    assert (await ui_container.approvals.get(request.id))[0].status == "pending"

    find(app_user, "decision-comment").clear().type("Over budget by far")
    find(app_user, "decide-reject").click()

    async def closed() -> Any:
        r, _ = await ui_container.approvals.get(request.id)
        return r if r.status != "pending" else None
    row = await _until(closed, "the rejection")
    assert row.status == "rejected"
    [decision] = (await ui_container.approvals.get(request.id))[1]
    assert (decision.decided_by, decision.comment) == ("carol", "Over budget by far")
    _, after = await ui_container.executions.get(x.id)
    assert after.steps["ok"].status.value == "failed"
    assert "Over budget by far" in after.steps["ok"].error["message"]
    await see(app_user, "inbox-empty")


async def test_request_changes_needs_a_comment_and_loops_the_process_back(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, LOOP)
    x = await actor.start("drafting", {"topic": "tides"})
    await _attempt(ui_container, x.id, "draft", output="A first draft about tides")
    await make_user(ui_container, "carol", ("*", "approver"))
    request = await _open_request(app_user, ui_container, "carol", "Review tides")
    await see(app_user, "upstream")  # what the request depends on: the draft's output

    find(app_user, "decide-changes").click()
    await _see_notice(app_user, "Say what should change in the comment.")
    assert (await ui_container.approvals.get(request.id))[0].status == "pending"

    find(app_user, "decision-comment").type("Mention the moon")
    find(app_user, "decide-changes").click()

    async def looped() -> Any:
        _, x2 = await ui_container.executions.get(x.id)
        return x2 if x2.steps["draft"].status.value == "queued" else None
    after = await _until(looped, "the loop back to the draft")
    assert after.steps["draft"].visits == 2
    assert after.status.value == "running"
    row, [decision] = await ui_container.approvals.get(request.id)
    assert row.status == "needs_changes"
    assert (decision.decision, decision.comment) == ("needs_changes", "Mention the moon")
    await _see_notice(app_user, "Changes requested")
    await see(app_user, "inbox-empty")

    # the second draft asks again: a new request in the same inbox
    await _attempt(ui_container, x.id, "draft", output="Tides and the moon")
    pending = await ui_container.approvals.list()
    assert len(pending) == 1 and pending[0][0].id != request.id


async def test_a_delegated_request_moves_to_the_delegates_queue(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, SIGN)
    await actor.start("sign-off", {"item": "the plan"})
    await make_user(ui_container, "carol", ("*", "approver"))
    await make_user(ui_container, "dave", ("*", "approver"))
    await make_user(ui_container, "vic", ("*", "viewer"))  # could not decide it
    request = await _open_request(app_user, ui_container, "carol", "Sign off the plan?")

    find(app_user, "decide-delegate").click()
    await see(app_user, "delegate-dialog")
    find(app_user, "delegate-send").click()  # nobody chosen yet
    await _see_notice(app_user, "Choose a person and give a reason.")
    [who] = find(app_user, "delegate-to").elements
    assert set(who.options) == {"dave"}  # not herself, not a viewer
    who.set_value("dave")
    find(app_user, "delegate-reason").type("On holiday")
    find(app_user, "delegate-send").click()
    await _see_notice(app_user, "Delegated to dave")

    await sign_in(app_user, ui_container, "dave")
    await app_user.open("/inbox")
    await see(app_user, f"inbox-item-{request.id}")
    [tabs] = find(app_user, "inbox-tabs").elements
    assert tabs.value == "delegated"
    await see_text(app_user, "Delegated to me (1)")
    await see(app_user, "decision-history")
    await see_text(app_user, "carol delegated to dave: On holiday")

    find(app_user, "decide-approve").click()

    async def decided() -> Any:
        r, ds = await ui_container.approvals.get(request.id)
        return ds if r.status == "approved" else None
    [decision] = await _until(decided, "dave's approval")
    assert (decision.decided_by, decision.on_behalf_of) == ("dave", "carol")


async def test_an_edited_artifact_is_shown_as_a_diff_before_it_is_approved(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, SIGN)
    x = await actor.start("sign-off", {"item": "the memo"})
    await make_user(ui_container, "carol", ("*", "approver"))
    request = await _open_request(app_user, ui_container, "carol", "Sign off the memo?")
    await see(app_user, "edit-artifact")
    [editor] = find(app_user, "edit-text").elements
    assert editor.value == "First line of the memo\n\nSecond line"

    editor.set_value("First line of the memo\n\nA better second line")
    find(app_user, "decide-approve").click()

    await see(app_user, "edit-diff")
    await _see_line(app_user, "- Second line")
    await _see_line(app_user, "+ A better second line")
    await _see_line(app_user, "  First line of the memo")
    assert (await ui_container.approvals.get(request.id))[0].status == "pending"  # not yet

    find(app_user, "edit-confirm").click()

    async def decided() -> Any:
        r, ds = await ui_container.approvals.get(request.id)
        return ds if r.status == "approved" else None
    [decision] = await _until(decided, "the approval with the edit")
    assert decision.edited == "First line of the memo\n\nA better second line"
    assert "+A better second line" in (decision.diff or "")
    _, after = await ui_container.executions.get(x.id)
    assert after.steps["ok"].status.value == "completed"


async def test_an_unchanged_artifact_is_approved_without_a_diff(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, SIGN)
    await actor.start("sign-off", {"item": "the note"})
    await make_user(ui_container, "carol", ("*", "approver"))
    request = await _open_request(app_user, ui_container, "carol", "Sign off the note?")

    find(app_user, "decide-approve").click()

    async def decided() -> Any:
        r, ds = await ui_container.approvals.get(request.id)
        return ds if r.status == "approved" else None
    [decision] = await _until(decided, "the approval")
    assert decision.edited is None
    await app_user.should_not_see(marker="edit-diff", retries=1)


async def test_n_of_m_shows_who_decided_and_waits_for_the_second_approval(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, PAIR)
    x = await actor.start("two-keys", {"item": "the vault"})
    await make_user(ui_container, "carol", ("*", "approver"))
    await make_user(ui_container, "dave", ("*", "approver"))
    [(request, _)] = await ui_container.approvals.list()
    await (await _as(ui_container, "carol")).decide(request.id, "approved", "Looks fine")

    await sign_in(app_user, ui_container, "dave")
    await app_user.open("/inbox")
    await see(app_user, f"inbox-item-{request.id}")
    await see_text(app_user, "1 of 2 decided")
    await see(app_user, "decision-history")
    await _see_line(app_user, "Decisions (1 so far, 2 needed)")
    await _see_line(app_user, "carol: approved — Looks fine")

    find(app_user, "decide-approve").click()
    await _see_notice(app_user, "Approved")

    async def decided() -> Any:
        r, ds = await ui_container.approvals.get(request.id)
        return ds if r.status == "approved" else None
    decisions = await _until(decided, "the second approval")
    assert [d.decided_by for d in decisions] == ["carol", "dave"]
    _, after = await ui_container.executions.get(x.id)
    assert after.status.value == "completed"


async def test_the_first_of_two_approvals_keeps_the_request_open(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, PAIR)
    await actor.start("two-keys", {"item": "the door"})
    await make_user(ui_container, "carol", ("*", "approver"))
    await make_user(ui_container, "dave", ("*", "approver"))
    request = await _open_request(app_user, ui_container, "carol", "Two keys for the door")

    find(app_user, "decide-approve").click()

    await _see_notice(app_user, "Approved (1 of 2)")
    row, [decision] = await ui_container.approvals.get(request.id)
    assert row.status == "pending" and decision.decided_by == "carol"
    await see_text(app_user, "1 of 2 decided")  # still listed, with the count
    dave = await (await _as(ui_container, "dave")).inbox()
    assert [r.id for r, _ in dave] == [request.id]


# --- executions list -----------------------------------------------------------------------


async def _listed(user: User) -> list[str]:
    await see(user, "executions-table")
    [table] = find(user, "executions-table").elements
    return [r["id"] for r in table.rows]


async def _wait_listed(user: User, wanted: set[str]) -> None:
    async def check() -> bool:
        mark = find(user, "executions-table").elements if user.client else []
        return bool(mark) and {r["id"] for r in next(iter(mark)).rows} == wanted
    try:
        await _until(check, "the list")
    except AssertionError:
        raise AssertionError(f"listed {await _listed(user)}, wanted {wanted}") from None


async def test_a_saved_view_keeps_the_filters_and_reopens_them(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, WORK)
    kept = await actor.start("work", {"ticket": "a"})
    dropped = await actor.start("work", {"ticket": "b"})
    await actor.act(dropped.id, "cancel")
    await make_user(ui_container, "olga", ("*", "operator"))
    await sign_in(app_user, ui_container, "olga")
    await app_user.open("/executions?status=cancelled")
    assert await _listed(app_user) == [dropped.id]
    await see_text(app_user, "none yet")

    find(app_user, "view-save").click()
    await see(app_user, "view-name")
    find(app_user, "view-name").type("Cancelled ones")
    find(app_user, "view-name-save").click()
    await see(app_user, "view-Cancelled ones")

    await app_user.open("/executions")
    await _wait_listed(app_user, {kept.id, dropped.id})
    find(app_user, "view-Cancelled ones").click()
    await _wait_listed(app_user, {dropped.id})
    [status] = find(app_user, "filter-status").elements
    assert status.value == "cancelled"


async def test_the_time_range_filter_and_a_saved_view_with_it(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, WORK)
    old = await actor.start("work", {"ticket": "old"})
    new = await actor.start("work", {"ticket": "new"})
    then = ui_container.runtime.clock() - timedelta(days=3)
    async with ui_container.db.write() as s:
        await s.execute(update(ExecutionRow).where(col(ExecutionRow.id) == old.id)
                        .values(created_at=then))
    await make_user(ui_container, "olga", ("*", "operator"))
    await sign_in(app_user, ui_container, "olga")
    await app_user.open("/executions")
    await _wait_listed(app_user, {old.id, new.id})

    [time_range] = find(app_user, "filter-range").elements
    time_range.set_value("24h")
    await _wait_listed(app_user, {new.id})
    time_range.set_value("7d")
    await _wait_listed(app_user, {old.id, new.id})
    time_range.set_value("1h")
    await _wait_listed(app_user, {new.id})

    find(app_user, "view-save").click()
    await see(app_user, "view-name")
    find(app_user, "view-name").type("Last hour")
    find(app_user, "view-name-save").click()
    await see(app_user, "view-Last hour")
    await app_user.open("/executions")
    await _wait_listed(app_user, {old.id, new.id})
    find(app_user, "view-Last hour").click()
    await _wait_listed(app_user, {new.id})
    [time_range] = find(app_user, "filter-range").elements
    assert time_range.value == "1h"


async def test_the_trigger_filter_finds_the_retries(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, WORK)
    first = await actor.start("work", {"ticket": "x"})
    await actor.act(first.id, "cancel")
    retry = await actor.act(first.id, "retry")
    await make_user(ui_container, "olga", ("*", "operator"))
    await sign_in(app_user, ui_container, "olga")
    await app_user.open("/executions")
    await _wait_listed(app_user, {first.id, retry.id})

    [trigger] = find(app_user, "filter-trigger").elements
    trigger.set_value("retry")
    await _wait_listed(app_user, {retry.id})
    trigger.set_value("manual")
    await _wait_listed(app_user, {first.id})

    await app_user.open("/executions?triggered_by=retry")
    await _wait_listed(app_user, {retry.id})


async def test_pages_of_fifty_go_older_and_back_newer_without_gaps(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, WORK)
    started = [(await actor.start("work", {"ticket": f"n{i}"})).id for i in range(53)]
    await make_user(ui_container, "olga", ("*", "operator"))
    await sign_in(app_user, ui_container, "olga")
    await app_user.open("/executions")

    first = await _listed(app_user)
    assert len(first) == 50
    await see_text(app_user, "Showing 50 (more below)")
    [newer] = find(app_user, "page-newer").elements
    assert not newer.enabled
    find(app_user, "page-older").click()

    async def moved() -> Any:
        ids = await _listed(app_user)
        return ids if ids != first else None
    second = await _until(moved, "the older page")
    assert len(second) == 3
    assert set(first) | set(second) == set(started) and not set(first) & set(second)
    [older] = find(app_user, "page-older").elements
    assert not older.enabled

    find(app_user, "page-newer").click()

    async def back() -> bool:
        return await _listed(app_user) == first
    await _until(back, "the newest page again")


# --- catalog -------------------------------------------------------------------------------

IMPORTED = """\
name: imported-one
version: "1"
owner: ops
description: |
  Came in through the **import
  dialog**.

  A second paragraph the catalog leaves out.
steps:
  - id: only
    type: human_approval
    title: Fine?
"""

BROKEN = """\
name: broken-one
version: "1"
steps:
  - id: only
    type: human_approval
    title: Fine?
  - id: second
    type: no_such_kind
    depends_on: only
"""


async def _definitions(c: Any) -> list[str]:
    async with c.db.read() as s:
        return list((await s.execute(select(DefinitionRow.name))).scalars())


async def test_a_valid_yaml_file_is_imported_and_published_from_the_catalog(
        app_user: User, ui_container: Any) -> None:
    await make_user(ui_container, "dana", ("*", "designer"))
    await sign_in(app_user, ui_container, "dana")
    await app_user.open("/processes")
    await see(app_user, "catalog-empty")

    find(app_user, "empty-import").click()
    await see(app_user, "import-text")
    [upload] = find(app_user, "import-upload").elements  # a file fills the text box
    await upload.handle_uploads([SmallFileUpload("imported-one.yaml", "application/yaml",
                                                 IMPORTED.encode())])
    [text] = find(app_user, "import-text").elements
    await _until(lambda: _async(text.value == IMPORTED), "the uploaded file in the text box")
    find(app_user, "import-publish").click()
    find(app_user, "import-save").click()

    await _see_notice(app_user, "Imported imported-one v1 (published)")
    await see(app_user, "process-imported-one")
    [about] = find(app_user, "description-imported-one").elements
    assert about.content == "Came in through the **import dialog**."
    async with ui_container.db.read() as s:
        [row] = (await s.execute(select(DefinitionRow))).scalars()
    assert (row.name, row.status) == ("imported-one", "published")


async def test_a_broken_yaml_file_shows_its_problem_with_the_line_and_stores_nothing(
        app_user: User, ui_container: Any) -> None:
    await _setup(ui_container, WORK)
    await make_user(ui_container, "dana", ("*", "designer"))
    await sign_in(app_user, ui_container, "dana")
    await app_user.open("/processes")

    find(app_user, "catalog-import").click()
    await see(app_user, "import-text")
    find(app_user, "import-text").type(BROKEN)
    find(app_user, "import-save").click()

    await see_text(app_user, "The file was not imported:")
    problems = [t for t in _texts(app_user) if "no_such_kind" in t or "line 8" in t]
    assert any("line 8" in t for t in problems), _texts(app_user)
    assert await _definitions(ui_container) == ["work"]

    find(app_user, "import-text").clear().type("name: [unclosed\nsteps: {")
    find(app_user, "import-save").click()
    await _until(lambda: _async(any("line " in t for t in _texts(app_user)
                                    if t not in problems)), "the YAML syntax problem")
    assert await _definitions(ui_container) == ["work"]


async def _async(value: Any) -> Any:
    return value


async def test_the_start_form_checks_each_field_as_typed_and_starts_nothing_while_wrong(
        app_user: User, ui_container: Any) -> None:
    await _setup(ui_container, FORM)
    await make_user(ui_container, "olga", ("*", "operator"))
    await sign_in(app_user, ui_container, "olga")
    await app_user.open("/processes")
    find(app_user, "start-typed").click()
    await see(app_user, "start-dialog")

    [count] = find(app_user, "input-count").elements
    assert count.value == "3"  # the default is filled in
    find(app_user, "input-title").type("Quarterly")
    count.set_value("2.5")
    await see_text(app_user, "Enter a whole number")
    find(app_user, "input-ratio").type("lots")
    await see_text(app_user, "Enter a number")
    find(app_user, "input-options").type("{not json")
    await see_text(app_user, "Not valid JSON")
    find(app_user, "start-submit").click()
    await asyncio.sleep(0.1)
    assert await ui_container.executions.list() == []

    count.set_value("7")
    find(app_user, "input-ratio").clear().type("0.5")
    find(app_user, "input-options").clear().type("[1, 2]")
    await see_text(app_user, "Enter a JSON object {…}")
    find(app_user, "input-options").clear().type('{"tone": "dry"}')
    find(app_user, "start-submit").click()

    async def started() -> Any:
        return await ui_container.executions.list()
    [row] = await _until(started, "the execution")
    assert row.input == {"title": "Quarterly", "count": 7, "ratio": 0.5,
                         "options": {"tone": "dry"}}
    await see(app_user, "execution-status")


async def test_first_run_guidance_shows_only_before_the_first_execution(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, FORM)
    await make_user(ui_container, "olga", ("*", "operator"))
    await sign_in(app_user, ui_container, "olga")
    await app_user.open("/processes")
    find(app_user, "start-typed").click()
    await see(app_user, "first-run")
    await see_text(app_user, "First run: typed")
    await see_text(app_user, "This is the first run of this process. Here is what will happen:")
    await see_text(app_user, "Waits for anyone who may approve to decide (one)")
    [total] = find(app_user, "first-run-total").elements
    assert total.text.startswith("Total: about") and "time people take to decide" in total.text

    await actor.start("typed", {"title": "x"})
    await app_user.open("/processes")
    find(app_user, "start-typed").click()
    await see_text(app_user, "Start typed")
    await see_text(app_user, "What will happen")
    await app_user.should_not_see("This is the first run of this process", retries=1)
    await app_user.should_not_see("First run: typed", retries=1)


# --- live view details ---------------------------------------------------------------------


async def _select_step(user: User, step: str) -> None:
    find(user, f"step-item-{step}").click()
    await see(user, f"step-detail-{step}")


async def test_a_retrying_step_shows_attempt_n_of_m_the_last_error_and_the_next_retry(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, WORK)
    x = await actor.start("work", {"ticket": "T-7"})
    await _attempt(ui_container, x.id, "fetch", error=("RATE_LIMIT", "slow down"))
    _, state = await ui_container.executions.get(x.id)
    assert state.steps["fetch"].status.value == "retrying"
    await make_user(ui_container, "vera", ("*", "viewer"))
    await sign_in(app_user, ui_container, "vera")

    await app_user.open(f"/executions/{x.id}")
    await _select_step(app_user, "fetch")

    await _see_line(app_user, "Attempt 1 of 3")
    await _see_line(app_user, "Last error: RATE_LIMIT slow down")
    await _see_line(app_user, "Next retry in 2 min")
    await see(app_user, "step-error")


async def test_a_skipped_step_says_why_in_words(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, WORK)
    x = await actor.start("work", {"ticket": "T-8"})
    await _attempt(ui_container, x.id, "fetch", output={"ok": True})
    _, state = await ui_container.executions.get(x.id)
    assert state.steps["extra"].status.value == "skipped"
    await make_user(ui_container, "vera", ("*", "viewer"))
    await sign_in(app_user, ui_container, "vera")

    await app_user.open(f"/executions/{x.id}")
    await _select_step(app_user, "extra")

    await _see_line(app_user, "Skipped: its condition was false "
                              "(condition not met: input.ticket == 'never')")


async def test_a_step_output_shows_as_a_tree_and_as_raw_json(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, WORK)
    x = await actor.start("work", {"ticket": "T-9"})
    await _attempt(ui_container, x.id, "fetch", output={"answer": {"n": 42, "who": "deep"}})
    await make_user(ui_container, "vera", ("*", "viewer"))
    await sign_in(app_user, ui_container, "vera")
    await app_user.open(f"/executions/{x.id}")
    await _select_step(app_user, "fetch")

    [panels] = find(app_user, "step-output").elements
    [tree] = [el for el in panels.descendants() if isinstance(el, ui.tree)]
    labels = _tree_labels(tree.props["nodes"])
    assert {"output {1}", "answer {2}", "n: 42", 'who: "deep"'} <= labels
    [raw_tab] = find(app_user, "step-output-raw").elements
    assert panels.value != raw_tab.props["name"]

    find(app_user, "step-output-raw").click()

    await _until(lambda: _async(panels.value == raw_tab.props["name"]), "the raw tab")
    [code] = [el for el in panels.descendants() if isinstance(el, ui.code)]
    assert '"n": 42' in code.content and '"who": "deep"' in code.content


def _tree_labels(nodes: list[dict[str, Any]]) -> set[str]:
    out: set[str] = set()
    for n in nodes:
        out.add(n["label"])
        out |= _tree_labels(n.get("children", []))
    return out


async def test_the_cost_is_shown_against_the_budget_for_the_run_and_the_step(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, WORK)
    x = await actor.start("work", {"ticket": "T-10"})
    await _attempt(ui_container, x.id, "fetch", output="done", cost="0.50", tokens=1200)
    await make_user(ui_container, "vera", ("*", "viewer"))
    await sign_in(app_user, ui_container, "vera")

    await app_user.open(f"/executions/{x.id}")

    [cost] = find(app_user, "execution-cost").elements
    assert cost.text == "Cost: $0.50 of $2.00 budget (25%) · 1200 tokens"
    await _select_step(app_user, "fetch")
    await _see_line(app_user, "Cost $0.50, 1200 tokens")


async def test_an_approval_step_shows_its_request_as_rendered_and_who_may_decide(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, SIGN.replace(
        '    artifacts:', '    description: "Please **check** {{ input.item }}."\n    artifacts:'))
    x = await actor.start("sign-off", {"item": "the lease"})
    await make_user(ui_container, "olga", ("*", "operator"))
    await sign_in(app_user, ui_container, "olga")
    await app_user.open(f"/executions/{x.id}")
    await see(app_user, "step-detail-ok")

    [about] = find(app_user, "step-description").elements
    assert about.content == "Please **check** the lease."  # not the template
    await see(app_user, "approval-state")
    await _see_line(app_user, "Who may decide: carol")
    [state] = [t for t in _texts(app_user) if t.startswith("Approval: ")]
    assert state.startswith("Approval: pending · 0 of 1 approvals · due in ")
    await app_user.should_not_see(marker="decision-panel", retries=1)  # olga may not decide

    [(request, _)] = await ui_container.approvals.list()
    await make_user(ui_container, "carol", ("*", "approver"))
    await (await _as(ui_container, "carol")).decide(request.id, "approved")
    await app_user.open(f"/executions/{x.id}")
    await _select_step(app_user, "ok")
    await _see_line(app_user, "Approval: approved · 1 of 1 approvals")
    await _see_line(app_user, "carol: approved")


async def test_switching_requests_points_the_decision_at_the_new_one_with_a_fresh_comment(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, SIGN)
    await actor.start("sign-off", {"item": "first"})
    await actor.start("sign-off", {"item": "second"})
    await make_user(ui_container, "carol", ("*", "approver"))
    [(one, _), (two, _)] = await ui_container.approvals.list()
    await sign_in(app_user, ui_container, "carol")
    await app_user.open("/inbox")
    await see(app_user, f"request-{one.id}")
    [button] = find(app_user, "decide-approve").elements
    find(app_user, "decision-comment").type("only about the first")

    find(app_user, f"inbox-item-{two.id}").click()
    await see(app_user, f"request-{two.id}")
    [comment] = find(app_user, "decision-comment").elements
    assert comment.value == ""  # what was typed for the first does not go to the second
    [editor] = find(app_user, "edit-text").elements
    assert editor.value == "First line of second\n\nSecond line"
    assert find(app_user, "decide-approve").elements == {button}  # kept, not rebuilt
    find(app_user, "decide-approve").click()

    async def decided() -> Any:
        r, _ = await ui_container.approvals.get(two.id)
        return r.status == "approved"
    await _until(decided, "the second request's approval")
    assert (await ui_container.approvals.get(one.id))[0].status == "pending"
    await see(app_user, f"request-{one.id}")  # the first is selected again


# --- live updates ----------------------------------------------------------------------------


async def test_live_refreshes_run_one_at_a_time_and_the_last_events_are_not_lost(
        app_user: User, ui_container: Any) -> None:
    """Events arriving while a page refreshes make one more refresh after it, never one
    beside it: overlapping refreshes finish out of order and leave the older reading of the
    database on the page (seen as a live view stuck on 'running' although the timeline
    already showed the step completed)."""
    from app.live import hub_for
    from pages.components.live import live_updates

    await make_user(ui_container, "vera", ("*", "viewer"))
    await sign_in(app_user, ui_container, "vera")
    await app_user.open("/executions")
    running, most, seen = [0], [0], []

    async def slow_refresh(batch: list[dict[str, Any]]) -> None:
        running[0] += 1
        most[0] = max(most[0], running[0])
        await asyncio.sleep(0.3)  # a page reading the database under load
        seen.append([m["n"] for m in batch])
        running[0] -= 1

    assert app_user.client is not None
    with app_user.client:
        live_updates(ui_container, "x-live", slow_refresh, debounce=0.01)
    hub = hub_for(ui_container)
    await hub.deliver({"execution_id": "x-live", "event": "step_started", "n": 1})
    await _until(lambda: _async(running[0] == 1), "the first refresh to run")
    await hub.deliver({"execution_id": "x-live", "event": "step_completed", "n": 2})
    await hub.deliver({"execution_id": "x-live", "event": "step_started", "n": 3})

    await _until(lambda: _async(seen == [[1], [2, 3]]), f"both refreshes (so far {seen})")
    assert most[0] == 1, "two refreshes ran at the same time"
    await hub.deliver({"execution_id": "x-live", "event": "execution_completed", "n": 4})
    await _until(lambda: _async(seen[-1:] == [[4]]), "a refresh after a quiet spell")
