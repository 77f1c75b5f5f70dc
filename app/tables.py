"""SQL tables. Rows are not domain objects: `app.repositories` maps between the two."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Text, TypeDecorator, UniqueConstraint
from sqlmodel import Field, SQLModel

__all__ = [
    "AgentRow",
    "ApiTokenRow",
    "ApprovalDecisionRow",
    "ApprovalRow",
    "AuditRow",
    "DefinitionRow",
    "DelegationRow",
    "EventRow",
    "ExecutionRow",
    "RoleGrantRow",
    "ScheduleRow",
    "SessionRow",
    "ShareRow",
    "StepRunRow",
    "SubscriptionRow",
    "TeamMemberRow",
    "TriggerFiringRow",
    "UserRow",
    "WakeupRow",
    "metadata",
]

metadata = SQLModel.metadata


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored in UTC and always read back timezone-aware (SQLite keeps no
    offset and would hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def _when(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable,
                                                index=index))


def _json(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(JSON, nullable=nullable))


class DefinitionRow(SQLModel, table=True):
    """A process definition version: the YAML text exactly as written, and its parsed data."""

    __tablename__ = "process_definitions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_definition_name_version"),)

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(index=True, max_length=200)
    version: str = Field(max_length=20)
    version_major: int = 1
    version_minor: int = 0
    status: str = Field(default="draft", index=True, max_length=20)
    yaml_text: str = Field(sa_column=Column(Text, nullable=False))
    data: dict[str, Any] | None = _json()
    description: str | None = Field(default=None, sa_column=Column(Text))
    owner: str | None = Field(default=None, max_length=100)
    created_by: str | None = Field(default=None, max_length=200)
    created_at: datetime | None = _when()
    updated_at: datetime | None = _when()
    published_at: datetime | None = _when()
    archived_at: datetime | None = _when()


class ExecutionRow(SQLModel, table=True):
    """One execution. Its state is the `snapshot` (engine.state.to_dict) plus the events
    after `snapshot_seq`; the snapshot is refreshed every few dozen events and at the end."""

    __tablename__ = "executions"
    __table_args__ = (
        Index("ix_executions_process_status", "process_name", "status"),
        Index("ix_executions_created", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    definition_id: str = Field(foreign_key="process_definitions.id", index=True,
                               max_length=36)
    process_name: str = Field(max_length=200)
    process_version: str = Field(max_length=20)
    status: str = Field(index=True, max_length=20)
    version: int = 1  # optimistic concurrency: bumped by every transition
    input: dict[str, Any] | None = _json()
    outputs: dict[str, Any] | None = _json()
    snapshot: dict[str, Any] | None = _json(nullable=False)
    snapshot_seq: int = 0  # the last event the snapshot includes; later events replay on load
    cost: str = Field(default="0", max_length=32)
    tokens: int = 0
    triggered_by: str = Field(default="manual", max_length=40)
    started_by: str | None = Field(default=None, max_length=200)
    parent_id: str | None = Field(default=None, index=True, max_length=36)
    parent_step_id: str | None = Field(default=None, max_length=64)
    retry_of: str | None = Field(default=None, max_length=36)
    owner_team: str | None = Field(default=None, index=True, max_length=100)  # the process's
    priority: str = Field(default="normal", max_length=10)
    error_code: str | None = Field(default=None, max_length=64)
    error_message: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime | None = _when()
    started_at: datetime | None = _when()
    finished_at: datetime | None = _when()
    updated_at: datetime | None = _when(index=True)


class StepRunRow(SQLModel, table=True):
    """One attempt of one step (per visit of a loop)."""

    __tablename__ = "step_runs"
    __table_args__ = (
        UniqueConstraint("execution_id", "step_id", "visit", "attempt",
                         name="uq_step_run_attempt"),
        Index("ix_step_runs_status_lease", "status", "lease_expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    execution_id: str = Field(foreign_key="executions.id", index=True, max_length=36)
    step_id: str = Field(max_length=64)
    visit: int = 1
    attempt: int = 1
    status: str = Field(max_length=20)
    started_at: datetime | None = _when()
    finished_at: datetime | None = _when()
    error_code: str | None = Field(default=None, max_length=64)
    error_message: str | None = Field(default=None, sa_column=Column(Text))
    cost: str = Field(default="0", max_length=32)
    tokens: int = 0
    worker: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = _when()


class EventRow(SQLModel, table=True):
    """Append-only history of an execution; written in the same transaction as the state."""

    __tablename__ = "execution_events"
    __table_args__ = (UniqueConstraint("execution_id", "seq", name="uq_event_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    execution_id: str = Field(foreign_key="executions.id", index=True, max_length=36)
    seq: int
    name: str = Field(max_length=40)
    step_id: str | None = Field(default=None, max_length=64)
    data: dict[str, Any] | None = _json(nullable=False)
    at: datetime | None = _when()


class WakeupRow(SQLModel, table=True):
    """Something due at a time: a retry, a timer, an approval deadline. Survives restarts."""

    __tablename__ = "wakeups"
    __table_args__ = (
        UniqueConstraint("execution_id", "step_id", "kind", "key", name="uq_wakeup"),
        Index("ix_wakeups_due", "done", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    execution_id: str = Field(foreign_key="executions.id", index=True, max_length=36)
    step_id: str = Field(max_length=64)
    kind: str = Field(max_length=20)  # retry | timer | approval_timeout
    key: str = Field(default="", max_length=64)  # e.g. the attempt number
    due_at: datetime | None = _when(nullable=False)
    done: bool = False
    created_at: datetime | None = _when()


class AgentRow(SQLModel, table=True):
    """A registered agent a step can call."""

    __tablename__ = "agents"

    name: str = Field(primary_key=True, max_length=100)
    kind: str = Field(max_length=20)  # demo | http | openai | command
    config: dict[str, Any] | None = _json()
    capacity: int = 1
    timeout_seconds: float | None = None
    owner_team: str | None = Field(default=None, max_length=100)
    shared: bool = True
    enabled: bool = True
    description: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime | None = _when()
    updated_at: datetime | None = _when()


class UserRow(SQLModel, table=True):
    """A person: an account that signs in (local password or single sign-on) and can be
    assigned approvals."""

    __tablename__ = "users"

    username: str = Field(primary_key=True, max_length=100)
    email: str | None = Field(default=None, index=True, max_length=200)
    display_name: str | None = Field(default=None, max_length=200)
    password_hash: str | None = Field(default=None, max_length=200)  # argon2; None: no local
    source: str = Field(default="local", max_length=20)  # local | oidc
    active: bool = True
    failed_logins: int = 0
    locked_until: datetime | None = _when()
    last_login_at: datetime | None = _when()
    created_at: datetime | None = _when()


class TeamMemberRow(SQLModel, table=True):
    """Membership of a user in a team, with the role they hold there."""

    __tablename__ = "team_members"

    team: str = Field(primary_key=True, max_length=100)
    username: str = Field(primary_key=True, foreign_key="users.username", max_length=100)
    role: str = Field(default="member", max_length=40)


class RoleGrantRow(SQLModel, table=True):
    """An access role (designer, operator, viewer, approver, admin) held in a team, or in
    every team when `team` is '*'."""

    __tablename__ = "role_grants"

    username: str = Field(primary_key=True, foreign_key="users.username", max_length=100)
    team: str = Field(primary_key=True, max_length=100)
    role: str = Field(primary_key=True, max_length=20)
    granted_by: str | None = Field(default=None, max_length=100)
    granted_at: datetime | None = _when()


class ShareRow(SQLModel, table=True):
    """A process or agent shared with another team ('read': see and use; 'full': also edit)."""

    __tablename__ = "shares"

    resource_type: str = Field(primary_key=True, max_length=20)  # process | agent
    resource_name: str = Field(primary_key=True, max_length=200)
    team: str = Field(primary_key=True, max_length=100)
    access: str = Field(default="read", max_length=10)
    created_by: str | None = Field(default=None, max_length=100)
    created_at: datetime | None = _when()


class SessionRow(SQLModel, table=True):
    """A signed-in browser. The cookie holds a random token; only its hash is stored."""

    __tablename__ = "sessions"

    id: str = Field(primary_key=True, max_length=64)  # sha256 of the cookie token
    username: str = Field(foreign_key="users.username", index=True, max_length=100)
    ticket_hash: str | None = Field(default=None, index=True, max_length=64)  # one-time
    created_at: datetime | None = _when()
    expires_at: datetime | None = _when()
    last_seen_at: datetime | None = _when()
    revoked: bool = False
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=300)


class ApiTokenRow(SQLModel, table=True):
    """A personal API token; shown once, stored as a hash."""

    __tablename__ = "api_tokens"

    id: str = Field(primary_key=True, max_length=36)
    username: str = Field(foreign_key="users.username", index=True, max_length=100)
    name: str = Field(max_length=100)
    token_hash: str = Field(unique=True, max_length=64)
    prefix: str = Field(max_length=16)  # the first characters, to recognise it in lists
    created_at: datetime | None = _when()
    expires_at: datetime | None = _when()
    last_used_at: datetime | None = _when()
    revoked_at: datetime | None = _when()


class AuditRow(SQLModel, table=True):
    """One audit entry. Append-only: nothing in the code updates or deletes these rows, and
    each entry's hash covers the previous entry's hash, so any change breaks the chain."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_at", "at"), Index("ix_audit_actor_at", "actor", "at"))

    seq: int = Field(primary_key=True)  # 1, 2, 3 … assigned under the write lock
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    actor: str = Field(max_length=200)
    action: str = Field(index=True, max_length=60)
    resource_type: str = Field(max_length=40)
    resource_id: str = Field(max_length=200)
    outcome: str = Field(default="ok", max_length=10)  # ok | denied | failed
    details: dict[str, Any] | None = _json()
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=300)
    classification: str = Field(default="internal", max_length=20)
    retention_days: int = 2557
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class ApprovalRow(SQLModel, table=True):
    """A request for a human decision; created in the transaction that opened it."""

    __tablename__ = "approvals"
    __table_args__ = (
        UniqueConstraint("execution_id", "step_id", "visit", name="uq_approval_visit"),
        Index("ix_approvals_status_deadline", "status", "deadline"),
    )

    id: str = Field(primary_key=True, max_length=36)
    execution_id: str = Field(foreign_key="executions.id", index=True, max_length=36)
    step_id: str = Field(max_length=64)
    visit: int = 1
    process_name: str = Field(max_length=200)
    title: str = Field(sa_column=Column(Text, nullable=False))
    description: str | None = Field(default=None, sa_column=Column(Text))
    artifacts: list[Any] | None = _json()
    assignees: list[Any] | None = _json()
    escalate_to: list[Any] | None = _json()
    required_approvals: int = 1
    status: str = Field(default="pending", max_length=20)
    deadline: datetime | None = _when()
    reminder_every_seconds: float | None = None
    last_reminder_at: datetime | None = _when()
    escalated: bool = False
    requested_by: str | None = Field(default=None, max_length=200)
    options: dict[str, Any] | None = _json()
    created_at: datetime | None = _when()
    decided_at: datetime | None = _when()


