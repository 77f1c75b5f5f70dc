"""Per-agent capacity: at most `capacity` calls of one agent run at a time, the rest wait
in arrival order.

`RedisSlots` shares the limit across every worker process. Slots are leases, never
counters: a holder that dies stops refreshing, its lease runs out and the next acquire
evicts it, so a slot can never leak. Waiters keep a short "alive" lease of their own while
they poll, so a dead waiter leaves the line too. Times come from the Redis server clock
(`TIME` inside the scripts), so workers on machines with skewed clocks agree.

Keys, per agent (the `{name}` hash tag keeps one agent's keys in one Cluster slot):

    {prefix}:{name}:holders   ZSET token -> lease expiry (ms, Redis clock)
    {prefix}:{name}:queue     ZSET token -> arrival number (FIFO order)
    {prefix}:{name}:alive     ZSET token -> waiter expiry (ms); dead waiters are dropped
    {prefix}:{name}:seq       INCR counter handing out arrival numbers

A token is `"{idempotency_key}#{random}"`, so `position` can find a call by its key.

A process whose calls of one agent would take at most a small part of its capacity
(`block_size` ≤ capacity / BLOCK_SHARE) takes a **block**: `block_size` slots at once, as
`block_size` holder leases `"{block token}#{i}"` in the same ZSET, granted only while nobody
waits and that many slots are free. Its calls then run under the block with no Redis round
trip, at most `block_size` at a time (more fall back to a slot each). So the count in Redis
never lies: every running call sits under a lease of its own or of its block. The block is
refreshed like a slot and handed back as soon as it is idle or anyone waits in line.

`LocalSlots` is the same behaviour inside one process (no Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.exceptions import RedisError

from app.agents.base import AgentError

__all__ = ["BLOCK_PREFIX", "LocalSlots", "RedisSlots", "Slots"]

log = logging.getLogger("trinity.agents")

_EXPIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)) do
  redis.call('ZREM', KEYS[2], dead)
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
"""

_ACQUIRE = _EXPIRE + """
local token = ARGV[1]
local lease = now + tonumber(ARGV[3])
if redis.call('ZSCORE', KEYS[1], token) then
  redis.call('ZADD', KEYS[1], lease, token)
  return 0
end
if not redis.call('ZSCORE', KEYS[2], token) then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), token)
end
local rank = redis.call('ZRANK', KEYS[2], token)
local free = tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[1])
if rank < free then
  redis.call('ZREM', KEYS[2], token)
  redis.call('ZREM', KEYS[3], token)
  redis.call('ZADD', KEYS[1], lease, token)
  return 0
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), token)
return rank + 1
"""

# ARGV: block token, capacity, lease ms, block size. 1 when the block was granted.
_ACQUIRE_BLOCK = _EXPIRE + """
local size = tonumber(ARGV[4])
if redis.call('ZCARD', KEYS[2]) > 0 then
  return 0
end
if tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[1]) < size then
  return 0
end
for i = 1, size do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1] .. '#' .. i)
end
return 1
"""

# ARGV: block token, lease ms, block size. -1 when the block ran out (it is gone), 0 when
# someone waits in line (hand it back), 1 when refreshed.
_REFRESH_BLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local size = tonumber(ARGV[3])
for i = 1, size do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[1] .. '#' .. i)
  if not score or tonumber(score) <= now then
    for j = 1, size do redis.call('ZREM', KEYS[1], ARGV[1] .. '#' .. j) end
    return -1
  end
end
for i = 1, size do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1] .. '#' .. i)
end
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local alive = redis.call('ZSCORE', KEYS[3], m)
  if alive and tonumber(alive) > now then return 0 end
end
return 1
"""

_REFRESH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= now then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
"""

