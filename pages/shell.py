"""What every page shares: the container, who is signed in, and the application frame.

A page is written as

    @ui.page("/executions")
    async def executions(request: Request) -> Any:
        actor = await page_actor(request)
        if actor is None:
            return to_login(request)
        with frame(actor, "Executions", active="/executions"):
            ...

Pages read and act only through `actor` (an `app.guard.Actor`), so the policy and the audit
log see everything a page does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse

from app.audit import Context
from app.guard import Actor
from app.security import Permission

__all__ = ["COOKIE", "NAV", "container", "frame", "page_actor", "set_container", "to_login"]

from app.web_auth import COOKIE

# (path, label, icon, permission needed to see the link or None)
NAV: list[tuple[str, str, str, Permission | None]] = [
    ("/", "Home", "home", None),
    ("/processes", "Processes", "account_tree", Permission.PROCESS_READ),
    ("/executions", "Executions", "play_circle", Permission.EXECUTION_VIEW),
    ("/inbox", "Inbox", "inbox", None),
    ("/dashboard", "Dashboard", "speed", Permission.EXECUTION_VIEW),
    ("/agents", "Agents", "smart_toy", Permission.PROCESS_READ),
    ("/admin", "Admin", "admin_panel_settings", Permission.ADMIN_MANAGE_USERS),
    ("/audit", "Audit", "policy", Permission.AUDIT_READ),
]

_holder: dict[str, Any] = {}


def set_container(container: Any) -> None:
    _holder["container"] = container


def container() -> Any:
    """The bootstrapped container (app.bootstrap.Container)."""
    found = _holder.get("container")
    if found is None:
        raise RuntimeError("the server is still starting")
    return found


def request_context(request: Request) -> Context:
    ip = request.headers.get("x-forwarded-for", "").split(",")[0].strip() or (
        request.client.host if request.client else None)
    return Context(ip, request.headers.get("user-agent"))


async def page_actor(request: Request) -> Actor | None:
    """The signed-in user acting through the guard, or None (then return `to_login`)."""
    c = container()
    principal = await c.identity.session_principal(request.cookies.get(COOKIE))
    if principal is None:
        return None
    return c.guard.actor(principal, request_context(request))  # type: ignore[no-any-return]


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


@contextmanager
def frame(actor: Actor, title: str, active: str = "") -> Iterator[Any]:
    """The application frame: header with navigation, the user menu, theme switch; yields
    the content column."""
    from nicegui import app, ui

    ui.page_title(f"{title} · Trinity Processes")
    dark = ui.dark_mode(value=app.storage.user.get("dark", False))
    ui.add_head_html('<link rel="stylesheet" href="/static/trinity.css">')
    p = actor.p
    with ui.header().classes("items-center justify-between px-4 py-1 bg-slate-800"):
        with ui.row().classes("items-center gap-1 no-wrap"):
            ui.link("Trinity", "/").classes(
                "text-white text-lg font-semibold no-underline mr-4").props(
                'data-testid="brand"')
            for path, label, icon, permission in NAV:
                if permission is not None and not (
                        p.is_admin or permission in p.anywhere()):
                    continue
                selected = path == active
                link = ui.link(target=path).classes(
                    "no-underline px-2 py-1 rounded text-sm " +
                    ("bg-slate-600 text-white" if selected else "text-slate-200")).props(
                    f'data-testid="nav-{label.lower()}"'
                    + (' aria-current="page"' if selected else ""))
                with link, ui.row().classes("items-center gap-1 no-wrap"):
                    ui.icon(icon).classes("text-base")
                    ui.label(label)
                    if path == "/inbox":
                        ui.badge("", color="orange").props(
                            'data-testid="inbox-badge" rounded').bind_text_from(
                            _inbox_state(actor), "count",
                            lambda n: str(n) if n else "").bind_visibility_from(
                            _inbox_state(actor), "count")
        with ui.row().classes("items-center gap-2 no-wrap"):
            ui.button(icon="dark_mode", on_click=lambda: _toggle(dark)).props(
                'flat round dense color=white aria-label="Switch light/dark theme" '
                'data-testid="theme-toggle"')
            teams = ", ".join(sorted(p.teams | {t for t, _ in p.grants if t != "*"}))
            with ui.button(icon="account_circle").props(
                    'flat dense no-caps color=white data-testid="user-menu"'):
                ui.label(p.display_name or p.username).classes("ml-1 text-sm")
                with ui.menu():
                    with ui.column().classes("p-3 gap-0"):
                        ui.label(p.username).classes("font-semibold")
                        ui.label(f"Teams: {teams or 'none'}").classes("text-xs text-slate-500")
                        roles = ", ".join(sorted({f"{r.value}" + ("" if t == "*" else f"@{t}")
                                                  for t, r in p.grants})) or "no roles"
                        ui.label(f"Roles: {roles}").classes("text-xs text-slate-500")
                    ui.separator()
                    ui.menu_item("Account and API tokens",
                                 lambda: ui.navigate.to("/account")).props(
                                     'data-testid="menu-account"')
                    ui.menu_item("Sign out", lambda: ui.navigate.to("/auth/logout")).props(
                        'data-testid="menu-signout"')
    with ui.column().classes("w-full max-w-screen-2xl mx-auto p-4 gap-4") as content:
        yield content


class _InboxCount:
    def __init__(self) -> None:
        self.count = 0


def _inbox_state(actor: Actor) -> _InboxCount:
    """A per-page holder of the pending approvals count, refreshed by the inbox badge
    updater (pages/live.py when present)."""
    from nicegui import context

    client = context.client
    state = getattr(client, "_trinity_inbox", None)
    if state is None:
        state = _InboxCount()
        client._trinity_inbox = state  # type: ignore[attr-defined]
        from nicegui import background_tasks

        async def load() -> None:
            try:
                state.count = len(await actor.inbox())
            except Exception:  # the badge is decoration; the inbox page shows errors
                state.count = 0
        background_tasks.create(load(), name="inbox-count")
    return state  # type: ignore[no-any-return]


def _toggle(dark: Any) -> None:
    from nicegui import app

    dark.value = not dark.value
    app.storage.user["dark"] = dark.value
