"""Capacity blocks with real worker processes, a real Redis and a real HTTP agent: a worker
takes a block of slots only when the agent's capacity has room for it, and however the
slots are taken, no more calls of an agent run at once than its capacity."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from app.agents_admin import upsert_agent
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
BRANCHES = 24


class CountingAgent:
    """Answers after `seconds`; counts how many calls were in progress at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.running = self.peak = self.calls = 0

    def __call__(self, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        with self.lock:
            self.running += 1
            self.calls += 1
            self.peak = max(self.peak, self.running)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
        return 200, {"output": {"response": f"did {body['step_id']}"}}


def fan_out(name: str, agent: str, branches: int) -> str:
    lines = [f"name: {name}", "version: 1", "steps:", "  - id: start", "    type: agent_task",
             "    agent: demo-echo", '    message: "go"']
    for i in range(branches):
        lines += [f"  - id: b{i}", "    type: agent_task", f"    agent: {agent}",
                  f'    message: "branch {i}"', "    depends_on: start"]
    return "\n".join(lines) + "\n"


async def _run_watching_holders(container: Any, text: str, holders: str,
                                timeout: float = 90) -> tuple[Any, set[str]]:
    """Run one execution; meanwhile collect every holder lease seen in Redis."""
    imported = await container.definitions.import_text(text, publish=True)
    x = await container.executions.start(imported.row, {}, "test")
    seen: set[str] = set()

    async def finished() -> Any:
        seen.update(m.decode() for m in await container.redis.zrange(holders, 0, -1))
        _row, state = await container.runtime.load(x.id)
        return state if state.status.is_terminal else None
    final = await wait_for(finished, timeout, interval=0.02, what="the execution to end")
    return final, seen


@SQLITE_ONLY
@pytest.mark.parametrize(("capacity", "max_jobs", "blocks"), [
    (3, 4, False),  # 3 < 4 × BLOCK_SHARE: every call takes a slot of its own
    (8, 2, True),  # room for blocks of 2; three workers could still run 12 calls at once
])
async def test_workers_never_run_more_calls_of_an_agent_than_its_capacity(
        container: Any, worker_factory: Any, hook_server: Any, capacity: int, max_jobs: int,
        blocks: bool) -> None:
    agent = CountingAgent(0.3)
    hook_server.responder = agent
    await upsert_agent(container.db, "limited", "http", {"url": hook_server.url},
                       capacity=capacity)
    for _ in range(3):
        worker_factory(TRINITY_WORKER_MAX_JOBS=str(max_jobs))
    holders = "trinity:capacity:{limited}:holders"

    final, seen = await _run_watching_holders(
        container, fan_out(f"limited-{capacity}", "limited", BRANCHES), holders)

    assert final.status.value == "completed", final.error
    assert agent.calls == BRANCHES
    assert agent.peak <= capacity
    block_leases = {m for m in seen if m.startswith("block:")}
    assert bool(block_leases) is blocks, seen
    if blocks:  # a block is max_jobs leases, all counted against the capacity
        tokens = {m.rsplit("#", 1)[0] for m in block_leases}
        assert all(sum(m.startswith(f"{t}#") for m in block_leases) == max_jobs
                   for t in tokens)
    await wait_for(lambda: _empty(container, holders), 15, what="every lease handed back")


async def _empty(container: Any, key: str) -> bool:
    await asyncio.sleep(0)
    return await container.redis.zcard(key) == 0


@SQLITE_ONLY
async def test_the_agents_page_tells_a_workers_block_from_calls_in_use(container: Any) -> None:
    from app.agents.capacity import RedisSlots
    from pages.agents import _in_use, load_usage

    blocks = container.agents.slots  # block_size = max_jobs, as in a worker
    singles = RedisSlots(container.redis)  # a slot per call, as in the web process
    try:
        async with blocks.hold("wide", 1000, "x:one:1:1#a"), \
                singles.hold("wide", 1000, "x:two:1:1#b"):
            usage = await load_usage(container, ["wide", "idle"])
    finally:
        await singles.aclose()
    assert usage == {"wide": (1, blocks.block_size, 0), "idle": (0, 0, 0)}
    assert _in_use(*usage["wide"][:2]) == f"1 + up to {blocks.block_size} in worker blocks"
    assert _in_use(*usage["idle"][:2]) == "0"
