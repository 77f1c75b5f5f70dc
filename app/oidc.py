"""Single sign-on with OpenID Connect: the authorization code flow with PKCE, through authlib.

`/auth/oidc/login` sends the browser to the provider; `/auth/oidc/callback` takes it back,
lets authlib check state, PKCE and the id_token (signature, issuer, audience, nonce, expiry),
turns the claims into an account (`Identity.upsert_external`) and sets the session cookie on
the redirect. The provider's groups decide roles and team memberships through the role map
(TRINITY_OIDC_ROLE_MAP, `group=team:role` entries). Every failure ends on `/login?error=...`
with an `auth.failed` audit entry, never an error page.

authlib keeps state, nonce and the PKCE verifier in Starlette's session, which NiceGUI adds
when it runs with a `storage_secret`. The provider's metadata is fetched on the first
sign-in, so the server starts while the provider is down.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import httpx2
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.starlette_client import OAuth
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse
from joserfc.errors import JoseError

from app.audit import Context
from app.identity import AuthError, IdentityError
from app.security import ALL_TEAMS, Role
from app.settings import SettingsError
from app.web_auth import safe_next, set_session_cookie

__all__ = ["Account", "MappedGrant", "SsoError", "account_from_claims", "build_oidc_router",
           "map_groups", "parse_role_map", "username_from_claims"]

log = logging.getLogger("trinity.oidc")

CALLBACK = "/auth/oidc/callback"
_NEXT_KEY = "trinity_oidc_next"
_USERNAME_CHARS = "._-@+"
# Failures of the network, of the provider's answers and of their verification.
_PROVIDER_ERRORS = (AuthlibBaseError, JoseError, httpx.HTTPError, httpx2.HTTPError, ValueError,
                    KeyError, RuntimeError)


class SsoError(Exception):
    """A sign-in that cannot go on: `message` is shown on the sign-in page, `reason` goes to
    the audit log."""

    def __init__(self, message: str, reason: str, username: str | None = None) -> None:
        super().__init__(message)
        self.message, self.reason, self.username = message, reason, username


@dataclass(frozen=True)
class MappedGrant:
    """One role map entry: members of `group` hold `role` in `team` ('*': every team)."""

    group: str
    team: str
    role: Role


@dataclass(frozen=True)
class Account:
    """What the claims say about the person signing in."""

    username: str
    email: str | None
    display_name: str | None
    groups: tuple[str, ...]
    roles: tuple[tuple[str, str], ...]  # (team or '*', role)
    teams: tuple[tuple[str, str], ...]  # (team, team role)


def build_oidc_router(container: Any, settings: Any = None) -> APIRouter:
    """The two SSO routes. They answer 404 while OIDC is not configured. With `settings`
    given, a role map that cannot be read stops the server at start (SettingsError)."""
    if settings is not None and _configured(settings):
        parse_role_map(settings.oidc_role_map)
    router = APIRouter()
    clients: dict[str, Any] = {}  # one authlib client, made on first use

    def client() -> Any:
        s = container.settings
        if not _configured(s):
            raise HTTPException(404, "single sign-on is not configured")
        if "oidc" not in clients:
            clients["oidc"] = _make_client(s)
        return clients["oidc"]

    @router.get("/auth/oidc/login", include_in_schema=False)
    async def login(request: Request, next: str = "/") -> RedirectResponse:
        oidc = client()
        request.session[_NEXT_KEY] = safe_next(next)
        try:
            response: RedirectResponse = await oidc.authorize_redirect(
                request, container.settings.base_url.rstrip("/") + CALLBACK)
            return response
        except _PROVIDER_ERRORS as e:
            return await _fail(container, request, _unreachable(e))

    @router.get(CALLBACK, include_in_schema=False)
    async def callback(request: Request) -> RedirectResponse:
        oidc = client()
        target = safe_next(request.session.pop(_NEXT_KEY, "/"))
        try:
            account = await _verified_account(oidc, request, container.settings)
            return await _sign_in(container, request, account, target)
        except SsoError as e:
            return await _fail(container, request, e)

    return router


# --- claims to an account ---------------------------------------------------------------------


def parse_role_map(text: str) -> tuple[MappedGrant, ...]:
    """`group=team:role` entries separated by commas; a group may appear more than once.
    Team '*' means every team (and is the only place `admin` makes sense)."""
    found: list[MappedGrant] = []
    for raw in (part.strip() for part in (text or "").split(",")):
        if not raw:
            continue
        group, eq, target = raw.rpartition("=")
        team, colon, role = target.rpartition(":")
        group, team, role = group.strip(), team.strip(), role.strip()
        if not eq or not colon or not group or not team:
            raise SettingsError(f"TRINITY_OIDC_ROLE_MAP entry '{raw}' is not "
                                "'group=team:role' (e.g. 'ops-admins=*:admin')")
        try:
            grant = MappedGrant(group, team, Role(role))
        except ValueError:
            raise SettingsError(f"TRINITY_OIDC_ROLE_MAP entry '{raw}': unknown role '{role}'; "
                                f"roles are {', '.join(r.value for r in Role)}") from None
        if grant.role is Role.ADMIN and team != ALL_TEAMS:
            raise SettingsError(f"TRINITY_OIDC_ROLE_MAP entry '{raw}': admin is held in every "
                                f"team; write '{group}=*:admin'")
        found.append(grant)
    return tuple(found)


def map_groups(groups: Iterable[str], role_map: Iterable[MappedGrant]
               ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(roles, team memberships) for a member of `groups`; unknown groups are ignored. A
    team membership's team role is the first role the map gives in that team, so approval
    assignees like `{team: finance, role: approver}` find SSO users too."""
    held = set(groups)
    roles: list[tuple[str, str]] = []
    teams: dict[str, str] = {}
    for entry in role_map:
        if entry.group not in held:
            continue
        if (entry.team, entry.role.value) not in roles:
            roles.append((entry.team, entry.role.value))
        if entry.team != ALL_TEAMS:
            teams.setdefault(entry.team, entry.role.value)
    return roles, list(teams.items())


