"""Crashes and restarts with work in flight: a worker killed mid-call, Redis restarted or
flushed, a worker restart under 100 executions, two workers on one queue. Real worker
processes, a real Redis, SQLite and PostgreSQL; every wait is on a condition with a deadline.

The two Redis tests run on SQLite only and the two-worker test on PostgreSQL only: queued
steps whose job Redis lost come back with the periodic full scan (every 30 sweeps, 30 s
here), so each Redis test takes about 35 s.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.agents_admin import upsert_agent
from app.runtime import utcnow
from app.settings import Settings
from tests.integration.conftest import WorkerProcess, wait_for, wait_terminal
from tests.support.reliability import (
    RestartableRedis,
    all_step_runs,
    assert_ran_exactly_once,
    aware,
    chain,
    count_statuses,
    overlapping_runs,
    step_statuses,
)

pytestmark = pytest.mark.integration

STEPS = ("one", "two", "three")
REDISPATCH_LIMIT = timedelta(seconds=10)
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def _start_many(c: Any, text: str, n: int) -> list[str]:
    imported = await c.definitions.import_text(text, publish=True)
    return [(await c.executions.start(imported.row, {}, "test")).id for _ in range(n)]


async def _all_completed(c: Any, n: int, timeout: float) -> None:
    async def done() -> bool:
        found = await count_statuses(c)
        assert not set(found) - {"running", "pending", "completed"}, found
        return found["completed"] == n
    try:
        await wait_for(done, timeout, interval=0.2, what=f"{n} executions to complete")
    except AssertionError as e:
        raise AssertionError(f"{e}; executions by status {dict(await count_statuses(c))}"
                             ) from None


def _pid(worker_name: str | None) -> str:
    return (worker_name or "").rsplit(":", 1)[-1]


# --- a worker killed in the middle of an agent call ------------------------------------------

async def test_a_step_whose_worker_was_killed_runs_again_on_another_worker_exactly_once(
        container: Any, worker_factory: Any, hook_server: Any) -> None:
    release = threading.Event()

    def agent(path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        if body["idempotency_key"].endswith(":1"):  # the first attempt hangs until released
            release.wait(120)
        return 200, {"output": {"response": f"did {body['step_id']}"}, "cost": "0.01",
                     "tokens": 3}

    hook_server.responder = agent
    await upsert_agent(container.db, "slow", "http", {"url": hook_server.url}, capacity=10)
    text = chain("killed-mid-call", "demo-echo", ("call", "after"), agents={"call": "slow"})
    try:
        first = worker_factory()
        [execution_id] = await _start_many(container, text, 1)
        await wait_for(lambda: hook_server.requests, 30, what="the agent to be called")
        killed_at = utcnow()
        first.kill()
        second = worker_factory()
        final = await wait_terminal(container, execution_id, 60)
    finally:
        release.set()

    assert final.status.value == "completed", final.error
    await assert_ran_exactly_once(container, [execution_id], ("call", "after"))
    _events, runs = await container.executions.history(execution_id)
    calls = sorted((r for r in runs if r.step_id == "call"), key=lambda r: r.attempt)
    assert [(r.attempt, r.status, r.error_code) for r in calls] == [
        (1, "failed", "WORKER_LOST"), (2, "completed", None)]
    host = socket.gethostname()
    assert calls[0].worker == f"{host}:{first.proc.pid}"
    assert calls[1].worker == f"{host}:{second.proc.pid}"
    assert aware(calls[0].finished_at) - killed_at < REDISPATCH_LIMIT
    assert aware(calls[1].started_at) - killed_at < REDISPATCH_LIMIT
    keys = [body["idempotency_key"] for _path, body, _headers in hook_server.requests]
    assert keys == [f"{execution_id}:call:1:1", f"{execution_id}:call:1:2"]


# --- Redis stopped and started again on the same socket --------------------------------------

@pytest.fixture
def own_redis() -> Iterator[RestartableRedis]:
    server = RestartableRedis()
    server.start()
    yield server
    server.close()


@pytest.fixture
async def own_container(settings: Settings, own_redis: RestartableRedis) -> AsyncIterator[Any]:
    from app.bootstrap import bootstrap, seed_demo_agents

    c = await bootstrap(settings, own_redis.url)
    await seed_demo_agents(c.db)
    yield c
    await c.close()


@pytest.fixture
def own_worker(settings: Settings, own_redis: RestartableRedis, own_container: Any,
               tmp_path: Path) -> Iterator[WorkerProcess]:
    # 10 at a time: of the 20 executions below, some steps are queued behind running ones
    worker = WorkerProcess(settings, own_redis.url, tmp_path / "own-worker.log",
                           TRINITY_WORKER_MAX_JOBS="10")
    try:
        worker.wait_ready(own_redis.url, settings.queue_name)
        yield worker
    finally:
        worker.stop()


@SQLITE_ONLY
async def test_executions_in_flight_complete_after_redis_restarts(
        own_container: Any, own_worker: WorkerProcess, own_redis: RestartableRedis) -> None:
    c = own_container
    await upsert_agent(c.db, "sleepy", "demo", {"latency": 1}, capacity=100)
    ids = await _start_many(c, chain("redis-restart", "sleepy"), 20)

    async def midway() -> bool:
        found = await step_statuses(c, ids)
        return found["completed"] >= 1 and found["running"] >= 1 and found["queued"] >= 1
    await wait_for(midway, 30, interval=0.1, what="steps completed, running and queued")
    before = (await step_statuses(c, ids))["completed"]
    own_redis.stop()

    async def ended_while_down() -> bool:  # so the worker has met the outage
        return (await step_statuses(c, ids))["completed"] > before
    await wait_for(ended_while_down, 30, interval=0.1, what="a step to end with Redis down")
    own_redis.start()

    await _all_completed(c, len(ids), 120)
    assert own_worker.proc.poll() is None, f"the worker died: {own_worker.log()}"
    await assert_ran_exactly_once(c, ids, STEPS)


# --- Redis flushed ---------------------------------------------------------------------------

RETRY_ONCE_SOON = """
retry:
  max_attempts: 3
  initial_delay: 2s
  backoff: fixed
