"""Agent capacity shared through a real Redis: two gateways stand for two worker processes
(separate connections, nothing shared in memory); a real HTTP agent records, on its side,
when each call started and ended."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from app.agents.base import AgentConfig, AgentRequest
from app.agents.capacity import RedisSlots
from app.agents.gateway import AgentGateway
from tests.integration.conftest import wait_for
from tests.integration.test_agents import AgentServer

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("TRINITY_TEST_AGENTS_REDIS", "redis://127.0.0.1:6379")


async def _reachable(url: str) -> str | None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        await client.ping()
        return None
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    finally:
        await client.aclose()


@pytest.fixture
async def redis_url(request: pytest.FixtureRequest) -> str:
    """The Redis at REDIS_URL; else the private one the integration suite starts; else
    skip, saying why."""
    problem = await _reachable(REDIS_URL)
    if problem is None:
        return REDIS_URL
    try:
        return str(request.getfixturevalue("private_redis").url)
    except Exception as e:
        pytest.skip(f"no Redis for the capacity tests: {REDIS_URL} is not reachable "
                    f"({problem}) and a private server could not start ({e})")


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """Keys of this test only; removed afterwards (nothing else in Redis is touched)."""
    import redis.asyncio as aioredis

    p = f"trinity:test:{uuid.uuid4().hex[:10]}:capacity"
    yield p
    client = aioredis.Redis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(match=f"{p}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def workers(redis_url: str, prefix: str) -> AsyncIterator[Callable[..., AgentGateway]]:
    """Make gateways as separate workers would: each with its own Redis connection."""
    import redis.asyncio as aioredis

    made: list[tuple[AgentGateway, Any]] = []

    def make(lease_seconds: float = 30.0, block_size: int = 0) -> AgentGateway:
        client = aioredis.Redis.from_url(redis_url)
        gw = AgentGateway(client, slots=RedisSlots(client, prefix=prefix,
                                                   lease_seconds=lease_seconds,
                                                   block_size=block_size))
        made.append((gw, client))
        return gw

    yield make
    for gw, client in made:
        await gw.aclose()
        await client.aclose()


@pytest.fixture
def server() -> Iterator[AgentServer]:
    s = AgentServer()
    yield s
    s.close()


def slow_agent(server: AgentServer, capacity: int, ms: int = 300) -> AgentConfig:
    return AgentConfig(name=f"busy-{capacity}", kind="http", capacity=capacity,
                       config={"url": f"{server.url}/agent/slot?ms={ms}"})


def request(name: str, timeout: float = 60.0) -> AgentRequest:
    return AgentRequest(message=name, execution_id="ex", step_id=name, attempt=1,
                        idempotency_key=f"ex:{name}:1:1", timeout=timeout)


async def until(predicate: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Wait for a (sync or async) condition, failing with `what` after `timeout` seconds."""
    return await wait_for(predicate, timeout, interval=0.01, what=what)


def most_at_once(spans: list[tuple[str, float, float]]) -> int:
    edges = sorted([(start, 1) for _, start, _ in spans] + [(end, -1) for _, _, end in spans])
    running = peak = 0
    for _, step in edges:  # at equal times an end (-1) sorts before a start
        running += step
        peak = max(peak, running)
    return peak


async def test_capacity_one_runs_calls_one_at_a_time_in_arrival_order_across_workers(
        server: AgentServer, workers: Callable[..., AgentGateway], prefix: str) -> None:
    a, b = workers(), workers()
    agent = slow_agent(server, capacity=1)
    tasks = []
    for place, (gw, name) in enumerate([(a, "first"), (b, "second"), (a, "third")]):
        tasks.append(asyncio.create_task(gw.call(agent, request(name))))
        await until(lambda name=name, place=place:
                    _at(b, agent.name, f"ex:{name}:1:1", place), f"{name} to queue")
    holders = f"{prefix}:{{{agent.name}}}:holders"
    assert [m.decode().split("#")[0] for m in await a.slots.redis.zrange(holders, 0, -1)] \
        == ["ex:first:1:1"]  # type: ignore[attr-defined]
    replies = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert [r.output["slot"] for r in replies] == ["first", "second", "third"]
    spans = sorted(server.spans, key=lambda s: s[1])
    assert [name for name, _, _ in spans] == ["first", "second", "third"]
    for (_, _, ended), (_, started, _) in itertools.pairwise(spans):
        assert started >= ended
    assert await a.queue_position(agent.name, "ex:third:1:1") is None


async def _at(gw: AgentGateway, agent: str, key: str, place: int) -> bool:
    return await gw.queue_position(agent, key) == place


async def test_capacity_two_never_runs_more_than_two_calls_at_once(
        server: AgentServer, workers: Callable[..., AgentGateway]) -> None:
    a, b = workers(), workers()
    agent = slow_agent(server, capacity=2)
    calls = [(a if i % 2 else b).call(agent, request(f"c{i}")) for i in range(6)]
    await asyncio.wait_for(asyncio.gather(*calls), 30)
    assert len(server.spans) == 6
    assert most_at_once(server.spans) == 2


