"""/api/v1/executions: start, list (filters and keyset pagination), show, events, actions."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.rest.common import ExecutionId, actor, execution_payload, execution_summary
from app.rest.errors import ApiError

__all__ = ["add_execution_routes"]

Filter = Annotated[str | None, Query(max_length=200)]


class StartBody(BaseModel):
    process: str = Field(min_length=1, max_length=200)
    version: str | None = Field(None, max_length=20, pattern=r"^[0-9]+(\.[0-9]+)?$")
    input: dict[str, Any] = Field(default_factory=dict)


class Reason(BaseModel):
    reason: str = Field("", max_length=2000)


def add_execution_routes(r: APIRouter) -> None:
    @r.get("/executions", tags=["executions"],
           summary="Executions you may see, newest first; pass next_cursor for more")
    async def list_executions(
            request: Request, process: Filter = None, version: Filter = None,
            status: Filter = None, triggered_by: Filter = None, started_by: Filter = None,
            since: datetime | None = None, until: datetime | None = None, q: Filter = None,
            limit: Annotated[int, Query(ge=1, le=200)] = 50,
            cursor: Annotated[str | None, Query(max_length=200)] = None) -> Any:
        rows = await actor(request).executions(
            status=status, process=process, version=version, triggered_by=triggered_by,
            started_by=started_by, since=_aware(since), until=_aware(until), search=q,
            limit=limit + 1,
            before=decode_cursor(cursor) if cursor else None)
        page, more = rows[:limit], len(rows) > limit
        return {"items": [execution_summary(row) for row in page],
                "next_cursor": encode_cursor(page[-1]) if more else None}

    @r.post("/executions", tags=["executions"], status_code=201,
            summary="Start an execution of a published process with this input")
    async def start(request: Request, body: StartBody) -> Any:
        a = actor(request)
        x = await a.start(body.process, body.input, body.version, triggered_by="api")
        return {"id": x.id, "process": x.process_name, "version": x.process_version,
                "status": x.status.value}

    @r.get("/executions/{execution_id}", tags=["executions"],
           summary="Everything about one execution (approvers: only their steps)")
    async def show(request: Request, execution_id: ExecutionId) -> Any:
        a = actor(request)
        return await execution_payload(a, await a.execution(execution_id))

    @r.get("/executions/{execution_id}/events", tags=["executions"],
           summary="The execution's recorded events, in order")
    async def events(request: Request, execution_id: ExecutionId) -> Any:
        rows = await actor(request).events(execution_id)
        return {"items": [{"seq": e.seq, "name": e.name, "step_id": e.step_id,
                           "data": e.data, "at": e.at} for e in rows]}

    for action, summary in (("cancel", "Cancel a running execution"),
                            ("retry", "Start a new execution with the same input"),
                            ("resume", "Resume a paused one, or re-run its failed step"),
                            ("pause", "Pause between steps")):
        _add_action(r, action, summary)


def _add_action(r: APIRouter, action: str, summary: str) -> None:
    async def act(request: Request, execution_id: ExecutionId,
                  body: Annotated[Reason | None, Body()] = None) -> Any:
        a = actor(request)
        result = await a.act(execution_id, action, body.reason if body else "")
        target = result.id if action == "retry" else execution_id
        payload = await execution_payload(a, await a.execution(target))
        return JSONResponse(jsonable_encoder(payload),
                            status_code=201 if action == "retry" else 200)

    r.add_api_route(f"/executions/{{execution_id}}/{action}", act, methods=["POST"],
                    tags=["executions"], summary=summary, name=f"{action}_execution",
                    status_code=201 if action == "retry" else 200)


def encode_cursor(row: Any) -> str:
    raw = json.dumps([row.created_at.isoformat(), row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, rid = json.loads(raw)
        return _aware(datetime.fromisoformat(created)), str(rid)  # type: ignore[return-value]
    except (binascii.Error, ValueError, TypeError) as e:
        raise ApiError(422, "invalid_cursor", "the cursor is not one this API gave out",
                       [{"field": "cursor", "in": "query", "message": str(e),
                         "type": "value"}]) from None


def _aware(when: datetime | None) -> datetime | None:
    """Times without an offset are taken as UTC (the database compares aware times)."""
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=UTC)
