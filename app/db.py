"""Database engines and sessions: SQLite (WAL, BEGIN IMMEDIATE) or PostgreSQL (row locks).

Two session factories: `write()` for writes (on SQLite it takes the write lock at BEGIN,
otherwise read-modify-write loses updates silently) and `read()` for pages and queries.
`transact(fn)` runs a synchronous function as one write transaction: the hot path of
transitions. On SQLite it runs in one thread hop on a plain `sqlite3` connection owned by a
single thread (async SQLAlchemy on aiosqlite pays a thread hand-off per cursor, execute,
fetch and close, about 18 per transition); on PostgreSQL it runs in the async session's
greenlet, so row locks (`SELECT … FOR UPDATE`) work as everywhere else.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

__all__ = ["Database", "migrate"]

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
GROUP_COMMIT_MAX = 64
"""At most this many `transact` calls share one SQLite transaction."""
_Call = tuple[Callable[[Session], Any], "asyncio.Future[Any]", contextvars.Context, str | None]


class Database:
    """Engines and session factories for one database URL."""

    def __init__(self, url: str, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            _ensure_sqlite_dir(url)
            self.engine = _sqlite_engine(url, immediate=True, echo=echo)
            self.read_engine = _sqlite_engine(url, immediate=False, echo=echo)
        else:
            # 20 kept open and no overflow: a worker runs up to 64 jobs, and overflow
            # connections are opened and closed per checkout (a new server process each on
            # PostgreSQL), which cost W3 a sixth of its throughput; callers past 20 wait
            self.engine = create_async_engine(url, echo=echo, pool_pre_ping=True,
                                              pool_size=20, max_overflow=0)
            self.read_engine = self.engine
        self._write = async_sessionmaker(self.engine, expire_on_commit=False)
        self._read = async_sessionmaker(self.read_engine, expire_on_commit=False)
        # SQLite has one writer; coroutines of this process queue here instead of sleeping
        # in SQLite's busy handler (other processes still wait on busy_timeout)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._sync_engine: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._pending: list[_Call] = []  # transact() calls waiting for the writer thread
        self._drainer: asyncio.Task[None] | None = None
        if self.is_sqlite:
            self._sync_engine = _sqlite_sync_engine(url.replace("+aiosqlite", "", 1), echo)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="trinity-sqlite")

    async def transact(self, fn: Callable[[Session], T], key: str | None = None) -> T:
        """Run `fn(session)` as one write transaction (committed when it returns, rolled
        back when it raises) and return what it returned. `fn` is synchronous: on SQLite it
        runs in this database's writer thread, so it must not touch the event loop.

        On SQLite, calls that arrive while the writer is busy are committed together (group
        commit): the next hop runs all of them, each in its own SAVEPOINT, inside one
        `BEGIN IMMEDIATE … COMMIT`. One that raises rolls back to its savepoint and gets its
        exception; the others are unaffected. A failed COMMIT fails all of them. Calls with
        the same `key` (an execution id) never share a batch: each one's caller has seen
        the result of the one before (e.g. cached the state it wrote) when the next runs."""
        if self._write_lock is None or self._thread is None:
            async with self.write() as s:
                return await s.run_sync(fn)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((fn, future, contextvars.copy_context(), key))  # as to_thread
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await future  # type: ignore[no-any-return]

    async def _drain(self) -> None:
        """Hand the queued `transact` calls to the writer thread, a batch per hop."""
        assert self._write_lock is not None and self._thread is not None
        loop = asyncio.get_running_loop()
        while self._pending:
            batch = self._next_batch()
            if not batch:
                continue
            # the lock also orders these against `write()` sessions of this process
            try:
                async with self._write_lock:
                    results = await asyncio.shield(
                        loop.run_in_executor(self._thread, self._commit_batch, batch))
            except asyncio.CancelledError:  # the loop is closing: nobody gets an answer
                for call in batch + self._pending:
                    call[1].cancel()
                self._pending.clear()
                raise
            except Exception as error:  # the hop itself failed (executor shut down)
                results = [(False, error)] * len(batch)
            for (_fn, future, _context, _key), (ok, value) in zip(batch, results, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            await asyncio.sleep(0)  # the callers go on (up to their next await) first

    def _next_batch(self) -> list[_Call]:
        """Take the calls of the next batch off the queue, in order: not those already
        cancelled, at most GROUP_COMMIT_MAX, and only the first call of each key."""
        batch: list[_Call] = []
        later: list[_Call] = []
        keys: set[str] = set()
        for call in self._pending:
            if call[1].done():
                continue
            key = call[3]
            if len(batch) >= GROUP_COMMIT_MAX or key in keys:
                later.append(call)
                continue
            if key is not None:
                keys.add(key)
            batch.append(call)
        self._pending = later
        return batch

    def _commit_batch(self, batch: list[_Call]) -> list[tuple[bool, Any]]:
        """In the writer thread: one transaction for the whole batch."""
        assert self._sync_engine is not None
        results: list[tuple[bool, Any]] = []
        try:
            with Session(self._sync_engine, expire_on_commit=False) as session, \
                    session.begin():
                if len(batch) == 1:
                    fn, _future, context, _key = batch[0]
                    results.append((True, context.run(fn, session)))
                    return results
                for fn, _future, context, _key in batch:
                    try:
                        with session.begin_nested():  # SAVEPOINT … RELEASE (or ROLLBACK TO)
                            value = context.run(fn, session)
                    except Exception as error:
                        results.append((False, error))
                    else:
                        results.append((True, value))
        except BaseException as error:  # BEGIN, COMMIT or the single call failed: none stored
            return [(False, error)] * len(batch)
        return results

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed on success, rolled back on any error."""
        if self._write_lock is None:
            async with self._write() as session, session.begin():
                yield session
            return
        async with self._write_lock, self._write() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only session (never commits)."""
        async with self._read() as session:
            yield session

    async def dispose(self) -> None:
        if self._drainer is not None and not self._drainer.done():
            await asyncio.wait([self._drainer], timeout=30)  # let queued commits finish
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
        if self._thread is not None and self._sync_engine is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread,
                                                             self._sync_engine.dispose)
            self._thread.shutdown(wait=False)


def _sqlite_engine(url: str, immediate: bool, echo: bool) -> AsyncEngine:
    engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
    _sqlite_pragmas(engine.sync_engine, immediate)
    return engine


def _sqlite_sync_engine(url: str, echo: bool) -> Engine:
    """The writer thread's engine: one connection, only ever used by that thread."""
    engine = create_engine(url, echo=echo, pool_size=1, max_overflow=0,
                           connect_args={"timeout": 30, "check_same_thread": False})
    _sqlite_pragmas(engine, immediate=True, begin=_begin_immediate_polling)
    if not echo:
        _plain_savepoints(engine)
    return engine


