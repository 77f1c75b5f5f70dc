"""Screenshots of the operate pages for the docs (1400×900 PNGs next to this file).

Starts a real server (`trinity up` with its examples, worker and demo agents) with a fresh
home, runs two content-review executions (one approved to the end, one waiting for the
editor) and captures, in Debian's Chromium:

  operate-catalog.png     /processes with the example processes
  operate-live-view.png   the live view of the finished content-review execution
  operate-inbox.png       the inbox with the waiting request selected
  operate-dashboard.png   /dashboard

Run: .venv/bin/python docs/screenshots/capture_operate.py  (TRINITY_CHROMIUM to use another
Chromium binary than /usr/bin/chromium).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

from tests.support.server import TrinityServer, running_server  # noqa: E402

OUT = Path(__file__).resolve().parent
PASSWORD = "correct horse battery"
SIZE = {"width": 1400, "height": 900}
WAIT = 60.0  # seconds for the worker and demo agents


def chromium() -> str:
    found = os.environ.get("TRINITY_CHROMIUM") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None) or \
        shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        sys.exit("no Chromium: install the Debian package `chromium` or set TRINITY_CHROMIUM")
    return found


def add_user(server: TrinityServer, name: str, role: str, team: str | None = None) -> None:
    script = textwrap.dedent(f"""
        import asyncio, os
        from app.bootstrap import bootstrap
        from app.settings import Settings

        async def main():
            c = await bootstrap(Settings.from_env(), os.environ["REDIS_URL"],
                                run_migrations=False)
            try:
                await c.identity.create_user({name!r}, {PASSWORD!r}, roles=[("*", {role!r})],
                    teams={[(team, "member")] if team else []!r},
                    email={name + "@example.org"!r}, display_name={name.title()!r})
            finally:
                await c.close()
        asyncio.run(main())
    """)
    subprocess.run([sys.executable, "-c", script], env=server.env, cwd=ROOT, check=True,
                   timeout=60, capture_output=True)


def wait_for(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {what}")


def pending_request(server: TrinityServer, execution: str) -> dict[str, Any] | None:
    return next((r for r in server.cli_json("approvals", "list")
                 if r["execution_id"] == execution), None)


def status(server: TrinityServer, execution: str) -> str:
    return str(server.cli_json("executions", "show", execution)["status"])


def sign_in(page: Page, name: str, password: str, target: str) -> None:
    page.goto(f"/login?next={target}")
    page.get_by_test_id("login-username").fill(name)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"**{target.split('?')[0]}*")


def shot(page: Page, name: str, settle: int = 400) -> None:
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(settle)  # transitions (and chart animations) end first
    path = OUT / name
    page.screenshot(path=str(path))
    print(f"wrote {path.relative_to(ROOT)}")


def capture(server: TrinityServer) -> None:
    add_user(server, "olga", "operator")
    add_user(server, "erin", "approver", team="editors")
    done = server.cli_json("start", "content-review", "--input", "topic=Remote work")["id"]
    request = wait_for(lambda: pending_request(server, done), "the first editor request")
    server.run_cli("approvals", "decide", request["id"], "--decision", "approved",
                   "--comment", "Ready to publish", "--as", "erin", check=True)
    wait_for(lambda: status(server, done) == "completed", "the first execution to complete")
    waiting = server.cli_json("start", "content-review", "--input", "topic=Tidal power",
                              "--input", "audience=partners")["id"]
    second = wait_for(lambda: pending_request(server, waiting), "the second editor request")
    admin, admin_password = server.admin

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(),
                                    args=["--no-sandbox", "--disable-gpu",
                                          "--disable-dev-shm-usage"])
        try:
            operator = browser.new_context(base_url=server.base_url, viewport=SIZE)
            page = operator.new_page()
            sign_in(page, "olga", PASSWORD, "/processes")
            expect(page.get_by_test_id("process-content-review")).to_be_visible()
            shot(page, "operate-catalog.png")

            page.goto(f"/executions/{done}")
            expect(page.get_by_test_id("execution-status")).to_have_attribute(
                "data-status", "completed")
            page.get_by_test_id("step-item-editor-review").click()
            expect(page.get_by_test_id("approval-state")).to_be_visible()
            shot(page, "operate-live-view.png")

            editor = browser.new_context(base_url=server.base_url, viewport=SIZE).new_page()
            sign_in(editor, "erin", PASSWORD, f"/inbox?request={second['id']}")
            expect(editor.get_by_test_id(f"request-{second['id']}")).to_be_visible()
            expect(editor.get_by_test_id("inbox-graph")).to_be_visible()
            shot(editor, "operate-inbox.png")

            boss = browser.new_context(base_url=server.base_url, viewport=SIZE).new_page()
            sign_in(boss, admin, admin_password, "/dashboard")
            shot(boss, "operate-dashboard.png", settle=2000)
        finally:
            browser.close()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="trinity-shots-") as tmp, \
            running_server(Path(tmp)) as server:
        capture(server)


if __name__ == "__main__":
    main()
