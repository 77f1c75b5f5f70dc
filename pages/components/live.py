"""Live updates on a page: subscribe to the web process's event hub (`app.live`) and run a
page's refresh once per burst of events, in the page's own client context. The
subscription ends when the browser tab goes away. No timer runs while nothing happens."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from app.live import ALL, hub_for

__all__ = ["ALL", "live_updates"]

log = logging.getLogger("trinity.pages.live")
DEBOUNCE = 0.05  # seconds: a step finishing publishes 2–4 events at once


def live_updates(c: Any, key: str, refresh: Callable[[list[dict[str, Any]]], Awaitable[None]],
                 accept: Callable[[dict[str, Any]], bool] | None = None,
                 debounce: float = DEBOUNCE) -> Any:
    """Call `refresh(messages)` after events of execution `key` (or `ALL`) that `accept`
    lets through. Returns the subscription (closed automatically with the client)."""
    from nicegui import context

    client = context.client
    pending: list[dict[str, Any]] = []
    state: dict[str, Any] = {"task": None}

    async def flush() -> None:
        # One refresh at a time: events that arrive while a refresh runs wait for it and
        # make the next one. (Two overlapping refreshes can finish out of order, and the
        # older reading of the database would then be the one left on the page.)
        try:
            while True:
                await asyncio.sleep(debounce)
                batch = pending[:]
                pending.clear()
                if not batch or client.is_deleted:
                    return
                try:
                    with client:
                        await refresh(batch)
                except Exception:  # a broken refresh must not kill the hub; the log shows it
                    log.exception("live refresh failed")
                if not pending:
                    return
        finally:
            state["task"] = None

    def on_event(message: dict[str, Any]) -> None:
        if accept is not None and message.get("event") != "resync" and not accept(message):
            return
        pending.append(message)
        if state["task"] is None:
            state["task"] = asyncio.get_running_loop().create_task(flush())

    sub = hub_for(c).subscribe(key, on_event)

    def stop() -> None:
        sub.close()
        task = state["task"]
        if task is not None:
            with contextlib.suppress(Exception):
                task.cancel()
    client.on_delete(stop)
    return sub
