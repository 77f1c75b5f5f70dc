"""Operate journeys in Chromium against `trinity up`: start the content-review example from the
catalog, watch it reach the editor's approval live (no reload), approve it in the inbox as
an editor and see the execution complete; a viewer gets no decision buttons; a rejection
takes the rejection path."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.support.server import ROOT, TrinityServer

PASSWORD = "correct horse battery"
LIVE = 45_000  # ms: demo agents take ~0.2 s a step; a cold worker and Chromium need more


def _add_user(server: TrinityServer, name: str, role: str, team: str | None = None) -> None:
    """An account with a password and a role (`trinity users add` sets neither)."""
    script = textwrap.dedent(f"""
        import asyncio, os
        from app.bootstrap import bootstrap
        from app.settings import Settings

        async def main():
            c = await bootstrap(Settings.from_env(), os.environ["REDIS_URL"],
                                run_migrations=False)
            try:
                await c.identity.create_user({name!r}, {PASSWORD!r}, roles=[("*", {role!r})],
                    teams={[(team, "member")] if team else []!r},
                    email={name + "@example.org"!r})
            finally:
                await c.close()
        asyncio.run(main())
    """)
    subprocess.run([sys.executable, "-c", script], env=server.env, cwd=ROOT, check=True,
                   timeout=60, capture_output=True)


@pytest.fixture(scope="module")
def people(server: TrinityServer) -> dict[str, str]:
    _add_user(server, "olga", "operator")
    _add_user(server, "ed", "approver", team="editors")
    _add_user(server, "vic", "viewer")
    return {"operator": "olga", "editor": "ed", "viewer": "vic"}


@pytest.fixture
def second(browser: Browser, base_url: str) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=base_url, viewport={"width": 1400, "height": 900})
    yield context
    context.close()


def _sign_in(page: Page, name: str, target: str) -> None:
    page.goto(f"/login?next={target}")
    page.get_by_test_id("login-username").fill(name)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page).to_have_url(re.compile(re.escape(target.split("?")[0])))


def _start_content_review(page: Page, topic: str) -> str:
    _sign_in(page, "olga", "/processes")
    page.get_by_test_id("start-content-review").click()
    dialog = page.get_by_test_id("start-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_test_id("input-topic").fill(topic)
    dialog.get_by_test_id("start-submit").click()
    expect(page).to_have_url(re.compile(r"/executions/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[1]


def _node(page: Page, step: str, status: str) -> object:
    return page.locator(f'[data-testid="graph"] [data-step="{step}"][data-status="{status}"]')


def test_an_article_is_started_watched_live_approved_in_the_inbox_and_completes(
        page: Page, second: BrowserContext, people: dict[str, str]) -> None:
    execution = _start_content_review(page, "Remote work")
    page.evaluate("window.__no_reload = true")

    expect(_node(page, "editor-review", "waiting_approval")).to_be_visible(timeout=LIVE)
    expect(_node(page, "draft", "completed")).to_be_visible()

    editor = second.new_page()
    _sign_in(editor, "ed", "/inbox")
    item = editor.locator('[data-testid^="inbox-item-"]').filter(has_text="Remote work")
    expect(item).to_be_visible(timeout=LIVE)
    item.click()
    expect(editor.get_by_test_id("request-title")).to_have_text("Publish 'Remote work'?")
    expect(editor.get_by_test_id("inbox-graph").locator(
        '[data-step="editor-review"].tg-highlight')).to_be_visible()
    editor.get_by_test_id("decide-approve").click()
    expect(editor.get_by_test_id("inbox-empty")).to_be_visible(timeout=LIVE)

    expect(page.get_by_test_id("execution-status")).to_have_attribute(
        "data-status", "completed", timeout=LIVE)
    expect(_node(page, "editor-review", "completed")).to_be_visible()
    assert page.evaluate("window.__no_reload === true"), "the page reloaded"
    assert execution in page.url


def test_a_viewer_sees_the_run_but_no_approve_button(
        page: Page, second: BrowserContext, people: dict[str, str]) -> None:
    execution = _start_content_review(page, "Viewer check")
    expect(_node(page, "editor-review", "waiting_approval")).to_be_visible(timeout=LIVE)

    viewer = second.new_page()
    _sign_in(viewer, "vic", f"/executions/{execution}")
    expect(viewer.get_by_test_id("execution-status")).to_be_visible()
    viewer.get_by_test_id("step-item-editor-review").click()
    expect(viewer.get_by_test_id("approval-state")).to_be_visible()
    expect(viewer.get_by_test_id("decide-approve")).to_have_count(0)
    expect(viewer.get_by_test_id("action-cancel")).to_have_count(0)
    viewer.goto("/inbox")
    expect(viewer.get_by_test_id("inbox-empty")).to_be_visible()


def test_a_rejected_article_takes_the_rejection_path(
        page: Page, second: BrowserContext, people: dict[str, str]) -> None:
    execution = _start_content_review(page, "Too soon")
    expect(_node(page, "editor-review", "waiting_approval")).to_be_visible(timeout=LIVE)

    editor = second.new_page()
    _sign_in(editor, "ed", "/inbox")
    item = editor.locator('[data-testid^="inbox-item-"]').filter(has_text="Too soon")
    expect(item).to_be_visible(timeout=LIVE)
    item.click()
    editor.get_by_test_id("decide-reject").click()
    expect(editor.get_by_text("Give a reason for the rejection")).to_be_visible()
    editor.get_by_test_id("decision-comment").fill("Not this quarter")
    editor.get_by_test_id("decide-reject").click()

    expect(page.get_by_test_id("execution-status")).to_have_attribute(
        "data-status", "failed", timeout=LIVE)
    expect(_node(page, "editor-review", "failed")).to_be_visible()
    expect(page.get_by_test_id("execution-error")).to_contain_text("Not this quarter")
    expect(_node(page, "announce", "completed")).to_have_count(0)
    assert execution in page.url
