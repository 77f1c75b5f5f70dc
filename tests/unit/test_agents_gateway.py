"""The agent gateway inside one process (no Redis): kinds, capacity, timeouts, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from app.agents.base import AgentConfig, AgentError, AgentReply, AgentRequest
from app.agents.demo import DemoClient
from app.agents.gateway import AgentGateway, default_clients
from app.agents.gateway import test_agent as ping_agent  # (not collected as a test)


class GatedClient:
    """An agent kind whose calls run until the test opens their gate."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self.gates: dict[str, asyncio.Event] = {}
        self.closed = False

    def gate(self, message: str) -> asyncio.Event:
        return self.gates.setdefault(message, asyncio.Event())

    async def call(self, agent: AgentConfig, request: AgentRequest) -> AgentReply:
        self.started.append(request.message)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await self.gate(request.message).wait()
        finally:
            self.running -= 1
        return AgentReply(output={"done": request.message})

    async def aclose(self) -> None:
        self.closed = True


class Broken:
    async def call(self, agent: AgentConfig, request: AgentRequest) -> AgentReply:
        raise RuntimeError("socket exploded")


def agent(kind: str = "gated", capacity: int = 1, timeout: float | None = None,
          **config: Any) -> AgentConfig:
    return AgentConfig(name="worker-bee", kind=kind, config=config, capacity=capacity,
                       timeout_seconds=timeout)


def request(message: str, timeout: float = 30.0) -> AgentRequest:
    return AgentRequest(message=message, execution_id="x1", step_id="s", attempt=1,
                        idempotency_key=f"key-{message}", timeout=timeout)


async def until(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    """Wait for a (sync or async) condition; fail after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return
            await asyncio.sleep(0.005)


async def _queued(gw: AgentGateway, name: str, key: str) -> bool:
    return await gw.queue_position(name, key) is not None


async def test_an_unknown_kind_is_a_config_error_retrying_cannot_fix() -> None:
    gw = AgentGateway(None, {"demo": DemoClient()})
    with pytest.raises(AgentError) as info:
        await gw.call(agent(kind="carrier-pigeon"), request("hi"))
    assert info.value.code == "INVALID_CONFIG" and not info.value.retryable
    assert "carrier-pigeon" in info.value.message


async def test_capacity_one_runs_calls_one_at_a_time_in_arrival_order() -> None:
    client = GatedClient()
    gw = AgentGateway(None, {"gated": client})
    a = agent()
    calls = {}
    for m in ("first", "second", "third"):
        calls[m] = asyncio.create_task(gw.call(a, request(m)))
        await until(lambda m=m: _queued(gw, a.name, f"key-{m}"))
    assert client.started == ["first"]
    assert await gw.queue_position(a.name, "key-first") == 0
    assert await gw.queue_position(a.name, "key-second") == 1
    assert await gw.queue_position(a.name, "key-third") == 2
    for m in ("first", "second", "third"):
        client.gate(m).set()
        assert (await calls[m]).output == {"done": m}
    assert client.started == ["first", "second", "third"] and client.most_at_once == 1
    assert await gw.queue_position(a.name, "key-third") is None


async def test_capacity_two_never_runs_more_than_two_at_once() -> None:
    client = GatedClient()
    gw = AgentGateway(None, {"gated": client})
    names = [f"c{i}" for i in range(5)]
    tasks = [asyncio.create_task(gw.call(agent(capacity=2), request(m))) for m in names]
    await until(lambda: len(client.started) == 2)
    for m in names:
        client.gate(m).set()
    await asyncio.gather(*tasks)
    assert client.most_at_once == 2 and client.started == names


async def test_a_cancelled_waiter_leaves_the_line() -> None:
    client = GatedClient()
    gw = AgentGateway(None, {"gated": client})
    a = agent()
    first = asyncio.create_task(gw.call(a, request("first")))
    await until(lambda: client.started == ["first"])
    second = asyncio.create_task(gw.call(a, request("second")))
    third = asyncio.create_task(gw.call(a, request("third")))
    await until(lambda: _queued(gw, a.name, "key-third"))
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert await gw.queue_position(a.name, "key-second") is None
    assert await gw.queue_position(a.name, "key-third") == 1
    client.gate("first").set()
    client.gate("third").set()
    await first
    assert (await third).output == {"done": "third"}
    assert client.started == ["first", "third"]


async def test_a_failed_or_cancelled_call_gives_its_slot_back() -> None:
    gated = GatedClient()
    gw = AgentGateway(None, {"broken": Broken(), "gated": gated})
    with pytest.raises(AgentError):
        await gw.call(agent(kind="broken"), request("x"))
    running = asyncio.create_task(gw.call(agent(), request("stuck")))
    await until(lambda: gated.started == ["stuck"])
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    gated.gate("next").set()
    async with asyncio.timeout(5):
        assert (await gw.call(agent(), request("next"))).output == {"done": "next"}


async def test_an_unexpected_exception_becomes_a_retryable_agent_error_without_traceback(
        ) -> None:
    gw = AgentGateway(None, {"broken": Broken()})
    with pytest.raises(AgentError) as info:
        await gw.call(agent(kind="broken"), request("x"))
    assert info.value.code == "AGENT_ERROR" and info.value.retryable
    assert "socket exploded" in info.value.message
    assert "Traceback" not in info.value.message


async def test_the_agents_own_timeout_cuts_a_slow_call() -> None:
    gw = AgentGateway(None, {"demo": DemoClient()})
    with pytest.raises(AgentError) as info:
        async with asyncio.timeout(5):
            await gw.call(agent(kind="demo", timeout=0.05, latency=30), request("slow"))
    assert info.value.code == "TIMEOUT" and info.value.retryable
    assert "0.05s" in info.value.message


async def test_the_requests_timeout_covers_waiting_for_a_busy_agent() -> None:
    client = GatedClient()
    gw = AgentGateway(None, {"gated": client})
    hog = asyncio.create_task(gw.call(agent(), request("hog")))
    await until(lambda: client.started == ["hog"])
    with pytest.raises(AgentError) as info:
        await gw.call(agent(), request("patient", timeout=0.05))
    assert info.value.code == "TIMEOUT" and "busy" in info.value.message
    assert await gw.queue_position("worker-bee", "key-patient") is None
    client.gate("hog").set()
    await hog


async def test_test_agent_reports_what_the_agent_replied() -> None:
    ok, message = await ping_agent(agent(kind="demo", reply="pong"))
    assert ok and "pong" in message


async def test_test_agent_reports_the_error_code_and_message() -> None:
    ok, message = await ping_agent(agent(kind="demo", fail_times=1, fail_code="RATE_LIMIT"))
    assert not ok and message.startswith("RATE_LIMIT:")


async def test_the_default_clients_cover_every_kind_and_close_cleanly() -> None:
    clients = default_clients()
    assert set(clients) == {"demo", "http", "openai", "command"}
    gated = GatedClient()
    gw = AgentGateway(None, {**clients, "gated": gated})
    await gw.aclose()
    assert gated.closed
