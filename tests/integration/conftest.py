"""Real components for integration tests: a private Redis (our launcher), SQLite files and
PostgreSQL databases, real arq worker processes. Nothing here is faked."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from app.redis_launcher import EmbeddedRedis, start_redis
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN = os.environ.get("TRINITY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_reachable() -> str | None:
    """None when PostgreSQL answers, else the reason it is skipped."""
    async def probe() -> None:
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN, timeout=3)
        await conn.close()
    try:
        asyncio.run(probe())
        return None
    except Exception as e:
        return f"PostgreSQL not reachable at {PG_ADMIN.split('@')[-1]}: {e}"


_PG_SKIP = _pg_reachable()


@pytest.fixture(scope="session")
def private_redis() -> Iterator[EmbeddedRedis]:
    """One private Redis for the session (a test may restart it through `redis_control`)."""
    server = start_redis(os.environ.get("TRINITY_TEST_REDIS_URL"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(private_redis: EmbeddedRedis) -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(private_redis.url)
    client.flushdb()
    client.close()
    yield private_redis.url


def _create_pg_database() -> str:
    name = f"trinity_test_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
    asyncio.run(create())
    return name


def _drop_pg_database(name: str) -> None:
    async def drop() -> None:
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
    asyncio.run(drop())


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using this runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'trinity.db'}"
        return
    if _PG_SKIP:
        pytest.skip(_PG_SKIP)
    name = _create_pg_database()
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    _drop_pg_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'trinity.db'}"


def make_settings(database_url: str, home: Path) -> Settings:
    return replace(Settings.from_env({"TRINITY_HOME": str(home)}), database_url=database_url,
                   lease_seconds=2.0, sweep_seconds=1, poll_delay=0.02,
                   queue_name=f"trinity:test:{uuid.uuid4().hex[:8]}")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "home")


@pytest.fixture
async def container(settings: Settings, redis_url: str) -> AsyncIterator[Any]:
    from app.bootstrap import bootstrap, seed_demo_agents

    c = await bootstrap(settings, redis_url)
    await seed_demo_agents(c.db)
    yield c
    await c.close()


@pytest.fixture
async def in_process_worker(settings: Settings, redis_url: str,
                            container: Any) -> AsyncIterator[Any]:
    """A real arq worker running in this event loop."""
    from worker.main import build_worker

    worker = build_worker(settings, redis_url, handle_signals=False, migrate=False)
    task = asyncio.create_task(worker.async_run())
    yield worker
    # close() gathers the job tasks it cancels: a job cut in its final Redis write ends in
    # CancelledError here, which is the worker stopping, not a failure of the test
    with contextlib.suppress(asyncio.CancelledError):
        await worker.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def worker_env(settings: Settings, redis_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTEST_CURRENT_TEST", None)
    env.update({"TRINITY_HOME": str(settings.home), "DATABASE_URL": settings.database_url,
                "REDIS_URL": redis_url, "TRINITY_LEASE_SECONDS": str(settings.lease_seconds),
                "TRINITY_SWEEP_SECONDS": str(settings.sweep_seconds),
                "TRINITY_POLL_DELAY": str(settings.poll_delay),
                "TRINITY_QUEUE": settings.queue_name, "PYTHONUNBUFFERED": "1"})
    if settings.webhook_url:
        env["TRINITY_WEBHOOK_URL"] = settings.webhook_url
    env.update(extra)
    return env


class WorkerProcess:
    """A real `trinity worker` process; its log is kept for the failure message."""

    def __init__(self, settings: Settings, redis_url: str, log: Path, **env: str) -> None:
        self.log_path = log
        self._log = log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], cwd=ROOT,
                                     env=worker_env(settings, redis_url, **env),
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, redis_url: str, queue: str, timeout: float = 30) -> None:
        import redis

        client = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"worker exited: {self.log()}")
                if client.exists(f"{queue}:health-check") and "worker ready" in self.log(None):
                    return
                time.sleep(0.05)
        finally:
            client.close()
        raise AssertionError(f"worker not ready in {timeout}s: {self.log()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def log(self, tail: int | None = 4000) -> str:
        """The log so far: its last `tail` characters (for messages), or all of it (a busy
        worker's first lines soon leave the tail)."""
        self._log.flush()
        text = self.log_path.read_text(errors="replace")
        return text if tail is None else text[-tail:]


@pytest.fixture
def worker_factory(settings: Settings, redis_url: str, tmp_path: Path
                   ) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(wait: bool = True, **env: str) -> WorkerProcess:
        w = WorkerProcess(settings, redis_url, tmp_path / f"worker{len(started)}.log", **env)
        started.append(w)
        if wait:
            w.wait_ready(redis_url, settings.queue_name)
        return w

    yield start
    for w in started:
        w.stop()


async def wait_for(predicate: Callable[[], Any], timeout: float = 30.0,
                   interval: float = 0.05, what: str = "condition") -> Any:
    """Poll an (async or sync) predicate until it returns something truthy, or fail."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


async def wait_terminal(c: Any, execution_id: str, timeout: float = 60.0) -> Any:
    async def done() -> Any:
        _row, x = await c.executions.get(execution_id)
        return x if x.status.is_terminal else None
    return await wait_for(done, timeout, what=f"execution {execution_id} to end")


@pytest.fixture
def hook_server() -> Iterator[Any]:
    from tests.support.http import Receiver

    server = Receiver()
    yield server
    server.close()
