"""The worker's job claim (`worker.main._Worker.start_jobs`) on a real Redis: one script claims
what arq would start and nothing else, and the worker's room (max_jobs) holds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from arq import create_pool
from arq.constants import in_progress_key_prefix
from arq.worker import func

from app.queue import redis_settings
from worker.main import _Worker

pytestmark = pytest.mark.integration

QUEUE = "trinity:test-claim"


async def record(ctx: dict[str, Any], name: str) -> None:
    ctx["ran"].append(name)
    await ctx["hold"].wait()


@pytest.fixture
async def pool(redis_url: str) -> Any:
    p = await create_pool(redis_settings(redis_url), default_queue_name=QUEUE)
    yield p
    await p.aclose()


def _worker(pool: Any, ran: list[str], hold: asyncio.Event, max_jobs: int) -> _Worker:
    return _Worker(functions=[func(record, name="record")],  # type: ignore[list-item]
                   redis_pool=pool, queue_name=QUEUE,
                   max_jobs=max_jobs, keep_result=0, allow_abort_jobs=False,
                   handle_signals=False, burst=True, poll_delay=0,
                   ctx={"ran": ran, "hold": hold})


async def _until(condition: Any, what: str, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_only_queued_due_jobs_not_held_elsewhere_are_claimed(
        pool: Any) -> None:
    for name in ("ready", "held", "later"):
        await pool.enqueue_job("record", name, _job_id=name,
                               _defer_by=3600 if name == "later" else None)
    await pool.set(in_progress_key_prefix + "held", b"1")  # another worker runs it
    ran: list[str] = []
    hold = asyncio.Event()
    worker = _worker(pool, ran, hold, max_jobs=10)
    try:
        await worker.start_jobs([b"ready", b"held", b"later", b"gone"])
        assert set(worker.tasks) == {"ready"}
        assert worker.job_counter == 1
        await _until(lambda: ran == ["ready"], "the claimed job to run")
        assert await pool.exists(in_progress_key_prefix + "ready")
        assert not await pool.exists(in_progress_key_prefix + "later")
        hold.set()
        await asyncio.gather(*worker.tasks.values())
        assert worker.job_counter == 0
        assert worker.sem._value == 11  # type: ignore[attr-defined]  # every permit back
    finally:
        hold.set()
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)


async def test_a_full_worker_claims_no_more_than_its_room(pool: Any) -> None:
    names = [f"job{i}" for i in range(5)]
    for name in names:
        await pool.enqueue_job("record", name, _job_id=name)
    ran: list[str] = []
    hold = asyncio.Event()
    worker = _worker(pool, ran, hold, max_jobs=3)
    try:
        await worker.start_jobs([n.encode() for n in names])
        assert sorted(worker.tasks) == names[:3]
        await worker.start_jobs([n.encode() for n in names[3:]])  # no room: none claimed
        assert sorted(worker.tasks) == names[:3]
        for name in names[3:]:
            assert not await pool.exists(in_progress_key_prefix + name)
        await _until(lambda: len(ran) == 3, "three jobs to run")
        hold.set()
        await asyncio.gather(*worker.tasks.values())
        await worker.start_jobs([n.encode() for n in names[3:]])
        assert sorted(t for t in worker.tasks if not worker.tasks[t].done()) == names[3:]
    finally:
        hold.set()
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)


async def test_room_left_by_a_job_held_elsewhere_goes_to_the_next_one(pool: Any) -> None:
    for name in ("held", "a", "b", "c"):
        await pool.enqueue_job("record", name, _job_id=name)
    await pool.set(in_progress_key_prefix + "held", b"1")
    ran: list[str] = []
    hold = asyncio.Event()
    worker = _worker(pool, ran, hold, max_jobs=2)
    try:
        await worker.start_jobs([b"held", b"a", b"b", b"c"])
        assert sorted(worker.tasks) == ["a", "b"]
        assert worker.job_counter == 2
        assert not await pool.exists(in_progress_key_prefix + "c")
    finally:
        hold.set()
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
