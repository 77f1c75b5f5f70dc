"""Single sign-on against a real OpenID provider (oidc-provider-mock on 127.0.0.1).

The FastAPI side runs in process (our router behind Starlette's SessionMiddleware, as NiceGUI
sets it up, on a real SQLite database); the provider is a real HTTP server. Redirects are
followed by hand: /auth/oidc/login → the provider's form → our callback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from app.oidc import build_oidc_router, parse_role_map, username_from_claims
from app.security import Role
from app.settings import SettingsError
from app.web_auth import COOKIE
from tests.integration.conftest import make_settings
from tests.support.oidc import MockProvider, RegisteredClient, running_provider

pytestmark = pytest.mark.integration

APP = "http://trinity.test"
CALLBACK = f"{APP}/auth/oidc/callback"
ROLE_MAP = "finance-approvers=finance:approver,readers=*:viewer,ops-admins=*:admin"


@dataclass
class Site:
    container: Any
    browser: httpx.AsyncClient  # talks to our app; keeps its cookies like a browser

    def session_cookie(self) -> str | None:
        return self.browser.cookies.get(COOKIE)

    async def principal(self) -> Any:
        return await self.container.identity.session_principal(self.session_cookie())


@pytest.fixture(scope="module")
def provider() -> Iterator[MockProvider]:
    with running_provider() as p:
        yield p


@pytest.fixture(scope="module")
def client(provider: MockProvider) -> RegisteredClient:
    return provider.register_client(CALLBACK)


@pytest.fixture
async def site_factory(tmp_path: Path, redis_url: str, provider: MockProvider,
                       client: RegisteredClient) -> AsyncIterator[Callable[..., Awaitable[Site]]]:
    from fastapi import FastAPI
    from starlette.middleware.sessions import SessionMiddleware

    from app.bootstrap import bootstrap

    made: list[Site] = []

    async def make(**overrides: Any) -> Site:
        base = make_settings(f"sqlite+aiosqlite:///{tmp_path / f'sso{len(made)}.db'}",
                             tmp_path / "home")
        oidc = {"oidc_issuer": provider.issuer, "oidc_client_id": client.client_id,
                "oidc_client_secret": client.client_secret, "oidc_role_map": ROLE_MAP}
        settings = replace(base, base_url=APP, **{**oidc, **overrides})
        container = await bootstrap(settings, redis_url)
        app = FastAPI()
        app.add_middleware(SessionMiddleware, secret_key="x" * 40)
        app.include_router(build_oidc_router(container, settings))
        browser = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP)
        made.append(Site(container, browser))
        return made[-1]

    yield make
    for site in made:
        await site.browser.aclose()
        await site.container.close()


@pytest.fixture
async def site(site_factory: Callable[..., Awaitable[Site]]) -> Site:
    return await site_factory()


async def start(site: Site, next: str = "/") -> str:
    """/auth/oidc/login; returns the provider's authorize URL it redirects to."""
    answer = await site.browser.get("/auth/oidc/login", params={"next": next})
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


async def at_provider(authorize_url: str, form: dict[str, str]) -> str:
    """Submit the provider's sign-in form; returns where it sends the browser back to."""
    async with httpx.AsyncClient(timeout=10) as idp:
        page = await idp.get(authorize_url)
        assert page.status_code == 200, page.text
        answer = await idp.post(authorize_url, data=form)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


async def sign_in(site: Site, sub: str, next: str = "/") -> httpx.Response:
    back = await at_provider(await start(site, next), {"sub": sub})
    assert back.startswith(CALLBACK)
    return await site.browser.get(back)


