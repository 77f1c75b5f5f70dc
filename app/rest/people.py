"""/api/v1 approvals, agents, the caller (`/me`, tokens) and the administrator's views
(audit log, recovery report), plus the format's JSON Schema."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from app.approvals_cli import approval_view
from app.audit import to_csv
from app.identity import IdentityError
from app.rest.common import AgentName, actor
from app.rest.errors import ApiError
from app.views import agent_view

__all__ = ["add_people_routes"]

ApprovalId = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9_-]+$")]
TokenId = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9_-]+$")]
Text = Annotated[str | None, Query(max_length=200)]


class DecideBody(BaseModel):
    decision: Literal["approved", "rejected", "needs_changes"]
    comment: str | None = Field(None, max_length=5000)
    edited: Any = None


class DelegateBody(BaseModel):
    to: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=2000)


class AgentBody(BaseModel):
    kind: Literal["demo", "http", "openai", "command"]
    config: dict[str, Any] = Field(default_factory=dict)
    capacity: int = Field(1, ge=1, le=10_000)
    timeout_seconds: float | None = Field(None, gt=0, le=86_400)
    description: str | None = Field(None, max_length=2000)
    owner_team: str | None = Field(None, max_length=100)


class TokenBody(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    expires_days: int | None = Field(None, ge=1, le=3650)


def add_people_routes(r: APIRouter) -> None:
    _approvals(r)
    _agents(r)
    _me(r)
    _admin(r)


def _approvals(r: APIRouter) -> None:
    @r.get("/approvals", tags=["approvals"],
           summary="Requests you may decide (?all=true: everyone's, administrators only)")
    async def list_approvals(request: Request, all: bool = False,
                             status: Literal["pending", "approved", "rejected",
                                             "needs_changes", "timed_out", "cancelled",
                                             "any"] = "pending"
                             ) -> Any:
        a, wanted = actor(request), None if status == "any" else status
        rows = await (a.all_requests(wanted) if all else a.inbox(wanted))
        return {"items": [approval_view(row, decisions) for row, decisions in rows]}

    @r.get("/approvals/{approval_id}", tags=["approvals"], summary="One approval request")
    async def show_approval(request: Request, approval_id: ApprovalId) -> Any:
        row, decisions = await actor(request).approval(approval_id)
        return approval_view(row, decisions)

    @r.post("/approvals/{approval_id}/decide", tags=["approvals"],
            summary="Approve, reject or request changes")
    async def decide(request: Request, approval_id: ApprovalId, body: DecideBody) -> Any:
        a = actor(request)
        result = await a.decide(approval_id, body.decision, body.comment,
                                body.edited)
        row, decisions = await a.c.approvals.get(approval_id)
        return {**approval_view(row, decisions), "final": result.final}

    @r.post("/approvals/{approval_id}/delegate", tags=["approvals"],
            summary="Hand a request to someone else")
    async def delegate(request: Request, approval_id: ApprovalId, body: DelegateBody) -> Any:
        row = await actor(request).delegate(approval_id, body.to, body.reason)
        return {"id": row.id, "delegated_to": body.to}


def _agents(r: APIRouter) -> None:
    @r.get("/agents", tags=["agents"], summary="Agents you may see or use")
    async def list_agents(request: Request) -> Any:
        return {"items": [agent_view(row) for row in await actor(request).agents()]}

    @r.put("/agents/{name}", tags=["agents"], summary="Register or update an agent")
    async def save_agent(request: Request, name: AgentName, body: AgentBody) -> Any:
        row = await actor(request).save_agent(name, body.kind, body.config, body.capacity,
                                              body.timeout_seconds, body.description,
                                              body.owner_team)
        return agent_view(row)

    @r.post("/agents/{name}/test", tags=["agents"], summary="Send the agent a test message")
    async def test_agent(request: Request, name: AgentName) -> Any:
        ok, message = await actor(request).test_agent(name)
        return {"name": name, "ok": ok, "message": message}


def _me(r: APIRouter) -> None:
    @r.get("/me", tags=["me"], summary="Who you are: roles, teams and permissions")
    async def me(request: Request) -> Any:
        p = actor(request).p
        return {"username": p.username, "display_name": p.display_name, "email": p.email,
                "roles": [{"team": t, "role": role.value} for t, role in sorted(p.grants)],
                "teams": sorted(p.teams), "is_admin": p.is_admin, "via": p.via,
                "permissions": sorted(perm.value for perm in p.anywhere())}

    @r.get("/me/tokens", tags=["me"], summary="Your API tokens (never the token itself)")
    async def tokens(request: Request) -> Any:
        a = actor(request)
        rows = await a.g.identity.tokens(a.p.username)
        return {"items": [_token_view(t) for t in rows]}

    @r.post("/me/tokens", tags=["me"], status_code=201,
            summary="Create an API token; the token is shown only in this answer")
    async def create_token(request: Request, body: TokenBody) -> Any:
        made = await actor(request).create_token(body.name, body.expires_days)
        return {"id": made.id, "name": made.name, "prefix": made.prefix, "token": made.token}

    @r.delete("/me/tokens/{token_id}", tags=["me"], summary="Revoke one of your tokens")
    async def revoke_token(request: Request, token_id: TokenId) -> Any:
        try:
            row = await actor(request).revoke_token(token_id)
        except IdentityError as e:
            raise ApiError(404, "not_found", str(e)) from None
        return _token_view(row)


def _token_view(t: Any) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "prefix": t.prefix, "created_at": t.created_at,
            "expires_at": t.expires_at, "last_used_at": t.last_used_at,
            "revoked_at": t.revoked_at}


def _admin(r: APIRouter) -> None:
    @r.get("/audit", tags=["admin"], summary="The audit log, newest first (administrators)")
    async def audit(request: Request, actor_name: Annotated[Text, Query(alias="actor")] = None,
                    action: Text = None, resource: Text = None, since: datetime | None = None,
                    until: datetime | None = None,
                    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
                    before_seq: Annotated[int | None, Query(ge=1, le=2**62)] = None,
                    format: Literal["json", "csv"] = "json") -> Any:
        from app.rest.executions import _aware

        rows = await actor(request).audit_log(actor=actor_name, action=action,
                                              resource=resource, since=_aware(since),
                                              until=_aware(until), limit=limit,
                                              before_seq=before_seq)
        if format == "csv":
            return PlainTextResponse(to_csv(rows), media_type="text/csv")
        return {"items": [{k: getattr(row, k) for k in _AUDIT_FIELDS} for row in rows]}

    @r.get("/recovery", tags=["admin"],
           summary="The last recovery report and what a sweep would do now (dry run)")
    async def recovery(request: Request) -> Any:
        return await actor(request).recovery_report()

    @r.get("/schema", tags=["processes"], summary="JSON Schema of the process format")
    async def schema(request: Request) -> Any:
        from engine.jsonschema import json_schema

        return JSONResponse(json_schema())


_AUDIT_FIELDS = ("seq", "at", "actor", "action", "resource_type", "resource_id", "outcome",
                 "details", "ip", "user_agent", "classification", "hash")
