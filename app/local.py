"""Running Trinity on one machine: where the private Redis lives, whether a worker is up,
and an in-process worker for commands like `trinity start --wait` on a fresh machine."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.bootstrap import Container, bootstrap, seed_demo_agents
from app.redis_launcher import EmbeddedRedis, start_redis
from app.settings import Settings

__all__ = ["LocalSession", "open_local", "redis_url_file", "worker_alive"]


def redis_url_file(settings: Settings) -> Path:
    return settings.home / "run" / "redis.url"


def known_redis_url(settings: Settings) -> str | None:
    """REDIS_URL, else the private Redis of a running `trinity up` (when its socket exists)."""
    if settings.redis_url:
        return settings.redis_url
    path = redis_url_file(settings)
    if path.exists():
        url = path.read_text().strip()
        if url.startswith("unix://") and Path(url[len("unix://"):]).exists():
            return url
    return None


async def worker_alive(c: Container) -> bool:
    """A worker process is running on this queue (arq's health-check key is fresh)."""
    return bool(await c.redis.exists(f"{c.settings.queue_name}:health-check"))


@dataclass
class LocalSession:
    container: Container
    embedded: EmbeddedRedis | None
    in_process_worker: Any = None

    @property
    def has_private_redis(self) -> bool:
        return self.embedded is not None and self.embedded.process is not None

    async def ensure_worker(self) -> bool:
        """Start a worker inside this process unless one is already running; True if started."""
        if self.in_process_worker is not None or await worker_alive(self.container):
            return False
        from worker.main import build_worker

        c = self.container
        worker = build_worker(c.settings, self.redis_url, handle_signals=False, migrate=False)
        task = asyncio.create_task(worker.async_run())
        self.in_process_worker = (worker, task)
        return True

    @property
    def redis_url(self) -> str:
        return self.embedded.url if self.embedded else ""

    async def close(self) -> None:
        if self.in_process_worker is not None:
            worker, task = self.in_process_worker
            await worker.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.container.close()
        if self.embedded is not None:
            self.embedded.stop()


@contextlib.asynccontextmanager
async def open_local(settings: Settings | None = None) -> AsyncIterator[LocalSession]:
    """Connect to the configured (or running) Redis, or start a private one for this command."""
    settings = settings or Settings.from_env()
    url = known_redis_url(settings)
    embedded = await asyncio.to_thread(start_redis, url)
    try:
        c = await bootstrap(settings, embedded.url)
    except BaseException:
        embedded.stop()
        raise
    await seed_demo_agents(c.db)
    session = LocalSession(c, embedded)
    try:
        yield session
    finally:
        await session.close()


def child_env(redis_url: str, base_url: str | None = None) -> dict[str, str]:
    """The environment of a process `trinity up` starts: the shared Redis, and the web
    address (so notifications can reach this installation's own endpoints)."""
    env = dict(os.environ)
    env["REDIS_URL"] = redis_url
    if base_url:
        env.setdefault("TRINITY_BASE_URL", base_url)
    env.pop("PYTEST_CURRENT_TEST", None)
    return env
