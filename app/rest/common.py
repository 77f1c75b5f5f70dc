"""Small pieces the API's route modules share: the acting principal, path parameters, bodies
that are YAML or JSON, and read models built from the views."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Path, Request

from app.guard import Actor, ExecutionAccess
from app.rest.errors import ApiError
from app.security import Scope
from app.views import execution_view

__all__ = ["ExecutionId", "Name", "Version", "actor", "execution_payload", "yaml_body"]

Name = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f/]+$")]
AgentName = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f/]+$")]
Version = Annotated[str, Path(min_length=1, max_length=20, pattern=r"^[0-9]+(\.[0-9]+)?$")]
ExecutionId = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9_-]+$")]


def actor(request: Request) -> Actor:
    """The caller, authenticated by the route class before the handler runs."""
    return request.state.actor  # type: ignore[no-any-return]


async def yaml_body(request: Request) -> tuple[str, dict[str, Any]]:
    """A definition sent as YAML text, or as JSON `{yaml: "…", …}`; returns the text and
    the JSON object's other fields."""
    raw = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        try:
            data = json.loads(raw or b"null")
        except ValueError as e:
            raise ApiError(400, "invalid_json", f"the body is not JSON: {e}") from None
        if not isinstance(data, dict) or not isinstance(data.get("yaml"), str):
            raise ApiError(422, "invalid_request", "a JSON body must be an object with the "
                           "definition as a string in 'yaml'",
                           [{"field": "yaml", "in": "body", "message": "a string is required",
                             "type": "missing"}])
        return data["yaml"], data
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "bad_request", "the body is not UTF-8 text") from None
    if not text.strip():
        raise ApiError(422, "invalid_request", "the body is empty: send the definition as "
                       "YAML (Content-Type: application/yaml)")
    return text, {}


YAML_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/yaml": {"schema": {"type": "string"}},
    "application/json": {"schema": {"type": "object", "required": ["yaml"], "properties": {
        "yaml": {"type": "string"}, "publish": {"type": "boolean"},
        "name": {"type": "string"}}}}}}}


async def execution_payload(a: Actor, access: ExecutionAccess) -> dict[str, Any]:
    """The full view of an execution, or for an approval-scope viewer only the approval
    steps that asked them and the context needed to decide."""
    c = a.c
    async with c.db.read() as s:
        definition = await c.runtime.definition_for(s, access.row)
    view = execution_view(access.row, access.execution, definition)
    if access.scope is Scope.FULL:
        return {**view, "scope": Scope.FULL.value}
    keep = ("id", "process", "version", "status", "input", "started_by", "created_at",
            "started_at", "finished_at")
    return {**{k: view[k] for k in keep}, "scope": Scope.APPROVAL.value,
            "steps": [st for st in view["steps"] if st["id"] in access.approval_steps]}


def execution_summary(row: Any) -> dict[str, Any]:
    return {"id": row.id, "process": row.process_name, "version": row.process_version,
            "status": row.status, "cost": row.cost, "triggered_by": row.triggered_by,
            "started_by": row.started_by, "created_at": row.created_at,
            "finished_at": row.finished_at}


__all__ += ["YAML_BODY", "AgentName", "execution_summary"]
