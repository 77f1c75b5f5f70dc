"""arq + Redis adapter: commands become deterministic jobs, events become pub/sub messages,
cancellations reach the worker that runs the step."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool

from app.runtime import cancellations, command_jobs, event_payload
from engine.events import Event
from engine.execution import Command, ProcessExecution

__all__ = ["CANCEL_CHANNEL", "EVENTS_CHANNEL", "ArqDispatcher", "redis_settings"]

EVENTS_CHANNEL = "trinity:events"
CANCEL_CHANNEL = "trinity:cancel"


def redis_settings(url: str) -> RedisSettings:
    """arq settings for redis://, rediss:// and unix:// URLs."""
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = 5
    settings.conn_retries = 10
    settings.conn_retry_delay = 1
    return settings


async def connect(url: str) -> ArqRedis:
    return await create_pool(redis_settings(url))


class ArqDispatcher:
    """Enqueues jobs on the shared queue and publishes events."""

    def __init__(self, redis: ArqRedis, queue_name: str) -> None:
        self.redis = redis
        self.queue_name = queue_name
        self._events = _Outbox(redis, EVENTS_CHANNEL)

    async def dispatch(self, x: ProcessExecution, commands: Sequence[Command]) -> None:
        for function, job_id, args, defer_until in command_jobs(x, commands):
            await self.enqueue(function, job_id, args, defer_until)
        for c in cancellations(commands):
            await self.redis.publish(CANCEL_CHANNEL, json.dumps(
                {"execution_id": x.id, "step_id": c.step_id, "attempt": c.attempt}))

    async def enqueue(self, function: str, job_id: str, args: Sequence[Any],
                      defer_until: datetime | None = None) -> bool:
        """Enqueue once; False when a job with this id is already queued or running."""
        job = await self.redis.enqueue_job(function, *args, _job_id=job_id,
                                           _queue_name=self.queue_name,
                                           _defer_until=defer_until)
        return job is not None

    async def job_exists(self, job_id: str) -> bool:
        """True while a job with this id is queued, deferred or running."""
        return bool(await self.redis.exists(f"arq:job:{job_id}", f"arq:in-progress:{job_id}"))

    async def job_running(self, job_id: str) -> bool:
        """True while a worker holds the job (or held it and died: arq keeps the mark for
        the longest job timeout)."""
        return bool(await self.redis.exists(f"arq:in-progress:{job_id}"))

    async def notify_parent(self, x: ProcessExecution) -> None:
        """A child execution ended: its parent's sub_process step can go on."""
        if x.parent_id and x.parent_step_id:
            await self.enqueue("child_finished",
                               f"child:{x.parent_id}:{x.parent_step_id}:{x.id}",
                               (x.parent_id, x.parent_step_id, x.id))

    async def publish(self, execution_id: str, events: Sequence[Event]) -> None:
        """Publish the events on `EVENTS_CHANNEL`; returns once Redis has them. Concurrent
        calls share one message: a JSON array of events in the order they were published
        (`app.live` reads both an array and a single event object)."""
        if events:
            await self._events.send([event_payload(execution_id, e) for e in events])


class _Outbox:
    """Event payloads for one pub/sub channel, sent as one message per round trip: callers
    that arrive while a message is in flight go together in the next one, in arrival order."""

    def __init__(self, redis: ArqRedis, channel: str) -> None:
        self.redis, self.channel = redis, channel
        self._payloads: list[dict[str, Any]] = []
        self._sent: asyncio.Future[None] | None = None  # resolved when _payloads are sent
        self._flusher: asyncio.Task[None] | None = None

    async def send(self, payloads: list[dict[str, Any]]) -> None:
        loop = asyncio.get_running_loop()
        self._payloads += payloads
        if self._sent is None:
            self._sent = loop.create_future()
            self._sent.add_done_callback(_retrieve)  # nobody may be left to await an error
        sent = self._sent
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        await asyncio.shield(sent)  # a cancelled caller must not cancel the others' send

    async def _flush(self) -> None:
        while self._payloads:
            payloads, self._payloads = self._payloads, []
            sent, self._sent = self._sent, None
            assert sent is not None
            try:
                await self.redis.publish(self.channel, json.dumps(payloads, default=str))
            except Exception as error:
                sent.set_exception(error)
            except BaseException:  # cancelled (the loop is closing): nobody waits in vain
                sent.cancel()
                if self._sent is not None:
                    self._sent.cancel()
                    self._sent, self._payloads = None, []
                raise
            else:
                sent.set_result(None)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
