"""`/processes/new` and `/processes/{name}` (the designer in the frame, with the lifecycle)
through NiceGUI's simulated User: real container, database and Redis; the saves, versions
and status changes are checked in the database, not on the page."""

from __future__ import annotations

import asyncio
from typing import Any

from nicegui.testing.user import User

from tests.ui.conftest import find, make_user, see, sign_in

PROCESS = """\
# kept: a comment the designer must not lose
name: sign-off
version: "1.0"
owner: ops
steps:
  - id: ok
    type: human_approval
    title: Sign it off
    assignees: [carol]
"""


async def _versions(c: Any, name: str) -> dict[str, str]:
    return {r.version: r.status for r in await c.definitions.list() if r.name == name}


async def _until(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_an_example_opens_as_a_renamed_copy_that_saves_and_publishes(
        app_user: User, ui_container: Any) -> None:
    await make_user(ui_container, "dana", ("*", "designer"))
    await sign_in(app_user, ui_container, "dana")

    await app_user.open("/processes/new?example=content-review")
    await see(app_user, "designer-yaml")
    find(app_user, "tb-save").click()

    async def saved() -> bool:
        return await _versions(ui_container, "my-content-review") == {"1.2": "draft"}
    await _until(saved)
    row = next(r for r in await ui_container.definitions.list()
               if r.name == "my-content-review")
    assert "# " in row.yaml_text  # the example's comments survive the round trip
    assert row.created_by == "dana"

    await app_user.open("/processes/my-content-review")
    await see(app_user, "tb-publish")
    find(app_user, "tb-publish").click()

    async def published() -> bool:
        return await _versions(ui_container, "my-content-review") == {"1.2": "published"}
    await _until(published)
    audit = await ui_container.audit.query(resource="process:my-content-review")
    actions = [e.action for e in audit]
    assert "definition.published" in actions


async def test_a_published_version_is_read_only_and_edits_as_a_new_draft_version(
        app_user: User, ui_container: Any) -> None:
    await ui_container.guard.system().save_definition(PROCESS, publish=True)
    await make_user(ui_container, "dana", ("*", "designer"))
    await sign_in(app_user, ui_container, "dana")

    await app_user.open("/processes/sign-off")
    await see(app_user, "readonly-note")
    await app_user.should_not_see(marker="tb-save")
    find(app_user, "new-version").click()

    async def drafted() -> bool:
        return await _versions(ui_container, "sign-off") == {"1.0": "published",
                                                             "1.1": "draft"}
    await _until(drafted)
    draft = next(r for r in await ui_container.definitions.list() if r.version == "1.1")
    assert draft.yaml_text.startswith("# kept: a comment the designer must not lose")

    await app_user.open("/processes/sign-off")  # the newest draft opens by default
    await see(app_user, "tb-save")
    await see(app_user, "version-select")


async def test_archiving_asks_first_and_then_stops_new_starts(
        app_user: User, ui_container: Any) -> None:
    await ui_container.guard.system().save_definition(PROCESS, publish=True)
    await make_user(ui_container, "dana", ("*", "designer"))
    await sign_in(app_user, ui_container, "dana")

    await app_user.open("/processes/sign-off")
    await see(app_user, "archive")
    find(app_user, "archive").click()
    await see(app_user, "confirm-dialog")
    assert await _versions(ui_container, "sign-off") == {"1.0": "published"}
    find(app_user, "confirm-yes").click()

    async def archived() -> bool:
        return await _versions(ui_container, "sign-off") == {"1.0": "archived"}
    await _until(archived)


async def test_a_viewer_sees_the_graph_but_no_way_to_change_it(
        app_user: User, ui_container: Any) -> None:
    await ui_container.guard.system().save_definition(PROCESS, publish=True)
    await make_user(ui_container, "vic", ("ops", "viewer"))
    await sign_in(app_user, ui_container, "vic")

    await app_user.open("/processes/sign-off")
    await see(app_user, "designer-yaml")
    for testid in ("tb-save", "tb-publish", "new-version", "archive", "delete-draft",
                   "tb-test-run"):
        await app_user.should_not_see(marker=testid)


async def test_a_viewer_cannot_open_a_blank_process(app_user: User, ui_container: Any) -> None:
    await make_user(ui_container, "vic", ("ops", "viewer"))
    await sign_in(app_user, ui_container, "vic")

    await app_user.open("/processes/new")

    await see(app_user, "access-denied")
    denials = [e for e in await ui_container.audit.query(action="access.denied")]
    assert [e.resource_id for e in denials] == ["/processes/new"]


async def test_an_unknown_or_unshared_process_says_so_without_an_error(
        app_user: User, ui_container: Any) -> None:
    await ui_container.guard.system().save_definition(PROCESS, publish=True)
    await make_user(ui_container, "eve", ("finance", "designer"))
    await sign_in(app_user, ui_container, "eve")

    for path in ("/processes/no-such-thing", "/processes/sign-off"):  # owned by ops
        await app_user.open(path)
        await see(app_user, "process-missing")


async def test_a_draft_can_be_deleted_after_confirmation(
        app_user: User, ui_container: Any) -> None:
    await ui_container.guard.system().save_definition(PROCESS)
    await make_user(ui_container, "dana", ("*", "designer"))
    await sign_in(app_user, ui_container, "dana")

    await app_user.open("/processes/sign-off")
    find(app_user, "delete-draft").click()
    find(app_user, "confirm-yes").click()

    async def gone() -> bool:
        return await _versions(ui_container, "sign-off") == {}
    await _until(gone)


async def test_a_role_taken_away_while_the_designer_is_open_stops_the_save(
        app_user: User, ui_container: Any) -> None:
    await make_user(ui_container, "dana", ("*", "designer"))
    await sign_in(app_user, ui_container, "dana")
    await app_user.open("/processes/new?example=content-review")
    await see(app_user, "tb-save")

    await ui_container.guard.system().revoke("dana", "*", "designer")
    find(app_user, "tb-save").click()

    async def refused() -> bool:
        return any("process:create" in m for m in app_user.notify.messages)
    await _until(refused)
    assert await _versions(ui_container, "my-content-review") == {}
