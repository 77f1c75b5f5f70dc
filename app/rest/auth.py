"""Who is calling the API: an API token (`Authorization: Bearer trp_…`) or the browser's
session cookie.

A cookie rides along with any request the browser makes, including ones another site
triggers, so a cookie-authenticated unsafe request must come with an `Origin` (or, failing
that, a `Referer`) naming this host; tokens are never sent implicitly and need no such check.
A credential that is given but not valid is recorded in the audit log as `auth.failed`
(never with the credential itself).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from fastapi import Request

from app.audit import Context
from app.rest.errors import ApiError
from app.web_auth import COOKIE

__all__ = ["authenticator", "context_of", "same_origin"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CHALLENGE = 'Bearer realm="trinity"'


def context_of(request: Request) -> Context:
    return Context(request.client.host if request.client else None,
                   request.headers.get("user-agent"))


def authenticator(c: Any) -> Any:
    """`authenticate(request) -> Actor` for the routes of container `c`."""
    async def authenticate(request: Request) -> Any:
        ctx = context_of(request)
        header = request.headers.get("authorization")
        if header is not None:
            return c.guard.actor(await _token_principal(c, header, ctx), ctx)
        cookie = request.cookies.get(COOKIE)
        if cookie:
            principal = await c.identity.session_principal(cookie)
            if principal is None:
                await _failed(c, ctx, "expired or unknown session")
            actor = c.guard.actor(principal, ctx)
            if request.method not in SAFE_METHODS and not same_origin(request):
                await actor.denied(f"{request.method} {request.url.path}", "api", "csrf",
                                   "cross-site request with a session cookie")
                raise ApiError(403, "csrf", "a cookie-authenticated change needs an Origin "
                               "or Referer header of this site (or use an API token)")
            return actor
        raise ApiError(401, "unauthenticated", "sign in, or send 'Authorization: Bearer "
                       "<token>' with an API token", headers={"WWW-Authenticate": _CHALLENGE})
    return authenticate


async def _token_principal(c: Any, header: str, ctx: Context) -> Any:
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        await _failed(c, ctx, "malformed Authorization header")
    principal = await c.identity.token_principal(token.strip())
    if principal is None:
        await _failed(c, ctx, "unknown, expired or revoked token")
    return principal


async def _failed(c: Any, ctx: Context, reason: str) -> None:
    await c.audit.append("anonymous", "auth.failed", "api", "token", {"reason": reason},
                         outcome="denied", context=ctx)
    raise ApiError(401, "unauthenticated", f"not signed in: {reason}",
                   headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'})


def same_origin(request: Request) -> bool:
    """The request's Origin (or Referer) names the host it was sent to."""
    host = (request.headers.get("host") or "").lower()
    source = request.headers.get("origin") or request.headers.get("referer")
    if not host or not source or source == "null":
        return False
    return urlparse(source).netloc.lower() == host
