"""The browser-test harness itself: a real server answers a real Chromium, and a traceback in
the server log is found."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.support.server import TrinityServer, find_tracebacks


def test_the_server_answers_health_checks_through_the_browser(page: Page) -> None:
    response = page.request.get("/healthz")

    assert response.ok
    assert response.json() == {"status": "ok"}


def test_the_start_page_opens_in_chromium(page: Page) -> None:
    response = page.goto("/")

    assert response is not None and response.status == 200
    expect(page).to_have_title(re.compile("Trinity Processes"))
    expect(page.get_by_text("Trinity", exact=False).first).to_be_visible()


def test_the_cli_sees_the_servers_database(server: TrinityServer) -> None:
    processes = server.cli_json("processes", "list")

    assert processes, "trinity up publishes the bundled examples"


SAMPLE_LOG = """\
2026-05-01 10:00:00 trinity.up Trinity Processes: data in /tmp/home
INFO:     127.0.0.1:5000 - "GET / HTTP/1.1" 200 OK
ERROR:    Exception in ASGI application
Traceback (most recent call last):
  File "/app/pages/home.py", line 12, in home
    c.thing()
    ^^^^^^^^^
AttributeError: 'Container' object has no attribute 'thing'
INFO:     127.0.0.1:5000 - "GET /healthz HTTP/1.1" 200 OK
Task exception was never retrieved
Traceback (most recent call last):

  File "/app/worker/main.py", line 3, in run
    raise ValueError("bad")
ValueError: bad
"""


def test_tracebacks_in_a_server_log_are_found_with_their_exception_line() -> None:
    found = find_tracebacks(SAMPLE_LOG)

    assert len(found) == 2
    assert found[0].startswith("Traceback (most recent call last):")
    assert found[0].endswith("AttributeError: 'Container' object has no attribute 'thing'")
    assert "GET /healthz" not in found[0]
    assert found[1].endswith("ValueError: bad")


def test_a_log_without_tracebacks_yields_nothing() -> None:
    assert find_tracebacks("INFO: started\nERROR: a handled problem, reported\n") == []
