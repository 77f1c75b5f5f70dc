"""The one gate every entry point goes through: pages, the REST API, webhooks and the CLI.

`Guard.actor(principal, context)` gives an `Actor` whose methods check the policy
(`app.security.Policy`), apply visibility, rate-limit triggering, call the services and
write the audit log. A denial is audited too and raised as `Denied`. Entry points never
call the services for a user's action directly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlmodel import col

from app.audit import AuditLog, Context
from app.identity import Identity, IdentityError
from app.repositories import parsed_definition
from app.security import SYSTEM, Denied, Permission, Policy, Principal, Scope
from app.services import NotFound, ServiceError
from app.tables import AgentRow, ApprovalRow, DefinitionRow, EventRow, ExecutionRow, ShareRow
from engine.execution import ProcessExecution

__all__ = ["Actor", "Guard", "RateLimited"]

P = Permission


class RateLimited(ServiceError):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class ExecutionAccess:
    row: ExecutionRow
    execution: ProcessExecution
    scope: Scope
    approval_steps: frozenset[str]  # the steps an approval-scope viewer may see


class Guard:
    def __init__(self, container: Any, audit: AuditLog, identity: Identity,
                 policy: Policy | None = None, trigger_rate_per_minute: int = 60) -> None:
        self.c = container
        self.audit = audit
        self.identity = identity
        self.policy = policy or Policy()
        self.trigger_rate = trigger_rate_per_minute

    def actor(self, principal: Principal, context: Context | None = None) -> Actor:
        return Actor(self, principal, context or Context())

    def system(self, via: str = "cli") -> Actor:
        return Actor(self, Principal(SYSTEM.username, SYSTEM.grants, via=via), Context())


class Actor:
    """A principal acting through the gate."""

    def __init__(self, guard: Guard, principal: Principal, context: Context) -> None:
        self.g = guard
        self.p = principal
        self.ctx = context
        self.c = guard.c
        self.policy = guard.policy

    # --- plumbing --------------------------------------------------------------------------

    async def _audit(self, action: str, kind: str, rid: str, details: Mapping[str, Any]
                     | None = None, outcome: str = "ok", classification: str = "internal"
                     ) -> None:
        await self.g.audit.append(self.p.username, action, kind, rid, details, outcome=outcome,
                                  context=self.ctx, classification=classification)

    async def _require(self, permission: Permission, team: str | None, what: str, kind: str,
                       rid: str, shares: Mapping[str, str] | None = None) -> None:
        if not self.policy.has(self.p, permission, team, shares):
            await self.denied(permission.value, kind, rid)
            where = f" of team '{team}'" if team else ""
            raise Denied(f"you lack {permission.value} on {what}{where}", permission)

    async def denied(self, action: str, kind: str, rid: str, reason: str = "") -> None:
        """Record an access denial (pages call this for a page they refuse)."""
        await self._audit("access.denied", kind, rid, {"wanted": action,
                                                        **({"reason": reason} if reason else {})},
                          outcome="denied")

    async def _shares(self, kind: str, name: str) -> dict[str, str]:
        async with self.c.db.read() as s:
            rows = (await s.execute(select(ShareRow).where(
                col(ShareRow.resource_type) == kind,
                col(ShareRow.resource_name) == name))).scalars()
            return {r.team: r.access for r in rows}

    def can(self, permission: Permission, team: str | None = None,
            shares: Mapping[str, str] | None = None) -> bool:
        """For showing or hiding buttons; the action itself is checked again."""
        return self.policy.has(self.p, permission, team, shares)

    # --- processes -------------------------------------------------------------------------

    async def processes(self, include_drafts: bool = True) -> list[DefinitionRow]:
        """Every version the principal may read, newest first per name."""
        rows = await self.c.definitions.list()
        shared = await self._all_shares("process")
        return [r for r in rows if (include_drafts or r.status != "draft") and self.policy.has(
            self.p, P.PROCESS_READ, r.owner, shared.get(r.name))]

    async def process(self, name: str, version: str | None = None,
                      include_drafts: bool = True) -> DefinitionRow:
        row = await self.c.definitions.find(name, version, include_drafts=include_drafts)
        await self._require(P.PROCESS_READ, row.owner, f"process '{name}'", "process", name,
                            await self._shares("process", name))
        return row  # type: ignore[no-any-return]

    async def save_definition(self, yaml_text: str, publish: bool = False,
                              name: str | None = None) -> Any:
        """Create or update a draft (and publish it when asked)."""
        from app.definitions import validate_text
        from app.services import fill_template_name

        definition, _ = validate_text(fill_template_name(yaml_text, name))
        team = definition.owner if definition is not None else None
        pname = definition.name if definition is not None else (name or "?")
        existing = None
        if definition is not None:
            try:
                existing = await self.c.definitions.find(pname, include_drafts=True)
            except NotFound:
                existing = None
        permission = P.PROCESS_UPDATE if existing is not None else P.PROCESS_CREATE
        await self._require(permission, existing.owner if existing else team,
                            f"process '{pname}'", "process", pname,
                            await self._shares("process", pname))
        if publish:
            await self._require(P.PROCESS_PUBLISH, team, f"process '{pname}'", "process", pname)
        imported = await self.c.definitions.import_text(yaml_text, publish, self.p.username,
                                                        name)
        row = imported.row
        await self._audit("definition.saved", "process", row.name,
                          {"version": row.version, "created": imported.created})
        if publish and row.status == "published":
            await self._audit("definition.published", "process", row.name,
                              {"version": row.version})
        return imported

    async def set_status(self, name: str, version: str, status: str) -> DefinitionRow:
        row = await self.c.definitions.find(name, version, include_drafts=True)
        permission = P.PROCESS_PUBLISH if status == "published" else P.PROCESS_DELETE
        await self._require(permission, row.owner, f"process '{name}'", "process", name,
                            await self._shares("process", name))
        changed = await self.c.definitions.set_status(name, version, status)
        await self._audit(f"definition.{status}", "process", name, {"version": version})
        return changed  # type: ignore[no-any-return]

    async def share(self, kind: str, name: str, team: str, access: str | None) -> None:
        """Share a process or agent with a team ('read' | 'full'), or stop sharing (None)."""
        owner = await self._owner_of(kind, name)
        permission = P.PROCESS_UPDATE if kind == "process" else P.AGENT_MANAGE
        await self._require(permission, owner, f"{kind} '{name}'", kind, name)
        if access not in (None, "read", "full"):
            raise ServiceError("access must be 'read' or 'full'")
        async with self.c.db.write() as s:
            row = await s.get(ShareRow, (kind, name, team))
            if access is None:
                if row is not None:
                    await s.delete(row)
            elif row is None:
                s.add(ShareRow(resource_type=kind, resource_name=name, team=team, access=access,
                               created_by=self.p.username, created_at=self.c.runtime.clock()))
            else:
                row.access = access
        await self._audit(f"{kind}.shared" if access else f"{kind}.unshared", kind, name,
                          {"team": team, "access": access})

    # --- executions ------------------------------------------------------------------------

    async def start(self, name: str, input: Mapping[str, Any] | None = None,
                    version: str | None = None, triggered_by: str = "manual",
                    row: DefinitionRow | None = None) -> ProcessExecution:
        row = row or await self.c.definitions.find(name, version)
        shares = await self._shares("process", row.name)
        definition = parsed_definition(row)
        try:
            # a webhook's caller proved itself with the trigger's secret; `allowed_users`
            # names the people who may start the process by hand
            allowed = () if self.p.via == "webhook" else definition.allowed_users
            self.policy.require_trigger(self.p, row.name, row.owner, shares, allowed)
        except Denied as e:
            await self.denied(P.EXECUTION_TRIGGER.value, "process", row.name, e.reason)
            raise
        await self._rate_limit(row.name)
        x = await self.c.executions.start(row, input, triggered_by, self.p.username)
        await self._audit("execution.started", "execution", x.id,
                          {"process": row.name, "version": row.version,
                           "triggered_by": triggered_by},
                          classification=definition.data_classification or "internal")
        return x  # type: ignore[no-any-return]

    async def _rate_limit(self, process: str) -> None:
        limit = self.g.trigger_rate
        if limit <= 0 or (self.p.is_admin and self.p.via in ("system", "cli")):
            return
        now = self.c.runtime.clock()
        key = f"trinity:rate:{self.p.username}:{process}:{int(now.timestamp() // 60)}"
        count = await self.c.redis.incr(key)
        if count == 1:
            await self.c.redis.expire(key, 120)
        if count > limit:
            retry = 60 - int(now.timestamp()) % 60
            await self._audit("execution.rate_limited", "process", process, {"limit": limit},
                              outcome="denied")
            raise RateLimited(f"rate limit: at most {limit} starts of '{process}' per minute; "
                              f"try again in {retry} s", retry)

    async def executions(self, *, status: str | None = None, process: str | None = None,
                         version: str | None = None, triggered_by: str | None = None,
                         started_by: str | None = None, since: datetime | None = None,
                         until: datetime | None = None, search: str | None = None,
                         limit: int = 50, before: tuple[datetime, str] | None = None
                         ) -> list[ExecutionRow]:
        """Visible executions, newest first; keyset pagination with `before` =
        (created_at, id) of the last row of the previous page."""
        q = select(ExecutionRow)
        teams = self.policy.visible_execution_teams(self.p)
        if teams is not None:
            clauses: list[Any] = [col(ExecutionRow.started_by) == self.p.username,
                                  col(ExecutionRow.id).in_(await self._approver_execution_ids())]
            if teams:
                clauses.append(col(ExecutionRow.owner_team).in_(teams))
                clauses.append(col(ExecutionRow.owner_team).is_(None))
            shared = [n for n, t in (await self._all_shares("process")).items()
                      if any(self.policy.has(self.p, P.EXECUTION_VIEW, "\0", {k: v})
                             for k, v in t.items())]
            if shared:
                clauses.append(col(ExecutionRow.process_name).in_(shared))
            q = q.where(or_(*clauses))
        for column, value in ((ExecutionRow.status, status),
                              (ExecutionRow.process_name, process),
                              (ExecutionRow.process_version, version),
                              (ExecutionRow.triggered_by, triggered_by),
                              (ExecutionRow.started_by, started_by)):
            if value:
                q = q.where(col(column) == value)
        created = col(ExecutionRow.created_at)
        if since is not None:
            q = q.where(created >= since)
        if until is not None:
            q = q.where(created <= until)
        if search:
            term = search.strip()
            q = q.where(or_(col(ExecutionRow.id).startswith(term),
                            col(ExecutionRow.process_name).contains(term)))
        if before is not None:
            q = q.where(or_(created < before[0],
                            (created == before[0]) & (col(ExecutionRow.id) < before[1])))
        q = q.order_by(created.desc(), col(ExecutionRow.id).desc())
        async with self.c.db.read() as s:
            return list((await s.execute(q.limit(limit))).scalars())

    async def _approver_execution_ids(self) -> list[str]:
        rows = await self.c.approvals.list(user=self.p.username, status=None, limit=500)
        return sorted({r.execution_id for r, _ in rows})

    async def execution(self, execution_id: str) -> ExecutionAccess:
        row, x = await self.c.executions.get(execution_id)
        shares = await self._shares("process", row.process_name)
        approvals = await self._my_approvals(execution_id)
        try:
            scope = self.policy.execution_scope(self.p, row.owner_team, row.started_by,
                                                bool(approvals), shares)
        except Denied:
            await self.denied(P.EXECUTION_VIEW.value, "execution", execution_id)
            raise
        return ExecutionAccess(row, x, scope, frozenset(a.step_id for a in approvals))

    async def _my_approvals(self, execution_id: str) -> list[ApprovalRow]:
        rows = await self.c.approvals.list(user=self.p.username, status=None, limit=500)
        return [r for r, _ in rows if r.execution_id == execution_id]

    async def act(self, execution_id: str, action: str, reason: str = "") -> Any:
        """cancel | retry | resume | pause an execution."""
        row, _ = await self.c.executions.get(execution_id)
        permission = {"cancel": P.EXECUTION_CANCEL, "pause": P.EXECUTION_CANCEL,
                      "retry": P.EXECUTION_RETRY, "resume": P.EXECUTION_RETRY}.get(action)
        if permission is None:
            raise ServiceError(f"unknown action '{action}'")
        await self._require(permission, row.owner_team, f"execution {execution_id}",
                            "execution", execution_id,
                            await self._shares("process", row.process_name))
        svc = self.c.executions
        if action == "cancel":
            result = await svc.cancel(execution_id, self.p.username, reason)
        elif action == "retry":
            result = await svc.retry(execution_id, self.p.username)
        elif action == "resume":
            result = await svc.resume(execution_id, self.p.username)
        else:
            result = await svc.pause(execution_id, self.p.username)
        details: dict[str, Any] = {"reason": reason} if reason else {}
        if action == "retry":
            details["new_execution"] = result.id
        await self._audit(f"execution.{action}", "execution", execution_id, details)
        return result

    # --- approvals -------------------------------------------------------------------------

    async def inbox(self, status: str | None = "pending", everyone: bool = False
                    ) -> list[tuple[ApprovalRow, list[Any]]]:
        """Requests the principal may decide; all of them for admins asking for everyone."""
        if everyone and self.p.is_admin:
            return await self.c.approvals.list(status=status)  # type: ignore[no-any-return]
        return await self.c.approvals.list(user=self.p.username,  # type: ignore[no-any-return]
                                           status=status)

    async def decide(self, approval_id: str, decision: str, comment: str | None = None,
                     edited: Any = None) -> Any:
        row, _ = await self.c.approvals.get(approval_id)
        execution = await self.c.executions.get(row.execution_id)
        if not self.policy.has(self.p, P.APPROVAL_DECIDE, execution[0].owner_team) and \
                not self.policy.has(self.p, P.APPROVAL_DECIDE):
            await self.denied(P.APPROVAL_DECIDE.value, "approval", approval_id)
            raise Denied("you lack approval:decide", P.APPROVAL_DECIDE)
        try:
            result = await self.c.approvals.decide(approval_id, decision, self.p.username,
                                                   comment, edited)
        except ServiceError as e:
            await self._audit("approval.decide", "approval", approval_id,
                              {"decision": decision, "error": str(e)}, outcome="failed")
            raise
        await self._audit("approval.decided", "approval", approval_id,
                          {"decision": decision, "execution_id": row.execution_id,
                           "step_id": row.step_id, "final": result.final,
                           **({"comment": comment} if comment else {}),
                           **({"edited": True} if edited is not None else {})})
        return result

    async def delegate(self, approval_id: str, to_user: str, reason: str) -> Any:
        if not self.policy.has(self.p, P.APPROVAL_DELEGATE):
            await self.denied(P.APPROVAL_DELEGATE.value, "approval", approval_id)
            raise Denied("you lack approval:delegate", P.APPROVAL_DELEGATE)
        await self._check_delegate(approval_id, to_user)
        row = await self.c.approvals.delegate(approval_id, self.p.username, to_user, reason)
        await self._audit("approval.delegated", "approval", approval_id,
                          {"to": to_user, "reason": reason})
        return row

    async def _check_delegate(self, approval_id: str, to_user: str) -> None:
        """A request may only be handed to an active person who could decide it: else it
        would sit with someone who cannot act on it."""
        row, _ = await self.c.approvals.get(approval_id)
        execution = await self.c.executions.get(row.execution_id)
        target = await self.g.identity.principal(to_user)
        if target is None:
            raise ServiceError(f"there is no active user named '{to_user}'")
        if not self.policy.has(target, P.APPROVAL_DECIDE, execution[0].owner_team) and \
                not self.policy.has(target, P.APPROVAL_DECIDE):
            raise ServiceError(f"{to_user} may not decide approvals (needs the approver role "
                               f"in team '{execution[0].owner_team or 'any'}'), so the "
                               "request cannot be delegated to them")

    # --- agents ----------------------------------------------------------------------------

    async def agents(self) -> list[AgentRow]:
        async with self.c.db.read() as s:
            rows = list((await s.execute(select(AgentRow).order_by(AgentRow.name))).scalars())
        shared = await self._all_shares("agent")
        return [r for r in rows if r.shared or r.owner_team is None or self.policy.has(
            self.p, P.PROCESS_READ, r.owner_team, shared.get(r.name)) or self.policy.has(
            self.p, P.AGENT_MANAGE, r.owner_team, shared.get(r.name))]

    async def save_agent(self, name: str, kind: str, config: dict[str, Any],
                         capacity: int = 1, timeout: float | None = None,
                         description: str | None = None, owner_team: str | None = None
                         ) -> AgentRow:
        from app.agents_admin import upsert_agent

        existing = await self._agent_row(name)
        team = existing.owner_team if existing is not None else owner_team
        await self._require(P.AGENT_MANAGE, team, f"agent '{name}'", "agent", name,
                            await self._shares("agent", name))
        row = await upsert_agent(self.c.db, name, kind, config, capacity, timeout, description)
        if existing is None and owner_team:
            async with self.c.db.write() as s:
                live = await s.get(AgentRow, name)
                if live is not None:
                    live.owner_team = owner_team
                    row = live
        await self._audit("agent.saved" if existing else "agent.created", "agent", name,
                          {"kind": kind, "capacity": capacity})
        return row

    async def _agent_row(self, name: str) -> AgentRow | None:
        async with self.c.db.read() as s:
            return await s.get(AgentRow, name)  # type: ignore[no-any-return]

    # --- people ----------------------------------------------------------------------------

    async def _admin(self, kind: str, rid: str) -> None:
        await self._require(P.ADMIN_MANAGE_USERS, None, "accounts", kind, rid)
        if not self.p.is_admin:  # user management is organisation-wide
            await self.denied(P.ADMIN_MANAGE_USERS.value, kind, rid)
            raise Denied("only administrators manage accounts", P.ADMIN_MANAGE_USERS)

    async def create_user(self, username: str, password: str | None, *, email: str | None =
                          None, display_name: str | None = None,
                          roles: list[tuple[str, str]] | None = None,
                          teams: list[tuple[str, str]] | None = None) -> Any:
        await self._admin("user", username)
        row = await self.g.identity.create_user(username, password, email=email,
                                                display_name=display_name, roles=roles or [],
                                                teams=teams or [], by=self.p.username)
        await self._audit("user.created", "user", username,
                          {"roles": [f"{t}:{r}" for t, r in roles or []],
                           "teams": [t for t, _ in teams or []]})
        return row

    async def grant(self, username: str, team: str, role: str) -> None:
        await self._admin("user", username)
        await self.g.identity.grant(username, team, role, self.p.username)
        await self._audit("role.granted", "user", username, {"team": team, "role": role})

    async def revoke(self, username: str, team: str, role: str) -> None:
        await self._admin("user", username)
        await self.g.identity.revoke(username, team, role)
        await self._audit("role.revoked", "user", username, {"team": team, "role": role})

    async def set_membership(self, username: str, team: str, team_role: str | None) -> None:
        await self._admin("team", team)
        await self.g.identity.set_membership(username, team, team_role)
        await self._audit("team.member_added" if team_role else "team.member_removed", "team",
                          team, {"user": username, "team_role": team_role})

    async def set_active(self, username: str, active: bool) -> None:
        await self._admin("user", username)
        if username == self.p.username and not active:
            raise IdentityError("you cannot deactivate your own account")
        await self.g.identity.set_active(username, active)
        await self._audit("user.activated" if active else "user.deactivated", "user", username)

    async def reset_password(self, username: str, new: str) -> None:
        await self._admin("user", username)
        await self.g.identity.set_password(username, new)
        await self._audit("user.password_reset", "user", username)

    async def change_own_password(self, old: str, new: str) -> None:
        try:
            await self.g.identity.change_password(self.p.username, old, new)
        except IdentityError as e:
            await self._audit("user.password_changed", "user", self.p.username,
                              {"error": str(e)}, outcome="failed")
            raise
        await self._audit("user.password_changed", "user", self.p.username)

    async def create_token(self, name: str, expires_days: int | None = None) -> Any:
        token = await self.g.identity.create_token(self.p.username, name, expires_days)
        await self._audit("token.created", "token", token.id, {"name": name,
                                                                "prefix": token.prefix})
        return token

    async def revoke_token(self, token_id: str) -> Any:
        owner = None if self.p.is_admin else self.p.username
        row = await self.g.identity.revoke_token(token_id, owner)
        await self._audit("token.revoked", "token", token_id, {"owner": row.username})
        return row

    async def audit_log(self, **filters: Any) -> list[Any]:
        if not self.p.is_admin:
            await self.denied(P.AUDIT_READ.value, "audit", "log")
            raise Denied("only administrators read the audit log", P.AUDIT_READ)
        return await self.g.audit.query(**filters)

    # --- reads and chores for the REST API -------------------------------------------------

    async def events(self, execution_id: str) -> list[EventRow]:
        """An execution's events; an approval-scope viewer gets only its approval steps'."""
        access = await self.execution(execution_id)
        events, _ = await self.c.executions.history(execution_id)
        if access.scope is Scope.APPROVAL:
            return [e for e in events if e.step_id in access.approval_steps]
        return events  # type: ignore[no-any-return]

    async def approval(self, approval_id: str) -> tuple[ApprovalRow, list[Any]]:
        """One request: for admins, the people who may decide it, and viewers of its
        execution (an approval-scope viewer only for their own steps)."""
        row, decisions = await self.c.approvals.get(approval_id)
        if self.p.is_admin or any(a.id == approval_id
                                  for a in await self._my_approvals(row.execution_id)):
            return row, decisions
        access = await self.execution(row.execution_id)
        if access.scope is not Scope.FULL and row.step_id not in access.approval_steps:
            await self.denied(P.EXECUTION_VIEW.value, "approval", approval_id)
            raise Denied("you have no access to this approval request", P.EXECUTION_VIEW)
        return row, decisions

    async def all_requests(self, status: str | None = "pending"
                           ) -> list[tuple[ApprovalRow, list[Any]]]:
        """Every approval request, whoever may decide it (administrators only)."""
        if not self.p.is_admin:
            await self.denied(P.ADMIN_VIEW_ALL.value, "approval", "*")
            raise Denied("only administrators list every approval request", P.ADMIN_VIEW_ALL)
        return await self.inbox(status, everyone=True)

    async def delete_draft(self, name: str, version: str) -> DefinitionRow:
        """Remove a draft version no execution uses (published ones are archived instead)."""
        row = await self.c.definitions.find(name, version, include_drafts=True)
        await self._require(P.PROCESS_DELETE, row.owner, f"process '{name}'", "process", name,
                            await self._shares("process", name))
        if row.status != "draft":
            raise ServiceError(f"'{name}' version {version} is {row.status}; only drafts can "
                               "be deleted (archive it instead)")
        async with self.c.db.write() as s:
            used = (await s.execute(select(col(ExecutionRow.id)).where(
                col(ExecutionRow.definition_id) == row.id).limit(1))).first()
            if used:
                raise ServiceError(f"'{name}' version {version} is used by executions")
            live = await s.get(DefinitionRow, row.id)
            if live is not None:
                await s.delete(live)
        await self._audit("definition.deleted", "process", name, {"version": version})
        return row  # type: ignore[no-any-return]

    async def new_version(self, name: str, version: str, wanted: str | None = None) -> Any:
        """Copy a published (or archived) version into a new draft (`wanted`, default the
        next minor version of the same major)."""
        source = await self.process(name, version)
        await self._require(P.PROCESS_UPDATE, source.owner, f"process '{name}'", "process",
                            name, await self._shares("process", name))
        if source.status == "draft":
            raise ServiceError(f"'{name}' version {version} is a draft: edit it instead")
        if wanted is None:
            minors = [v.version_minor for v in await self.processes() if v.name == name
                      and v.version_major == source.version_major]
            wanted = f"{source.version_major}.{max(minors, default=0) + 1}"
        imported = await self.save_definition(_with_version(source.yaml_text, wanted),
                                              False, name)
        if not imported.created:
            raise ServiceError(f"version {wanted} of '{name}' already exists")
        return imported

    async def test_agent(self, name: str) -> tuple[bool, str]:
        """Send the agent a test message (for those who manage it)."""
        from app.agents.gateway import test_agent

        row = await self._agent_row(name)
        if row is None:
            raise NotFound(f"no agent named '{name}'")
        await self._require(P.AGENT_MANAGE, row.owner_team, f"agent '{name}'", "agent", name,
                            await self._shares("agent", name))
        agent = await self.c.lookup_agent(name)
        if agent is None:
            raise ServiceError(f"agent '{name}' is disabled")
        return await test_agent(agent)

    async def recovery_report(self) -> dict[str, Any]:
        """The last sweep a worker reported at start-up, and what a sweep would do now
        (a dry run: nothing changes)."""
        await self._admin_only(P.ADMIN_VIEW_ALL, "recovery", "report")
        last = await self.c.redis.get("trinity:recovery:last")
        preview = await self.c.recovery.sweep(full=True, dry_run=True)
        return {"last": json.loads(last) if last else None, "now": preview.to_dict()}

    async def require_admin_view(self, kind: str, rid: str) -> None:
        """For organisation-wide views (metrics): administrators only."""
        await self._admin_only(P.ADMIN_VIEW_ALL, kind, rid)

    async def _admin_only(self, permission: Permission, kind: str, rid: str) -> None:
        if not self.p.is_admin:
            await self.denied(permission.value, kind, rid)
            raise Denied(f"only administrators have {permission.value}", permission)

    # --- helpers ---------------------------------------------------------------------------

    async def _owner_of(self, kind: str, name: str) -> str | None:
        if kind == "process":
            row = await self.c.definitions.find(name, include_drafts=True)
            return row.owner  # type: ignore[no-any-return]
        agent = await self._agent_row(name)
        if agent is None:
            raise NotFound(f"no agent named '{name}'")
        return agent.owner_team

    async def _all_shares(self, kind: str) -> dict[str, dict[str, str]]:
        async with self.c.db.read() as s:
            rows = (await s.execute(select(ShareRow).where(
                col(ShareRow.resource_type) == kind))).scalars()
            out: dict[str, dict[str, str]] = {}
            for r in rows:
                out.setdefault(r.resource_name, {})[r.team] = r.access
        return out


def _with_version(text: str, version: str) -> str:
    """The YAML text with its top-level `version:` set (added when missing)."""
    import re

    line = f'version: "{version}"'
    pattern = re.compile(r"^version:[^\n]*$", re.MULTILINE)
    if pattern.search(text):
        return pattern.sub(line, text, count=1)
    return f"{line}\n{text}"
