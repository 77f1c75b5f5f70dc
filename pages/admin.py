"""`/admin`: accounts, roles and teams (administrators only).

Every change goes through the guard (`actor.create_user`, `grant`, `revoke`,
`set_membership`, `set_active`, `reset_password`), which checks the policy and writes the
audit log. Anyone else who opens the page gets the access-denied page, and the attempt is
audited as `access.denied`.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from app.identity import IdentityError
from app.security import ALL_TEAMS, Denied, Permission, Role
from app.services import ServiceError
from pages.errors import refuse
from pages.shell import frame, page_actor, to_login, when

__all__ = ["register"]

ROLES = [r.value for r in Role]


def register() -> None:
    from nicegui import ui

    @ui.page("/admin")
    async def admin_page(request: Request) -> Any:
        actor = await page_actor(request)
        if actor is None:
            return to_login(request)
        if not actor.p.is_admin:
            await refuse(actor, "the administration pages", Permission.ADMIN_MANAGE_USERS,
                         "/admin")
            return None
        with frame(actor, "Administration", active="/admin"):
            await AdminView(actor).render()
        return None


# Reads for the page: Identity's lists, behind the same admin check the guard applies to
# changes (a denial is audited).

async def directory(actor: Any) -> list[tuple[Any, list[Any], list[Any]]]:
    """Every account with its role grants and team memberships."""
    if not actor.p.is_admin:
        await actor.denied(Permission.ADMIN_MANAGE_USERS.value, "user", "*")
        raise Denied("only administrators manage accounts", Permission.ADMIN_MANAGE_USERS)
    return list(await actor.g.identity.users())


class AdminView:
    def __init__(self, actor: Any) -> None:
        self.actor = actor
        self.users: Any = None
        self.teams: Any = None
        self.dialogs: Any = None  # dialogs live here, outside what refreshes

    async def render(self) -> None:
        from nicegui import ui

        self.dialogs = ui.element()
        with ui.row().classes("w-full items-center justify-between"):
            ui.label("Administration").classes("text-2xl font-semibold")
            ui.button("Create user", icon="person_add", on_click=self.create_dialog).props(
                'data-testid="admin-create-user"')
        with ui.tabs().classes("self-start") as tabs:
            users_tab = ui.tab("Users", icon="group").props('data-testid="tab-users"')
            teams_tab = ui.tab("Teams", icon="groups").props('data-testid="tab-teams"')
        with ui.tab_panels(tabs, value=users_tab).classes("w-full bg-transparent"):
            with ui.tab_panel(users_tab).classes("p-0"):
                self.users = ui.refreshable(self._users)
                await self.users()
            with ui.tab_panel(teams_tab).classes("p-0"):
                self.teams = ui.refreshable(self._teams)
                await self.teams()

    async def refresh(self) -> None:
        await self.users.refresh()  # awaited: done when the tables show the change
        await self.teams.refresh()

    # --- users -----------------------------------------------------------------------------

    async def _users(self) -> None:
        from nicegui import ui

        entries = await directory(self.actor)
        now = self.actor.g.identity.clock()
        rows = [user_row(u, g, m, now) for u, g, m in entries]
        t = ui.table(columns=USER_COLUMNS, rows=rows, row_key="username").classes("w-full")
        t.props('flat bordered data-testid="users-table"')
        t.add_slot("body-cell-actions", MANAGE_SLOT)
        t.on("manage", lambda e: self.manage_dialog(str(e.args)))
        if len(rows) == 1:
            ui.label("Only you so far. Create accounts with “Create user”, or let people "
                     "sign in with single sign-on when it is configured.").classes(
                "text-slate-500").props('data-testid="users-empty"')

    async def manage_dialog(self, username: str) -> None:
        from nicegui import ui

        with self.dialogs, ui.dialog() as dialog, ui.card().classes(
                "w-[40rem] max-w-full gap-3").props('data-testid="manage-dialog"'):
            body = ui.refreshable(self._manage_body)
            self._body = body
            await body(username, dialog)
        dialog.open()

    async def _manage_body(self, username: str, dialog: Any) -> None:
        from nicegui import ui

        found = [e for e in await directory(self.actor) if e[0].username == username]
        if not found:
            ui.label(f"No user named {username}.")
            return
        user, grants, members = found[0]
        with ui.row().classes("w-full items-center justify-between"):
            ui.label(user.display_name or user.username).classes("text-lg font-semibold")
            ui.button(icon="close", on_click=dialog.close).props(
                'flat round dense aria-label="Close"')
        ui.label(f"{user.username} · {user.email or 'no e-mail'} · "
                 f"{'single sign-on' if user.source == 'oidc' else 'password'} · "
                 f"{'active' if user.active else 'deactivated'}").classes(
            "text-sm text-slate-600")
        self._roles_section(username, grants)
        self._teams_section(username, members)
        self._account_section(user)

    def _roles_section(self, username: str, grants: list[Any]) -> None:
        from nicegui import ui

        ui.label("Roles").classes("font-semibold")
        if not grants:
            ui.label("No roles: this person can sign in but see nothing yet.").classes(
                "text-sm text-slate-500")
        for g in sorted(grants, key=lambda g: (g.team, g.role)):
            with ui.row().classes("items-center gap-2"):
                where = "every team (*)" if g.team == ALL_TEAMS else f"team {g.team}"
                ui.label(f"{g.role} in {where}").classes("text-sm")
                ui.button("Revoke", on_click=lambda g=g: self.act(
                    self.actor.revoke(username, g.team, g.role),
                    f"{g.role} revoked from {username}")).props(
                    f'flat dense color=negative data-testid="revoke-{g.team}-{g.role}"')
        with ui.row().classes("items-end gap-2"):
            role = ui.select(ROLES, label="Role", value=Role.VIEWER.value).props(
                'data-testid="grant-role"').classes("w-36")
            team = ui.input("Team (* = every team)", value="*").props(
                'data-testid="grant-team"').classes("w-48")

            async def grant() -> None:
                where = (team.value or "").strip()
                if not where:
                    ui.notify("Name a team, or * for every team", type="warning")
                    return
                await self.act(self.actor.grant(username, where, role.value),
                               f"{role.value} granted to {username} in {where}")

            ui.button("Grant", on_click=grant).props('data-testid="grant-submit"')

    def _teams_section(self, username: str, members: list[Any]) -> None:
        from nicegui import ui

        ui.label("Team memberships").classes("font-semibold")
        ui.label("The team role is what approval steps name as assignees "
                 "({team, role}).").classes("text-xs text-slate-500")
        if not members:
            ui.label("Not a member of any team.").classes("text-sm text-slate-500")
        for m in sorted(members, key=lambda m: m.team):
            with ui.row().classes("items-center gap-2"):
                ui.label(f"{m.team} — {m.role}").classes("text-sm")
                ui.button("Remove", on_click=lambda m=m: self.act(
                    self.actor.set_membership(username, m.team, None),
                    f"{username} removed from {m.team}")).props(
                    f'flat dense color=negative data-testid="member-remove-{m.team}"')
        with ui.row().classes("items-end gap-2"):
            team = ui.input("Team").props('data-testid="member-team"').classes("w-40")
            team_role = ui.input("Team role", value="member").props(
                'data-testid="member-role"').classes("w-40")

            async def add() -> None:
                name = (team.value or "").strip()
                if not name or name == ALL_TEAMS:
                    ui.notify("Name the team", type="warning")
                    return
                await self.act(self.actor.set_membership(
                    username, name, (team_role.value or "").strip() or "member"),
                    f"{username} is in {name}")

            ui.button("Add or update", on_click=add).props('data-testid="member-submit"')

    def _account_section(self, user: Any) -> None:
        from nicegui import ui

        ui.label("Account").classes("font-semibold")
        with ui.row().classes("items-end gap-2"):
            if user.active:
                ui.button("Deactivate", icon="block", on_click=lambda: self.act(
                    self.actor.set_active(user.username, False),
                    f"{user.username} deactivated")).props(
                    'outline color=negative data-testid="user-deactivate"')
            else:
                ui.button("Activate", icon="check_circle", on_click=lambda: self.act(
                    self.actor.set_active(user.username, True),
                    f"{user.username} activated")).props(
                    'outline data-testid="user-activate"')
        if user.source == "oidc":
            return
        with ui.row().classes("items-end gap-2"):
            new = ui.input("New password (also unlocks)", password=True).props(
                'autocomplete=new-password data-testid="reset-password"').classes("w-64")

            async def reset() -> None:
                await self.act(self.actor.reset_password(user.username, new.value or ""),
                               f"Password of {user.username} reset; their sessions ended")

            ui.button("Reset password", on_click=reset).props('data-testid="reset-submit"')

    async def act(self, change: Any, done: str) -> bool:
        """Run one guarded change; say what happened, refresh what shows it."""
        from nicegui import ui

        try:
            await change
        except (IdentityError, Denied, ServiceError) as e:
            message = getattr(e, "reason", None) or str(e)
            ui.notify(message[:1].upper() + message[1:], type="negative")
            return False
        ui.notify(done, type="positive")  # first: the refresh deletes the button's slot
        body = getattr(self, "_body", None)
        if body is not None:
            await body.refresh()  # awaited: done when the dialog shows the change
        await self.refresh()
        return True

    # --- create ----------------------------------------------------------------------------

    def create_dialog(self) -> None:
        from nicegui import ui

        with self.dialogs, ui.dialog() as dialog, ui.card().classes("w-[32rem] gap-2").props(
                'data-testid="create-user-dialog"'):
            ui.label("Create user").classes("text-lg font-semibold")
            f: dict[str, Any] = {
                "username": ui.input("Username").props('data-testid="new-username"'),
                "email": ui.input("E-mail (optional)").props('data-testid="new-email"'),
                "name": ui.input("Display name (optional)").props('data-testid="new-name"'),
                "password": ui.input("Initial password (empty: signs in with single "
                                     "sign-on)", password=True).props(
                    'autocomplete=new-password data-testid="new-password"'),
            }
            with ui.row().classes("gap-2 w-full"):
                f["role"] = ui.select(["", *ROLES], label="Role (optional)", value="").props(
                    'data-testid="new-role"').classes("w-36")
                f["role_team"] = ui.input("in team (* = every team)", value="*").props(
                    'data-testid="new-role-team"').classes("flex-1")
            with ui.row().classes("gap-2 w-full"):
                f["team"] = ui.input("Member of team (optional)").props(
                    'data-testid="new-team"').classes("flex-1")
                f["team_role"] = ui.input("Team role", value="member").props(
                    'data-testid="new-team-role"').classes("w-36")
            error = ui.label("").classes("text-red-700 text-sm").props(
                'role=alert data-testid="new-error"')

            async def create() -> None:
                problem = await self.create(f)
                if problem:
                    error.text = problem
                    return
                dialog.close()
                ui.notify(f"User {f['username'].value.strip()} created", type="positive")
                await self.refresh()

            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button("Create", on_click=create).props('data-testid="new-submit"')
        dialog.open()

    async def create(self, f: dict[str, Any]) -> str | None:
        """Create from the form; the problem in words, or None."""
        username = (f["username"].value or "").strip()
        if not username:
            return "A user needs a username."
        role, role_team = f["role"].value or "", (f["role_team"].value or "").strip() or "*"
        team, team_role = (f["team"].value or "").strip(), (f["team_role"].value or "").strip()
        try:
            await self.actor.create_user(
                username, f["password"].value or None,
                email=(f["email"].value or "").strip() or None,
                display_name=(f["name"].value or "").strip() or None,
                roles=[(role_team, role)] if role else [],
                teams=[(team, team_role or "member")] if team else [])
        except (IdentityError, Denied, ServiceError) as e:
            message = getattr(e, "reason", None) or str(e)
            return message[:1].upper() + message[1:]
        return None

    # --- teams -----------------------------------------------------------------------------

    async def _teams(self) -> None:
        from nicegui import ui

        entries = await directory(self.actor)
        teams: dict[str, dict[str, list[str]]] = {}
        for user, grants, members in entries:
            for m in members:
                teams.setdefault(m.team, {"members": [], "roles": []})["members"].append(
                    f"{user.username} ({m.role})")
            for g in grants:
                if g.team != ALL_TEAMS:
                    teams.setdefault(g.team, {"members": [], "roles": []})["roles"].append(
                        f"{user.username}: {g.role}")
        org = sorted(f"{u.username}: {g.role}" for u, gs, _ in entries for g in gs
                     if g.team == ALL_TEAMS)
        with ui.card().classes("w-full p-4 gap-1").props('data-testid="team-*"'):
            ui.label("Organisation-wide roles (*)").classes("font-semibold")
            ui.label(", ".join(org) or "none").classes("text-sm")
        if not teams:
            ui.label("No teams yet. A team exists once someone is a member of it or holds "
                     "a role in it: open a user's “Manage” to add one.").classes(
                "text-slate-500").props('data-testid="teams-empty"')
        with ui.row().classes("w-full gap-4"):
            for name in sorted(teams):
                with ui.card().classes("p-4 gap-1 min-w-[16rem]").props(
                        f'data-testid="team-{name}"'):
                    ui.label(name).classes("font-semibold")
                    ui.label("Members: " + (", ".join(sorted(teams[name]["members"]))
                                            or "none")).classes("text-sm")
                    ui.label("Roles: " + (", ".join(sorted(teams[name]["roles"]))
                                          or "none")).classes("text-sm")


def user_row(user: Any, grants: list[Any], members: list[Any], now: Any) -> dict[str, Any]:
    locked = user.locked_until is not None and user.locked_until > now
    return {
        "username": user.username, "email": user.email or "",
        "source": "single sign-on" if user.source == "oidc" else "password",
        "active": "yes" if user.active else "no",
        "locked": f"until {when(user.locked_until)}" if locked else "no",
        "last_login": when(user.last_login_at, "never"),
        "roles": ", ".join(sorted(f"{g.role}@{g.team}" for g in grants)) or "none",
        "teams": ", ".join(sorted(f"{m.team} ({m.role})" for m in members)) or "none",
    }


def _col(name: str, label: str, sortable: bool = True) -> dict[str, Any]:
    return {"name": name, "label": label, "field": name, "align": "left",
            "sortable": sortable}


USER_COLUMNS = [
    _col("username", "Username"), _col("email", "E-mail"), _col("source", "Signs in with"),
    _col("active", "Active"), _col("locked", "Locked"), _col("last_login", "Last sign-in"),
    _col("roles", "Roles (role@team)", False), _col("teams", "Teams", False),
    {"name": "actions", "label": "", "field": "username"},
]
MANAGE_SLOT = r"""
    <q-td :props="props" class="text-right">
      <q-btn flat dense icon="manage_accounts" label="Manage"
             :aria-label="'Manage ' + props.row.username"
             :data-testid="'manage-' + props.row.username"
             @click="$parent.$emit('manage', props.row.username)" />
    </q-td>"""
