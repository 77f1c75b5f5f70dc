"""Settings from the environment, read once in `bootstrap()` and handed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Settings", "SettingsError"]


PLACEHOLDERS = {"secret", "changeme", "change-me", "dev", "development", "test", "password"}


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
    worker_max_jobs: int = 64
    poll_delay: float = 0.05
    lease_seconds: float = 15.0
    sweep_seconds: int = 2
    idle_cutoff_hours: float = 24.0
    webhook_url: str | None = None
    schedule_catch_up_seconds: float = 900.0
    queue_name: str = "trinity:queue"
    environment: str = "development"  # development | production
    secret_key: str = ""  # signs cookies and links; generated under home in development
    session_hours: float = 12.0
    trigger_rate_per_minute: int = 60
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_scopes: str = "openid email profile"
    oidc_groups_claim: str = "groups"
    oidc_role_map: str = ""  # "group=team:role,group2=*:admin"
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
            worker_max_jobs=_number(env, "TRINITY_WORKER_MAX_JOBS", 64, int),
            poll_delay=_number(env, "TRINITY_POLL_DELAY", 0.05, float),
            lease_seconds=_number(env, "TRINITY_LEASE_SECONDS", 15.0, float),
            sweep_seconds=_number(env, "TRINITY_SWEEP_SECONDS", 2, int),
            idle_cutoff_hours=_number(env, "TRINITY_IDLE_CUTOFF_HOURS", 24.0, float),
            webhook_url=env.get("TRINITY_WEBHOOK_URL") or None,
            schedule_catch_up_seconds=_number(env, "TRINITY_SCHEDULE_CATCH_UP_SECONDS", 900.0,
                                              float),
            queue_name=env.get("TRINITY_QUEUE", "trinity:queue"),
            environment=env.get("TRINITY_ENV", "development").strip().lower(),
            secret_key=env.get("TRINITY_SECRET_KEY", ""),
            session_hours=_number(env, "TRINITY_SESSION_HOURS", 12.0, float),
            trigger_rate_per_minute=_number(env, "TRINITY_TRIGGER_RATE_PER_MINUTE", 60, int),
            oidc_issuer=env.get("TRINITY_OIDC_ISSUER") or None,
            oidc_client_id=env.get("TRINITY_OIDC_CLIENT_ID") or None,
            oidc_client_secret=env.get("TRINITY_OIDC_CLIENT_SECRET") or None,
            oidc_scopes=env.get("TRINITY_OIDC_SCOPES", "openid email profile"),
            oidc_groups_claim=env.get("TRINITY_OIDC_GROUPS_CLAIM", "groups"),
            oidc_role_map=env.get("TRINITY_OIDC_ROLE_MAP", ""),
        )

    def resolved_secret(self) -> str:
        """The secret for cookies and signed links. Outside development a real one must be
        set (TRINITY_SECRET_KEY, at least 32 characters, not a placeholder); in development
        one is generated once and kept in TRINITY_HOME/secret_key."""
        key = self.secret_key.strip()
        weak = not key or len(key) < 32 or key.lower() in PLACEHOLDERS or \
            any(p in key.lower() for p in ("change-me", "changeme", "placeholder"))
        if self.environment == "production":
            if weak:
                raise SettingsError("TRINITY_SECRET_KEY must be set to a random value of at "
                                    "least 32 characters in production (e.g. `python -c "
                                    "\"import secrets; print(secrets.token_urlsafe(48))\"`)")
            return key
        if key and not weak:
            return key
        path = self.home / "secret_key"
        if path.exists():
            return path.read_text().strip()
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        path.write_text(value)
        path.chmod(0o600)
        return value

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
