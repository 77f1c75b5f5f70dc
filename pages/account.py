"""`/account`: who I am (teams, roles, what they allow), my password, and my API tokens.

A new token is shown once, in a dialog with a copy button; afterwards only its prefix is
known (the database holds a hash). Everything here acts on the signed-in user only.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from app.identity import IdentityError
from app.security import ALL_TEAMS, Denied
from pages.shell import frame, page_actor, to_login, when

__all__ = ["register"]


def register() -> None:
    from nicegui import ui

    @ui.page("/account")
    async def account_page(request: Request) -> Any:
        actor = await page_actor(request)
        if actor is None:
            return to_login(request)
        with frame(actor, "Account", active="/account"):
            await AccountView(actor).render()
        return None


# Reads of the user's own records: a thin layer over Identity, always scoped to the actor.

async def own_account(actor: Any) -> tuple[Any, list[Any]]:
    """(user row, team memberships) of the signed-in user."""
    for user, _grants, members in await actor.g.identity.users():
        if user.username == actor.p.username:
            return user, members
    raise IdentityError("your account no longer exists")


async def own_tokens(actor: Any) -> list[Any]:
    return list(await actor.g.identity.tokens(actor.p.username))


class AccountView:
    def __init__(self, actor: Any) -> None:
        self.actor = actor
        self.tokens: Any = None
        self.dialogs: Any = None  # dialogs live here, outside what refreshes

    async def render(self) -> None:
        from nicegui import ui

        user, members = await own_account(self.actor)
        self.dialogs = ui.element()
        ui.label("Your account").classes("text-2xl font-semibold")
        with ui.row().classes("w-full gap-4 items-start"):
            with ui.column().classes("gap-4 flex-1 min-w-[20rem]"):
                self._profile(user, members)
            with ui.column().classes("gap-4 flex-1 min-w-[20rem]"):
                self._password(user)
                with ui.card().classes("w-full p-4"):
                    ui.label("Sessions").classes("text-lg font-semibold")
                    ui.label("You stay signed in on this browser until you sign out or the "
                             "session expires. Changing your password signs you out "
                             "everywhere.").classes("text-sm text-slate-600")
                    ui.button("Sign out", icon="logout",
                              on_click=lambda: ui.navigate.to("/auth/logout")).props(
                        'outline data-testid="account-signout"')
        with ui.card().classes("w-full p-4"):
            self.tokens = ui.refreshable(self._tokens)
            await self.tokens()

    # --- profile ---------------------------------------------------------------------------

    def _profile(self, user: Any, members: list[Any]) -> None:
        from nicegui import ui

        p = self.actor.p
        with ui.card().classes("w-full p-4 gap-2").props('data-testid="account-profile"'):
            ui.label("Profile").classes("text-lg font-semibold")
            for label, value in (("Username", p.username),
                                 ("Name", user.display_name or "—"),
                                 ("E-mail", user.email or "—"),
                                 ("Signs in with", "single sign-on" if user.source == "oidc"
                                  else "password"),
                                 ("Last sign-in", when(user.last_login_at))):
                with ui.row().classes("gap-2"):
                    ui.label(f"{label}:").classes("text-slate-500 w-28")
                    slug = label.lower().replace(" ", "-").replace("-mail", "mail")
                    ui.label(value).props(f'data-testid="profile-{slug}"')
            ui.label("Teams").classes("font-semibold mt-2")
            if not members:
                ui.label("You are not a member of any team.").classes(
                    "text-sm text-slate-500")
            for m in sorted(members, key=lambda m: m.team):
                ui.label(f"{m.team} — {m.role}").classes("text-sm")
            ui.label("Roles").classes("font-semibold mt-2")
            if not p.grants:
                ui.label("No roles yet: ask an administrator to grant you one.").classes(
                    "text-sm text-slate-500")
            for team, role in sorted(p.grants):
                where = "every team" if team == ALL_TEAMS else f"team {team}"
                ui.label(f"{role.value} in {where}").classes("text-sm").props(
                    'data-testid="profile-role"')
            ui.label("What you may do").classes("font-semibold mt-2")
            perms = sorted(x.value for x in p.anywhere())
            with ui.row().classes("gap-1"):
                if not perms:
                    ui.label("Nothing yet.").classes("text-sm text-slate-500")
                for perm in perms:
                    ui.badge(perm, color="grey-3", text_color="grey-9").props(
                        'data-testid="profile-permission"')

    # --- password --------------------------------------------------------------------------

    def _password(self, user: Any) -> None:
        from nicegui import ui

        with ui.card().classes("w-full p-4 gap-2").props('data-testid="account-password"'):
            ui.label("Password").classes("text-lg font-semibold")
            if user.password_hash is None:
                ui.label("You sign in through single sign-on; your password is managed "
                         "there.").classes("text-sm text-slate-600")
                return
            old = ui.input("Current password", password=True).props(
                'autocomplete=current-password data-testid="pw-old"').classes("w-full")
            new = ui.input("New password (at least 10 characters)", password=True).props(
                'autocomplete=new-password data-testid="pw-new"').classes("w-full")
            again = ui.input("New password again", password=True).props(
                'autocomplete=new-password data-testid="pw-confirm"').classes("w-full")
            error = ui.label("").classes("text-red-700 text-sm").props(
                'role=alert data-testid="pw-error"')

            async def change() -> None:
                problem = await self.change_password(old.value or "", new.value or "",
                                                     again.value or "")
                if problem:
                    error.text = problem
                    return
                ui.navigate.to("/login?changed=1")

            ui.button("Change password", on_click=change).props('data-testid="pw-submit"')

    async def change_password(self, old: str, new: str, again: str) -> str | None:
        """The problem in words, or None when changed (all sessions end)."""
        if not old or not new:
            return "Enter your current password and a new one."
        if new != again:
            return "The two new passwords differ."
        try:
            await self.actor.change_own_password(old, new)
        except IdentityError as e:
            return _sentence(str(e))
        return None

    # --- API tokens ------------------------------------------------------------------------

    async def _tokens(self) -> None:
        from nicegui import ui

        ui.label("API tokens").classes("text-lg font-semibold")
        ui.label("For the REST API and the command line (trinity --server URL --token …). "
                 "A token acts with your roles; it is shown once when created.").classes(
            "text-sm text-slate-600")
        with ui.row().classes("items-end gap-2"):
            name = ui.input("Token name").props('data-testid="token-name"')
            days = ui.number("Expires after days (empty: never)", min=1, max=3650,
                             precision=0).props('data-testid="token-days"').classes("w-56")
            error = ui.label("").classes("text-red-700 text-sm").props(
                'role=alert data-testid="token-error"')

            async def create() -> None:
                problem = await self.create_token(name.value or "", days.value)
                error.text = problem or ""
                if not problem:
                    name.value = ""

            ui.button("Create token", icon="key", on_click=create).props(
                'data-testid="token-create"')
        rows = await own_tokens(self.actor)
        if not rows:
            ui.label("You have no API tokens yet.").classes("text-slate-500").props(
                'data-testid="tokens-empty"')
            return
        with ui.column().classes("w-full gap-0").props('data-testid="tokens-list" role=table'):
            with ui.row().classes("w-full text-xs text-slate-500 font-semibold py-1 border-b"
                                  ).props("role=row"):
                for head, width in _TOKEN_COLUMNS:
                    ui.label(head).classes(width).props("role=columnheader")
            for t in rows:
                self._token_row(t)

    def _token_row(self, t: Any) -> None:
        from nicegui import ui

        status = "revoked " + when(t.revoked_at) if t.revoked_at else "active"
        cells = [t.name, f"{t.prefix}…", when(t.created_at), when(t.last_used_at, "never"),
                 when(t.expires_at, "never"), status]
        with ui.row().classes("w-full items-center text-sm py-1 border-b").props(
                f'role=row data-testid="token-row-{t.name}"'):
            for value, (_, width) in zip(cells, _TOKEN_COLUMNS, strict=False):
                ui.label(value).classes(width).props("role=cell")
            if t.revoked_at is None:
                ui.button("Revoke", on_click=lambda t=t: self.confirm_revoke(t)).props(
                    f'flat dense color=negative data-testid="token-revoke-{t.name}"')

    async def create_token(self, name: str, days: Any) -> str | None:
        if not name.strip():
            return "Give the token a name, e.g. the machine or script that uses it."
        try:
            new = await self.actor.create_token(name.strip(), int(days) if days else None)
        except (IdentityError, Denied, ValueError) as e:
            return _sentence(str(e))
        self.show_once(new.name, new.token)
        self.tokens.refresh()
        return None

    def show_once(self, name: str, token: str) -> None:
        from nicegui import ui

        with self.dialogs, ui.dialog().props("persistent") as dialog, \
                ui.card().classes("w-[36rem] gap-3"):
            ui.label(f"Token “{name}” created").classes("text-lg font-semibold")
            with ui.row().classes("items-center gap-2 w-full no-wrap"):
                ui.label(token).classes(
                    "font-mono text-sm bg-slate-100 text-slate-900 p-2 rounded break-all "
                    "select-all flex-1").props('data-testid="token-value"')
                ui.button(icon="content_copy", on_click=lambda: _copy(token)).props(
                    'flat round aria-label="Copy the token" data-testid="token-copy"')
            with ui.row().classes("items-center gap-2 text-amber-800"):
                ui.icon("warning")
                ui.label("Copy it now: it is shown only this once. Anyone holding it acts "
                         "as you; revoke it here if it leaks.").classes("text-sm")
            def done() -> None:
                dialog.close()
                dialog.delete()  # the token leaves the page too

            with ui.row().classes("w-full justify-end"):
                ui.button("Done", on_click=done).props('data-testid="token-done"')
        dialog.open()

    def confirm_revoke(self, t: Any) -> None:
        from nicegui import ui

        with self.dialogs, ui.dialog() as dialog, ui.card().classes("gap-3"):
            ui.label(f"Revoke the token “{t.name}” ({t.prefix}…)?").classes("font-semibold")
            ui.label("Programs using it stop working at once. This cannot be undone."
                     ).classes("text-sm text-slate-600")

            async def revoke() -> None:
                try:
                    await self.actor.revoke_token(t.id)
                except (IdentityError, Denied) as e:
                    ui.notify(_sentence(str(e)), type="negative")
                    return
                dialog.close()
                ui.notify(f"Token {t.name} revoked", type="positive")
                self.tokens.refresh()

            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button("Revoke", on_click=revoke).props(
                    'color=negative data-testid="token-revoke-confirm"')
        dialog.open()


_TOKEN_COLUMNS = [("Name", "w-40"), ("Prefix", "w-28 font-mono"), ("Created", "w-40"),
                  ("Last used", "w-40"), ("Expires", "w-40"), ("Status", "w-44")]


def _copy(token: str) -> None:
    from nicegui import ui

    ui.clipboard.write(token)
    ui.notify("Copied to the clipboard")


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    return text[0].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")
