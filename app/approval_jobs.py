"""What the worker does for approvals besides deciding: reminders, and the `notify` and
`escalate` timeout actions."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.repositories import WakeupRepository
from app.runtime import job_id
from app.tables import ApprovalRow
from engine.definition import ProcessDefinition
from engine.execution import ApprovalTimeoutAction, Command, ProcessExecution

__all__ = ["deadline_action", "send_reminders", "timeout_actions"]

log = logging.getLogger("trinity.approvals")


async def timeout_actions(c: Any, execution_id: str, commands: list[Command]) -> None:
    """Carry out notify/escalate actions returned by an approval deadline."""
    for command in commands:
        if not isinstance(command, ApprovalTimeoutAction):
            continue
        row = await _pending(c, execution_id, command.step_id)
        if row is None:
            continue
        if command.action == "notify":
            await _tell(c, row, "is overdue", await c.approvals.recipients(row))
            continue
        row, outcome = await c.approvals.escalate(row.id, c.runtime.clock())
        if outcome == "expired":  # escalated once already and still nobody decided
            await c.runtime.transition(execution_id, _reject_now(command.step_id))
        elif outcome == "escalated":
            await _escalate(c, row)


async def deadline_action(c: Any, execution_id: str, step_id: str) -> str | None:
    """What a delivered deadline means: "not due" when the deadline moved (an escalation)
    and this delivery is early, "reject" when an escalated request expired, else None
    (the step's own on_timeout)."""
    row = await _pending(c, execution_id, step_id)
    if row is None:
        return None
    if row.deadline and row.deadline > c.runtime.clock():
        return "not due"
    return "reject" if row.escalated else None


async def send_reminders(c: Any, now: datetime) -> int:
    """Remind the assignees of every request whose `reminder_every` has come round."""
    sent = 0
    for row in await c.approvals.due_reminders(now):
        await _tell(c, row, "is waiting for your decision", await c.approvals.recipients(row))
        await c.approvals.mark_reminded(row.id, now)
        sent += 1
    return sent


async def _escalate(c: Any, row: ApprovalRow) -> None:
    now = c.runtime.clock()
    async with c.db.write() as s:
        await WakeupRepository(s).add(row.execution_id, row.step_id, "approval_timeout",
                                      str(row.visit), row.deadline, now)
    await c.dispatcher.enqueue("approval_deadline",
                               job_id("deadline", row.execution_id, row.step_id, row.visit,
                                      "escalated"),
                               (row.execution_id, row.step_id, row.visit), row.deadline)
    await _tell(c, row, "was escalated to you", await c.approvals.recipients(row))


async def _tell(c: Any, row: ApprovalRow, what: str, recipients: list[str]) -> None:
    from app.approval_links import tell_deciders

    await tell_deciders(c, row, what, recipients)


async def _pending(c: Any, execution_id: str, step_id: str) -> ApprovalRow | None:
    async with c.db.read() as s:
        return (await s.execute(select(ApprovalRow).where(
            ApprovalRow.execution_id == execution_id, ApprovalRow.step_id == step_id,
            ApprovalRow.status == "pending"))).scalars().first()


def _reject_now(step_id: str) -> Any:
    def decide(x: ProcessExecution, d: ProcessDefinition, now: datetime) -> list[Command]:
        return x.approval_timed_out(d, step_id, now, action="reject")
    return decide
