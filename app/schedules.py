"""Schedule triggers: registered when a version is published, removed when it is archived,
and fired exactly once per slot however many workers run the check (the slot's row is the
claim). Slots missed for longer than the catch-up window are skipped, and recorded so."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app.repositories import DefinitionRepository, parsed_definition
from app.tables import DefinitionRow, ScheduleRow, TriggerFiringRow
from engine.cron import parse_cron

__all__ = ["FiringReport", "ScheduleService"]

log = logging.getLogger("trinity.schedules")
CLAIM_GRACE = timedelta(minutes=1)


@dataclass
class FiringReport:
    started: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class ScheduleService:
    def __init__(self, runtime: Any, executions: Any, catch_up: timedelta) -> None:
        self.runtime = runtime
        self.db = runtime.db
        self.executions = executions
        self.catch_up = catch_up

    async def register(self, row: DefinitionRow) -> list[ScheduleRow]:
        """Make this published version's schedule triggers the process's schedules."""
        definition = parsed_definition(row)
        now = self.runtime.clock()
        out = []
        async with self.db.write() as s:
            await s.execute(delete(ScheduleRow).where(ScheduleRow.process_name == row.name))
            for t in definition.triggers:
                if t.type != "schedule" or not t.enabled or not t.cron:
                    continue
                schedule = ScheduleRow(
                    process_name=row.name, trigger_id=t.id, definition_id=row.id, cron=t.cron,
                    timezone=t.timezone, input=dict(t.input),
                    next_fire_at=parse_cron(t.cron).next_after(now, t.timezone),
                    checked_until=now, created_at=now)
                s.add(schedule)
                out.append(schedule)
        return out

    async def unregister(self, row: DefinitionRow) -> None:
        """An archived version no longer fires (a newer published one keeps its own)."""
        async with self.db.write() as s:
            await s.execute(delete(ScheduleRow).where(ScheduleRow.definition_id == row.id))

    async def list(self) -> list[ScheduleRow]:
        async with self.db.read() as s:
            return list((await s.execute(select(ScheduleRow).order_by(
                ScheduleRow.next_fire_at))).scalars())  # type: ignore[arg-type]

    async def fire_due(self) -> FiringReport:
        """Claim and start every due slot; skip (and record) slots older than catch-up."""
        now = self.runtime.clock()
        report = FiringReport()
        async with self.db.read() as s:
            due = list((await s.execute(select(ScheduleRow).where(
                ScheduleRow.next_fire_at <= now))).scalars())  # type: ignore[operator]
        for schedule in due:
            await self._fire(schedule, now, report)
        return report

    async def _fire(self, schedule: ScheduleRow, now: datetime, report: FiringReport) -> None:
        cron = parse_cron(schedule.cron)
        since = schedule.checked_until or (schedule.next_fire_at or now) - timedelta(seconds=1)
        for slot in cron.slots_between(since, now, schedule.timezone):
            name = f"{schedule.process_name}/{schedule.trigger_id}@{slot.isoformat()}"
            if now - slot > self.catch_up:
                if await self._claim(schedule, slot, now, "skipped",
                                     f"missed by {now - slot}; older than the catch-up window"):
                    report.skipped.append(name)
                continue
            if await self._claim(schedule, slot, now, "claimed"):
                await self._start(schedule, slot, name, report)
        async with self.db.write() as s:
            row = await s.get(ScheduleRow, (schedule.process_name, schedule.trigger_id))
            if row is not None and row.definition_id == schedule.definition_id:
                row.checked_until = now
                row.next_fire_at = cron.next_after(now, schedule.timezone)

    async def _claim(self, schedule: ScheduleRow, slot: datetime, now: datetime, status: str,
                     message: str | None = None) -> bool:
        """True for the one caller that recorded this slot first."""
        try:
            async with self.db.write() as s:
                s.add(TriggerFiringRow(process_name=schedule.process_name,
                                       trigger_id=schedule.trigger_id, slot=slot,
                                       status=status, message=message, at=now))
        except IntegrityError:
            return False
        return True

    async def _start(self, schedule: ScheduleRow, slot: datetime, name: str,
                     report: FiringReport) -> None:
        status, message, execution_id = "started", None, None
        try:
            async with self.db.read() as s:
                row = await DefinitionRepository(s).get(schedule.definition_id)
            assert row is not None
            x = await self.executions.start(row, dict(schedule.input or {}), "schedule",
                                            f"schedule:{schedule.trigger_id}")
            execution_id = x.id
            report.started.append(name)
        except Exception as e:  # a bad input must not stop the other schedules
            status, message = "failed", str(e)
            report.failed.append(f"{name}: {e}")
            log.warning("schedule %s did not start: %s", name, e)
        async with self.db.write() as s:
            firing = await s.get(TriggerFiringRow, (schedule.process_name, schedule.trigger_id,
                                                    slot))
            if firing is not None:
                firing.status, firing.message, firing.execution_id = status, message, \
                    execution_id

    async def firings(self, process_name: str) -> list[TriggerFiringRow]:
        async with self.db.read() as s:
            return list((await s.execute(select(TriggerFiringRow).where(
                TriggerFiringRow.process_name == process_name).order_by(
                TriggerFiringRow.slot))).scalars())  # type: ignore[arg-type]
