"""app/sqlite_fast.py on a real SQLite file: a transition's statements sent straight to the
sqlite3 connection store exactly what SQLAlchemy's `Session.execute` stores."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app import repositories
from app.db import Database, migrate
from app.tables import DefinitionRow, ExecutionRow

pytestmark = pytest.mark.integration

EAST = timezone(timedelta(hours=5, minutes=30))
WHEN = datetime(2026, 11, 29, 7, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> Any:
    url = f"sqlite+aiosqlite:///{tmp_path / 'trinity.db'}"
    await asyncio.to_thread(migrate, url)
    database = Database(url)

    def seed(s: Session) -> None:
        s.add(DefinitionRow(id="d1", name="p", version="1.0", yaml_text="name: p\n"))
        s.flush()
        for key in ("fast", "slow"):
            s.add(ExecutionRow(id=key, definition_id="d1", process_name="p",
                               process_version="1.0", status="running", version=1,
                               snapshot={}, created_at=WHEN))
    await database.transact(seed)
    yield database
    await database.dispose()


def _both(db: Database, fast: repositories.FastStatement,
          rows: list[dict[str, Any]]) -> Any:
    """Run `rows` for execution 'fast' through the raw path and for 'slow' through
    Session.execute; returns the functions' results."""
    def run(s: Session) -> tuple[Any, Any]:
        raw = fast.run(s, [dict(r, **_key(r, "fast")) for r in rows])
        slow_rows = [dict(r, **_key(r, "slow")) for r in rows]
        slow = s.execute(fast.statement, slow_rows if len(slow_rows) > 1 else slow_rows[0])
        return raw, slow
    return run


def _key(row: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: key for k in ("key_id", "execution_id") if k in row}


def _stored(path: str, sql: str) -> dict[str, list[tuple[Any, ...]]]:
    """The rows as SQLite holds them (text, numbers), by execution id, without the id."""
    with sqlite3.connect(path) as conn:
        out: dict[str, list[tuple[Any, ...]]] = {"fast": [], "slow": []}
        for row in conn.execute(sql):
            out[row[0]].append(tuple(row[1:]))
    return out


def _path(db: Database) -> str:
    return db.url.split(":///", 1)[1]


async def test_the_state_update_stores_what_sqlalchemy_stores(db: Database) -> None:
    values = {"key_id": "", "key_version": 1, "new_version": 2, "status": "failed",
              "outputs": {"a": {"text": "naïve ✓", "n": [1, 2.5, None, True]}},
              "cost": "0.0042", "tokens": 12, "error_code": "TIMEOUT",
              "error_message": "step 'a' took too long", "started_at": WHEN,
              "finished_at": WHEN.astimezone(EAST), "updated_at": WHEN + timedelta(seconds=1),
              "snapshot": {"steps": {"a": {"status": "failed"}}}, "snapshot_seq": 7}
    raw, slow = await db.transact(_both(db, repositories._SAVE_SNAPSHOT, [values]))

    assert raw.rowcount == slow.rowcount == 1
    stored = _stored(_path(db), "SELECT id, version, status, outputs, cost, tokens, error_code,"
                                " error_message, started_at, finished_at, updated_at,"
                                " snapshot, snapshot_seq FROM executions")
    assert stored["fast"] == stored["slow"]
    assert stored["fast"][0][8] == "2026-11-29 07:30:15.123456"  # UTC, whatever the zone


async def test_a_stale_version_updates_nothing_on_either_path(db: Database) -> None:
    values = {"key_id": "", "key_version": 99, "new_version": 100, "status": "completed",
              "outputs": None,
              "cost": "0", "tokens": 0, "error_code": None, "error_message": None,
              "started_at": None, "finished_at": None, "updated_at": WHEN}
    raw, slow = await db.transact(_both(db, repositories._SAVE, [values]))
    assert raw.rowcount == slow.rowcount == 0


async def test_appended_events_are_stored_as_sqlalchemy_stores_them(db: Database) -> None:
    rows = [{"execution_id": "", "seq": i, "name": "step_completed", "step_id": step,
             "data": {"event": "step_completed", "output": {"x": i, "ü": "ß"}, "cost": "0.1"},
             "at": WHEN + timedelta(microseconds=i)} for i, step in ((1, "a"), (2, None))]
    await db.transact(_both(db, repositories._EVENT_INSERT, rows))

    stored = _stored(_path(db), "SELECT execution_id, seq, name, step_id, data, at "
                                "FROM execution_events ORDER BY seq")
    assert stored["fast"] == stored["slow"] and len(stored["fast"]) == 2


async def test_step_runs_upsert_alike_and_a_running_attempt_keeps_its_lease(
        db: Database) -> None:
    upsert = repositories._step_run_upsert("sqlite")
    running = {"execution_id": "", "step_id": "a", "visit": 1, "attempt": 1,
               "status": "running", "started_at": WHEN, "finished_at": None,
               "error_code": None, "error_message": None, "cost": "0", "tokens": 0,
               "worker": "w1", "lease_expires_at": WHEN + timedelta(seconds=15)}
    again = dict(running, lease_expires_at=WHEN + timedelta(seconds=99))
    done = dict(running, status="completed", finished_at=WHEN + timedelta(seconds=2),
                cost="0.25", tokens=40, lease_expires_at=None)
    other = dict(running, step_id="b")
    for rows in ([running], [again, other], [done]):
        await db.transact(_both(db, upsert, rows))

    stored = _stored(_path(db), "SELECT execution_id, step_id, visit, attempt, status, "
                                "started_at, finished_at, cost, tokens, worker, "
                                "lease_expires_at FROM step_runs ORDER BY step_id")
    assert stored["fast"] == stored["slow"]
    assert stored["fast"][0][3] == "completed" and stored["fast"][0][9] is None
    assert stored["fast"][1][9] == "2026-11-29 07:30:30.123456"  # kept, not 99 s


async def test_the_row_lock_reads_the_head_on_both_paths(db: Database) -> None:
    def read(s: Session) -> tuple[Any, Any]:
        return (repositories.ExecutionStore(s).lock_head("fast"),
                repositories.ExecutionStore(s).lock_head("missing"))
    head, missing = await db.transact(read)
    assert head == repositories.Head("fast", "d1", 1, 0) and missing is None


@pytest.mark.parametrize("input_value", [{"topic": "naïve ✓", "n": [1, 2.5]}, None])
async def test_a_new_execution_row_is_stored_as_the_orm_stores_it(
        db: Database, input_value: Any) -> None:
    values = {c.key: None for c in repositories._EXECUTIONS.columns}
    values.update(definition_id="d1", process_name="p", process_version="1.0",
                  status="running", version=1, input=input_value, snapshot={"steps": {}},
                  snapshot_seq=3, cost="0", tokens=0, triggered_by="webhook",
                  priority="high", created_at=WHEN.astimezone(EAST), started_at=WHEN,
                  updated_at=WHEN)

    def insert(s: Session) -> None:
        repositories._INSERT.run(s, [dict(values, id="new-fast")])
        s.add(ExecutionRow(**dict(values, id="new-slow")))
        s.flush()
    await db.transact(insert)

    columns = ", ".join(c.name for c in repositories._EXECUTIONS.columns if c.name != "id")
    stored = _stored(_path(db), f"SELECT substr(id, 5), {columns} FROM executions "
                                "WHERE id LIKE 'new-%'")
    assert stored["fast"] == stored["slow"]
    assert len(stored["fast"]) == 1
