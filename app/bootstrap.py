"""Composition root: everything with a connection or a pool is built here, never at import."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from arq.connections import ArqRedis

from app.agents.base import AgentConfig
from app.db import Database, migrate
from app.notify import Notifier, NotifyError, SmtpSettings, render
from app.queue import CANCEL_CHANNEL, ArqDispatcher, connect
from app.recovery import Recovery
from app.redis_launcher import EmbeddedRedis
from app.repositories import AgentRepository
from app.runtime import Runtime, utcnow
from app.services import DefinitionService, ExecutionService
from app.steps import StepFailure, StepRunner, Work
from app.tables import AgentRow
from engine.context import RenderedStep, build_context
from engine.definition import Notification, ProcessDefinition, Step, StepType, SubProcess
from engine.execution import ProcessExecution

__all__ = ["Container", "bootstrap", "seed_demo_agents"]

log = logging.getLogger("trinity")
AGENT_CACHE_SECONDS = 2.0


@dataclass
class Container:
    settings: Any
    db: Database
    redis: ArqRedis
    dispatcher: ArqDispatcher
    runtime: Runtime
    definitions: DefinitionService
    executions: ExecutionService
    agents: Any
    notifier: Notifier
    steps: StepRunner
    recovery: Recovery
    approvals: Any = None
    schedules: Any = None
    subscriptions: Any = None
    identity: Any = None  # app.identity.Identity
    audit: Any = None  # app.audit.AuditLog
    guard: Any = None  # app.guard.Guard: every user action goes through it
    embedded: EmbeddedRedis | None = None
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _agent_cache: dict[str, tuple[float, AgentConfig | None]] = field(default_factory=dict)
    _agent_reads: dict[str, asyncio.Future[AgentConfig | None]] = field(default_factory=dict)

    async def lookup_agent(self, name: str) -> AgentConfig | None:
        """The registered agent; cached for a couple of seconds (registry edits show up
        within AGENT_CACHE_SECONDS on every worker). When the entry expires, the steps that
        want it meanwhile share one read instead of each reading the row."""
        cached = self._agent_cache.get(name)
        if cached is not None and time.monotonic() - cached[0] < AGENT_CACHE_SECONDS:
            return cached[1]
        reading = self._agent_reads.get(name)
        if reading is None:
            reading = asyncio.ensure_future(self._read_agent(name))
            self._agent_reads[name] = reading
            reading.add_done_callback(lambda f: self._agent_read_done(name, f))
        return await asyncio.shield(reading)  # one cancelled caller leaves the read to others

    def _agent_read_done(self, name: str, reading: asyncio.Future[Any]) -> None:
        self._agent_reads.pop(name, None)
        if not reading.cancelled():
            reading.exception()  # retrieved: every caller may have been cancelled

    async def _read_agent(self, name: str) -> AgentConfig | None:
        now = time.monotonic()
        async with self.db.read() as s:
            row = await AgentRepository(s).get(name)
        agent = None
        if row is not None and row.enabled:
            agent = AgentConfig(row.name, row.kind, row.config or {}, row.capacity,
                                row.timeout_seconds)
        self._agent_cache[name] = (now, agent)
        return agent

    async def listen_for_cancellations(self) -> None:
        """Stop running attempts on this worker when their step is cancelled elsewhere."""
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(CANCEL_CHANNEL)
        try:
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                data = json.loads(message["data"])
                self.steps.cancel(data["execution_id"], data["step_id"], data["attempt"])
        finally:
            await pubsub.aclose()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.notifier.aclose()
        if self.subscriptions is not None:
            await self.subscriptions.aclose()
        if hasattr(self.agents, "aclose"):
            await self.agents.aclose()
        await self.redis.aclose()
        await self.db.dispose()


async def bootstrap(settings: Any, redis_url: str, run_migrations: bool = True,
                    worker_name: str | None = None) -> Container:
    """Connect to the database and Redis and wire the services together."""
    from app.agents.gateway import AgentGateway

    if run_migrations:
        await asyncio.to_thread(migrate, settings.database_url)
    db = Database(settings.database_url)
    redis = await connect(redis_url)
    dispatcher = ArqDispatcher(redis, settings.queue_name)
    runtime = Runtime(db, dispatcher, utcnow, settings.lease_seconds)
    definitions = DefinitionService(runtime)
    executions = ExecutionService(runtime, definitions)
    agents = AgentGateway(redis, block_size=settings.worker_max_jobs)
    notifier = Notifier(SmtpSettings.from_env(), settings.webhook_url)
    container = Container(settings, db, redis, dispatcher, runtime, definitions, executions,
                          agents, notifier, None,  # type: ignore[arg-type]
                          Recovery(runtime, dispatcher,
                                   timedelta(hours=settings.idle_cutoff_hours)))
    from app.approvals import ApprovalService, approval_rows_hook
    from app.schedules import ScheduleService

    runtime.hooks.append(approval_rows_hook)
    container.approvals = ApprovalService(runtime)
    container.schedules = ScheduleService(
        runtime, executions, timedelta(seconds=settings.schedule_catch_up_seconds))
    from app.subscriptions import SubscriptionService

    container.subscriptions = SubscriptionService(db, dispatcher)
    runtime.observers.append(container.subscriptions.fan_out)
    from app.approval_links import notify_assignees

    runtime.observers.append(notify_assignees(container))
    from app.audit import AuditLog
    from app.guard import Guard
    from app.identity import Identity

    container.identity = Identity(db, utcnow, settings.session_hours)
    container.audit = AuditLog(db, utcnow)
    container.guard = Guard(container, container.audit, container.identity,
                            trigger_rate_per_minute=settings.trigger_rate_per_minute)
    definitions.on_published.append(container.schedules.register)
    definitions.on_archived.append(container.schedules.unregister)
    container.steps = StepRunner(
        runtime, agents, container.lookup_agent,
        worker_name or f"{socket.gethostname()}:{os.getpid()}", settings.lease_seconds,
        performers={StepType.NOTIFICATION: _notification(notifier),
                    StepType.SUB_PROCESS: _sub_process(container)},
        max_parallel=settings.worker_max_jobs)
    return container


async def seed_demo_agents(db: Database) -> int:
    """Register the built-in demo agents that are missing; returns how many were added."""
    from app.agents.demo import DEMO_AGENTS

    added = 0
    now = utcnow()
    async with db.write() as s:
        repo = AgentRepository(s)
        for name, spec in DEMO_AGENTS.items():
            if await repo.get(name) is None:
                config = {k: v for k, v in spec.items()
                          if k not in ("capacity", "description", "timeout_seconds")}
                repo.add(AgentRow(name=name, kind="demo", config=config,
                                  capacity=int(spec.get("capacity", 1)),
                                  description=spec.get("description"), created_at=now,
                                  updated_at=now))
                added += 1
    return added


def _notification(notifier: Notifier) -> Any:
    async def perform(x: ProcessExecution, d: ProcessDefinition, step: Step,
                      rendered: RenderedStep, attempt: int) -> Work:
        spec = step.spec
        assert isinstance(spec, Notification)
        sent = []
        try:
            ctx = build_context(x, d)
            message, url = render(spec.message, ctx), render(spec.webhook_url, ctx) or None
            subject = render(spec.subject, ctx) or None
            recipients = [render(r, ctx) for r in spec.recipients]
            for channel in spec.channels:
                sent.append(await notifier.send(
                    channel, message, url, recipients, subject,
                    {"execution_id": x.id, "step_id": step.id, "process": d.name}))
        except NotifyError as e:
            raise StepFailure(e.code, e.message, e.retryable) from None
        return Work({"sent": sent, "response": f"sent via {', '.join(s['channel'] for s in sent)}"})
    return perform


def _sub_process(c: Container) -> Any:
    async def perform(x: ProcessExecution, d: ProcessDefinition, step: Step,
                      rendered: RenderedStep, attempt: int) -> Work:
        assert isinstance(step.spec, SubProcess)
        from app.services import ServiceError

        try:
            row = await c.definitions.find(step.spec.process_name, step.spec.version)
            child = await c.executions.start(row, dict(rendered.child_input or {}),
                                             "sub_process", x.started_by, x.id, step.id)
        except ServiceError as e:
            raise StepFailure("INVALID_CONFIG", f"cannot start sub-process: {e}",
                              False) from None
        return Work(None, child_id=child.id)
    return perform
