"""`trinity up`: everything on one machine — migrations, SQLite, a private Redis, one worker
process, demo agents, the examples, and the web server. Ctrl-C stops it all."""

from __future__ import annotations

import asyncio
import atexit
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from app.local import child_env, redis_url_file
from app.redis_launcher import EmbeddedRedis, RedisLaunchError, _die_with_parent, start_redis
from app.settings import Settings, SettingsError

__all__ = ["up"]

log = logging.getLogger("trinity.up")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def up(host: str | None = None, port: int | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        settings = Settings.from_env()
    except SettingsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    settings.home.mkdir(parents=True, exist_ok=True)
    from app.db import migrate

    migrate(settings.database_url)
    try:
        redis = start_redis(settings.redis_url)
    except RedisLaunchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    worker = _start_worker(redis, f"http://127.0.0.1:{port or settings.port}")
    stop = _remember(settings, redis, worker)
    asyncio.run(_prepare(settings, redis.url))
    print(f"Trinity Processes: data in {settings.home}, Redis at {redis.url}, worker pid "
          f"{worker.pid}", flush=True)
    from app.web import serve

    serve(settings, redis.url, host or settings.host, port or settings.port, on_stop=stop)
    return 0


def _start_worker(redis: EmbeddedRedis, base_url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "app.cli", "worker"],
                            env=child_env(redis.url, base_url), preexec_fn=_die_with_parent)


def _remember(settings: Settings, redis: EmbeddedRedis,
              worker: subprocess.Popen[bytes]) -> Any:
    """Write where the private Redis is; returns the stop routine (also run at exit)."""
    url_file = redis_url_file(settings)
    url_file.parent.mkdir(parents=True, exist_ok=True)
    url_file.write_text(redis.url)

    def stop() -> None:
        if worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
        redis.stop()
        url_file.unlink(missing_ok=True)

    atexit.register(stop)
    return stop


async def _prepare(settings: Settings, redis_url: str) -> None:
    """Demo agents and the bundled examples, published, so a fresh install can run them."""
    from app.bootstrap import bootstrap, seed_demo_agents
    from app.services import ServiceError

    c = await bootstrap(settings, redis_url, run_migrations=False)
    try:
        await seed_demo_agents(c.db)
        for path in sorted(EXAMPLES.glob("*.yaml")):
            try:
                await c.definitions.import_text(path.read_text(encoding="utf-8"), publish=True)
            except ServiceError as e:
                log.warning("example %s not imported: %s", path.name, e)
    finally:
        await c.close()
