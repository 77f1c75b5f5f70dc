"""Agent kinds against real endpoints: a local HTTP server playing an agent container and
an OpenAI-compatible API, real programs for the command kind, a closed port."""

from __future__ import annotations

import asyncio
import json
import shlex
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from app.agents.base import AgentConfig, AgentError, AgentRequest
from app.agents.gateway import AgentGateway

pytestmark = pytest.mark.integration

FENCED = 'Here is my verdict:\n```json\n{"score": 88, "verdict": "good"}\n```'


class AgentServer:
    """A real HTTP server; `/agent/<mode>` is an http-kind agent, `/v1/chat/completions`
    an OpenAI-compatible one. It records every request and, for `/agent/slot`, when each
    call started and ended (server side)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.spans: list[tuple[str, float, float]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw) if raw else None
                with server.lock:
                    server.requests.append({"path": self.path, "body": body,
                                            "headers": dict(self.headers.items())})
                status, payload, headers = server.answer(self.path, body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(path)
        if parts.path.endswith("/chat/completions"):
            return self._chat(parts.path, body)
        mode = parts.path.rsplit("/", 1)[-1]
        if mode == "slot":
            begun = time.monotonic()
            time.sleep(int(parse_qs(parts.query).get("ms", ["300"])[0]) / 1000)
            with self.lock:
                self.spans.append((body["message"], begun, time.monotonic()))
            return 200, {"output": {"slot": body["message"]}}, {}
        if mode == "slow":
            time.sleep(3)
        return _CANNED[mode]

    def _chat(self, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        if path.startswith("/bad-key/"):
            return 401, {"error": {"message": "Incorrect API key provided",
                                   "type": "invalid_request_error"}}, {}
        return 200, {
            "id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": FENCED}}],
            "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500},
        }, {}


_CANNED: dict[str, tuple[int, Any, dict[str, str]]] = {
    "ok": (200, {"output": {"answer": 42}, "cost": "0.0125", "tokens": 42}, {}),
    "text": (200, {"output": FENCED, "cost": 0.5}, {}),
    "result": (200, {"result": "plain words"}, {}),
    "slow": (200, {"output": "too late"}, {}),
    "429": (429, {"error": "slow down"}, {"Retry-After": "7"}),
    "500": (500, {"error": "the database is on fire"}, {}),
    "400": (400, {"error": {"message": "message too long for this agent"}}, {}),
    "403": (403, {"detail": "token revoked"}, {}),
    "badjson": (200, b"<html>not json</html>", {}),
    "noout": (200, {"status": "fine"}, {}),
}


@pytest.fixture
def server() -> Iterator[AgentServer]:
    s = AgentServer()
    yield s
    s.close()


@pytest.fixture
async def gateway() -> AsyncIterator[AgentGateway]:
    gw = AgentGateway(None)
    yield gw
    await gw.aclose()


def http_agent(url: str, **config: Any) -> AgentConfig:
    return AgentConfig(name="container", kind="http", config={"url": url, **config})


def request(message: str = "Summarise the report", timeout: float = 30.0,
            **changes: Any) -> AgentRequest:
    return AgentRequest(message=message, execution_id="ex-1", step_id="summarise", attempt=2,
                        idempotency_key="ex-1:summarise:1:2", context={"process": "p"},
                        timeout=timeout, **changes)


async def failure(gw: AgentGateway, agent: AgentConfig, req: AgentRequest) -> AgentError:
    with pytest.raises(AgentError) as info:
        async with asyncio.timeout(20):
            await gw.call(agent, req)
    return info.value


# --- http ------------------------------------------------------------------------------------


async def test_an_http_agent_gets_the_task_as_json_with_the_idempotency_key(
        server: AgentServer, gateway: AgentGateway) -> None:
    agent = http_agent(f"{server.url}/agent/ok", token="s3cret", headers={"X-Team": "ops"})
    reply = await gateway.call(agent, request(model="m-1", temperature=0.2))
    assert reply.output == {"answer": 42}
    assert reply.cost == Decimal("0.0125") and reply.tokens == 42
    [seen] = server.requests
    assert seen["body"] == {"message": "Summarise the report", "execution_id": "ex-1",
                            "step_id": "summarise", "idempotency_key": "ex-1:summarise:1:2",
                            "context": {"process": "p"}, "model": "m-1", "temperature": 0.2}
    assert seen["headers"]["Idempotency-Key"] == "ex-1:summarise:1:2"
    assert seen["headers"]["Authorization"] == "Bearer s3cret"
    assert seen["headers"]["X-Team"] == "ops"


async def test_an_http_agent_without_model_settings_sends_none(
        server: AgentServer, gateway: AgentGateway) -> None:
    await gateway.call(http_agent(f"{server.url}/agent/ok"), request())
    body = server.requests[0]["body"]
    assert "model" not in body and "temperature" not in body
    assert "Authorization" not in server.requests[0]["headers"]


async def test_a_text_output_holding_fenced_json_is_parsed(
        server: AgentServer, gateway: AgentGateway) -> None:
    reply = await gateway.call(http_agent(f"{server.url}/agent/text"), request())
    assert reply.output == {"score": 88, "verdict": "good", "response": FENCED}
    assert reply.cost == Decimal("0.5")


async def test_a_result_field_is_accepted_as_the_output(
        server: AgentServer, gateway: AgentGateway) -> None:
    reply = await gateway.call(http_agent(f"{server.url}/agent/result"), request())
    assert reply.output == "plain words" and reply.cost == 0 and reply.tokens == 0


@pytest.mark.parametrize(("mode", "code", "retryable", "says"), [
    ("429", "RATE_LIMIT", True, "retry after 7s"),
    ("500", "AGENT_ERROR", True, "the database is on fire"),
    ("400", "AGENT_REJECTED", False, "message too long for this agent"),
    ("403", "INVALID_CONFIG", False, "token revoked"),
    ("badjson", "AGENT_ERROR", True, "not JSON"),
    ("noout", "AGENT_ERROR", True, "without an 'output'"),
])
async def test_http_failures_carry_a_code_that_says_whether_retrying_helps(
        server: AgentServer, gateway: AgentGateway, mode: str, code: str, retryable: bool,
        says: str) -> None:
    error = await failure(gateway, http_agent(f"{server.url}/agent/{mode}"), request())
    assert (error.code, error.retryable) == (code, retryable)
    assert says in error.message and "container" in error.message


async def test_a_slow_http_agent_times_out(server: AgentServer,
                                           gateway: AgentGateway) -> None:
    agent = AgentConfig("container", "http", {"url": f"{server.url}/agent/slow"},
                        timeout_seconds=0.3)
    begun = time.monotonic()
    error = await failure(gateway, agent, request())
    assert error.code == "TIMEOUT" and error.retryable
    assert time.monotonic() - begun < 2.5


async def test_the_requests_own_timeout_also_stops_a_slow_http_agent(
        server: AgentServer, gateway: AgentGateway) -> None:
    error = await failure(gateway, http_agent(f"{server.url}/agent/slow"),
                          request(timeout=0.3))
    assert error.code == "TIMEOUT"


async def test_a_closed_port_means_the_agent_is_unavailable(gateway: AgentGateway) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    error = await failure(gateway, http_agent(f"http://127.0.0.1:{port}/agent"), request())
    assert error.code == "AGENT_UNAVAILABLE" and error.retryable
    assert f"127.0.0.1:{port}" in error.message


# --- openai ----------------------------------------------------------------------------------


def openai_agent(base_url: str, **config: Any) -> AgentConfig:
    return AgentConfig(name="gpt", kind="openai", config={
        "base_url": base_url, "api_key_env": "TRINITY_TEST_OPENAI_KEY", "model": "gpt-test",
        "system": "Answer in JSON.", "temperature": 0.7, "price_input_per_1k": "0.0005",
        "price_output_per_1k": "0.0015", **config})


async def test_an_openai_agent_is_called_with_chat_messages_and_priced_from_usage(
        server: AgentServer, gateway: AgentGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRINITY_TEST_OPENAI_KEY", "sk-test-123")
    reply = await gateway.call(openai_agent(f"{server.url}/v1/"),
                               request(model="gpt-override", temperature=0.1))
    assert reply.output == {"score": 88, "verdict": "good", "response": FENCED}
    assert reply.tokens == 1500
    assert reply.cost == Decimal("0.00105") and isinstance(reply.cost, Decimal)
    [seen] = server.requests
    assert seen["path"] == "/v1/chat/completions"
    assert seen["headers"]["Authorization"] == "Bearer sk-test-123"
    assert seen["body"] == {"model": "gpt-override", "temperature": 0.1, "messages": [
        {"role": "system", "content": "Answer in JSON."},
        {"role": "user", "content": "Summarise the report"}]}


async def test_an_openai_agent_uses_its_configured_model_and_temperature(
        server: AgentServer, gateway: AgentGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRINITY_TEST_OPENAI_KEY", "sk-test-123")
    await gateway.call(openai_agent(f"{server.url}/v1"), request())
    body = server.requests[0]["body"]
    assert body["model"] == "gpt-test" and body["temperature"] == 0.7


async def test_a_refused_api_key_is_a_config_error_that_never_shows_the_key(
        server: AgentServer, gateway: AgentGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRINITY_TEST_OPENAI_KEY", "sk-test-123")
    error = await failure(gateway, openai_agent(f"{server.url}/bad-key/v1"), request())
    assert error.code == "INVALID_CONFIG" and not error.retryable
    assert "API key" in error.message and "sk-test-123" not in error.message


async def test_a_missing_api_key_variable_is_reported_before_calling(
        server: AgentServer, gateway: AgentGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRINITY_TEST_OPENAI_KEY", raising=False)
    error = await failure(gateway, openai_agent(f"{server.url}/v1"), request())
    assert error.code == "INVALID_CONFIG" and "TRINITY_TEST_OPENAI_KEY" in error.message
    assert server.requests == []


# --- command ---------------------------------------------------------------------------------

SCRIPT = r'''
import json, os, subprocess, sys, time
mode = sys.argv[1]
message = sys.stdin.read()
if mode == "ok":
    print(json.dumps({"got": message, "execution": os.environ["TRINITY_EXECUTION_ID"],
                      "step": os.environ["TRINITY_STEP_ID"],
                      "key": os.environ["TRINITY_IDEMPOTENCY_KEY"],
                      "extra": os.environ.get("EXTRA"), "cwd": os.getcwd()}))
elif mode == "text":
    print("just words")
elif mode == "fail":
    for i in range(20):
        print(f"line {i:02d}", file=sys.stderr)
    sys.exit(3)
elif mode == "hang":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(sys.argv[2], "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    time.sleep(60)
'''


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "agent.py"
    path.write_text(SCRIPT)
    return path


def command_agent(*args: str, timeout: float | None = None, **config: Any) -> AgentConfig:
    return AgentConfig(name="local", kind="command", timeout_seconds=timeout,
                       config={"command": [sys.executable, *args], **config})


async def test_a_command_gets_the_message_on_stdin_and_its_json_stdout_is_the_output(
        gateway: AgentGateway, script: Path, tmp_path: Path) -> None:
    agent = command_agent(str(script), "ok", env={"EXTRA": "yes"}, cwd=str(tmp_path))
    reply = await gateway.call(agent, request("hello\nworld"))
    assert reply.output["got"] == "hello\nworld"
    assert (reply.output["execution"], reply.output["step"], reply.output["key"]) == \
        ("ex-1", "summarise", "ex-1:summarise:1:2")
    assert reply.output["extra"] == "yes"
    assert Path(reply.output["cwd"]).resolve() == tmp_path.resolve()


async def test_a_command_given_as_one_string_is_split_like_a_shell_would(
        gateway: AgentGateway, script: Path) -> None:
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} text"
    agent = AgentConfig("local", "command", {"command": command})
    assert (await gateway.call(agent, request())).output == "just words"


async def test_a_failing_command_reports_its_exit_code_and_last_stderr_lines(
        gateway: AgentGateway, script: Path) -> None:
    error = await failure(gateway, command_agent(str(script), "fail"), request())
    assert error.code == "AGENT_ERROR" and error.retryable
    assert "exited with code 3" in error.message
    assert "line 19" in error.message and "line 02" not in error.message


async def test_a_missing_program_is_a_config_error(gateway: AgentGateway) -> None:
    agent = AgentConfig("local", "command", {"command": ["/nonexistent/trinity-agent"]})
    error = await failure(gateway, agent, request())
    assert error.code == "INVALID_CONFIG" and not error.retryable
    assert "/nonexistent/trinity-agent" in error.message


async def test_a_command_that_runs_too_long_is_killed_with_its_children(
        gateway: AgentGateway, script: Path, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    agent = command_agent(str(script), "hang", str(pids), timeout=2.5)
    begun = time.monotonic()
    error = await failure(gateway, agent, request())
    assert error.code == "TIMEOUT" and time.monotonic() - begun < 10
    parent, child = (int(p) for p in pids.read_text().split())
    await _until_gone(parent, child)


async def test_cancelling_a_command_call_kills_the_program(
        gateway: AgentGateway, script: Path, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    task = asyncio.create_task(gateway.call(command_agent(str(script), "hang", str(pids)),
                                            request()))
    async with asyncio.timeout(15):
        while not pids.exists() or not pids.read_text():
            await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    parent, child = (int(p) for p in pids.read_text().split())
    await _until_gone(parent, child)


async def _until_gone(*pids: int, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while any(_alive(p) for p in pids):
            await asyncio.sleep(0.02)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped by init counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


# --- the worker's agent lookup -----------------------------------------------------------------

async def test_steps_that_miss_the_agent_cache_together_share_one_read(
        container: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import event

    import app.bootstrap
    from app.agents_admin import upsert_agent

    await upsert_agent(container.db, "reviewer", "demo", {"latency": 0}, capacity=3)
    reads: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM agents" in statement:
            reads.append(statement)
    engine = container.db.read_engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        found = await asyncio.gather(*(container.lookup_agent("reviewer") for _ in range(30)))
        assert len(reads) == 1
        assert {(a.name, a.capacity) for a in found} == {("reviewer", 3)}

        await upsert_agent(container.db, "reviewer", "demo", {"latency": 0}, capacity=5)
        reads.clear()  # on PostgreSQL the write session reads through the same engine
        assert (await container.lookup_agent("reviewer")).capacity == 3  # still cached
        assert reads == []
        monkeypatch.setattr(app.bootstrap, "AGENT_CACHE_SECONDS", 0.0)
        found = await asyncio.gather(*(container.lookup_agent("reviewer") for _ in range(30)))
        assert len(reads) == 1
        assert {a.capacity for a in found} == {5}
        assert await container.lookup_agent("nobody") is None
    finally:
        event.remove(engine, "before_cursor_execute", count)