async def test_a_holder_that_died_stops_blocking_once_its_lease_runs_out(
        server: AgentServer, workers: Callable[..., AgentGateway], redis_url: str,
        prefix: str) -> None:
    import redis.asyncio as aioredis

    dead_client = aioredis.Redis.from_url(redis_url)
    dead = RedisSlots(dead_client, prefix=prefix)
    agent = slow_agent(server, capacity=1, ms=10)
    assert await dead.try_acquire(agent.name, 1, "ex:ghost:1:1#dead", lease_seconds=1.0) == 0
    taken = time.monotonic()
    await dead_client.aclose()  # the "worker" is gone: no refresh, no release
    gw = workers()
    task = asyncio.create_task(gw.call(agent, request("survivor")))
    await until(lambda: _at(gw, agent.name, "ex:survivor:1:1", 1), "the survivor to wait")
    assert await gw.queue_position(agent.name, "ex:ghost:1:1") == 0
    reply = await asyncio.wait_for(task, 15)
    assert reply.output == {"slot": "survivor"}
    [(_, started, _)] = server.spans
    assert started - taken >= 0.9  # it really waited for the lease to run out


async def test_a_waiter_that_died_leaves_the_line(
        server: AgentServer, workers: Callable[..., AgentGateway], redis_url: str,
        prefix: str) -> None:
    import redis.asyncio as aioredis

    gw = workers()
    agent = slow_agent(server, capacity=1, ms=300)
    first = asyncio.create_task(gw.call(agent, request("first")))
    await until(lambda: _at(gw, agent.name, "ex:first:1:1", 0), "first to run")
    ghost_client = aioredis.Redis.from_url(redis_url)
    ghost = RedisSlots(ghost_client, prefix=prefix)
    assert await ghost.try_acquire(agent.name, 1, "ex:ghost:1:1#dead") == 1
    await ghost_client.aclose()  # joined the line, then died: it never polls again
    second = asyncio.create_task(gw.call(agent, request("second")))
    await until(lambda: _at(gw, agent.name, "ex:second:1:1", 2), "second to queue")
    replies = await asyncio.wait_for(asyncio.gather(first, second), 20)
    assert [r.output["slot"] for r in replies] == ["first", "second"]
    assert await gw.queue_position(agent.name, "ex:ghost:1:1") is None


async def test_a_long_call_keeps_its_slot_by_refreshing_its_lease(
        server: AgentServer, workers: Callable[..., AgentGateway]) -> None:
    a, b = workers(lease_seconds=0.4), workers(lease_seconds=0.4)
    agent = slow_agent(server, capacity=1, ms=1000)  # 2.5 leases long
    long = asyncio.create_task(a.call(agent, request("long")))
    await until(lambda: _at(a, agent.name, "ex:long:1:1", 0), "the long call to run")
    short = asyncio.create_task(b.call(agent, request("short")))
    await asyncio.wait_for(asyncio.gather(long, short), 20)
    spans = sorted(server.spans, key=lambda s: s[1])
    assert [n for n, _, _ in spans] == ["long", "short"]
    assert spans[1][1] >= spans[0][2]


async def test_a_cancelled_waiter_and_a_failed_call_leave_no_trace_in_redis(
        server: AgentServer, workers: Callable[..., AgentGateway], prefix: str) -> None:
    gw = workers()
    agent = slow_agent(server, capacity=1, ms=400)
    running = asyncio.create_task(gw.call(agent, request("running")))
    await until(lambda: _at(gw, agent.name, "ex:running:1:1", 0), "the call to run")
    waiting = asyncio.create_task(gw.call(agent, request("waiting")))
    await until(lambda: _at(gw, agent.name, "ex:waiting:1:1", 1), "the waiter to queue")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await gw.queue_position(agent.name, "ex:waiting:1:1") is None
    await asyncio.wait_for(running, 10)
    failing = AgentConfig(agent.name, "http", {"url": f"{server.url}/agent/500"}, capacity=1)
    with pytest.raises(Exception, match="database is on fire"):
        await gw.call(failing, request("failing"))
    redis = gw.slots.redis  # type: ignore[attr-defined]
    for part in ("holders", "queue", "alive"):
        assert await redis.zcard(f"{prefix}:{{{agent.name}}}:{part}") == 0, part


# --- blocks: a process takes several slots at once when the capacity has room -----------------

def _block_leases(members: list[bytes]) -> list[str]:
    return [m.decode() for m in members if m.startswith(b"block:")]


