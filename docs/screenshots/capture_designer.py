"""Screenshots of the process designer for the docs (1400×900 PNGs next to this file).

Starts a real server (`trinity up` with its examples) with a fresh home and captures, in
Debian's Chromium, signed in as the first administrator:

  designer.png            /processes/content-review with the gateway's route selected and
                          the property panel showing its condition
  designer-step.png       the same process with the writer step's properties
  designer-problems.png   /processes/new?example=content-review with the scoring step's agent
                          cleared: the badge on the step and the problems list
  designer-import.png     tests/fixtures/designer/order-check.bpmn imported: the graph and
                          the report of the BPMN elements that were left out

Run: .venv/bin/python docs/screenshots/capture_designer.py  (TRINITY_CHROMIUM to use another
Chromium binary than /usr/bin/chromium).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, ViewportSize, expect, sync_playwright  # noqa: E402

from tests.support.server import running_server  # noqa: E402

OUT = Path(__file__).resolve().parent
SIZE: ViewportSize = {"width": 1400, "height": 900}
WAIT = 60_000  # ms


def chromium() -> str:
    found = os.environ.get("TRINITY_CHROMIUM") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None) or \
        shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        sys.exit("no Chromium: install the Debian package `chromium` or set TRINITY_CHROMIUM")
    return found


def open_designer(page: Page, path: str) -> None:
    page.goto(path)
    expect(page.get_by_test_id("designer-canvas")).to_have_attribute("data-ready", "true",
                                                                     timeout=WAIT)
    page.wait_for_load_state("networkidle")


def settle(page: Page) -> None:
    """Notifications gone and no animation running, so the picture is stable."""
    expect(page.locator(".q-notification")).to_have_count(0, timeout=WAIT)
    page.wait_for_timeout(400)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="trinity-shots-"))
    try:
        with running_server(work / "server") as server, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(),
                                        args=["--no-sandbox", "--disable-gpu",
                                              "--disable-dev-shm-usage"])
            page = browser.new_context(base_url=server.base_url, viewport=SIZE).new_page()
            user, password = server.admin
            page.goto("/login?next=/processes")
            page.get_by_test_id("login-username").fill(user)
            page.get_by_test_id("login-password").fill(password)
            page.get_by_test_id("login-submit").click()
            page.wait_for_url(lambda url: "/login" not in url)

            open_designer(page, "/processes/content-review")
            for _ in range(2):  # the fit of a long row is small: closer to the gateway
                page.locator(".vue-flow__controls-zoomin").click()
            page.locator(".vue-flow__edge.route").first.locator(
                ".vue-flow__edge-textwrapper").click()
            expect(page.get_by_test_id("prop-edge-condition")).to_be_visible(timeout=WAIT)
            settle(page)
            page.screenshot(path=OUT / "designer.png")

            page.get_by_test_id("node-draft").click()
            expect(page.get_by_test_id("prop-id")).to_have_value("draft", timeout=WAIT)
            settle(page)
            page.screenshot(path=OUT / "designer-step.png")

            open_designer(page, "/processes/new?example=content-review")
            page.get_by_test_id("node-score").click()
            expect(page.get_by_test_id("prop-id")).to_have_value("score", timeout=WAIT)
            page.get_by_test_id("prop-agent").locator(
                "xpath=ancestor::label").get_by_role("button", name="Clear").click()
            expect(page.get_by_test_id("badge-score")).to_be_visible(timeout=WAIT)
            page.get_by_test_id("tb-fit").click()
            settle(page)
            page.get_by_test_id("designer-problems").scroll_into_view_if_needed()
            page.screenshot(path=OUT / "designer-problems.png")

            open_designer(page, "/processes/new")
            page.get_by_test_id("tb-import").click()
            page.get_by_test_id("import-upload").locator("input[type=file]").set_input_files(
                ROOT / "tests" / "fixtures" / "designer" / "order-check.bpmn")
            expect(page.get_by_test_id("node-cool_off")).to_be_visible(timeout=WAIT)
            expect(page.locator(".q-notification").filter(
                has_text="left out (unsupported)")).to_be_visible(timeout=WAIT)
            page.wait_for_timeout(600)
            page.screenshot(path=OUT / "designer-import.png")
            browser.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name in ("designer.png", "designer-step.png", "designer-problems.png",
                 "designer-import.png"):
        print(OUT / name)


if __name__ == "__main__":
    main()
