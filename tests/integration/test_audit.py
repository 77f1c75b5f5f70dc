"""The audit log on a real database (SQLite and PostgreSQL): the hash chain holds, tampering
and deletion are found at the right entry, concurrent writers keep the sequence contiguous,
filters work, and no code path updates or deletes an entry."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from app.audit import AuditLog, Context, to_csv
from app.db import Database, migrate

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    await asyncio.to_thread(migrate, database_url)
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def log(db: Database) -> AuditLog:
    return AuditLog(db, Clock())


async def _fill(log: AuditLog, count: int) -> None:
    for i in range(count):
        await log.append("alice" if i % 2 else "bob", "user.created" if i % 3 else
                         "auth.signed_in", "user", f"u{i}", {"i": i},
                         context=Context("10.0.0.1", "pytest"))


async def test_an_untouched_chain_verifies(log: AuditLog) -> None:
    await _fill(log, 12)

    assert await log.verify() == (12, None)
    assert await log.verify(batch=5) == (12, None)  # across read batches too


async def test_an_empty_log_verifies(log: AuditLog) -> None:
    assert await log.verify() == (0, None)


async def test_an_entry_changed_in_the_database_is_found_at_its_seq(
        log: AuditLog, db: Database) -> None:
    await _fill(log, 10)
    async with db.write() as s:
        await s.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 6"))

    checked, breach = await log.verify()

    assert checked == 5 and breach is not None
    assert (breach.seq, breach.reason) == (6, "its content was changed after writing")


async def test_a_rewritten_entry_with_a_recomputed_hash_breaks_the_next_link(
        log: AuditLog, db: Database) -> None:
    await _fill(log, 5)
    async with db.write() as s:  # a forger who recomputes only the changed entry's hash
        await s.execute(text("UPDATE audit_log SET hash = :h WHERE seq = 3"), {"h": "f" * 64})

    _, breach = await log.verify()

    assert breach is not None and breach.seq == 3


async def test_a_deleted_entry_is_found_as_a_gap(log: AuditLog, db: Database) -> None:
    await _fill(log, 8)
    async with db.write() as s:
        await s.execute(text("DELETE FROM audit_log WHERE seq = 4"))

    checked, breach = await log.verify()

    assert checked == 3 and breach is not None
    assert (breach.seq, breach.reason) == (4, "entry missing (the chain has a gap)")


async def test_fifty_concurrent_appends_from_two_writers_keep_seq_contiguous(
        database_url: str, db: Database, log: AuditLog) -> None:
    other_db = Database(database_url)  # a second process's connection pool
    other = AuditLog(other_db, Clock())
    try:
        await asyncio.gather(*(
            (log if i % 2 else other).append(f"user{i}", "process.saved", "process", f"p{i}")
            for i in range(50)))
    finally:
        await other_db.dispose()

    rows = await log.query(limit=100)
    assert sorted(r.seq for r in rows) == list(range(1, 51))
    assert len({r.actor for r in rows}) == 50
    assert await log.verify() == (50, None)


async def test_queries_filter_by_actor_action_prefix_resource_time_and_page_back(
        log: AuditLog) -> None:
    await _fill(log, 12)
    await log.append("carol", "token.created", "token", "t1")
    first = (await log.query(limit=1000))[-1].at

    assert {r.actor for r in await log.query(actor="alice")} == {"alice"}
    assert {r.action for r in await log.query(action="auth.")} == {"auth.signed_in"}
    assert [r.seq for r in await log.query(resource="token")] == [13]
    assert [r.resource_id for r in await log.query(resource="user:u4")] == ["u4"]
    assert [r.seq for r in await log.query(since=first + timedelta(seconds=10))] == [13, 12, 11]
    assert [r.seq for r in await log.query(until=first + timedelta(seconds=1))] == [2, 1]
    assert [r.seq for r in await log.query(limit=3, before_seq=10)] == [9, 8, 7]


async def test_entries_keep_who_where_and_the_details(log: AuditLog) -> None:
    row = await log.append("alice", "role.granted", "user", "bob", {"team": "ops"},
                           context=Context("10.1.2.3", "Firefox"))

    [found] = await log.query(resource="user:bob")
    assert (found.seq, found.actor, found.ip, found.user_agent, found.details) == (
        row.seq, "alice", "10.1.2.3", "Firefox", {"team": "ops"})
    assert found.retention_days == 2557 and found.prev_hash == "0" * 64


async def test_the_csv_export_has_one_line_per_entry_with_the_hash(log: AuditLog) -> None:
    await _fill(log, 3)

    lines = to_csv(await log.query()).strip().splitlines()

    assert len(lines) == 4 and lines[0].endswith(",hash")
    assert lines[1].startswith("3,") and '"{""i"": 2}"' in lines[1]


# --- append-only by construction --------------------------------------------------------

FORBIDDEN = [
    re.compile(r"\b(update|delete)\(\s*AuditRow\b"),
    re.compile(r"(?i)\b(update\s+audit_log\b|delete\s+from\s+audit_log\b|truncate\s+"
               r"(table\s+)?audit_log\b)"),
    re.compile(r"AuditRow\b[^\n]*\.delete\(|\.delete\(\s*\w*audit\w*\s*\)"),
]


def audit_write_paths(source: str) -> list[str]:
    """Lines of `source` that could change or remove audit entries."""
    found = [m.group(0) for pattern in FORBIDDEN for m in pattern.finditer(source)]
    if "AuditRow" in source and re.search(r"\bsession\.delete\(|\bs\.delete\(", source):
        found.append("deletes rows in a module that handles AuditRow")
    return found


def test_no_code_path_updates_or_deletes_audit_entries() -> None:
    offenders = {}
    for folder in ("app", "pages", "worker", "engine"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            hits = audit_write_paths(path.read_text(encoding="utf-8"))
            if hits:
                offenders[str(path.relative_to(ROOT))] = hits
    assert offenders == {}


@pytest.mark.parametrize("snippet", [
    "await s.execute(update(AuditRow).where(AuditRow.seq == 1).values(actor='x'))",
    "await s.execute(delete(AuditRow))",
    'await s.execute(text("DELETE FROM audit_log WHERE seq = 1"))',
    'await s.execute(text("update audit_log set actor = 1"))',
    "row = await s.get(AuditRow, 1)\nawait s.delete(row)",
])
def test_the_scan_recognises_a_write_path_when_there_is_one(snippet: str) -> None:
    assert audit_write_paths(snippet)


# --- the command line ---------------------------------------------------------------------


def test_trinity_audit_verify_exits_1_at_the_first_breach(tmp_path: Path,
                                                          redis_url: str) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRINITY_")
           and k not in ("DATABASE_URL", "PYTEST_CURRENT_TEST")}
    env.update(TRINITY_HOME=str(home), REDIS_URL=redis_url)

    def trinity(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, input=stdin, timeout=120)

    added = trinity("users", "add", "dora", "--role", "ops:operator", "--password-stdin",
                    stdin="a strong password\n")
    assert added.returncode == 0, added.stderr
    assert trinity("users", "grant", "dora", "viewer").returncode == 0
    assert trinity("users", "revoke", "dora", "operator", "--team", "ops").returncode == 0
    assert trinity("users", "passwd", "dora", "--password-stdin",
                   stdin="another password\n").returncode == 0
    missing = trinity("users", "grant", "nobody", "viewer")
    assert (missing.returncode, missing.stderr.strip()) == (1, "error: no user named 'nobody'")
    ok = trinity("audit", "verify")
    assert (ok.returncode, ok.stdout.strip()) == (0, "audit log intact: 4 entries checked")
    listed = json.loads(trinity("audit", "list", "--json").stdout)
    assert [(e["action"], e["resource_id"]) for e in listed] == [
        ("user.password_reset", "dora"), ("role.revoked", "dora"), ("role.granted", "dora"),
        ("user.created", "dora")]
    assert all(re.fullmatch(r"cli:\S+", e["actor"]) for e in listed)
    assert "role.granted" in trinity("audit", "list", "--action", "role.g").stdout

    with sqlite3.connect(home / "trinity.db") as conn:  # tampering, in the test only
        conn.execute("UPDATE audit_log SET details = '{}' WHERE seq = 1")
    broken = trinity("audit", "verify")

    assert broken.returncode == 1
    assert broken.stdout.strip() == ("audit log BROKEN at entry 1: its content was changed "
                                     "after writing (0 entries before it are intact)")
