"""/metrics in the Prometheus text format, read from the real database and Redis."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from app.rest import create_app
from tests.integration.conftest import wait_terminal

pytestmark = pytest.mark.integration

QUICK = """
name: quick
steps:
  - id: one
    type: agent_task
    agent: demo-echo
    message: hi
"""
SAMPLE = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+-]+$')


async def test_metrics_report_executions_steps_queue_approvals_and_workers(
        container: Any, in_process_worker: Any) -> None:
    await container.identity.create_user("ops", None, roles=[("*", "admin")])
    token = (await container.identity.create_token("ops", "prometheus")).token
    row = (await container.definitions.import_text(QUICK, publish=True)).row
    x = await container.executions.start(row, {})
    await wait_terminal(container, x.id)
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        answer = await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = answer.text.strip().splitlines()
    samples = [line for line in lines if not line.startswith("#")]
    assert all(SAMPLE.match(line) for line in samples), samples
    assert 'trinity_executions{status="completed"} 1' in samples
    assert 'trinity_step_duration_seconds_count{status="completed"} 1' in samples
    assert "trinity_approvals_pending 0" in samples
    assert "trinity_worker_alive 1" in samples
    assert any(line.startswith("trinity_queue_depth ") for line in samples)
    kinds = dict(re.findall(r"^# TYPE (\S+) (\S+)$", answer.text, re.MULTILINE))
    assert kinds == {"trinity_executions": "gauge", "trinity_step_duration_seconds": "summary",
                     "trinity_queue_depth": "gauge", "trinity_approvals_pending": "gauge",
                     "trinity_worker_alive": "gauge"}
