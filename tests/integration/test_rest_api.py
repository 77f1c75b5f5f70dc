"""The REST API over HTTP against the real services: authentication, every route, errors,
audit, and the access matrix of every role × every /api/v1 route."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.rest import create_app, operations
from app.settings import Settings
from tests.integration.conftest import ROOT, make_settings

pytestmark = pytest.mark.integration

PAYROLL = """
name: payroll
owner: ops
input:
  amount: {type: integer, required: true}
triggers:
  - id: open-door
    type: webhook
steps:
  - id: check
    type: human_approval
    title: "Check {{input.amount}}"
    assignees: [appr]
  - id: pay
    type: agent_task
    agent: demo-echo
    depends_on: check
    message: "pay {{input.amount}}"
"""
DRAFT = """
name: onboarding
owner: ops
steps:
  - id: hello
    type: agent_task
    agent: demo-echo
    message: hi
"""
ROLES = {"admin": [("*", "admin")], "designer": [("ops", "designer")],
         "operator": [("ops", "operator")], "viewer": [("ops", "viewer")],
         "approver": [("finance", "approver")], "nobody": []}
USERNAMES = {"approver": "appr"}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return replace(make_settings(database_url, tmp_path / "home"), trigger_rate_per_minute=5)


@dataclass
class World:
    c: Any
    http: httpx.AsyncClient
    tokens: dict[str, str]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def as_(self, role: str, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**kw.pop("headers", {}), **self.auth(role)}
        return await self.http.request(method, path, headers=headers, **kw)


@pytest.fixture
async def world(container: Any) -> AsyncIterator[World]:
    tokens = {}
    for role, grants in ROLES.items():
        name = USERNAMES.get(role, role)
        await container.identity.create_user(name, "a-long-password", roles=grants)
        tokens[role] = (await container.identity.create_token(name, "tests")).token
    await container.definitions.import_text(PAYROLL, publish=True)
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield World(container, http, tokens)


async def _start_payroll(w: World, amount: int = 5) -> str:
    answer = await w.as_("operator", "POST", "/api/v1/executions",
                         json={"process": "payroll", "input": {"amount": amount}})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def _approval_id(w: World, execution_id: str) -> str:
    for _ in range(100):
        rows = await w.c.approvals.list(status="pending")
        found = [r.id for r, _ in rows if r.execution_id == execution_id]
        if found:
            return str(found[0])
        await asyncio.sleep(0.05)
    raise AssertionError("no approval request opened")


# --- authentication ------------------------------------------------------------------------


async def test_requests_without_valid_credentials_get_401_and_bad_tokens_are_audited(
        world: World) -> None:
    bare = await world.http.get("/api/v1/me")
    assert bare.status_code == 401 and bare.headers["www-authenticate"].startswith("Bearer")
    assert bare.json()["error"]["code"] == "unauthenticated"
    for header in ("Bearer trp_not-a-real-token", "Basic abc", "Bearer "):
        answer = await world.http.get("/api/v1/me", headers={"Authorization": header})
        assert answer.status_code == 401, header
    failed = await world.c.audit.query(action="auth.failed")
    assert len(failed) == 3 and {r.actor for r in failed} == {"anonymous"}
    assert all("trp_not" not in str(r.details) for r in failed)
    me = (await world.as_("designer", "GET", "/api/v1/me")).json()
    assert me["username"] == "designer" and me["roles"] == [{"team": "ops", "role": "designer"}]
    assert "process:publish" in me["permissions"] and not me["is_admin"]


async def test_a_revoked_token_stops_working_and_a_new_one_is_shown_once(world: World) -> None:
    made = await world.as_("viewer", "POST", "/api/v1/me/tokens", json={"name": "laptop"})
    assert made.status_code == 201 and made.json()["token"].startswith("trp_")
    fresh = {"Authorization": f"Bearer {made.json()['token']}"}
    assert (await world.http.get("/api/v1/me", headers=fresh)).status_code == 200
    listed = (await world.as_("viewer", "GET", "/api/v1/me/tokens")).json()["items"]
    assert {t["name"] for t in listed} == {"tests", "laptop"}
    assert all("token" not in t for t in listed)
    gone = await world.as_("viewer", "DELETE", f"/api/v1/me/tokens/{made.json()['id']}")
    assert gone.status_code == 200 and gone.json()["revoked_at"]
    assert (await world.http.get("/api/v1/me", headers=fresh)).status_code == 401
    other = await world.as_("operator", "DELETE", f"/api/v1/me/tokens/{made.json()['id']}")
    assert other.status_code == 404


async def test_cookie_sessions_need_a_same_site_origin_for_changes(world: World) -> None:
    _, ticket = await world.c.identity.start_session("operator")
    cookie = await world.c.identity.adopt(ticket)
    world.http.cookies.set("trinity_session", cookie)
    body = {"process": "payroll", "input": {"amount": 1}}
    assert (await world.http.get("/api/v1/me")).json()["via"] == "session"
    forged = await world.http.post("/api/v1/executions", json=body,
                                   headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "csrf"
    bare = await world.http.post("/api/v1/executions", json=body)
    assert bare.status_code == 403
    same = await world.http.post("/api/v1/executions", json=body,
                                 headers={"Origin": "http://testserver"})
    assert same.status_code == 201
    by_referer = await world.http.post("/api/v1/executions", json=body,
                                       headers={"Referer": "http://testserver/executions"})
    assert by_referer.status_code == 201
    world.http.cookies.clear()


# --- processes -----------------------------------------------------------------------------


async def test_processes_round_trip_as_yaml_through_their_life_cycle(world: World) -> None:
    yaml_headers = {**world.auth("designer"), "Content-Type": "application/yaml"}
    made = await world.http.post("/api/v1/processes", content=DRAFT, headers=yaml_headers)
    assert made.status_code == 201 and made.json()["status"] == "draft"
    again = await world.as_("designer", "PUT", "/api/v1/processes/onboarding",
                            json={"yaml": DRAFT})
    assert again.status_code == 200 and again.json()["created"] is False
    wrong = await world.as_("designer", "PUT", "/api/v1/processes/other", json={"yaml": DRAFT})
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "name_mismatch"
    text = await world.as_("viewer", "GET", "/api/v1/processes/onboarding/yaml")
    assert text.text == DRAFT and text.headers["content-type"].startswith("application/yaml")
    published = await world.as_("designer", "POST",
                                "/api/v1/processes/onboarding/versions/1/publish")
    assert published.status_code == 200 and published.json()["status"] == "published"
    twice = await world.as_("designer", "POST", "/api/v1/processes/onboarding/versions/1/publish")
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "conflict"
    copy = await world.as_("designer", "POST",
                           "/api/v1/processes/onboarding/versions/1/new-version")
    assert copy.status_code == 201 and copy.json()["version"] == "1.1"
    shown = (await world.as_("viewer", "GET", "/api/v1/processes/onboarding")).json()
    assert {v["version"] for v in shown["versions"]} == {"1", "1.1"}
    one = await world.as_("viewer", "GET", "/api/v1/processes/onboarding/versions/1.1")
    assert 'version: "1.1"' in one.json()["yaml"]
    deleted = await world.as_("designer", "DELETE", "/api/v1/processes/onboarding/versions/1.1")
    assert deleted.status_code == 200
    no_delete = await world.as_("designer", "DELETE", "/api/v1/processes/onboarding/versions/1")
    assert no_delete.status_code == 409
    archived = await world.as_("designer", "POST",
                               "/api/v1/processes/onboarding/versions/1/archive")
    assert archived.json()["status"] == "archived"
    names = [p["name"] for p in (await world.as_("viewer", "GET", "/api/v1/processes")).json()[
        "items"]]
    assert "payroll" in names
    assert (await world.as_("viewer", "GET", "/api/v1/processes/nothing")).status_code == 404


async def test_validation_reports_issues_with_lines_and_saves_nothing(world: World) -> None:
    broken = "name: x\nsteps:\n  - id: a\n    type: agent_task\n    agnet: demo-echo\n"
    answer = await world.as_("viewer", "POST", "/api/v1/processes/validate",
                             content=broken, headers={"Content-Type": "application/yaml"})
    body = answer.json()
    assert answer.status_code == 200 and body["valid"] is False
    assert any(i["line"] == 5 and i["code"] for i in body["issues"])
    saved = await world.as_("designer", "POST", "/api/v1/processes", json={"yaml": broken})
    assert saved.status_code == 422 and saved.json()["error"]["code"] == "invalid_definition"
    assert saved.json()["error"]["details"][0]["line"]
    empty = await world.as_("designer", "POST", "/api/v1/processes", content=b"",
                            headers={"Content-Type": "application/yaml"})
    assert empty.status_code == 422
    schema = (await world.as_("viewer", "GET", "/api/v1/schema")).json()
    assert "properties" in schema and "steps" in schema["properties"]


# --- executions and approvals --------------------------------------------------------------


async def test_executions_start_list_with_a_cursor_show_and_act(world: World) -> None:
    ids = [await _start_payroll(world, n) for n in range(3)]
    first = (await world.as_("viewer", "GET", "/api/v1/executions?limit=2")).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = (await world.as_("viewer", "GET", "/api/v1/executions",
                            params={"limit": 2, "cursor": first["next_cursor"]})).json()
    seen = [x["id"] for x in first["items"] + rest["items"]]
    assert sorted(seen) == sorted(ids) and rest["next_cursor"] is None
    filtered = (await world.as_("viewer", "GET", "/api/v1/executions",
                                params={"process": "nothing"})).json()
    assert filtered["items"] == []
    bad = await world.as_("viewer", "GET", "/api/v1/executions", params={"cursor": "@@"})
    assert bad.status_code == 422
    view = (await world.as_("viewer", "GET", f"/api/v1/executions/{ids[0]}")).json()
    assert view["scope"] == "full" and {s["id"] for s in view["steps"]} == {"check", "pay"}
    events = (await world.as_("viewer", "GET", f"/api/v1/executions/{ids[0]}/events")).json()
    assert events["items"][0]["seq"] == 1
    cancelled = await world.as_("operator", "POST", f"/api/v1/executions/{ids[0]}/cancel",
                                json={"reason": "test"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    retried = await world.as_("operator", "POST", f"/api/v1/executions/{ids[0]}/retry")
    assert retried.status_code == 201 and retried.json()["id"] != ids[0]
    resumed = await world.as_("operator", "POST", f"/api/v1/executions/{ids[0]}/resume")
    assert resumed.status_code == 409
    assert (await world.as_("viewer", "GET", "/api/v1/executions/missing")).status_code == 404


async def test_start_refusals_are_clear(world: World) -> None:
    bad_input = await world.as_("operator", "POST", "/api/v1/executions",
                                json={"process": "payroll", "input": {"amount": "many"}})
    assert bad_input.status_code == 422
    assert bad_input.json()["error"]["details"][0]["field"] == "amount"
    shape = await world.as_("operator", "POST", "/api/v1/executions", json={"input": []})
    err = shape.json()["error"]
    assert shape.status_code == 422 and err["code"] == "invalid_request"
    assert {d["field"] for d in err["details"]} == {"process", "input"}
    not_json = await world.as_("operator", "POST", "/api/v1/executions", content=b"{x",
                               headers={"Content-Type": "application/json"})
    assert not_json.status_code == 422
    huge = await world.as_("operator", "POST", "/api/v1/executions",
                           content=b"x" * 1_000_001, headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "too_large"
    for _ in range(4):
        await _start_payroll(world)
    limited = await world.as_("operator", "POST", "/api/v1/executions",
                              json={"process": "payroll", "input": {"amount": 1}})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 0
    unknown = await world.as_("operator", "GET", "/api/v1/nowhere")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


async def test_an_approver_sees_only_the_approval_steps_and_decides(world: World) -> None:
    execution_id = await _start_payroll(world, 42)
    approval_id = await _approval_id(world, execution_id)
    view = (await world.as_("approver", "GET", f"/api/v1/executions/{execution_id}")).json()
    assert view["scope"] == "approval" and [s["id"] for s in view["steps"]] == ["check"]
    assert "outputs" not in view and "cost" not in view
    events = (await world.as_("approver", "GET",
                              f"/api/v1/executions/{execution_id}/events")).json()["items"]
    assert events and {e["step_id"] for e in events} == {"check"}
    mine = (await world.as_("approver", "GET", "/api/v1/approvals")).json()["items"]
    assert [a["id"] for a in mine] == [approval_id]
    assert (await world.as_("approver", "GET", "/api/v1/approvals?all=true")).status_code == 403
    everyone = (await world.as_("admin", "GET", "/api/v1/approvals?all=true")).json()["items"]
    assert [a["id"] for a in everyone] == [approval_id]
    shown = await world.as_("approver", "GET", f"/api/v1/approvals/{approval_id}")
    assert shown.json()["title"] == "Check 42"
    decided = await world.as_("approver", "POST", f"/api/v1/approvals/{approval_id}/decide",
                              json={"decision": "approved", "comment": "fine"})
    assert decided.status_code == 200 and decided.json()["final"] is True
    again = await world.as_("approver", "POST", f"/api/v1/approvals/{approval_id}/decide",
                            json={"decision": "approved"})
    assert again.status_code == 409


async def test_delegation_hands_a_request_on(world: World) -> None:
    approval_id = await _approval_id(world, await _start_payroll(world))
    await world.c.identity.create_user("bob", None, roles=[("finance", "approver")])
    answer = await world.as_("approver", "POST", f"/api/v1/approvals/{approval_id}/delegate",
                             json={"to": "bob", "reason": "holiday"})
    assert answer.status_code == 200 and answer.json()["delegated_to"] == "bob"


async def test_a_request_cannot_be_delegated_to_someone_who_could_not_decide_it(
        world: World) -> None:
    approval_id = await _approval_id(world, await _start_payroll(world))
    await world.c.identity.create_user("vic", None, roles=[("finance", "viewer")])
    for to, says in (("vic", "may not decide approvals"), ("no-such-person", "no active user")):
        answer = await world.as_("approver", "POST",
                                 f"/api/v1/approvals/{approval_id}/delegate",
                                 json={"to": to, "reason": "holiday"})
        assert answer.status_code in (400, 409, 422), answer.text
        assert says in answer.json()["error"]["message"]
    row, _ = await world.c.approvals.get(approval_id)
    assert row.status == "pending"


# --- agents, admin views, webhooks ---------------------------------------------------------


async def test_agents_are_registered_and_tested(world: World) -> None:
    saved = await world.as_("designer", "PUT", "/api/v1/agents/helper",
                            json={"kind": "demo", "capacity": 2, "owner_team": "ops"})
    assert saved.status_code == 200 and saved.json()["capacity"] == 2
    bad = await world.as_("designer", "PUT", "/api/v1/agents/web", json={"kind": "http"})
    assert bad.status_code == 409 and "url" in bad.json()["error"]["message"]
    tested = await world.as_("designer", "POST", "/api/v1/agents/demo-echo/test")
    assert tested.status_code == 200 and tested.json()["ok"] is True
    names = {a["name"] for a in (await world.as_("viewer", "GET", "/api/v1/agents")).json()[
        "items"]}
    assert {"helper", "demo-echo"} <= names


async def test_audit_log_recovery_and_metrics_are_for_administrators(world: World) -> None:
    await _start_payroll(world)
    log = (await world.as_("admin", "GET", "/api/v1/audit",
                           params={"action": "execution."})).json()["items"]
    assert [e["action"] for e in log] == ["execution.started"]
    assert log[0]["actor"] == "operator"
    csv = await world.as_("admin", "GET", "/api/v1/audit", params={"format": "csv"})
    assert csv.text.startswith("seq,at,actor") and "execution.started" in csv.text
    report = (await world.as_("admin", "GET", "/api/v1/recovery")).json()
    assert report["now"]["dry_run"] is True and report["now"]["scanned"] >= 1
    metrics = await world.as_("admin", "GET", "/metrics")
    assert 'trinity_executions{status="running"} 1' in metrics.text
    assert "trinity_approvals_pending 1" in metrics.text
    assert "# TYPE trinity_queue_depth gauge" in metrics.text
    for path in ("/api/v1/audit", "/api/v1/recovery", "/metrics"):
        assert (await world.as_("operator", "GET", path)).status_code == 403
    assert (await world.http.get("/metrics")).status_code == 401
    count, breach = await world.c.audit.verify()
    assert count > 3 and breach is None


async def test_webhooks_go_through_the_gate(world: World) -> None:
    answer = await world.http.post("/api/v1/hooks/payroll/open-door", json={"amount": 3})
    assert answer.status_code == 202
    started = await world.c.audit.query(action="execution.started")
    assert started[0].actor == "webhook:open-door"
    for _ in range(5):
        await world.http.post("/api/v1/hooks/payroll/open-door", json={"amount": 3})
    limited = await world.http.post("/api/v1/hooks/payroll/open-door", json={"amount": 3})
    assert limited.status_code == 429


async def test_the_openapi_document_and_docs_page_work_offline(world: World) -> None:
    doc = (await world.http.get("/api/v1/openapi.json")).json()
    documented = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    assert documented == set(operations(create_app(world.c)))
    page = await world.http.get("/api/v1/docs")
    assert page.status_code == 200 and "/api/v1/executions" in page.text
    assert "cdn" not in page.text.lower()


async def test_an_unexpected_error_is_a_logged_500_without_a_trace() -> None:
    from starlette.requests import Request

    from app.rest.errors import to_response

    request = Request({"type": "http", "method": "GET", "path": "/api/v1/x", "headers": []})
    answer = to_response(RuntimeError("secret detail"), request)
    assert answer.status_code == 500 and b"secret detail" not in answer.body
    assert b'"internal"' in answer.body


# --- the access matrix ---------------------------------------------------------------------

ALL = frozenset(ROLES)
ALLOWED: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/api/v1/agents"): ALL,
    ("PUT", "/api/v1/agents/{name}"): frozenset({"admin", "designer"}),
    ("POST", "/api/v1/agents/{name}/test"): frozenset({"admin", "designer"}),
    ("GET", "/api/v1/approvals"): ALL,
    ("GET", "/api/v1/approvals/{approval_id}"): frozenset({"admin", "operator", "viewer",
                                                           "approver"}),
    ("POST", "/api/v1/approvals/{approval_id}/decide"): frozenset({"admin", "approver"}),
    ("POST", "/api/v1/approvals/{approval_id}/delegate"): frozenset({"admin", "approver"}),
    ("GET", "/api/v1/audit"): frozenset({"admin"}),
    ("GET", "/api/v1/executions"): ALL,
    ("POST", "/api/v1/executions"): frozenset({"admin", "operator"}),
    ("GET", "/api/v1/executions/{execution_id}"): frozenset({"admin", "operator", "viewer",
                                                             "approver"}),
    ("GET", "/api/v1/executions/{execution_id}/events"): frozenset({"admin", "operator",
                                                                    "viewer", "approver"}),
    ("POST", "/api/v1/executions/{execution_id}/cancel"): frozenset({"admin", "operator"}),
    ("POST", "/api/v1/executions/{execution_id}/pause"): frozenset({"admin", "operator"}),
    ("POST", "/api/v1/executions/{execution_id}/resume"): frozenset({"admin", "operator"}),
    ("POST", "/api/v1/executions/{execution_id}/retry"): frozenset({"admin", "operator"}),
    ("POST", "/api/v1/hooks/{process}/{trigger_id}"): ALL,  # public: the secret decides
    ("GET", "/api/v1/me"): ALL,
    ("GET", "/api/v1/me/tokens"): ALL,
    ("POST", "/api/v1/me/tokens"): ALL,
    ("DELETE", "/api/v1/me/tokens/{token_id}"): ALL,
    ("GET", "/api/v1/processes"): ALL,
    ("POST", "/api/v1/processes"): frozenset({"admin", "designer"}),
    ("POST", "/api/v1/processes/validate"): ALL,
    ("GET", "/api/v1/processes/{name}"): frozenset({"admin", "designer", "operator",
                                                    "viewer"}),
    ("PUT", "/api/v1/processes/{name}"): frozenset({"admin", "designer"}),
    ("GET", "/api/v1/processes/{name}/yaml"): frozenset({"admin", "designer", "operator",
                                                         "viewer"}),
    ("GET", "/api/v1/processes/{name}/versions/{version}"): frozenset(
        {"admin", "designer", "operator", "viewer"}),
    ("DELETE", "/api/v1/processes/{name}/versions/{version}"): frozenset({"admin",
                                                                          "designer"}),
    ("POST", "/api/v1/processes/{name}/versions/{version}/archive"): frozenset(
        {"admin", "designer"}),
    ("POST", "/api/v1/processes/{name}/versions/{version}/new-version"): frozenset(
        {"admin", "designer"}),
    ("POST", "/api/v1/processes/{name}/versions/{version}/publish"): frozenset(
        {"admin", "designer"}),
    ("GET", "/api/v1/recovery"): frozenset({"admin"}),
    ("GET", "/api/v1/schema"): ALL,
}


def _request_for(method: str, path: str, ids: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """A concrete, well-formed request for a route template."""
    name = "onboarding" if "/versions/" in path else "payroll"
    if path.startswith("/api/v1/agents"):
        name = "demo-echo"
    version = "1.1" if method == "DELETE" else "1"  # the draft new-version made
    url = path.format(name=name, version=version, execution_id=ids["execution"],
                      approval_id=ids["approval"], token_id="no-such-token",
                      process="payroll", trigger_id="open-door")
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("PUT", "/api/v1/agents/{name}"): {"json": {"kind": "demo"}},
        ("POST", "/api/v1/approvals/{approval_id}/decide"): {"json": {"decision": "approved"}},
        ("POST", "/api/v1/approvals/{approval_id}/delegate"): {"json": {"to": "admin",
                                                                        "reason": "r"}},
        ("POST", "/api/v1/executions"): {"json": {"process": "payroll",
                                                  "input": {"amount": 1}}},
        ("POST", "/api/v1/hooks/{process}/{trigger_id}"): {"json": {"amount": 1}},
        ("POST", "/api/v1/me/tokens"): {"json": {"name": "matrix"}},
        ("POST", "/api/v1/processes"): {"json": {"yaml": DRAFT}},
        ("PUT", "/api/v1/processes/{name}"): {"json": {"yaml": PAYROLL}},
        ("POST", "/api/v1/processes/validate"): {"json": {"yaml": DRAFT}},
    }
    return url, bodies.get((method, path), {})


_STAGES = {"new-version": 1, "archive": 2}


async def test_every_role_is_allowed_or_denied_on_every_route(world: World) -> None:
    await world.c.definitions.import_text(DRAFT)
    execution_id = await _start_payroll(world)
    ids = {"execution": execution_id, "approval": await _approval_id(world, execution_id)}
    # publish, copy, archive, then delete the copy: each finds what it acts on
    routes = sorted(operations(create_app(world.c)),
                    key=lambda mp: (_STAGES.get(mp[1].rsplit("/", 1)[-1], 0)
                                    + 3 * (mp[0] == "DELETE"), mp))
    missing = [r for r in routes if r not in ALLOWED]
    assert not missing, f"routes without an entry in the access matrix: {missing}"
    wrong = []
    for method, path in routes:
        allowed = ALLOWED[(method, path)]
        url, extra = _request_for(method, path, ids)
        # denied roles first: an allowed one may change what the route acts on
        for role in sorted(ALL - allowed) + sorted(allowed):
            answer = await world.as_(role, method, url, **extra)
            ok = answer.status_code not in (401, 403) if role in allowed \
                else answer.status_code == 403
            if not ok:
                wrong.append(f"{role} {method} {url} → {answer.status_code} {answer.text[:120]}")
    assert not wrong, "\n".join(wrong)
    _count, breach = await world.c.audit.verify()
    assert breach is None


# --- the remote command line ---------------------------------------------------------------


class ApiServer:
    """The API served by uvicorn on a free port in a thread, with its own container (the
    way `trinity web` builds one at start-up)."""

    def __init__(self, settings: Settings, redis_url: str) -> None:
        import uvicorn
        from fastapi import FastAPI

        from app.api import build_router
        from app.bootstrap import bootstrap

        holder = _Late()

        @asynccontextmanager
        async def lifespan(_: Any) -> AsyncIterator[None]:
            holder.target = await bootstrap(settings, redis_url, run_migrations=False)
            yield
            await holder.target.close()

        app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
        app.include_router(build_router(holder))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not (self.server.started and self.server.servers):
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("the API server did not start")
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(15)


class _Late:
    target: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


@pytest.fixture
def api_server(settings: Settings, redis_url: str, container: Any) -> Iterator[ApiServer]:
    with ApiServer(settings, redis_url) as server:
        yield server


def _trinity(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=60)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_cli_works_against_a_remote_server(world: World,
                                                     api_server: ApiServer) -> None:
    base = ["--server", api_server.url, "--token", world.tokens["operator"]]
    listed = await asyncio.to_thread(_trinity, *base, "processes", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "payroll" in listed.stdout
    started = await asyncio.to_thread(_trinity, *base, "start", "payroll", "--input",
                                      "amount=7", "--json")
    assert started.returncode == 0, started.stderr
    shown = await asyncio.to_thread(_trinity, *base, "executions", "list", "--json")
    assert '"payroll"' in shown.stdout
    revoked = await asyncio.to_thread(_trinity, "--server", api_server.url, "--token",
                                      "trp_revoked", "processes", "list")
    assert revoked.returncode == 2 and "Traceback" not in revoked.stderr
    assert revoked.stderr.startswith("error: the server refused the token")
    assert len(revoked.stderr.strip().splitlines()) == 1