_POSITION = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local p = ARGV[1]
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  if string.sub(m, 1, #p) == p then return 0 end
end
local pos = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local alive = redis.call('ZSCORE', KEYS[3], m)
  if alive and tonumber(alive) > now then
    pos = pos + 1
    if string.sub(m, 1, #p) == p then return pos end
  end
end
return -1
"""


class Slots(Protocol):
    """Where an agent's capacity is kept."""

    async def acquire(self, agent: str, capacity: int, token: str) -> None: ...

    async def release(self, agent: str, token: str) -> None: ...

    async def position(self, agent: str, key: str) -> int | None: ...

    def hold(self, agent: str, capacity: int, token: str
             ) -> contextlib.AbstractAsyncContextManager[None]: ...


BLOCK_SHARE = 4  # a block is at most this share of an agent's capacity
BLOCK_PREFIX = b"block:"  # how a block's leases start among an agent's holders
BLOCK_RETRY_SECONDS = 1.0  # after a refused block, use a slot per call for this long


class RedisSlots:
    """A FIFO semaphore of leases in Redis, shared by every process using the same keys.

    `block_size`: how many calls of one agent this process may run under one block (its
    own concurrency, e.g. the worker's max_jobs); 0 never takes a block.
    """

    def __init__(self, redis: Any, prefix: str = "trinity:capacity",
                 lease_seconds: float = 30.0, poll_seconds: float = 0.05,
                 max_poll_seconds: float = 0.25, block_size: int = 0) -> None:
        self.redis = redis
        self.prefix = prefix
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.max_poll_seconds = max_poll_seconds
        self.block_size = block_size
        self._acquire = redis.register_script(_ACQUIRE)
        self._refresh = redis.register_script(_REFRESH)
        self._position = redis.register_script(_POSITION)
        self._acquire_block = redis.register_script(_ACQUIRE_BLOCK)
        self._refresh_block = redis.register_script(_REFRESH_BLOCK)
        # Releases in this process wake local waiters at once; other processes poll.
        self._wake: dict[str, asyncio.Event] = {}
        self._blocks: dict[str, _Block] = {}
        self._refused: dict[str, float] = {}  # agent -> monotonic time of the last refusal

    def keys(self, agent: str) -> list[str]:
        base = f"{self.prefix}:{{{agent}}}"
        return [f"{base}:holders", f"{base}:queue", f"{base}:alive", f"{base}:seq"]

    async def try_acquire(self, agent: str, capacity: int, token: str,
                          lease_seconds: float | None = None) -> int:
        """Take a slot now (0) or join/keep a place in line (the 1-based position)."""
        lease_ms = int((lease_seconds or self.lease_seconds) * 1000)
        waiter_ms = int(max(2.0, self.max_poll_seconds * 8) * 1000)
        try:
            return int(await self._acquire(keys=self.keys(agent),
                                           args=[token, max(1, capacity), lease_ms, waiter_ms]))
        except RedisError as e:
            raise AgentError("AGENT_ERROR", f"cannot take a slot of agent '{agent}': the "
                             f"capacity queue in Redis is unavailable ({e})") from None

    async def acquire(self, agent: str, capacity: int, token: str,
                      lease_seconds: float | None = None) -> None:
        """Wait for a slot; leaves the line if cancelled. Redis failing is a retryable
        AgentError."""
        delay = self.poll_seconds
        acquired = False
        try:
            while True:
                wake = self._wake.setdefault(agent, asyncio.Event())
                if await self.try_acquire(agent, capacity, token, lease_seconds) == 0:
                    acquired = True
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), delay)
                delay = min(delay * 1.5, self.max_poll_seconds)
        finally:
            if not acquired:
                await _quietly(self.release(agent, token))

    async def refresh(self, agent: str, token: str, lease_seconds: float | None = None) -> bool:
        """Extend a held lease; False when it had already run out (the slot was lost)."""
        lease_ms = int((lease_seconds or self.lease_seconds) * 1000)
        return bool(await self._refresh(keys=self.keys(agent)[:1], args=[token, lease_ms]))

    async def release(self, agent: str, token: str) -> None:
        holders, queue, alive, _seq = self.keys(agent)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(holders, token)
            pipe.zrem(queue, token)
            pipe.zrem(alive, token)
            await pipe.execute()
        wake = self._wake.pop(agent, None)
        if wake is not None:
            wake.set()

    async def position(self, agent: str, key: str) -> int | None:
        found = int(await self._position(keys=self.keys(agent)[:3], args=[f"{key}#"]))
        return None if found < 0 else found

    @contextlib.asynccontextmanager
    async def hold(self, agent: str, capacity: int, token: str) -> AsyncIterator[None]:
        """Hold a slot for the body, refreshing the lease while it runs: one of this
        process's block when it has room, else a slot of its own."""
        block = await self._block(agent, capacity)
        if block is not None:
            block.in_use += 1
            try:
                yield
            finally:
                block.in_use -= 1
                block.last_used = time.monotonic()
            return
        await self.acquire(agent, capacity, token)
        keeper = asyncio.create_task(self._keep(agent, token))
        try:
            yield
        finally:
            keeper.cancel()
            await _quietly(self.release(agent, token))

    async def aclose(self) -> None:
        """Hand back this process's blocks (otherwise their leases run out)."""
        for block in list(self._blocks.values()):
            block.keeper.cancel()
            await _quietly(self._release_block(block))

    async def _block(self, agent: str, capacity: int) -> _Block | None:
        """This process's block of the agent with a free place, taking one if allowed."""
        size = self.block_size
        if size <= 0 or capacity < size * BLOCK_SHARE:
            return None
        block = self._blocks.get(agent)
        if block is not None:
            return block if block.open and block.in_use < block.size else None
        if time.monotonic() - self._refused.get(agent, -math.inf) < BLOCK_RETRY_SECONDS:
            return None
        token = f"{BLOCK_PREFIX.decode()}{uuid.uuid4().hex[:12]}"
        lease_ms = int(self.lease_seconds * 1000)
        try:
            granted = await self._acquire_block(keys=self.keys(agent)[:3],
                                                args=[token, capacity, lease_ms, size])
        except RedisError:
            granted = 0  # a slot per call reports the failure properly
        if self._blocks.get(agent) is not None:  # another call took one meanwhile
            if granted:
                await _quietly(self._release_block(_Block(agent, token, size)))
            return await self._block(agent, capacity)
        if not granted:
            self._refused[agent] = time.monotonic()
            return None
        block = self._blocks[agent] = _Block(agent, token, size)
        block.keeper = asyncio.create_task(self._keep_block(block))
        return block

    async def _keep_block(self, block: _Block) -> None:
        """Refresh the block; hand it back when it is idle or someone waits in line."""
        every = min(self.lease_seconds / 3, BLOCK_RETRY_SECONDS)
        lease_ms = int(self.lease_seconds * 1000)
        refreshed = time.monotonic()
        while True:
            await asyncio.sleep(every)
            try:
                state = int(await self._refresh_block(
                    keys=self.keys(block.agent)[:3], args=[block.token, lease_ms, block.size]))
                refreshed = time.monotonic()
            except Exception:  # the next beat retries; the lease covers a few misses
                log.warning("capacity block refresh failed for agent %s", block.agent,
                            exc_info=True)
                if time.monotonic() - refreshed > self.lease_seconds / 2:
                    block.open = False  # it may run out unseen: admit no more calls under it
                continue
            idle = time.monotonic() - block.last_used >= every
            if state < 0:
                log.warning("capacity block %s of agent %s ran out", block.token, block.agent)
            if state <= 0 or (idle and block.in_use == 0):
                block.open = False  # no new calls; hand it back once the running ones end
            if not block.open and block.in_use == 0:
                if self._blocks.get(block.agent) is block:
                    del self._blocks[block.agent]
                if state >= 0:
                    await _quietly(self._release_block(block))
                return

    async def _release_block(self, block: _Block) -> None:
        if self._blocks.get(block.agent) is block:
            del self._blocks[block.agent]
        holders = self.keys(block.agent)[0]
        await self.redis.zrem(holders, *[f"{block.token}#{i}" for i in range(1, block.size + 1)])
        wake = self._wake.pop(block.agent, None)
        if wake is not None:
            wake.set()

    async def _keep(self, agent: str, token: str) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                if not await self.refresh(agent, token):
                    log.warning("capacity lease of %s on agent %s ran out while the call "
                                "was still running", token, agent)
                    return
            except Exception:  # the next beat retries; the lease covers a few misses
                log.warning("capacity lease refresh failed for agent %s", agent,
                            exc_info=True)


