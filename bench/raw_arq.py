"""The floor of this stack: plain arq jobs that each do one database commit.

A separate worker process (`python -m bench.raw_arq --redis-url … --database …`) runs these
jobs on its own queue of the same Redis, with the same poll delay and `max_jobs` as the
Trinity worker:

    hop          one commit, then enqueue the next hop (a chain: W1- and W3-shaped)
    fan_root     one commit, then enqueue `width` fan_branch jobs             (W2-shaped)
    fan_branch   one commit that also counts the finished branches; the last one
                 enqueues fan_join
    fan_join     one commit
    inline       `n` commits in a loop inside ONE job: no queue hop at all. This is the
                 floor of Trinity's inline chaining (a step that finishes starts the next
                 ready step of the same execution in the same job).

A commit is an INSERT into a tiny table inside `BEGIN IMMEDIATE … COMMIT` on an aiosqlite
connection in WAL mode with synchronous=NORMAL and busy_timeout, the settings of app/db.py
(or one asyncpg transaction when the database is PostgreSQL). Every row carries the wall
time it was written, so the driver measures exactly like it does for executions: from the
moment it enqueued the first job to the time stamp of the last commit.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["RawDriver", "is_postgres", "open_store", "raw_worker_command"]

TABLE = "bench_raw_hops"
_SQLITE_SCHEMA = (f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY, "
                  "run TEXT NOT NULL, kind TEXT NOT NULL, chain INTEGER NOT NULL, "
                  "i INTEGER NOT NULL, created REAL NOT NULL, at REAL NOT NULL)")
_PG_SCHEMA = (f"CREATE TABLE IF NOT EXISTS {TABLE} (id BIGSERIAL PRIMARY KEY, "
              "run TEXT NOT NULL, kind TEXT NOT NULL, chain INTEGER NOT NULL, "
              "i INTEGER NOT NULL, created DOUBLE PRECISION NOT NULL, "
              "at DOUBLE PRECISION NOT NULL)")


# --- where the commits go -------------------------------------------------------------------


class SqliteStore:
    """One aiosqlite connection; writers take turns like SQLite's single write lock."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn: Any = None
        self.lock = asyncio.Lock()

    async def open(self) -> None:
        import aiosqlite

        self.conn = await aiosqlite.connect(self.path, timeout=30, isolation_level=None)
        for pragma in ("journal_mode=WAL", "busy_timeout=30000", "synchronous=NORMAL"):
            await self.conn.execute(f"PRAGMA {pragma}")
        await self.conn.execute(_SQLITE_SCHEMA)
        await self.conn.execute(f"CREATE INDEX IF NOT EXISTS ix_{TABLE}_run ON {TABLE} "
                                "(run, kind)")

    async def record(self, run: str, kind: str, chain: int, i: int, created: float,
                     count_kind: str | None = None) -> int | None:
        """One transaction: insert a row (and count rows of `count_kind` of this run)."""
        async with self.lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                await self.conn.execute(
                    f"INSERT INTO {TABLE} (run, kind, chain, i, created, at) "
                    "VALUES (?, ?, ?, ?, ?, ?)", (run, kind, chain, i, created, time.time()))
                count = None
                if count_kind is not None:
                    cursor = await self.conn.execute(
                        f"SELECT count(*) FROM {TABLE} WHERE run = ? AND kind = ?",
                        (run, count_kind))
                    count = (await cursor.fetchone())[0]
                await self.conn.execute("COMMIT")
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
        return count

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


class PostgresStore:
    """One asyncpg connection, one transaction per record."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("postgresql+asyncpg://", "postgresql://")
        self.conn: Any = None
        self.lock = asyncio.Lock()

    async def open(self) -> None:
        import asyncpg

        self.conn = await asyncpg.connect(self.url)
        await self.conn.execute(_PG_SCHEMA)
        await self.conn.execute(f"CREATE INDEX IF NOT EXISTS ix_{TABLE}_run ON {TABLE} "
                                "(run, kind)")

    async def record(self, run: str, kind: str, chain: int, i: int, created: float,
                     count_kind: str | None = None) -> int | None:
        async with self.lock, self.conn.transaction():
            await self.conn.execute(
                f"INSERT INTO {TABLE} (run, kind, chain, i, created, at) "
                "VALUES ($1, $2, $3, $4, $5, $6)", run, kind, chain, i, created, time.time())
            if count_kind is None:
                return None
            return int(await self.conn.fetchval(
                f"SELECT count(*) FROM {TABLE} WHERE run = $1 AND kind = $2", run,
                count_kind))

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


def is_postgres(database: str) -> bool:
    return database.startswith(("postgresql://", "postgresql+asyncpg://", "postgres://"))


def open_store(database: str) -> SqliteStore | PostgresStore:
    """`database` is a SQLite file path or a postgresql:// URL."""
    if is_postgres(database):
        return PostgresStore(database.replace("postgres://", "postgresql://", 1))
    return SqliteStore(database)


