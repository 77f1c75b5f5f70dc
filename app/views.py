"""Read models: plain dicts for the CLI's --json, the API and the pages (one shape for all)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from app.tables import AgentRow, DefinitionRow, ExecutionRow
from engine.definition import ProcessDefinition
from engine.durations import format_duration
from engine.execution import ProcessExecution

__all__ = ["agent_view", "definition_view", "execution_view"]


def definition_view(row: DefinitionRow) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "version": row.version, "status": row.status,
            "description": row.description, "owner": row.owner,
            "created_at": row.created_at, "published_at": row.published_at}


def agent_view(row: AgentRow) -> dict[str, Any]:
    config = {k: ("***" if "key" in k.lower() or "token" in k.lower() else v)
              for k, v in (row.config or {}).items()}
    return {"name": row.name, "kind": row.kind, "capacity": row.capacity,
            "timeout_seconds": row.timeout_seconds, "enabled": row.enabled,
            "description": row.description, "config": config}


def execution_view(row: ExecutionRow, x: ProcessExecution,
                   definition: ProcessDefinition | None = None) -> dict[str, Any]:
    """Everything `executions show --json` promises: every step with status, skip reason,
    attempts, input, output, error and cost."""
    duration = None
    if x.started_at and x.finished_at:
        elapsed = x.finished_at - x.started_at
        duration = format_duration(elapsed - timedelta(microseconds=elapsed.microseconds % 1000))
    steps = []
    for sid, st in x.steps.items():
        step_def = definition.by_id.get(sid) if definition else None
        steps.append({
            "id": sid,
            "name": step_def.name if step_def else sid,
            "type": step_def.type.value if step_def else None,
            "status": st.status.value,
            "skip_reason": st.skip_reason,
            "skip_detail": st.skip_detail,
            "attempts": len([a for a in st.attempts if a.visit == max(st.visits, 1)]),
            "max_attempts": step_def.retry.max_attempts if step_def else None,
            "visits": st.visits,
            "input": st.input,
            "output": st.output,
            "error": st.error,
            "cost": str(st.cost),
            "tokens": st.tokens,
            "started_at": st.started_at,
            "finished_at": st.finished_at,
            "next_retry_at": st.next_retry_at,
            "due_at": st.due_at,
            "child_id": st.child_id,
            "approval": st.approval,
            "history": [vars(a) for a in st.attempts],
        })
    return {"id": x.id, "process": x.process_name, "version": x.process_version,
            "status": x.status.value, "input": x.input, "outputs": x.outputs,
            "output_warnings": x.output_warnings, "error": x.error, "cost": str(x.cost),
            "tokens": x.tokens, "triggered_by": x.triggered_by, "started_by": x.started_by,
            "parent_id": x.parent_id, "parent_step_id": x.parent_step_id,
            "retry_of": row.retry_of, "created_at": x.created_at, "started_at": x.started_at,
            "finished_at": x.finished_at, "duration": duration,
            "compensations": x.compensations, "steps": steps}