async def test_with_room_for_a_block_calls_run_under_it_and_only_the_rest_take_slots(
        server: AgentServer, workers: Callable[..., AgentGateway], prefix: str) -> None:
    gw = workers(block_size=3)
    agent = slow_agent(server, capacity=12, ms=400)
    redis = gw.slots.redis  # type: ignore[attr-defined]
    holders, _queue, _alive, seq = RedisSlots(redis, prefix=prefix).keys(agent.name)
    first = asyncio.create_task(gw.call(agent, request("c0")))
    await until(lambda: _holding(redis, holders, 3), "the block to be taken")
    rest = [asyncio.create_task(gw.call(agent, request(f"c{i}"))) for i in range(1, 5)]
    members = await until(lambda: _holding(redis, holders, 5), "five calls to hold leases")

    assert len(_block_leases(members)) == 3  # one block of three leases
    assert sorted(m.decode().split("#")[0] for m in members
                  if not m.startswith(b"block:")) == ["ex:c3:1:1", "ex:c4:1:1"]
    replies = await asyncio.wait_for(asyncio.gather(first, *rest), 30)
    assert [r.output["slot"] for r in replies] == [f"c{i}" for i in range(5)]
    assert int(await redis.get(seq)) == 2  # only the two beyond the block stood in line
    await until(lambda: _holding(redis, holders, 0), "the idle block to be handed back")


async def test_without_room_for_a_block_every_call_takes_a_slot_of_its_own(
        server: AgentServer, workers: Callable[..., AgentGateway], prefix: str) -> None:
    a, b = workers(block_size=2), workers(block_size=2)
    agent = slow_agent(server, capacity=4)  # 4 < 2 × BLOCK_SHARE
    redis = a.slots.redis  # type: ignore[attr-defined]
    holders, _queue, _alive, seq = RedisSlots(redis, prefix=prefix).keys(agent.name)
    calls = asyncio.gather(*[(a if i % 2 else b).call(agent, request(f"c{i}"))
                             for i in range(8)])
    members = await until(lambda: _holding(redis, holders, 4), "four calls to run")
    await asyncio.wait_for(calls, 30)

    assert _block_leases(members) == []
    assert int(await redis.get(seq)) == 8
    assert most_at_once(server.spans) == 4


async def test_blocks_and_slots_of_three_workers_never_run_more_than_the_capacity(
        server: AgentServer, workers: Callable[..., AgentGateway], prefix: str) -> None:
    a, b, c = workers(block_size=2), workers(block_size=2), workers()
    agent = slow_agent(server, capacity=8, ms=200)
    redis = a.slots.redis  # type: ignore[attr-defined]
    seq = RedisSlots(redis, prefix=prefix).keys(agent.name)[3]
    calls = [gw.call(agent, request(f"c{i}"))
             for i, gw in zip(range(30), itertools.cycle([a, b, c]), strict=False)]
    await asyncio.wait_for(asyncio.gather(*calls), 60)

    assert len(server.spans) == 30
    assert most_at_once(server.spans) == 8
    assert int(await redis.get(seq) or 0) < 30  # some calls ran under a block


async def test_someone_waiting_makes_a_busy_block_go_back(
        server: AgentServer, workers: Callable[..., AgentGateway], prefix: str) -> None:
    a = workers(block_size=2, lease_seconds=0.6)
    waiter = workers(lease_seconds=0.6)
    agent = slow_agent(server, capacity=8, ms=150)
    redis = a.slots.redis  # type: ignore[attr-defined]
    holders = RedisSlots(redis, prefix=prefix).keys(agent.name)[0]
    stop = asyncio.Event()

    async def keep_busy(name: str) -> None:  # back-to-back calls: the block is never idle
        n = 0
        while not stop.is_set():
            n += 1
            await a.call(agent, request(f"{name}-{n}"))
    busy = [asyncio.create_task(keep_busy(f"busy{i}")) for i in range(2)]
    await until(lambda: _holding(redis, holders, 2), "the block to be taken")
    long = AgentConfig(agent.name, "http", {"url": f"{server.url}/agent/slot?ms=3000"},
                       capacity=8)
    hogs = [asyncio.create_task(waiter.call(long, request(f"hog{i}", timeout=30)))
            for i in range(6)]
    await until(lambda: _holding(redis, holders, 8), "the capacity to be full")
    late = asyncio.create_task(waiter.call(agent, request("late")))
    # the block sees the waiter at its next refresh and is handed back between two calls
    reply = await asyncio.wait_for(late, 10)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*busy, *hogs), 30)

    assert reply.output == {"slot": "late"}
    spans = {name: (start, end) for name, start, end in server.spans}
    assert spans["late"][1] < min(end for name, (_, end) in spans.items()
                                  if name.startswith("hog"))
    assert most_at_once(server.spans) <= 8


async def _holding(redis: Any, key: str, n: int) -> list[bytes] | bool:
    """The holder leases once there are exactly `n` of them (True for none), else False."""
    members = await redis.zrange(key, 0, -1)
    if len(members) != n:
        return False
    return members or True
