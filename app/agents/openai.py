"""The `openai` agent kind: any OpenAI-compatible chat endpoint (OpenAI, Ollama, vLLM,
LiteLLM…).

Config: `base_url` (default https://api.openai.com/v1), `api_key_env` (the name of an
environment variable read at call time) or `api_key`, `model` (a step's `model` wins),
`temperature`, `system` (a system prompt), `price_input_per_1k` and
`price_output_per_1k` (money strings; cost = tokens / 1000 × price).
The key is only ever sent as a header: never logged, never in an error message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from app.agents.base import AgentConfig, AgentError, AgentReply, AgentRequest
from app.agents.http import PooledClient, call_timeout, parse_money, post_json
from engine.expressions import parse_agent_reply

__all__ = ["DEFAULT_BASE_URL", "OpenAIClient"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIClient(PooledClient):
    """The `openai` kind."""

    async def call(self, agent: AgentConfig, request: AgentRequest) -> AgentReply:
        config = agent.config
        prices = (parse_money(agent.name, "price_input_per_1k",
                              config.get("price_input_per_1k")),
                  parse_money(agent.name, "price_output_per_1k",
                              config.get("price_output_per_1k")))
        url = str(config.get("base_url") or DEFAULT_BASE_URL).rstrip("/") + "/chat/completions"
        data = await post_json(self.client, agent.name, url, _body(agent, request),
                               _headers(agent), call_timeout(agent, request))
        return _reply(agent.name, data, *prices)



def _body(agent: AgentConfig, request: AgentRequest) -> dict[str, Any]:
    config = agent.config
    model = request.model or config.get("model")
    if not model:
        raise AgentError("INVALID_CONFIG", f"openai agent '{agent.name}' has no model: set "
                         "`model` in its config or on the step", retryable=False)
    messages = []
    if config.get("system"):
        messages.append({"role": "system", "content": str(config["system"])})
    messages.append({"role": "user", "content": request.message})
    body: dict[str, Any] = {"model": str(model), "messages": messages}
    temperature = request.temperature if request.temperature is not None \
        else config.get("temperature")
    if temperature is not None:
        body["temperature"] = float(temperature)
    return body


def _headers(agent: AgentConfig) -> dict[str, str]:
    key = agent.config.get("api_key")
    env_name = agent.config.get("api_key_env")
    if not key and env_name:
        key = os.environ.get(str(env_name))
        if not key:
            raise AgentError("INVALID_CONFIG", f"openai agent '{agent.name}': the environment "
                             f"variable {env_name} (its API key) is not set for this worker",
                             retryable=False)
    return {"Authorization": f"Bearer {key}"} if key else {}


def _reply(agent: str, data: Any, price_in: Decimal, price_out: Decimal) -> AgentReply:
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise AgentError("AGENT_ERROR", f"agent '{agent}' replied without "
                         "choices[0].message.content") from None
    if not isinstance(content, str) or not content:
        raise AgentError("AGENT_ERROR", f"agent '{agent}' sent an empty reply")
    usage = data.get("usage") if isinstance(data.get("usage"), Mapping) else {}
    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens"))
    total = _count(usage.get("total_tokens")) or prompt + completion
    cost = Decimal(prompt) / 1000 * price_in + Decimal(completion) / 1000 * price_out
    return AgentReply(output=parse_agent_reply(content), cost=cost, tokens=total)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0
