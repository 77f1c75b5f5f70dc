"""Signed deep links to an approval request, for the emails that tell people a request is
waiting: `{base_url}/inbox?request=<id>&sig=<expiry>.<hmac>`.

The signature (HMAC-SHA256 with the server secret over the request id and the expiry) only
proves the link came from this server and has not expired; it grants nothing. The inbox
still requires sign-in and the gate still decides who may see and decide the request.

`notify_assignees(container)` is a runtime observer: when an `approval_requested` event is
committed it emails the people who may decide, with the link. Wire it once in bootstrap:
`runtime.observers.append(notify_assignees(container))`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import quote

__all__ = ["LINK_DAYS", "approval_link", "notify_assignees", "sign", "tell_deciders",
           "verify_link"]

log = logging.getLogger("trinity.approvals")
LINK_DAYS = 14


def sign(secret: str, approval_id: str, expires: int) -> str:
    mac = hmac.new(secret.encode(), f"approval:{approval_id}:{expires}".encode(),
                   hashlib.sha256).hexdigest()
    return f"{expires}.{mac}"


def approval_link(settings: Any, approval_id: str, days: float = LINK_DAYS,
                  now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + days * 86400)
    sig = sign(settings.resolved_secret(), approval_id, expires)
    base = str(settings.base_url).rstrip("/")
    return f"{base}/inbox?request={quote(approval_id)}&sig={sig}"


def verify_link(settings: Any, approval_id: str, sig: str, now: float | None = None) -> bool:
    """True when `sig` was made by this server for this request and has not expired."""
    expires_text, _, _mac = sig.partition(".")
    try:
        expires = int(expires_text)
    except ValueError:
        return False
    if expires < (now if now is not None else time.time()):
        return False
    try:
        expected = sign(settings.resolved_secret(), approval_id, expires)
    except Exception:  # no usable secret: no link verifies
        return False
    return hmac.compare_digest(expected, sig)


def notify_assignees(c: Any) -> Callable[[Any, Sequence[Any]], Awaitable[None]]:
    """A runtime observer emailing the deciders of each newly opened request (no-op
    without SMTP settings; a failed email never fails the transition)."""
    from sqlalchemy import select

    from app.tables import ApprovalRow

    async def observe(x: Any, events: Sequence[Any]) -> None:
        opened = [e for e in events if getattr(e, "name", "") == "approval_requested"]
        if not opened or not c.notifier.smtp.host:
            return
        for e in opened:
            async with c.db.read() as s:
                row = (await s.execute(select(ApprovalRow).where(
                    ApprovalRow.execution_id == x.id, ApprovalRow.step_id == e.step_id,
                    ApprovalRow.status == "pending"))).scalars().first()
            if row is not None:
                await tell_deciders(c, row, "is waiting for your decision",
                                    await c.approvals.recipients(row))
    return observe


async def tell_deciders(c: Any, row: Any, what: str, recipients: list[str]) -> None:
    """Email the people who may decide a request about it (opened, reminder, overdue,
    escalated), with a signed link to it; a mail that cannot be sent is logged, never
    raised."""
    from app.notify import NotifyError

    if not recipients:
        log.info("approval %s %s; nobody to email", row.id, what)
        return
    message = (f"The approval request '{row.title}' ({row.process_name}, step {row.step_id}) "
               f"{what}.\nDeadline: {row.deadline or 'none'}\n\n"
               f"Open it: {approval_link(c.settings, row.id)}\n(You will be asked to sign "
               f"in.)\n\nOr from the command line: trinity approvals decide {row.id} "
               "--decision approved|rejected|needs_changes --as YOU")
    try:
        await c.notifier.send("email", message, recipients=recipients,
                              subject=f"Approval {what}: {row.title}")
    except NotifyError as e:
        log.warning("approval %s: could not email %s: %s", row.id, recipients, e.message)
