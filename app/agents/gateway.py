"""The agent gateway: the one way a step calls an agent.

It picks the client for the agent's kind, waits for a free slot of the agent's capacity
(shared across every worker through Redis, or inside this process without it), applies the
timeout, and turns anything unexpected into an `AgentError` whose message a user can read.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Mapping
from typing import Any

from app.agents.base import AgentClient, AgentConfig, AgentError, AgentReply, AgentRequest
from app.agents.capacity import LocalSlots, RedisSlots, Slots

__all__ = ["AgentGateway", "default_clients", "test_agent"]

log = logging.getLogger("trinity.agents")

PING = "This is a connection test from Trinity Processes. Reply with a short greeting."


def default_clients() -> dict[str, AgentClient]:
    """One client per agent kind."""
    from app.agents.command import CommandClient
    from app.agents.demo import DemoClient
    from app.agents.http import HttpClient
    from app.agents.openai import OpenAIClient

    return {"demo": DemoClient(), "http": HttpClient(), "openai": OpenAIClient(),
            "command": CommandClient()}


class AgentGateway:
    """Calls agents within their capacity and timeout.

    `redis`: a `redis.asyncio.Redis` shared by all workers (capacity holds across
    processes), or None for an in-process limit. `slots` replaces the capacity store.
    `block_size`: how many calls of one agent this process may run under one block of
    slots taken at once (`RedisSlots`); 0 takes a slot per call.
    """

    def __init__(self, redis: Any | None = None,
                 clients: Mapping[str, AgentClient] | None = None, *,
                 slots: Slots | None = None, block_size: int = 0) -> None:
        self.clients = dict(clients) if clients is not None else default_clients()
        self.slots: Slots = slots or (RedisSlots(redis, block_size=block_size)
                                      if redis is not None else LocalSlots())

    async def call(self, agent: AgentConfig, request: AgentRequest) -> AgentReply:
        """Call the agent once; raises AgentError (never anything else, but cancellation)."""
        client = self.clients.get(agent.kind)
        if client is None:
            known = ", ".join(sorted(self.clients)) or "none"
            raise AgentError("INVALID_CONFIG", f"agent '{agent.name}' has kind "
                             f"'{agent.kind}', which this worker cannot call (known: {known})",
                             retryable=False)
        token = f"{request.idempotency_key}#{uuid.uuid4().hex[:12]}"
        begun = time.monotonic()
        waited: float | None = None
        try:
            async with asyncio.timeout(request.timeout):
                async with self.slots.hold(agent.name, agent.capacity, token):
                    waited = time.monotonic() - begun
                    return await self._invoke(client, agent, request)
        except TimeoutError:
            if waited is not None:
                raise AgentError("TIMEOUT", f"agent '{agent.name}' did not reply within "
                                 f"{request.timeout:g}s (of which {waited:.1f}s waiting for "
                                 "a free slot)") from None
            raise AgentError("TIMEOUT", f"agent '{agent.name}' was busy: no free slot "
                             f"(capacity {agent.capacity}) within {request.timeout:g}s"
                             ) from None

    async def queue_position(self, agent_name: str, idempotency_key: str) -> int | None:
        """0 while the call runs, n ≥ 1 while n-th in line, None when not queued (a call
        running under a block of slots has no lease of its own: None too)."""
        return await self.slots.position(agent_name, idempotency_key)

    async def aclose(self) -> None:
        close_slots = getattr(self.slots, "aclose", None)
        if close_slots is not None:
            await close_slots()
        for client in self.clients.values():
            close = getattr(client, "aclose", None)
            if close is not None:
                await close()

    async def _invoke(self, client: AgentClient, agent: AgentConfig,
                      request: AgentRequest) -> AgentReply:
        limit = agent.timeout_seconds or math.inf
        try:
            if limit == math.inf:
                return await client.call(agent, request)
            return await asyncio.wait_for(client.call(agent, request), limit)
        except AgentError:
            raise
        except TimeoutError:
            raise AgentError("TIMEOUT", f"agent '{agent.name}' did not reply within "
                             f"{min(limit, request.timeout):g}s") from None
        except Exception as e:
            log.warning("agent %s (%s) failed unexpectedly", agent.name, agent.kind,
                        exc_info=True)
            raise AgentError("AGENT_ERROR", f"agent '{agent.name}' failed: "
                             f"{type(e).__name__}: {e}"[:500]) from None


async def test_agent(agent: AgentConfig, gateway: AgentGateway | None = None,
                     timeout: float = 30.0) -> tuple[bool, str]:
    """Send a short ping; (True, what it replied) or (False, why it failed)."""
    own = gateway is None
    gw = gateway or AgentGateway(None)
    key = f"test:{agent.name}:{uuid.uuid4().hex[:8]}"
    request = AgentRequest(message=PING, execution_id="test", step_id="ping", attempt=1,
                           idempotency_key=key, context={"test": True},
                           timeout=min(timeout, agent.timeout_seconds or timeout))
    begun = time.monotonic()
    try:
        reply = await gw.call(agent, request)
    except AgentError as e:
        return False, f"{e.code}: {e.message}"
    finally:
        if own:
            await gw.aclose()
    output = reply.output
    text = output.get("response", output) if isinstance(output, Mapping) else output
    return True, f"replied in {time.monotonic() - begun:.2f}s: {str(text)[:200]}"
