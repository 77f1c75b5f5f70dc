"""The built-in demo agents: what a process sees when it calls one."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import pytest

from app.agents.base import AgentConfig, AgentError, AgentRequest
from app.agents.demo import DEMO_AGENTS, DemoClient


def agent(name: str = "demo-test", **config: Any) -> AgentConfig:
    return AgentConfig(name=name, kind="demo", config=config)


def request(message: str = "Write about queues", attempt: int = 1) -> AgentRequest:
    return AgentRequest(message=message, execution_id="x1", step_id="draft", attempt=attempt,
                        idempotency_key=f"x1:draft:1:{attempt}")


def seeded(name: str) -> AgentConfig:
    spec = DEMO_AGENTS[name]
    config = {k: v for k, v in spec.items() if k not in ("capacity", "description")}
    return AgentConfig(name=name, kind="demo", config=config, capacity=spec["capacity"])


async def test_with_nothing_configured_the_reply_is_a_structured_object_gateways_can_read(
        ) -> None:
    reply = await DemoClient().call(agent("helper"), request("Write about " + "x" * 300))
    out = reply.output
    assert out["response"] == "helper handled: " + ("Write about " + "x" * 300)[:200]
    assert out["quality_score"] == 85 and out["score"] == 85 and out["approved"] is True
    assert out["summary"]
    assert reply.cost == Decimal(0) and reply.tokens == 0


async def test_cost_and_tokens_are_reported_as_configured() -> None:
    reply = await DemoClient().call(agent(cost="0.002", tokens=420), request())
    assert reply.cost == Decimal("0.002") and isinstance(reply.cost, Decimal)
    assert reply.tokens == 420


async def test_a_string_reply_is_parsed_like_a_real_agent_reply() -> None:
    text = 'Here you go:\n```json\n{"score": 91}\n```'
    reply = await DemoClient().call(agent(reply=text), request())
    assert reply.output == {"score": 91, "response": text}


async def test_a_plain_text_reply_stays_text_and_gets_the_message_put_in() -> None:
    reply = await DemoClient().call(agent(reply="You said: {{message}}"), request("hello"))
    assert reply.output == "You said: hello"


async def test_an_object_reply_gets_the_message_put_into_its_strings() -> None:
    configured = {"response": "Draft of {{message}}", "tags": ["{{message}}", 3], "n": 1}
    reply = await DemoClient().call(agent(reply=configured), request("cats"))
    assert reply.output == {"response": "Draft of cats", "tags": ["cats", 3], "n": 1}
    assert configured["response"] == "Draft of {{message}}"  # the config is not changed


async def test_the_first_matching_reply_wins_and_the_fixed_reply_is_the_fallback() -> None:
    a = agent(replies={"urgent": {"priority": "high"}, "urgent bug": {"priority": "low"}},
              reply={"priority": "normal"})
    client = DemoClient()
    assert (await client.call(a, request("an urgent bug"))).output == {"priority": "high"}
    assert (await client.call(a, request("a question"))).output == {"priority": "normal"}


async def test_a_message_asking_for_exact_json_gets_that_json_back() -> None:
    wanted = {"approved": False, "score": 42, "items": [1, 2]}
    message = f"Please review.\nReturn this exact JSON: {json.dumps(wanted)}\nThanks."
    reply = await DemoClient().call(agent(reply={"ignored": True}), request(message))
    assert {k: reply.output[k] for k in wanted} == wanted
    assert reply.output["response"] == json.dumps(wanted)


async def test_exact_json_may_be_fenced() -> None:
    message = 'Return this exact JSON:\n```json\n{"route": "b"}\n```'
    reply = await DemoClient().call(agent(), request(message))
    assert reply.output["route"] == "b"


@pytest.mark.parametrize("instruction", [
    "Return JSON:", "Merged B1 and B2 - return JSON:", "Return this JSON:",
    "Return ONLY this JSON (no explanation):"])
async def test_the_instruction_wordings_of_the_example_files_are_understood(
        instruction: str) -> None:
    reply = await DemoClient().call(agent(), request(f'{instruction} {{"status": "b1-done"}}'))
    assert reply.output["status"] == "b1-done"


async def test_echo_json_can_be_switched_off() -> None:
    message = 'Return this exact JSON: {"route": "b"}'
    reply = await DemoClient().call(agent(echo_json=False, reply={"route": "a"}),
                                    request(message))
    assert reply.output == {"route": "a"}


async def test_a_marker_without_json_after_it_falls_back_to_the_reply() -> None:
    reply = await DemoClient().call(agent(reply={"ok": 1}),
                                    request("Return this exact JSON: nothing here"))
    assert reply.output == {"ok": 1}


async def test_fail_times_fails_the_first_attempts_then_succeeds() -> None:
    a = agent(fail_times=2, fail_code="RATE_LIMIT", reply={"ok": True})
    client = DemoClient()
    for attempt in (1, 2):
        with pytest.raises(AgentError) as info:
            await client.call(a, request(attempt=attempt))
        assert info.value.code == "RATE_LIMIT" and info.value.retryable
        assert f"attempt {attempt}" in info.value.message
    assert (await client.call(a, request(attempt=3))).output == {"ok": True}


async def test_a_simulated_failure_is_an_agent_error_by_default() -> None:
    with pytest.raises(AgentError) as info:
        await DemoClient().call(agent(fail_times=1), request())
    assert info.value.code == "AGENT_ERROR" and info.value.retryable


async def test_latency_delays_the_reply() -> None:
    begun = time.monotonic()
    await DemoClient().call(agent(latency=0.1), request())
    assert time.monotonic() - begun >= 0.1


@pytest.mark.parametrize("bad", [{"cost": "cheap"}, {"tokens": "many"}, {"latency": -1},
                                 {"cost": "-1"}])
async def test_a_nonsense_number_is_a_config_error_retrying_cannot_fix(
        bad: dict[str, Any]) -> None:
    with pytest.raises(AgentError) as info:
        await DemoClient().call(agent(**bad), request())
    assert info.value.code == "INVALID_CONFIG" and not info.value.retryable


# --- the seeded demo agents ----------------------------------------------------------------


def test_every_seeded_demo_agent_has_a_capacity_and_a_description() -> None:
    assert {"demo-writer", "demo-analyst", "demo-reviewer", "demo-echo",
            "demo-noop"} <= set(DEMO_AGENTS)
    for name, spec in DEMO_AGENTS.items():
        assert int(spec["capacity"]) >= 1, name
        assert spec["description"], name


@pytest.mark.parametrize("name", sorted(DEMO_AGENTS))
async def test_every_seeded_demo_agent_answers_with_an_object(name: str) -> None:
    a = seeded(name)
    reply = await DemoClient().call(AgentConfig(a.name, "demo", {**a.config, "latency": 0}),
                                    request())
    assert isinstance(reply.output, dict)


async def test_the_writer_passes_a_quality_gate_of_80() -> None:
    reply = await DemoClient().call(seeded("demo-writer"), request())
    assert reply.output["quality_score"] >= 80 and reply.cost > 0 and reply.tokens > 0


async def test_the_analyst_replies_with_fields_a_triage_process_routes_on() -> None:
    out = (await DemoClient().call(seeded("demo-analyst"), request("Ticket: printer"))).output
    assert out["quality_score"] == 85 and out["score"] == 85
    assert out["needs_escalation"] is False
    assert out["category"] and out["priority"] and out["summary"]
    assert "Ticket: printer" in out["response"]


async def test_the_reviewer_approves() -> None:
    out = (await DemoClient().call(seeded("demo-reviewer"), request())).output
    assert out["approved"] is True and out["score"] >= 80


async def test_the_echo_agent_echoes_the_message_or_the_json_asked_for() -> None:
    echo = seeded("demo-echo")
    assert (await DemoClient().call(echo, request("hi there"))).output == \
        {"response": "hi there"}
    asked = await DemoClient().call(echo, request('Return this exact JSON: {"a": 1}'))
    assert asked.output["a"] == 1


async def test_the_noop_agent_is_instant_and_free() -> None:
    reply = await DemoClient().call(seeded("demo-noop"), request())
    assert reply.output == {"ok": True} and reply.cost == 0 and reply.tokens == 0
    assert seeded("demo-noop").config["latency"] == 0
