"""Where a step's time goes: an in-process variant of the benchmark with timers.

    python -m bench.profile [--workload W1] [--runs 2] [--cprofile FILE] [--max-jobs 64]

Runs the Trinity worker (worker.main.build_worker) inside this process, on a private Redis
and a fresh SQLite file, wraps the interesting calls with wall-clock timers (monkeypatched
here, nothing in app/ is changed), runs one workload and prints, per step, how many calls
and how much wall time went to each layer. Only calls made on behalf of jobs are counted
(a context variable is set while `StepRunner.run` runs), so the client's own start() and
polling do not pollute the numbers. The client polls the SQLite file with the standard
library `sqlite3` module, not through the app.

Wall times are inclusive and nest (a transaction contains its statements), and with
concurrent jobs (W2, W3) they add up across tasks, so there they read as "task-seconds
spent inside X", which is what shows lock waits and queueing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import cProfile
import functools
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from app.settings import Settings
from bench.experiments import EXPERIMENTS, apply_experiments
from bench.workloads import WORKLOADS

IN_JOB: contextvars.ContextVar[bool] = contextvars.ContextVar("bench_in_job", default=False)


class Timers:
    def __init__(self) -> None:
        self.calls: dict[str, int] = defaultdict(int)
        self.wall: dict[str, float] = defaultdict(float)

    def add(self, name: str, seconds: float) -> None:
        self.calls[name] += 1
        self.wall[name] += seconds

    def reset(self) -> None:
        self.calls.clear()
        self.wall.clear()


T = Timers()


def _wrap_async(owner: Any, attr: str, name: str, mark_job: bool = False) -> None:
    original = getattr(owner, attr)

    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = IN_JOB.set(True) if mark_job else None
        counted = IN_JOB.get()
        began = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            if counted:
                T.add(name, time.perf_counter() - began)
            if token is not None:
                IN_JOB.reset(token)
    setattr(owner, attr, wrapper)


def _wrap_sync(owner: Any, attr: str, name: str) -> None:
    original = getattr(owner, attr)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        counted = IN_JOB.get()
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            if counted:
                T.add(name, time.perf_counter() - began)
    setattr(owner, attr, wrapper)


def _wrap_context(owner: Any, attr: str, name: str) -> None:
    original = getattr(owner, attr)

    @contextlib.asynccontextmanager
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        counted = IN_JOB.get()
        began = time.perf_counter()
        try:
            async with original(*args, **kwargs) as value:
                yield value
        finally:
            if counted:
                T.add(name, time.perf_counter() - began)
    setattr(owner, attr, wrapper)


def instrument() -> None:
    import aiosqlite.core
    import redis.asyncio.client

    from app.agents.capacity import RedisSlots
    from app.agents.demo import DemoClient
    from app.agents.gateway import AgentGateway
    from app.db import Database
    from app.queue import ArqDispatcher
    from app.repositories import ExecutionRepository, ExecutionStore
    from app.runtime import Runtime
    from app.steps import StepRunner
    from engine.execution import ProcessExecution

    _wrap_async(StepRunner, "run", "job: StepRunner.run (whole job)", mark_job=True)
    _wrap_async(StepRunner, "_perform", "step: _perform (agent call under wait_for)")
    _wrap_async(Runtime, "transition", "transition (txn + after_commit)")
    _wrap_async(Runtime, "_transition_once", "  transaction (_transition_once)")
    _wrap_context(Database, "write", "    db.write() session+commit")
    _wrap_async(Database, "transact", "    db.transact() thread hop+session+commit")
    _wrap_sync(ExecutionStore, "lock_head", "      lock_head (BEGIN IMMEDIATE+SELECT)")
    _wrap_sync(ExecutionStore, "save", "      repo.save (UPDATE+events+step_runs)")
    _wrap_sync(ExecutionStore, "current", "      repo.rebuild (cache miss)")
    _wrap_async(ExecutionRepository, "rebuild", "      repo.rebuild (reads)")
    _wrap_sync(ProcessExecution, "complete_step", "      decide: complete_step")
    _wrap_sync(ProcessExecution, "begin_attempt", "      decide: begin_attempt")
    _wrap_sync(ProcessExecution, "rendered", "      decide: rendered")
    _wrap_sync(ProcessExecution, "to_dict", "      snapshot to_dict")
    import app.approvals

    _wrap_sync(app.approvals, "approval_rows_hook", "      approvals hook (every transition)")
    _wrap_sync(app.approvals, "_close", "        approvals _close: UPDATE approvals")
    _wrap_async(Runtime, "after_commit", "  after_commit (enqueue + publish)")
    _wrap_async(ArqDispatcher, "enqueue", "    arq enqueue_job")
    _wrap_async(ArqDispatcher, "publish", "    publish events (pipeline)")
    _wrap_async(AgentGateway, "call", "agent: gateway.call")
    _wrap_async(RedisSlots, "acquire", "  capacity slot acquire (Lua)")
    _wrap_async(RedisSlots, "release", "  capacity slot release (MULTI)")
    _wrap_async(DemoClient, "call", "  demo agent itself")
    _wrap_async(aiosqlite.core.Connection, "_execute", "aiosqlite thread round trips")
    _wrap_async(redis.asyncio.client.Redis, "execute_command", "redis commands (non-pipeline)")
    _wrap_async(redis.asyncio.client.Pipeline, "execute", "redis pipelines")


def _begin_wait_listeners(db: Any) -> None:
    """Time SQLite's BEGIN IMMEDIATE itself (the write-lock wait) on the worker's engine."""
    from sqlalchemy import event

    started: dict[int, float] = {}

    def before(conn: Any) -> None:
        started[id(conn)] = time.perf_counter()

    def after(conn: Any) -> None:
        began = started.pop(id(conn), None)
        if began is not None and IN_JOB.get():
            T.add("      BEGIN IMMEDIATE (lock wait)", time.perf_counter() - began)

    # the write sessions' engine and the writer thread's engine (`Database.transact`)
    for engine in (db.engine.sync_engine, db._sync_engine):
        if engine is None:
            continue
        existing = list(engine.dispatch.begin)  # app/db.py's listener: BEGIN IMMEDIATE
        for fn in existing:
            event.remove(engine, "begin", fn)
        event.listen(engine, "begin", before)
        for fn in existing:
            event.listen(engine, "begin", fn)
        event.listen(engine, "begin", after)


_READERS: dict[str, sqlite3.Connection] = {}


def _finished(db_path: str, ids: list[str]) -> float | None:
    """The last finished_at (epoch seconds) once every execution finished, else None."""
    from datetime import UTC, datetime

    marks = ",".join("?" * len(ids))
    conn = _READERS.get(db_path)
    if conn is None:
        conn = _READERS[db_path] = sqlite3.connect(db_path, timeout=30)
    rows = conn.execute(f"SELECT status, finished_at FROM executions WHERE id IN "
                        f"({marks})", ids).fetchall()
    if len(rows) != len(ids) or not all(r[1] for r in rows):
        return None
    bad = [r for r in rows if r[0] != "completed"]
    if bad:
        raise RuntimeError(f"{len(bad)} executions ended {bad[0][0]}")
    last = max(datetime.fromisoformat(r[1]) for r in rows)
    return (last if last.tzinfo else last.replace(tzinfo=UTC)).timestamp()


async def _async_wait(db_path: str, ids: list[str], timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while (last := _finished(db_path, ids)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError("executions did not finish")
        await asyncio.sleep(0.005)
    return last


async def profile(args: argparse.Namespace) -> None:
    from app.bootstrap import bootstrap, seed_demo_agents
    from app.redis_launcher import start_redis
    from worker.main import build_worker

    apply_experiments(args.experiment)
    instrument()
    w = WORKLOADS[args.workload]
    tmp = Path(tempfile.mkdtemp(prefix="trinity-profile-"))
    server = start_redis()
    db_path = str(tmp / "trinity.db")
    settings = replace(Settings.from_env({"TRINITY_HOME": str(tmp / "home")}),
                       database_url=f"sqlite+aiosqlite:///{db_path}",
                       poll_delay=args.poll_delay, worker_max_jobs=args.max_jobs,
                       queue_name=f"trinity:profile:{uuid.uuid4().hex[:8]}")
    c = await bootstrap(settings, server.url)
    worker = None
    task = None
    try:
        await seed_demo_agents(c.db)
        row = (await c.definitions.import_text(w.yaml, publish=True)).row
        worker = build_worker(settings, server.url, handle_signals=False, migrate=False)
        task = asyncio.create_task(worker.async_run())
        while "c" not in worker.ctx:
            await asyncio.sleep(0.02)
        _begin_wait_listeners(worker.ctx["c"].db)

        async def one_run() -> tuple[float, float]:
            t0 = time.time()
            ids = [str((await c.executions.start(row, {}, "bench")).id)
                   for _ in range(w.executions)]
            last = await _async_wait(db_path, ids, 300)
            return t0, last

        await one_run()  # warm-up
        await asyncio.sleep(0.5)
        T.reset()
        total = 0.0
        async with _cprofiled(args.cprofile, worker.ctx["c"].db) as profiler:
            for _ in range(args.runs):
                t0, last = await one_run()
                total += last - t0
                await asyncio.sleep(0.3)
        areas = _areas(profiler) if profiler else None
        steps = w.steps * w.executions * args.runs
        print(f"{w.key} {w.title}: {args.runs} run(s), in-process worker, max_jobs "
              f"{args.max_jobs}, poll {args.poll_delay:g}s, experiments: "
              f"{', '.join(args.experiment) or 'none'}; wall {total / args.runs * 1000:.0f}"
              f" ms per run = {total / steps * 1000:.2f} ms per step (instrumented)")
        print(f"{'what':<48} {'calls/step':>10} {'ms/step':>9} {'ms/call':>9}")
        for name in sorted(T.wall, key=_order):
            n, s = T.calls[name], T.wall[name]
            print(f"{name:<48} {n / steps:>10.2f} {s / steps * 1000:>9.3f} "
                  f"{s / n * 1000:>9.3f}")
        if areas:
            print(f"\ncProfile of the event-loop thread by area (own time; cProfile roughly "
                  f"doubles it; the aiosqlite threads are not in it), written to "
                  f"{args.cprofile}:")
            for area, seconds in sorted(areas.items(), key=lambda kv: -kv[1]):
                print(f"  {seconds / steps * 1000:8.3f} ms/step  {area}")
    finally:
        if worker is not None:
            await worker.close()
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await c.close()
        server.stop()
        for conn in _READERS.values():
            conn.close()
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.asynccontextmanager
async def _cprofiled(path: str | None, db: Any) -> AsyncIterator[cProfile.Profile | None]:
    """cProfile the event-loop thread into `path` and, on SQLite, the database's writer
    thread into `path.writer` (cProfile sees only the thread it was enabled in)."""
    if not path:
        yield None
        return
    loop = asyncio.get_running_loop()
    thread = getattr(db, "_thread", None)
    main, writer = cProfile.Profile(), cProfile.Profile()
    main.enable()
    if thread is not None:
        await loop.run_in_executor(thread, writer.enable)
    try:
        yield main
    finally:
        main.disable()
        main.dump_stats(path)
        if thread is not None:
            await loop.run_in_executor(thread, writer.disable)
            writer.dump_stats(f"{path}.writer")
            print(f"cProfile of the SQLite writer thread written to {path}.writer")


_AREAS = (("epoll", "(idle: waiting in epoll)"), ("site-packages/sqlalchemy", "sqlalchemy"),
          ("site-packages/aiosqlite", "aiosqlite"), ("SimpleQueue", "aiosqlite"),
          ("site-packages/redis", "redis-py"), ("site-packages/arq", "arq"),
          ("greenlet", "greenlet"), ("asyncio", "asyncio event loop"),
          ("selectors", "asyncio event loop"), ("_contextvars", "asyncio event loop"),
          ("/engine/", "engine/ (domain)"), ("/app/", "app/"), ("/bench/", "bench client"),
          ("sqlite3", "bench client"), ("socket", "socket send/recv"), ("json", "json"))


def _areas(profiler: cProfile.Profile) -> dict[str, float]:
    import pstats

    out: dict[str, float] = defaultdict(float)
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (file, _line, fn), (_cc, _nc, own, _cum, _callers) in stats.items():
        where = f"{file} {fn}"
        area = next((label for key, label in _AREAS if key in where), "other")
        out[area] += own
    return dict(out)


_ORDER = ["job:", "step:", "agent:", "  capacity slot acquire", "  capacity slot release",
          "  demo", "transition", "  transaction", "    db.write", "    db.transact",
          "      BEGIN", "      lock_head", "      decide: complete", "      decide: begin",
          "      decide: rendered", "      repo.save", "      approvals hook",
          "        approvals _close", "      snapshot", "      repo.rebuild",
          "  after_commit", "    arq", "    publish", "aiosqlite", "redis commands",
          "redis pipelines"]


def _order(name: str) -> int:
    return next((i for i, p in enumerate(_ORDER) if name.startswith(p)), len(_ORDER))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", default="W1", choices=sorted(WORKLOADS))
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--poll-delay", type=float, default=0.05)
    p.add_argument("--max-jobs", type=int, default=Settings().worker_max_jobs)
    p.add_argument("--cprofile", metavar="FILE", help="also write cProfile stats of the runs")
    p.add_argument("--experiment", action="append", default=[], choices=sorted(EXPERIMENTS),
                   help="a what-if change (repeatable): " + "; ".join(
                       f"{k}: {v}" for k, v in EXPERIMENTS.items()))
    args = p.parse_args(argv)
    asyncio.run(profile(args))


if __name__ == "__main__":
    main()
