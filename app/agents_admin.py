"""Registering agents (used by the CLI now, the API and the agents page later)."""

from __future__ import annotations

from typing import Any

from app.db import Database
from app.repositories import AgentRepository
from app.runtime import utcnow
from app.services import ServiceError
from app.tables import AgentRow

__all__ = ["upsert_agent"]

KINDS = ("demo", "http", "openai", "command")
REQUIRED = {"http": "url", "command": "command"}


async def upsert_agent(db: Database, name: str, kind: str, config: dict[str, Any],
                       capacity: int = 1, timeout: float | None = None,
                       description: str | None = None) -> AgentRow:
    """Create or update an agent; refuses settings the kind cannot work with."""
    if kind not in KINDS:
        raise ServiceError(f"agent kind must be one of {', '.join(KINDS)}, not '{kind}'")
    needed = REQUIRED.get(kind)
    if needed and not config.get(needed):
        raise ServiceError(f"a {kind} agent needs --{needed}")
    if capacity < 1:
        raise ServiceError("capacity must be at least 1")
    if "api_key" in config:
        raise ServiceError("do not store API keys in the registry; pass --api-key-env NAME "
                           "and set that environment variable for the workers")
    now = utcnow()
    async with db.write() as s:
        repo = AgentRepository(s)
        row = await repo.get(name)
        if row is None:
            row = AgentRow(name=name, kind=kind, created_at=now)
            repo.add(row)
        row.kind, row.config, row.capacity = kind, config, capacity
        row.timeout_seconds, row.updated_at = timeout, now
        if description is not None:
            row.description = description
        return row
