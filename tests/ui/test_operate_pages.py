"""The operate pages (catalog, executions, live view, inbox) through NiceGUI's simulated
User: real container, database and Redis, no browser and no worker (the steps these tests
need happen in the start transaction: approvals open at once, agent steps stay queued)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from nicegui.testing.user import User

from app.approval_links import approval_link, verify_link
from tests.ui.conftest import find, make_user, see, see_text, sign_in

CHAIN = """\
name: summarise
version: "1"
owner: ops
description: Summarise a ticket.
input:
  ticket:
    type: string
    required: true
    description: The ticket text
  words:
    type: integer
    default: 50
steps:
  - id: summary
    name: Summarise it
    type: agent_task
    agent: demo-writer
    message: "Summarise {{ input.ticket }} in {{ input.words }} words"
"""

APPROVAL = """\
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
    description: "Please **check** {{ input.item }}."
    assignees: [carol]
    artifacts: ["The item: {{ input.item }}"]
    require_reason_on_reject: true
  - id: after
    type: agent_task
    depends_on: ok
    agent: demo-writer
    message: done
"""


async def _setup(c: Any, *texts: str) -> Any:
    actor = c.guard.system()
    for text in texts:
        await actor.save_definition(text, publish=True)
    return actor


async def test_a_new_installation_shows_where_to_begin_in_the_catalog(
        app_user: User, ui_container: Any) -> None:
    await make_user(ui_container, "dana", ("*", "designer"))
    await sign_in(app_user, ui_container, "dana")

    await app_user.open("/processes")

    await see(app_user, "catalog-empty")
    await see(app_user, "empty-wizard")
    await see(app_user, "empty-blank")
    await see_text(app_user, "No processes yet")


async def test_the_catalog_lists_processes_and_search_narrows_them(
        app_user: User, ui_container: Any) -> None:
    await _setup(ui_container, CHAIN, APPROVAL)
    await make_user(ui_container, "olga", ("*", "operator"))
    await sign_in(app_user, ui_container, "olga")

    await app_user.open("/processes")

    await see(app_user, "process-summarise")
    await see(app_user, "process-sign-off")
    await see(app_user, "start-summarise")
    find(app_user, "catalog-search").type("ticket")
    await see(app_user, "process-summarise")
    await app_user.should_not_see(marker="process-sign-off")
    find(app_user, "catalog-search").clear().type("nothing like this")
    await see(app_user, "catalog-no-match")


async def test_the_start_form_checks_required_inputs_then_starts_and_opens_the_run(
        app_user: User, ui_container: Any) -> None:
    await _setup(ui_container, CHAIN)
    await make_user(ui_container, "olga", ("*", "operator"))
    await sign_in(app_user, ui_container, "olga")
    await app_user.open("/processes")

    find(app_user, "start-summarise").click()
    await see(app_user, "start-dialog")
    await see_text(app_user, "This is the first run of this process")
    await see_text(app_user, "Agent “demo-writer” works on it.")
    find(app_user, "start-submit").click()
    await see_text(app_user, "Required")
    assert await ui_container.executions.list() == []

    find(app_user, "input-ticket").type("Printer on fire")
    find(app_user, "start-submit").click()

    await see(app_user, "execution-status")
    [row] = await ui_container.executions.list()
    assert row.input == {"ticket": "Printer on fire", "words": 50}
    await see(app_user, "graph")
    await see(app_user, "step-detail-summary")


async def test_the_executions_list_filters_by_status_and_finds_input_values(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, CHAIN)
    first = await actor.start("summarise", {"ticket": "blue printer"})
    second = await actor.start("summarise", {"ticket": "red stapler"})
    await actor.act(second.id, "cancel")
    await make_user(ui_container, "vera", ("*", "viewer"))
    await sign_in(app_user, ui_container, "vera")

    await app_user.open("/executions")
    assert await _listed(app_user) == {first.id, second.id}

    await app_user.open("/executions?status=cancelled")
    assert await _listed(app_user) == {second.id}

    await app_user.open("/executions?search=stapler")
    assert await _listed(app_user) == {second.id}

    await app_user.open("/executions?search=no-such-thing")
    await see(app_user, "executions-empty")
    await see(app_user, "clear-filters")


async def _listed(user: User) -> set[str]:
    await see(user, "executions-table")
    [table] = find(user, "executions-table").elements
    return {r["id"] for r in table.rows}


async def test_an_empty_executions_list_points_to_the_catalog(
        app_user: User, ui_container: Any) -> None:
    await make_user(ui_container, "olga", ("*", "operator"))
    await sign_in(app_user, ui_container, "olga")

    await app_user.open("/executions")

    await see(app_user, "executions-empty")
    await see(app_user, "empty-catalog")


async def test_a_viewer_sees_the_live_view_without_action_buttons(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, CHAIN)
    x = await actor.start("summarise", {"ticket": "x"})
    await make_user(ui_container, "vera", ("*", "viewer"))
    await sign_in(app_user, ui_container, "vera")

    await app_user.open(f"/executions/{x.id}")

    await see(app_user, "execution-status")
    await see(app_user, "step-status-summary")
    await app_user.should_not_see(marker="action-cancel")


async def test_an_unknown_execution_says_so_instead_of_failing(
        app_user: User, ui_container: Any) -> None:
    await make_user(ui_container, "vera", ("*", "viewer"))
    await sign_in(app_user, ui_container, "vera")

    await app_user.open("/executions/not-an-execution")

    await see(app_user, "execution-missing")
    await see_text(app_user, "There is no such execution.")


async def test_the_live_view_follows_events_without_a_reload(
        app_user: User, ui_container: Any) -> None:
    from app.live import hub_for

    actor = await _setup(ui_container, CHAIN)
    x = await actor.start("summarise", {"ticket": "x"})
    await make_user(ui_container, "olga", ("*", "operator"))
    await sign_in(app_user, ui_container, "olga")
    await app_user.open(f"/executions/{x.id}")
    await see(app_user, "action-cancel")
    await hub_for(ui_container).wait_ready()

    await actor.act(x.id, "cancel")  # publishes execution_cancelled on Redis

    await see(app_user, "action-run-again")
    await app_user.should_not_see(marker="action-cancel")


async def test_the_inbox_is_empty_with_a_hint_when_nothing_waits(
        app_user: User, ui_container: Any) -> None:
    await make_user(ui_container, "carol", ("*", "approver"))
    await sign_in(app_user, ui_container, "carol")

    await app_user.open("/inbox")

    await see(app_user, "inbox-empty")


async def test_an_approver_reads_and_approves_a_request_in_the_inbox(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, APPROVAL)
    x = await actor.start("sign-off", {"item": "the budget"})
    await make_user(ui_container, "carol", ("*", "approver"))
    await sign_in(app_user, ui_container, "carol")
    [(request, _)] = await ui_container.approvals.list()

    await app_user.open("/inbox")

    await see(app_user, f"inbox-item-{request.id}")
    await see_text(app_user, "Sign off the budget?")
    await see_text(app_user, "The item: the budget")
    await see(app_user, "inbox-graph")
    find(app_user, "decide-reject").click()
    await see_text(app_user, "Give a reason for the rejection in the comment.")
    find(app_user, "decide-approve").click()

    for _ in range(50):
        row, _ = await ui_container.approvals.get(request.id)
        if row.status != "pending":
            break
        await asyncio.sleep(0.05)
    assert row.status == "approved"
    _, after = await ui_container.executions.get(x.id)
    assert after.steps["ok"].status.value == "completed"
    await see(app_user, "inbox-empty")


async def test_a_signed_link_opens_the_request_and_a_bad_one_only_warns(
        app_user: User, ui_container: Any) -> None:
    actor = await _setup(ui_container, APPROVAL)
    await actor.start("sign-off", {"item": "A"})
    await make_user(ui_container, "carol", ("*", "approver"))
    await sign_in(app_user, ui_container, "carol")
    [(request, _)] = await ui_container.approvals.list()
    link = approval_link(ui_container.settings, request.id)

    await app_user.open(link.split("127.0.0.1", 1)[-1].split(":", 1)[-1].lstrip("0123456789"))
    await see(app_user, f"request-{request.id}")

    await app_user.open(f"/inbox?request={request.id}&sig=1.bad")
    await see_text(app_user, "This link has expired or is not valid")
    await see(app_user, f"request-{request.id}")


def test_approval_links_verify_only_for_their_request_and_until_they_expire() -> None:
    settings = SimpleNamespace(base_url="https://t.example", resolved_secret=lambda: "k" * 40)
    link = approval_link(settings, "abc", days=1, now=1000.0)
    sig = link.split("sig=")[1]

    assert link.startswith("https://t.example/inbox?request=abc&sig=")
    assert verify_link(settings, "abc", sig, now=1000.0)
    assert not verify_link(settings, "abd", sig, now=1000.0)
    assert not verify_link(settings, "abc", sig, now=1000.0 + 2 * 86400)
    assert not verify_link(settings, "abc", "garbage", now=1000.0)


async def test_a_new_request_appears_in_an_open_inbox_without_a_reload(
        app_user: User, ui_container: Any) -> None:
    from app.live import hub_for

    actor = await _setup(ui_container, APPROVAL)
    await make_user(ui_container, "carol", ("*", "approver"))
    await sign_in(app_user, ui_container, "carol")
    await app_user.open("/inbox")
    await see(app_user, "inbox-empty")
    await hub_for(ui_container).wait_ready()

    await actor.start("sign-off", {"item": "late arrival"})

    await see_text(app_user, "Sign off late arrival?")