# --- the jobs -------------------------------------------------------------------------------


async def hop(ctx: dict[str, Any], run: str, chain: int, i: int, n: int,
              created: float) -> None:
    await ctx["store"].record(run, "end" if i == n else "hop", chain, i, created)
    if i < n:
        await ctx["redis"].enqueue_job("hop", run, chain, i + 1, n, created,
                                       _job_id=f"raw:{run}:{chain}:{i + 1}")


async def fan_root(ctx: dict[str, Any], run: str, width: int, created: float) -> None:
    await ctx["store"].record(run, "root", 0, 0, created)
    for k in range(1, width + 1):  # one enqueue each, like the Trinity dispatcher
        await ctx["redis"].enqueue_job("fan_branch", run, k, width, created,
                                       _job_id=f"raw:{run}:branch:{k}")


async def fan_branch(ctx: dict[str, Any], run: str, k: int, width: int,
                     created: float) -> None:
    done = await ctx["store"].record(run, "branch", k, 1, created, count_kind="branch")
    if done == width:
        await ctx["redis"].enqueue_job("fan_join", run, created, _job_id=f"raw:{run}:join")


async def fan_join(ctx: dict[str, Any], run: str, created: float) -> None:
    await ctx["store"].record(run, "end", 0, 2, created)


async def inline(ctx: dict[str, Any], run: str, n: int, created: float) -> None:
    for i in range(1, n + 1):
        await ctx["store"].record(run, "end" if i == n else "hop", 0, i, created)


async def _startup(ctx: dict[str, Any]) -> None:
    store = open_store(ctx["database"])
    await store.open()
    ctx["store"] = store


async def _shutdown(ctx: dict[str, Any]) -> None:
    if "store" in ctx:
        await ctx["store"].close()


def build_raw_worker(redis_url: str, database: str, queue: str, poll_delay: float,
                     max_jobs: int) -> Any:
    from arq.worker import Worker

    from app.queue import redis_settings

    return Worker(functions=[hop, fan_root, fan_branch, fan_join, inline],  # type: ignore
                  redis_settings=redis_settings(redis_url), queue_name=queue,
                  on_startup=_startup, on_shutdown=_shutdown, ctx={"database": database},
                  poll_delay=poll_delay, max_jobs=max_jobs, keep_result=0,
                  health_check_interval=5, handle_signals=True)


def raw_worker_command(python: str, redis_url: str, database: str, queue: str,
                       poll_delay: float, max_jobs: int) -> list[str]:
    return [python, "-m", "bench.raw_arq", "--redis-url", redis_url, "--database", database,
            "--queue", queue, "--poll-delay", str(poll_delay), "--max-jobs", str(max_jobs)]


# --- the driver side ------------------------------------------------------------------------


