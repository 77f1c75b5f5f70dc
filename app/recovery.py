"""Recovery on worker start-up and as a periodic sweep (IT5 §2.3).

The database is the truth; Redis only carries jobs. The sweep rebuilds what Redis lost:
due retries, timers and approval deadlines; steps queued without a job; attempts whose
worker died (expired lease); executions idle past the cut-off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from app.repositories import ExecutionRepository, WakeupRepository
from app.runtime import Runtime, command_jobs, job_id
from engine.definition import ProcessDefinition
from engine.execution import Command, ProcessExecution, RunStep, StartTimer
from engine.status import StepStatus

__all__ = ["Recovery", "RecoveryReport"]

log = logging.getLogger("trinity.recovery")
QUEUED_GRACE = timedelta(seconds=5)
WAITING = (StepStatus.WAITING_APPROVAL, StepStatus.WAITING_TIMER,
           StepStatus.WAITING_SUBPROCESS)


class Enqueuer(Protocol):
    async def enqueue(self, function: str, job_id: str, args: Any,
                      defer_until: datetime | None = None) -> bool: ...

    async def job_exists(self, job_id: str) -> bool: ...

    async def job_running(self, job_id: str) -> bool: ...


@dataclass
class RecoveryReport:
    started_at: str = ""
    dry_run: bool = False
    scanned: int = 0
    redispatched: list[str] = field(default_factory=list)
    lost_attempts: list[str] = field(default_factory=list)
    wakeups: list[str] = field(default_factory=list)
    failed_idle: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @property
    def changed(self) -> bool:
        return bool(self.redispatched or self.lost_attempts or self.wakeups or
                    self.failed_idle or self.errors)


class Recovery:
    def __init__(self, runtime: Runtime, queue: Enqueuer, idle_cutoff: timedelta) -> None:
        self.runtime = runtime
        self.queue = queue
        self.idle_cutoff = idle_cutoff

    async def sweep(self, full: bool = False, dry_run: bool = False) -> RecoveryReport:
        """Fire due wakeups and re-dispatch lost attempts; `full` also scans every active
        execution (start-up, and every few minutes)."""
        now = self.runtime.clock()
        report = RecoveryReport(started_at=now.isoformat(), dry_run=dry_run)
        await self._wakeups(now, report)
        await self._expired_leases(now, report)
        if full:
            await self._scan(now, report)
        if report.changed:
            log.info("recovery: %s", report.to_dict())
        return report

    async def _wakeups(self, now: datetime, report: RecoveryReport) -> None:
        async with self.runtime.db.read() as s:
            due = await WakeupRepository(s).due(now)
        for w in due:
            report.wakeups.append(f"{w.kind} {w.execution_id}/{w.step_id}")
            if report.dry_run:
                continue
            function, args = _wakeup_job(w.kind, w.execution_id, w.step_id, w.key)
            jid = job_id(w.kind, w.execution_id, w.step_id, w.key)
            if not await self.queue.enqueue(function, jid, args) and \
                    await self.queue.job_running(jid):
                # a worker that died holding this id keeps arq's in-progress mark for a day;
                # the job is idempotent, so run it under a fresh id
                await self.queue.enqueue(function, f"{jid}:recovered:{int(now.timestamp())}",
                                         args)
            async with self.runtime.db.write() as s:
                await WakeupRepository(s).mark_done(w.execution_id, w.step_id, w.kind)

    async def _expired_leases(self, now: datetime, report: RecoveryReport) -> None:
        async with self.runtime.db.read() as s:
            expired = await ExecutionRepository(s).expired_leases(now)
        for run in expired:
            report.lost_attempts.append(f"{run.execution_id}/{run.step_id}#{run.attempt}")
            if report.dry_run:
                continue
            step_id, attempt = run.step_id, run.attempt

            def decide(x: ProcessExecution, d: ProcessDefinition, at: datetime,
                       step_id: str = step_id, attempt: int = attempt) -> list[Command]:
                return x.requeue_lost_attempt(d, step_id, attempt, at)

            await self._guarded(report, run.execution_id, decide)

    async def _scan(self, now: datetime, report: RecoveryReport) -> None:
        async with self.runtime.db.read() as s:
            active = await ExecutionRepository(s).ids_with_status(["running", "pending"])
        report.scanned = len(active)
        for execution_id, _updated in active:
            try:
                _row, x = await self.runtime.load(execution_id)
            except LookupError:
                continue
            if self._idle(x, now):
                report.failed_idle.append(execution_id)
                if not report.dry_run:
                    await self._guarded(report, execution_id, _fail_idle(self.idle_cutoff))
                continue
            await self._redispatch(x, now, report)

    def _idle(self, x: ProcessExecution, now: datetime) -> bool:
        if x.updated_at is None or now - x.updated_at < self.idle_cutoff:
            return False
        return not any(st.status in WAITING for st in x.steps.values())

    async def _redispatch(self, x: ProcessExecution, now: datetime,
                          report: RecoveryReport) -> None:
        """Queued steps whose job is gone, overdue retries and timers: enqueue them again."""
        commands: list[Command] = []
        for sid, st in x.steps.items():
            if _needs_job(st, now):
                commands.append(RunStep(sid, st.attempt + 1))
            elif st.status is StepStatus.WAITING_TIMER and st.due_at and st.due_at <= now:
                commands.append(StartTimer(sid, st.due_at))
        for function, jid, args, _defer in command_jobs(x, commands):
            if await self.queue.job_exists(jid):
                if not await self.queue.job_running(jid):
                    continue  # waiting for a worker
                # A worker took the job and died before recording anything; arq keeps its
                # in-progress mark (and so the id) for a day. Run it under another id: if
                # that worker is alive after all, one of the two runs finds nothing to do.
                jid = f"{jid}:recovered:{int(now.timestamp())}"
            report.redispatched.append(jid)
            if not report.dry_run:
                await self.queue.enqueue(function, jid, args)
        if x.status.value == "pending" and not report.dry_run:
            await self._guarded(report, x.id, _start_pending)

    async def _guarded(self, report: RecoveryReport, execution_id: str, decide: Any) -> None:
        try:
            await self.runtime.transition(execution_id, decide)
        except Exception as e:  # one broken execution must not stop recovery of the rest
            log.exception("recovery of %s failed", execution_id)
            report.errors.append(f"{execution_id}: {e}")


def _needs_job(st: Any, now: datetime) -> bool:
    """Queued a while ago (no worker took it), or a retry that is due."""
    if st.status is StepStatus.QUEUED:
        return st.queued_at is None or now - st.queued_at > QUEUED_GRACE
    return bool(st.status is StepStatus.RETRYING and st.next_retry_at
                and st.next_retry_at <= now)


def _wakeup_job(kind: str, execution_id: str, step_id: str,
                key: str) -> tuple[str, tuple[Any, ...]]:
    if kind == "retry":
        return "run_step", (execution_id, step_id, int(key))
    if kind == "timer":
        return "fire_timer", (execution_id, step_id, int(key or 0))
    return "approval_deadline", (execution_id, step_id, int(key or 0))


def _fail_idle(cutoff: timedelta) -> Any:
    def decide(x: ProcessExecution, d: ProcessDefinition, now: datetime) -> list[Command]:
        hours = cutoff.total_seconds() / 3600
        return x.fail(d, "IDLE_TIMEOUT", f"no progress for {hours:g} h; failed by recovery", now)
    return decide


def _start_pending(x: ProcessExecution, d: ProcessDefinition, now: datetime) -> list[Command]:
    return x.start(d, now) if x.status.value == "pending" else []
