"""Database.transact on a real SQLite file: calls that arrive together share one transaction
(group commit), each in its own savepoint, so one that fails takes nothing else with it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

import app.db
from app.db import Database, migrate
from app.tables import AgentRow

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(tmp_path: Path) -> Any:
    url = f"sqlite+aiosqlite:///{tmp_path / 'trinity.db'}"
    await asyncio.to_thread(migrate, url)
    database = Database(url)
    async with database.write() as s:
        await s.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY, note TEXT)"))
    yield database
    await database.dispose()


def _insert(i: int) -> Any:
    def fn(s: Session) -> int:
        s.execute(text("INSERT INTO probe VALUES (:i, 'ok')"), {"i": i})
        return i
    return fn


def _commits(database: Database) -> list[int]:
    """How many calls each COMMIT of the writer connection carried (counted by SQLAlchemy)."""
    seen: list[int] = []
    assert database._sync_engine is not None
    event.listen(database._sync_engine, "commit", lambda conn: seen.append(1))
    return seen


async def _ids(database: Database) -> list[int]:
    async with database.read() as s:
        return [r[0] for r in (await s.execute(text("SELECT id FROM probe ORDER BY id")))]


async def test_concurrent_calls_share_commits_and_each_gets_its_own_result(
        db: Database) -> None:
    commits = _commits(db)
    results = await asyncio.gather(*(db.transact(_insert(i)) for i in range(40)))

    assert results == list(range(40))
    assert await _ids(db) == list(range(40))
    assert 1 <= len(commits) < 40  # grouped: the first goes alone, the rest together


async def test_a_failing_call_rolls_back_only_itself(db: Database) -> None:
    def half_then_fail(s: Session) -> None:
        s.execute(text("INSERT INTO probe VALUES (1000, 'half')"))
        raise ValueError("step 'b': refused")

    results = await asyncio.gather(
        *(db.transact(_insert(i)) for i in range(3)), db.transact(half_then_fail),
        *(db.transact(_insert(i)) for i in range(3, 6)), return_exceptions=True)

    assert results[:3] == [0, 1, 2] and results[4:] == [3, 4, 5]
    assert isinstance(results[3], ValueError) and "step 'b'" in str(results[3])
    assert await _ids(db) == [0, 1, 2, 3, 4, 5]  # nothing of the failed call is stored


async def test_an_orm_flush_error_in_a_batch_fails_only_that_call(db: Database) -> None:
    def agent(name: str) -> Any:
        def fn(s: Session) -> str:
            s.add(AgentRow(name=name, kind="demo", config={}))
            s.flush()
            return name
        return fn

    await db.transact(agent("taken"))
    results = await asyncio.gather(db.transact(_insert(1)), db.transact(agent("taken")),
                                   db.transact(agent("fresh")), db.transact(_insert(2)),
                                   return_exceptions=True)

    assert results[0] == 1 and results[2] == "fresh" and results[3] == 2
    assert isinstance(results[1], IntegrityError)
    async with db.read() as s:
        names = [r[0] for r in await s.execute(text("SELECT name FROM agents ORDER BY name"))]
    assert "fresh" in names and names.count("taken") == 1
    assert await _ids(db) == [1, 2]


async def test_a_call_cancelled_while_it_waits_never_runs(db: Database) -> None:
    ran: list[int] = []
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow(s: Session) -> None:  # holds the writer until the test lets it go
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(10)

    def record(s: Session) -> None:
        ran.append(1)

    first = asyncio.create_task(db.transact(slow))
    await asyncio.sleep(0.05)
    waiting = asyncio.create_task(db.transact(record))
    await asyncio.sleep(0.05)
    waiting.cancel()
    release.set()
    await first
    assert await db.transact(_insert(7)) == 7  # the writer goes on afterwards
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert ran == []


async def test_a_failed_commit_fails_every_call_of_the_batch(db: Database) -> None:
    assert db._sync_engine is not None
    failing = {"on": False}

    def refuse_commit(conn: Any) -> None:
        if failing["on"]:
            raise RuntimeError("disk full")
    event.listen(db._sync_engine, "commit", refuse_commit)

    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def hold(s: Session) -> None:
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(10)

    first = asyncio.create_task(db.transact(hold))
    await asyncio.sleep(0.05)
    batch = [asyncio.create_task(db.transact(_insert(i))) for i in range(5)]
    await asyncio.sleep(0.05)
    failing["on"] = True
    release.set()
    await asyncio.gather(first, return_exceptions=True)  # its own commit fails too
    results = await asyncio.gather(*batch, return_exceptions=True)
    failing["on"] = False

    assert all(isinstance(r, RuntimeError) for r in results), results
    assert await _ids(db) == []


async def test_calls_with_the_same_key_run_one_after_the_other_with_their_callers_between(
        db: Database) -> None:
    order: list[str] = []
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def hold(s: Session) -> None:
        s.execute(text("INSERT INTO probe VALUES (0, 'hold')"))
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(10)

    def step(name: str) -> Any:
        def fn(s: Session) -> None:
            s.execute(text("INSERT INTO probe (note) VALUES (:n)"), {"n": name})
            order.append(name)
        return fn

    async def call(name: str, key: str) -> None:
        await db.transact(step(name), key=key)
        order.append(f"after {name}")  # e.g. the runtime caching the state it wrote

    commits = _commits(db)
    first = asyncio.create_task(db.transact(hold))
    await asyncio.sleep(0.05)
    calls = [asyncio.create_task(call(n, k)) for n, k in
             (("x1", "x"), ("y1", "y"), ("x2", "x"), ("z1", "z"), ("x3", "x"))]
    await asyncio.sleep(0.05)
    release.set()
    await first
    await asyncio.gather(*calls)

    assert order.index("after x1") < order.index("x2") < order.index("after x2") < \
        order.index("x3")
    assert order[:3] == ["x1", "y1", "z1"]  # other keys went with the first of x
    assert len(commits) == 4  # hold, then (x1 y1 z1), (x2), (x3)


def _hold_write_lock(path: str, release: threading.Event, taken: threading.Event) -> None:
    """Another process's writer, in a thread: hold SQLite's write lock until `release`."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        taken.set()
        release.wait(30)
        conn.execute("INSERT INTO probe VALUES (1000, 'other writer')")
        conn.execute("COMMIT")
    finally:
        conn.close()


