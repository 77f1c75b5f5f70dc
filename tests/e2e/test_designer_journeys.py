"""Designer journeys in Chromium against `trinity up`: build a process by dragging from the
palette and between handles, fix what the problems list reports, save, publish and reload;
import YAML and BPMN 2.0 through the dialog; export both and import them back unchanged; a
clicked problem selects its element; refused connections say why; and the canvas
conveniences (undo/redo, copy/paste, multi-select, edge-label editing, auto layout, minimap,
snap to grid).

Everything goes through the browser: palette items are dragged with real mouse-driven HTML5
drag and drop (Chromium carries the dataTransfer), edges are drawn from handle to handle.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Locator, Page, expect

from tests.support.server import ROOT, TrinityServer

FIXTURES = ROOT / "tests" / "fixtures" / "designer"
UI = 15_000  # ms: one server round trip, generous for a busy machine


# --- helpers ---------------------------------------------------------------------------------


def _sign_in(page: Page, server: TrinityServer, target: str) -> None:
    name, password = server.admin
    page.goto(f"/login?next={target}")
    page.get_by_test_id("login-username").fill(name)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    expect(page).to_have_url(re.compile(re.escape(target.split("?")[0])))


def _canvas(page: Page) -> Locator:
    return page.get_by_test_id("designer-canvas")


def _wait_ready(page: Page) -> None:
    """The canvas drew its nodes and made its first fit (positions on screen are stable)."""
    expect(_canvas(page)).to_have_attribute("data-ready", "true", timeout=30_000)
    expect(page.get_by_test_id("node-__start__")).to_be_visible()


@pytest.fixture
def designer(page: Page, server: TrinityServer) -> Iterator[Page]:
    """The admin on /processes/new with the canvas ready."""
    _sign_in(page, server, "/processes/new")
    _wait_ready(page)
    yield page


def node(page: Page, node_id: str) -> Locator:
    return page.get_by_test_id(f"node-{node_id}")


def edge(page: Page, source: str, target: str) -> Locator:
    return page.locator(f'.vue-flow__edge[data-id="{source}->{target}"]')


def drop(page: Page, kind: str, x: float, y: float) -> None:
    """Drag a palette item onto the canvas at (x, y) from the canvas' top-left corner."""
    page.get_by_test_id(f"palette-{kind}").drag_to(_canvas(page),
                                                   target_position={"x": x, "y": y})


