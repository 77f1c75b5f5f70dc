"""The `command` agent kind: a local program gets the message on stdin and answers on
stdout.

Config: `command` (a list of arguments, or one string split like a shell would, with no
shell involved), `cwd`, `env` (added to the worker's environment). The program also
sees TRINITY_EXECUTION_ID, TRINITY_STEP_ID, TRINITY_IDEMPOTENCY_KEY and
TRINITY_ATTEMPT. It runs in its own process group, so on a timeout or cancellation the
whole group (its children too) is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
from collections.abc import Mapping
from typing import Any

from app.agents.base import AgentConfig, AgentError, AgentReply, AgentRequest
from app.agents.http import call_timeout
from engine.expressions import parse_agent_reply

__all__ = ["CommandClient"]

_STDERR_LINES = 8


class CommandClient:
    """The `command` kind."""

    async def call(self, agent: AgentConfig, request: AgentRequest) -> AgentReply:
        argv = _argv(agent)
        proc = await _start(agent, argv, _environment(agent, request))
        timeout = call_timeout(agent, request)
        try:
            async with asyncio.timeout(timeout):
                stdout, stderr = await proc.communicate(request.message.encode())
        except TimeoutError:
            raise AgentError("TIMEOUT", f"agent '{agent.name}': {argv[0]} did not finish "
                             f"within {timeout:g}s and was stopped") from None
        finally:
            if proc.returncode is None:
                await _kill(proc)
        if proc.returncode != 0:
            raise AgentError("AGENT_ERROR", _failure(agent.name, argv[0], proc.returncode,
                                                     stderr))
        text = stdout.decode("utf-8", errors="replace").strip()
        return AgentReply(output=parse_agent_reply(text))


def _argv(agent: AgentConfig) -> list[str]:
    command = agent.config.get("command")
    try:
        argv = shlex.split(command) if isinstance(command, str) else \
            [str(a) for a in command or ()]
    except (ValueError, TypeError) as e:
        raise AgentError("INVALID_CONFIG", f"command agent '{agent.name}': cannot read its "
                         f"command ({e})", retryable=False) from None
    if not argv:
        raise AgentError("INVALID_CONFIG", f"command agent '{agent.name}' has no command",
                         retryable=False)
    return argv


async def _start(agent: AgentConfig, argv: list[str],
                 env: dict[str, str]) -> asyncio.subprocess.Process:
    cwd = agent.config.get("cwd")
    try:
        return await asyncio.create_subprocess_exec(
            *argv, cwd=str(cwd) if cwd else None, env=env, start_new_session=True,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
    except OSError as e:  # missing program, not executable, missing cwd
        raise AgentError("INVALID_CONFIG", f"command agent '{agent.name}': cannot run "
                         f"{argv[0]!r}: {e.strerror or e}", retryable=False) from None


def _environment(agent: AgentConfig, request: AgentRequest) -> dict[str, str]:
    env = dict(os.environ)
    extra: Any = agent.config.get("env") or {}
    if not isinstance(extra, Mapping):
        raise AgentError("INVALID_CONFIG", f"command agent '{agent.name}': env must be a "
                         "mapping of name to value", retryable=False)
    env.update({str(k): str(v) for k, v in extra.items()})
    env.update({"TRINITY_EXECUTION_ID": request.execution_id,
                "TRINITY_STEP_ID": request.step_id,
                "TRINITY_IDEMPOTENCY_KEY": request.idempotency_key,
                "TRINITY_ATTEMPT": str(request.attempt)})
    return env


async def _kill(proc: asyncio.subprocess.Process) -> None:
    """Kill the program's whole process group and reap it (also while being cancelled)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await asyncio.shield(proc.wait())


def _failure(name: str, program: str, code: int | None, stderr: bytes) -> str:
    lines = stderr.decode("utf-8", errors="replace").strip().splitlines()[-_STDERR_LINES:]
    how = f"was killed by signal {-code}" if code is not None and code < 0 \
        else f"exited with code {code}"
    tail = ("; stderr:\n" + "\n".join(lines))[:1000] if lines else " (no stderr)"
    return f"agent '{name}': {program} {how}{tail}"