def username_from_claims(claims: Mapping[str, Any]) -> str:
    """`preferred_username`, else the email (lower case; not when the provider says it is
    unverified), else `sub`, reduced to the characters a username may hold."""
    for key in ("preferred_username", "email", "sub"):
        value = claims.get(key)
        if key == "email" and claims.get("email_verified") is False:
            continue
        if isinstance(value, str) and value.strip():
            raw = value.strip().lower() if key == "email" else value.strip()
            cleaned = "".join(c if c.isalnum() or c in _USERNAME_CHARS else "-" for c in raw)
            cleaned = cleaned.strip("-.")[:100]
            if cleaned:
                return cleaned
    raise SsoError("the identity provider sent no usable user name.", "no username claim")


def account_from_claims(claims: Mapping[str, Any], groups_claim: str,
                        role_map: Iterable[MappedGrant]) -> Account:
    username = username_from_claims(claims)
    groups = _groups(claims, groups_claim)
    roles, teams = map_groups(groups, role_map)
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    name = claims.get("name")
    if not isinstance(name, str) or not name.strip():
        parts = [claims.get(k) for k in ("given_name", "family_name")]
        name = " ".join(p for p in parts if isinstance(p, str) and p.strip()) or None
    return Account(username, (email or None) and email[:200], name and name.strip()[:200],
                   tuple(groups), tuple(roles), tuple(teams))


def _has_claim(claims: Mapping[str, Any], path: str) -> bool:
    value: Any = claims
    for part in (path or "groups").split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    return True


def _groups(claims: Mapping[str, Any], claim: str) -> list[str]:
    """The groups claim, which may be a dotted path (`realm_access.roles`), a list or one
    string."""
    value: Any = claims
    for part in (claim or "groups").split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if isinstance(v, str | int)]
    return []


# --- the flow ---------------------------------------------------------------------------------


def _configured(settings: Any) -> bool:
    return bool(getattr(settings, "oidc_issuer", None) and
                getattr(settings, "oidc_client_id", None))


def _make_client(settings: Any) -> Any:
    oauth = OAuth()
    issuer = settings.oidc_issuer.rstrip("/")
    return oauth.register(
        name="oidc", server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_id=settings.oidc_client_id, client_secret=settings.oidc_client_secret,
        client_kwargs={"scope": settings.oidc_scopes, "code_challenge_method": "S256",
                       "timeout": 10})


