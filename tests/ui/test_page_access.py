"""Every page × every role: the page either shows (the role may use it) or shows the denied
page and records `access.denied`. The pages are enumerated from NiceGUI's own route table,
so a page added without an entry here fails the test instead of being forgotten."""

from __future__ import annotations

import asyncio
from typing import Any

from nicegui import Client
from nicegui.testing.user import User

from tests.ui.conftest import make_user, mark_testids, sign_in

ROLES = ("admin", "designer", "operator", "viewer", "approver")
ALL = frozenset(ROLES)
PUBLIC = {"/login"}  # reachable without signing in; nothing to deny

# page → the roles that get it (everyone else: the denied page)
PAGES: dict[str, frozenset[str]] = {
    "/": ALL,
    "/account": ALL,
    "/inbox": ALL,
    "/processes": ALL,          # each sees only the processes of their teams
    "/executions": ALL,         # each sees only the executions they may see
    "/dashboard": ALL,          # counts over what the person may see
    "/agents": ALL,
    "/processes/{name}": frozenset({"admin", "designer", "operator", "viewer"}),
    "/processes/new": frozenset({"admin", "designer"}),
    "/executions/{execution_id}": frozenset({"admin", "operator", "viewer", "approver"}),
    "/admin": frozenset({"admin"}),
    "/audit": frozenset({"admin"}),
}

PROCESS = """\
name: payroll
version: "1"
owner: finance
steps:
  - id: check
    type: human_approval
    title: Check the payroll
    assignees: [approver]
"""


def page_paths() -> set[str]:
    return set(Client.page_routes.values())


async def _outcome(user: User) -> str:
    """'denied', 'missing' (the not-found card of an item page) or 'shown'."""
    for _ in range(30):
        mark_testids(user)
        for testid, outcome in (("access-denied", "denied"), ("process-missing", "missing"),
                                ("execution-missing", "missing")):
            if user._sees(None, None, testid, None):
                return outcome
        if user.client is not None and any(el.props.get("id") == "main-content"
                                           for el in user.client.layout.descendants()):
            return "shown"
        await asyncio.sleep(0.1)
    return "nothing"


async def test_every_page_is_shown_or_denied_for_every_role(app_user: User,
                                                            ui_container: Any) -> None:
    c = ui_container
    actor = c.guard.system()
    await actor.save_definition(PROCESS, publish=True)
    x = await actor.start("payroll", {})
    for role in ROLES:
        await make_user(c, role, ("*", role))
    await app_user.open("/login")  # registers the pages of this test's app
    paths = page_paths()
    assert paths - PUBLIC - set(PAGES) == set(), "pages without an entry in the access matrix"
    concrete = {"/processes/{name}": "/processes/payroll",
                "/executions/{execution_id}": f"/executions/{x.id}"}

    wrong = []
    for role in ROLES:
        await sign_in(app_user, c, role)
        for path, allowed in sorted(PAGES.items()):
            await app_user.open(concrete.get(path, path))
            got = await _outcome(app_user)
            want = "shown" if role in allowed else "denied"
            if got != want and not (want == "denied" and got == "missing"):
                wrong.append(f"{role} {path}: {got}, expected {want}")
    assert not wrong, "\n".join(wrong)
