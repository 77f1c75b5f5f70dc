"""Schedule triggers: registered on publish, removed on archive, once per slot with several
checkers, missed slots beyond the catch-up window skipped and recorded."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.schedules import ScheduleService

pytestmark = pytest.mark.integration

HOURLY = """
name: report
version: "{version}"
triggers:
  - id: every-hour
    type: schedule
    cron: "0 * * * *"
    timezone: Europe/Berlin
    input: {{topic: sales}}
input:
  topic: {{type: string, required: true}}
steps:
  - id: write
    type: agent_task
    agent: demo-writer
    message: "Report on {{{{input.topic}}}}"
"""


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(container: Any) -> Clock:
    clock = Clock(datetime(2026, 3, 2, 10, 20, tzinfo=UTC))
    container.runtime.clock = clock
    return clock


async def test_publishing_registers_the_schedule_and_each_slot_fires_once(
        container: Any, clock: Clock) -> None:
    await container.definitions.import_text(HOURLY.format(version="1"), publish=True)
    [schedule] = await container.schedules.list()
    assert schedule.next_fire_at == datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    clock.now = datetime(2026, 3, 2, 11, 0, 5, tzinfo=UTC)
    first = await container.schedules.fire_due()
    again = await container.schedules.fire_due()
    assert len(first.started) == 1 and again.started == []
    [execution] = await container.executions.list()
    assert execution.triggered_by == "schedule" and execution.input == {"topic": "sales"}
    [firing] = await container.schedules.firings("report")
    assert firing.status == "started" and firing.execution_id == execution.id


async def test_two_checkers_racing_for_a_slot_start_one_execution(
        container: Any, clock: Clock) -> None:
    await container.definitions.import_text(HOURLY.format(version="1"), publish=True)
    clock.now = datetime(2026, 3, 2, 11, 0, 1, tzinfo=UTC)
    other = ScheduleService(container.runtime, container.executions, timedelta(minutes=15))
    reports = await asyncio.gather(container.schedules.fire_due(), other.fire_due(),
                                   container.schedules.fire_due())
    assert sum(len(r.started) for r in reports) == 1
    assert len(await container.executions.list()) == 1


async def test_slots_missed_during_downtime_are_skipped_beyond_the_window(
        container: Any, clock: Clock) -> None:
    await container.definitions.import_text(HOURLY.format(version="1"), publish=True)
    clock.now = datetime(2026, 3, 2, 14, 10, tzinfo=UTC)  # down from 10:20 to 14:10
    report = await container.schedules.fire_due()
    assert [r.split("@")[1][11:16] for r in report.skipped] == ["11:00", "12:00", "13:00"]
    assert [r.split("@")[1][11:16] for r in report.started] == ["14:00"]  # 10 min late: ok
    clock.now = datetime(2026, 3, 2, 15, 5, tzinfo=UTC)
    later = await container.schedules.fire_due()
    assert len(later.started) == 1
    statuses = [f.status for f in await container.schedules.firings("report")]
    assert statuses == ["skipped", "skipped", "skipped", "started", "started"]
    skipped = (await container.schedules.firings("report"))[0]
    assert "older than the catch-up window" in skipped.message


async def test_archiving_removes_the_schedule_and_a_new_version_replaces_it(
        container: Any, clock: Clock) -> None:
    v1 = await container.definitions.import_text(HOURLY.format(version="1"), publish=True)
    v2 = await container.definitions.import_text(HOURLY.format(version="2"), publish=True)
    [schedule] = await container.schedules.list()
    assert schedule.definition_id == v2.row.id
    await container.definitions.set_status("report", "1", "archived")
    assert [s.definition_id for s in await container.schedules.list()] == [v2.row.id]
    await container.definitions.set_status("report", "2", "archived")
    assert await container.schedules.list() == []
    clock.now = datetime(2026, 3, 2, 12, 0, 5, tzinfo=UTC)
    assert (await container.schedules.fire_due()).started == []
    assert v1.row.id != v2.row.id
