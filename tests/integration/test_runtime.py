"""The durable runtime end to end: real database (SQLite and PostgreSQL), real Redis, a real
arq worker running in the test's event loop, built-in demo agents."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.services import InvalidInput, ServiceError
from engine.events import event_from_dict
from engine.execution import ProcessExecution
from tests.integration.conftest import wait_terminal

pytestmark = pytest.mark.integration

CHAIN = """
name: chain
version: 1
input:
  topic: {type: string, required: true}
steps:
  - id: draft
    type: agent_task
    agent: demo-writer
    message: "Write about {{input.topic}}"
  - id: check
    type: gateway
    depends_on: draft
    routes:
      - condition: "steps.draft.output.quality_score >= 80"
        target: publish
    default_route: rework
  - id: publish
    type: agent_task
    agent: demo-echo
    depends_on: check
    message: "Publishing: {{steps.draft.output.response}}"
  - id: rework
    type: agent_task
    agent: demo-echo
    depends_on: check
    message: "Rework"
  - id: done
    type: notification
    depends_on: [publish, rework]
    channel: webhook
    webhook_url: "${TRINITY_TEST_HOOK}"
    message: "done with {{input.topic}}"
outputs:
  - name: published
    source: "{{steps.publish.output}}"
"""


async def _start(c: Any, text: str, data: dict[str, Any] | None = None) -> ProcessExecution:
    imported = await c.definitions.import_text(text, publish=True)
    return await c.executions.start(imported.row, data or {}, "test")


async def test_a_process_runs_to_completion_through_the_real_worker(
        container: Any, in_process_worker: Any, monkeypatch: pytest.MonkeyPatch,
        hook_server: Any) -> None:
    monkeypatch.setenv("TRINITY_TEST_HOOK", hook_server.url)
    x = await _start(container, CHAIN, {"topic": "queues"})
    final = await wait_terminal(container, x.id)
    assert final.status.value == "completed", final.error
    statuses = {s: st.status.value for s, st in final.steps.items()}
    assert statuses == {"draft": "completed", "check": "completed", "publish": "completed",
                        "rework": "skipped", "done": "completed"}
    assert final.steps["rework"].skip_reason == "route_not_taken"
    assert isinstance(final.outputs["published"], dict)
    assert hook_server.received[0]["message"] == "done with queues"


async def test_the_stored_events_replay_to_the_stored_state(
        container: Any, in_process_worker: Any, monkeypatch: pytest.MonkeyPatch,
        hook_server: Any) -> None:
    monkeypatch.setenv("TRINITY_TEST_HOOK", hook_server.url)
    x = await _start(container, CHAIN, {"topic": "events"})
    final = await wait_terminal(container, x.id)
    events, runs = await container.executions.history(x.id)
    replayed = ProcessExecution.replay(event_from_dict(e.data) for e in events)
    assert json.loads(json.dumps(replayed.to_dict(), default=str)) == \
        json.loads(json.dumps(final.to_dict(), default=str))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    completed = [(r.step_id, r.attempt) for r in runs if r.status == "completed"]
    assert sorted(completed) == [("done", 1), ("draft", 1), ("publish", 1)]


async def test_bad_input_is_refused_with_every_field_named_and_nothing_stored(
        container: Any) -> None:
    imported = await container.definitions.import_text(CHAIN, publish=True)
    with pytest.raises(InvalidInput) as info:
        await container.executions.start(imported.row, {"topik": "x"}, "test")
    message = str(info.value)
    assert "'topik'" in message and "did you mean 'topic'" in message
    assert "input 'topic': is required" in message
    assert await container.executions.list() == []


async def test_a_changed_definition_with_the_same_version_is_refused_once_used(
        container: Any, in_process_worker: Any, monkeypatch: pytest.MonkeyPatch,
        hook_server: Any) -> None:
    monkeypatch.setenv("TRINITY_TEST_HOOK", hook_server.url)
    x = await _start(container, CHAIN, {"topic": "v"})
    await wait_terminal(container, x.id)
    with pytest.raises(ServiceError, match="already exists with different content"):
        await container.definitions.import_text(CHAIN.replace("Rework", "Redo"), publish=True)


async def test_an_unknown_agent_fails_the_step_with_a_clear_error(
        container: Any, in_process_worker: Any) -> None:
    text = """
name: lost-agent
steps:
  - id: ask
    type: agent_task
    agent: nobody-home
    message: hello
    retry: {max_attempts: 2, initial_delay: 0.2s}
