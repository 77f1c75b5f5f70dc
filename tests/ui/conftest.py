"""UI tests with NiceGUI's simulated `User` (no browser): a real container on a SQLite file
(migrated once per session, copied per test) and a private Redis, handed to the pages
through `pages.shell.set_container`.

`app_user` opens pages of every module (tests/ui/main.py). Page modules are imported only
when main.py runs, so each test registers its pages afresh (NiceGUI clears the routes
between tests). `sign_in(user, c, name)` gives the simulated browser a session cookie.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from nicegui.testing.user import User
from nicegui.testing.user_simulation import user_simulation

from app.redis_launcher import EmbeddedRedis, start_redis
from app.settings import Settings

MAIN = Path(__file__).with_name("main.py")
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def ui_redis() -> Iterator[EmbeddedRedis]:
    server = start_redis(None)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from app.db import migrate

    path = tmp_path_factory.mktemp("uidb") / "template.db"
    migrate(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
async def ui_container(migrated_db: Path, ui_redis: EmbeddedRedis, tmp_path: Path
                       ) -> AsyncIterator[Any]:
    from app.bootstrap import bootstrap
    from pages.shell import set_container

    db = tmp_path / "trinity.db"
    await asyncio.to_thread(shutil.copy, migrated_db, db)
    settings = replace(Settings.from_env({"TRINITY_HOME": str(tmp_path / "home")}),
                       database_url=f"sqlite+aiosqlite:///{db}",
                       queue_name=f"trinity:ui:{uuid.uuid4().hex[:8]}")
    c = await bootstrap(settings, ui_redis.url, run_migrations=False)
    set_container(c)
    yield c
    await c.close()


@pytest.fixture
async def app_user(ui_container: Any, caplog: pytest.LogCaptureFixture
                   ) -> AsyncIterator[User]:
    """A simulated browser on the whole application; fails on ERROR logs."""
    async with user_simulation(main_file=MAIN) as u:
        yield u
    errors = [r for r in caplog.get_records("call") if r.levelname == "ERROR"]
    assert not errors, [r.getMessage() for r in errors]


async def make_user(c: Any, username: str, *roles: tuple[str, str],
                    teams: list[tuple[str, str]] | None = None) -> None:
    await c.identity.create_user(username, PASSWORD, roles=list(roles), teams=teams or [],
                                 email=f"{username}@example.org")


async def sign_in(user: User, c: Any, username: str) -> None:
    """Give the simulated browser a live session cookie for `username`."""
    from app.web_auth import COOKIE

    _, ticket = await c.identity.start_session(username)
    token = await c.identity.adopt(ticket)
    user.http_client.cookies.set(COOKIE, token)


# Pages carry `data-testid` (the Playwright selector); these helpers find the same elements
# in the simulation by turning each test id into a NiceGUI marker first.

def mark_testids(user: User) -> None:
    assert user.client is not None, "open a page first"
    for el in user.client.layout.descendants():
        testid = el.props.get("data-testid")
        if isinstance(testid, str) and testid not in el._markers:
            el.mark(*el._markers, testid)


def find(user: User, testid: str) -> Any:
    mark_testids(user)
    return user.find(marker=testid)


async def see(user: User, testid: str, retries: int = 30) -> None:
    """Wait (up to ~3 s) until an element with this test id is on the page."""
    import asyncio

    for _ in range(retries - 1):
        mark_testids(user)
        if user._sees(None, None, testid, None):
            return
        await asyncio.sleep(0.1)
    mark_testids(user)
    await user.should_see(marker=testid, retries=1)


async def see_text(user: User, text: str, retries: int = 30) -> None:
    await user.should_see(text, retries=retries)
