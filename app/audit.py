"""The audit log (IT5 §5.4): append-only and hash-chained.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's own fields in a
canonical JSON form, so changing, removing or reordering any entry breaks every hash after
it; `verify()` (and `trinity audit verify`) finds the first break. There is deliberately no
update or delete path in this module or anywhere else (a test scans the code for one).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text

from app.db import Database
from app.tables import AuditRow

__all__ = ["GENESIS", "AuditLog", "Breach", "Context", "entry_hash", "to_csv"]

GENESIS = "0" * 64
RETENTION_DAYS = 2557  # seven years (IT5 §6.1)
_PG_LOCK = 7_244_911  # advisory lock key that serialises appends on PostgreSQL


@dataclass(frozen=True)
class Context:
    """Where a request came from (recorded with each entry)."""

    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class Breach:
    seq: int
    reason: str


def entry_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def _fields(row: AuditRow) -> dict[str, Any]:
    return {"seq": row.seq, "at": row.at.astimezone(UTC).isoformat(), "actor": row.actor,
            "action": row.action, "resource_type": row.resource_type,
            "resource_id": row.resource_id, "outcome": row.outcome,
            "details": row.details or {}, "ip": row.ip, "user_agent": row.user_agent,
            "classification": row.classification, "retention_days": row.retention_days}


class AuditLog:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    async def append(self, actor: str, action: str, resource_type: str, resource_id: str,
                     details: Mapping[str, Any] | None = None, *, outcome: str = "ok",
                     context: Context | None = None, classification: str = "internal",
                     retention_days: int = RETENTION_DAYS) -> AuditRow:
        ctx = context or Context()
        async with self.db.write() as s:
            if s.bind.dialect.name == "postgresql":
                await s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
            last = (await s.execute(select(AuditRow.seq, AuditRow.hash).order_by(
                AuditRow.seq.desc()).limit(1))).first()  # type: ignore[attr-defined]
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            row = AuditRow(seq=seq, at=self.clock().replace(microsecond=0), actor=actor[:200],
                           action=action[:60], resource_type=resource_type[:40],
                           resource_id=str(resource_id)[:200], outcome=outcome,
                           details=_jsonable(dict(details or {})),
                           ip=(ctx.ip or None) and ctx.ip[:64],
                           user_agent=(ctx.user_agent or None) and ctx.user_agent[:300],
                           classification=classification, retention_days=retention_days,
                           prev_hash=prev, hash="")
            row.hash = entry_hash(prev, _fields(row))
            s.add(row)
        return row

    async def query(self, *, actor: str | None = None, action: str | None = None,
                    resource: str | None = None, since: datetime | None = None,
                    until: datetime | None = None, limit: int = 200, before_seq: int | None = None
                    ) -> list[AuditRow]:
        """Newest first; `resource` matches the type or 'type:id'."""
        q = select(AuditRow).order_by(AuditRow.seq.desc())  # type: ignore[attr-defined]
        if actor:
            q = q.where(AuditRow.actor == actor)
        if action:
            q = q.where(AuditRow.action.startswith(action))  # type: ignore[attr-defined]
        if resource:
            kind, _, rid = resource.partition(":")
            q = q.where(AuditRow.resource_type == kind)
            if rid:
                q = q.where(AuditRow.resource_id == rid)
        if since is not None:
            q = q.where(AuditRow.at >= since)
        if until is not None:
            q = q.where(AuditRow.at <= until)
        if before_seq is not None:
            q = q.where(AuditRow.seq < before_seq)
        async with self.db.read() as s:
            return list((await s.execute(q.limit(limit))).scalars())

    async def verify(self, batch: int = 2000) -> tuple[int, Breach | None]:
        """Walk the whole chain; returns (entries checked, first breach or None)."""
        prev, expected_seq, checked = GENESIS, 1, 0
        while True:
            async with self.db.read() as s:
                rows = list((await s.execute(select(AuditRow).where(
                    AuditRow.seq >= expected_seq).order_by(
                    AuditRow.seq).limit(batch))).scalars())  # type: ignore[arg-type]
            if not rows:
                return checked, None
            for row in rows:
                if row.seq != expected_seq:
                    return checked, Breach(expected_seq, "entry missing (the chain has a gap)")
                if row.prev_hash != prev:
                    return checked, Breach(row.seq, "does not follow the previous entry")
                if entry_hash(prev, _fields(row)) != row.hash:
                    return checked, Breach(row.seq, "its content was changed after writing")
                prev, expected_seq, checked = row.hash, expected_seq + 1, checked + 1


def to_csv(rows: list[AuditRow]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["seq", "at", "actor", "action", "resource_type", "resource_id", "outcome",
                "details", "ip", "user_agent", "classification", "retention_days", "hash"])
    for r in rows:
        w.writerow([r.seq, r.at.isoformat(), r.actor, r.action, r.resource_type,
                    r.resource_id, r.outcome, json.dumps(r.details or {}, sort_keys=True),
                    r.ip or "", r.user_agent or "", r.classification, r.retention_days,
                    r.hash])
    return out.getvalue()


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
