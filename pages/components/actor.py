"""The acting user as they are now. A page builds its actor when it opens; roles taken away
(or an account deactivated) while the page stays open must still stop its actions, so the
action buttons ask for the current principal before going through the gate."""

from __future__ import annotations

from typing import Any

from app.security import Denied

__all__ = ["current_actor"]


async def current_actor(c: Any, actor: Any) -> Any:
    """`actor` with the principal's present roles and teams; Denied when the account is no
    longer active. Actors that are not signed-in users (system, tokens) are kept as they are."""
    if actor.p.via != "session":
        return actor
    principal = await c.identity.principal(actor.p.username, actor.p.via)
    if principal is None:
        raise Denied("your account is no longer active; sign in again")
    if principal == actor.p:
        return actor
    return c.guard.actor(principal, actor.ctx)