class ApprovalDecisionRow(SQLModel, table=True):
    """One person's decision on a request (N-of-M keeps several)."""

    __tablename__ = "approval_decisions"

    id: int | None = Field(default=None, primary_key=True)
    approval_id: str = Field(foreign_key="approvals.id", index=True, max_length=36)
    decided_by: str = Field(max_length=100)
    on_behalf_of: str | None = Field(default=None, max_length=100)
    decision: str = Field(max_length=20)
    comment: str | None = Field(default=None, sa_column=Column(Text))
    edited: Any = _json()
    diff: str | None = Field(default=None, sa_column=Column(Text))
    at: datetime | None = _when()


class DelegationRow(SQLModel, table=True):
    """An assignee handed a request to someone else."""

    __tablename__ = "approval_delegations"

    id: int | None = Field(default=None, primary_key=True)
    approval_id: str = Field(foreign_key="approvals.id", index=True, max_length=36)
    from_user: str = Field(max_length=100)
    to_user: str = Field(max_length=100)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime | None = _when()


class ScheduleRow(SQLModel, table=True):
    """A schedule trigger of the newest published version of a process."""

    __tablename__ = "schedules"

    process_name: str = Field(primary_key=True, max_length=200)
    trigger_id: str = Field(primary_key=True, max_length=100)
    definition_id: str = Field(foreign_key="process_definitions.id", max_length=36)
    cron: str = Field(max_length=100)
    timezone: str = Field(default="UTC", max_length=64)
    input: dict[str, Any] | None = _json()
    next_fire_at: datetime | None = _when(index=True)
    checked_until: datetime | None = _when()
    created_at: datetime | None = _when()


class TriggerFiringRow(SQLModel, table=True):
    """One schedule slot: claimed once (the primary key makes it once with many workers)."""

    __tablename__ = "trigger_firings"

    process_name: str = Field(primary_key=True, max_length=200)
    trigger_id: str = Field(primary_key=True, max_length=100)
    slot: datetime = Field(sa_column=Column(UTCDateTime(), primary_key=True))
    status: str = Field(max_length=20)  # claimed | started | skipped | failed
    execution_id: str | None = Field(default=None, max_length=36)
    message: str | None = Field(default=None, sa_column=Column(Text))
    at: datetime | None = _when()


class SubscriptionRow(SQLModel, table=True):
    """An outbound webhook: execution events POSTed to a URL, signed with HMAC-SHA256."""

    __tablename__ = "event_subscriptions"

    id: str = Field(primary_key=True, max_length=36)
    url: str = Field(sa_column=Column(Text, nullable=False))
    process_name: str | None = Field(default=None, index=True, max_length=200)  # None: all
    events: list[Any] | None = _json()
    secret: str = Field(max_length=200)  # the signing key; never shown after creation
    enabled: bool = True
    created_at: datetime | None = _when()
