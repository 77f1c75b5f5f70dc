"""Inbox journeys in Chromium against `trinity up`: the keyboard shortcuts the inbox binds
(j/k move, a approve, r reject, c request changes; ignored while typing in a text field);
an editor asks for changes and the content-review process loops back to the writer (real
worker and demo agents) and asks again; an edited article is shown as a diff before it is
approved and what the step hands on is the edit."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.test_operate_journeys import LIVE, _add_user, _sign_in
from tests.support.server import TrinityServer

KEYS = """\
name: keyboard-check
version: "1"
owner: ops
input:
  item: {type: string, required: true}
steps:
  - id: check
    name: Check it
    type: human_approval
    title: "Check {{ input.item }}"
    description: "Look at **{{ input.item }}**."
    assignees: [kim]
    require_reason_on_reject: true
    timeout: 2d
"""


@pytest.fixture(scope="module")
def inbox_people(server: TrinityServer, tmp_path_factory: pytest.TempPathFactory
                 ) -> dict[str, str]:
    """kim decides keyboard-check requests; eve edits for the content team (team editors)."""
    _add_user(server, "kim", "approver")
    _add_user(server, "eve", "approver", team="editors")
    path = tmp_path_factory.mktemp("defs") / "keyboard-check.yaml"
    path.write_text(KEYS)
    server.run_cli("processes", "import", str(path), "--publish", check=True)
    return {"keys": "kim", "editor": "eve"}


@pytest.fixture
def watcher(browser: Browser, base_url: str) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=base_url, viewport={"width": 1400, "height": 900})
    yield context
    context.close()


def _start(server: TrinityServer, process: str, **inputs: str) -> str:
    args = [a for k, v in inputs.items() for a in ("--input", f"{k}={v}")]
    return str(server.cli_json("start", process, *args)["id"])


def _requests(server: TrinityServer, everything: bool = False) -> list[dict[str, Any]]:
    data = server.cli_json("approvals", "list", *(["--all"] if everything else []))
    return list(data)


def _wait_for(check: Callable[[], Any], what: str, seconds: float = LIVE / 1000) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g}s waiting for {what}")
        time.sleep(0.25)


def _request_of(server: TrinityServer, execution: str, status: str = "pending",
                everything: bool = False) -> dict[str, Any] | None:
    return next((r for r in _requests(server, everything)
                 if r["execution_id"] == execution and r["status"] == status), None)


def _selected(page: Page) -> Any:
    return page.locator('[data-testid^="inbox-item-"][aria-selected="true"]')


def test_keyboard_shortcuts_move_through_the_queue_and_decide_the_selected_request(
        page: Page, server: TrinityServer, inbox_people: dict[str, str]) -> None:
    runs = [_start(server, "keyboard-check", item=f"K{i}") for i in range(3)]
    ids = [_wait_for(lambda x=x: _request_of(server, x), "the request")["id"] for x in runs]
    _sign_in(page, "kim", "/inbox")
    items = page.locator('[data-testid^="inbox-item-"]')
    expect(items).to_have_count(3)
    listed = [str(items.nth(i).get_attribute("data-testid")).removeprefix("inbox-item-")
              for i in range(3)]
    assert sorted(listed) == sorted(ids)
    expect(_selected(page)).to_have_attribute("data-testid", f"inbox-item-{listed[0]}")
    page.get_by_test_id("inbox-title").click()  # focus on the page, not in a field

    page.keyboard.press("j")
    expect(_selected(page)).to_have_attribute("data-testid", f"inbox-item-{listed[1]}")
    expect(page.get_by_test_id(f"request-{listed[1]}")).to_be_visible()
    page.keyboard.press("j")
    page.keyboard.press("j")  # stays on the last one
    expect(_selected(page)).to_have_attribute("data-testid", f"inbox-item-{listed[2]}")
    page.keyboard.press("k")
    expect(_selected(page)).to_have_attribute("data-testid", f"inbox-item-{listed[1]}")

    comment = page.get_by_test_id("decision-comment")
    page.keyboard.press("r")  # the reject needs a reason: asked for, with the cursor there
    expect(page.get_by_text("Give a reason for the rejection in the comment.")).to_be_visible()
    expect(comment).to_be_focused()
    page.get_by_test_id("request-title").click()
    page.keyboard.press("c")  # and a change request a comment
    expect(page.get_by_text("Say what should change in the comment.")).to_be_visible()
    expect(comment).to_be_focused()

    comment.press_sequentially("a clear reason")  # a, r and c typed here are just text
    expect(comment).to_have_value("a clear reason")
    assert {r["id"] for r in _requests(server)} >= set(ids)
    page.get_by_test_id("request-title").click()  # leave the field
    page.keyboard.press("r")

    expect(page.locator(f'[data-testid="inbox-item-{listed[1]}"]')).to_have_count(0,
                                                                                  timeout=LIVE)
    rejected = _wait_for(lambda: next((r for r in _requests(server, True)
                                       if r["id"] == listed[1] and r["status"] != "pending"),
                                      None), "the rejection")
    assert rejected["status"] == "rejected"
    assert [(d["by"], d["comment"]) for d in rejected["decisions"]] == [("kim",
                                                                         "a clear reason")]

    expect(items).to_have_count(2)
    current = str(_selected(page).get_attribute("data-testid")).removeprefix("inbox-item-")
    page.get_by_test_id("inbox-title").click()
    page.keyboard.press("a")
    expect(page.locator(f'[data-testid="inbox-item-{current}"]')).to_have_count(0,
                                                                                timeout=LIVE)
    approved = _wait_for(lambda: next((r for r in _requests(server, True)
                                       if r["id"] == current and r["status"] != "pending"),
                                      None), "the approval")
    assert approved["status"] == "approved"
    [last] = {r["id"] for r in _requests(server)} & set(ids)
    assert last == (set(ids) - {listed[1], current}).pop()

    expect(_selected(page)).to_have_attribute("data-testid", f"inbox-item-{last}")
    page.get_by_test_id("inbox-title").click()
    page.keyboard.press("a")  # the last one: the queue is empty afterwards
    expect(page.get_by_test_id("inbox-empty")).to_be_visible(timeout=LIVE)
    assert not {r["id"] for r in _requests(server)} & set(ids)


def _execution(server: TrinityServer, execution: str) -> dict[str, Any]:
    return dict(server.cli_json("executions", "show", execution))


def _content_review_waiting(server: TrinityServer, topic: str) -> tuple[str, dict[str, Any]]:
    execution = _start(server, "content-review", topic=topic)
    request = _wait_for(lambda: _request_of(server, execution), "the editor's request")
    return execution, request


def test_request_changes_sends_the_article_back_to_the_writer_and_asks_again(
        page: Page, watcher: BrowserContext, server: TrinityServer,
        inbox_people: dict[str, str]) -> None:
    execution, first = _content_review_waiting(server, "Tidal power")
    live = watcher.new_page()
    _sign_in(live, "eve", f"/executions/{execution}")
    expect(live.get_by_test_id("execution-status")).to_have_attribute("data-status", "running")
    live.evaluate("window.__no_reload = true")

    _sign_in(page, "eve", f"/inbox?request={first['id']}")
    expect(page.get_by_test_id(f"request-{first['id']}")).to_be_visible()
    expect(page.get_by_test_id("upstream")).to_be_visible()
    page.get_by_test_id("decide-changes").click()
    expect(page.get_by_text("Say what should change in the comment.")).to_be_visible()
    assert _request_of(server, execution) is not None
    page.get_by_test_id("decision-comment").fill("Mention the moon")
    page.get_by_test_id("decide-changes").click()

    second = _wait_for(lambda: next((r for r in _requests(server)
                                     if r["execution_id"] == execution
                                     and r["id"] != first["id"]), None),
                       "the second request after the rewrite")
    closed = next(r for r in _requests(server, True) if r["id"] == first["id"])
    assert closed["status"] == "needs_changes"
    assert [(d["by"], d["decision"], d["comment"]) for d in closed["decisions"]] == [
        ("eve", "needs_changes", "Mention the moon")]
    view = _execution(server, execution)
    steps = {s["id"]: s for s in view["steps"]}
    assert steps["draft"]["visits"] == 2
    assert steps["editor-review"]["status"] == "waiting_approval"
    assert view["status"] == "running"

    # the open inbox shows the new request without a reload; the live view followed along
    expect(page.get_by_test_id(f"inbox-item-{second['id']}")).to_be_visible(timeout=LIVE)
    expect(live.locator('[data-testid="graph"] [data-step="editor-review"]'
                        '[data-status="waiting_approval"]')).to_be_visible(timeout=LIVE)
    live.get_by_test_id("step-item-draft").click()
    expect(live.get_by_test_id("step-detail-draft")).to_contain_text("(pass 2)")
    assert live.evaluate("window.__no_reload === true"), "the live view reloaded"

    # the second draft is approved; nothing is left waiting in the editors' queue
    page.get_by_test_id(f"inbox-item-{second['id']}").click()
    expect(page.get_by_test_id(f"request-{second['id']}")).to_contain_text("Mention the moon")
    page.get_by_test_id("decide-approve").click()
    expect(page.get_by_test_id("inbox-empty")).to_be_visible(timeout=LIVE)
    expect(live.get_by_test_id("execution-status")).to_have_attribute(
        "data-status", "completed", timeout=LIVE)


def test_an_edited_article_is_shown_as_a_diff_and_the_edit_is_what_the_step_hands_on(
        page: Page, server: TrinityServer, inbox_people: dict[str, str]) -> None:
    execution, request = _content_review_waiting(server, "Quiet offices")
    _sign_in(page, "eve", f"/inbox?request={request['id']}")
    expect(page.get_by_test_id(f"request-{request['id']}")).to_be_visible()

    page.get_by_test_id("edit-artifact").click()
    editor = page.get_by_test_id("edit-text")
    expect(editor).to_be_visible()
    before = editor.input_value()
    assert before == "\n\n".join(str(a) for a in request["artifacts"])
    after = before + "\n\nEdited by the editor."
    editor.fill(after)
    page.get_by_test_id("decide-approve").click()

    diff = page.get_by_test_id("edit-diff")
    expect(diff).to_be_visible()
    expect(diff.locator(".diff-add")).to_contain_text(["+ Edited by the editor."])
    expect(diff.locator(".diff-del")).to_have_count(0)
    assert _request_of(server, execution) is not None  # nothing sent yet
    diff.get_by_test_id("edit-confirm").click()

    done = _wait_for(lambda: _request_of(server, execution, "approved", everything=True),
                     "the approval with the edit")
    assert [d["by"] for d in done["decisions"]] == ["eve"]
    output = _wait_for(lambda: {s["id"]: s for s in _execution(server, execution)["steps"]}[
        "editor-review"]["output"], "the approval's output")
    assert output["edited"] == after
    assert json.dumps(output["response"]) == json.dumps(after)
