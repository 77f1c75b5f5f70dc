"""`trinity up` as a real subprocess on a free port with a fresh home, for end-to-end tests."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Up:
    base: str
    env: dict[str, str]
    log_path: Path

    def trinity(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "app.cli", *args], env=self.env,
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(f"trinity {' '.join(args)} failed: {done.stderr}")
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.trinity(*args, "--json").stdout)

    def until(self, predicate: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; log:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def trinity_up(tmp_path: Path, **extra_env: str) -> Iterator[Up]:
    """Start `trinity up` with nothing configured (no REDIS_URL, no DATABASE_URL); wait until
    /readyz says ready; stop it afterwards and check its worker and Redis stopped too."""
    port = free_port()
    env = dict(os.environ, TRINITY_HOME=str(tmp_path / "home"), TRINITY_PORT=str(port),
               **extra_env)
    for key in ("REDIS_URL", "DATABASE_URL", "PYTEST_CURRENT_TEST", "TRINITY_BASE_URL"):
        env.pop(key, None)
    log_path = tmp_path / "up.log"
    log = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "up"], env=env, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    up = Up(f"http://127.0.0.1:{port}", env, log_path)
    try:
        up.until(lambda: _ready(up.base), 90, "trinity up to be ready")
        yield up
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    _check_stopped(log_path.read_text(errors="replace"))


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _check_stopped(text: str) -> None:
    worker = re.search(r"worker pid (\d+)", text)
    sock = re.search(r"Redis at unix://(\S+),", text)
    assert worker and sock, text[-2000:]
    status = Path(f"/proc/{worker.group(1)}/status")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and status.exists() and \
            "zombie" not in status.read_text().lower():
        time.sleep(0.1)
    assert not status.exists() or "zombie" in status.read_text().lower(), "worker still runs"
    assert not Path(sock.group(1)).exists(), "the private Redis was not cleaned up"
