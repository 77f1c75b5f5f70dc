"""The designer's Python side: the model behind the canvas, its YAML text, layout and checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from app.definitions import validate_text
from pages.designer.checks import check, compare, element_for, errors_by_element
from pages.designer.kinds import END, START
from pages.designer.layout import layered_layout
from pages.designer.model import META, DesignerModel
from pages.designer.yamltext import dump, rewrite

ROOT = Path(__file__).resolve().parents[2]
COMPAT = Path(os.environ.get("TRINITY_COMPAT_DIR") or ROOT.parent / "shared" / "compat" / "trinity")


def _valid_files() -> list[Path]:
    files = sorted(ROOT.glob("examples/*.yaml")) + sorted(COMPAT.glob("**/*.yaml"))
    return [f for f in files if not f.name.endswith("__template.yaml")
            and validate_text(f.read_text(encoding="utf-8"))[0] is not None]


FILES = _valid_files()

CHAIN = """\
# a comment that must survive
name: chain
steps:
  - id: a
    type: agent_task
    agent: demo  # the agent
    message: hello

  - id: b
    type: agent_task
    depends_on: a
    agent: demo
    message: world
"""

GATEWAY = """\
name: routed
steps:
  - id: score
    type: agent_task
    agent: demo
    message: score it
  - id: gate
    type: gateway
    depends_on: score
    routes:
      - condition: steps.score.output.score >= 70
        target: good
    default_route: bad
  - id: good
    type: agent_task
    depends_on: gate
    agent: demo
    message: good
  - id: bad
    type: agent_task
    depends_on: gate
    agent: demo
    message: bad
