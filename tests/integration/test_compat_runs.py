"""The original Trinity process files run unchanged, with their agents registered as `http`
agents served by a real local HTTP server that answers as each file's comments describe."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from app.agents_admin import upsert_agent
from app.settings import Settings
from tests.integration.conftest import ROOT, make_settings, wait_for, wait_terminal
from tests.support.http import Receiver

pytestmark = pytest.mark.integration

COMPAT = Path(os.environ.get("TRINITY_COMPAT_DIR", ROOT.parent / "shared" / "compat" / "trinity"))
MISSING_AGENTS = {"non-existent-agent", "nonexistent-agent"}  # the files expect them missing
SLOW = "Please perform an extremely detailed"  # the slow steps of t4.2, t4.5 and t5.5

# file → (final status, {step: status}) — the paths the files' comments describe
EXPECTED: dict[str, tuple[str, dict[str, str]]] = {
    "compensation-example.yaml": ("completed", {"ship-order": "completed"}),
    "content-pipeline.yaml": ("completed", {}),
    "content-review__definition.yaml": ("completed", {"auto-approve": "completed",
                                                      "manual-review": "skipped"}),
    "data-analysis__definition.yaml": ("completed", {}),
    "gateway-test-process.yaml": ("completed", {}),
    "notification-test-process.yaml": ("completed", {}),
    "o1-simple-process.yaml": ("completed", {}),
    "t1.1-single-step.yaml": ("completed", {}),
    "t1.2-two-sequential.yaml": ("completed", {}),
    "t1.3-three-steps.yaml": ("completed", {}),
    "t1.4-structured-output.yaml": ("completed", {}),
    "t2.1-exclusive-gateway.yaml": ("completed", {"high-path": "completed",
                                                  "medium-path": "skipped",
                                                  "low-path": "skipped"}),
    "t2.2-gateway-default.yaml": ("completed", {"default-handler": "completed",
                                                "urgent-handler": "skipped",
                                                "normal-handler": "skipped"}),
    "t2.3-parallel-execution.yaml": ("completed", {}),
    "t2.4-conditional-skip.yaml": ("completed", {}),
    "t4.1-agent-error.yaml": ("failed", {"setup": "completed", "fail-step": "failed",
                                         "after-fail": "pending"}),
    "t4.2-agent-timeout.yaml": ("failed", {"setup": "completed", "slow-step": "failed",
                                           "after-timeout": "pending"}),
    "t4.3-retry-policy.yaml": ("failed", {"setup": "completed", "flaky-step": "failed",
                                          "after-retry": "pending"}),
    "t4.4-skip-on-error.yaml": ("completed", {"optional-step": "skipped",
                                              "required-step": "completed",
                                              "final-step": "completed"}),
    "t5.1-ten-step-chain.yaml": ("completed", {}),
    "t5.2-diamond-pattern.yaml": ("completed", {}),
    "t5.3-nested-expressions.yaml": ("completed", {}),
    "t5.4-concurrent-executions.yaml": ("completed", {}),
    "weekly-brief__definition.yaml": ("completed", {}),
}
NOT_RUN = {
    "compensation-test.yaml": "posts to httpbin.org; tests never send traffic off this machine",
}


class AgentServer:
    """Answers like the agents the compat files were written for."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.slow_seen = threading.Event()
        self.receiver = Receiver(self.respond)

    def respond(self, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        if path.startswith("/hooks"):
            return 200, {"ok": True}
        agent = path.rsplit("/", 1)[-1]
        message = (body or {}).get("message", "")
        if message.lstrip().startswith(SLOW):
            self.slow_seen.set()
            self.release.wait(45)
            return 200, {"output": {"response": "finally done", "quality_score": 90}}
        return 200, {"output": _answer(agent, message), "cost": "0.001", "tokens": 12}


def _answer(agent: str, message: str) -> Any:
    match = re.search(r"(?:Return this exact JSON|Return ONLY this JSON[^:]*):\s*(\{.*\})",
                      message, re.S)
    if match:
        try:
            return json.loads(match.group(1))
        except ValueError:
            pass
    if agent in ("process-echo", "test-echo"):
        return {"response": message}
    return {"response": f"{agent} analysed it", "summary": "fine", "quality_score": 85,
            "score": 85, "confidence": 0.9, "category": "general", "priority": "normal",
            "needs_escalation": False}


def _agents_in(text: str) -> set[str]:
    return {m.strip() for m in re.findall(r"^\s+agent:\s*([\w.-]+)", text, re.M)}


@pytest.fixture
def agent_server() -> Iterator[AgentServer]:
    server = AgentServer()
    yield server
    server.release.set()
    server.receiver.close()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, agent_server: AgentServer,
             monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Notifications go to the local server: slack through SLACK_WEBHOOK_URL, webhooks
    without a URL through the installation default."""
    hooks = f"{agent_server.receiver.url}/hooks"
    monkeypatch.setenv("SLACK_WEBHOOK_URL", hooks)
    return replace(make_settings(database_url, tmp_path / "home"), webhook_url=hooks)


@pytest.fixture
async def compat_container(settings: Settings, redis_url: str,
                           agent_server: AgentServer) -> AsyncIterator[Any]:
    from app.bootstrap import bootstrap, seed_demo_agents

    c = await bootstrap(settings, redis_url)
    await seed_demo_agents(c.db)
    names: set[str] = set()
    for name in [*EXPECTED, "t4.5-cancel-execution.yaml", "t5.5-recovery-test.yaml"]:
        names |= _agents_in((COMPAT / name).read_text())
    for agent in sorted(names - MISSING_AGENTS):
        await upsert_agent(c.db, agent, "http",
                           {"url": f"{agent_server.receiver.url}/agents/{agent}"}, capacity=8)
    yield c
    await c.close()


def _require_corpus() -> None:
    if not COMPAT.is_dir():
        pytest.skip(f"compatibility corpus not found at {COMPAT} (set TRINITY_COMPAT_DIR)")


async def _start_file(c: Any, name: str, data: dict[str, Any] | None = None) -> Any:
    imported = await c.definitions.import_text((COMPAT / name).read_text(), publish=True,
                                               name=name.split("__")[0].removesuffix(".yaml"))
    return await c.executions.start(imported.row, data or {}, "test")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_every_file_that_needs_no_human_decision_takes_its_described_path(
        compat_container: Any, in_process_worker: Any, agent_server: AgentServer) -> None:
    _require_corpus()
    runnable = sorted(p.name for p in COMPAT.glob("*.yaml") if not p.name.endswith(
        "__template.yaml") and "type: human_approval" not in p.read_text())
    covered = set(EXPECTED) | set(NOT_RUN) | {"t4.5-cancel-execution.yaml",
                                              "t5.5-recovery-test.yaml"}
    missing = set(runnable) - covered
    assert not missing, f"new compat files need expectations: {missing}"

    started = {name: await _start_file(compat_container, name) for name in EXPECTED}
    results = await asyncio.gather(*(wait_terminal(compat_container, x.id, 240)
                                     for x in started.values()))
    problems = []
    for (name, (status, steps)), final in zip(EXPECTED.items(), results, strict=True):
        got = {s: st.status.value for s, st in final.steps.items()}
        if final.status.value != status or any(got[s] != v for s, v in steps.items()):
            problems.append(f"{name}: {final.status.value} {got} {final.error}")
    assert not problems, "\n".join(problems)

    finals = dict(zip(EXPECTED, results, strict=True))
    timeout = finals["t4.2-agent-timeout.yaml"].steps["slow-step"]
    assert timeout.error["code"] == "TIMEOUT"
    retried = finals["t4.3-retry-policy.yaml"].steps["flaky-step"].attempts
    assert [a.error_code for a in retried] == ["AGENT_NOT_FOUND"] * 3
    gaps = [(b.started_at - a.finished_at).total_seconds()
            for a, b in itertools.pairwise(retried)]
    assert 1.9 <= gaps[0] < 3.5 and 3.9 <= gaps[1] < 6, gaps  # 2s then 4s, as described
    assert finals["t2.1-exclusive-gateway.yaml"].steps["evaluate"].output["score"] == 90


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_cancel_test_process_is_cancelled_while_its_slow_step_runs(
        compat_container: Any, in_process_worker: Any, agent_server: AgentServer) -> None:
    _require_corpus()
    x = await _start_file(compat_container, "t4.5-cancel-execution.yaml")
    await wait_for(agent_server.slow_seen.is_set, 30, what="the slow step to call its agent")
    await compat_container.executions.cancel(x.id, "tester", "cancel test")
    final = await wait_terminal(compat_container, x.id, 30)
    assert final.status.value == "cancelled"
    assert final.steps["step1"].status.value == "completed"
    assert final.steps["slow-step"].status.value == "cancelled"
    assert final.steps["step3"].status.value == "pending"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_recovery_test_process_completes_after_its_worker_restarts(
        compat_container: Any, agent_server: AgentServer, worker_factory: Any) -> None:
    _require_corpus()
    first = worker_factory()
    x = await _start_file(compat_container, "t5.5-recovery-test.yaml")
    await wait_for(agent_server.slow_seen.is_set, 30, what="the slow step to call its agent")
    first.kill()
    agent_server.release.set()  # the agent would answer now, but its caller is gone
    worker_factory()
    final = await wait_terminal(compat_container, x.id, 60)
    assert final.status.value == "completed", final.error
    slow = final.steps["slow-step"]
    assert slow.attempts[0].error_code == "WORKER_LOST"
    assert slow.attempts[-1].status == "completed"
    assert final.steps["step3"].status.value == "completed"


def test_trinity_start_file_wait_runs_a_compat_file_on_a_fresh_machine(tmp_path: Path) -> None:
    """No Redis configured, no worker running: the CLI starts both for the run."""
    _require_corpus()
    env = dict(os.environ, TRINITY_HOME=str(tmp_path / "home"))
    for key in ("REDIS_URL", "DATABASE_URL", "PYTEST_CURRENT_TEST"):
        env.pop(key, None)
    trinity = [sys.executable, "-m", "app.cli"]
    subprocess.run([*trinity, "agents", "add", "process-echo", "--kind", "demo"], env=env,
                   check=True, cwd=ROOT, capture_output=True, timeout=120)
    run = subprocess.run([*trinity, "start", str(COMPAT / "t2.1-exclusive-gateway.yaml"),
                          "--input", "score_value=60", "--wait", "--json"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    view = json.loads(run.stdout)
    steps = {s["id"]: s for s in view["steps"]}
    assert view["status"] == "completed"
    assert steps["medium-path"]["status"] == "completed"
    assert steps["high-path"]["skip_reason"] == "route_not_taken"
    assert steps["evaluate"]["output"]["score"] == 60
