"""BPMN 2.0 XML: export with diagram interchange, import of foreign files, and round trips."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from engine.loader import validate_definition
from pages.designer.bpmn import NS, BpmnError, from_bpmn, to_bpmn
from pages.designer.kinds import END, START
from pages.designer.model import META
from tests.unit.test_designer_model import FILES, GATEWAY


def _strip(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != META}


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_export_then_import_gives_back_the_same_definition(path: Path) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    back = from_bpmn(to_bpmn(doc))
    assert back.unsupported == []
    assert _strip(back.doc) == doc
    before, after = validate_definition(doc), validate_definition(_strip(back.doc))
    assert after.ok and after.definition == before.definition


def test_the_export_has_a_shape_per_node_and_an_edge_per_flow() -> None:
    doc = yaml.safe_load(GATEWAY)
    root = ET.fromstring(to_bpmn(doc))
    process = root.find("bpmn:process", NS)
    assert process is not None
    tags = {el.get("id"): el.tag.rpartition("}")[2] for el in process
            if el.get("id") and not el.tag.endswith("sequenceFlow")}
    assert tags == {"StartEvent_1": "startEvent", "score": "serviceTask",
                    "gate": "exclusiveGateway", "good": "serviceTask", "bad": "serviceTask",
                    "EndEvent_1": "endEvent"}
    flows = process.findall("bpmn:sequenceFlow", NS)
    shapes = root.findall(".//bpmndi:BPMNShape", NS)
    edges = root.findall(".//bpmndi:BPMNEdge", NS)
    assert {s.get("bpmnElement") for s in shapes} == set(tags)
    assert {e.get("bpmnElement") for e in edges} == {f.get("id") for f in flows}
    assert all(len(e.findall("di:waypoint", NS)) == 2 for e in edges)
    gate = process.find("bpmn:exclusiveGateway", NS)
    default = next(f for f in flows if f.get("id") == gate.get("default"))
    assert default.get("targetRef") == "bad"
    conditional = [f for f in flows if f.find("bpmn:conditionExpression", NS) is not None]
    assert [(f.get("targetRef"), f.find("bpmn:conditionExpression", NS).text)
            for f in conditional] == [("good", "steps.score.output.score >= 70")]


def test_positions_travel_as_diagram_bounds() -> None:
    doc = yaml.safe_load(GATEWAY)
    doc[META] = {"positions": {START: [0, 0], "score": [200, 40], "gate": [400, 40],
                               "good": [600, 0], "bad": [600, 120], END: [800, 40]}}
    assert from_bpmn(to_bpmn(doc)).doc[META] == doc[META]


FOREIGN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"
    xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="d" targetNamespace="x">
  <bpmn:process id="Order_Flow" name="Order Flow" isExecutable="true">
    <bpmn:startEvent id="Start_1"/>
    <bpmn:task id="Check_Order" name="Check order"/>
    <bpmn:userTask id="Approve" name="Approve order"/>
    <bpmn:exclusiveGateway id="Big" default="f_small"/>
    <bpmn:parallelGateway id="Fork"/>
    <bpmn:intermediateCatchEvent id="Wait"><bpmn:timerEventDefinition>
      <bpmn:timeDuration xsi:type="bpmn:tFormalExpression">PT1H30M</bpmn:timeDuration>
    </bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
    <bpmn:sendTask id="Tell" name="Tell the customer"/>
    <bpmn:callActivity id="Ship" calledElement="shipping"/>
    <bpmn:boundaryEvent id="Oops" attachedToRef="Check_Order"/>
    <bpmn:subProcess id="Inner"/>
    <bpmn:endEvent id="End_1"/>
    <bpmn:sequenceFlow id="f1" sourceRef="Start_1" targetRef="Check_Order"/>
    <bpmn:sequenceFlow id="f2" sourceRef="Check_Order" targetRef="Big"/>
    <bpmn:sequenceFlow id="f_big" sourceRef="Big" targetRef="Approve">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">"""\
    """steps.check_order.output.total &gt; 1000</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_small" sourceRef="Big" targetRef="Fork"/>
    <bpmn:sequenceFlow id="f3" sourceRef="Approve" targetRef="Fork"/>
    <bpmn:sequenceFlow id="f4" sourceRef="Fork" targetRef="Wait"/>
    <bpmn:sequenceFlow id="f5" sourceRef="Fork" targetRef="Tell"/>
    <bpmn:sequenceFlow id="f6" sourceRef="Wait" targetRef="Ship"/>
    <bpmn:sequenceFlow id="f7" sourceRef="Ship" targetRef="End_1"/>
    <bpmn:sequenceFlow id="f8" sourceRef="Oops" targetRef="Tell"/>
  </bpmn:process>
  <bpmndi:BPMNDiagram id="dia"><bpmndi:BPMNPlane id="plane" bpmnElement="Order_Flow">
    <bpmndi:BPMNShape id="s1" bpmnElement="Check_Order">
      <dc:Bounds x="150" y="80" width="100" height="80"/></bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="s2" bpmnElement="Start_1">
      <dc:Bounds x="50" y="102" width="36" height="36"/></bpmndi:BPMNShape>
  </bpmndi:BPMNPlane></bpmndi:BPMNDiagram>
</bpmn:definitions>
"""


def test_a_foreign_bpmn_file_maps_to_our_step_types() -> None:
    result = from_bpmn(FOREIGN)
    doc = result.doc
    steps = {s["id"]: s for s in doc["steps"]}
    assert doc["name"] == "order-flow"
    assert {i: s["type"] for i, s in steps.items()} == {
        "check_order": "agent_task", "approve": "human_approval", "big": "gateway",
        "fork": "gateway", "wait": "timer", "tell": "notification", "ship": "sub_process"}
    assert steps["check_order"]["name"] == "Check order"
    assert steps["fork"]["gateway_type"] == "parallel"
    assert steps["wait"]["delay"] == "1h30m"
    assert steps["ship"]["process_name"] == "shipping"
    assert "depends_on" not in steps["check_order"]
    assert steps["fork"]["depends_on"] == ["big", "approve"]
    assert steps["big"]["routes"] == [{"condition": "steps.check_order.output.total > 1000",
                                       "target": "approve"}]
    assert steps["big"]["default_route"] == "fork"
    assert doc[META]["positions"] == {"check_order": [150, 80], START: [50, 102]}


def test_unsupported_bpmn_elements_are_reported_by_id_and_type() -> None:
    result = from_bpmn(FOREIGN)
    assert "Oops (boundaryEvent)" in result.unsupported
    assert "Inner (subProcess)" in result.unsupported
    assert any(u.startswith("f8 (sequenceFlow") for u in result.unsupported)


def test_an_imported_foreign_file_validates_once_the_blanks_are_filled() -> None:
    doc = from_bpmn(FOREIGN).doc
    for step in doc["steps"]:
        if step["type"] == "agent_task":
            step.update(agent="demo", message="check")
        if step["type"] == "notification":
            step.update(channel="slack", message="done")
    result = validate_definition(_strip(doc))
    assert result.ok, [i.format() for i in result.errors]


@pytest.mark.parametrize("text", ["not xml", "<root/>",
                                  '<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/'
                                  'MODEL"/>'])
def test_what_is_not_bpmn_is_refused(text: str) -> None:
    with pytest.raises(BpmnError):
        from_bpmn(text)