async def _verified_account(oidc: Any, request: Request, settings: Any) -> Account:
    error = request.query_params.get("error")
    if error:
        # Only the error code is shown: anyone can craft a callback link, so free text
        # from it would let them put words on our sign-in page.
        code = "".join(c for c in error[:40] if c.isalnum() or c == "_") or "error"
        described = request.query_params.get("error_description") or ""
        raise SsoError(f"the identity provider refused the sign-in ({code}).",
                       f"provider error: {code}: {described[:200]}")
    if not request.query_params.get("state") or not request.query_params.get("code"):
        raise SsoError("the answer from the identity provider was incomplete; please try "
                       "again.", "no code/state")
    try:
        token = await oidc.authorize_access_token(request)
    except _PROVIDER_ERRORS as e:
        raise _translate(e) from e
    claims = token.get("userinfo")
    if not claims:
        raise SsoError("the identity provider sent no ID token; the scopes must include "
                       "'openid'.", "no id_token")
    claims = dict(claims)
    if not _has_claim(claims, settings.oidc_groups_claim):
        claims = await _with_userinfo(oidc, token, claims)
    return account_from_claims(claims, settings.oidc_groups_claim,
                               parse_role_map(settings.oidc_role_map))


async def _with_userinfo(oidc: Any, token: Any, claims: dict[str, Any]) -> dict[str, Any]:
    """Some providers put groups only in the userinfo answer; it must be about the same
    subject as the verified ID token."""
    metadata = await oidc.load_server_metadata()
    if not metadata.get("userinfo_endpoint"):
        return claims
    try:
        extra = dict(await oidc.userinfo(token=token))
    except _PROVIDER_ERRORS as e:
        raise _translate(e) from e
    if extra.get("sub") != claims.get("sub"):
        raise SsoError("the identity provider's answers did not match; please try again.",
                       "userinfo sub differs from id_token sub")
    return {**extra, **claims}


async def _sign_in(container: Any, request: Request, account: Account,
                   target: str) -> RedirectResponse:
    ctx = _context(request)
    try:
        user = await container.identity.upsert_external(
            account.username, account.email, account.display_name, list(account.roles),
            list(account.teams))
    except AuthError as e:
        raise SsoError(f"{e}.", "a local account has this name", account.username) from e
    except IdentityError as e:
        raise SsoError(f"{e}.", "invalid account", account.username) from e
    if not user.active:
        raise SsoError("this account is disabled; ask an administrator.", "account disabled",
                       account.username)
    # A new session only counts once its one-time ticket is traded; here that happens at once
    # because this plain HTTP response can carry the cookie itself.
    _, ticket = await container.identity.start_session(account.username, ctx.ip,
                                                       ctx.user_agent)
    token = await container.identity.adopt(ticket)
    if token is None:
        raise SsoError("the session could not be started; please try again.",
                       "session ticket refused", account.username)
    roles = sorted(f"{role}@{team}" for team, role in account.roles)
    await container.audit.append(account.username, "auth.signed_in", "user", account.username,
                                 {"method": "oidc", "roles": roles,
                                  "groups": list(account.groups)[:50]}, context=ctx)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, token, container.settings)
    return response


async def _fail(container: Any, request: Request, error: SsoError) -> RedirectResponse:
    log.warning("single sign-on failed: %s", error.reason)
    await container.audit.append(error.username or "anonymous", "auth.failed", "user",
                                 error.username or "-",
                                 {"method": "oidc", "reason": error.reason[:300]},
                                 outcome="denied", context=_context(request))
    return RedirectResponse(f"/login?error={quote('Single sign-on failed: ' + error.message)}",
                            status_code=303)


def _translate(e: Exception) -> SsoError:
    """authlib's and the network's errors as a message for the person signing in."""
    if isinstance(e, httpx.HTTPError | httpx2.HTTPError) and \
            not isinstance(e, httpx.HTTPStatusError | httpx2.HTTPStatusError):
        return _unreachable(e)
    error = getattr(e, "error", None)
    if error == "mismatching_state":
        return SsoError("the sign-in expired or was started in another window; please try "
                        "again.", "state mismatch")
    if error in ("invalid_client", "unauthorized_client"):
        return SsoError("the identity provider did not accept this application's "
                        "credentials; ask an administrator.", f"token endpoint: {error}")
    if error:
        return SsoError(f"the identity provider refused the sign-in ({error}).",
                        f"{type(e).__name__}: {error}: {getattr(e, 'description', '')}")
    return SsoError("the identity provider's answer could not be verified.",
                    f"{type(e).__name__}: {e}")


def _unreachable(e: Exception) -> SsoError:
    if isinstance(e, httpx.HTTPError | httpx2.HTTPError | ValueError | KeyError | RuntimeError):
        return SsoError("the identity provider cannot be reached; try again later.",
                        f"provider unreachable: {type(e).__name__}: {e}")
    return _translate(e)


def _context(request: Request) -> Context:
    ip = request.headers.get("x-forwarded-for", "").split(",")[0].strip() or (
        request.client.host if request.client else None)
    return Context(ip, request.headers.get("user-agent"))
