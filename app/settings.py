"""Settings from the environment, read once in `bootstrap()` and handed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Settings", "SettingsError"]


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    home: Path = Path("trinity-data")
    database_url: str = ""
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str = ""
    worker_max_jobs: int = 10
    poll_delay: float = 0.05
    lease_seconds: float = 15.0
    sweep_seconds: int = 2
    idle_cutoff_hours: float = 24.0
    webhook_url: str | None = None
    schedule_catch_up_seconds: float = 900.0
    queue_name: str = "trinity:queue"
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read TRINITY_* variables (and DATABASE_URL, REDIS_URL)."""
        env = os.environ if env is None else env
        home = Path(env.get("TRINITY_HOME", "trinity-data")).expanduser().resolve()
        db = env.get("DATABASE_URL") or env.get("TRINITY_DATABASE_URL") or \
            f"sqlite+aiosqlite:///{home / 'trinity.db'}"
        port = _number(env, "TRINITY_PORT", 8080, int)
        return cls(
            home=home,
            database_url=_async_url(db),
            redis_url=env.get("REDIS_URL") or env.get("TRINITY_REDIS_URL") or None,
            host=env.get("TRINITY_HOST", "127.0.0.1"),
            port=port,
            base_url=env.get("TRINITY_BASE_URL", f"http://127.0.0.1:{port}"),
            worker_max_jobs=_number(env, "TRINITY_WORKER_MAX_JOBS", 10, int),
            poll_delay=_number(env, "TRINITY_POLL_DELAY", 0.05, float),
            lease_seconds=_number(env, "TRINITY_LEASE_SECONDS", 15.0, float),
            sweep_seconds=_number(env, "TRINITY_SWEEP_SECONDS", 2, int),
            idle_cutoff_hours=_number(env, "TRINITY_IDLE_CUTOFF_HOURS", 24.0, float),
            webhook_url=env.get("TRINITY_WEBHOOK_URL") or None,
            schedule_catch_up_seconds=_number(env, "TRINITY_SCHEDULE_CATCH_UP_SECONDS", 900.0,
                                              float),
            queue_name=env.get("TRINITY_QUEUE", "trinity:queue"),
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _async_url(url: str) -> str:
    """Accept plain driver names and pick the async driver we ship."""
    for plain, driver in (("postgresql://", "postgresql+asyncpg://"),
                          ("postgres://", "postgresql+asyncpg://"),
                          ("sqlite:///", "sqlite+aiosqlite:///")):
        if url.startswith(plain):
            return driver + url[len(plain):]
    if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise SettingsError(f"DATABASE_URL '{url.split('@')[-1]}' is not supported; use "
                            "sqlite:///path/to.db or postgresql://user@host/db")
    return url


def _number(env: Mapping[str, str], name: str, default: Any, kind: type) -> Any:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a {kind.__name__}") from None
