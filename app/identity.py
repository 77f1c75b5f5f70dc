"""Accounts, sign-in, sessions and API tokens.

Passwords are argon2 hashes; session cookies and API tokens are random strings of which only
a SHA-256 is stored, so a database leak gives no way in. Repeated failed sign-ins lock the
account for a while, with a message that says until when.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select

from app.db import Database
from app.security import ALL_TEAMS, Principal, Role
from app.tables import ApiTokenRow, RoleGrantRow, SessionRow, TeamMemberRow, UserRow

__all__ = ["AuthError", "Identity", "IdentityError", "hash_secret", "token_digest"]

MAX_FAILURES = 5
LOCK_MINUTES = 15
MIN_PASSWORD = 10
TICKET_SECONDS = 60
TOKEN_PREFIX = "trp_"

_hasher = PasswordHasher()


class IdentityError(ValueError):
    """A request about accounts that cannot be done; the message says why."""


class AuthError(IdentityError):
    """Sign-in refused. The message is shown as is, so it never tells which part was wrong
    (except for a locked account, which says until when)."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


@dataclass(frozen=True)
class NewToken:
    id: str
    name: str
    token: str  # shown once
    prefix: str


class Identity:
    def __init__(self, db: Database, clock: Callable[[], datetime],
                 session_hours: float = 12.0) -> None:
        self.db = db
        self.clock = clock
        self.session_lifetime = timedelta(hours=session_hours)

    # --- accounts ------------------------------------------------------------------------

    async def create_user(self, username: str, password: str | None = None, *,
                          email: str | None = None, display_name: str | None = None,
                          roles: Iterable[tuple[str, str]] = (),
                          teams: Iterable[tuple[str, str]] = (), source: str = "local",
                          by: str | None = None) -> UserRow:
        """A new account; `roles` are (team or '*', role), `teams` (team, team role)."""
        _check_username(username)
        if password is not None:
            _check_password(password)
        now = self.clock()
        async with self.db.write() as s:
            if await s.get(UserRow, username) is not None:
                raise IdentityError(f"a user named '{username}' already exists")
            row = UserRow(username=username, email=email, display_name=display_name,
                          password_hash=_hasher.hash(password) if password else None,
                          source=source, created_at=now)
            s.add(row)
            await s.flush()
            for team, role in roles:
                s.add(RoleGrantRow(username=username, team=team, role=_role(role).value,
                                   granted_by=by, granted_at=now))
            for team, team_role in teams:
                s.add(TeamMemberRow(team=team, username=username, role=team_role or "member"))
        return row

    async def ensure_first_admin(self) -> tuple[str, str] | None:
        """On a database with no administrator, create `admin` with a random password and
        return (username, password) to print once; otherwise None."""
        async with self.db.read() as s:
            found = (await s.execute(select(RoleGrantRow).where(
                RoleGrantRow.role == Role.ADMIN.value).limit(1))).first()
        if found is not None:
            return None
        password = secrets.token_urlsafe(12)
        async with self.db.write() as s:
            user = await s.get(UserRow, "admin")
            now = self.clock()
            if user is None:
                s.add(UserRow(username="admin", display_name="Administrator",
                              password_hash=_hasher.hash(password), created_at=now))
            else:
                user.password_hash = _hasher.hash(password)
                user.active, user.failed_logins, user.locked_until = True, 0, None
            await s.flush()
            s.add(RoleGrantRow(username="admin", team=ALL_TEAMS, role=Role.ADMIN.value,
                               granted_by="system", granted_at=now))
        return "admin", password

    async def set_password(self, username: str, new: str) -> None:
        _check_password(new)
        async with self.db.write() as s:
            user = await _user(s, username)
            user.password_hash = _hasher.hash(new)
            user.failed_logins, user.locked_until = 0, None
            await s.execute(delete(SessionRow).where(SessionRow.username == username))

    async def change_password(self, username: str, old: str, new: str) -> None:
        """The user's own change: the old password must be right."""
        async with self.db.read() as s:
            user = await _user(s, username)
        if not _verify(user.password_hash, old):
            raise AuthError("the current password is not right")
        if old == new:
            raise IdentityError("the new password must differ from the current one")
        await self.set_password(username, new)

    async def set_active(self, username: str, active: bool) -> None:
        async with self.db.write() as s:
            user = await _user(s, username)
            user.active = active
            if not active:
                await s.execute(delete(SessionRow).where(SessionRow.username == username))

    async def grant(self, username: str, team: str, role: str, by: str | None = None) -> None:
        async with self.db.write() as s:
            await _user(s, username)
            if await s.get(RoleGrantRow, (username, team, _role(role).value)) is None:
                s.add(RoleGrantRow(username=username, team=team, role=_role(role).value,
                                   granted_by=by, granted_at=self.clock()))

    async def revoke(self, username: str, team: str, role: str) -> None:
        async with self.db.write() as s:
            row = await s.get(RoleGrantRow, (username, team, _role(role).value))
            if row is None:
                raise IdentityError(f"'{username}' does not hold {role} in {team}")
            if role == Role.ADMIN.value and await _admin_count(s) <= 1:
                raise IdentityError("the last administrator cannot lose the admin role")
            await s.delete(row)

    async def set_membership(self, username: str, team: str, team_role: str | None) -> None:
        """Add to a team (with a team role used by approval assignees) or remove (None)."""
        async with self.db.write() as s:
            await _user(s, username)
            row = await s.get(TeamMemberRow, (team, username))
            if team_role is None:
                if row is not None:
                    await s.delete(row)
            elif row is None:
                s.add(TeamMemberRow(team=team, username=username, role=team_role))
            else:
                row.role = team_role

    async def users(self) -> list[tuple[UserRow, list[RoleGrantRow], list[TeamMemberRow]]]:
        async with self.db.read() as s:
            users = list((await s.execute(select(UserRow).order_by(UserRow.username))).scalars())
            grants = list((await s.execute(select(RoleGrantRow))).scalars())
            members = list((await s.execute(select(TeamMemberRow))).scalars())
        return [(u, [g for g in grants if g.username == u.username],
                 [m for m in members if m.username == u.username]) for u in users]

    async def teams(self) -> list[str]:
        async with self.db.read() as s:
            a = set((await s.execute(select(TeamMemberRow.team))).scalars())
            b = set((await s.execute(select(RoleGrantRow.team))).scalars())
        return sorted((a | b) - {ALL_TEAMS})

    async def principal(self, username: str, via: str = "session") -> Principal | None:
        """The principal for an active user, or None."""
        async with self.db.read() as s:
            user = await s.get(UserRow, username)
            if user is None or not user.active:
                return None
            return await _principal(s, user, via)

    # --- sign-in and sessions --------------------------------------------------------------

    async def authenticate(self, username: str, password: str) -> UserRow:
        """Check a password; counts failures and locks the account after MAX_FAILURES."""
        now = self.clock()
        failure: str | None = None
        async with self.db.write() as s:
            user = await s.get(UserRow, username.strip())
            if user is not None and user.locked_until is not None and user.locked_until > now:
                minutes = max(1, math.ceil((user.locked_until - now).total_seconds() / 60))
                raise AuthError(f"too many failed sign-ins: this account is locked for "
                                f"{minutes} more minute{'s' if minutes != 1 else ''}")
            if user is None or not user.active or not _verify(user.password_hash, password):
                # The failure count must be committed, so the error is raised after the
                # transaction ends rather than inside it (which would roll the count back).
                failure = "wrong username or password"
                if user is not None:
                    user.failed_logins += 1
                    if user.failed_logins >= MAX_FAILURES:
                        user.locked_until = now + timedelta(minutes=LOCK_MINUTES)
                        user.failed_logins = 0
                        failure = (f"too many failed sign-ins: this account is locked "
                                   f"for {LOCK_MINUTES} minutes")
                    s.add(user)
            else:
                user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
                if _hasher.check_needs_rehash(user.password_hash or ""):
                    user.password_hash = _hasher.hash(password)
        if failure is not None or user is None:
            raise AuthError(failure or "wrong username or password")
        return user

    async def start_session(self, username: str, ip: str | None = None,
                            user_agent: str | None = None) -> tuple[str, str]:
        """A new session; returns (cookie token, one-time ticket). The ticket is what a
        page hands to the browser to fetch the cookie (`adopt`), within TICKET_SECONDS."""
        token, ticket = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        now = self.clock()
        async with self.db.write() as s:
            s.add(SessionRow(id=token_digest(token), username=username,
                             ticket_hash=token_digest(ticket), created_at=now,
                             expires_at=now + self.session_lifetime, last_seen_at=now,
                             ip=(ip or "")[:64] or None,
                             user_agent=(user_agent or "")[:300] or None))
        return token, ticket

    async def adopt(self, ticket: str) -> str | None:
        """Trade a one-time ticket for a new cookie token (the session keeps its row)."""
        now = self.clock()
        async with self.db.write() as s:
            row = (await s.execute(select(SessionRow).where(
                SessionRow.ticket_hash == token_digest(ticket)))).scalars().first()
            if row is None or row.revoked or row.created_at is None or \
                    now - row.created_at > timedelta(seconds=TICKET_SECONDS):
                return None
            token = secrets.token_urlsafe(32)
            fresh = SessionRow(id=token_digest(token), username=row.username, ticket_hash=None,
                               created_at=now, expires_at=now + self.session_lifetime,
                               last_seen_at=now, ip=row.ip, user_agent=row.user_agent)
            await s.delete(row)
            s.add(fresh)
        return token

    async def session_principal(self, token: str | None) -> Principal | None:
        """The principal of a live session cookie; sliding expiry within the lifetime."""
        if not token:
            return None
        now = self.clock()
        async with self.db.read() as s:
            row = await s.get(SessionRow, token_digest(token))
            if row is None or row.revoked or row.ticket_hash is not None or \
                    row.expires_at is None or row.expires_at <= now:
                return None
            user = await s.get(UserRow, row.username)
            if user is None or not user.active:
                return None
            principal = await _principal(s, user, "session")
        if row.last_seen_at is None or now - row.last_seen_at > timedelta(minutes=5):
            async with self.db.write() as s:
                live = await s.get(SessionRow, row.id)
                if live is not None:
                    live.last_seen_at = now
        return principal

    async def end_session(self, token: str | None) -> None:
        if not token:
            return
        async with self.db.write() as s:
            await s.execute(delete(SessionRow).where(SessionRow.id == token_digest(token)))

    async def purge_sessions(self) -> int:
        async with self.db.write() as s:
            result: Any = await s.execute(delete(SessionRow).where(
                SessionRow.expires_at < self.clock()))
            return int(result.rowcount or 0)

    # --- API tokens ------------------------------------------------------------------------

    async def create_token(self, username: str, name: str,
                           expires_days: int | None = None) -> NewToken:
        name = name.strip()
        if not name or len(name) > 100:
            raise IdentityError("a token needs a name of 1 to 100 characters")
        token = TOKEN_PREFIX + secrets.token_urlsafe(30)
        now = self.clock()
        row = ApiTokenRow(id=str(uuid.uuid4()), username=username, name=name,
                          token_hash=token_digest(token), prefix=token[:10], created_at=now,
                          expires_at=now + timedelta(days=expires_days) if expires_days
                          else None)
        async with self.db.write() as s:
            await _user(s, username)
            s.add(row)
        return NewToken(row.id, name, token, row.prefix)

    async def tokens(self, username: str | None = None) -> list[ApiTokenRow]:
        q = select(ApiTokenRow).order_by(ApiTokenRow.created_at.desc())  # type: ignore
        if username is not None:
            q = q.where(ApiTokenRow.username == username)
        async with self.db.read() as s:
            return list((await s.execute(q)).scalars())

    async def revoke_token(self, token_id: str, username: str | None = None) -> ApiTokenRow:
        """Revoke a token (only the owner's own when `username` is given)."""
        async with self.db.write() as s:
            row = await s.get(ApiTokenRow, token_id)
            if row is None or (username is not None and row.username != username):
                raise IdentityError(f"no token with id '{token_id}'")
            if row.revoked_at is None:
                row.revoked_at = self.clock()
            return row

    async def token_principal(self, token: str | None) -> Principal | None:
        if not token or not token.startswith(TOKEN_PREFIX):
            return None
        now = self.clock()
        async with self.db.read() as s:
            row = (await s.execute(select(ApiTokenRow).where(
                ApiTokenRow.token_hash == token_digest(token)))).scalars().first()
            if row is None or row.revoked_at is not None or (
                    row.expires_at is not None and row.expires_at <= now):
                return None
            user = await s.get(UserRow, row.username)
            if user is None or not user.active:
                return None
            principal = await _principal(s, user, "token")
        if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
            async with self.db.write() as s:
                live = await s.get(ApiTokenRow, row.id)
                if live is not None:
                    live.last_used_at = now
        return principal

    # --- single sign-on --------------------------------------------------------------------

    async def upsert_external(self, username: str, email: str | None, display_name: str | None,
                              roles: Iterable[tuple[str, str]],
                              teams: Iterable[tuple[str, str]]) -> UserRow:
        """Create or refresh an account signed in through OIDC: its roles and team
        memberships are replaced by what the provider's claims map to."""
        _check_username(username)
        now = self.clock()
        async with self.db.write() as s:
            user = await s.get(UserRow, username)
            if user is None:
                user = UserRow(username=username, source="oidc", created_at=now)
                s.add(user)
            elif user.source != "oidc":
                raise AuthError(f"the account '{username}' signs in with a password, not "
                                "single sign-on")
            user.email, user.display_name, user.last_login_at = email, display_name, now
            await s.flush()
            await s.execute(delete(RoleGrantRow).where(RoleGrantRow.username == username))
            await s.execute(delete(TeamMemberRow).where(TeamMemberRow.username == username))
            for team, role in set(roles):
                s.add(RoleGrantRow(username=username, team=team, role=_role(role).value,
                                   granted_by="oidc", granted_at=now))
            for team, team_role in dict(teams).items():
                s.add(TeamMemberRow(team=team, username=username, role=team_role or "member"))
        return user