class RawDriver:
    """Enqueues raw job graphs and reads their commit times back from the database."""

    def __init__(self, redis: Any, database: str, queue: str) -> None:
        self.redis = redis
        self.database = database
        self.queue = queue
        self._runs = 0
        self._pg: Any = None
        self._sqlite: sqlite3.Connection | None = None

    async def _query(self, sql: str, run: str) -> list[tuple[Any, ...]]:
        if is_postgres(self.database):
            if self._pg is None:
                import asyncpg

                self._pg = await asyncpg.connect(self.database.replace(
                    "postgresql+asyncpg://", "postgresql://").replace(
                    "postgres://", "postgresql://", 1))
            return [tuple(r) for r in await self._pg.fetch(sql.replace("?", "$1"), run)]
        if self._sqlite is None:  # one persistent connection: polling stays cheap
            self._sqlite = sqlite3.connect(self.database, timeout=30)
        try:
            return self._sqlite.execute(sql, (run,)).fetchall()
        except sqlite3.OperationalError:  # the worker has not created the table yet
            return []

    async def _rows(self, run: str) -> list[tuple[str, int, float, float]]:
        """(kind, chain, created, at) of every row of a run."""
        return await self._query(  # type: ignore[return-value]
            f"SELECT kind, chain, created, at FROM {TABLE} WHERE run = ?", run)

    async def _wait_ends(self, run: str, ends: int, timeout: float,
                         interval: float) -> list[tuple[str, int, float, float]]:
        deadline = time.monotonic() + timeout
        count = f"SELECT count(*) FROM {TABLE} WHERE run = ? AND kind = 'end'"
        while time.monotonic() < deadline:
            found = await self._query(count, run)
            if found and found[0][0] >= ends:
                return await self._rows(run)
            await asyncio.sleep(interval)
        raise TimeoutError(f"raw run {run}: not finished within {timeout:g}s")

    def _run_id(self, kind: str) -> str:
        self._runs += 1
        return f"{kind}-{self._runs}-{time.time_ns()}"

    async def _enqueue(self, function: str, *args: Any, job_id: str) -> None:
        await self.redis.enqueue_job(function, *args, _job_id=job_id, _queue_name=self.queue)

    async def chain(self, n: int, timeout: float = 300.0) -> dict[str, Any]:
        """A chain of `n` jobs, each enqueued by the previous one."""
        run = self._run_id("chain")
        t0 = time.time()
        await self._enqueue("hop", run, 0, 1, n, t0, job_id=f"raw:{run}:0:1")
        # the times come from the rows, so polling slowly only delays noticing the end
        rows = await self._wait_ends(run, 1, timeout, 0.05)
        total = max(r[3] for r in rows) - t0
        return {"total_s": total, "steps": n, "per_step_ms": total / n * 1000}

    async def inline(self, n: int, timeout: float = 300.0) -> dict[str, Any]:
        """`n` commits inside one job (no queue hop between them)."""
        run = self._run_id("inline")
        t0 = time.time()
        await self._enqueue("inline", run, n, t0, job_id=f"raw:{run}:inline")
        rows = await self._wait_ends(run, 1, timeout, 0.01)
        first = min(r[3] for r in rows)
        total = max(r[3] for r in rows) - t0
        return {"total_s": total, "steps": n, "per_step_ms": total / n * 1000,
                "per_commit_ms": (max(r[3] for r in rows) - first) / max(n - 1, 1) * 1000}

    async def many_inline(self, count: int, n: int, timeout: float = 300.0
                          ) -> dict[str, Any]:
        """`count` jobs of `n` commits each, all enqueued at once (W3 the way Trinity runs
        it: one job per execution, its steps chained inline)."""
        run = self._run_id("many-inline")
        t0 = time.time()
        for chain in range(count):
            await self._enqueue("inline", run, n, time.time(), job_id=f"raw:{run}:{chain}")
        rows = await self._wait_ends(run, count, timeout, 0.02)
        ends = [r for r in rows if r[0] == "end"]
        latencies = sorted(r[3] - r[2] for r in ends)
        first = min(r[2] for r in ends)
        last = max(r[3] for r in ends)
        return {"total_s": last - t0, "steps": count * n,
                "per_step_ms": (last - first) / (count * n) * 1000,
                "throughput": count / (last - first), "latencies_s": latencies}

    async def fan_out(self, width: int, timeout: float = 300.0) -> dict[str, Any]:
        """One job → `width` parallel jobs → one join job."""
        run = self._run_id("fan")
        t0 = time.time()
        await self._enqueue("fan_root", run, width, t0, job_id=f"raw:{run}:root")
        rows = await self._wait_ends(run, 1, timeout, 0.01)
        total = max(r[3] for r in rows) - t0
        steps = width + 2
        return {"total_s": total, "steps": steps, "per_step_ms": total / steps * 1000}

    async def many_chains(self, count: int, n: int, timeout: float = 300.0
                          ) -> dict[str, Any]:
        """`count` chains of `n` jobs, all first jobs enqueued at once."""
        run = self._run_id("many")
        t0 = time.time()
        for chain in range(count):
            await self._enqueue("hop", run, chain, 1, n, time.time(),
                                job_id=f"raw:{run}:{chain}:1")
        rows = await self._wait_ends(run, count, timeout, 0.02)
        ends = [r for r in rows if r[0] == "end"]
        latencies = sorted(r[3] - r[2] for r in ends)
        first = min(r[2] for r in ends)
        last = max(r[3] for r in ends)
        return {"total_s": last - t0, "steps": count * n,
                "per_step_ms": (last - first) / (count * n) * 1000,
                "throughput": count / (last - first), "latencies_s": latencies}

    async def close(self) -> None:
        if self._pg is not None:
            await self._pg.close()
        if self._sqlite is not None:
            self._sqlite.close()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="the raw arq worker of the benchmarks")
    p.add_argument("--redis-url", required=True)
    p.add_argument("--database", required=True, help="SQLite file or postgresql:// URL")
    p.add_argument("--queue", default="bench:raw")
    p.add_argument("--poll-delay", type=float, default=0.05)
    p.add_argument("--max-jobs", type=int, default=10)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    worker = build_raw_worker(args.redis_url, args.database, args.queue, args.poll_delay,
                              args.max_jobs)
    worker.run()


if __name__ == "__main__":
    main()