"""


@SQLITE_ONLY
async def test_executions_in_flight_complete_after_redis_is_flushed(
        container: Any, worker_factory: Any) -> None:
    await upsert_agent(container.db, "sleepy", "demo", {"latency": 1}, capacity=100)
    await upsert_agent(container.db, "flaky", "demo", {"latency": 0.2, "fail_times": 1},
                       capacity=100)
    text = chain("flushed", "sleepy", agents={"two": "flaky"}, retry={"two": RETRY_ONCE_SOON})
    worker = worker_factory(TRINITY_WORKER_MAX_JOBS="4")
    ids = await _start_many(container, text, 12)

    async def every_kind_in_flight() -> bool:
        found = await step_statuses(container, ids)
        return all(found[s] >= 1 for s in ("running", "queued", "retrying"))
    await wait_for(every_kind_in_flight, 30, interval=0.05,
                   what="steps running, queued and retrying at once")
    await container.redis.flushall()

    await _all_completed(container, len(ids), 120)
    assert worker.proc.poll() is None, worker.log()
    await assert_ran_exactly_once(container, ids, STEPS)
    failed_once = [r for r in await all_step_runs(container) if r.status == "failed"]
    assert sorted((r.step_id, r.attempt) for r in failed_once) == [("two", 1)] * len(ids)


# --- a worker restart with 100 executions in flight ------------------------------------------

@pytest.mark.parametrize(("database_url", "how"), [
    ("sqlite", "sigterm"), ("sqlite", "sigkill"), ("postgresql", "sigkill")],
    indirect=["database_url"])
async def test_a_hundred_executions_complete_exactly_once_across_a_worker_restart(
        container: Any, worker_factory: Any, how: str) -> None:
    await upsert_agent(container.db, "steady", "demo", {"latency": 0.3}, capacity=1000)
    first = worker_factory()
    ids = await _start_many(container, chain("hundred", "steady"), 100)

    async def some_completed_and_steps_running() -> bool:
        # chains run inline, so executions finish in batches: wait past the gap between a
        # finished batch and the next one, so the kill lands on running steps
        if (await count_statuses(container))["completed"] < 10:
            return False
        return any(r.status == "running" for r in await all_step_runs(container))
    await wait_for(some_completed_and_steps_running, 60,
                   what="the first executions to complete and others to be running")
    if how == "sigkill":
        first.kill()
    else:
        first.stop()
    assert (await count_statuses(container))["completed"] < 100, "nothing was left in flight"
    second = worker_factory()

    await _all_completed(container, len(ids), 120)
    await assert_ran_exactly_once(container, ids, STEPS)
    runs = await all_step_runs(container)
    assert str(second.proc.pid) in {_pid(r.worker) for r in runs if r.status == "completed"}
    lost = [r for r in runs if r.error_code == "WORKER_LOST"]
    assert {_pid(r.worker) for r in lost} <= {str(first.proc.pid)}
    if how == "sigkill":
        assert lost, "the kill hit no running step"


# --- two workers on one database and one queue -----------------------------------------------

@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_two_workers_never_run_the_same_step_twice(
        container: Any, worker_factory: Any) -> None:
    await upsert_agent(container.db, "steady", "demo", {"latency": 0.3}, capacity=1000)
    # 5 jobs each and 20 chains of 1.5 s: neither worker can take every execution
    workers = [worker_factory(TRINITY_WORKER_MAX_JOBS="5") for _ in range(2)]
    five = ("a", "b", "c", "d", "e")
    ids = await _start_many(container, chain("two-workers", "steady", five), 20)

    await _all_completed(container, len(ids), 120)
    await assert_ran_exactly_once(container, ids, five)
    runs = await all_step_runs(container)
    assert len(runs) == 20 * 5
    assert {(r.attempt, r.status) for r in runs} == {(1, "completed")}
    assert overlapping_runs(runs) == []
    assert {_pid(r.worker) for r in runs} == {str(w.proc.pid) for w in workers}
