"""Designer, Python side: build a 200-step process and time what a page load costs before the
browser gets it (load, layout, validation, payload) and what one canvas edit costs.

    .venv/bin/python -m bench.designer [--steps 200]

The browser half of the 2 s target (render of the payload) is measured by the Playwright tests.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from pages.designer.checks import check
from pages.designer.model import DesignerModel
from pages.designer.yamltext import dump


def process(steps: int) -> str:
    """A wide, branching process: a chain of stages with parallel fan-outs and gateways."""
    out: list[dict[str, Any]] = []
    prev = None
    for i in range(steps):
        step: dict[str, Any] = {"id": f"s{i}", "name": f"Step {i}"}
        if i % 10 == 5:
            step.update(type="gateway", gateway_type="exclusive")
        else:
            step.update(type="agent_task", agent="demo-writer", message=f"do part {i}")
        if prev is not None:
            step["depends_on"] = prev
        out.append(step)
        prev_step = out[-2] if len(out) > 1 else None
        if prev_step and prev_step["type"] == "gateway":
            prev_step["routes"] = [{"condition": f"input.n > {i}", "target": step["id"]}]
        prev = step["id"] if i % 3 else [step["id"], f"s{max(i - 2, 0)}"] if i > 2 else step["id"]
    doc = {"name": "bench-designer", "input": {"n": {"type": "integer", "default": 1}},
           "steps": out}
    return dump(doc)


def timed(label: str, fn: Callable[[], Any], results: dict[str, float]) -> Any:
    start = time.perf_counter()
    value = fn()
    results[label] = time.perf_counter() - start
    return value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    steps = parser.parse_args().steps
    text = process(steps)
    r: dict[str, float] = {}
    model = timed("load + layout", lambda: DesignerModel(text), r)
    problems = timed("validation", lambda: check(model.text), r)
    payload = timed("browser payload (graph + JSON)", lambda: json.dumps(model.graph()), r)
    model.move([{"id": "s10", "x": 5000, "y": 5000}])
    timed("edit: move + minimal YAML rewrite", model.sync_text, r)
    model.set_field("s20", ["message"], "changed")
    timed("edit: field + minimal YAML rewrite", model.sync_text, r)
    timed("edit: revalidate", lambda: check(model.text), r)
    print(f"{steps} steps, {len(text.splitlines())} YAML lines, "
          f"{len(problems)} findings, payload {len(payload) / 1024:.0f} KiB")
    for label, seconds in r.items():
        print(f"  {label:<38} {seconds * 1000:8.1f} ms")
    page = r["load + layout"] + r["validation"] + r["browser payload (graph + JSON)"]
    print(f"  {'page load, Python side':<38} {page * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
