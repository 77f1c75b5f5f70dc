"""`/login`: sign in with a local password (or single sign-on when it is configured)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse

from app.audit import Context
from app.identity import AuthError
from app.web_auth import COOKIE, safe_next
from pages.shell import container, request_context

__all__ = ["register"]


def register() -> None:
    from nicegui import ui

    @ui.page("/login")
    async def login(request: Request, next: str = "/", expired: str = "",
                    signed_out: str = "", error: str = "", changed: str = "") -> Any:
        c = container()
        target = safe_next(next)
        ctx = request_context(request)
        if await c.identity.session_principal(request.cookies.get(COOKIE)) is not None:
            return RedirectResponse(target, status_code=303)  # already signed in
        ui.page_title("Sign in · Trinity Processes")
        with ui.column().classes("absolute-center items-stretch w-96 gap-3"):
            ui.label("Trinity Processes").classes("text-2xl font-semibold text-center")
            if expired:
                _note("The sign-in link expired; please sign in again.")
            if signed_out:
                _note("You are signed out.")
            if changed:
                _note("Your password was changed and every session ended; sign in with the "
                      "new password.")
            if error:
                _note(error[:200], error=True)
            with ui.card().classes("p-6 gap-3"):
                user = ui.input("Username").props(
                    'autofocus autocomplete=username data-testid="login-username"').classes(
                    "w-full")
                password = ui.input("Password", password=True,
                                    password_toggle_button=True).props(
                    'autocomplete=current-password data-testid="login-password"').classes(
                    "w-full")
                message = ui.label("").classes("text-red-700 text-sm").props(
                    'role=alert data-testid="login-error"')
                message.set_visibility(False)

                async def submit() -> None:
                    name = (user.value or "").strip()
                    if not name or not password.value:
                        _show(message, "Enter your username and password.")
                        return
                    try:
                        row = await c.identity.authenticate(name, password.value)
                    except AuthError as e:
                        await _audit_failure(c, name, str(e), ctx)
                        _show(message, str(e)[:1].upper() + str(e)[1:] + ".")
                        password.value = ""
                        return
                    _, ticket = await c.identity.start_session(row.username, ctx.ip,
                                                               ctx.user_agent)
                    await c.audit.append(row.username, "auth.signed_in", "user", row.username,
                                         {"method": "password"}, context=ctx)
                    ui.navigate.to(f"/auth/adopt?ticket={quote(ticket)}"
                                   f"&next={quote(target, safe='')}")

                password.on("keydown.enter", submit)
                ui.button("Sign in", on_click=submit).classes("w-full").props(
                    'data-testid="login-submit"')
                if c.settings.oidc_issuer:
                    ui.separator()
                    ui.button("Sign in with single sign-on",
                              on_click=lambda: ui.navigate.to(
                                  f"/auth/oidc/login?next={quote(target, safe='')}")).props(
                        'outline data-testid="login-sso"').classes("w-full")
        return None


def _note(text: str, error: bool = False) -> None:
    from nicegui import ui

    ui.label(text).classes("text-sm text-center " + (
        "text-red-700" if error else "text-slate-600")).props('role=status')


def _show(label: Any, text: str) -> None:
    label.text = text
    label.set_visibility(True)


async def _audit_failure(c: Any, username: str, reason: str, ctx: Context) -> None:
    await c.audit.append(username or "anonymous", "auth.failed", "user", username or "-",
                         {"reason": reason, "method": "password"}, outcome="denied",
                         context=ctx)
