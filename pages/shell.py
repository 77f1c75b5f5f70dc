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
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse

from app.audit import Context
from app.guard import Actor
from app.security import Permission

__all__ = ["COOKIE", "NAV", "container", "frame", "page_actor", "request_context",
           "set_container", "to_login", "when"]

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


def when(value: datetime | None, empty: str = "—") -> str:
    """A timestamp as people read it in tables: '2026-11-28 23:40 UTC'."""
    if value is None:
        return empty
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@contextmanager
def frame(actor: Actor, title: str, active: str = "") -> Iterator[Any]:
    """The application frame: header with navigation, notifications, the user menu and the
    theme switch; yields the content column."""
    from nicegui import app, ui

    ui.page_title(f"{title} · Trinity Processes")
    dark = ui.dark_mode(value=_theme(app.storage.user, actor.p.username))
    ui.add_head_html('<link rel="stylesheet" href="/static/trinity.css">')
    ui.add_head_html(f"<style>{_FRAME_CSS}</style>")
    p = actor.p
    ui.link("Skip to content", "#main-content").classes("trinity-skip").props(
        'data-testid="skip-link"')
    with ui.header().classes("items-center justify-between px-4 py-1 bg-slate-800"):
        with ui.element("nav").classes("row items-center gap-1 no-wrap").props(
                'aria-label="Main"'):
            ui.link("Trinity", "/").classes(
                "text-white text-lg font-semibold no-underline mr-4").props(
                'data-testid="brand"')
            for path, label, icon, permission in NAV:
                if permission is not None and not (
                        p.is_admin or permission in p.anywhere()):
                    continue
                _nav_link(actor, path, label, icon, path == active)
        with ui.row().classes("items-center gap-2 no-wrap"):
            _bell(actor)
            ui.button(icon="light_mode" if dark.value else "dark_mode",
                      on_click=lambda e: _toggle(dark, e.sender, p.username)).props(
                'flat round dense color=white aria-label="Switch light/dark theme" '
                'data-testid="theme-toggle"')
            _user_menu(p)
    with ui.column().classes("w-full max-w-screen-2xl mx-auto p-4 gap-4").props(
            'id=main-content tabindex=-1 role=main') as content:
        yield content


_FRAME_CSS = """
.trinity-skip { position: absolute; left: -9999px; top: 0; z-index: 10000; }
.trinity-skip:focus { left: 1rem; top: 0.5rem; background: #fff; color: #1e293b;
  padding: 0.5rem 1rem; border-radius: 0.25rem; }
.q-header a:focus-visible, .q-header .q-btn:focus-visible {
  outline: 2px solid #fbbf24; outline-offset: 2px; }
"""


def _nav_link(actor: Actor, path: str, label: str, icon: str, selected: bool) -> None:
    from nicegui import ui

    link = ui.link(target=path).classes(
        "no-underline px-2 py-1 rounded text-sm " +
        ("bg-slate-600 text-white" if selected else "text-slate-200")).props(
        f'data-testid="nav-{label.lower()}"' + (' aria-current="page"' if selected else ""))
    with link, ui.row().classes("items-center gap-1 no-wrap"):
        ui.icon(icon).classes("text-base").props('aria-hidden="true"')
        ui.label(label)
        if path == "/inbox":
            state = _inbox_state(actor)
            ui.badge("", color="orange").props(
                'data-testid="inbox-badge" rounded').bind_text_from(
                state, "count", lambda n: str(n) if n else "").bind_visibility_from(
                state, "count")


def _bell(actor: Actor) -> None:
    """Notifications: what waits for the user (pending approvals), with links."""
    from nicegui import ui

    state = _inbox_state(actor)
    with ui.button(icon="notifications").props(
            'flat round dense color=white aria-label="Notifications" '
            'data-testid="notifications"'):
        ui.badge("", color="orange").props('floating rounded').bind_text_from(
            state, "count", lambda n: str(n) if n else "").bind_visibility_from(state, "count")
        with ui.menu().props('data-testid="notifications-menu"'):
            state.menu = ui.refreshable(_bell_items)
            state.menu(state)


def _bell_items(state: _InboxCount) -> None:
    from nicegui import ui

    with ui.column().classes("p-2 gap-1 min-w-[18rem]"):
        ui.label("Notifications").classes("font-semibold px-2")
        if not state.loaded:
            ui.label("Loading …").classes("text-sm text-slate-500 px-2")
        elif not state.items:
            ui.label("Nothing waits for you.").classes("text-sm text-slate-500 px-2").props(
                'data-testid="notifications-empty"')
        for approval_id, text in state.items[:5]:
            ui.link(text, f"/inbox?id={approval_id}").classes(
                "text-sm px-2 py-1 no-underline hover:bg-slate-100 rounded")
        if state.count > 5:
            ui.label(f"and {state.count - 5} more").classes("text-xs text-slate-500 px-2")
        ui.separator()
        ui.link("Open the inbox", "/inbox").classes("text-sm px-2").props(
            'data-testid="notifications-inbox"')


def _user_menu(p: Any) -> None:
    from nicegui import ui

    teams = ", ".join(sorted(p.teams | {t for t, _ in p.grants if t != "*"}))
    with ui.button(icon="account_circle").props(
            'flat dense no-caps color=white data-testid="user-menu" aria-label="Account"'):
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


class _InboxCount:
    def __init__(self) -> None:
        self.count = 0
        self.loaded = False
        self.items: list[tuple[str, str]] = []  # (approval id, what it is about)
        self.menu: Any = None


def _inbox_state(actor: Actor) -> _InboxCount:
    """A per-page holder of the pending approvals: loaded once in the background, then
    reloaded whenever approval events arrive (pages/inbox.py `watch_inbox_count`)."""
    from nicegui import background_tasks, context

    client = context.client
    state = getattr(client, "_trinity_inbox", None)
    if state is not None:
        return state  # type: ignore[no-any-return]
    state = _InboxCount()
    client._trinity_inbox = state  # type: ignore[attr-defined]

    async def load() -> None:
        try:
            pending = await actor.inbox()
            state.items = [(a.id, f"{a.title or a.step_id} · {a.process_name}")
                           for a, _ in pending]
            state.count = len(pending)
        except Exception:  # the badge is decoration; the inbox page shows errors
            state.count, state.items = 0, []
        state.loaded = True
        if state.menu is not None and not client.is_deleted:
            with client:
                state.menu.refresh()

    background_tasks.create(load(), name="inbox-count")
    try:
        from pages.inbox import watch_inbox_count
    except ImportError:  # the inbox page is optional here
        return state
    watch_inbox_count(actor, state, load)
    return state


def _theme(storage: Any, username: str) -> bool:
    themes = storage.get("themes") or {}
    return bool(themes.get(username, storage.get("dark", False)))


def _toggle(dark: Any, button: Any, username: str) -> None:
    """Switch the theme and remember it for this user (in this browser's user storage)."""
    from nicegui import app

    dark.value = not dark.value
    themes = dict(app.storage.user.get("themes") or {})
    themes[username] = bool(dark.value)
    app.storage.user["themes"] = themes
    button.props(f"icon={'light_mode' if dark.value else 'dark_mode'}")