"""
    x = await _start(container, text)
    final = await wait_terminal(container, x.id)
    assert final.status.value == "failed"
    assert final.error["code"] == "AGENT_NOT_FOUND"
    assert "no agent named 'nobody-home'" in final.error["message"]
    attempts = final.steps["ask"].attempts
    assert [a.error_code for a in attempts] == ["AGENT_NOT_FOUND", "AGENT_NOT_FOUND"]


async def test_cancel_stops_a_running_step_and_nothing_runs_after_it(
        container: Any, in_process_worker: Any) -> None:
    from app.agents_admin import upsert_agent
    from tests.integration.conftest import wait_for

    await upsert_agent(container.db, "slowpoke", "demo", {"latency": 30, "reply": "late"})
    text = """
name: slow
steps:
  - id: wait
    type: agent_task
    agent: slowpoke
    message: take your time
  - id: after
    type: agent_task
    agent: demo-echo
    depends_on: wait
    message: never
"""
    x = await _start(container, text)

    async def running() -> bool:
        _row, cur = await container.executions.get(x.id)
        return cur.steps["wait"].status.value == "running"
    await wait_for(running, 20, what="the slow step to run")
    await container.executions.cancel(x.id, "tester", "enough")
    final = await wait_terminal(container, x.id)
    assert final.status.value == "cancelled"
    assert final.steps["wait"].status.value == "cancelled"
    assert final.steps["after"].status.value == "pending"
    assert in_process_worker is not None


FLAKY = """
name: flaky
steps:
  - id: first
    type: agent_task
    agent: demo-echo
    message: one
  - id: shaky
    type: agent_task
    agent: shaky
    depends_on: first
    message: two
    retry: {max_attempts: 1}
  - id: last
    type: agent_task
    agent: demo-echo
    depends_on: shaky
    message: three
"""


async def test_a_failed_step_retried_in_place_lets_the_execution_finish(
        container: Any, in_process_worker: Any) -> None:
    from app.agents_admin import upsert_agent
    from tests.support.http import Receiver

    calls: list[int] = []

    def first_call_fails(path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        calls.append(1)
        return (500, {"error": "boom"}) if len(calls) == 1 else (200, {"output": "fine"})

    server = Receiver(first_call_fails)
    await upsert_agent(container.db, "shaky", "http", {"url": server.url})
    x = await _start(container, FLAKY)
    failed = await wait_terminal(container, x.id)
    assert failed.status.value == "failed"
    assert failed.steps["shaky"].error["code"] == "AGENT_ERROR"
    await container.executions.resume(x.id, "operator")
    final = await wait_terminal(container, x.id)
    assert final.status.value == "completed"
    assert [a.status for a in final.steps["shaky"].attempts] == ["failed", "completed"]
    assert len(final.steps["first"].attempts) == 1  # finished work is not redone
    server.close()


async def test_retry_starts_a_new_execution_with_the_same_input(
        container: Any, in_process_worker: Any, monkeypatch: pytest.MonkeyPatch,
        hook_server: Any) -> None:
    monkeypatch.setenv("TRINITY_TEST_HOOK", hook_server.url)
    x = await _start(container, CHAIN, {"topic": "again"})
    await wait_terminal(container, x.id)
    again = await container.executions.retry(x.id, "operator")
    final = await wait_terminal(container, again.id)
    row, _ = await container.executions.get(again.id)
    assert again.id != x.id and row.retry_of == x.id
    assert final.input == {"topic": "again"} and final.status.value == "completed"


async def test_a_paused_execution_dispatches_nothing_until_resumed(
        container: Any, in_process_worker: Any) -> None:
    from app.agents_admin import upsert_agent
    from tests.integration.conftest import wait_for

    # long enough that the pause lands while the first step runs, even on a busy machine
    await upsert_agent(container.db, "steady", "demo", {"latency": 2.0})
    text = FLAKY.replace("agent: shaky", "agent: steady").replace(
        "agent: demo-echo", "agent: steady", 1)  # the first step is the slow one
    x = await _start(container, text)

    async def first_running() -> bool:
        _row, cur = await container.executions.get(x.id)
        return cur.steps["first"].status.value == "running"
    await wait_for(first_running, 20, what="the first step")
    await container.executions.pause(x.id, "operator")

    async def first_done() -> Any:
        _row, cur = await container.executions.get(x.id)
        return cur if cur.steps["first"].status.value == "completed" else None
    paused = await wait_for(first_done, 20, what="the running step to finish while paused")
    assert paused.status.value == "paused"
    assert paused.steps["shaky"].status.value == "pending"  # nothing new was dispatched
    await container.executions.resume(x.id, "operator")
    final = await wait_terminal(container, x.id)
    assert final.status.value == "completed"


async def test_a_malformed_definition_is_refused_and_nothing_is_stored(container: Any) -> None:
    from app.services import InvalidDefinition

    with pytest.raises(InvalidDefinition) as info:
        await container.definitions.import_text("name: broken\nsteps:\n  - id: a\n"
                                                "    type: agent_task\n    agnet: x\n")
    assert any(i.code == "unknown-key" and i.line == 5 for i in info.value.issues)
    assert await container.definitions.list() == []


async def test_recovery_fails_executions_idle_past_the_cutoff(
        container: Any, settings: Any) -> None:
    from datetime import timedelta

    from app.recovery import Recovery

    x = await _start(container, FLAKY.replace("agent: shaky", "agent: demo-echo"))
    # no worker runs, so the execution sits with a queued step; look two days ahead
    later = container.runtime.clock() + timedelta(days=2)
    container.runtime.clock = lambda: later
    report = await Recovery(container.runtime, container.dispatcher,
                            timedelta(hours=24)).sweep(full=True)
    assert report.failed_idle == [x.id]
    _row, final = await container.executions.get(x.id)
    assert final.status.value == "failed" and final.error["code"] == "IDLE_TIMEOUT"


async def test_a_reply_that_breaks_the_output_schema_is_retried_with_the_reason(
        container: Any, in_process_worker: Any) -> None:
    from app.agents_admin import upsert_agent
    from tests.support.http import Receiver

    def answer(path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        if "not accepted" in body["message"]:
            return 200, {"output": {"score": 7}}
        return 200, {"output": {"score": "high"}}

    server = Receiver(answer)
    await upsert_agent(container.db, "scorer", "http", {"url": server.url})
    text = """
