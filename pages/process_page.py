"""`/processes/new` and `/processes/{name}`: one process version in the designer, with its
lifecycle (save draft, publish, new version, archive, delete draft) and a test run.

A published version is immutable, so it opens read-only with "Edit as new version"; a
draft opens editable and compares against the newest published version. Every action goes
through the actor (the guard), so permissions and the audit log apply as everywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request

from app.security import Denied, Permission
from app.services import InvalidInput, NotFound, ServiceError
from pages.shell import container, frame, page_actor, to_login

__all__ = ["EXAMPLES", "register"]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def register() -> None:
    from nicegui import ui

    @ui.page("/processes/new")
    async def new_process(request: Request, example: str | None = None) -> Any:
        actor = await page_actor(request)
        if actor is None:
            return to_login(request)
        if not any(Permission.PROCESS_CREATE in actor.p.permissions_in(t)
                   for t, _ in actor.p.grants):
            from pages.errors import refuse

            await refuse(actor, "creating processes", Permission.PROCESS_CREATE,
                         "/processes/new")
            return None
        text = _example_text(example) if example else None
        with frame(actor, "New process", active="/processes"):
            await ProcessPage(actor, container(), None).render(text)
        return None

    @ui.page("/processes/{name}")
    async def process_page(request: Request, name: str, version: str | None = None) -> Any:
        actor = await page_actor(request)
        if actor is None:
            return to_login(request)
        try:
            row = await actor.process(name, version, include_drafts=True) if version else \
                await _newest(actor, name)
        except (NotFound, Denied) as e:
            # the same answer for "missing" and "not yours": names are not disclosed
            with frame(actor, "Process", active="/processes"):
                _missing(name, version, getattr(e, "reason", None) or str(e))
            return None
        with frame(actor, row.name, active="/processes"):
            await ProcessPage(actor, container(), row).render(row.yaml_text)
        return None


def examples() -> list[tuple[str, str]]:
    """(file stem, first line of its description) of each example shipped with the product."""
    import yaml

    out = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            continue
        description = str(data.get("description") or "").strip().splitlines()
        out.append((path.stem, description[0] if description else ""))
    return out


def _example_text(stem: str) -> str | None:
    """An example's YAML renamed `my-<stem>`, so saving it never collides with the example
    itself (comments and layout kept)."""
    import re

    names = {s for s, _ in examples()}
    if stem not in names:
        return None
    text = (EXAMPLES / f"{stem}.yaml").read_text(encoding="utf-8")
    return re.sub(r"^name:.*$", f"name: my-{stem}", text, count=1, flags=re.MULTILINE)


async def _newest(actor: Any, name: str) -> Any:
    """The version to open: the newest draft if there is one, else the newest published,
    else the newest archived one."""
    rows = [r for r in await actor.processes() if r.name == name]
    if not rows:
        raise NotFound(f"there is no process '{name}'")
    order = {"draft": 0, "published": 1, "archived": 2}
    return min(rows, key=lambda r: (order.get(r.status, 3), -r.version_major,
                                    -r.version_minor))


def _missing(name: str, version: str | None, reason: str) -> None:
    from nicegui import ui

    with ui.card().classes("p-8 max-w-xl mx-auto mt-8 gap-3").props(
            'data-testid="process-missing"'):
        ui.label("Process not found").classes("text-xl font-semibold")
        ui.label(f"'{name}'" + (f" version {version}" if version else "")
                 + " does not exist or is not shared with your team.")
        ui.label(reason).classes("text-sm text-slate-500")
        ui.button("Back to processes", icon="arrow_back",
                  on_click=lambda: ui.navigate.to("/processes")).props("flat")


def _error_text(e: Exception) -> str:
    issues = [i for i in getattr(e, "issues", None) or [] if i.is_error]
    if issues:
        return "Not saved:\n" + "\n".join(i.format() for i in issues[:8]) + (
            f"\n… and {len(issues) - 8} more" if len(issues) > 8 else "")
    return getattr(e, "reason", None) or str(e)


class ProcessPage:
    """The header (versions, status, lifecycle buttons) above the designer."""

    def __init__(self, actor: Any, c: Any, row: Any | None) -> None:
        self.actor, self.c, self.row = actor, c, row
        self.designer: Any = None

    async def render(self, text: str | None) -> None:
        from nicegui import ui

        from pages.components.status import status_chip
        from pages.designer.view import designer_view

        row = self.row
        versions = [r for r in await self.actor.processes() if row and r.name == row.name]
        published = [r for r in versions if r.status == "published"]
        can_edit = row is None or self.actor.can(Permission.PROCESS_UPDATE, row.owner)
        editable = row is None or (row.status == "draft" and can_edit)
        with ui.row().classes("w-full items-center gap-3").props(
                'data-testid="process-header"'):
            ui.label(row.name if row else "New process").classes("text-2xl font-semibold")
            if row is not None:
                status_chip(row.status)
                if len(versions) > 1:
                    ui.select({r.version: f"v{r.version} · {r.status}" for r in versions},
                              value=row.version, label="Version",
                              on_change=lambda e: ui.navigate.to(
                                  f"/processes/{row.name}?version={e.value}")).props(
                        'dense outlined data-testid="version-select"').classes("w-48")
                else:
                    ui.label(f"v{row.version}").classes("text-slate-500")
            ui.space()
            if row is not None:
                self._lifecycle_buttons(row, can_edit)
        if row is not None and row.status != "draft":
            with ui.row().classes("w-full items-center gap-2 text-sm text-slate-600").props(
                    'data-testid="readonly-note"'):
                ui.icon("lock")
                ui.label(f"Version {row.version} is {row.status} and cannot change; executions "
                         "keep running on it." + (" Edit a copy as a new version."
                                                  if can_edit and row.status == "published"
                                                  else ""))
        agents = [a.name for a in await self.actor.agents()]
        baseline = published[0].yaml_text if published and row is not None and \
            row.status == "draft" else None
        self.designer = await designer_view(
            yaml_text=text, name=None if text else "new-process", agents=agents,
            assignees=await self._assignees(), on_save=self.save if editable else None,
            on_publish=self.publish if editable and self.actor.can(
                Permission.PROCESS_PUBLISH, row.owner if row else None) else None,
            on_test_run=self.test_run if (editable or row.status == "published") and
            self.actor.can(Permission.EXECUTION_TRIGGER, row.owner if row else None) else None,
            read_only=not editable, baseline_text=baseline)

    def _lifecycle_buttons(self, row: Any, can_edit: bool) -> None:
        from nicegui import ui

        if row.status == "published":
            if can_edit:
                ui.button("Edit as new version", icon="edit_note",
                          on_click=self.new_version).props('data-testid="new-version"')
            if self.actor.can(Permission.PROCESS_DELETE, row.owner):
                ui.button("Archive", icon="archive", on_click=lambda: self._confirm(
                    f"Archive {row.name} v{row.version}? It can no longer be started; "
                    "running executions finish.", self.archive)).props(
                    'flat data-testid="archive"')
        if row.status == "draft" and self.actor.can(Permission.PROCESS_DELETE, row.owner):
            ui.button("Delete draft", icon="delete", on_click=lambda: self._confirm(
                f"Delete the draft v{row.version} of {row.name}?", self.delete_draft)).props(
                'flat color=negative data-testid="delete-draft"')

    async def _assignees(self) -> list[str]:
        try:
            users = await self.actor.g.identity.users()
        except Exception:  # the picker is a convenience; free text still works
            return []
        names = sorted(u.username for u, _, _ in users if u.active)
        teams = sorted({g.team for _, grants, _ in users for g in grants if g.team != "*"})
        return names + [f"team:{t}" for t in teams]

    def _confirm(self, text: str, action: Any) -> None:
        from nicegui import ui

        with ui.dialog() as dialog, ui.card().props('data-testid="confirm-dialog"'):
            ui.label(text)
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=dialog.close).props("flat")

                async def go() -> None:
                    dialog.close()
                    await action()
                ui.button("Confirm", on_click=go).props('data-testid="confirm-yes"')
        dialog.open()

    async def _refresh(self) -> None:
        """Act with the rights the person has now, not those they had when the page opened."""
        from pages.components.actor import current_actor

        self.actor = await current_actor(self.c, self.actor)

    async def _store(self, text: str, publish: bool) -> str | None:
        from nicegui import ui

        try:
            await self._refresh()
            imported = await self.actor.save_definition(text, publish=publish)
        except (Denied, ServiceError) as e:
            return _error_text(e)
        row = imported.row
        if publish and row.status != "published":
            return (f"v{row.version} of {row.name} is {row.status}; publish needs a draft "
                    "(change `version:` to store a new one)")
        moved = self.row is None or (row.name, row.version) != (self.row.name,
                                                               self.row.version)
        self.row = row
        if moved or publish:  # the page shows this version's header and lifecycle
            ui.navigate.to(f"/processes/{row.name}?version={row.version}")
        return None

    async def save(self, text: str) -> str | None:
        return await self._store(text, publish=False)

    async def publish(self, text: str) -> str | None:
        return await self._store(text, publish=True)

    async def test_run(self, text: str, values: dict[str, Any]) -> None:
        from nicegui import ui

        row = self.row
        if row is None or row.status == "draft":
            error = await self._store(text, publish=False) if row is None or \
                text != row.yaml_text else None
            if error:
                ui.notify(error, type="negative", multi_line=True)
                return
            row = self.row
        try:
            await self._refresh()
            x = await self.actor.start(row.name, values, version=row.version, row=row,
                                       triggered_by="test")
        except InvalidInput as e:
            ui.notify("Input not valid: " + "; ".join(map(str, e.errors)), type="negative",
                      multi_line=True)
            return
        except (Denied, ServiceError) as e:
            ui.notify(_error_text(e), type="negative", multi_line=True)
            return
        ui.navigate.to(f"/executions/{x.id}")

    async def new_version(self) -> None:
        from nicegui import ui

        try:
            await self._refresh()
            imported = await self.actor.new_version(self.row.name, self.row.version)
        except (Denied, ServiceError) as e:
            ui.notify(_error_text(e), type="negative")
            return
        ui.navigate.to(f"/processes/{imported.row.name}?version={imported.row.version}")

    async def archive(self) -> None:
        from nicegui import ui

        try:
            await self._refresh()
            await self.actor.set_status(self.row.name, self.row.version, "archived")
        except (Denied, ServiceError) as e:
            ui.notify(_error_text(e), type="negative")
            return
        ui.navigate.to(f"/processes/{self.row.name}?version={self.row.version}")

    async def delete_draft(self) -> None:
        from nicegui import ui

        try:
            await self._refresh()
            await self.actor.delete_draft(self.row.name, self.row.version)
        except (Denied, ServiceError) as e:
            ui.notify(_error_text(e), type="negative")
            return
        ui.navigate.to("/processes")
