"""The policy every entry point asks (app.security): IT5 §5.2's role × permission matrix,
team scoping, organisation-wide grants, sharing, allowed users and who sees an execution."""

from __future__ import annotations

import pytest

from app.security import (
    ROLE_PERMISSIONS,
    SYSTEM,
    Denied,
    Permission,
    Policy,
    Principal,
    Role,
    Scope,
)

P = Permission
policy = Policy()

# IT5 §5.2, word for word: the thirteen permissions of §5.1 per role.
IT5_PERMISSIONS = frozenset({
    P.PROCESS_CREATE, P.PROCESS_READ, P.PROCESS_UPDATE, P.PROCESS_DELETE, P.PROCESS_PUBLISH,
    P.EXECUTION_TRIGGER, P.EXECUTION_VIEW, P.EXECUTION_CANCEL, P.EXECUTION_RETRY,
    P.APPROVAL_DECIDE, P.APPROVAL_DELEGATE, P.ADMIN_VIEW_ALL, P.ADMIN_MANAGE_LIMITS})
IT5_MATRIX = {
    Role.DESIGNER: {P.PROCESS_CREATE, P.PROCESS_READ, P.PROCESS_UPDATE, P.PROCESS_DELETE,
                    P.PROCESS_PUBLISH},
    Role.OPERATOR: {P.PROCESS_READ, P.EXECUTION_TRIGGER, P.EXECUTION_VIEW, P.EXECUTION_CANCEL,
                    P.EXECUTION_RETRY},
    Role.VIEWER: {P.PROCESS_READ, P.EXECUTION_VIEW},
    Role.APPROVER: {P.EXECUTION_VIEW, P.APPROVAL_DECIDE},
    Role.ADMIN: set(IT5_PERMISSIONS),
}
# What we add: permissions for resources IT5 does not name (agents, accounts, the audit
# log), and delegation for approvers (IT5 lists APPROVAL_DELEGATE in §5.1 but gives it to
# no role but admin; here the person asked to decide may hand the request on).
BEYOND_IT5 = {Role.DESIGNER: {P.AGENT_MANAGE}, Role.OPERATOR: set(), Role.VIEWER: set(),
              Role.APPROVER: {P.APPROVAL_DELEGATE},
              Role.ADMIN: {P.AGENT_MANAGE, P.ADMIN_MANAGE_USERS, P.AUDIT_READ}}


def who(*grants: tuple[str, Role], teams: set[str] | None = None, name: str = "pat",
        email: str | None = None) -> Principal:
    return Principal(name, frozenset(grants), frozenset(teams or ()), email=email)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_a_role_held_in_a_team_grants_exactly_its_it5_permissions_there(
        role: Role, permission: Permission) -> None:
    p = who(("ops", role))
    expected = permission in IT5_MATRIX[role] | BEYOND_IT5[role]

    assert policy.has(p, permission, "ops") is expected


@pytest.mark.parametrize("role", list(Role))
def test_the_role_table_is_it5s_table_plus_the_documented_additions(role: Role) -> None:
    assert ROLE_PERMISSIONS[role] == IT5_MATRIX[role] | BEYOND_IT5[role]
    assert (ROLE_PERMISSIONS[role] - BEYOND_IT5[role]) & IT5_PERMISSIONS == IT5_MATRIX[role]


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.ADMIN])
def test_a_team_role_gives_nothing_on_another_teams_resources(role: Role) -> None:
    p = who(("ops", role))

    assert not any(policy.has(p, permission, "sales") for permission in Permission)


def test_a_team_scoped_admin_grant_is_not_an_organisation_administrator() -> None:
    p = who(("ops", Role.ADMIN))

    assert not p.is_admin
    assert policy.has(p, P.PROCESS_PUBLISH, "ops")
    assert not policy.has(p, P.PROCESS_READ, "sales")


def test_an_organisation_wide_grant_counts_in_every_team() -> None:
    p = who(("*", Role.VIEWER))

    assert policy.has(p, P.PROCESS_READ, "sales") and policy.has(p, P.EXECUTION_VIEW, "ops")
    assert not policy.has(p, P.EXECUTION_TRIGGER, "sales")
    assert policy.visible_process_teams(p) is None
    assert policy.visible_execution_teams(p) is None


def test_the_administrator_may_do_everything_everywhere() -> None:
    admin = who(("*", Role.ADMIN))

    assert admin.is_admin and SYSTEM.is_admin
    assert all(policy.has(admin, permission, "any-team") for permission in Permission)
    assert policy.visible_process_teams(admin) is None


def test_a_resource_of_the_organisation_is_open_to_a_role_held_in_any_team() -> None:
    p = who(("ops", Role.OPERATOR))

    assert policy.has(p, P.EXECUTION_TRIGGER, None)
    assert not policy.has(p, P.PROCESS_PUBLISH, None)


