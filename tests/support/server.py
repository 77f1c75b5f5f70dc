"""A real Trinity server for browser tests: `trinity up` (web, worker, demo agents, examples)
or `trinity web` as a subprocess on a free 127.0.0.1 port, with a fresh TRINITY_HOME (SQLite)
and its own private Redis. Its output goes to a log file that tests scan for tracebacks,
because an exception in a page handler is otherwise invisible to a browser test."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

from app.redis_launcher import EmbeddedRedis, start_redis

__all__ = ["LIVE_SERVERS", "ServerError", "TrinityServer", "find_tracebacks", "free_port",
           "running_server"]

ROOT = Path(__file__).resolve().parents[2]
TRACEBACK = "Traceback (most recent call last):"
_FIRST_ADMIN = re.compile(r"as '([^']+)' with the password (\S+)")
# Variables of the developer's own installation that must not leak into a test server.
_INHERITED = ("DATABASE_URL", "REDIS_URL", "PYTEST_CURRENT_TEST", "PYTEST_ADDOPTS")

# Servers started by `running_server`; the e2e conftest scans their logs after every test
# phase and forgets a server once it has stopped and its log was read to the end.
LIVE_SERVERS: list[TrinityServer] = []


class ServerError(RuntimeError):
    """The server did not start or stop; the message carries the end of its log."""


class TrinityServer:
    """One running server. `run_cli` talks to the same database and Redis."""

    def __init__(self, home: Path, port: int, env: dict[str, str], log_path: Path,
                 redis: EmbeddedRedis) -> None:
        self.home = home
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.env = env
        self.log_path = log_path
        self.redis = redis
        self.process: subprocess.Popen[bytes] | None = None
        self._cursor = 0  # how far `new_tracebacks` has read the log

    def run_cli(self, *args: str, check: bool = False, timeout: float = 120,
                input: str | None = None) -> subprocess.CompletedProcess[str]:
        """`trinity ARGS` against this server's home and Redis (stdout/stderr captured)."""
        done = subprocess.run([sys.executable, "-m", "app.cli", *args], env=self.env,
                              cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              input=input)
        if check and done.returncode != 0:
            raise AssertionError(f"trinity {' '.join(args)} exited {done.returncode}:\n"
                                 f"{done.stdout}{done.stderr}")
        return done

    def cli_json(self, *args: str) -> Any:
        """`trinity ARGS --json`, parsed; fails the test when the command fails."""
        return json.loads(self.run_cli(*args, "--json", check=True).stdout)

    @property
    def admin(self) -> tuple[str, str]:
        """(username, password) of the first administrator, printed once at first start."""
        found = _FIRST_ADMIN.search(self.log())
        if not found:
            raise AssertionError(f"no first-start admin in the server log:\n{self.tail()}")
        return found.group(1), found.group(2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, chars: int = 4000) -> str:
        return self.log()[-chars:]

    def new_tracebacks(self) -> list[str]:
        """Tracebacks the log gained since the last call (the first call reads it all)."""
        with self.log_path.open("rb") as f:
            f.seek(self._cursor)
            data = f.read()
        complete = data[:data.rfind(b"\n") + 1]  # a half-written line waits for next time
        self._cursor += len(complete)
        return find_tracebacks(complete.decode(errors="replace"))

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, command: str, timeout: float) -> None:
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", command], cwd=ROOT, env=self.env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)  # its worker shares the group: one kill reaches both
        finally:
            log.close()
        self._wait_ready(need_worker=command == "up", timeout=timeout)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM (the server stops its worker), SIGKILL to its group after `timeout`."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.redis.stop()

    def _wait_ready(self, need_worker: bool, timeout: float) -> None:
        """/healthz answers once uvicorn listens; /readyz reports the database and Redis
        once start-up has bootstrapped the services (and the worker for `up`)."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise ServerError(f"the server exited with {self.process.returncode} at "
                                  f"start:\n{self.tail()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    checks = httpx.get(f"{self.base_url}/readyz", timeout=5).json()["checks"]
                    last = f"/readyz: {checks}"
                    wanted = ("database", "redis", "worker") if need_worker else \
                        ("database", "redis")
                    if all(checks.get(k) == "ok" for k in wanted):
                        return
            except (httpx.HTTPError, ValueError, KeyError) as e:
                last = f"{type(e).__name__}: {e}"
            time.sleep(0.1)
        self.stop()
        raise ServerError(f"the server was not ready within {timeout:g}s ({last}):\n"
                          f"{self.tail()}")


@contextmanager
def running_server(workdir: Path, env: Mapping[str, str] | None = None, command: str = "up",
                   timeout: float = 90) -> Iterator[TrinityServer]:
    """Start a server with a fresh home under `workdir`; `env` adds or overrides variables
    (e.g. TRINITY_OIDC_*). `command` is `up` (web, worker, examples) or `web` (pages and
    API only). Stopped, with its Redis, when the block ends."""
    if command not in ("up", "web"):
        raise ValueError(f"command must be 'up' or 'web', not {command!r}")
    workdir.mkdir(parents=True, exist_ok=True)
    redis = start_redis()
    port = free_port()
    home = workdir / "home"
    child = {k: v for k, v in os.environ.items()
             if not k.startswith("TRINITY_") and k not in _INHERITED}
    child.update(TRINITY_HOME=str(home), TRINITY_PORT=str(port), REDIS_URL=redis.url,
                 TRINITY_BASE_URL=f"http://127.0.0.1:{port}", PYTHONUNBUFFERED="1")
    child.update(env or {})
    server = TrinityServer(home, port, child, workdir / "server.log", redis)
    try:
        server.start(command, timeout)
    except BaseException:
        server.stop()
        raise
    LIVE_SERVERS.append(server)
    try:
        yield server
    finally:
        server.stop()


def find_tracebacks(text: str) -> list[str]:
    """Each Python traceback in a log: its header, the indented frames, and the exception
    line that ends it (chained exceptions come out as separate entries)."""
    found: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if TRACEBACK not in lines[i]:
            i += 1
            continue
        block = [lines[i]]
        i += 1
        while i < len(lines) and (not lines[i] or lines[i][0] in " \t"):
            block.append(lines[i])
            i += 1
        if i < len(lines) and TRACEBACK not in lines[i]:
            block.append(lines[i])  # "SomeError: message"
            i += 1
        found.append("\n".join(block).rstrip())
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
