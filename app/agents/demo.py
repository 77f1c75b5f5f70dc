"""Built-in simulated agents, so every bundled template runs with no LLM.

Config keys (all optional):

    latency     seconds to "think" (0: none)
    cost        money per call, as a string ("0.002")
    tokens      tokens reported per call
    replies     {substring of the message: reply}; the first match wins
    echo_json   (default true) a message holding "Return this exact JSON:" (or "Return
                JSON:", "Return ONLY this JSON …:") and then a JSON object is answered
                with that object
    reply       the reply when nothing above matched: a string (parsed like any agent
                reply) or an object
    fail_times  fail this many first attempts (by `request.attempt`, so it is
                deterministic) with the code `fail_code` (default AGENT_ERROR)

`{{message}}` anywhere in a reply is replaced by the message. With no reply configured the
agent answers with a small structured object, so gateway conditions have values to read.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from app.agents.base import AgentConfig, AgentError, AgentReply, AgentRequest
from engine.expressions import parse_agent_reply

__all__ = ["DEMO_AGENTS", "ECHO_MARKER", "DemoClient"]

ECHO_MARKER = "Return this exact JSON:"
# Also the variants the Trinity example files use: "Return JSON:", "Return this JSON:",
# "Return ONLY this JSON (no explanation):".
_ECHO = re.compile(r"\breturn\s+(?:only\s+)?(?:this\s+)?(?:exact\s+)?json\b[^:\n]{0,40}:",
                   re.IGNORECASE)

DEMO_AGENTS: dict[str, dict[str, Any]] = {
    "demo-writer": {
        "description": "Simulated writer: drafts text and rates it (quality_score 85).",
        "capacity": 4, "latency": 0.2, "cost": "0.002", "tokens": 420,
    },
    "demo-analyst": {
        "description": "Simulated analyst: summarises and classifies "
                       "(score, category, priority, needs_escalation).",
        "capacity": 4, "latency": 0.2, "cost": "0.003", "tokens": 510,
        "reply": {
            "response": "Analysis of: {{message}}",
            "summary": "The request is clear and can be handled routinely.",
            "quality_score": 85, "score": 85, "category": "general",
            "priority": "normal", "needs_escalation": False,
        },
    },
    "demo-reviewer": {
        "description": "Simulated reviewer: approves with a score and short feedback.",
        "capacity": 4, "latency": 0.2, "cost": "0.001", "tokens": 260,
        "reply": {
            "response": "Reviewed: {{message}}",
            "approved": True, "quality_score": 90, "score": 90,
            "feedback": "Clear and complete; no changes needed.",
        },
    },
    "demo-echo": {
        "description": "Echoes the message back (or the JSON after "
                       f"'{ECHO_MARKER}').",
        "capacity": 8, "latency": 0.05, "cost": "0", "tokens": 0,
        "echo_json": True, "reply": {"response": "{{message}}"},
    },
    "demo-noop": {
        "description": "Does nothing, instantly and for free (benchmarks).",
        "capacity": 1000, "latency": 0, "cost": "0", "tokens": 0, "reply": {"ok": True},
    },
}


class DemoClient:
    """The `demo` agent kind."""

    async def call(self, agent: AgentConfig, request: AgentRequest) -> AgentReply:
        config = agent.config
        cost, tokens, latency = _numbers(agent.name, config)
        if latency > 0:
            await asyncio.sleep(latency)
        fail_times = int(config.get("fail_times") or 0)
        if request.attempt <= fail_times:
            raise AgentError(str(config.get("fail_code") or "AGENT_ERROR"),
                             f"{agent.name}: simulated failure on attempt {request.attempt} "
                             f"of the first {fail_times}")
        return AgentReply(output=_reply(agent.name, config, request.message), cost=cost,
                          tokens=tokens)


def _reply(name: str, config: Mapping[str, Any], message: str) -> Any:
    for needle, reply in (config.get("replies") or {}).items():
        if str(needle) in message:
            return _render(reply, message)
    if config.get("echo_json", True):
        echoed = _echoed_json(message)
        if echoed is not None:
            return parse_agent_reply(echoed)
    if config.get("reply") is not None:
        return _render(config["reply"], message)
    return {
        "response": f"{name} handled: {message[:200]}",
        "summary": f"Summary: {message[:80]}",
        "quality_score": 85, "score": 85, "approved": True,
    }


def _render(reply: Any, message: str) -> Any:
    """Put the message into a configured reply; strings are parsed like a real reply."""
    if isinstance(reply, str):
        return parse_agent_reply(reply.replace("{{message}}", message))
    return _substitute(reply, message)


def _substitute(value: Any, message: str) -> Any:
    if isinstance(value, str):
        return value.replace("{{message}}", message)
    if isinstance(value, Mapping):
        return {k: _substitute(v, message) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, message) for v in value]
    return value


def _echoed_json(message: str) -> str | None:
    """The JSON object right after a "Return this exact JSON:" style instruction (a fence
    around it is allowed), if any."""
    for marker in _ECHO.finditer(message):
        rest = message[marker.end():].strip()
        if rest.startswith("```"):
            rest = rest.split("\n", 1)[1] if "\n" in rest else ""
        try:
            value, end = json.JSONDecoder().raw_decode(rest)
        except ValueError:
            continue
        if isinstance(value, dict):
            return rest[:end]
    return None


def _numbers(name: str, config: Mapping[str, Any]) -> tuple[Decimal, int, float]:
    try:
        cost = Decimal(str(config.get("cost") or "0"))
        tokens = int(config.get("tokens") or 0)
        latency = float(config.get("latency") or 0)
    except (InvalidOperation, TypeError, ValueError) as e:
        raise AgentError("INVALID_CONFIG", f"demo agent '{name}': cost, tokens and latency "
                         f"must be numbers ({e})", retryable=False) from None
    if not (cost.is_finite() and math.isfinite(latency)) or cost < 0 or tokens < 0 \
            or latency < 0:
        raise AgentError("INVALID_CONFIG", f"demo agent '{name}': cost, tokens and latency "
                         "cannot be negative", retryable=False)
    return cost, tokens, latency