def _handle(page: Page, node_id: str, handle: str) -> dict[str, float]:
    box = node(page, node_id).locator(f'.vue-flow__handle[data-handleid="{handle}"]'
                                      ).bounding_box()
    assert box is not None, f"no handle '{handle}' on {node_id}"
    return {"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}


def connect(page: Page, source: str, target: str, source_handle: str = "out",
            target_handle: str = "in") -> None:
    """Mouse down on the source handle, move, mouse up on the target handle."""
    a, b = _handle(page, source, source_handle), _handle(page, target, target_handle)
    page.mouse.move(a["x"], a["y"])
    page.mouse.down()
    page.mouse.move((a["x"] + b["x"]) / 2, (a["y"] + b["y"]) / 2, steps=6)
    page.mouse.move(b["x"], b["y"], steps=6)
    page.mouse.up()


def positions(page: Page) -> dict[str, tuple[float, float]]:
    """Each drawn node's position in flow coordinates (Vue Flow's translate on the node)."""
    raw: dict[str, str] = page.evaluate("""() => Object.fromEntries(
        [...document.querySelectorAll('.vue-flow__node')].map(
            (n) => [n.dataset.id, n.style.transform]))""")
    out = {}
    for nid, transform in raw.items():
        m = re.search(r"translate\((-?[\d.]+)px, (-?[\d.]+)px\)", transform)
        assert m, f"{nid}: {transform}"
        out[nid] = (float(m.group(1)), float(m.group(2)))
    return out


def edge_labels(page: Page) -> dict[str, str]:
    """Each drawn edge id with its label text ('' when it has none)."""
    labels: dict[str, str] = page.evaluate("""() => Object.fromEntries(
        [...document.querySelectorAll('.vue-flow__edge')].map((e) => [e.dataset.id,
            (e.querySelector('.vue-flow__edge-text') || {}).textContent || '']))""")
    return labels


def notification(page: Page, text: str) -> Locator:
    return page.locator(".q-notification").filter(has_text=text)


def import_file(page: Page, path: Path) -> None:
    page.get_by_test_id("tb-import").click()
    upload = page.get_by_test_id("import-upload")
    expect(upload).to_be_visible()
    upload.locator("input[type=file]").set_input_files(path)
    expect(upload).to_be_hidden(timeout=UI)  # the dialog closes once the import is done
    _wait_ready(page)  # and the new graph is fitted into view


def export(page: Page, testid: str, folder: Path) -> Path:
    with page.expect_download(timeout=UI) as download:
        page.get_by_test_id(testid).click()
    target = folder / download.value.suggested_filename
    download.value.save_as(target)
    return target


def summary(page: Page) -> Locator:
    return page.get_by_test_id("problems-summary")


def problem(page: Page, text: str) -> Locator:
    return page.get_by_test_id("designer-problems").locator(
        '[data-testid^="problem-"]').filter(has_text=text)


def steps_structure(text: str) -> dict[str, Any]:
    """What a BPMN round trip has to keep: ids, types, dependencies, routes and conditions."""
    doc = yaml.safe_load(text)
    return {s["id"]: {k: s.get(k) for k in ("type", "gateway_type", "depends_on", "routes",
                                            "default_route", "delay", "name")}
            for s in doc["steps"]}


# --- journeys --------------------------------------------------------------------------------


def test_a_process_built_on_the_canvas_is_fixed_saved_published_and_reloads_the_same(
        designer: Page) -> None:
    page = designer
    page.get_by_test_id("proc-name").fill("canvas-built")
    expect(page.get_by_test_id("designer-yaml")).to_contain_text("name: canvas-built",
                                                                 timeout=UI)

    # four steps dragged from the palette
    for kind, x, y, nid in (("agent_task", 60, 100, "agent_task_1"),
                            ("exclusive_gateway", 320, 100, "exclusive_gateway_1"),
                            ("human_approval", 260, 260, "human_approval_1"),
                            ("notification", 260, 420, "notification_1")):
        drop(page, kind, x, y)
        expect(node(page, nid)).to_be_visible(timeout=UI)
        expect(page.get_by_test_id("prop-id")).to_have_value(nid, timeout=UI)  # selected
    # a new step hangs between start and end until it is connected
    expect(edge(page, "__start__", "exclusive_gateway_1")).to_have_count(1)

    # edges drawn handle to handle; the gateway's bottom handle makes the default route
    connect(page, "agent_task_1", "exclusive_gateway_1")
    expect(edge(page, "agent_task_1", "exclusive_gateway_1")).to_have_count(1, timeout=UI)
    connect(page, "exclusive_gateway_1", "human_approval_1")
    expect(edge(page, "exclusive_gateway_1", "human_approval_1")).to_have_count(1, timeout=UI)
    connect(page, "exclusive_gateway_1", "notification_1", source_handle="default")
    default = edge(page, "exclusive_gateway_1", "notification_1")
    expect(default).to_have_count(1, timeout=UI)
    expect(default).to_have_class(re.compile(r"\bdefault\b"))  # the default-route marker
    expect(default.locator(".vue-flow__edge-text")).to_have_text("default")
    # the derived start/end edges of connected steps are gone (they once stayed drawn)
    for source, target in (("__start__", "exclusive_gateway_1"),
                           ("__start__", "human_approval_1"),
                           ("agent_task_1", "__end__"), ("exclusive_gateway_1", "__end__")):
        expect(edge(page, source, target)).to_have_count(0)
    expect(edge(page, "__start__", "agent_task_1")).to_have_count(1)
    expect(edge(page, "notification_1", "__end__")).to_have_count(1)

    # validation: errors in the list and as badges; publish is disabled
    expect(problem(page, "'agent' is required")).to_have_count(1, timeout=UI)
    expect(problem(page, "needs a message")).to_have_count(1)
    expect(page.get_by_test_id("badge-agent_task_1")).to_have_text("2")
    expect(page.get_by_test_id("badge-notification_1")).to_have_text("1")
    expect(page.get_by_test_id("badge-human_approval_1")).to_have_count(0)
    expect(summary(page)).to_contain_text("3 error(s)")
    expect(page.get_by_test_id("tb-publish")).to_be_disabled()

    # fix the notification from its problem, the agent task from the canvas
    problem(page, "needs a message").click()
    expect(node(page, "notification_1")).to_have_class(re.compile("selected"))
    expect(page.get_by_test_id("prop-id")).to_have_value("notification_1")
    page.get_by_test_id("prop-message").fill("The claim was handled: ")
    expect(page.get_by_test_id("badge-notification_1")).to_have_count(0, timeout=UI)
    # a reference from the message's menu (its items are built when it opens)
    page.get_by_test_id("prop-message").locator("xpath=ancestor::label[1]").get_by_test_id(
        "insert-reference").click()
    page.locator(".q-menu .q-item").filter(has_text="steps.agent_task_1.output").click()
    expect(page.get_by_test_id("prop-message")).to_have_value(
        "The claim was handled: {{ steps.agent_task_1.output }}", timeout=UI)
    expect(page.get_by_test_id("designer-yaml")).to_contain_text(
        "message: 'The claim was handled: {{ steps.agent_task_1.output }}'", timeout=UI)
    expect(summary(page)).to_contain_text("2 error(s)")

    page.get_by_test_id("tb-fit").click()  # the problem zoomed onto the notification
    node(page, "agent_task_1").click()
    expect(page.get_by_test_id("prop-id")).to_have_value("agent_task_1",
                                                                         timeout=UI)
    page.get_by_test_id("prop-agent").click()
    page.get_by_role("option", name="demo-writer", exact=True).click()
    expect(page.get_by_test_id("designer-yaml")).to_contain_text("agent: demo-writer",
                                                                 timeout=UI)
    expect(page.get_by_test_id("badge-agent_task_1")).to_have_text("1")
    page.get_by_test_id("prop-message").fill("Summarise the claim.")
    expect(page.get_by_test_id("badge-agent_task_1")).to_have_count(0, timeout=UI)

    # a route condition on the gateway's edge, from the property panel
    edge(page, "exclusive_gateway_1", "human_approval_1").locator(
        ".vue-flow__edge-textwrapper").click()
    condition = page.get_by_test_id("prop-edge-condition")
    expect(condition).to_be_visible(timeout=UI)
    condition.fill("steps.agent_task_1.output.amount > 100")
    condition.press("Enter")
    expect(edge(page, "exclusive_gateway_1", "human_approval_1").locator(
        ".vue-flow__edge-text")).to_have_text("steps.agent_task_1.output.amount > 100",
                                              timeout=UI)
    expect(page.get_by_test_id("designer-yaml")).to_contain_text(
        "condition: steps.agent_task_1.output.amount > 100")

    expect(summary(page)).to_contain_text("0 error(s)", timeout=UI)
    expect(page.locator('[data-testid^="badge-"]')).to_have_count(0)
    expect(page.get_by_test_id("tb-publish")).to_be_enabled()
    drawn = positions(page)
    assert set(drawn) == {"__start__", "__end__", "agent_task_1", "exclusive_gateway_1",
                          "human_approval_1", "notification_1"}

    # save (a new process moves to its own page), publish, reload
    page.get_by_test_id("tb-save").click()
    expect(page).to_have_url(re.compile(r"/processes/canvas-built\?version="), timeout=UI)
    _wait_ready(page)
    expect(page.get_by_test_id("process-header")).to_contain_text("draft")
    page.get_by_test_id("tb-publish").click()
    expect(page.get_by_test_id("new-version")).to_be_visible(timeout=UI)  # published
    expect(page.get_by_test_id("process-header")).to_contain_text("published")
    page.reload()
    _wait_ready(page)
    expect(node(page, "notification_1")).to_be_visible()
    reloaded = positions(page)
    assert set(reloaded) == set(drawn)
    for nid, (dx, dy) in drawn.items():
        rx, ry = reloaded[nid]
        assert abs(rx - dx) <= 3 and abs(ry - dy) <= 3, f"{nid} moved: {(dx, dy)} -> {(rx, ry)}"
    labels = edge_labels(page)
    assert labels["exclusive_gateway_1->human_approval_1"] == \
        "steps.agent_task_1.output.amount > 100"
    assert labels["exclusive_gateway_1->notification_1"] == "default"
    assert set(labels) == {"__start__->agent_task_1", "agent_task_1->exclusive_gateway_1",
                           "exclusive_gateway_1->human_approval_1",
                           "exclusive_gateway_1->notification_1", "human_approval_1->__end__",
                           "notification_1->__end__"}


def test_yaml_and_bpmn_files_are_imported_and_unsupported_bpmn_is_reported(
        designer: Page) -> None:
    page = designer
    import_file(page, FIXTURES / "expense-claim.yaml")
    for nid in ("check", "size", "approve", "notify"):
        expect(node(page, nid)).to_be_visible(timeout=UI)
    expect(edge(page, "size", "approve").locator(".vue-flow__edge-text")).to_have_text(
        "input.amount > 500")
    expect(edge(page, "size", "notify").locator(".vue-flow__edge-text")).to_have_text(
        "default")
    expect(page.get_by_test_id("designer-yaml")).to_contain_text("name: expense-claim")
    expect(summary(page)).to_contain_text("0 error(s)", timeout=UI)

    import_file(page, FIXTURES / "order-check.bpmn")
    expect(notification(page, "left out (unsupported)")).to_contain_text(
        "orders_db (dataStoreReference)", timeout=UI)
    expect(notification(page, "left out (unsupported)")).to_contain_text(
        "too_slow (boundaryEvent)")
    for nid in ("check", "route", "approve", "cool_off"):
        expect(node(page, nid)).to_be_visible(timeout=UI)
    expect(node(page, "size")).to_have_count(0)  # the YAML process was replaced
    expect(node(page, "cool_off")).to_have_class(re.compile(r"\btimer\b"))
    expect(node(page, "route")).to_have_class(re.compile(r"\bdiamond\b"))
    labels = edge_labels(page)
    assert labels == {"__start__->check": "", "check->route": "",
                      "route->approve": "steps.check.output.amount > 1000",
                      "route->cool_off": "default", "approve->__end__": "",
                      "cool_off->__end__": ""}
    expect(page.get_by_test_id("designer-yaml")).to_contain_text("delay: 1h")
    # the BPMN task has no agent: the designer says so
    expect(page.get_by_test_id("badge-check")).to_be_visible(timeout=UI)


def test_exported_yaml_and_bpmn_import_back_unchanged(designer: Page, tmp_path: Path) -> None:
    page = designer
    original = (FIXTURES / "expense-claim.yaml").read_text(encoding="utf-8")
    import_file(page, FIXTURES / "expense-claim.yaml")
    expect(node(page, "notify")).to_be_visible(timeout=UI)

    exported = export(page, "tb-export-yaml", tmp_path / "first")
    assert exported.name == "expense-claim.yaml"
    assert exported.read_text(encoding="utf-8") == original  # comments and layout kept
    page.get_by_test_id("tb-undo").click()  # back to the blank process...
    expect(node(page, "notify")).to_have_count(0, timeout=UI)
    import_file(page, exported)  # ...and the export imported again
    expect(node(page, "notify")).to_be_visible(timeout=UI)
    again = export(page, "tb-export-yaml", tmp_path / "second")
    assert again.read_text(encoding="utf-8") == original

    # BPMN: export, import, and the same steps, edges and conditions
    labels_before = edge_labels(page)
    bpmn = export(page, "tb-export-bpmn", tmp_path / "bpmn")
    assert bpmn.name == "expense-claim.bpmn"
    assert "http://www.omg.org/spec/BPMN/20100524/MODEL" in bpmn.read_text(encoding="utf-8")
    page.get_by_test_id("tb-undo").click()
    expect(node(page, "notify")).to_have_count(0, timeout=UI)
    import_file(page, bpmn)
    expect(node(page, "notify")).to_be_visible(timeout=UI)
    expect(node(page, "approve")).to_be_visible()
    assert edge_labels(page) == labels_before
    from_bpmn = export(page, "tb-export-yaml", tmp_path / "from-bpmn")
    assert steps_structure(from_bpmn.read_text(encoding="utf-8")) == \
        steps_structure(original)
    assert yaml.safe_load(from_bpmn.read_text(encoding="utf-8"))["steps"] == \
        yaml.safe_load(original)["steps"]  # agents, messages... travel in extensions


def test_a_clicked_problem_selects_the_step_or_edge_at_fault(designer: Page) -> None:
    page = designer
    import_file(page, FIXTURES / "order-check.bpmn")
    expect(node(page, "approve")).to_be_visible(timeout=UI)
    expect(page.get_by_test_id("designer-panel")).to_contain_text("Process")
    expect(node(page, "check")).not_to_have_class(re.compile("selected"))

    problem(page, "'agent' is required").click()
    expect(node(page, "check")).to_have_class(re.compile("selected"),
                                                             timeout=UI)
    expect(page.get_by_test_id("prop-id")).to_have_value("check")

    # a problem about the process as a whole selects the process settings
    page.get_by_test_id("tb-fit").click()  # the problem zoomed onto 'check'
    node(page, "approve").click()
    expect(page.get_by_test_id("prop-id")).to_have_value("approve",
                                                                         timeout=UI)
    page.get_by_test_id("designer-yaml").locator(".cm-content").click()
    page.keyboard.press("Control+Home")
    page.keyboard.type("config: {timeout: soon}\n")
    expect(problem(page, "'soon' is not a duration")).to_have_count(1, timeout=UI)
    problem(page, "'soon' is not a duration").click()
    expect(page.get_by_test_id("proc-name")).to_have_value("order-check",
                                                                           timeout=UI)


def test_connections_into_the_start_or_making_a_cycle_are_refused_with_a_message(
        designer: Page) -> None:
    page = designer
    import_file(page, FIXTURES / "expense-claim.yaml")
    expect(node(page, "notify")).to_be_visible(timeout=UI)
    before = edge_labels(page)

    connect(page, "notify", "check")
    expect(notification(page, "that would make a cycle: check → size → notify → check")
           ).to_be_visible(timeout=UI)
    connect(page, "approve", "__start__", target_handle="out")
    expect(notification(page, "nothing can lead into the start")).to_be_visible(timeout=UI)
    connect(page, "check", "check", target_handle="in")
    expect(notification(page, "a step cannot follow itself")).to_be_visible(timeout=UI)
    assert edge_labels(page) == before
    expect(page.get_by_test_id("designer-yaml")).not_to_contain_text("depends_on: notify")


def test_undo_redo_copy_paste_multi_select_label_editing_layout_and_grid(
        designer: Page) -> None:
    page = designer
    import_file(page, FIXTURES / "expense-claim.yaml")
    expect(node(page, "notify")).to_be_visible(timeout=UI)
    expect(page.locator(".vue-flow__minimap")).to_be_visible()

    # snap to grid: a dragged node lands on the 20 px grid
    box = node(page, "approve").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 40, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + 77, box["y"] + 53, steps=8)
    page.mouse.up()
    expect(page.get_by_test_id("designer-yaml")).to_contain_text("approve: [", timeout=UI)
    x, y = positions(page)["approve"]
    assert x % 20 == 0 and y % 20 == 0, (x, y)

    # undo and redo of a drop
    drop(page, "timer", 200, 40)
    expect(node(page, "timer_1")).to_be_visible(timeout=UI)
    page.get_by_test_id("tb-undo").click()
    expect(node(page, "timer_1")).to_have_count(0, timeout=UI)
    page.get_by_test_id("tb-redo").click()
    expect(node(page, "timer_1")).to_be_visible(timeout=UI)

    # copy and paste through the keyboard on the canvas
    node(page, "timer_1").click()
    page.keyboard.press("Control+c")
    expect(notification(page, "copied 1 step(s)")).to_be_visible(timeout=UI)
    page.keyboard.press("Control+v")
    expect(node(page, "timer_1-copy")).to_be_visible(timeout=UI)
    # undo and redo from the keyboard as well
    page.keyboard.press("Control+z")
    expect(node(page, "timer_1-copy")).to_have_count(0, timeout=UI)
    page.keyboard.press("Control+Shift+z")
    expect(node(page, "timer_1-copy")).to_be_visible(timeout=UI)

    # multi-select with Ctrl and delete both with the Delete key
    node(page, "timer_1").click()
    node(page, "timer_1-copy").click(modifiers=["Control"])
    expect(page.locator(".vue-flow__node.selected")).to_have_count(2)
    page.keyboard.press("Delete")
    expect(node(page, "timer_1")).to_have_count(0, timeout=UI)
    expect(node(page, "timer_1-copy")).to_have_count(0)

    # a gateway condition edited on the canvas (double-click on its edge)
    edge(page, "size", "approve").locator(".vue-flow__edge-textwrapper").dblclick()
    editor = page.get_by_test_id("edge-label-editor")
    expect(editor).to_be_visible(timeout=UI)
    editor.fill("input.amount > 900")
    editor.press("Enter")
    expect(edge(page, "size", "approve").locator(".vue-flow__edge-text")).to_have_text(
        "input.amount > 900", timeout=UI)
    expect(page.get_by_test_id("designer-yaml")).to_contain_text("condition: input.amount > 900")

    # auto layout moves nodes and keeps the graph
    edges_before = set(edge_labels(page))
    page.evaluate("""() => { window.__before = Object.fromEntries(
        [...document.querySelectorAll('.vue-flow__node')].map(
            (n) => [n.dataset.id, n.style.transform])); }""")
    page.get_by_test_id("tb-layout").click()
    page.wait_for_function("""() => [...document.querySelectorAll('.vue-flow__node')].some(
        (n) => n.style.transform !== window.__before[n.dataset.id])""", timeout=UI)
    assert set(edge_labels(page)) == edges_before
