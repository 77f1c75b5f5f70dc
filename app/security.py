"""Who may do what: permissions, roles and the one policy every entry point asks.

Pages, the REST API, webhooks and the CLI all decide through `Policy` (IT5 §5): a
`Principal` (who is asking, with the roles they hold per team) and a resource's owning team
and shares go in; an allow or a `Denied` with a reason comes out. Nothing else in the code
compares roles.

Model (IT5 §4.2, §5.1–5.2):
- A role is held in a team, or in every team (team '*'). `admin` is only meaningful as '*'.
- Processes and agents are owned by a team (`owner`; none means the whole organisation).
  Executions inherit their process's team. Sharing gives another team 'read' (see, start,
  use) or 'full' access.
- Approvers see only the executions that asked them for a decision, limited to the approval
  steps and their context (scope `approval`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "ALL_TEAMS",
    "ROLE_PERMISSIONS",
    "SYSTEM",
    "Denied",
    "Permission",
    "Policy",
    "Principal",
    "Role",
    "Scope",
]

ALL_TEAMS = "*"


class Permission(enum.StrEnum):
    PROCESS_CREATE = "process:create"
    PROCESS_READ = "process:read"
    PROCESS_UPDATE = "process:update"
    PROCESS_DELETE = "process:delete"
    PROCESS_PUBLISH = "process:publish"
    EXECUTION_TRIGGER = "execution:trigger"
    EXECUTION_VIEW = "execution:view"
    EXECUTION_CANCEL = "execution:cancel"
    EXECUTION_RETRY = "execution:retry"
    APPROVAL_DECIDE = "approval:decide"
    APPROVAL_DELEGATE = "approval:delegate"
    ADMIN_VIEW_ALL = "admin:view_all"
    ADMIN_MANAGE_LIMITS = "admin:manage_limits"
    # Beyond IT5's list, for resources it does not name: the agent registry, accounts and
    # the audit log. Designers manage their team's agents; the rest is admin only.
    AGENT_MANAGE = "agent:manage"
    ADMIN_MANAGE_USERS = "admin:manage_users"
    AUDIT_READ = "audit:read"


class Role(enum.StrEnum):
    DESIGNER = "designer"
    OPERATOR = "operator"
    VIEWER = "viewer"
    APPROVER = "approver"
    ADMIN = "admin"


P = Permission
ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.DESIGNER: frozenset({P.PROCESS_CREATE, P.PROCESS_READ, P.PROCESS_UPDATE,
                              P.PROCESS_DELETE, P.PROCESS_PUBLISH, P.AGENT_MANAGE}),
    Role.OPERATOR: frozenset({P.PROCESS_READ, P.EXECUTION_TRIGGER, P.EXECUTION_VIEW,
                              P.EXECUTION_CANCEL, P.EXECUTION_RETRY}),
    Role.VIEWER: frozenset({P.PROCESS_READ, P.EXECUTION_VIEW}),
    Role.APPROVER: frozenset({P.EXECUTION_VIEW, P.APPROVAL_DECIDE, P.APPROVAL_DELEGATE}),
    Role.ADMIN: frozenset(Permission),
}
# What 'read' sharing passes on of a role the user holds in the team it was shared with.
SHARED_READ = frozenset({P.PROCESS_READ, P.EXECUTION_TRIGGER, P.EXECUTION_VIEW})


class Scope(enum.StrEnum):
    FULL = "full"
    APPROVAL = "approval"  # only the approval steps assigned to the viewer, plus context


class Denied(PermissionError):
    """The principal may not do this; `reason` is safe to show to them."""

    def __init__(self, reason: str, permission: Permission | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permission = permission


@dataclass(frozen=True)
class Principal:
    """Someone acting: a signed-in user, a token's owner, or the system itself."""

    username: str
    grants: frozenset[tuple[str, Role]] = frozenset()  # (team or '*', role)
    teams: frozenset[str] = frozenset()  # memberships (for approvals and defaults)
    display_name: str | None = None
    email: str | None = None
    via: str = "session"  # session | token | cli | system | webhook
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        return (ALL_TEAMS, Role.ADMIN) in self.grants

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(role for _, role in self.grants)

    @property
    def home_team(self) -> str | None:
        """The team new processes belong to by default."""
        owned = sorted(t for t, _ in self.grants if t != ALL_TEAMS) or sorted(self.teams)
        return owned[0] if owned else None

    def permissions_in(self, team: str | None) -> frozenset[Permission]:
        """Permissions held for a resource of `team` (None: owned by the organisation, so
        a role held in any team counts)."""
        out: set[Permission] = set()
        for t, role in self.grants:
            if team is None or t in (ALL_TEAMS, team):
                out |= ROLE_PERMISSIONS[role]
        return frozenset(out)

    def anywhere(self) -> frozenset[Permission]:
        return self.permissions_in(None)


