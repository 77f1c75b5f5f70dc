"""Human approvals: durable requests, eligible deciders, N-of-M, delegation, edits, timeouts.

A request row is written in the same transaction that opens the approval step, and a final
decision is written in the same transaction that moves the execution on, so a crash can
never leave the two disagreeing.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.runtime import Runtime, new_id
from app.services import NotFound, ServiceError
from app.tables import ApprovalDecisionRow, ApprovalRow, DelegationRow, TeamMemberRow, UserRow
from engine.definition import Approval, Assignee, ProcessDefinition
from engine.events import ApprovalDecided, ApprovalTimedOut, Event
from engine.execution import Command, ProcessExecution, RequestApproval
from engine.status import StepStatus

__all__ = ["ApprovalService", "Decision", "approval_rows_hook"]

DECISIONS = ("approved", "rejected", "needs_changes")


@dataclass(frozen=True)
class Decision:
    """What a decide call did: whether it closed the request, and the request."""

    approval: ApprovalRow
    final: bool
    approvals_so_far: int


def approval_rows_hook(s: Session, x: ProcessExecution,
                       definition: ProcessDefinition, commands: Sequence[Command],
                       events: Sequence[Event], now: datetime) -> None:
    """Keep `approvals` in step with the execution (runs inside every transition)."""
    for c in commands:
        if isinstance(c, RequestApproval):
            _open(s, x, definition, c, now)
    touched = {getattr(e, "step_id", "") for e in events} - {""}
    for step_id in touched:
        step = definition.by_id.get(step_id)
        if step is not None and isinstance(step.spec, Approval) and \
                x.steps[step_id].status is not StepStatus.WAITING_APPROVAL:
            _close(s, x, step_id, events, now)
    if x.status.is_terminal and any(isinstance(step.spec, Approval)
                                    for step in definition.steps):
        s.execute(update(ApprovalRow).where(
            ApprovalRow.execution_id == x.id, ApprovalRow.status == "pending")
            .values(status="cancelled", decided_at=now))


def _open(s: Session, x: ProcessExecution, definition: ProcessDefinition,
          c: RequestApproval, now: datetime) -> None:
    st = x.steps[c.step_id]
    spec = definition.step(c.step_id).spec
    assert isinstance(spec, Approval) and st.approval is not None
    s.add(ApprovalRow(
        id=new_id(), execution_id=x.id, step_id=c.step_id, visit=st.visits,
        process_name=x.process_name, title=st.approval["title"],
        description=st.approval["description"], artifacts=st.approval["artifacts"],
        assignees=[_assignee_json(a) for a in spec.assignees],
        escalate_to=[_assignee_json(a) for a in spec.escalate_to],
        required_approvals=spec.required_approvals, status="pending", deadline=c.deadline,
        reminder_every_seconds=spec.reminder_every.total_seconds()
        if spec.reminder_every else None,
        requested_by=x.started_by, created_at=now,
        options={"allow_edit": spec.allow_edit, "allow_comments": spec.allow_comments,
                 "require_reason_on_reject": spec.require_reason_on_reject,
                 "forbid_self_approval": spec.forbid_self_approval,
                 "on_timeout": spec.on_timeout,
                 "timeout_seconds": (c.deadline - now).total_seconds() if c.deadline else None}))


def _close(s: Session, x: ProcessExecution, step_id: str, events: Sequence[Event],
           now: datetime) -> None:
    status = "cancelled"
    for e in events:
        if getattr(e, "step_id", None) != step_id:
            continue
        if isinstance(e, ApprovalDecided):
            status = e.decision
        elif isinstance(e, ApprovalTimedOut) and status == "cancelled":
            status = "timed_out"
    s.execute(update(ApprovalRow).where(
        ApprovalRow.execution_id == x.id, ApprovalRow.step_id == step_id,
        ApprovalRow.status == "pending").values(status=status, decided_at=now))


class ApprovalService:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.db = runtime.db

    # --- queries -------------------------------------------------------------------------

    async def list(self, user: str | None = None, status: str | None = "pending",
                   limit: int = 200) -> list[tuple[ApprovalRow, list[ApprovalDecisionRow]]]:
        """Requests (with their decisions); with `user`, only those the user may decide."""
        q = select(ApprovalRow).order_by(ApprovalRow.created_at)  # type: ignore[arg-type]
        if status:
            q = q.where(ApprovalRow.status == status)
        async with self.db.read() as s:
            rows = list((await s.execute(q.limit(limit))).scalars())
            out = []
            for row in rows:
                if user is not None and not await self._may_decide(s, row, user):
                    continue
                out.append((row, await _decisions(s, row.id)))
        return out

    async def get(self, approval_id: str) -> tuple[ApprovalRow, list[ApprovalDecisionRow]]:
        async with self.db.read() as s:
            row = await _find(s, approval_id)
            return row, await _decisions(s, row.id)

    # --- commands ------------------------------------------------------------------------

    async def decide(self, approval_id: str, decision: str, user: str,
                     comment: str | None = None, edited: Any = None) -> Decision:
        """Record `user`'s decision; the request closes when it is final (a rejection or a
        change request at once, approval when enough people approved)."""
        if decision not in DECISIONS:
            raise ServiceError(f"decision must be one of {', '.join(DECISIONS)}, "
                               f"not '{decision}'")
        async with self.db.read() as s:
            head = await _find(s, approval_id)
        result: list[Decision] = []
        history: list[dict[str, Any]] = []

        async def prepare(s: Any, x: ProcessExecution, now: datetime) -> None:
            result.clear()  # a transition may be tried again after a concurrent update
            history.clear()
            row = await _find(s, approval_id, lock=True)
            self._check_open(row)
            await self._check_decider(s, row, user, decision, comment, edited)
            diff = _diff(row.artifacts, edited) if edited is not None else None
            s.add(ApprovalDecisionRow(approval_id=row.id, decided_by=user, decision=decision,
                                      comment=comment, edited=edited, diff=diff, at=now,
                                      on_behalf_of=await _delegator(s, row, user)))
            await s.flush()
            decisions = await _decisions(s, row.id)
            approvers = {d.decided_by for d in decisions if d.decision == "approved"}
            final = decision != "approved" or len(approvers) >= row.required_approvals
            result.append(Decision(row, final, len(approvers)))
            history.extend({"decided_by": d.decided_by, "decision": d.decision,
                            "comment": d.comment, "on_behalf_of": d.on_behalf_of,
                            "at": d.at.isoformat() if d.at else None} for d in decisions)

        def decide(x: ProcessExecution, d: ProcessDefinition, now: datetime) -> list[Command]:
            if not result or not result[0].final:
                return []
            row = result[0].approval
            return x.decide_approval(d, row.step_id, decision, user, now, comment,
                                     decisions=history, edited=edited)

        await self.runtime.transition(head.execution_id, decide, prepare=prepare)
        row, _ = await self.get(approval_id)
        return Decision(row, result[0].final, result[0].approvals_so_far)

    async def delegate(self, approval_id: str, from_user: str, to_user: str,
                       reason: str) -> ApprovalRow:
        """Hand a request to someone else; only someone who may decide can delegate."""
        if not reason.strip():
            raise ServiceError("a delegation needs a reason")
        if from_user == to_user:
            raise ServiceError("you cannot delegate a request to yourself")
        async with self.db.write() as s:
            row = await _find(s, approval_id, lock=True)
            self._check_open(row)
            if not await self._may_decide(s, row, from_user):
                raise ServiceError(f"{from_user} is not an assignee of this request and cannot "
                                   "delegate it")
            s.add(DelegationRow(approval_id=row.id, from_user=from_user, to_user=to_user,
                                reason=reason.strip(), at=self.runtime.clock()))
            return row

    async def escalate(self, approval_id: str, now: datetime) -> tuple[ApprovalRow, str]:
        """The deadline passed and on_timeout is escalate. Decided under the row lock, so a
        deadline delivered twice escalates once: returns (row, "escalated" | "expired" — the
        escalated deadline passed too | "not due")."""
        async with self.db.write() as s:
            row = await _find(s, approval_id, lock=True)
            if row.deadline is not None and row.deadline > now:
                return row, "not due"
            if row.escalated:
                return row, "expired"
            length = timedelta(seconds=(row.options or {}).get("timeout_seconds") or 86400)
            row.escalated, row.deadline = True, now + length
            return row, "escalated"

    async def mark_reminded(self, approval_id: str, now: datetime) -> None:
        async with self.db.write() as s:
            await s.execute(update(ApprovalRow).where(ApprovalRow.id == approval_id)
                            .values(last_reminder_at=now))

    async def due_reminders(self, now: datetime) -> list[ApprovalRow]:
        async with self.db.read() as s:
            rows = (await s.execute(select(ApprovalRow).where(
                ApprovalRow.status == "pending",
                ApprovalRow.reminder_every_seconds.is_not(None)))).scalars()  # type: ignore
            return [r for r in rows if (r.last_reminder_at or r.created_at or now)
                    + timedelta(seconds=r.reminder_every_seconds or 0) <= now]

    async def recipients(self, row: ApprovalRow) -> list[str]:
        """Email addresses of the people who may decide (for reminders and escalations)."""
        async with self.db.read() as s:
            people = await _people(s, row)
            users = (await s.execute(select(UserRow).where(
                UserRow.username.in_(people)))).scalars()  # type: ignore[attr-defined]
            return sorted({u.email for u in users if u.email} |
                          {p for p in people if "@" in p})

    # --- rules ---------------------------------------------------------------------------

    def _check_open(self, row: ApprovalRow) -> None:
        if row.status != "pending":
            raise ServiceError(f"this request is already closed ({row.status}); nothing was "
                               "changed")

    async def _check_decider(self, s: Any, row: ApprovalRow, user: str, decision: str,
                             comment: str | None, edited: Any) -> None:
        options = row.options or {}
        if not await self._may_decide(s, row, user):
            raise ServiceError(f"{user} may not decide this request; it is assigned to "
                               f"{_describe(row.assignees)}")
        if options.get("forbid_self_approval") and row.requested_by == user:
            raise ServiceError(f"{user} started this execution and may not approve it "
                               "(forbid_self_approval)")
        earlier = [d for d in await _decisions(s, row.id) if d.decided_by == user]
        if earlier:
            raise ServiceError(f"{user} already decided this request ({earlier[0].decision})")
        if decision == "rejected" and options.get("require_reason_on_reject") and \
                not (comment or "").strip():
            raise ServiceError("a rejection of this request needs a reason (--comment)")
        if comment and not options.get("allow_comments", True):
            raise ServiceError("this request does not take comments")
        if edited is not None and not options.get("allow_edit"):
            raise ServiceError("this request does not allow editing the artifact")

    async def _may_decide(self, s: Any, row: ApprovalRow, user: str) -> bool:
        if not row.assignees and not row.escalated:
            return True  # unassigned: anyone allowed to approve (roles come with the web app)
        if user in await _people(s, row):
            return True
        email = (await s.execute(select(UserRow.email).where(
            UserRow.username == user))).scalar()
        return bool(email) and email in await _people(s, row)


async def _people(s: Any, row: ApprovalRow) -> set[str]:
    """Usernames and emails that may decide: assignees, team members, escalation targets,
    and people it was delegated to."""
    targets = list(row.assignees or []) + (list(row.escalate_to or []) if row.escalated else [])
    people: set[str] = set()
    for a in targets:
        if a.get("user"):
            people.add(a["user"])
        elif a.get("team"):
            q = select(TeamMemberRow.username).where(TeamMemberRow.team == a["team"])
            if a.get("role"):
                q = q.where(TeamMemberRow.role == a["role"])
            people.update((await s.execute(q)).scalars())
    delegated = (await s.execute(select(DelegationRow).where(
        DelegationRow.approval_id == row.id).order_by(DelegationRow.id))).scalars()  # type: ignore
    for d in delegated:
        if d.from_user in people:
            people.add(d.to_user)
    return people


async def _delegator(s: Any, row: ApprovalRow, user: str) -> str | None:
    found = (await s.execute(select(DelegationRow.from_user).where(
        DelegationRow.approval_id == row.id, DelegationRow.to_user == user))).scalar()
    return found


async def _find(s: Any, approval_id: str, lock: bool = False) -> ApprovalRow:
    q = select(ApprovalRow).where(ApprovalRow.id == approval_id)
    if lock:
        q = q.with_for_update()
    row = (await s.execute(q)).scalars().first()
    if row is None:
        raise NotFound(f"no approval request with id '{approval_id}'")
    return row


async def _decisions(s: Any, approval_id: str) -> list[ApprovalDecisionRow]:
    q = select(ApprovalDecisionRow).where(ApprovalDecisionRow.approval_id == approval_id)
    return list((await s.execute(q.order_by(ApprovalDecisionRow.id))).scalars())  # type: ignore


def _assignee_json(a: Assignee) -> dict[str, Any]:
    return {k: v for k, v in (("user", a.user), ("team", a.team), ("role", a.role)) if v}


def _describe(assignees: Any) -> str:
    parts = []
    for a in assignees or []:
        parts.append(a.get("user") or f"team:{a.get('team')}" +
                     (f" ({a['role']})" if a.get("role") else ""))
    return ", ".join(parts) or "anyone"


def _diff(artifacts: Any, edited: Any) -> str:
    before = "\n".join(map(str, artifacts or []))
    after = edited if isinstance(edited, str) else json.dumps(edited, indent=2)
    return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        "artifact", "edited"))
