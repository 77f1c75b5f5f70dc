"""Single sign-on in a real browser: Trinity (`trinity web`) configured for a real OpenID
provider (oidc-provider-mock), Chromium going from our sign-in page to the provider's form
and back."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.support.oidc import MockProvider, RegisteredClient, running_provider
from tests.support.server import TrinityServer, running_server

pytestmark = pytest.mark.e2e

ROLE_MAP = "trinity-viewers=*:viewer,trinity-admins=*:admin"


@pytest.fixture(scope="module")
def provider() -> Iterator[MockProvider]:
    # Any client is accepted: the server's port, part of the redirect address, is not
    # known before it starts. The integration tests cover a registered client.
    with running_provider(require_client_registration=False) as p:
        yield p


@pytest.fixture(scope="module")
def sso_server(provider: MockProvider, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[TrinityServer]:
    env = provider.env(RegisteredClient("trinity-e2e", "e2e-client-secret"), ROLE_MAP)
    with running_server(tmp_path_factory.mktemp("sso"), env, command="web") as server:
        yield server


@pytest.fixture
def sso_page(browser: Browser, sso_server: TrinityServer) -> Iterator[Page]:
    context: BrowserContext = browser.new_context(base_url=sso_server.base_url,
                                                  viewport={"width": 1400, "height": 900})
    yield context.new_page()
    context.close()


def sign_in_at_provider(page: Page, sub: str) -> None:
    page.goto("/login")
    page.get_by_test_id("login-sso").click()
    page.wait_for_url(re.compile(r"/oauth2/authorize"))
    page.get_by_placeholder("sub").fill(sub)
    page.get_by_role("button", name="Authorize").click()


def test_a_viewer_signs_in_with_sso_and_is_kept_out_of_the_admin_pages(
        sso_page: Page, sso_server: TrinityServer, provider: MockProvider) -> None:
    provider.set_user("vera-0042", preferred_username="vera", name="Vera Viewer",
                      email="vera@example.com", groups=["trinity-viewers", "canteen"])

    sign_in_at_provider(sso_page, "vera-0042")

    sso_page.wait_for_url(f"{sso_server.base_url}/")
    expect(sso_page.get_by_test_id("user-menu")).to_contain_text("Vera Viewer")
    expect(sso_page.get_by_test_id("nav-admin")).to_have_count(0)
    sso_page.get_by_test_id("user-menu").click()
    expect(sso_page.get_by_text("Roles: viewer")).to_be_visible()

    sso_page.goto("/admin")

    expect(sso_page.get_by_test_id("access-denied")).to_be_visible()


def test_a_refusal_at_the_provider_brings_the_person_back_to_sign_in_with_the_reason(
        sso_page: Page, sso_server: TrinityServer) -> None:
    sso_page.goto("/login?next=/executions")
    sso_page.get_by_test_id("login-sso").click()
    sso_page.wait_for_url(re.compile(r"/oauth2/authorize"))

    sso_page.get_by_role("button", name="Deny").click()

    sso_page.wait_for_url(re.compile(r"/login\?error="))
    expect(sso_page.get_by_text("Single sign-on failed: the identity provider refused the "
                                "sign-in (access_denied).")).to_be_visible()
    expect(sso_page.get_by_test_id("login-sso")).to_be_visible()
