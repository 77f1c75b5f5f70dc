"""Browser tests: a real Trinity server and Debian's Chromium driven by sync Playwright.

Run them apart from the asyncio suite (`python3 dev.py test tests/e2e`): sync Playwright and
pytest-asyncio cannot share one pytest process.

Fixtures: `server` (one `trinity up` for the session), `server_factory(env=..., command=...)`
(a server of the test's own, e.g. with OIDC settings), `page` / `context` / `browser` from
pytest-playwright with `base_url` set to the session server. A test fails when a server's
log gained a Python traceback while it ran; mark it `allow_server_traceback` when that is
the point of the test.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import LIVE_SERVERS, TrinityServer, running_server

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage", "--disable-quic"]
BROWSER_FIXTURES = {"page", "context", "browser", "new_context", "browser_type", "playwright",
                    "launch_browser"}


def chromium_path() -> str | None:
    """TRINITY_CHROMIUM if set (even when it does not exist: that is how a test run without a
    browser is tried), else Debian's /usr/bin/chromium, else chromium on PATH."""
    explicit = os.environ.get("TRINITY_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM = chromium_path()
NO_BROWSER = (f"no Chromium at {os.environ.get('TRINITY_CHROMIUM') or '/usr/bin/chromium'}: "
              "install the Debian package `chromium` (python3 dev.py test does that when run "
              "as root) or set TRINITY_CHROMIUM to a Chromium binary")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_server_traceback: the test expects a traceback "
                            "in the server log")
    # Screenshots of failed tests go to a folder of this run outside the checkout
    # (pytest-playwright empties its output folder at start; runs must not share one).
    if config.getoption("--screenshot", "off") == "off":
        config.option.screenshot = "only-on-failure"
    if config.getoption("--output", None) == "test-results":
        config.option.output = str(Path(tempfile.gettempdir()) / f"trinity-e2e-{os.getpid()}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM is not None:
        return
    skip = pytest.mark.skip(reason=NO_BROWSER)
    here = Path(__file__).parent
    for item in items:
        uses_browser = BROWSER_FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses_browser and item.path.is_relative_to(here):
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> str:
    return f"chromium: {CHROMIUM or 'missing, browser tests skip'}"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    output = Path(config.getoption("--output"))
    shots = sorted(output.rglob("*.png")) if output.is_dir() else []
    if shots:
        terminalreporter.write_sep("-", "screenshots of failed browser tests")
        for shot in shots:
            terminalreporter.write_line(str(shot))


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrinityServer]:
    """`trinity up` with a fresh home, shared by the session's tests."""
    with running_server(tmp_path_factory.mktemp("server")) as s:
        yield s


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., TrinityServer]]:
    """Start a server of the test's own: `server_factory(env={...}, command="web")`."""
    with ExitStack() as stack:
        count = iter(range(1000))

        def start(env: dict[str, str] | None = None, command: str = "up") -> TrinityServer:
            workdir = tmp_path / f"server{next(count)}"
            return stack.enter_context(running_server(workdir, env, command))
        yield start


@pytest.fixture(scope="session")
def base_url(server: TrinityServer) -> str:
    """The session server's address (pytest-playwright's fixture of the same name)."""
    return server.base_url


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any], base_url: str
                         ) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1400, "height": 900},
            "base_url": base_url}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Fail the test (or its teardown) when a server logged a traceback meanwhile."""
    report = yield
    if report.when == "setup":
        return report
    found = [(s, tb) for s in list(LIVE_SERVERS) for tb in s.new_tracebacks()]
    LIVE_SERVERS[:] = [s for s in LIVE_SERVERS if s.process is not None]
    if not found or report.skipped or item.get_closest_marker("allow_server_traceback"):
        return report
    text = "\n\n".join(f"server {s.base_url} (log {s.log_path}):\n{tb}" for s, tb in found)
    if report.failed:
        report.sections.append(("server tracebacks", text))
    else:
        report.outcome = "failed"
        report.longrepr = f"the server logged {len(found)} traceback(s) during this test:" \
            f"\n\n{text}"
    return report
