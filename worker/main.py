"""The arq worker: thin jobs (ids in, transitions out), the sweep, recovery on start-up."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import signal
from datetime import datetime
from typing import Any

from arq import Retry, cron
from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker, func
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.approval_jobs import deadline_action, send_reminders, timeout_actions
from app.bootstrap import Container, bootstrap, seed_demo_agents
from app.queue import redis_settings
from app.repositories import WakeupRepository
from app.runtime import job_id
from engine.definition import ProcessDefinition
from engine.execution import Command, ProcessExecution

__all__ = ["build_worker", "run_worker"]

log = logging.getLogger("trinity.worker")
GC_THRESHOLD = 20_000
FULL_SCAN_EVERY = 30  # sweeps
REDIS_RETRY_SECONDS = 0.5
DELIVERY_TRIES = 6


async def run_step(ctx: dict[str, Any], execution_id: str, step_id: str, attempt: int) -> None:
    await _c(ctx).steps.run(execution_id, step_id, attempt)


async def fire_timer(ctx: dict[str, Any], execution_id: str, step_id: str, visit: int) -> None:
    c = _c(ctx)

    def decide(x: ProcessExecution, d: ProcessDefinition, now: datetime) -> list[Command]:
        if x.steps[step_id].visits != visit or x.steps[step_id].due_at is None:
            return []
        due = x.steps[step_id].due_at
        if due is not None and due > now:  # fired early (clock skew): come back at due time
            return []
        return x.fire_timer(d, step_id, now)

    outcome = await c.runtime.transition(execution_id, decide)
    st = outcome.execution.steps[step_id]
    if st.status.value == "waiting_timer" and st.due_at is not None:
        await c.dispatcher.enqueue("fire_timer", job_id("timer", execution_id, step_id, visit,
                                                       "late"), (execution_id, step_id, visit),
                                   st.due_at)
    else:
        async with c.db.write() as s:
            await WakeupRepository(s).mark_done(execution_id, step_id, "timer")


async def approval_deadline(ctx: dict[str, Any], execution_id: str, step_id: str,
                            visit: int) -> None:
    c = _c(ctx)
    action = await deadline_action(c, execution_id, step_id)
    if action == "not due":
        return

    def decide(x: ProcessExecution, d: ProcessDefinition, now: datetime) -> list[Command]:
        if x.steps[step_id].visits != visit:
            return []
        return x.approval_timed_out(d, step_id, now, action=action)

    outcome = await c.runtime.transition(execution_id, decide)
    await timeout_actions(c, execution_id, outcome.commands)


async def child_finished(ctx: dict[str, Any], parent_id: str, parent_step_id: str,
                         child_id: str) -> None:
    c = _c(ctx)
    _row, child = await c.runtime.load(child_id)
    error = (child.error or {}).get("message", "")

    def decide(x: ProcessExecution, d: ProcessDefinition, now: datetime) -> list[Command]:
        return x.sub_process_finished(d, parent_step_id, child_id, child.status.value,
                                      child.outputs, now, child.cost, child.tokens, error)

    await c.runtime.transition(parent_id, decide)


async def compensate(ctx: dict[str, Any], execution_id: str) -> None:
    from app.compensation import run_compensations

    await run_compensations(_c(ctx), execution_id)


async def sweep(ctx: dict[str, Any]) -> None:
    # arq hands every job a fresh copy of ctx: the count lives in a shared counter object
    c = _c(ctx)
    await c.recovery.sweep(full=next(ctx["sweeps"]) % FULL_SCAN_EVERY == 0)
    await send_reminders(c, c.runtime.clock())


async def fire_schedules(ctx: dict[str, Any]) -> None:
    report = await _c(ctx).schedules.fire_due()
    if report.started or report.skipped or report.failed:
        log.info("schedules: %s", vars(report))


async def deliver_event(ctx: dict[str, Any], subscription_id: str,
                        payload: dict[str, Any]) -> None:
    attempt = ctx.get("job_try", 1)
    try:
        await _c(ctx).subscriptions.deliver(subscription_id, payload, attempt)
    except Exception as e:  # any failure: try again later, up to DELIVERY_TRIES times
        if attempt >= DELIVERY_TRIES:
            log.warning("event %s to subscription %s given up after %d tries: %s",
                        payload.get("event"), subscription_id, attempt, e)
            return
        raise Retry(defer=min(2 ** attempt, 300)) from e


async def startup(ctx: dict[str, Any]) -> None:
    settings, redis_url = ctx["trinity_settings"], ctx["trinity_redis_url"]
    c = await bootstrap(settings, redis_url, run_migrations=ctx.get("migrate", True))
    ctx["c"] = c
    await seed_demo_agents(c.db)
    c._tasks.append(asyncio.create_task(c.listen_for_cancellations()))
    report = await c.recovery.sweep(full=True)
    log.info("worker ready; recovery: %s", report.to_dict())
    await c.redis.set("trinity:recovery:last", __import__("json").dumps(report.to_dict()))
    # what start-up loaded (modules, definitions, the app) lives as long as the process: keep
    # it out of the cyclic collector, and collect less often (a busy worker allocates many
    # short-lived objects per step; the young generation's default of 700 meant a collection
    # every few steps)
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)


async def shutdown(ctx: dict[str, Any]) -> None:
    c = ctx.get("c")
    if c is not None:
        await c.close()


def _c(ctx: dict[str, Any]) -> Container:
    return ctx["c"]  # type: ignore[no-any-return]


# KEYS: the queue, then each job's in-progress key; ARGV: now (ms), in-progress timeout (ms),
# then each job id. Marks each job in progress that can start here now (not in progress
# elsewhere, still queued, not deferred into the future) and returns, per job, its score or
# nil (Lua false) when it cannot.
_CLAIM = """
local now = tonumber(ARGV[1])
local claimed = {}
for i = 2, #KEYS do
  local score = false
  if redis.call('exists', KEYS[i]) == 0 then
    local queued = redis.call('zscore', KEYS[1], ARGV[i + 1])
    if queued and tonumber(queued) <= now then
      redis.call('psetex', KEYS[i], ARGV[2], '1')
      score = queued
    end
  end
  claimed[i - 1] = score
