"""What a person sees when something is not for them or not there: the access-denied page
(inside the frame, saying whom to ask), the not-found page for unknown addresses, and the
page shown when a page handler fails. None of them ever shows a stack trace: the details go
to the server log under a reference the page shows.

Pages refuse like this:

    if not actor.p.is_admin:
        return await refuse(actor, "the audit log", Permission.AUDIT_READ, "/audit")
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from app.security import Denied, Permission

__all__ = ["denied", "refuse", "register"]

log = logging.getLogger("trinity.pages")


def denied(actor: Any, what: str, admins: list[str] | None = None, active: str = "") -> None:
    """Render the friendly "no access" page in the frame."""
    from pages.shell import frame

    with frame(actor, "No access", active=active):
        _denied_card(what, admins)


async def refuse(actor: Any, what: str, permission: Permission, path: str) -> None:
    """Record the denial in the audit log (`access.denied`), then render `denied`."""
    await actor.denied(permission.value, "page", path)
    denied(actor, what, await administrators(actor), active=path)


async def administrators(actor: Any) -> list[str]:
    """Whom to ask for access: the organisation's administrators (name and e-mail)."""
    try:
        users = await actor.g.identity.users()
    except Exception:  # a lookup failure must not turn a denial into an error page
        log.exception("could not list administrators for the access-denied page")
        return []
    out = []
    for user, grants, _ in users:
        if user.active and any(g.team == "*" and g.role == "admin" for g in grants):
            name = user.display_name or user.username
            out.append(f"{name} <{user.email}>" if user.email else name)
    return out


def _denied_card(what: str, admins: list[str] | None) -> None:
    from nicegui import ui

    with ui.card().classes("p-8 max-w-xl mx-auto mt-8 items-center gap-3").props(
            'data-testid="access-denied" role=alert'):
        ui.icon("lock").classes("text-6xl text-slate-400")
        ui.label(f"You do not have access to {what}.").classes(
            "text-xl font-semibold text-center")
        ui.label("Your account has no role that allows this. If you need it, ask an "
                 "administrator to grant you a role in the right team.").classes(
            "text-slate-600 text-center")
        if admins:
            ui.label("Administrators: " + ", ".join(admins)).classes(
                "text-sm text-slate-500 text-center").props('data-testid="denied-admins"')
        ui.link("Back to the start page", "/").props('data-testid="denied-home"')


# --- pages for errors ----------------------------------------------------------------------


def register() -> None:
    from nicegui import app

    app.add_exception_handler(404, not_found)
    app.on_page_exception(page_failed)


async def not_found(request: Request, exception: Exception) -> Response:
    """Unknown addresses: a page for people, JSON for API callers and other endpoints."""
    from fastapi.exception_handlers import http_exception_handler
    from nicegui import Client, core
    from nicegui.nicegui import _exception_handler_404
    from nicegui.page import page
    from starlette.exceptions import HTTPException

    if not isinstance(exception, HTTPException):
        return await _exception_handler_404(request, exception)
    if request.url.path.startswith(("/api/", "/_nicegui/", "/auth/", "/static/")):
        return await http_exception_handler(request, exception)
    endpoint = request.scope.get("endpoint")
    if core.root is not None or (endpoint is not None
                                 and not request.scope.get("nicegui_page_path")):
        return await _exception_handler_404(request, exception)  # NiceGUI's own rules
    with Client(page(""), request=request) as client:
        _message_page("404", "This page does not exist.",
                      f"Nothing lives at {request.url.path[:200]}. Check the address, or "
                      "start again from the start page.", "not-found")
    return client.build_response(request, 404)


def page_failed(exception: Exception) -> None:
    """A page handler raised: log it under a reference, show a plain page."""
    if isinstance(exception, Denied):
        _message_page("403", "You do not have access to this.", exception.reason,
                      "access-denied")
        return
    ref = secrets.token_hex(4)
    # NiceGUI logs the traceback right after this line; the reference ties the two together.
    log.error("page failed (reference %s): %s", ref, type(exception).__name__)
    _message_page("500", "Something went wrong on our side.",
                  f"The error was recorded with the reference {ref}. Try again, and if it "
                  "keeps happening, give the reference to an administrator.", "server-error")


def _message_page(code: str, title: str, text: str, testid: str) -> None:
    from nicegui import ui

    ui.page_title(f"{title} · Trinity Processes")
    with ui.column().classes("absolute-center items-center gap-3 max-w-lg text-center").props(
            f'data-testid="{testid}" role=alert'):
        ui.label(code).classes("text-6xl font-bold text-slate-400")
        ui.label(title).classes("text-xl font-semibold")
        ui.label(text).classes("text-slate-600")
        ui.link("Go to the start page", "/").props('data-testid="error-home"')
