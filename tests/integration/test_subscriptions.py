"""Outbound event webhooks: signed deliveries to a real local receiver, retried on failure."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from app.services import ServiceError
from tests.integration.conftest import wait_for, wait_terminal
from tests.support.http import Receiver

pytestmark = [pytest.mark.integration,
              pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

SIMPLE = """
name: simple
steps:
  - id: one
    type: agent_task
    agent: demo-echo
    message: hello
"""


async def test_completed_executions_are_posted_signed_to_subscribers(
        container: Any, in_process_worker: Any) -> None:
    flaky: list[int] = []

    def answer(path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        flaky.append(1)
        return (503, {}) if len(flaky) == 1 else (200, {"ok": True})

    receiver = Receiver(answer)
    sub = await container.subscriptions.add(receiver.url, "simple", ["execution_completed"])
    other = await container.subscriptions.add(receiver.url + "/other", "unrelated")
    imported = await container.definitions.import_text(SIMPLE, publish=True)
    x = await container.executions.start(imported.row, {}, "test")
    await wait_terminal(container, x.id)
    await wait_for(lambda: len(receiver.requests) >= 2, 30, what="the retried delivery")
    receiver.close()
    path, body, headers = receiver.requests[-1]
    assert path == "/" and body["event"] == "execution_completed"
    assert body["execution_id"] == x.id and body["status"] == "completed"
    raw = receiver.raw[-1]
    expected = "sha256=" + hmac.new(sub.secret.encode(), raw, hashlib.sha256).hexdigest()
    assert headers["X-Trinity-Signature"] == expected
    assert json.loads(raw) == body
    assert headers["X-Trinity-Delivery-Attempt"] == "2"
    assert all(p == "/" for p, _, _ in receiver.requests)  # nothing for `unrelated`
    assert other.id != sub.id


async def test_the_signature_verifies_against_the_raw_body(container: Any) -> None:
    from app.subscriptions import sign

    body = b'{"event": "execution_failed"}'
    digest = hmac.new(b"key", body, hashlib.sha256).hexdigest()
    assert sign("key", body) == f"sha256={digest}"


async def test_bad_subscriptions_are_refused(container: Any) -> None:
    with pytest.raises(ServiceError, match="not an http"):
        await container.subscriptions.add("ftp://example.org")
    with pytest.raises(ServiceError, match="unknown event"):
        await container.subscriptions.add("http://127.0.0.1:9/x", None, ["step_exploded"])
    with pytest.raises(ServiceError, match="no subscription"):
        await container.subscriptions.remove("nope")
