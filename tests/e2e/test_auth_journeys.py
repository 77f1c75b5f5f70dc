"""Sign-in, access and API-token journeys in a real Chromium against a real server."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, expect

from tests.support.server import TrinityServer

PASSWORD = "correct horse battery"
def add_user(server: TrinityServer, name: str, *roles: str) -> None:
    args = ["users", "add", name, "--email", f"{name}@example.org", "--password-stdin"]
    for role in roles:
        args += ["--role", role]
    server.run_cli(*args, input=PASSWORD + "\n", check=True)


def sign_in(page: Page, name: str, password: str, path: str = "/") -> None:
    page.goto(f"/login?next={path}")
    page.get_by_test_id("login-username").fill(name)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()


def test_the_first_administrator_signs_in_and_out(page: Page, server: TrinityServer) -> None:
    name, password = server.admin

    sign_in(page, name, password)
    expect(page.get_by_test_id("home-title")).to_be_visible()
    expect(page.get_by_test_id("nav-admin")).to_be_visible()
    page.get_by_test_id("user-menu").click()
    page.get_by_test_id("menu-signout").click()

    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto("/account")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Faccount"))


def test_a_wrong_password_is_refused_with_a_message(page: Page, server: TrinityServer
                                                    ) -> None:
    add_user(server, "wendy", "ops:viewer")

    sign_in(page, "wendy", "not the password")

    expect(page.get_by_test_id("login-error")).to_have_text("Wrong username or password.")
    expect(page).to_have_url(re.compile(r"/login"))


def test_five_failures_lock_the_account_with_a_message(page: Page, server: TrinityServer
                                                       ) -> None:
    add_user(server, "larry", "ops:viewer")
    page.goto("/login")
    page.get_by_test_id("login-username").fill("larry")
    password = page.get_by_test_id("login-password")
    error = page.get_by_test_id("login-error")
    for attempt in range(5):
        password.fill(f"wrong password {attempt}")
        page.get_by_test_id("login-submit").click()
        expect(password).to_have_value("")  # the page answered this attempt
    expect(error).to_contain_text("this account is locked for 15 minutes")

    password.fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(error).to_contain_text("more minutes")


def test_a_viewer_is_shown_the_denied_page_for_admin_and_audit_and_it_is_audited(
        page: Page, server: TrinityServer) -> None:
    add_user(server, "vera", "sales:viewer")
    sign_in(page, "vera", PASSWORD)
    expect(page.get_by_test_id("home-title")).to_be_visible()
    expect(page.get_by_test_id("nav-admin")).to_have_count(0)

    for path, what in (("/admin", "the administration pages"), ("/audit", "the audit log")):
        page.goto(path)
        expect(page.get_by_test_id("access-denied")).to_contain_text(
            f"You do not have access to {what}.")

    entries = server.cli_json("audit", "list", "--action", "access.denied", "--actor", "vera")
    assert sorted(e["resource_id"] for e in entries) == ["/admin", "/audit"]


def test_an_unknown_address_shows_the_not_found_page(page: Page) -> None:
    response = page.goto("/no/such/page")

    assert response is not None and response.status == 404
    expect(page.get_by_test_id("not-found")).to_contain_text("This page does not exist.")


def test_an_api_token_made_on_the_account_page_drives_the_remote_cli_until_revoked(
        page: Page, server: TrinityServer) -> None:
    add_user(server, "tomas", "*:operator")
    sign_in(page, "tomas", PASSWORD, "/account")
    page.get_by_test_id("token-name").fill("laptop")
    page.get_by_test_id("token-create").click()
    token = page.get_by_test_id("token-value").inner_text().strip()
    assert token.startswith("trp_")
    page.get_by_test_id("token-done").click()
    expect(page.get_by_test_id("token-row-laptop")).to_contain_text(token[:10])
    expect(page.get_by_text(token, exact=True)).to_have_count(0)

    remote = ("--server", server.base_url, "--token", token)
    listed = server.run_cli(*remote, "processes", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout), "trinity up publishes the bundled examples"

    page.get_by_test_id("token-revoke-laptop").click()
    page.get_by_test_id("token-revoke-confirm").click()
    expect(page.get_by_test_id("token-row-laptop")).to_contain_text("revoked")
    refused = server.run_cli(*remote, "processes", "list", "--json")
    assert refused.returncode == 2 and "token" in refused.stderr.lower()


def test_an_admin_creates_a_user_in_the_browser_who_can_then_sign_in(
        page: Page, browser: object, server: TrinityServer) -> None:
    name, password = server.admin
    sign_in(page, name, password, "/admin")
    page.get_by_test_id("admin-create-user").click()
    page.get_by_test_id("new-username").fill("nina")
    page.get_by_test_id("new-password").fill("nina's long password")
    page.get_by_test_id("new-submit").click()
    expect(page.get_by_test_id("users-table")).to_contain_text("nina")

    page.get_by_test_id("manage-nina").click()
    page.get_by_test_id("grant-team").fill("ops")
    page.get_by_test_id("grant-submit").click()
    expect(page.get_by_test_id("revoke-ops-viewer")).to_be_visible()

    page.context.clear_cookies()
    sign_in(page, "nina", "nina's long password")
    expect(page.get_by_test_id("home-title")).to_contain_text("nina")
