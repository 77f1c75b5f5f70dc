"""Timers and sub-processes on the real runtime: durable, never holding a worker."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.services import InvalidDefinition
from tests.integration.conftest import wait_for, wait_terminal

pytestmark = pytest.mark.integration

CHILD = """
name: child
input:
  topic: {type: string, required: true}
steps:
  - id: work
    type: agent_task
    agent: demo-writer
    message: "Work on {{input.topic}}"
outputs:
  - name: result
    source: "{{steps.work.output.response}}"
"""

PARENT = """
name: parent
steps:
  - id: prepare
    type: agent_task
    agent: demo-echo
    message: prepared
  - id: delegate
    type: sub_process
    process_name: child
    depends_on: prepare
    input_mapping:
      topic: "the {{steps.prepare.output.response}} topic"
  - id: finish
    type: agent_task
    agent: demo-echo
    depends_on: delegate
    message: "Child said: {{steps.delegate.output.result}}"
"""


async def _start(c: Any, text: str, data: dict[str, Any] | None = None) -> Any:
    imported = await c.definitions.import_text(text, publish=True)
    return await c.executions.start(imported.row, data or {}, "test")


async def test_a_parent_waits_for_its_child_and_gets_its_outputs_and_cost(
        container: Any, in_process_worker: Any) -> None:
    await container.definitions.import_text(CHILD, publish=True)
    x = await _start(container, PARENT)
    final = await wait_terminal(container, x.id)
    assert final.status.value == "completed", final.error
    step = final.steps["delegate"]
    _row, child = await container.executions.get(step.child_id)
    assert child.parent_id == x.id and child.input == {"topic": "the prepared topic"}
    assert step.output["result"] == child.outputs["result"]
    assert "Child said: " + child.outputs["result"] == final.steps["finish"].input
    assert step.cost == child.cost and final.cost >= child.cost > 0


async def test_fire_and_forget_goes_on_without_waiting(container: Any,
                                                       in_process_worker: Any) -> None:
    await container.definitions.import_text(CHILD, publish=True)
    x = await _start(container, PARENT.replace("    input_mapping:",
                                               "    wait_for_completion: false\n"
                                               "    input_mapping:"))
    final = await wait_terminal(container, x.id)
    assert final.steps["delegate"].output["status"] == "started"
    child_id = final.steps["delegate"].output["execution_id"]
    child = await wait_terminal(container, child_id)
    assert child.status.value == "completed"


async def test_a_parent_resumes_when_its_child_waited_for_an_approval(
        container: Any, in_process_worker: Any) -> None:
    await container.definitions.import_text(CHILD.replace("""outputs:""", """  - id: ok
    type: human_approval
    depends_on: work
    assignees: [alice]
outputs:"""), publish=True)
    x = await _start(container, PARENT)

    async def request() -> Any:
        rows = await container.approvals.list()
        return rows[0][0] if rows else None
    approval = await wait_for(request, 30, what="the child's approval")
    _row, parent = await container.executions.get(x.id)
    assert parent.steps["delegate"].status.value == "waiting_subprocess"
    await container.approvals.decide(approval.id, "approved", "alice")
    final = await wait_terminal(container, x.id)
    assert final.status.value == "completed"


async def test_a_failed_child_fails_the_parent_step(container: Any,
                                                    in_process_worker: Any) -> None:
    await container.definitions.import_text(CHILD.replace("demo-writer", "nobody")
                                            .replace("message:", "retry: {max_attempts: 1}\n"
                                                     "    message:"), publish=True)
    x = await _start(container, PARENT)
    final = await wait_terminal(container, x.id)
    assert final.status.value == "failed"
    assert final.steps["delegate"].error["code"] == "SUBPROCESS_FAILED"


async def test_indirect_recursion_through_stored_processes_is_refused(container: Any) -> None:
    await container.definitions.import_text("""
name: ping
steps:
  - id: call
    type: sub_process
    process_name: pong
""")
    with pytest.raises(InvalidDefinition) as info:
        await container.definitions.import_text("""
name: pong
steps:
  - id: call
    type: sub_process
    process_name: ping
""")
    assert "pong → ping → pong" in str(info.value)


async def test_a_timer_due_while_no_worker_runs_fires_once_on_start(
        container: Any, worker_factory: Any) -> None:
    text = """
name: wait-a-bit
steps:
  - id: pause
    type: timer
    delay: 2s
  - id: after
    type: agent_task
    agent: demo-echo
    depends_on: pause
    message: later
"""
    x = await _start(container, text)  # no worker yet: the timer job waits in Redis
    _row, waiting = await container.executions.get(x.id)
    assert waiting.steps["pause"].status.value == "waiting_timer"

    async def overdue() -> bool:
        return container.runtime.clock() > waiting.steps["pause"].due_at + timedelta(seconds=1)
    await wait_for(overdue, 10, what="the timer to be overdue")
    worker_factory()
    final = await wait_terminal(container, x.id, 60)
    assert final.status.value == "completed"
    events, _ = await container.executions.history(x.id)
    assert [e.name for e in events].count("timer_fired") == 1


async def test_an_hours_long_timer_waits_without_a_step_timeout(
        container: Any, in_process_worker: Any) -> None:
    x = await _start(container, """
name: long-wait
steps:
  - id: pause
    type: timer
    delay: 3h
""")
    _row, waiting = await container.executions.get(x.id)
    st = waiting.steps["pause"]
    assert st.status.value == "waiting_timer"
    assert timedelta(hours=2, minutes=59) < st.due_at - st.started_at <= timedelta(hours=3)
    report = await container.recovery.sweep(full=True)
    assert x.id not in report.failed_idle
