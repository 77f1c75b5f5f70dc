"""One transition's database work, three ways: what the stack costs per transaction.

    python -m bench.micro [--n 500]

Every variant does what `Runtime._transition_once` + `ExecutionRepository.save` do for one
chained step of W1, on the app's real schema (migrated by alembic) in a fresh SQLite file:
BEGIN IMMEDIATE, read the execution head, UPDATE the execution row (version check), INSERT
two events, upsert two step-run rows, COMMIT.

    app stack      the app's own statements (app.repositories) through Database.write():
                   SQLAlchemy AsyncSession on aiosqlite, one thread round trip per cursor
                   call (about 18 per transaction)
    one hop        the same SQL on a stdlib sqlite3 connection, the whole transaction in
                   ONE asyncio.to_thread call
    on the loop    the same SQL on a stdlib sqlite3 connection run directly on the event
                   loop (no thread at all)

Reported: wall time and process CPU time per transaction, median of 3 rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _values(xid: str, version: int, seq: int) -> tuple[dict[str, Any], list[Any], list[Any]]:
    now = datetime.now(UTC)
    save = {"status": "running", "outputs": None, "cost": "0", "tokens": 0, "error_code": None,
            "error_message": None, "started_at": now, "finished_at": None, "updated_at": now,
            "new_version": version + 1, "key_id": xid, "key_version": version}
    events = [{"execution_id": xid, "seq": seq + i, "name": name, "step_id": f"s{seq:05d}",
               "data": {"name": name, "step_id": f"s{seq:05d}", "at": now.isoformat(),
                        "attempt": 1, "output": {"ok": True}}, "at": now}
              for i, name in enumerate(("step_completed", "step_started"))]
    runs = [{"execution_id": xid, "step_id": f"s{seq + i:05d}", "visit": 1, "attempt": 1,
             "status": status, "started_at": now, "finished_at": now if i == 0 else None,
             "error_code": None, "error_message": None, "cost": "0", "tokens": 0,
             "worker": "bench", "lease_expires_at": None}
            for i, status in enumerate(("completed", "running"))]
    return save, events, runs


async def _app_stack(db: Any, xid: str, n: int, state: dict[str, int]) -> None:
    from app.repositories import _EVENT_INSERT, _LOCK, _SAVE, _step_run_upsert

    upsert = _step_run_upsert("sqlite")
    for _ in range(n):
        save, events, runs = _values(xid, state["version"], state["seq"])
        async with db.write() as s:
            # the statements themselves (FastStatement.statement), through SQLAlchemy
            head = (await s.execute(_LOCK.statement, {"key_id": xid})).first()
            assert head is not None and head.version == state["version"]
            result = await s.execute(_SAVE.statement, save)
            assert result.rowcount == 1  # type: ignore[attr-defined]
            await s.execute(_EVENT_INSERT.statement, events)
            await s.execute(upsert.statement, runs)
        state["version"] += 1
        state["seq"] += 2


_SQL_LOCK = "SELECT id, definition_id, version, snapshot_seq FROM executions WHERE id = ?"
_SQL_SAVE = ("UPDATE executions SET version=?, status=?, outputs=?, cost=?, tokens=?, "
             "error_code=?, error_message=?, started_at=?, finished_at=?, updated_at=? "
             "WHERE id = ? AND version = ?")
_SQL_EVENT = ("INSERT INTO execution_events (execution_id, seq, name, step_id, data, at) "
              "VALUES (?, ?, ?, ?, ?, ?)")
_SQL_RUN = ("INSERT INTO step_runs (execution_id, step_id, visit, attempt, status, started_at, "
            "finished_at, error_code, error_message, cost, tokens, worker, lease_expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (execution_id, "
            "step_id, visit, attempt) DO UPDATE SET status=excluded.status, "
            "finished_at=excluded.finished_at, error_code=excluded.error_code, "
            "error_message=excluded.error_message, cost=excluded.cost, "
            "tokens=excluded.tokens, worker=excluded.worker, lease_expires_at=CASE WHEN "
            "excluded.finished_at IS NULL THEN coalesce(step_runs.lease_expires_at, "
            "excluded.lease_expires_at) ELSE NULL END")


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.replace(tzinfo=None).isoformat(" ")


def _sync_transaction(conn: sqlite3.Connection, xid: str, state: dict[str, int]) -> None:
    save, events, runs = _values(xid, state["version"], state["seq"])
    conn.execute("BEGIN IMMEDIATE")
    try:
        head = conn.execute(_SQL_LOCK, (xid,)).fetchone()
        assert head is not None and head[2] == state["version"]
        cursor = conn.execute(_SQL_SAVE, (
            save["new_version"], save["status"], None, save["cost"], save["tokens"], None,
            None, _ts(save["started_at"]), None, _ts(save["updated_at"]), xid,
            save["key_version"]))
        assert cursor.rowcount == 1
        conn.executemany(_SQL_EVENT, [(e["execution_id"], e["seq"], e["name"], e["step_id"],
                                       json.dumps(e["data"]), _ts(e["at"])) for e in events])
        conn.executemany(_SQL_RUN, [
            (r["execution_id"], r["step_id"], 1, 1, r["status"], _ts(r["started_at"]),
             _ts(r["finished_at"]), None, None, "0", 0, "bench", None) for r in runs])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    state["version"] += 1
    state["seq"] += 2


def _sqlite_conn(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    for pragma in ("journal_mode=WAL", "busy_timeout=30000", "synchronous=NORMAL",
                   "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


async def _one_hop(conn: sqlite3.Connection, xid: str, n: int, state: dict[str, int]) -> None:
    for _ in range(n):
        await asyncio.to_thread(_sync_transaction, conn, xid, state)


async def _on_loop(conn: sqlite3.Connection, xid: str, n: int, state: dict[str, int]) -> None:
    for _ in range(n):
        _sync_transaction(conn, xid, state)
        await asyncio.sleep(0)


async def main_async(n: int) -> None:
    from app.bootstrap import bootstrap, seed_demo_agents
    from app.redis_launcher import start_redis
    from app.settings import Settings
    from bench.workloads import WORKLOADS

    tmp = Path(tempfile.mkdtemp(prefix="trinity-micro-"))
    server = start_redis()
    path = str(tmp / "t.db")
    settings = Settings.from_env({"TRINITY_HOME": str(tmp), "DATABASE_URL": f"sqlite:///{path}",
                                  "TRINITY_QUEUE": "bench:micro"})
    c = await bootstrap(settings, server.url)
    conn = _sqlite_conn(path)
    try:
        await seed_demo_agents(c.db)
        row = (await c.definitions.import_text(WORKLOADS["W1"].yaml, publish=True)).row
        x = await c.executions.start(row, {}, "bench")
        head = conn.execute(_SQL_LOCK, (x.id,)).fetchone()
        seq = conn.execute("SELECT max(seq) FROM execution_events WHERE execution_id = ?",
                           (x.id,)).fetchone()[0]
        state = {"version": head[2], "seq": seq + 1}
        variants: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("app stack (SQLAlchemy async + aiosqlite)",
             lambda: _app_stack(c.db, x.id, n, state)),
            ("one hop (sqlite3 in one to_thread)", lambda: _one_hop(conn, x.id, n, state)),
            ("on the loop (sqlite3, no thread)", lambda: _on_loop(conn, x.id, n, state)),
        ]
        results: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in variants}
        for _name, fn in variants:  # warm-up
            await fn()
        for _ in range(3):
            for name, fn in variants:
                t, cpu = time.perf_counter(), _cpu()
                await fn()
                results[name].append(((time.perf_counter() - t) / n, (_cpu() - cpu) / n))
        print(f"one transition's database work, {n} transactions per round, median of 3")
        print(f"{'variant':<44} {'wall ms':>8} {'CPU ms':>8}")
        for name, values in results.items():
            wall = statistics.median(v[0] for v in values) * 1000
            cpu = statistics.median(v[1] for v in values) * 1000
            print(f"{name:<44} {wall:>8.3f} {cpu:>8.3f}")
    finally:
        conn.close()
        await c.close()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=500, help="transactions per round")
    asyncio.run(main_async(p.parse_args().n))


if __name__ == "__main__":
    main()