def _plain_savepoints(engine: Engine) -> None:
    """Group commit wraps every call in a SAVEPOINT; SQLAlchemy builds and compiles a clause
    for each SAVEPOINT, RELEASE and ROLLBACK TO, which cost as much as the statements of a
    small transition. This engine's dialect sends them to the driver as plain SQL instead
    (the Session's bookkeeping of nested transactions is unchanged)."""
    dialect = engine.dialect

    def run(connection: Any, sql: str) -> None:
        connection.connection.driver_connection.execute(sql)

    dialect.do_savepoint = lambda c, name: run(c, f'SAVEPOINT "{name}"')  # type: ignore
    dialect.do_release_savepoint = \
        lambda c, name: run(c, f'RELEASE SAVEPOINT "{name}"')  # type: ignore
    dialect.do_rollback_to_savepoint = \
        lambda c, name: run(c, f'ROLLBACK TO SAVEPOINT "{name}"')  # type: ignore


BUSY_TIMEOUT_S = 30.0
"""How long a connection waits for SQLite's write lock before it gives up."""
_BUSY_POLL_S = (0.0002, 0.002)
"""First and longest pause between attempts to take the write lock in the writer thread."""


def _begin_immediate_polling(conn: Any) -> None:
    """BEGIN IMMEDIATE for the writer thread: poll for the write lock in short pauses.

    While another process (the web process, a second worker, the CLI) holds the write lock,
    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25… ms between attempts, so a
    commit usually waits well past the moment the lock is free. Measured on W3: 31 of the
    worker's lock waits in a run of three took 17 ms each, for locks its client held for a
    few ms. This thread may sleep (it holds nothing else and the event loop is elsewhere),
    so its connection has no busy handler (see `_sqlite_pragmas`): it tries again after
    0.2 ms, then 0.3, 0.45… up to 2 ms between tries, for up to BUSY_TIMEOUT_S. Once BEGIN
    IMMEDIATE holds the lock, nothing else in a WAL transaction waits for another writer."""
    raw = conn.connection.driver_connection
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    pause = _BUSY_POLL_S[0]
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as error:
            busy = getattr(error, "sqlite_errorcode", sqlite3.SQLITE_BUSY) & 0xFF \
                == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                break
        time.sleep(pause)
        pause = min(pause * 1.5, _BUSY_POLL_S[1])
    # once more through SQLAlchemy, which raises its own OperationalError as it would have
    # (callers such as `Runtime.transition` retry on it)
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(engine: Engine, immediate: bool,
                    begin: Callable[[Any], None] | None = None) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself
        cursor = dbapi_conn.cursor()
        pragmas = (f"busy_timeout={BUSY_TIMEOUT_S * 1000:.0f}", "synchronous=NORMAL",
                   "foreign_keys=ON")
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        # WAL is a property of the file: once set it stays. Setting it again is not free: a
        # connection opened while another process writes could get "database is locked"
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")
        if begin is not None:  # it waits for the write lock in `begin`, nowhere else
            cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()

    if begin is not None:
        event.listen(engine, "begin", begin)
        return

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    return cfg


def migrate(url: str) -> None:
    """Bring the database to the newest schema (fast when nothing is to do).

    Runs synchronously in its own event loop: call it before starting the app's loop, or
    through a thread from async code.
    """
    from alembic import command

    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), "head")
