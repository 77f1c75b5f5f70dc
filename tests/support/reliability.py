"""Helpers for the crash and restart tests: a Redis server that can be restarted on the same
socket, queries over the stored history, and checks that every step ran exactly once."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.redis_launcher import _die_with_parent, find_server_binary
from app.repositories import ExecutionRepository
from app.tables import StepRunRow

__all__ = ["RestartableRedis", "all_step_runs", "assert_ran_exactly_once", "aware", "chain",
           "count_statuses", "overlapping_runs", "step_statuses"]


def chain(name: str, agent: str, steps: Sequence[str] = ("one", "two", "three"),
          agents: Mapping[str, str] | None = None, retry: Mapping[str, str] | None = None
          ) -> str:
    """A definition whose agent steps run one after the other; `agents` and `retry` give
    some steps another agent or a retry block."""
    lines = [f"name: {name}", "version: 1", "steps:"]
    previous = None
    for step in steps:
        lines += [f"  - id: {step}", "    type: agent_task",
                  f"    agent: {(agents or {}).get(step, agent)}", f'    message: "do {step}"']
        if previous:
            lines.append(f"    depends_on: {previous}")
        block = (retry or {}).get(step, "")
        lines += [f"    {line}" for line in block.strip().splitlines()]
        previous = step
    return "\n".join(lines) + "\n"


class RestartableRedis:
    """A Redis server on a fixed unix socket: stop it and start it again at the same URL
    (our launcher picks a new directory every time, so it cannot do this)."""

    def __init__(self) -> None:
        # under /tmp, not pytest's tmp_path: a unix socket path must stay short
        self.dir = Path(tempfile.mkdtemp(prefix="trinity-rr-"))
        self.sock = self.dir / "redis.sock"
        self.url = f"unix://{self.sock}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 10.0) -> None:
        import redis

        self.starts += 1
        cmd = [find_server_binary(), "--port", "0", "--unixsocket", str(self.sock),
               "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
               "--dir", str(self.dir), "--daemonize", "no",
               "--logfile", str(self.dir / f"redis{self.starts}.log")]
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"redis exited at start (code {self.process.returncode})")
            if self.sock.exists():
                client = redis.Redis(unix_socket_path=str(self.sock), socket_timeout=1)
                try:
                    client.ping()
                    return
                except redis.RedisError:
                    pass
                finally:
                    client.close()
            time.sleep(0.02)
        raise AssertionError(f"redis did not answer within {timeout}s")

    def stop(self) -> None:
        """Stop the server and wait until it is gone (its socket file too)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.sock.unlink(missing_ok=True)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def aware(at: datetime | None) -> datetime:
    """SQLite hands timestamps back without a zone; they are stored in UTC."""
    assert at is not None, "a timestamp is missing"
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


async def count_statuses(c: Any) -> Counter[str]:
    """How many executions of the test's database are in each status."""
    async with c.db.read() as s:
        return Counter(await ExecutionRepository(s).count_by_status())


async def step_statuses(c: Any, ids: Iterable[str]) -> Counter[str]:
    """How many steps of these executions are in each step status right now."""
    found: Counter[str] = Counter()
    for execution_id in ids:
        _row, x = await c.executions.get(execution_id)
        found.update(st.status.value for st in x.steps.values())
    return found


async def all_step_runs(c: Any) -> list[StepRunRow]:
    async with c.db.read() as s:
        return list((await s.execute(select(StepRunRow))).scalars())


async def assert_ran_exactly_once(c: Any, ids: Iterable[str], steps: Sequence[str]) -> None:
    """Every execution completed once, and each of its steps has exactly one completed
    attempt (lost attempts are allowed, duplicates are not)."""
    problems: list[str] = []
    for execution_id in ids:
        events, runs = await c.executions.history(execution_id)
        ended = [e.name for e in events if e.name == "execution_completed"]
        if len(ended) != 1:
            problems.append(f"{execution_id}: {len(ended)} execution_completed events")
        done = Counter(r.step_id for r in runs if r.status == "completed")
        for step in steps:
            if done[step] != 1:
                problems.append(f"{execution_id}/{step}: {done[step]} completed runs "
                                f"({[(r.attempt, r.status, r.error_code) for r in runs]})")
        recorded = Counter(e.step_id for e in events if e.name == "step_completed")
        if recorded != Counter(steps):
            problems.append(f"{execution_id}: step_completed events {dict(recorded)}")
    assert not problems, "\n".join(problems[:20])


def overlapping_runs(runs: Iterable[StepRunRow]) -> list[tuple[StepRunRow, StepRunRow]]:
    """Pairs of attempts of the same step (and visit) whose running times overlap."""
    by_step: dict[tuple[str, str, int], list[StepRunRow]] = defaultdict(list)
    for r in runs:
        by_step[(r.execution_id, r.step_id, r.visit)].append(r)
    pairs = []
    for group in by_step.values():
        group.sort(key=lambda r: aware(r.started_at))
        for earlier, later in itertools.pairwise(group):
            if earlier.finished_at is None or aware(earlier.finished_at) > aware(later.started_at):
                pairs.append((earlier, later))
    return pairs
