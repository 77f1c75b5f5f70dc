"""What-if changes for measuring, applied by monkeypatching inside a benchmark process.

They are not fixes and nothing in app/ changes: they show how much time a change of that
kind would save, so a performance issue can be reported with a number attached.
`python -m bench.run --experiment NAME` applies them in the client and in the worker
(which then runs through `python -m bench.worker_variant`); `python -m bench.profile
--experiment NAME` applies them in its in-process worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

__all__ = ["EXPERIMENTS", "apply_experiments"]

EXPERIMENTS = {
    "write-lock": "one asyncio.Lock per Database around write() on SQLite, so a worker's "
                  "concurrent transactions queue in-process instead of sleeping in SQLite's "
                  "busy handler",
    "no-slots": "skip the Redis capacity slot (Lua acquire + MULTI release) around agent "
                "calls, to measure what it costs",
    "no-publish": "skip publishing events to Redis pub/sub after each commit, to measure "
                  "what it costs",
    "approval-hook-approvals-only": "app.approvals.approval_rows_hook sees only the events "
                                    "of human_approval steps, so it stops sending an UPDATE "
                                    "approvals for every other step a transition touches",
}


def apply_experiments(names: Sequence[str]) -> None:
    """What-if changes, applied by monkeypatching in this process only (app/ is unchanged);
    they measure how much a change would save, they are not fixes."""
    from app.agents.capacity import RedisSlots
    from app.db import Database
    from app.queue import ArqDispatcher

    if "write-lock" in names:
        original = Database.write

        @contextlib.asynccontextmanager
        async def locked_write(self: Any) -> AsyncIterator[Any]:
            if not self.is_sqlite:
                async with original(self) as session:
                    yield session
                return
            lock = self.__dict__.setdefault("_bench_write_lock", asyncio.Lock())
            async with lock, original(self) as session:
                yield session
        Database.write = locked_write  # type: ignore[method-assign]
    if "no-slots" in names:
        @contextlib.asynccontextmanager
        async def no_hold(self: Any, agent: str, capacity: int, token: str
                          ) -> AsyncIterator[None]:
            yield
        RedisSlots.hold = no_hold  # type: ignore[method-assign,assignment]
    if "approval-hook-approvals-only" in names:
        _approval_hook_approvals_only()
    if "no-publish" in names:
        async def no_publish(self: Any, execution_id: str, events: Any) -> None:
            return None
        ArqDispatcher.publish = no_publish  # type: ignore[method-assign]


def _approval_hook_approvals_only() -> None:
    import app.approvals
    from engine.definition import StepType

    original = app.approvals.approval_rows_hook

    def hook(s: Any, x: Any, definition: Any, commands: Any, events: Any, now: Any) -> None:
        def relevant(e: Any) -> bool:
            step_id = getattr(e, "step_id", None)
            if not step_id:
                return True
            try:
                return bool(definition.step(step_id).type is StepType.HUMAN_APPROVAL)
            except (KeyError, LookupError):
                return True
        original(s, x, definition, commands, [e for e in events if relevant(e)], now)
    # bootstrap() imports the hook by name when it wires the runtime, so this must run first
    app.approvals.approval_rows_hook = hook  # type: ignore[assignment]
