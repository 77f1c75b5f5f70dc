"""Live events for the web process: one Redis pub/sub listener, fanned out to the pages
that want them.

Workers publish every committed event on `trinity:events` (and per execution, see
`app.queue.ArqDispatcher.publish`). A web process opens exactly one subscription, on the
all-events channel, the first time a page subscribes; each message is handed to the
subscribers of its execution and to those of every execution (`ALL`). The listener blocks
on the socket, so an idle server does no work at all. When Redis goes away the listener
reconnects with a growing pause and tells every subscriber to reload (`{"event":
"resync"}`): messages published meanwhile are lost, the database is not.

Subscribers are plain callables (sync or async) taking the decoded message; a failing
subscriber is logged and never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from app.queue import EVENTS_CHANNEL

__all__ = ["ALL", "RESYNC", "LiveHub", "Subscription", "hub_for"]

log = logging.getLogger("trinity.live")

ALL = "*"
RESYNC = {"event": "resync"}
Callback = Callable[[dict[str, Any]], Awaitable[None] | None]


class Subscription:
    """Returned by `LiveHub.subscribe`; `close()` stops the delivery (idempotent)."""

    def __init__(self, hub: LiveHub, key: str, callback: Callback) -> None:
        self.hub, self.key, self.callback = hub, key, callback
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.hub._remove(self)


class LiveHub:
    """The per-process fan-out. `redis` is a `redis.asyncio.Redis` (the container's)."""

    def __init__(self, redis: Any, channel: str = EVENTS_CHANNEL,
                 tasks: list[asyncio.Task[Any]] | None = None) -> None:
        self.redis = redis
        self.channel = channel
        self._owner_tasks = tasks  # the container cancels these when it closes
        self._subs: dict[str, list[Subscription]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.delivered = 0  # messages handed to at least one subscriber (for tests, bench)

    def subscribe(self, key: str, callback: Callback) -> Subscription:
        """Deliver the events of execution `key` (or of all executions: `ALL`)."""
        sub = Subscription(self, key, callback)
        self._subs.setdefault(key, []).append(sub)
        self._ensure_listening()
        return sub

    @property
    def subscribers(self) -> int:
        return sum(len(v) for v in self._subs.values())

    async def wait_ready(self, timeout: float = 5.0) -> None:
        """Until the Redis subscription is active (a message published before is missed)."""
        self._ensure_listening()
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def close(self) -> None:
        task, self._task = self._task, None
        self._subs.clear()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def deliver(self, message: dict[str, Any]) -> int:
        """Hand one decoded message to its subscribers; returns how many got it."""
        targets = list(self._subs.get(str(message.get("execution_id") or ""), ()))
        targets += self._subs.get(ALL, ())
        for sub in targets:
            if sub.closed:
                continue
            try:
                result = sub.callback(message)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("a live subscriber failed on %s", message.get("event"))
        if targets:
            self.delivered += 1
        return len(targets)

    # --- plumbing --------------------------------------------------------------------------

    def _remove(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.key)
        if subs and sub in subs:
            subs.remove(sub)
            if not subs:
                del self._subs[sub.key]

    def _ensure_listening(self) -> None:
        if self._task is None or self._task.done():
            self._ready.clear()
            self._task = asyncio.get_running_loop().create_task(self._listen(),
                                                                name="trinity-live")
            if self._owner_tasks is not None:
                self._owner_tasks[:] = [t for t in self._owner_tasks if not t.done()]
                self._owner_tasks.append(self._task)

    async def _listen(self) -> None:
        pause = 0.5
        first = True
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self._ready.set()
                if not first:  # reconnected: whatever came meanwhile is lost
                    await self.deliver_all(RESYNC)
                first, pause = False, 0.5
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        for event in _decode(message.get("data")):
                            await self.deliver(event)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # Redis restarted or unreachable: try again
                self._ready.clear()
                log.warning("live events: lost Redis (%s); reconnecting in %.1f s", e, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 10.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def deliver_all(self, message: dict[str, Any]) -> None:
        for sub in [s for subs in self._subs.values() for s in subs]:
            with contextlib.suppress(Exception):
                result = sub.callback(message)
                if inspect.isawaitable(result):
                    await result


def hub_for(container: Any) -> LiveHub:
    """The web process's one hub for this container (made on first use)."""
    hub = getattr(container, "_live_hub", None)
    if hub is None:
        hub = LiveHub(container.redis, tasks=getattr(container, "_tasks", None))
        container._live_hub = hub
    return hub  # type: ignore[no-any-return]


def _decode(data: Any) -> list[dict[str, Any]]:
    """A message holds one event object or an array of them (the worker sends the events
    of concurrent transitions together)."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    try:
        value = json.loads(data)
    except (TypeError, ValueError):
        return [{"event": "unreadable"}]
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v if isinstance(v, dict) else {"event": "unreadable"} for v in value]
    return [{"event": "unreadable"}]
