"""Accounts, sign-in, sessions and API tokens on a real database (SQLite and PostgreSQL),
with an injected clock for lock-outs and expiry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.db import Database, migrate
from app.identity import AuthError, Identity, IdentityError, token_digest
from app.tables import ApiTokenRow, SessionRow, UserRow

PASSWORD = "correct horse battery"
class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    await asyncio.to_thread(migrate, database_url)
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def identity(db: Database, clock: Clock) -> Identity:
    return Identity(db, clock, session_hours=1)


async def _row(db: Database, model: type, key: object) -> object:
    async with db.read() as s:
        return await s.get(model, key)


async def test_the_first_administrator_is_created_once_with_a_working_password(
        identity: Identity) -> None:
    first = await identity.ensure_first_admin()
    again = await identity.ensure_first_admin()

    assert first is not None and first[0] == "admin" and again is None
    user = await identity.authenticate("admin", first[1])
    principal = await identity.principal(user.username)
    assert principal is not None and principal.is_admin


async def test_an_existing_admin_account_means_no_first_admin(identity: Identity) -> None:
    await identity.create_user("boss", PASSWORD, roles=[("*", "admin")])

    assert await identity.ensure_first_admin() is None


async def test_passwords_are_stored_as_argon2_hashes_only(identity: Identity,
                                                          db: Database) -> None:
    await identity.create_user("alice", PASSWORD)

    row = await _row(db, UserRow, "alice")
    assert isinstance(row, UserRow) and row.password_hash is not None
    assert row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in row.password_hash


async def test_short_passwords_and_odd_usernames_are_refused(identity: Identity) -> None:
    with pytest.raises(IdentityError, match="at least 10 characters"):
        await identity.create_user("alice", "short")
    with pytest.raises(IdentityError, match="not a valid username"):
        await identity.create_user("alice smith", PASSWORD)


async def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(
        identity: Identity) -> None:
    await identity.create_user("alice", PASSWORD)

    with pytest.raises(AuthError) as wrong:
        await identity.authenticate("alice", "not the password")
    with pytest.raises(AuthError) as unknown:
        await identity.authenticate("nobody", "not the password")

    assert str(wrong.value) == str(unknown.value) == "wrong username or password"


async def test_five_failures_lock_the_account_until_the_lock_runs_out(
        identity: Identity, clock: Clock) -> None:
    await identity.create_user("alice", PASSWORD)
    for _ in range(4):
        with pytest.raises(AuthError, match="wrong username or password"):
            await identity.authenticate("alice", "not the password")

    with pytest.raises(AuthError, match="locked for 15 minutes"):
        await identity.authenticate("alice", "not the password")
    clock.advance(minutes=5)
    with pytest.raises(AuthError, match="locked for 10 more minutes"):
        await identity.authenticate("alice", PASSWORD)
    clock.advance(minutes=9, seconds=59)
    with pytest.raises(AuthError, match=r"locked for 1 more minute$"):
        await identity.authenticate("alice", PASSWORD)
    clock.advance(seconds=1)
    assert (await identity.authenticate("alice", PASSWORD)).username == "alice"


async def test_a_locked_account_refuses_even_the_right_password_until_unlocked(
        identity: Identity, db: Database, clock: Clock) -> None:
    await identity.create_user("alice", PASSWORD)
    async with db.write() as s:  # the state five failures leave behind
        user = await s.get(UserRow, "alice")
        user.locked_until = clock() + timedelta(minutes=14, seconds=30)

    with pytest.raises(AuthError, match="locked for 15 more minutes"):
        await identity.authenticate("alice", PASSWORD)
    clock.advance(minutes=14, seconds=31)
    assert (await identity.authenticate("alice", PASSWORD)).username == "alice"


async def test_a_reset_password_unlocks_the_account(identity: Identity, db: Database,
                                                    clock: Clock) -> None:
    await identity.create_user("alice", PASSWORD)
    async with db.write() as s:
        (await s.get(UserRow, "alice")).locked_until = clock() + timedelta(minutes=15)

    await identity.set_password("alice", "a fresh password")

    assert (await identity.authenticate("alice", "a fresh password")).username == "alice"


async def test_a_session_lives_server_side_and_expires_there(
        identity: Identity, db: Database, clock: Clock) -> None:
    await identity.create_user("alice", PASSWORD)
    _, ticket = await identity.start_session("alice", "10.0.0.1", "pytest")
    cookie = await identity.adopt(ticket)
    assert cookie is not None

    principal = await identity.session_principal(cookie)
    assert principal is not None and principal.username == "alice"
    async with db.read() as s:
        rows = list((await s.execute(select(SessionRow))).scalars())
    assert [r.id for r in rows] == [token_digest(cookie)]  # only the hash is stored
    clock.advance(minutes=59)
    assert await identity.session_principal(cookie) is not None
    clock.advance(minutes=2)
    assert await identity.session_principal(cookie) is None


async def test_signing_out_ends_the_session(identity: Identity) -> None:
    await identity.create_user("alice", PASSWORD)
    cookie = await identity.adopt((await identity.start_session("alice"))[1])

    await identity.end_session(cookie)

    assert await identity.session_principal(cookie) is None


async def test_a_sign_in_ticket_works_once_and_only_for_sixty_seconds(
        identity: Identity, clock: Clock) -> None:
    await identity.create_user("alice", PASSWORD)
    pre_token, ticket = await identity.start_session("alice")
    assert await identity.session_principal(pre_token) is None  # not a session before adopt
    assert await identity.session_principal(ticket) is None

    assert await identity.adopt(ticket) is not None
    assert await identity.adopt(ticket) is None

    _, late = await identity.start_session("alice")
    clock.advance(seconds=61)
    assert await identity.adopt(late) is None
    _, in_time = await identity.start_session("alice")
    clock.advance(seconds=59)
    assert await identity.adopt(in_time) is not None


async def test_changing_the_password_needs_the_old_one_and_ends_every_session(
        identity: Identity) -> None:
    await identity.create_user("alice", PASSWORD)
    cookies = [await identity.adopt((await identity.start_session("alice"))[1])
               for _ in range(2)]

    with pytest.raises(AuthError, match="current password is not right"):
        await identity.change_password("alice", "not the password", "a new password!")
    with pytest.raises(IdentityError, match="must differ"):
        await identity.change_password("alice", PASSWORD, PASSWORD)
    assert all([await identity.session_principal(c) for c in cookies])

    await identity.change_password("alice", PASSWORD, "a new password!")

    assert [await identity.session_principal(c) for c in cookies] == [None, None]
    with pytest.raises(AuthError):
        await identity.authenticate("alice", PASSWORD)
    assert await identity.authenticate("alice", "a new password!")


async def test_a_deactivated_account_loses_its_sessions_and_cannot_sign_in(
        identity: Identity) -> None:
    await identity.create_user("alice", PASSWORD)
    cookie = await identity.adopt((await identity.start_session("alice"))[1])

    await identity.set_active("alice", False)

    assert await identity.session_principal(cookie) is None
    with pytest.raises(AuthError, match="wrong username or password"):
        await identity.authenticate("alice", PASSWORD)


async def test_an_api_token_is_returned_once_and_stored_as_a_hash(
        identity: Identity, db: Database) -> None:
    await identity.create_user("alice", PASSWORD, roles=[("ops", "operator")])

    new = await identity.create_token("alice", "laptop")

    assert new.token.startswith("trp_") and new.prefix == new.token[:10]
    async with db.read() as s:
        row = await s.get(ApiTokenRow, new.id)
    assert row is not None and row.token_hash == token_digest(new.token)
    assert new.token not in {str(v) for v in row.model_dump().values()}
    principal = await identity.token_principal(new.token)
    assert principal is not None and principal.via == "token"
    assert principal.grants == {("ops", "operator")}


async def test_a_token_records_its_last_use(identity: Identity, clock: Clock) -> None:
    await identity.create_user("alice", PASSWORD)
    new = await identity.create_token("alice", "ci")

    await identity.token_principal(new.token)

    [row] = await identity.tokens("alice")
    assert row.last_used_at == clock()


async def test_a_revoked_token_stops_working_and_only_its_owner_may_revoke_it(
        identity: Identity) -> None:
    await identity.create_user("alice", PASSWORD)
    await identity.create_user("mallory", PASSWORD)
    new = await identity.create_token("alice", "ci")

    with pytest.raises(IdentityError, match="no token with id"):
        await identity.revoke_token(new.id, "mallory")
    assert await identity.token_principal(new.token) is not None
    await identity.revoke_token(new.id, "alice")

    assert await identity.token_principal(new.token) is None


async def test_a_token_expires_after_its_days(identity: Identity, clock: Clock) -> None:
    await identity.create_user("alice", PASSWORD)
    new = await identity.create_token("alice", "short-lived", expires_days=1)

    clock.advance(hours=23)
    assert await identity.token_principal(new.token) is not None
    clock.advance(hours=2)
    assert await identity.token_principal(new.token) is None


async def test_tokens_of_a_deactivated_user_stop_working(identity: Identity) -> None:
    await identity.create_user("alice", PASSWORD)
    new = await identity.create_token("alice", "ci")

    await identity.set_active("alice", False)

    assert await identity.token_principal(new.token) is None


async def test_the_last_administrator_keeps_the_admin_role(identity: Identity) -> None:
    await identity.create_user("boss", PASSWORD, roles=[("*", "admin")])

    with pytest.raises(IdentityError, match="last administrator"):
        await identity.revoke("boss", "*", "admin")
    await identity.create_user("deputy", PASSWORD, roles=[("*", "admin")])
    await identity.revoke("boss", "*", "admin")

    principal = await identity.principal("boss")
    assert principal is not None and not principal.is_admin


async def test_single_sign_on_cannot_take_over_a_password_account(identity: Identity) -> None:
    await identity.create_user("alice", PASSWORD)

    with pytest.raises(AuthError, match="signs in with a password"):
        await identity.upsert_external("alice", "a@example.org", "Alice", [], [])
