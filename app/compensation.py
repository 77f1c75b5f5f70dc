"""Running the compensations of a failed execution, newest completed step first."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from app.agents.base import AgentError, AgentRequest
from app.notify import NotifyError, render
from engine.context import build_context
from engine.definition import ProcessDefinition
from engine.execution import Command, ProcessExecution
from engine.expressions import render_template

__all__ = ["run_compensations"]

log = logging.getLogger("trinity.compensation")


async def run_compensations(c: Any, execution_id: str) -> None:
    """Run every queued compensation in order; each outcome is recorded on the execution."""
    _row, x = await c.runtime.load(execution_id)
    outcome = await c.runtime.transition(execution_id, lambda x, d, now: [])
    definition = outcome.definition
    for entry in x.compensations:
        if entry["status"] != "queued":
            continue
        step_id = entry["step_id"]
        ok, message = await _run_one(c, x, definition, step_id)
        await c.runtime.transition(execution_id, _finished(step_id, ok, message))


async def _run_one(c: Any, x: ProcessExecution, d: ProcessDefinition,
                   step_id: str) -> tuple[bool, str]:
    comp = d.step(step_id).compensation
    if comp is None:
        return True, "nothing to do"
    ctx = build_context(x, d)
    message = render(comp.message, ctx)
    try:
        if comp.type == "agent_task":
            agent = await c.lookup_agent(render_template(comp.agent or "", ctx).text)
            if agent is None:
                return False, f"agent '{comp.agent}' is not registered"
            reply = await c.agents.call(agent, AgentRequest(
                message=message, execution_id=x.id, step_id=step_id, attempt=1,
                idempotency_key=f"{x.id}:{step_id}:compensation",
                timeout=comp.timeout.total_seconds()))
            return True, str(reply.output)[:500]
        url = render(comp.webhook_url, ctx) or None
        for channel in comp.channels:
            await c.notifier.send(channel, message, url, [render(r, ctx) for r in
                                                          comp.recipients],
                                  render(comp.subject, ctx) or None,
                                  {"execution_id": x.id, "step_id": step_id})
        return True, "sent"
    except (AgentError, NotifyError) as e:
        log.warning("compensation of %s/%s failed: %s", x.id, step_id, e.message)
        return False, e.message


def _finished(step_id: str, ok: bool, message: str) -> Any:
    def decide(x: ProcessExecution, d: ProcessDefinition, now: datetime) -> list[Command]:
        x.compensation_finished(step_id, ok, message, now)
        return []
    return decide