SYSTEM = Principal("system", frozenset({(ALL_TEAMS, Role.ADMIN)}), via="system")


class Policy:
    """The decisions. Pure: callers load rows, the policy looks at plain values."""

    def has(self, p: Principal, permission: Permission, team: str | None = None,
            shares: Mapping[str, str] | None = None) -> bool:
        if p.is_admin or permission in p.permissions_in(team):
            return True
        for shared_team, access in (shares or {}).items():
            held = p.permissions_in(shared_team) if shared_team in _teams_of(p) else frozenset()
            if access == "full" and permission in held:
                return True
            if access == "read" and permission in SHARED_READ and permission in held:
                return True
        return False

    def require(self, p: Principal, permission: Permission, team: str | None = None,
                shares: Mapping[str, str] | None = None, what: str = "") -> None:
        if not self.has(p, permission, team, shares):
            where = f" of team '{team}'" if team else ""
            raise Denied(f"'{p.username}' lacks {permission.value} on {what or 'this'}{where}",
                         permission)

    # --- processes -----------------------------------------------------------------------

    def require_trigger(self, p: Principal, process: str, team: str | None,
                        shares: Mapping[str, str] | None = None,
                        allowed_users: Iterable[str] = ()) -> None:
        """IT5 §5.3 can_trigger_process: permission, allowed users, team (rate limits are
        checked by the caller, which holds the counters)."""
        self.require(p, P.EXECUTION_TRIGGER, team, shares, f"process '{process}'")
        allowed = list(allowed_users)
        if allowed and not p.is_admin and p.username not in allowed \
                and (p.email or "") not in allowed:
            raise Denied(f"'{p.username}' is not in the allowed users of process '{process}'",
                         P.EXECUTION_TRIGGER)

    def visible_process_teams(self, p: Principal) -> frozenset[str] | None:
        """Teams whose processes `p` can read (None: all of them)."""
        if p.is_admin or any(t == ALL_TEAMS and P.PROCESS_READ in ROLE_PERMISSIONS[r]
                             for t, r in p.grants):
            return None
        return frozenset(t for t, r in p.grants if P.PROCESS_READ in ROLE_PERMISSIONS[r])

    # --- executions ----------------------------------------------------------------------

    def execution_scope(self, p: Principal, team: str | None, started_by: str | None,
                        is_approver: bool, shares: Mapping[str, str] | None = None
                        ) -> Scope:
        """IT5 §4.4 / §5.3 can_view_execution; raises Denied."""
        if self.has(p, P.EXECUTION_VIEW, team, shares) or (
                started_by is not None and started_by == p.username):
            return Scope.FULL
        if is_approver:
            return Scope.APPROVAL
        raise Denied(f"'{p.username}' has no access to this execution", P.EXECUTION_VIEW)

    def visible_execution_teams(self, p: Principal) -> frozenset[str] | None:
        """Teams whose executions `p` sees in full (None: every team); callers add the
        executions `p` started and those that asked `p` for a decision."""
        if p.is_admin or any(t == ALL_TEAMS and P.EXECUTION_VIEW in ROLE_PERMISSIONS[r]
                             for t, r in p.grants):
            return None
        return frozenset(t for t, r in p.grants if P.EXECUTION_VIEW in ROLE_PERMISSIONS[r])


def _teams_of(p: Principal) -> frozenset[str]:
    return p.teams | frozenset(t for t, _ in p.grants if t != ALL_TEAMS)
