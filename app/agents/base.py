"""What every agent kind implements, and the errors it may raise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

__all__ = [
    "RETRYABLE_CODES",
    "AgentClient",
    "AgentConfig",
    "AgentError",
    "AgentReply",
    "AgentRequest",
]

# Error codes an agent call can end with; the step's retry policy decides on the rest.
RETRYABLE_CODES = frozenset({"AGENT_UNAVAILABLE", "TIMEOUT", "RATE_LIMIT", "AGENT_ERROR",
                             "OUTPUT_INVALID"})


@dataclass(frozen=True)
class AgentConfig:
    """A registered agent as the gateway needs it (from the `agents` table)."""

    name: str
    kind: str  # demo | http | openai | command
    config: Mapping[str, Any] = field(default_factory=dict)
    capacity: int = 1
    timeout_seconds: float | None = None


@dataclass(frozen=True)
class AgentRequest:
    message: str
    execution_id: str
    step_id: str
    attempt: int
    idempotency_key: str  # the same for every delivery of one attempt
    context: Mapping[str, Any] = field(default_factory=dict)
    model: str | None = None
    temperature: float | None = None
    timeout: float = 300.0


@dataclass(frozen=True)
class AgentReply:
    output: Any  # parsed JSON object (with the raw text as "response") or text
    cost: Decimal = Decimal(0)
    tokens: int = 0


class AgentError(Exception):
    """A failed call. `code` is one of RETRYABLE_CODES or a non-retryable code such as
    INVALID_CONFIG; `retryable` says whether trying again can help."""

    def __init__(self, code: str, message: str, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = code in RETRYABLE_CODES if retryable is None else retryable


class AgentClient(Protocol):
    """One agent kind."""

    async def call(self, agent: AgentConfig, request: AgentRequest) -> AgentReply: ...
