"""app/live.py against a real Redis: one subscription per process fans committed events out
to the pages that asked for them, and comes back after Redis restarts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from redis.asyncio import Redis

from app.live import ALL, LiveHub
from app.queue import EVENTS_CHANNEL, ArqDispatcher
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration


async def _numsub(client: Redis) -> int:
    return int(dict(await client.pubsub_numsub(EVENTS_CHANNEL))[EVENTS_CHANNEL.encode()])


async def test_events_reach_the_subscribers_of_their_execution_and_of_all(
        redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    hub = LiveHub(client)
    got: dict[str, list[str]] = {"a": [], "b": [], "all": []}
    hub.subscribe("exec-a", lambda m: got["a"].append(m["event"]))

    async def slow(m: dict[str, Any]) -> None:  # async subscribers are awaited
        await asyncio.sleep(0)
        got["b"].append(m["event"])
    hub.subscribe("exec-b", slow)
    hub.subscribe(ALL, lambda m: got["all"].append(m["execution_id"]))
    await hub.wait_ready()

    await client.publish(EVENTS_CHANNEL, '{"execution_id": "exec-a", "event": "step_started"}')
    await client.publish(EVENTS_CHANNEL, '{"execution_id": "exec-b", "event": "step_failed"}')
    await client.publish(EVENTS_CHANNEL, "not json")

    await wait_for(lambda: len(got["all"]) == 2, 5, what="fan-out")
    assert got["a"] == ["step_started"]
    assert got["b"] == ["step_failed"]
    assert got["all"] == ["exec-a", "exec-b"]
    await hub.close()
    await client.aclose()


async def test_many_pages_share_one_redis_subscription_and_a_closed_one_hears_nothing(
        redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    hub = LiveHub(client)
    heard: list[int] = []
    subs = [hub.subscribe("x", lambda m, i=i: heard.append(i)) for i in range(20)]
    await hub.wait_ready()

    assert await _numsub(client) == 1
    for s in subs[1:]:
        s.close()
    await client.publish(EVENTS_CHANNEL, '{"execution_id": "x", "event": "e"}')
    await wait_for(lambda: heard, 5, what="delivery")
    await asyncio.sleep(0.1)
    assert heard == [0]
    assert hub.subscribers == 1
    await hub.close()
    await client.aclose()


async def test_a_failing_subscriber_does_not_stop_the_others(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    hub = LiveHub(client)
    heard: list[str] = []

    def broken(m: dict[str, Any]) -> None:
        raise RuntimeError("page bug")
    hub.subscribe("x", broken)
    hub.subscribe("x", lambda m: heard.append(m["event"]))
    await hub.wait_ready()

    await client.publish(EVENTS_CHANNEL, '{"execution_id": "x", "event": "e1"}')
    await client.publish(EVENTS_CHANNEL, '{"execution_id": "x", "event": "e2"}')

    await wait_for(lambda: len(heard) == 2, 5, what="both events")
    await hub.close()
    await client.aclose()


async def test_a_message_may_carry_several_events_in_order(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    hub = LiveHub(client)
    heard: list[tuple[str, str]] = []
    hub.subscribe(ALL, lambda m: heard.append((m["execution_id"], m["event"])))
    await hub.wait_ready()

    await client.publish(EVENTS_CHANNEL, '[{"execution_id": "x", "event": "e1"}, 7, '
                                         '{"execution_id": "y", "event": "e2"}]')

    await wait_for(lambda: len(heard) == 2, 5, what="both events of the array")
    assert heard == [("x", "e1"), ("y", "e2")]  # 7 is not an event: nobody's page gets it
    await hub.close()
    await client.aclose()


async def test_concurrent_publishes_share_messages_and_keep_each_executions_order(
        redis_url: str) -> None:
    from datetime import UTC, datetime

    from app.queue import connect
    from engine.events import StepCompleted, StepStarted

    arq = await connect(redis_url)
    dispatcher = ArqDispatcher(arq, "trinity:test:outbox")
    client = Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(EVENTS_CHANNEL)
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    now = datetime.now(UTC)

    await asyncio.gather(*(dispatcher.publish(f"exec-{i}", [
        StepStarted(at=now, step_id="a"), StepCompleted(at=now, step_id="a")])
        for i in range(30)))

    messages: list[Any] = []
    while sum(len(m) for m in messages) < 60:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
        assert message is not None, f"only {messages} arrived"
        messages.append(json.loads(message["data"]))
    events = [(e["execution_id"], e["event"]) for m in messages for e in m]
    for i in range(30):
        assert [name for x, name in events if x == f"exec-{i}"] == [
            "step_started", "step_completed"]
    assert len(messages) < 30  # concurrent callers went out together
    await pubsub.aclose()
    await client.aclose()
    await arq.aclose()


async def test_the_runtime_publishes_what_the_live_view_needs(container: Any) -> None:
    from app.live import hub_for

    heard: list[dict[str, Any]] = []
    hub = hub_for(container)
    await container.guard.system().save_definition(
        "name: one\nsteps:\n  - id: a\n    type: agent_task\n    agent: demo-echo\n"
        "    message: hi\n", publish=True)
    row = await container.definitions.find("one")
    hub.subscribe(ALL, heard.append)
    await hub.wait_ready()

    x = await container.executions.start(row, {})
    await container.executions.cancel(x.id)

    await wait_for(lambda: any(m["event"] == "execution_cancelled" for m in heard), 5,
                   what="the cancellation")
    assert {m["execution_id"] for m in heard} == {x.id}
    assert heard[0]["event"] == "execution_created"
    await hub.close()


async def test_the_hub_reconnects_after_redis_restarts_and_asks_pages_to_resync(
        private_redis: Any, redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    hub = LiveHub(client)
    heard: list[str] = []
    hub.subscribe("x", lambda m: heard.append(m["event"]))
    await hub.wait_ready()

    await client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    await wait_for(lambda: "resync" in heard, 10, what="a resync after the reconnect")
    await client.publish(EVENTS_CHANNEL, '{"execution_id": "x", "event": "after"}')

    await wait_for(lambda: "after" in heard, 5, what="delivery after the reconnect")
    await hub.close()
    await client.aclose()
