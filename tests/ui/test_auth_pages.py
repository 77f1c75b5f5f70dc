"""Sign-in, account, administration and audit pages through NiceGUI's simulated User: real
container and database, no browser."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nicegui.testing.user import User

from tests.ui.conftest import PASSWORD, find, make_user, see, see_text, sign_in


async def test_a_page_sends_a_stranger_to_the_sign_in_page(app_user: User) -> None:
    await app_user.open("/account")

    await see(app_user, "login-username")


async def test_signing_in_with_the_right_password_lands_on_the_wanted_page(
        app_user: User, ui_container: Any) -> None:
    await make_user(ui_container, "alice", ("*", "viewer"))
    await app_user.open("/login?next=/account")

    find(app_user, "login-username").type("alice")
    find(app_user, "login-password").type(PASSWORD)
    find(app_user, "login-submit").click()

    await see(app_user, "account-profile")
    await see_text(app_user, "viewer in every team")


async def _login(user: User, name: str, password: str) -> None:
    find(user, "login-username").clear().type(name)
    find(user, "login-password").clear().type(password)
    find(user, "login-submit").click()


async def _failures(c: Any, count: int) -> None:
    for _ in range(50):
        if len(await c.audit.query(action="auth.failed")) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} failed sign-ins in the audit log")


async def test_a_wrong_password_is_refused_with_a_message_and_audited(
        app_user: User, ui_container: Any) -> None:
    await make_user(ui_container, "alice")
    await app_user.open("/login")

    await _login(app_user, "alice", "not the password")

    await see_text(app_user, "Wrong username or password.")
    failed = await ui_container.audit.query(action="auth.failed")
    assert [(e.actor, e.outcome) for e in failed] == [("alice", "denied")]


async def test_five_wrong_passwords_lock_the_account_even_against_the_right_one(
        app_user: User, ui_container: Any) -> None:
    await make_user(ui_container, "alice")
    await app_user.open("/login")

    for attempt in range(5):
        await _login(app_user, "alice", "not the password")
        await _failures(ui_container, attempt + 1)
    await see_text(app_user, "this account is locked for 15 minutes")
    await _login(app_user, "alice", PASSWORD)

    await see_text(app_user, "more minutes")


async def test_changing_the_password_needs_the_old_one_and_ends_the_session(
        app_user: User, ui_container: Any) -> None:
    await make_user(ui_container, "alice", ("*", "viewer"))
    await sign_in(app_user, ui_container, "alice")
    await app_user.open("/account")

    find(app_user, "pw-old").type(PASSWORD)
    find(app_user, "pw-new").type("a brand new secret")
    find(app_user, "pw-confirm").type("a different secret")
    find(app_user, "pw-submit").click()
    await see_text(app_user, "The two new passwords differ.")

    find(app_user, "pw-old").clear().type("not my password")
    find(app_user, "pw-confirm").clear().type("a brand new secret")
    find(app_user, "pw-submit").click()
    await see_text(app_user, "The current password is not right.")

    find(app_user, "pw-old").clear().type(PASSWORD)
    find(app_user, "pw-submit").click()
    await see_text(app_user, "Your password was changed")
    await app_user.open("/account")
    await see(app_user, "login-username")  # the old session is gone
    assert await ui_container.identity.authenticate("alice", "a brand new secret")


async def test_a_new_api_token_is_shown_once_works_and_can_be_revoked(
        app_user: User, ui_container: Any) -> None:
    await make_user(ui_container, "alice", ("ops", "operator"))
    await sign_in(app_user, ui_container, "alice")
    await app_user.open("/account")
    await see(app_user, "tokens-empty")

    find(app_user, "token-name").type("laptop")
    find(app_user, "token-create").click()
    await see(app_user, "token-value")
    token = next(iter(find(app_user, "token-value").elements)).text
    principal = await ui_container.identity.token_principal(token)
    assert principal is not None and principal.username == "alice"
    find(app_user, "token-done").click()
    await see(app_user, "token-row-laptop")
    await see_text(app_user, token[:10] + "…")
    await app_user.should_not_see(token)  # only the prefix is listed

    find(app_user, "token-revoke-laptop").click()
    find(app_user, "token-revoke-confirm").click()
    await see_text(app_user, "Token laptop revoked")
    assert await ui_container.identity.token_principal(token) is None
    actions = [e.action for e in await ui_container.audit.query(actor="alice")]
    assert actions[:2] == ["token.revoked", "token.created"]


async def test_a_token_needs_a_name(app_user: User, ui_container: Any) -> None:
    await make_user(ui_container, "alice")
    await sign_in(app_user, ui_container, "alice")
    await app_user.open("/account")

    find(app_user, "token-create").click()

    await see_text(app_user, "Give the token a name")
    assert await ui_container.identity.tokens("alice") == []


async def test_a_viewer_gets_the_denied_page_for_admin_and_audit_and_it_is_audited(
        app_user: User, ui_container: Any) -> None:
    await make_user(ui_container, "admin", ("*", "admin"))
    await make_user(ui_container, "vera", ("sales", "viewer"))
    await sign_in(app_user, ui_container, "vera")

    for path, what in (("/admin", "the administration pages"), ("/audit", "the audit log")):
        await app_user.open(path)
        await see(app_user, "access-denied")
        await see_text(app_user, f"You do not have access to {what}.")
        await see_text(app_user, "Administrators: admin <admin@example.org>")

    denied = await ui_container.audit.query(action="access.denied")
    assert [(e.actor, e.resource_id, e.details["wanted"]) for e in denied] == [
        ("vera", "/audit", "audit:read"), ("vera", "/admin", "admin:manage_users")]
    await app_user.should_not_see(marker="nav-admin")


async def test_an_admin_creates_a_user_who_then_appears_in_the_table(
        app_user: User, ui_container: Any) -> None:
    await make_user(ui_container, "root", ("*", "admin"))
    await sign_in(app_user, ui_container, "root")
    await app_user.open("/admin")
    await see(app_user, "users-empty")

    find(app_user, "admin-create-user").click()
    await see(app_user, "create-user-dialog")
    find(app_user, "new-username").type("bob")
    find(app_user, "new-password").type("short")
    find(app_user, "new-submit").click()
    await see_text(app_user, "A password needs at least 10 characters")
    find(app_user, "new-password").clear().type("long enough password")
    find(app_user, "new-role").click()
    app_user.find("designer").click()
    find(app_user, "new-role-team").clear().type("marketing")
    find(app_user, "new-team").type("marketing")
    find(app_user, "new-team-role").clear().type("writer")
    find(app_user, "new-submit").click()

    await see_text(app_user, "User bob created")
    table = next(iter(find(app_user, "users-table").elements))
    bob = next(r for r in table.rows if r["username"] == "bob")
    assert (bob["roles"], bob["teams"], bob["active"]) == (
        "designer@marketing", "marketing (writer)", "yes")
    principal = await ui_container.identity.principal("bob")
    assert principal.grants == {("marketing", "designer")}
    created = await ui_container.audit.query(action="user.created")
    assert [(e.actor, e.resource_id) for e in created] == [("root", "bob")]


async def test_an_admin_grants_revokes_sets_teams_deactivates_and_resets_a_password(
        app_user: User, ui_container: Any) -> None:
    await make_user(ui_container, "root", ("*", "admin"))
    await make_user(ui_container, "bob")
    await sign_in(app_user, ui_container, "root")
    await app_user.open("/admin")

    find(app_user, "users-table").trigger("manage", "bob")
    await see(app_user, "manage-dialog")
    find(app_user, "grant-team").clear().type("legal")
    find(app_user, "grant-submit").click()  # viewer is preselected
    await see(app_user, "revoke-legal-viewer")
    find(app_user, "member-team").type("legal")
    find(app_user, "member-role").clear().type("compliance-reviewer")
    find(app_user, "member-submit").click()
    await see(app_user, "member-remove-legal")
    p = await ui_container.identity.principal("bob")
    assert p.grants == {("legal", "viewer")} and p.teams == {"legal"}

    find(app_user, "revoke-legal-viewer").click()
    await see_text(app_user, "viewer revoked from bob")
    find(app_user, "reset-password").type("a new password!")
    find(app_user, "reset-submit").click()
    await see_text(app_user, "Password of bob reset")
    await see(app_user, "user-deactivate")  # the dialog is drawn again after each change
    find(app_user, "user-deactivate").click()
    await see(app_user, "user-activate")

    assert await ui_container.identity.principal("bob") is None  # inactive
    members = [m for u, _, ms in await ui_container.identity.users() if u.username == "bob"
               for m in ms]
    assert [(m.team, m.role) for m in members] == [("legal", "compliance-reviewer")]
    actions = [e.action for e in await ui_container.audit.query(actor="root")]
    assert actions == ["user.deactivated", "user.password_reset", "role.revoked",
                       "team.member_added", "role.granted"]


async def test_the_last_administrator_cannot_lose_the_admin_role(
        app_user: User, ui_container: Any) -> None:
    await make_user(ui_container, "root", ("*", "admin"))
    await sign_in(app_user, ui_container, "root")
    await app_user.open("/admin")

    find(app_user, "users-table").trigger("manage", "root")
    await see(app_user, "revoke-*-admin")
    find(app_user, "revoke-*-admin").click()

    await see_text(app_user, "The last administrator cannot lose the admin role")
    assert (await ui_container.identity.principal("root")).is_admin


async def test_the_teams_tab_lists_teams_from_memberships_and_grants(
        app_user: User, ui_container: Any) -> None:
    await make_user(ui_container, "root", ("*", "admin"))
    await make_user(ui_container, "lee", ("legal", "approver"),
                    teams=[("brand", "brand-manager")])
    await sign_in(app_user, ui_container, "root")
    await app_user.open("/admin")

    await see(app_user, "team-legal")
    await see(app_user, "team-brand")
    await see_text(app_user, "Members: lee (brand-manager)")
    await see_text(app_user, "Roles: lee: approver")


async def _admin_with_entries(c: Any, count: int) -> None:
    await make_user(c, "root", ("*", "admin"))
    for i in range(count):
        await c.audit.append("bot" if i % 2 else "carol", "process.saved" if i % 3 else
                             "execution.started", "process", f"p{i}", {"n": i})


async def test_the_audit_page_filters_pages_back_and_verifies_the_chain(
        app_user: User, ui_container: Any) -> None:
    await _admin_with_entries(ui_container, 120)
    await sign_in(app_user, ui_container, "root")
    await app_user.open("/audit")

    table = next(iter(find(app_user, "audit-table").elements))
    assert [r["seq"] for r in table.rows][:2] == [120, 119] and len(table.rows) == 50
    find(app_user, "audit-older").click()
    await see_text(app_user, "entries 70 … 21")
    find(app_user, "audit-older").click()
    await see_text(app_user, "entries 20 … 1")
    await app_user.should_not_see(marker="audit-older")
    find(app_user, "audit-newest").click()
    await see_text(app_user, "entries 120 … 71")

    find(app_user, "audit-filter-actor").type("carol")
    find(app_user, "audit-filter-action").type("execution.")
    find(app_user, "audit-apply").click()
    await see_text(app_user, "entries 115 … 1")
    table = next(iter(find(app_user, "audit-table").elements))
    assert {(r["actor"], r["action"]) for r in table.rows} == {("carol", "execution.started")}
    assert len(table.rows) == 20 and table.rows[0]["details"] == "n=114"

    find(app_user, "audit-verify").click()
    await see_text(app_user, "The chain is intact: 120 entries checked.")


async def test_a_bad_date_in_the_audit_filter_is_explained(
        app_user: User, ui_container: Any) -> None:
    await _admin_with_entries(ui_container, 3)
    await sign_in(app_user, ui_container, "root")
    await app_user.open("/audit")

    find(app_user, "audit-filter-since").type("yesterday")
    find(app_user, "audit-apply").click()

    await see(app_user, "audit-filter-error")
    await see_text(app_user, "From: write a date like 2026-11-28 or 2026-11-28 14:30")


async def test_the_csv_export_holds_exactly_the_filtered_entries_and_is_audited(
        app_user: User, ui_container: Any) -> None:
    await _admin_with_entries(ui_container, 10)
    await sign_in(app_user, ui_container, "root")
    await app_user.open("/audit")

    find(app_user, "audit-filter-resource").type("process:p4")
    find(app_user, "audit-export").click()
    response = await app_user.download.next()

    lines = response.text.strip().splitlines()
    assert lines[0].startswith("seq,at,actor,action,resource_type,resource_id")
    assert len(lines) == 2 and ",process,p4," in lines[1]
    exported = await ui_container.audit.query(action="audit.exported")
    assert exported[0].actor == "root" and exported[0].details["rows"] == 1


async def test_a_tampered_audit_entry_is_reported_by_the_verify_button(
        app_user: User, ui_container: Any) -> None:
    from sqlalchemy import text

    await _admin_with_entries(ui_container, 5)
    async with ui_container.db.write() as s:  # tampering, as an attacker with DB access would
        await s.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3"))
    await sign_in(app_user, ui_container, "root")
    await app_user.open("/audit")

    find(app_user, "audit-verify").click()

    await see_text(app_user, "The chain is broken at entry 3: its content was changed after "
                   "writing (2 entries before it are intact).")


async def test_an_unknown_address_shows_a_not_found_page_without_internals(
        app_user: User, ui_container: Any) -> None:
    response = await app_user.http_client.get("/no/such/page")

    assert response.status_code == 404
    assert "This page does not exist." in response.text
    assert "Traceback" not in response.text and "HTTPException" not in response.text
    api = await app_user.http_client.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.json() == {"detail": "Not Found"}


async def test_the_theme_choice_is_remembered_for_the_user(
        app_user: User, ui_container: Any) -> None:
    from nicegui import ui

    await make_user(ui_container, "alice")
    await sign_in(app_user, ui_container, "alice")
    await app_user.open("/account")
    assert next(iter(app_user.find(ui.dark_mode).elements)).value is False

    find(app_user, "theme-toggle").click()
    await app_user.open("/account")

    assert next(iter(app_user.find(ui.dark_mode).elements)).value is True


async def test_the_bell_lists_what_waits_for_the_user(
        app_user: User, ui_container: Any) -> None:
    await make_user(ui_container, "alice")
    await sign_in(app_user, ui_container, "alice")
    await app_user.open("/account")

    await see(app_user, "notifications-empty")
    await see(app_user, "notifications-inbox")


async def test_a_failing_page_shows_a_reference_but_no_internals(
        app_user: User, caplog: pytest.LogCaptureFixture) -> None:
    from nicegui import ui

    @ui.page("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    response = await app_user.http_client.get("/boom")

    assert response.status_code == 500
    assert "Something went wrong on our side." in response.text
    assert "secret internals" not in response.text and "RuntimeError" not in response.text
    assert "Traceback" not in response.text
    assert any("page failed (reference" in r.getMessage() for r in caplog.records)
    caplog.clear()  # the error was expected


async def test_a_denial_raised_inside_a_page_becomes_an_access_page(
        app_user: User, caplog: pytest.LogCaptureFixture) -> None:
    from nicegui import ui

    from app.security import Denied

    @ui.page("/refused")
    def refused() -> None:
        raise Denied("you lack process:read on process 'x'")

    response = await app_user.http_client.get("/refused")

    assert "You do not have access to this." in response.text
    assert "you lack process:read on process" in response.text
    caplog.clear()