def error_of(answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    location = urlsplit(answer.headers["location"])
    assert location.path == "/login", answer.headers["location"]
    return parse_qs(location.query)["error"][0]


async def audit_actions(site: Site) -> list[tuple[str, str, dict[str, Any]]]:
    rows = await site.container.audit.query(action="auth.")
    return [(r.action, r.actor, r.details) for r in rows]


# --- signing in -------------------------------------------------------------------------------


async def test_a_person_signs_in_through_the_provider_and_holds_the_roles_their_groups_map_to(
        site: Site, provider: MockProvider) -> None:
    provider.set_user("alice-sub", preferred_username="alice", email="alice@example.com",
                      name="Alice Liddell", groups=["finance-approvers", "readers", "chess"])

    answer = await sign_in(site, "alice-sub", next="/executions?status=running")

    assert answer.status_code == 303
    assert answer.headers["location"] == "/executions?status=running"
    assert "httponly" in answer.headers["set-cookie"].lower()
    me = await site.principal()
    assert me is not None and me.username == "alice"
    assert me.display_name == "Alice Liddell" and me.email == "alice@example.com"
    assert me.grants == {("finance", Role.APPROVER), ("*", Role.VIEWER)}
    assert me.teams == {"finance"}
    [(action, actor, details)] = await audit_actions(site)
    assert (action, actor) == ("auth.signed_in", "alice")
    assert details["method"] == "oidc"
    assert details["roles"] == ["approver@finance", "viewer@*"]


async def test_signing_in_again_replaces_the_roles_with_what_the_groups_say_now(
        site: Site, provider: MockProvider) -> None:
    provider.set_user("dave", preferred_username="dave", groups=["ops-admins"])
    await sign_in(site, "dave")
    assert (await site.principal()).is_admin

    provider.set_user("dave", preferred_username="dave", groups=["readers"])
    await sign_in(site, "dave")

    me = await site.principal()
    assert me.grants == {("*", Role.VIEWER)}
    assert not me.is_admin


async def test_a_person_without_mapped_groups_signs_in_with_no_roles_named_after_their_email(
        site: Site, provider: MockProvider) -> None:
    provider.set_user("u-7f3a", email="Bob.Smith@Example.com", groups=["unknown-group"])

    answer = await sign_in(site, "u-7f3a")

    assert answer.headers["location"] == "/"
    me = await site.principal()
    assert me.username == "bob.smith@example.com"
    assert me.grants == frozenset() and me.teams == frozenset()


async def test_a_next_address_on_another_host_is_not_followed(
        site: Site, provider: MockProvider) -> None:
    provider.set_user("erin", preferred_username="erin")

    answer = await sign_in(site, "erin", next="https://evil.example/steal")

    assert answer.headers["location"] == "/"


# --- refusals ---------------------------------------------------------------------------------


async def test_a_wrong_client_secret_ends_on_the_sign_in_page_with_a_message(
        site_factory: Callable[..., Awaitable[Site]], provider: MockProvider) -> None:
    site = await site_factory(oidc_client_secret="not-the-secret")
    provider.set_user("frank", preferred_username="frank")

    answer = await sign_in(site, "frank")

    assert "did not accept this application's credentials" in error_of(answer)
    assert site.session_cookie() is None
    [(action, _actor, details)] = await audit_actions(site)
    assert action == "auth.failed" and "invalid_client" in details["reason"]


async def test_a_tampered_state_is_refused(site: Site, provider: MockProvider) -> None:
    provider.set_user("grace", preferred_username="grace")
    back = urlsplit(await at_provider(await start(site), {"sub": "grace"}))
    query = parse_qs(back.query)
    query["state"] = ["forged-" + query["state"][0][:10]]

    answer = await site.browser.get(urlunsplit(back._replace(
        query=urlencode(query, doseq=True))))

    assert "expired or was started in another window" in error_of(answer)
    assert site.session_cookie() is None
    assert [a for a, _, _ in await audit_actions(site)] == ["auth.failed"]


async def test_a_callback_cannot_be_replayed(site: Site, provider: MockProvider) -> None:
    provider.set_user("heidi", preferred_username="heidi")
    back = await at_provider(await start(site), {"sub": "heidi"})
    assert (await site.browser.get(back)).status_code == 303
    site.browser.cookies.delete(COOKIE)

    again = await site.browser.get(back)

    assert "Single sign-on failed" in error_of(again)
    assert site.session_cookie() is None


async def test_a_refusal_at_the_provider_is_shown_on_the_sign_in_page(site: Site) -> None:
    back = await at_provider(await start(site), {"action": "deny"})

    answer = await site.browser.get(back)

    assert "refused the sign-in" in error_of(answer)
    assert "access_denied" in error_of(answer)


async def test_an_sso_user_cannot_take_over_a_local_password_account(
        site: Site, provider: MockProvider) -> None:
    await site.container.identity.create_user("carol", "a-long-password-1")
    provider.set_user("carol-at-idp", preferred_username="carol", groups=["ops-admins"])

    answer = await sign_in(site, "carol-at-idp")

    assert "'carol' signs in with a password, not single sign-on" in error_of(answer)
    assert site.session_cookie() is None
    principal = await site.container.identity.principal("carol")
    assert principal.grants == frozenset()
    [(action, actor, _)] = await audit_actions(site)
    assert (action, actor) == ("auth.failed", "carol")


async def test_an_unreachable_provider_gives_a_message_not_an_error_page(
        site_factory: Callable[..., Awaitable[Site]]) -> None:
    from tests.support.server import free_port

    site = await site_factory(oidc_issuer=f"http://127.0.0.1:{free_port()}")

    answer = await site.browser.get("/auth/oidc/login")

    assert "cannot be reached" in error_of(answer)


async def test_without_oidc_settings_the_routes_do_not_exist(
        site_factory: Callable[..., Awaitable[Site]]) -> None:
    site = await site_factory(oidc_issuer=None)

    assert (await site.browser.get("/auth/oidc/login")).status_code == 404
    assert (await site.browser.get("/auth/oidc/callback?code=x&state=y")).status_code == 404


def test_a_role_map_that_cannot_be_read_names_the_entry() -> None:
    assert parse_role_map(" a=t:viewer , b=*:admin,") == parse_role_map("a=t:viewer,b=*:admin")
    with pytest.raises(SettingsError, match="'finance=approver'"):
        parse_role_map("finance=approver")
    with pytest.raises(SettingsError, match="unknown role 'boss'"):
        parse_role_map("ops=*:boss")
    with pytest.raises(SettingsError, match="write 'ops=\\*:admin'"):
        parse_role_map("ops=finance:admin")


def test_usernames_come_from_the_claims_in_order_and_keep_only_allowed_characters() -> None:
    assert username_from_claims({"preferred_username": "Ann Lee", "sub": "1"}) == "Ann-Lee"
    assert username_from_claims({"email": "Ann@X.org", "sub": "1"}) == "ann@x.org"
    assert username_from_claims({"email": "a@x.org", "email_verified": False,
                                 "sub": "auth0|42"}) == "auth0-42"
