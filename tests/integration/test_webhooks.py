"""Webhook triggers and health endpoints, over HTTP against the real services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.api import build_router
from tests.integration.conftest import wait_terminal

pytestmark = pytest.mark.integration

HOOKED = """
name: intake
input:
  ticket: {type: string, required: true}
  priority: {type: integer, default: 3}
triggers:
  - id: from-crm
    type: webhook
    secret: "${INTAKE_SECRET}"
  - id: closed
    enabled: false
  - id: open-door
steps:
  - id: triage
    type: agent_task
    agent: demo-analyst
    message: "Triage {{input.ticket}} (priority {{input.priority}})"
"""


@pytest.fixture
async def client(container: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("INTAKE_SECRET", "s3cret")
    await container.definitions.import_text(HOOKED, publish=True)
    api = FastAPI()
    api.include_router(build_router(container))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                 base_url="http://test") as http:
        yield http


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_webhook_starts_an_execution_with_the_body_as_input(
        client: Any, container: Any, in_process_worker: Any) -> None:
    answer = await client.post("/api/v1/hooks/intake/from-crm", json={"ticket": "T-1"},
                               headers={"X-Webhook-Secret": "s3cret"})
    assert answer.status_code == 202
    execution_id = answer.json()["execution_id"]
    final = await wait_terminal(container, execution_id)
    assert final.status.value == "completed"
    assert final.input == {"ticket": "T-1", "priority": 3}
    assert final.triggered_by == "webhook" and final.started_by == "webhook:from-crm"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_webhook_refusals_are_clear_and_start_nothing(client: Any,
                                                            container: Any) -> None:
    cases = [
        ("/api/v1/hooks/intake/from-crm", {"ticket": "x"}, {}, 401, "unauthorized"),
        ("/api/v1/hooks/intake/from-crm", {"ticket": "x"}, {"X-Webhook-Secret": "nope"}, 401,
         "unauthorized"),
        ("/api/v1/hooks/intake/closed", {"ticket": "x"}, {}, 404, "not_found"),
        ("/api/v1/hooks/intake/nowhere", {"ticket": "x"}, {}, 404, "not_found"),
        ("/api/v1/hooks/nothing/open-door", {"ticket": "x"}, {}, 404, "not_found"),
        ("/api/v1/hooks/intake/open-door", {"priority": "high"}, {}, 422, "invalid_input"),
        ("/api/v1/hooks/intake/open-door", [1, 2], {}, 422, "invalid_input"),
    ]
    for path, body, headers, status, code in cases:
        answer = await client.post(path, json=body, headers=headers)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), path
    broken = await client.post("/api/v1/hooks/intake/open-door", content=b"{not json",
                               headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and "not JSON" in broken.json()["error"]["message"]
    invalid = (await client.post("/api/v1/hooks/intake/open-door",
                                 json={"priority": "high"})).json()["error"]
    assert {d["field"] for d in invalid["details"]} == {"ticket", "priority"}
    assert await container.executions.list() == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_readiness_reports_a_missing_worker(client: Any) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok",
                                      "worker": "no worker alive"}


def test_trinity_up_serves_webhooks_and_health_on_a_fresh_machine(tmp_path: Path) -> None:
    from tests.support.up import trinity_up

    (tmp_path / "intake.yaml").write_text(HOOKED)
    with trinity_up(tmp_path, INTAKE_SECRET="s3cret") as up:
        up.trinity("processes", "import", str(tmp_path / "intake.yaml"), "--publish")
        answer = httpx.post(f"{up.base}/api/v1/hooks/intake/from-crm", json={"ticket": "T-9"},
                            headers={"X-Webhook-Secret": "s3cret"}, timeout=10)
        assert answer.status_code == 202, answer.text
        execution_id = answer.json()["execution_id"]
        up.until(lambda: up.json("executions", "show", execution_id)["status"] == "completed",
                 60, "the webhook's execution to complete")