name: schema
steps:
  - id: rate
    type: agent_task
    agent: scorer
    message: Rate it
    retry: {max_attempts: 2, initial_delay: 0.1s}
    output_schema:
      type: object
      required: [score]
      properties: {score: {type: integer}}
"""
    x = await _start(container, text)
    final = await wait_terminal(container, x.id)
    server.close()
    assert final.status.value == "completed"
    first, _second = final.steps["rate"].attempts
    assert first.error_code == "OUTPUT_INVALID" and "score: 'high' is not of type" in \
        first.error_message
    assert "Your previous reply was not accepted" in server.received[1]["message"]
    assert final.steps["rate"].output == {"score": 7}


async def test_a_failed_execution_runs_its_compensations_newest_first(
        container: Any, in_process_worker: Any) -> None:
    from app.agents_admin import upsert_agent
    from tests.integration.conftest import wait_for
    from tests.support.http import Receiver

    hook_server = Receiver(lambda path, body, headers: (200, {"output": "done"}))

    await upsert_agent(container.db, "inventory", "http", {"url": hook_server.url + "/inv"})
    text = f"""
name: order
steps:
  - id: reserve
    type: agent_task
    agent: inventory
    message: "Reserve {{{{input.sku}}}}"
    compensation:
      type: agent_task
      agent: inventory
      message: "ROLLBACK reserve {{{{input.sku}}}}"
  - id: charge
    type: notification
    depends_on: reserve
    channel: webhook
    webhook_url: "{hook_server.url}/charge"
    message: "charge {{{{input.sku}}}}"
    compensation:
      type: notification
      channel: webhook
      webhook_url: "{hook_server.url}/refund"
      message: "refund {{{{input.sku}}}}"
  - id: ship
    type: agent_task
    agent: nobody-ships
    depends_on: charge
    message: ship
    retry: {{max_attempts: 1}}
"""
    x = await _start(container, text, {"sku": "A-1"})
    final = await wait_terminal(container, x.id)
    assert final.status.value == "failed" and final.error["step_id"] == "ship"

    async def compensated() -> Any:
        _row, cur = await container.executions.get(x.id)
        return cur if all(c["status"] == "completed" for c in cur.compensations) else None
    done = await wait_for(compensated, 30, what="the compensations")
    assert [c["step_id"] for c in done.compensations] == ["charge", "reserve"]
    paths = [p for p, _, _ in hook_server.requests]
    assert paths == ["/inv", "/charge", "/refund", "/inv"]
    assert hook_server.received[-1]["message"] == "ROLLBACK reserve A-1"
    assert hook_server.received[2]["message"] == "refund A-1"
    hook_server.close()
