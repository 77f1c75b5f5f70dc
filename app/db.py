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
            self.engine = create_async_engine(url, echo=echo, pool_pre_ping=True,
                                              pool_size=10, max_overflow=10)
            self.read_engine = self.engine
        self._write = async_sessionmaker(self.engine, expire_on_commit=False)
        self._read = async_sessionmaker(self.read_engine, expire_on_commit=False)
        # SQLite has one writer; coroutines of this process queue here instead of sleeping
        # in SQLite's busy handler (other processes still wait on busy_timeout)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._sync_engine: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        if self.is_sqlite:
            self._sync_engine = _sqlite_sync_engine(url.replace("+aiosqlite", "", 1), echo)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="trinity-sqlite")

    async def transact(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` as one write transaction (committed when it returns, rolled
        back when it raises) and return what it returned. `fn` is synchronous: on SQLite it
        runs in this database's writer thread, so it must not touch the event loop."""
        if self._write_lock is None or self._sync_engine is None or self._thread is None:
            async with self.write() as s:
                return await s.run_sync(fn)
        engine = self._sync_engine

        def run() -> T:
            with Session(engine, expire_on_commit=False) as session, session.begin():
                return fn(session)

        # the lock also orders these against `write()` sessions of this process
        context = contextvars.copy_context()  # as asyncio.to_thread does
        async with self._write_lock:
            return await asyncio.get_running_loop().run_in_executor(self._thread, context.run,
                                                                     run)

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
    _sqlite_pragmas(engine, immediate=True)
    return engine


def _sqlite_pragmas(engine: Engine, immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself
        cursor = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "busy_timeout=30000", "synchronous=NORMAL",
                       "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

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
