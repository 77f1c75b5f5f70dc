"""Designer, browser side: does a 200-step process open and become editable in under 2 s?

    .venv/bin/python -m bench.designer_browser [--steps 200] [--runs 5] [--keep]

Starts `trinity up` with a fresh home (like the e2e fixture, `tests/support/server.py`),
imports the generated process of `bench.designer` as a draft, signs in as the first
administrator in Debian's Chromium (1400×900) and, for each run, measures from navigation to
`/processes/<name>` until

- `nodes`: every step is drawn (steps + start + end `.vue-flow__node` in the DOM),
- `ready`: the canvas made its first fit (`data-ready="true"`: nodes measured, view fitted),
- `edit`: a first edit round trip is done: a click on a step's node went to the server and
  the property panel shows that step (`prop-id` holds its id).

One warm-up navigation is not counted. Prints each run and the medians; exit code 0 when
the median `edit` time is under the 2 s target. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from bench.designer import process
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.support.server import running_server

TARGET = 2.0  # seconds


def sign_in(page: Page, user: str, password: str) -> None:
    page.goto("/login?next=/processes")
    page.get_by_test_id("login-username").fill(user)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(lambda url: "/login" not in url)


def one_run(page: Page, name: str, nodes: int, step_id: str) -> dict[str, float]:
    """Seconds from navigation to all nodes drawn, to the first fit, to an edit round trip."""
    page.goto("about:blank")
    start = time.perf_counter()
    page.goto(f"/processes/{name}", wait_until="commit")
    drawn = page.locator(".vue-flow__node")
    expect(drawn).to_have_count(nodes, timeout=60_000)
    t_nodes = time.perf_counter() - start
    expect(page.get_by_test_id("designer-canvas")).to_have_attribute("data-ready", "true",
                                                                     timeout=60_000)
    t_ready = time.perf_counter() - start
    page.get_by_test_id(f"node-{step_id}").click()
    expect(page.get_by_test_id("prop-id")).to_have_value(step_id, timeout=60_000)
    t_edit = time.perf_counter() - start
    return {"nodes": t_nodes, "ready": t_ready, "edit": t_edit}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the server's folder")
    args = parser.parse_args()
    if CHROMIUM is None:
        print("no Chromium: install the Debian package `chromium` or set TRINITY_CHROMIUM")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="trinity-bench-designer-"))
    name = "bench-designer"
    source = workdir / f"{name}.yaml"
    source.write_text(process(args.steps), encoding="utf-8")
    nodes = args.steps + 2
    step_id = f"s{args.steps // 2}"
    with running_server(workdir / "server") as server:
        server.run_cli("processes", "import", str(source), check=True)
        user, password = server.admin
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(base_url=server.base_url,
                                          viewport={"width": 1400, "height": 900})
            page = context.new_page()
            sign_in(page, user, password)
            one_run(page, name, nodes, step_id)  # warm-up: caches, first compile
            results = []
            for i in range(args.runs):
                r = one_run(page, name, nodes, step_id)
                results.append(r)
                print(f"run {i + 1}: all {args.steps} steps drawn {r['nodes']:.2f} s, "
                      f"fitted {r['ready']:.2f} s, edit round trip done {r['edit']:.2f} s")
            browser.close()
    medians = {k: statistics.median(r[k] for r in results) for k in ("nodes", "ready",
                                                                    "edit")}
    print(f"median of {args.runs}: drawn {medians['nodes']:.2f} s, fitted "
          f"{medians['ready']:.2f} s, editable {medians['edit']:.2f} s "
          f"(target < {TARGET:g} s: {'met' if medians['edit'] < TARGET else 'NOT met'})")
    if args.keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if medians["edit"] < TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
