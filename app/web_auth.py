"""Browser sign-in plumbing over plain HTTP: the session cookie is set and cleared here.

The sign-in page (a NiceGUI page, so it talks over a websocket and cannot set cookies)
checks the password and gets a one-time ticket; the browser is then sent to `/auth/adopt`,
which trades the ticket for the HttpOnly, SameSite cookie. The cookie holds a random token;
the database keeps only its hash, with a server-side expiry.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

__all__ = ["COOKIE", "build_auth_router", "safe_next"]

COOKIE = "trinity_session"


def safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect a signed-in user to another host."""
    if not target:
        return "/"
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def build_auth_router(container: Any) -> APIRouter:
    router = APIRouter()

    @router.get("/auth/adopt", include_in_schema=False)
    async def adopt(request: Request, ticket: str = "", next: str = "/") -> RedirectResponse:
        token = await container.identity.adopt(ticket) if ticket else None
        if token is None:
            return RedirectResponse("/login?expired=1", status_code=303)
        response = RedirectResponse(safe_next(next), status_code=303)
        set_session_cookie(response, token, container.settings)
        return response

    @router.get("/auth/logout", include_in_schema=False)
    async def logout(request: Request) -> RedirectResponse:
        token = request.cookies.get(COOKIE)
        principal = await container.identity.session_principal(token)
        await container.identity.end_session(token)
        if principal is not None:
            from app.audit import Context

            await container.audit.append(principal.username, "auth.signed_out", "user",
                                         principal.username, context=Context(
                                             request.client.host if request.client else None,
                                             request.headers.get("user-agent")))
        response = RedirectResponse("/login?signed_out=1", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    return router


def set_session_cookie(response: Any, token: str, settings: Any) -> None:
    response.set_cookie(COOKIE, token, max_age=int(settings.session_hours * 3600), path="/",
                        httponly=True, samesite="lax",
                        secure=str(settings.base_url).startswith("https://"))