"""


def _without_meta(definition: object) -> object:
    return definition.__class__(**{**definition.__dict__, "metadata": {}})  # type: ignore


def _strip(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != META}


# --- round trips on every real file --------------------------------------------------------


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_a_moved_node_changes_only_the_designer_block_and_the_definition_stays(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    model = DesignerModel(text)
    graph = model.graph()
    assert {n["id"] for n in graph["nodes"]} == {START, END, *model.ids()}
    model.move([{"id": model.ids()[0], "x": 1000, "y": 500}])
    out = model.sync_text()
    assert out.startswith(text.rstrip("\n"))
    reopened = DesignerModel(out)
    assert reopened.positions[model.ids()[0]] == (1000, 500)
    assert reopened.positions == model.positions
    before, after = validate_text(text)[0], validate_text(out)[0]
    assert after is not None and _without_meta(after) == _without_meta(before)


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_every_dependency_is_an_edge_and_start_and_end_are_derived(path: Path) -> None:
    model = DesignerModel(path.read_text(encoding="utf-8"))
    edges = set(model.edges())
    for step in model.steps:
        deps = model.depends_on(step)
        assert all((d, step["id"]) in edges for d in deps)
        assert ((START, step["id"]) in edges) == (not deps)
    sinks = {u for u, _ in edges if u != START}
    assert {(s, END) for s in model.ids() if s not in sinks} <= edges


# --- intents -------------------------------------------------------------------------------


def test_a_dropped_step_gets_a_fresh_id_a_name_and_a_snapped_position() -> None:
    model = DesignerModel.blank("p")
    first = model.drop("agent_task", 101, 49)
    second = model.drop("agent_task", 300, 40)
    gateway = model.drop("inclusive_gateway", 0, 0)
    assert first.added == ["agent_task_1"] and second.added == ["agent_task_2"]
    assert model.positions["agent_task_1"] == (100, 40)
    assert model.step(gateway.added[0]) == {"id": "inclusive_gateway_1",
                                            "name": "Inclusive gateway", "type": "gateway",
                                            "gateway_type": "inclusive"}
    assert not model.drop("rocket", 0, 0).ok


def test_dropping_a_start_moves_the_only_start_instead_of_adding_a_step() -> None:
    model = DesignerModel(CHAIN)
    outcome = model.drop("start", 400, 400)
    assert outcome.ok and not outcome.added and model.positions[START] == (400, 400)
    assert model.ids() == ["a", "b"]


def test_connecting_adds_the_source_to_depends_on_keeping_the_users_form() -> None:
    model = DesignerModel(CHAIN)
    model.drop("agent_task", 0, 0)
    assert model.connect("b", "agent_task_1").ok
    assert model.step("agent_task_1")["depends_on"] == "b"
    assert model.connect("a", "agent_task_1").ok
    assert model.step("agent_task_1")["depends_on"] == ["b", "a"]


def test_a_connection_that_closes_a_cycle_is_refused_with_the_loop() -> None:
    model = DesignerModel(CHAIN)
    outcome = model.connect("b", "a")
    assert not outcome.ok and "cycle: a → b → a" in (outcome.message or "")
    assert "depends_on" not in model.step("a")


@pytest.mark.parametrize(("source", "target", "words"), [
    ("a", START, "into the start"),
    (END, "a", "follow the end"),
    ("a", "a", "itself"),
    ("a", "b", "already follows"),
    (START, "b", "already follows a"),
    ("a", "ghost", "two steps"),
])
def test_impossible_connections_are_refused_and_say_why(source: str, target: str,
                                                        words: str) -> None:
    model = DesignerModel(CHAIN)
    before = yaml.safe_load(model.sync_text())
    outcome = model.connect(source, target)
    assert not outcome.ok and words in (outcome.message or "")
    assert yaml.safe_load(model.sync_text()) == before


def test_connections_from_start_or_to_end_are_already_there() -> None:
    model = DesignerModel(CHAIN)
    assert model.connect(START, "a").ok and model.connect("b", END).ok
    assert model.step("a").get("depends_on") is None


def test_a_gateway_connection_becomes_a_route_or_the_default_route() -> None:
    model = DesignerModel(GATEWAY)
    model.drop("agent_task", 0, 0)
    model.drop("agent_task", 0, 0)
    assert model.connect("gate", "agent_task_1").ok
    assert model.connect("gate", "agent_task_2", "default").ok
    gate = model.step("gate")
    assert gate["routes"][-1] == {"target": "agent_task_1"}
    assert gate["default_route"] == "agent_task_2"
    assert model.step("agent_task_1")["depends_on"] == "gate"


def test_gateway_edges_carry_the_condition_label_and_the_default_mark() -> None:
    model = DesignerModel(GATEWAY)
    edges = {e["id"]: e for e in model.graph()["edges"]}
    assert edges["gate->good"]["label"] == "steps.score.output.score >= 70"
    assert edges["gate->bad"]["data"]["default"] and edges["gate->bad"]["sourceHandle"] == "default"
    assert edges[f"{START}->score"]["data"]["virtual"] and not edges[f"{START}->score"]["deletable"]


def test_editing_an_edge_label_sets_the_route_condition_and_default_can_move() -> None:
    model = DesignerModel(GATEWAY)
    assert model.set_edge_label("gate->good", "steps.score.output.score >= 90").ok
    assert model.step("gate")["routes"] == [
        {"condition": "steps.score.output.score >= 90", "target": "good"}]
    assert model.set_edge_label("gate->bad", "steps.score.output.score < 10").ok
    assert "default_route" not in model.step("gate")
    assert model.set_default("gate->good").ok
    gate = model.step("gate")
    assert gate["default_route"] == "good"
    assert [r["target"] for r in gate["routes"]] == ["bad"]
    assert not model.set_edge_label("score->gate", "x").ok


def test_removing_a_step_removes_every_link_to_it() -> None:
    model = DesignerModel(GATEWAY)
    model.remove(["good"], [])
    gate = model.step("gate")
    assert "routes" not in gate and gate["default_route"] == "bad"
    assert "good" not in model.ids() and "good" not in model.positions
    model.remove(["score"], [])
    assert "depends_on" not in model.step("gate")


def test_removing_an_edge_removes_the_dependency_and_its_route() -> None:
    model = DesignerModel(GATEWAY)
    model.remove([], ["gate->bad", f"{START}->score"])
    assert "default_route" not in model.step("gate")
    assert "depends_on" not in model.step("bad")
    assert model.ids() == ["score", "gate", "good", "bad"]


def test_start_and_end_cannot_be_deleted() -> None:
    model = DesignerModel(CHAIN)
    outcome = model.remove([START, END], [])
    assert outcome.message == "start and end cannot be deleted"
    assert {n["id"] for n in model.graph()["nodes"]} >= {START, END}


def test_renaming_a_step_renames_every_reference() -> None:
    model = DesignerModel(GATEWAY)
    assert model.set_field("good", ["id"], "great").ok
    assert model.step("gate")["routes"][0]["target"] == "great"
    assert model.step("great")["depends_on"] == "gate"
    assert "great" in model.positions
    assert not model.rename("great", "bad").ok
    assert not model.rename("great", "Not An Id").ok


def test_copy_and_paste_keeps_links_inside_the_selection_only() -> None:
    model = DesignerModel(GATEWAY)
    clip = model.copy(["gate", "good"])
    outcome = model.paste(clip)
    assert outcome.added == ["gate-copy", "good-copy"]
    gate = model.step("gate-copy")
    assert "depends_on" not in gate and "default_route" not in gate
    assert gate["routes"] == [{"condition": "steps.score.output.score >= 70",
                               "target": "good-copy"}]
    assert model.step("good-copy")["depends_on"] == "gate-copy"
    assert model.positions["good-copy"] == (model.positions["good"][0] + 40,
                                            model.positions["good"][1] + 40)


def test_nested_fields_are_set_and_empty_blocks_removed() -> None:
    model = DesignerModel(CHAIN)
    model.set_field("a", ["retry", "max_attempts"], 5)
    assert model.step("a")["retry"] == {"max_attempts": 5}
    model.set_field("a", ["retry", "max_attempts"], None)
    assert "retry" not in model.step("a")
    model.set_process_field(["triggers"], [{"id": "t", "type": "schedule", "cron": "daily"}])
    model.set_process_field(["triggers", 0, "cron"], "weekly")
    assert model.doc["triggers"][0]["cron"] == "weekly"
    assert not model.set_process_field(["steps"], []).ok


# --- YAML text -----------------------------------------------------------------------------


def test_a_field_edit_rewrites_only_that_line_and_keeps_comments() -> None:
    model = DesignerModel(CHAIN)
    model.set_field("b", ["message"], "changed")
    out = model.sync_text()
    body = out[:out.index(f"{META}:")]
    assert body == CHAIN.replace("message: world", "message: changed")


def test_a_new_step_is_appended_in_the_files_style() -> None:
    model = DesignerModel(CHAIN)
    model.drop("timer", 0, 0)
    model.connect("b", "timer_1")
    out = model.sync_text()
    assert out.startswith(CHAIN + "\n  - id: timer_1\n")
    assert validate_text(out)[0] is not None


def test_flow_style_text_falls_back_to_a_full_dump_that_is_still_right() -> None:
    text = "name: x\nsteps: [{id: a, type: timer, delay: 1m}]\n"
    new = {"name": "x", "steps": [{"id": "a", "type": "timer", "delay": "2m"}]}
    out = rewrite(text, new)
    assert yaml.safe_load(out) == new
    assert rewrite(out, new) == out


def test_dump_writes_block_style_with_short_flow_lists_and_literal_text() -> None:
    out = dump({"steps": [{"id": "a", "depends_on": ["x", "y"], "message": "one\ntwo\n"}]})
    assert "depends_on: [x, y]" in out and "message: |" in out


def test_loading_text_without_positions_lays_it_out_left_to_right() -> None:
    model = DesignerModel(GATEWAY)
    x = {n: p[0] for n, p in model.positions.items()}
    assert x[START] < x["score"] < x["gate"] < x["good"] == x["bad"] < x[END]


def test_positions_round_trip_through_the_designer_block() -> None:
    model = DesignerModel(CHAIN)
    model.move([{"id": "a", "x": 333, "y": 77}, {"id": START, "x": -20, "y": 0}])
    reopened = DesignerModel(model.sync_text())
    assert reopened.positions["a"] == (340, 80) and reopened.positions[START] == (-20, 0)


# --- layout --------------------------------------------------------------------------------


def test_layout_puts_every_edge_left_to_right_and_is_deterministic() -> None:
    edges = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "e")]
    first = layered_layout("abcde", edges)
    assert first == layered_layout("abcde", edges)
    assert all(first[u][0] < first[v][0] for u, v in edges)
    assert first["b"][1] != first["c"][1]


def test_layout_survives_a_cycle() -> None:
    out = layered_layout(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "a")])
    assert out["a"][0] < out["b"][0] < out["c"][0]


# --- checks and comparison -----------------------------------------------------------------


def test_problems_point_at_the_node_or_edge_at_fault() -> None:
    doc = yaml.safe_load(GATEWAY)
    assert element_for("steps[1].routes[0].target", doc) == "gate->good"
    assert element_for("steps[1].default_route", doc) == "gate->bad"
    assert element_for("steps[2].depends_on[0]", doc) == "gate->good"
    assert element_for("steps[0].agent", doc) == "score"
    assert element_for("name", doc) is None


def test_a_missing_agent_is_an_error_badge_on_its_node() -> None:
    model = DesignerModel(CHAIN)
    model.drop("agent_task", 0, 0)
    problems = check(model.sync_text())
    badges = errors_by_element(problems)
    assert any("agent" in m for m in badges["agent_task_1"])
    assert all(p.line for p in problems)


def test_compare_lists_added_removed_and_changed_steps_but_not_moves() -> None:
    model = DesignerModel(GATEWAY)
    old = model.sync_text()
    model.move([{"id": "score", "x": 900, "y": 900}])
    assert compare(old, model.sync_text()).changed == []
    model.remove(["good"], [])
    model.drop("timer", 0, 0)
    result = compare(old, model.sync_text())
    assert result.added == ["timer_1"] and result.removed == ["good"]
    assert result.changed == ["gate"] and "-  - id: good" in result.diff
