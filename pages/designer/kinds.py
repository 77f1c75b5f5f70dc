"""The designer's palette: what can be dropped on the canvas and how each kind looks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["END", "KINDS", "PALETTE", "START", "Kind", "kind_of"]

START = "__start__"  # visual only: never a step (step ids start with a letter)
END = "__end__"


@dataclass(frozen=True)
class Kind:
    name: str  # palette name, sent by the browser on drop
    label: str
    icon: str  # Material icon shown through q-icon
    shape: str  # circle, task, diamond: CSS class on the node
    step_type: str | None  # None for start and end
    gateway_type: str | None = None
    help: str = ""


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("start", "Start", "play_arrow", "circle", None, help="Where every execution begins."),
    Kind("end", "End", "stop", "circle end", None, help="Where every execution ends."),
    Kind("agent_task", "Agent task", "smart_toy", "task", "agent_task",
         help="An agent does a piece of work."),
    Kind("human_approval", "Human approval", "how_to_reg", "task", "human_approval",
         help="A person approves, rejects or asks for changes."),
    Kind("exclusive_gateway", "Exclusive gateway", "close", "diamond", "gateway", "exclusive",
         help="Control goes down the first route whose condition holds."),
    Kind("parallel_gateway", "Parallel gateway", "add", "diamond", "gateway", "parallel",
         help="Control goes down every route."),
    Kind("inclusive_gateway", "Inclusive gateway", "radio_button_unchecked", "diamond",
         "gateway", "inclusive", help="Control goes down every route whose condition holds."),
    Kind("timer", "Timer", "schedule", "circle timer", "timer",
         help="Wait for a while or until a time."),
    Kind("notification", "Notification", "notifications", "task", "notification",
         help="Send a message by Slack, email or webhook."),
    Kind("sub_process", "Sub-process", "account_tree", "task sub", "sub_process",
         help="Run another process as a step."),
)}

PALETTE = list(KINDS.values())

# What a freshly dropped step holds besides id, name and type.
# Required fields are left out on purpose: their "missing" errors tell the user what to fill.
DEFAULTS: dict[str, dict[str, Any]] = {
    "timer": {"delay": "1h"},
    "notification": {"channel": "slack"},
}


def kind_of(step: dict[str, Any]) -> Kind:
    """The palette kind a step is drawn as."""
    step_type = step.get("type")
    if step_type == "gateway":
        gateway_type = step.get("gateway_type") or "exclusive"
        return KINDS.get(f"{gateway_type}_gateway", KINDS["exclusive_gateway"])
    found = KINDS.get(str(step_type))
    return found if found is not None and found.step_type else KINDS["agent_task"]
