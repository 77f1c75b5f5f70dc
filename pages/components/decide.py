"""Deciding an approval request, shared by the inbox and the live execution view: approve,
reject (with the reason the request may require), request changes (a comment; the process
loops back), edit the artifact with a diff shown before submitting, delegate to a person.
Every action goes through the gate (`actor.decide`, `actor.delegate`)."""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from app.security import Denied, Permission, Principal, Role
from app.services import ServiceError
from app.tables import ExecutionRow, RoleGrantRow, UserRow
from pages.components.actor import current_actor

__all__ = ["DecisionPanel", "artifact_text", "diff_lines"]


def artifact_text(artifacts: Any) -> str:
    return "\n\n".join(str(a) for a in artifacts or [])


def diff_lines(before: str, after: str) -> list[tuple[str, str]]:
    """(kind, line) with kind '+', '-' or ' ' — for showing an edit before it is sent."""
    out = []
    for line in difflib.ndiff(before.splitlines(), after.splitlines()):
        if line.startswith("? "):
            continue
        out.append((line[:1] if line[:1] in "+-" else " ", line[2:]))
    return out


class DecisionPanel:
    def __init__(self, actor: Any, c: Any, approval: Any,
                 on_done: Callable[[str], Awaitable[None]]) -> None:
        self.actor, self.c, self.a = actor, c, approval
        self.on_done = on_done
        self.options = approval.options or {}
        self.comment: Any = None
        self.editor: Any = None
        self.edit_box: Any = None

    def render(self) -> None:
        """The panel's fields and buttons; `set_approval` points them at another request
        without rebuilding them (a click during the switch is not lost)."""
        from nicegui import ui

        with ui.column().classes("w-full gap-2").props('data-testid="decision-panel"'):
            with ui.expansion("Edit the artifact before approving", icon="edit").classes(
                    "w-full").props('data-testid="edit-artifact"') as self.edit_box:
                self.editor = ui.textarea().classes("w-full font-mono").props(
                    'outlined autogrow data-testid="edit-text"')
            self.comment = ui.textarea("Comment").classes("w-full").props(
                'outlined autogrow data-testid="decision-comment"')
            with ui.row().classes("gap-2"):
                ui.button("Approve", icon="check", color="positive",
                          on_click=self.approve).props('data-testid="decide-approve"')
                ui.button("Reject", icon="close", color="negative",
                          on_click=self.reject).props('data-testid="decide-reject"')
                ui.button("Request changes", icon="undo", on_click=self.request_changes).props(
                    'outline data-testid="decide-changes"')
                ui.button("Delegate", icon="forward_to_inbox", on_click=self.delegate).props(
                    'flat data-testid="decide-delegate"')
        self._show()

    def set_approval(self, approval: Any) -> None:
        """Decide on `approval` from now on: its options, its artifact, an empty comment."""
        if approval.id == self.a.id:
            return
        self.a, self.options = approval, approval.options or {}
        self._show()

    def _show(self) -> None:
        opts = self.options
        self.edit_box.set_visibility(bool(opts.get("allow_edit")))
        self.edit_box.set_value(False)
        self.editor.set_value(artifact_text(self.a.artifacts))
        needs = " (required to reject)" if opts.get("require_reason_on_reject") else ""
        self.comment.props(f'label="Comment{needs}"')
        self.comment.set_value("")
        self.comment.set_visibility(bool(opts.get("allow_comments", True)))

    # --- actions -----------------------------------------------------------------------------

    def _comment(self) -> str:
        return (self.comment.value or "").strip() if self.comment.visible else ""

    async def approve(self) -> None:
        edited = None
        if self.options.get("allow_edit"):
            before = artifact_text(self.a.artifacts)
            if (self.editor.value or "") != before:
                await self._confirm_edit(before, self.editor.value or "")
                return
        await self._send("approved", edited)

    async def reject(self) -> None:
        from nicegui import ui

        if self.options.get("require_reason_on_reject") and not self._comment():
            ui.notify("Give a reason for the rejection in the comment.", type="warning")
            if self.comment.visible:
                self.comment.run_method("focus")
            return
        await self._send("rejected")

    async def request_changes(self) -> None:
        from nicegui import ui

        if not self._comment():
            ui.notify("Say what should change in the comment.", type="warning")
            if self.comment.visible:
                self.comment.run_method("focus")
            return
        await self._send("needs_changes")

    async def _confirm_edit(self, before: str, after: str) -> None:
        from nicegui import ui

        with ui.dialog() as dialog, ui.card().classes("w-[48rem] max-w-full").props(
                'data-testid="edit-diff"'):
            ui.label("Your changes to the artifact").classes("text-lg font-semibold")
            with ui.column().classes("diff-view w-full gap-0 max-h-96 overflow-auto"):
                for kind, line in diff_lines(before, after):
                    ui.label(f"{kind} {line}").classes(
                        {"+": "diff-add", "-": "diff-del"}.get(kind, ""))

            async def send() -> None:
                dialog.close()
                await self._send("approved", after)
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Back", on_click=dialog.close).props("flat")
                ui.button("Approve with these changes", icon="check", color="positive",
                          on_click=send).props('data-testid="edit-confirm"')
        dialog.open()

    async def _send(self, decision: str, edited: Any = None) -> None:
        from nicegui import ui

        try:  # the rights as they are now, not as when the page opened
            self.actor = await current_actor(self.c, self.actor)
            result = await self.actor.decide(self.a.id, decision, self._comment() or None,
                                             edited)
        except Denied as e:
            ui.notify(e.reason, type="negative")
            return
        except ServiceError as e:
            ui.notify(str(e), type="negative", multi_line=True)
            return
        words = {"approved": "Approved", "rejected": "Rejected",
                 "needs_changes": "Changes requested"}[decision]
        if decision == "approved" and not result.final:
            words = f"Approved ({result.approvals_so_far} of {self.a.required_approvals})"
        ui.notify(words, type="positive")
        self.comment.set_value("")  # it was sent with the decision
        await self.on_done(decision)

    async def _delegates(self) -> dict[str, str]:
        """Active people who could decide the request once it is handed to them (the
        service accepts anyone, but without approval:decide they could not act on it)."""
        async with self.c.db.read() as s:
            users = list((await s.execute(select(UserRow.username, UserRow.display_name).where(
                col(UserRow.active).is_(True)).order_by(UserRow.username))).all())
            team = (await s.execute(select(ExecutionRow.owner_team).where(
                col(ExecutionRow.id) == self.a.execution_id))).scalar()
            grants = list((await s.execute(select(RoleGrantRow))).scalars())
        held: dict[str, set[tuple[str, Role]]] = {}
        for g in grants:
            if g.role in Role.__members__.values():
                held.setdefault(g.username, set()).add((g.team, Role(g.role)))
        policy = self.actor.policy
        out = {}
        for username, display in users:
            if username == self.actor.p.username:
                continue
            p = Principal(username, frozenset(held.get(username, ())))
            if policy.has(p, Permission.APPROVAL_DECIDE, team) or policy.has(
                    p, Permission.APPROVAL_DECIDE):
                out[username] = f"{username} ({display})" if display else username
        return out

    async def delegate(self) -> None:
        from nicegui import ui

        options = await self._delegates()
        with ui.dialog() as dialog, ui.card().classes("w-96").props(
                'data-testid="delegate-dialog"'):
            ui.label("Delegate this request").classes("text-lg font-semibold")
            who = ui.select(options, label="To", with_input=True).classes("w-full").props(
                'outlined data-testid="delegate-to"')
            reason = ui.input("Reason").classes("w-full").props(
                'outlined data-testid="delegate-reason"')

            async def send() -> None:
                if not who.value or not (reason.value or "").strip():
                    ui.notify("Choose a person and give a reason.", type="warning")
                    return
                try:
                    self.actor = await current_actor(self.c, self.actor)
                    await self.actor.delegate(self.a.id, who.value, reason.value)
                except (Denied, ServiceError) as e:
                    ui.notify(getattr(e, "reason", None) or str(e), type="negative")
                    return
                dialog.close()
                ui.notify(f"Delegated to {who.value}", type="positive")
                await self.on_done("delegated")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button("Delegate", on_click=send).props('data-testid="delegate-send"')
        dialog.open()