async def test_a_call_waits_for_another_connections_write_lock_then_commits(
        db: Database) -> None:
    release, taken = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock,
                              args=(db.url.split(":///", 1)[1], release, taken))
    holder.start()
    try:
        assert await asyncio.to_thread(taken.wait, 10)
        call = asyncio.ensure_future(db.transact(_insert(1)))
        done, _ = await asyncio.wait([call], timeout=0.3)
        assert not done  # it waits for the lock: no error, nothing stored yet
        release.set()
        assert await asyncio.wait_for(call, 10) == 1
    finally:
        release.set()
        await asyncio.to_thread(holder.join, 10)
    assert await _ids(db) == [1, 1000]


async def test_a_lock_held_past_the_busy_timeout_fails_with_sqlalchemys_error(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app.db, "BUSY_TIMEOUT_S", 0.2)
    release, taken = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock,
                              args=(db.url.split(":///", 1)[1], release, taken))
    holder.start()
    try:
        assert await asyncio.to_thread(taken.wait, 10)
        with pytest.raises(OperationalError, match="database is locked"):
            await asyncio.wait_for(db.transact(_insert(1)), 10)
    finally:
        release.set()
        await asyncio.to_thread(holder.join, 10)
    assert await db.transact(_insert(2)) == 2  # the writer connection is usable again
    assert await _ids(db) == [2, 1000]
