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
