"""The designer's Python side driven through NiceGUI's simulated User: the browser's intents
are triggered on the ProcessDesigner element, and the model, the YAML editor, the property
panel and the problems list must follow. No browser, no JavaScript."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from nicegui import ui
from nicegui.testing.user import User
from nicegui.testing.user_interaction import UserInteraction
from nicegui.testing.user_simulation import user_simulation

from pages.designer.element import ProcessDesigner
from pages.designer.kinds import START
from pages.designer.view import Designer, designer_view

CHAIN = """\
# kept comment
name: chain
steps:
  - id: a
    type: agent_task
    agent: demo-writer
    message: hello
  - id: b
    type: agent_task
    depends_on: a
    agent: demo-writer
    message: world
"""


class Harness:
    def __init__(self) -> None:
        self.text: str | None = CHAIN
        self.designer: Designer | None = None
        self.saved: list[str] = []
        self.runs: list[tuple[str, dict[str, Any]]] = []
        self.read_only = False

    async def root(self) -> None:
        async def save(text: str) -> str | None:
            self.saved.append(text)
            return None

        async def test_run(text: str, values: dict[str, Any]) -> None:
            self.runs.append((text, values))

        self.designer = await designer_view(
            yaml_text=self.text, name="new-one", agents=["demo-writer", "demo-reviewer"],
            assignees=["alice", "team:editors"], on_save=save, on_publish=save,
            on_test_run=test_run, read_only=self.read_only)

    @property
    def d(self) -> Designer:
        assert self.designer is not None
        return self.designer


@pytest.fixture
def harness() -> Harness:
    return Harness()


@pytest.fixture
async def user(harness: Harness, caplog: pytest.LogCaptureFixture) -> AsyncIterator[User]:
    async with user_simulation(root=harness.root) as u:
        yield u
    errors = [r for r in caplog.get_records("call") if r.levelname == "ERROR"]
    assert not errors, [r.getMessage() for r in errors]


def _doc(h: Harness) -> dict[str, Any]:
    return yaml.safe_load(h.d.editor.value)


async def test_dropping_a_palette_kind_adds_a_step_to_the_model_yaml_and_panel(
        user: User, harness: Harness) -> None:
    await user.open("/")
    user.find(ProcessDesigner).trigger("drop", {"kind": "agent_task", "x": 400, "y": 200})
    assert "agent_task_1" in harness.d.model.ids()
    assert [s["id"] for s in _doc(harness)["steps"]] == ["a", "b", "agent_task_1"]
    assert harness.d.editor.value.startswith(CHAIN)
    assert harness.d.selection == ("node", "agent_task_1")
    await user.should_see("An agent does a piece of work.")


async def test_connecting_updates_depends_on_and_a_cycle_is_refused_with_a_message(
        user: User, harness: Harness) -> None:
    await user.open("/")
    canvas = user.find(ProcessDesigner)
    canvas.trigger("drop", {"kind": "timer", "x": 600, "y": 200})
    canvas.trigger("connect", {"source": "b", "target": "timer_1", "sourceHandle": "out"})
    assert _doc(harness)["steps"][2]["depends_on"] == "b"
    canvas.trigger("connect", {"source": "timer_1", "target": "a", "sourceHandle": "out"})
    await user.should_see("that would make a cycle")
    assert "depends_on" not in _doc(harness)["steps"][0]


async def test_a_step_edited_in_the_panel_updates_model_yaml_and_validation(
        user: User, harness: Harness) -> None:
    await user.open("/")
    canvas = user.find(ProcessDesigner)
    canvas.trigger("drop", {"kind": "agent_task", "x": 0, "y": 0})
    assert harness.d.has_errors
    assert "agent_task_1" in harness.d.canvas.errors
    await user.should_see("'agent' is required", retries=5)
    picker = _widget(harness, "prop-agent")
    assert picker.options == ["demo-writer", "demo-reviewer"]  # the registered agents
    picker.set_value("demo-writer")
    user.find(marker="prop-message").type("summarise the draft")
    step = _doc(harness)["steps"][2]
    assert step["agent"] == "demo-writer" and step["message"] == "summarise the draft"
    assert not harness.d.has_errors
    assert "agent_task_1" not in harness.d.canvas.errors


async def test_undo_and_redo_walk_through_python_snapshots(user: User, harness: Harness) -> None:
    await user.open("/")
    canvas = user.find(ProcessDesigner)
    canvas.trigger("drop", {"kind": "notification", "x": 0, "y": 0})
    canvas.trigger("remove", {"nodes": ["a"], "edges": []})
    assert harness.d.model.ids() == ["b", "notification_1"]
    harness.d.undo()
    assert harness.d.model.ids() == ["a", "b", "notification_1"]
    harness.d.undo()
    assert harness.d.model.ids() == ["a", "b"]
    assert harness.d.editor.value == CHAIN
    harness.d.redo()
    assert harness.d.model.ids() == ["a", "b", "notification_1"]
    canvas.trigger("undo", {})
    assert harness.d.model.ids() == ["a", "b"]


async def test_moving_a_node_keeps_the_steps_text_byte_identical(
        user: User, harness: Harness) -> None:
    await user.open("/")
    user.find(ProcessDesigner).trigger("move", [{"id": "a", "x": 500, "y": 300}])
    text = harness.d.editor.value
    assert text.startswith(CHAIN)
    assert _doc(harness)["x-designer"]["positions"]["a"] == [500, 300]


async def test_yaml_edited_by_hand_redraws_the_graph_and_bad_yaml_is_reported(
        user: User, harness: Harness) -> None:
    await user.open("/")
    edited = CHAIN + "  - id: c\n    type: timer\n    depends_on: b\n    delay: 5m\n"
    harness.d.editor.set_value(edited)
    assert harness.d.model.ids() == ["a", "b", "c"]
    assert "b->c" in {e["id"] for e in harness.d.canvas.graph["edges"]}
    assert harness.d.model.text == edited  # the typed text is kept as typed
    harness.d.editor.set_value(edited + "  - id: [broken\n")
    await user.should_see("YAML syntax error")
    assert harness.d.model.ids() == ["a", "b", "c"]
    assert harness.d.publish_button is not None and not harness.d.publish_button.enabled


async def test_a_validation_error_appears_and_disappears_with_the_edge_at_fault(
        user: User, harness: Harness) -> None:
    harness.text = CHAIN.replace("    depends_on: a\n", "    depends_on: ghost\n")
    await user.open("/")
    assert harness.d.has_errors
    await user.should_see("which is not a step of this process")
    assert harness.d.publish_button is not None and not harness.d.publish_button.enabled
    user.find(marker="problem-0").click()
    assert harness.d.selection == ("node", "b")
    user.find(ProcessDesigner).trigger("connect", {"source": "a", "target": "b"})
    harness.d.set_step_field("b", ["depends_on"], "a")
    assert not harness.d.has_errors
    assert harness.d.publish_button.enabled


async def test_a_gateway_edge_label_edit_becomes_the_route_condition(
        user: User, harness: Harness) -> None:
    await user.open("/")
    canvas = user.find(ProcessDesigner)
    canvas.trigger("drop", {"kind": "exclusive_gateway", "x": 0, "y": 0})
    canvas.trigger("connect", {"source": "b", "target": "exclusive_gateway_1"})
    canvas.trigger("drop", {"kind": "timer", "x": 0, "y": 0})
    canvas.trigger("connect", {"source": "exclusive_gateway_1", "target": "timer_1"})
    canvas.trigger("edgeLabel", {"id": "exclusive_gateway_1->timer_1",
                                 "label": "input.fast == true"})
    gateway = _doc(harness)["steps"][2]
    assert gateway["routes"] == [{"condition": "input.fast == true", "target": "timer_1"}]
    canvas.trigger("select", {"kind": "edge", "id": "exclusive_gateway_1->timer_1"})
    await user.should_see("exclusive_gateway_1 → timer_1")


async def test_start_is_visual_only_and_cannot_receive_edges(user: User,
                                                            harness: Harness) -> None:
    await user.open("/")
    user.find(ProcessDesigner).trigger("connect", {"source": "b", "target": START})
    await user.should_see("nothing can lead into the start")
    user.find(ProcessDesigner).trigger("select", {"kind": "node", "id": START})
    await user.should_see("Drawn only")


async def test_copy_paste_and_save_hand_the_yaml_to_the_caller(user: User,
                                                              harness: Harness) -> None:
    await user.open("/")
    canvas = user.find(ProcessDesigner)
    canvas.trigger("copy", {"ids": ["a", "b"]})
    canvas.trigger("paste", {})
    assert harness.d.model.ids() == ["a", "b", "a-copy", "b-copy"]
    assert harness.d.model.step("b-copy")["depends_on"] == "a-copy"
    await harness.d.save()
    assert harness.saved and yaml.safe_load(harness.saved[-1])["steps"][3]["id"] == "b-copy"


async def test_a_new_process_starts_blank_with_its_name(user: User, harness: Harness) -> None:
    harness.text = None
    await user.open("/")
    assert harness.d.model.doc["name"] == "new-one" and harness.d.model.ids() == []
    harness.d.set_process_field(["description"], "made in a test")
    assert _doc(harness)["description"] == "made in a test"


async def test_the_test_run_form_comes_from_the_typed_inputs(user: User,
                                                            harness: Harness) -> None:
    harness.text = CHAIN.replace("name: chain\n", "name: chain\ninput:\n  topic:\n"
                                 "    type: string\n    required: true\n  words:\n"
                                 "    type: integer\n    default: 300\n")
    await user.open("/")
    user.find(marker="tb-test-run").click()
    user.find(marker="test-input-topic").type("remote work")
    user.find(marker="test-run-start").click()
    await asyncio.sleep(0.1)
    assert harness.runs == [(harness.d.model.text, {"topic": "remote work", "words": 300})]


async def test_the_reference_menu_of_a_template_field_is_built_when_it_opens(
        user: User, harness: Harness) -> None:
    # A step of a big process once carried every reference as menu items in each of its
    # template fields (600 elements for a 200-step process): selecting it took seconds.
    harness.text = CHAIN + "".join(
        f"  - id: s{i}\n    type: agent_task\n    agent: demo-writer\n    message: m\n"
        for i in range(60))
    await user.open("/")
    client = harness.d.canvas.client
    user.find(ProcessDesigner).trigger("select", {"kind": "node", "id": "b"})
    await user.should_see(marker="prop-message")
    items = [e for e in client.elements.values() if isinstance(e, ui.menu_item)]
    assert items == []
    menus = [e for e in client.elements.values() if isinstance(e, ui.menu)
             and e.props.get("data-testid") == "insert-reference-menu"]
    assert menus
    message = _widget(harness, "prop-message")
    menu = next(m for m in menus if message in _ancestors(m))
    menu.open()
    items = [e for e in menu.descendants() if isinstance(e, ui.menu_item)]
    texts = [next(d.text for d in i.descendants() if hasattr(d, "text")) for i in items]
    assert texts[:2] == ["steps.a.output", "steps.s0.output"]
    assert len(items) == 61  # every other step
    menu.open()  # opening again does not add them twice
    assert len([e for e in menu.descendants() if isinstance(e, ui.menu_item)]) == 61
    UserInteraction(user, {items[0]}, None).click()  # a menu's items count as hidden
    assert message.value == "world{{ steps.a.output }}"


async def test_a_read_only_route_shows_its_condition_without_a_way_to_change_it(
        user: User, harness: Harness) -> None:
    # The condition field of a published version's route once took input and answered
    # each blur with "read only"; "Make default route" was offered too.
    harness.read_only = True
    harness.text = CHAIN + ("  - id: g\n    type: gateway\n    depends_on: b\n"
                            "    routes:\n      - condition: input.x > 1\n        target: c\n"
                            "  - id: c\n    type: timer\n    delay: 1m\n    depends_on: g\n")
    await user.open("/")
    user.find(ProcessDesigner).trigger("select", {"kind": "edge", "id": "g->c"})
    await user.should_see("g → c")
    condition = _widget(harness, "prop-edge-condition")
    assert condition.value == "input.x > 1"
    assert not condition.enabled
    with pytest.raises(AssertionError):
        _widget(harness, "prop-edge-default")
    with pytest.raises(AssertionError):
        _widget(harness, "prop-edge-delete")
    with pytest.raises(AssertionError):  # nothing to drop: no palette
        _widget(harness, "designer-palette")


def test_a_route_that_skips_a_step_keeps_its_label_clear_of_that_step() -> None:
    # (Here rather than in tests/unit: found by the browser journeys.) In the layered layout
    # the gateway's route to a later step ran straight behind the step in between, whose box
    # hid the condition label: content-review's quality-gate -> editor-review behind rewrite.
    from pages.designer.layout import ROW
    from pages.designer.model import DesignerModel

    text = Path(__file__).resolve().parents[2].joinpath(
        "examples", "content-review.yaml").read_text(encoding="utf-8")
    p = DesignerModel(text).positions
    assert p["quality-gate"][0] < p["rewrite"][0] < p["editor-review"][0]
    assert p["quality-gate"][1] == p["editor-review"][1]  # the route runs straight...
    assert abs(p["rewrite"][1] - p["editor-review"][1]) >= ROW // 2  # ...and not behind it


# --- helpers -------------------------------------------------------------------------------


def _by_testid(harness: Harness, testid: str) -> tuple[str, Any]:
    client = harness.d.canvas.client
    for element in client.elements.values():
        if element.props.get("data-testid") == testid:
            return testid, element
    raise AssertionError(f"no element with data-testid {testid}")


def _widget(harness: Harness, testid: str) -> Any:
    return _by_testid(harness, testid)[1]


def _ancestors(element: Any) -> list[Any]:
    out = []
    while element.parent_slot is not None:
        element = element.parent_slot.parent
        out.append(element)
    return out