@dataclass(eq=False)
class _Block:
    agent: str
    token: str
    size: int
    in_use: int = 0
    open: bool = True
    last_used: float = field(default_factory=time.monotonic)
    keeper: asyncio.Task[None] = field(init=False)


class LocalSlots:
    """The same FIFO capacity inside one process."""

    def __init__(self) -> None:
        self._holders: dict[str, set[str]] = {}
        self._waiting: dict[str, OrderedDict[str, asyncio.Future[None]]] = {}
        self._capacity: dict[str, int] = {}

    async def acquire(self, agent: str, capacity: int, token: str) -> None:
        self._capacity[agent] = max(1, capacity)
        holders = self._holders.setdefault(agent, set())
        waiting = self._waiting.setdefault(agent, OrderedDict())
        if not waiting and len(holders) < self._capacity[agent]:
            holders.add(token)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting[token] = future
        try:
            await future
        except asyncio.CancelledError:
            waiting.pop(token, None)
            if future.done() and not future.cancelled():  # granted just as we were cancelled
                await self.release(agent, token)
            raise

    async def release(self, agent: str, token: str) -> None:
        self._holders.get(agent, set()).discard(token)
        holders = self._holders.get(agent, set())
        waiting = self._waiting.get(agent, OrderedDict())
        while waiting and len(holders) < self._capacity.get(agent, 1):
            next_token, future = waiting.popitem(last=False)
            if not future.done():
                holders.add(next_token)
                future.set_result(None)

    async def position(self, agent: str, key: str) -> int | None:
        prefix = f"{key}#"
        if any(t.startswith(prefix) for t in self._holders.get(agent, ())):
            return 0
        for place, token in enumerate(self._waiting.get(agent, {}), start=1):
            if token.startswith(prefix):
                return place
        return None

    @contextlib.asynccontextmanager
    async def hold(self, agent: str, capacity: int, token: str) -> AsyncIterator[None]:
        await self.acquire(agent, capacity, token)
        try:
            yield
        finally:
            await self.release(agent, token)


async def _quietly(release: Any) -> None:
    """Release even while being cancelled; a lost release only costs one lease period."""
    try:
        await asyncio.shield(release)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.warning("releasing an agent slot failed; its lease will expire", exc_info=True)
