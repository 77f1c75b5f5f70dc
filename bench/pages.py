"""Operate pages at scale: with 100,000 executions stored (bulk-inserted rows), time the
catalog and the execution list (query + server-side render, NiceGUI's simulated User) and
the live view's update after an event (Redis pub/sub → page redrawn).

    .venv/bin/python -m bench.pages [--executions 100000] [--repeat 5]

Targets: catalog and list < 1 s; live update < 250 ms. Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MAIN = """
from nicegui import app, ui
from app.web_auth import build_auth_router
from pages import register_pages
register_pages()
ui.run(storage_secret="bench only")
"""
EXAMPLES = ("content-review", "incident-triage", "invoice-approval", "weekly-report")
STATUSES = ("completed",) * 7 + ("failed", "cancelled", "running")


async def seed(c: Any, count: int) -> dict[str, str]:
    """Publish a few examples and insert `count` execution rows directly."""
    from app.tables import ExecutionRow

    actor = c.guard.system()
    ids = {}
    for name in EXAMPLES:
        imported = await actor.save_definition((ROOT / "examples" / f"{name}.yaml").read_text(),
                                               publish=True)
        ids[name] = (imported.row.id, imported.row.version, imported.row.owner)
    now = c.runtime.clock()
    rnd = random.Random(7)
    table = ExecutionRow.__table__  # type: ignore[attr-defined]
    chunk = 5000
    for start in range(0, count, chunk):
        rows = []
        for _ in range(min(chunk, count - start)):
            name = rnd.choice(EXAMPLES)
            did, version, owner = ids[name]
            created = now - timedelta(seconds=rnd.uniform(0, 90 * 86400))
            status = rnd.choice(STATUSES)
            rows.append({
                "id": str(uuid.uuid4()), "definition_id": did, "process_name": name,
                "process_version": version, "status": status, "version": 1,
                "input": {"topic": f"topic {rnd.randint(0, 10**6)}"}, "outputs": None,
                "snapshot": {}, "snapshot_seq": 0, "cost": f"{rnd.uniform(0, 0.05):.4f}",
                "tokens": 0, "triggered_by": rnd.choice(("manual", "schedule", "webhook")),
                "started_by": rnd.choice(("alice", "bob", None)), "owner_team": owner,
                "priority": "normal", "created_at": created, "started_at": created,
                "finished_at": None if status == "running" else created + timedelta(
                    seconds=rnd.uniform(1, 600)), "updated_at": created})
        async with c.db.write() as s:
            await s.execute(table.insert(), rows)
    return {n: v[0] for n, v in ids.items()}


async def timed(fn: Any, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - started)
    return out


def report(name: str, samples: list[float], target: float) -> None:
    med = statistics.median(samples)
    verdict = "ok" if med < target else "OVER TARGET"
    print(f"{name:<44} median {med * 1000:8.1f} ms   max {max(samples) * 1000:8.1f} ms   "
          f"target < {target * 1000:.0f} ms  {verdict}", flush=True)


async def run(count: int, repeat: int) -> None:
    from nicegui.testing.user_simulation import user_simulation

    from app.bootstrap import bootstrap
    from app.db import migrate
    from app.redis_launcher import start_redis
    from app.settings import Settings
    from app.web_auth import COOKIE
    from pages.components.queries import ExecutionFilters, list_executions, process_stats
    from pages.shell import set_container

    tmp = Path(tempfile.mkdtemp(prefix="trinity-bench-pages-"))
    db = tmp / "bench.db"
    await asyncio.to_thread(migrate, f"sqlite+aiosqlite:///{db}")
    redis = start_redis(None)
    settings = replace(Settings.from_env({"TRINITY_HOME": str(tmp / "home")}),
                       database_url=f"sqlite+aiosqlite:///{db}")
    c = await bootstrap(settings, redis.url, run_migrations=False)
    set_container(c)
    try:
        started = time.perf_counter()
        await seed(c, count)
        print(f"seeded {count} executions in {time.perf_counter() - started:.1f} s "
              f"(SQLite {db})", flush=True)
        await c.identity.create_user("bench", "bench password 1", roles=[("*", "admin")])
        actor = c.guard.system()
        names = list(EXAMPLES)
        report("query: catalog statistics", await timed(
            lambda: process_stats(actor, c, names), repeat), 1.0)
        report("query: execution list, first page", await timed(
            lambda: list_executions(actor, c, ExecutionFilters(), 51), repeat), 1.0)
        report("query: list filtered by process+status", await timed(
            lambda: list_executions(actor, c, ExecutionFilters(
                process="incident-triage", status="failed"), 51), repeat), 1.0)
        report("query: list, search in input values", await timed(
            lambda: list_executions(actor, c, ExecutionFilters(search="topic 4242"), 51),
            repeat), 1.0)
        main = tmp / "main.py"
        main.write_text(MAIN)
        # NiceGUI's simulated User expects to run under pytest (no script mode)
        os.environ["PYTEST_CURRENT_TEST"] = "bench/pages.py::run"
        async with user_simulation(main_file=main) as user:
            _, ticket = await c.identity.start_session("bench")
            user.http_client.cookies.set(COOKIE, await c.identity.adopt(ticket))
            report("page: /processes (query + render)", await timed(
                lambda: user.open("/processes"), repeat), 1.0)
            report("page: /executions (query + render)", await timed(
                lambda: user.open("/executions"), repeat), 1.0)
            report("page: /executions?status=failed", await timed(
                lambda: user.open("/executions?status=failed&process=weekly-report"),
                repeat), 1.0)
            await live_latency(c, user, repeat)
    finally:
        await c.close()
        redis.stop()


async def live_latency(c: Any, user: Any, repeat: int) -> None:
    """Event published → the live view shows the new status (no browser transfer)."""
    from app.live import hub_for

    actor = c.guard.system()
    samples = []
    for _ in range(repeat):
        x = await actor.start("content-review", {"topic": "latency"})
        await user.open(f"/executions/{x.id}")
        await hub_for(c).wait_ready()
        started = time.perf_counter()
        await actor.act(x.id, "cancel")
        while True:
            if _status_shown(user) == "cancelled":
                break
            if time.perf_counter() - started > 5:
                raise RuntimeError("the live view did not update within 5 s")
            await asyncio.sleep(0.002)
        samples.append(time.perf_counter() - started)
    report("live view: cancel → page shows it", samples, 0.25)


def _status_shown(user: Any) -> str | None:
    for el in user.client.layout.descendants():
        if el.props.get("data-testid") == "execution-status":
            return el.props.get("data-status")  # type: ignore[no-any-return]
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.executions, args.repeat))


if __name__ == "__main__":
    main()