async def _user(s: Any, username: str) -> UserRow:
    user: UserRow | None = await s.get(UserRow, username)
    if user is None:
        raise IdentityError(f"no user named '{username}'")
    return user


async def _principal(s: Any, user: UserRow, via: str) -> Principal:
    grants = (await s.execute(select(RoleGrantRow).where(
        RoleGrantRow.username == user.username))).scalars()
    teams = (await s.execute(select(TeamMemberRow.team).where(
        TeamMemberRow.username == user.username))).scalars()
    return Principal(user.username, frozenset((g.team, Role(g.role)) for g in grants
                                              if g.role in Role.__members__.values()),
                     frozenset(teams), user.display_name, user.email, via)


async def _admin_count(s: Any) -> int:
    return int((await s.execute(select(func.count()).select_from(RoleGrantRow).where(
        RoleGrantRow.role == Role.ADMIN.value, RoleGrantRow.team == ALL_TEAMS))).scalar() or 0)


def _verify(stored: str | None, password: str) -> bool:
    if not stored:
        return False
    try:
        return bool(_hasher.verify(stored, password))
    except (VerificationError, InvalidHashError):
        return False


def _role(name: str) -> Role:
    try:
        return Role(name)
    except ValueError:
        raise IdentityError(f"unknown role '{name}'; roles are "
                            f"{', '.join(r.value for r in Role)}") from None


def _check_username(username: str) -> None:
    if not username or len(username) > 100 or not all(
            c.isalnum() or c in "._-@+" for c in username):
        raise IdentityError(f"'{username}' is not a valid username (letters, digits and "
                            "'._-@+', up to 100 characters)")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise IdentityError(f"a password needs at least {MIN_PASSWORD} characters")
