"""The hot statements of a transition, sent straight to the `sqlite3` connection.

A transition runs four statements (lock the execution's row, update it, append its events,
upsert its step runs). Through `Session.execute` each pays SQLAlchemy's per-statement work
(execution context, result set-up, parameter processing), which on SQLite costs several times
what SQLite itself spends. `FastStatement` compiles a Core statement once with the
connection's own dialect and keeps the SQL text, the order of its parameters and the bind
processors SQLAlchemy would apply (JSON, the UTC datetime type), then runs it on the driver
connection inside the session's transaction (or savepoint). What is stored is byte for byte
what `Session.execute` stores (`tests/integration/test_sqlite_fast.py`).

Anywhere else (PostgreSQL, aiosqlite sessions, `echo`) it is plain `Session.execute`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

__all__ = ["FastStatement"]


class FastStatement:
    """A Core statement that runs on the raw `sqlite3` connection where there is one."""

    def __init__(self, statement: Any, keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.keys = list(keys) if keys is not None else None  # an INSERT's columns
        self._sql: str | None = None
        self._plan: list[tuple[str, Callable[[Any], Any] | None]] = []

    def run(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> Any:
        """Execute for these parameter rows (several: executemany). Returns the sqlite3
        cursor, or SQLAlchemy's result where the raw path does not apply; both have
        `rowcount` and `fetchone()`/`first()` as used by the callers here."""
        connection = session.connection()
        raw = connection.connection.driver_connection
        if not isinstance(raw, sqlite3.Connection) or connection.engine.echo:
            return session.execute(self.statement, list(rows) if len(rows) != 1 else rows[0])
        if self._sql is None:
            self._compile(connection.dialect)
        assert self._sql is not None
        params = [tuple(p(row[name]) if p is not None else row[name]
                        for name, p in self._plan) for row in rows]
        if len(params) == 1:
            return raw.execute(self._sql, params[0])
        return raw.executemany(self._sql, params)

    def _compile(self, dialect: Any) -> None:
        compiled = self.statement.compile(dialect=dialect, column_keys=self.keys)
        processors = compiled._bind_processors
        names = compiled.positiontup or []
        self._plan = [(name, processors.get(name)) for name in names]
        self._sql = compiled.string


def first(result: Any) -> Any:
    """The first row of what `FastStatement.run` returned, or None."""
    if isinstance(result, sqlite3.Cursor):
        return result.fetchone()
    return result.first()