def test_read_sharing_lets_the_other_team_see_and_start_but_not_change_or_cancel() -> None:
    operator, designer = who(("ops", Role.OPERATOR)), who(("ops", Role.DESIGNER))
    shares = {"ops": "read"}

    for permission in (P.PROCESS_READ, P.EXECUTION_TRIGGER, P.EXECUTION_VIEW):
        assert policy.has(operator, permission, "sales", shares), permission
    assert not policy.has(operator, P.EXECUTION_CANCEL, "sales", shares)
    assert not policy.has(designer, P.PROCESS_UPDATE, "sales", shares)


def test_full_sharing_passes_on_every_permission_the_role_holds_in_the_shared_team() -> None:
    designer = who(("ops", Role.DESIGNER))
    shares = {"ops": "full"}

    assert policy.has(designer, P.PROCESS_UPDATE, "sales", shares)
    assert policy.has(designer, P.PROCESS_PUBLISH, "sales", shares)
    assert not policy.has(designer, P.EXECUTION_TRIGGER, "sales", shares)  # not a designer's


def test_sharing_with_a_team_helps_only_its_members() -> None:
    outsider = who(("legal", Role.OPERATOR))

    assert not policy.has(outsider, P.PROCESS_READ, "sales", {"ops": "full"})


def test_a_membership_alone_gives_no_permission_even_with_sharing() -> None:
    member = who(teams={"ops"})

    assert not policy.has(member, P.PROCESS_READ, "sales", {"ops": "full"})
    assert member.anywhere() == frozenset()


def test_require_raises_denied_with_a_reason_that_names_what_is_missing() -> None:
    with pytest.raises(Denied) as e:
        policy.require(who(("ops", Role.VIEWER)), P.PROCESS_PUBLISH, "ops", what="process 'x'")

    assert e.value.permission is P.PROCESS_PUBLISH
    assert e.value.reason == "'pat' lacks process:publish on process 'x' of team 'ops'"


def test_triggering_needs_the_permission_first() -> None:
    with pytest.raises(Denied, match="lacks execution:trigger"):
        policy.require_trigger(who(("ops", Role.VIEWER)), "p", "ops")


def test_allowed_users_restrict_triggering_by_username_or_email() -> None:
    by_name = who(("ops", Role.OPERATOR), name="pat")
    by_mail = who(("ops", Role.OPERATOR), name="sam", email="sam@example.org")
    other = who(("ops", Role.OPERATOR), name="kim")
    allowed = ["pat", "sam@example.org"]

    policy.require_trigger(by_name, "p", "ops", allowed_users=allowed)
    policy.require_trigger(by_mail, "p", "ops", allowed_users=allowed)
    with pytest.raises(Denied, match="not in the allowed users of process 'p'"):
        policy.require_trigger(other, "p", "ops", allowed_users=allowed)


def test_administrators_are_not_held_back_by_allowed_users() -> None:
    policy.require_trigger(who(("*", Role.ADMIN)), "p", "ops", allowed_users=["pat"])


def test_the_owner_team_sees_an_execution_in_full() -> None:
    assert policy.execution_scope(who(("ops", Role.VIEWER)), "ops", "someone", False) \
        is Scope.FULL


def test_whoever_started_an_execution_sees_it_in_full_without_a_role_there() -> None:
    assert policy.execution_scope(who(name="pat"), "sales", "pat", False) is Scope.FULL


def test_an_approver_of_another_team_sees_only_the_approval_steps() -> None:
    approver = who(("legal", Role.APPROVER), name="lee")

    assert policy.execution_scope(approver, "marketing", "mia", True) is Scope.APPROVAL


def test_anyone_else_is_denied_the_execution() -> None:
    with pytest.raises(Denied, match="no access to this execution"):
        policy.execution_scope(who(("legal", Role.VIEWER)), "marketing", "mia", False)


def test_read_sharing_of_the_process_opens_its_executions_to_the_other_team() -> None:
    viewer = who(("ops", Role.VIEWER))

    assert policy.execution_scope(viewer, "sales", "sam", False, {"ops": "read"}) is Scope.FULL


def test_visible_teams_are_those_where_a_role_gives_the_permission() -> None:
    p = who(("ops", Role.OPERATOR), ("legal", Role.APPROVER), ("brand", Role.DESIGNER))

    assert policy.visible_process_teams(p) == {"ops", "brand"}
    assert policy.visible_execution_teams(p) == {"ops", "legal"}


def test_the_home_team_is_the_first_team_with_a_role_else_the_first_membership() -> None:
    assert who(("sales", Role.VIEWER), ("ops", Role.DESIGNER), ("*", Role.VIEWER)
               ).home_team == "ops"
    assert who(teams={"zeta", "alpha"}).home_team == "alpha"
    assert who().home_team is None