end
return claimed
"""


class _Worker(Worker):
    """arq's poll loop ends the worker process on the first Redis error, so a restarted or
    failed-over Redis would stop every worker for good. Poll on instead: the database holds
    the truth and the sweep re-dispatches whatever Redis lost."""

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisConnectionError, RedisTimeoutError) as e:
            log.warning("Redis is unavailable (%s); polling again in %gs", e,
                        REDIS_RETRY_SECONDS)
            await asyncio.sleep(REDIS_RETRY_SECONDS)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Claim and start as many of these queued jobs as there is room for, as arq does
        (skip a job another worker holds, one no longer queued and one deferred into the
        future), but with one atomic script per batch instead of arq's WATCH, EXISTS, ZSCORE
        and MULTI round trips per job: at hundreds of jobs a second those were a tenth of a
        worker's time. Room left by skipped jobs goes to the next ids of the poll."""
        rest = [raw.decode() for raw in job_ids]
        while rest and self.job_counter < self.max_jobs:
            room = self.max_jobs - self.job_counter
            ids, rest = rest[:room], rest[room:]
            for _ in ids:  # never waits: the semaphore has max_jobs + 1 permits, one per job
                await self.sem.acquire()
            self.job_counter += len(ids)
            try:
                scores = await self.pool.eval(
                    _CLAIM, len(ids) + 1, self.queue_name,
                    *(in_progress_key_prefix + i for i in ids),
                    timestamp_ms(), int(self.in_progress_timeout_s * 1000), *ids)
            except BaseException:
                for _ in ids:
                    self._release_sem_dec_counter_on_complete()
                raise
            for claimed, score in zip(ids, scores, strict=True):
                if score is None:  # started elsewhere, finished, or deferred again
                    self._release_sem_dec_counter_on_complete()
                    continue
                task = self.loop.create_task(self.run_job(claimed, int(float(score))))
                task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
                self.tasks[claimed] = task

    async def close(self) -> None:
        """arq's close() cancels the running jobs and then gathers them without
        return_exceptions, so a job still running at shutdown makes it raise CancelledError
        before `on_shutdown`: the container (pools, the cancellation listener) leaks and an
        in-process worker's caller never reaches its own clean-up. Gather them here first."""
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.tasks.clear()
        await super().close()


def build_worker(settings: Any, redis_url: str, burst: bool = False,
                 handle_signals: bool = True, migrate: bool = True) -> Worker:
    """An arq Worker for our jobs, built at call time (nothing at import)."""
    step_timeout = 24 * 3600  # steps enforce their own timeouts; leases handle crashes
    return _Worker(
        functions=[func(run_step, timeout=step_timeout, max_tries=1000),  # type: ignore
                   func(fire_timer, timeout=60), func(approval_deadline, timeout=60),  # type: ignore
                   func(child_finished, timeout=60), func(compensate, timeout=3600),  # type: ignore
                   func(deliver_event, timeout=60, max_tries=DELIVERY_TRIES + 1)],  # type: ignore
        cron_jobs=[cron(sweep, second=set(range(0, 60, max(settings.sweep_seconds, 1))),  # type: ignore
                        run_at_startup=False, timeout=60, unique=True),
                   cron(fire_schedules,  # type: ignore
                        second=set(range(0, 60, max(settings.sweep_seconds, 1))),
                        run_at_startup=True, timeout=120, unique=True)],
        redis_settings=redis_settings(redis_url),
        queue_name=settings.queue_name,
        on_startup=startup, on_shutdown=shutdown,
        ctx={"trinity_settings": settings, "trinity_redis_url": redis_url,
             "migrate": migrate, "sweeps": itertools.count(1)},
        poll_delay=settings.poll_delay,
        max_jobs=settings.worker_max_jobs,
        keep_result=0,
        allow_abort_jobs=False,  # cancellation has its own channel (CANCEL_CHANNEL)
        health_check_interval=5,
        handle_signals=handle_signals,
        burst=burst,
        job_completion_wait=5,
    )


def run_worker(settings: Any, redis_url: str) -> None:
    """Run a worker until SIGINT/SIGTERM."""
    # a worker process logs what it does ("worker ready", recovery reports, arq's job lines);
    # without a handler nothing below WARNING would ever be shown
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    build_worker(settings, redis_url).run()
