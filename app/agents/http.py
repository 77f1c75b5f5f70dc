"""The `http` agent kind: POST the task as JSON, read `{output, cost, tokens}` back.

This is how Trinity's agent containers are reached. Config: `url` (required), `headers`,
`token` or `token_env` (sent as a Bearer token; never logged).

Also the HTTP plumbing shared with the `openai` kind: `post_json` turns every transport and
status failure into an `AgentError` whose code says whether a retry can help.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from app.agents.base import AgentConfig, AgentError, AgentReply, AgentRequest
from engine.expressions import parse_agent_reply

__all__ = ["HttpClient", "call_timeout", "error_text", "parse_money", "post_json"]

_CONNECT_SECONDS = 10.0


class PooledClient:
    """An agent kind that talks HTTP: one connection pool per instance, made on first use."""

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class HttpClient(PooledClient):
    """The `http` kind."""

    async def call(self, agent: AgentConfig, request: AgentRequest) -> AgentReply:
        url = agent.config.get("url")
        if not url:
            raise AgentError("INVALID_CONFIG", f"http agent '{agent.name}' has no url",
                             retryable=False)
        body: dict[str, Any] = {
            "message": request.message, "execution_id": request.execution_id,
            "step_id": request.step_id, "idempotency_key": request.idempotency_key,
            "context": dict(request.context),
        }
        if request.model is not None:
            body["model"] = request.model
        if request.temperature is not None:
            body["temperature"] = request.temperature
        headers = {**_str_map(agent.config.get("headers")),
                   "Idempotency-Key": request.idempotency_key}
        token = agent.config.get("token") or _env(agent.config.get("token_env"))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = await post_json(self.client, agent.name, str(url), body, headers,
                               call_timeout(agent, request))
        return _reply(agent.name, data)



async def post_json(client: httpx.AsyncClient, agent: str, url: str, body: Any,
                    headers: Mapping[str, str], timeout: float) -> Any:
    """POST `body` and return the decoded JSON reply, or raise a classified AgentError."""
    try:
        response = await client.post(
            url, json=body, headers=dict(headers),
            timeout=httpx.Timeout(timeout, connect=min(timeout, _CONNECT_SECONDS)))
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
        raise AgentError("INVALID_CONFIG", f"agent '{agent}': its url is not usable "
                         f"({e})", retryable=False) from None
    except httpx.ConnectTimeout:
        raise AgentError("AGENT_UNAVAILABLE", f"agent '{agent}' at {_where(url)} did not "
                         "accept a connection in time") from None
    except httpx.TimeoutException:
        raise AgentError("TIMEOUT", f"agent '{agent}' did not reply within "
                         f"{timeout:g}s") from None
    except httpx.ConnectError as e:
        raise AgentError("AGENT_UNAVAILABLE", f"agent '{agent}' at {_where(url)} is not "
                         f"reachable: {_short(str(e)) or 'connection failed'}") from None
    except httpx.HTTPError as e:
        raise AgentError("AGENT_ERROR", f"agent '{agent}': the connection failed "
                         f"({type(e).__name__}: {_short(str(e))})") from None
    _raise_for_status(agent, response)
    try:
        return response.json()
    except ValueError:
        raise AgentError("AGENT_ERROR", f"agent '{agent}' replied with something that is "
                         f"not JSON: {_short(response.text)!r}") from None


def call_timeout(agent: AgentConfig, request: AgentRequest) -> float:
    """The request's timeout, capped by the agent's own `timeout_seconds` if it has one."""
    if agent.timeout_seconds:
        return min(request.timeout, agent.timeout_seconds)
    return request.timeout


def error_text(response: httpx.Response) -> str:
    """The error message in a reply body (`error`, `error.message`, `detail`, `message`)."""
    try:
        data = response.json()
    except ValueError:
        return _short(response.text)
    if isinstance(data, Mapping):
        for key in ("error", "detail", "message"):
            value = data.get(key)
            if isinstance(value, Mapping):
                value = value.get("message") or value.get("detail") or value
            if value:
                return _short(value if isinstance(value, str) else json.dumps(value))
    return _short(json.dumps(data))


def parse_money(agent: str, name: str, value: Any) -> Decimal:
    """A configured or reported amount of money as a Decimal."""
    try:
        amount = Decimal(str(value if value is not None else "0"))
    except InvalidOperation:
        raise AgentError("INVALID_CONFIG", f"agent '{agent}': {name} must be a number, "
                         f"not {value!r}", retryable=False) from None
    if not amount.is_finite() or amount < 0:
        raise AgentError("INVALID_CONFIG", f"agent '{agent}': {name} must be a number of "
                         f"0 or more, not {value!r}", retryable=False)
    return amount


def _raise_for_status(agent: str, response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    text = error_text(response)
    if status == 429:
        after = response.headers.get("Retry-After")
        hint = f"; retry after {after}s" if after else ""
        raise AgentError("RATE_LIMIT", f"agent '{agent}' is rate limited (HTTP 429){hint}: "
                         f"{text}")
    if status in (401, 403):
        raise AgentError("INVALID_CONFIG", f"agent '{agent}' refused the credentials "
                         f"(HTTP {status}); check the API key or token: {text}",
                         retryable=False)
    if status == 408:
        raise AgentError("TIMEOUT", f"agent '{agent}' timed out (HTTP 408): {text}")
    if status >= 500:
        raise AgentError("AGENT_ERROR", f"agent '{agent}' failed (HTTP {status}): {text}")
    raise AgentError("AGENT_REJECTED", f"agent '{agent}' rejected the request "
                     f"(HTTP {status}): {text}", retryable=False)


def _reply(agent: str, data: Any) -> AgentReply:
    if not isinstance(data, Mapping):
        raise AgentError("AGENT_ERROR", f"agent '{agent}' replied with JSON that is not an "
                         f"object: {_short(json.dumps(data))}")
    key = next((k for k in ("output", "response", "result") if k in data), None)
    if key is None:
        raise AgentError("AGENT_ERROR", f"agent '{agent}' replied without an 'output' "
                         f"field: {_short(json.dumps(data))}")
    output = data[key]
    if isinstance(output, str):
        output = parse_agent_reply(output)
    try:
        cost = Decimal(str(data.get("cost") or 0))
        tokens = int(data.get("tokens") or 0)
    except (InvalidOperation, TypeError, ValueError):
        raise AgentError("AGENT_ERROR", f"agent '{agent}' reported a cost or token count "
                         f"that is not a number: cost={data.get('cost')!r}, "
                         f"tokens={data.get('tokens')!r}") from None
    return AgentReply(output=output, cost=cost, tokens=tokens)


def _str_map(value: Any) -> dict[str, str]:
    if not value:
        return {}
    if not isinstance(value, Mapping):
        raise AgentError("INVALID_CONFIG", "headers must be a mapping of name to value",
                         retryable=False)
    return {str(k): str(v) for k, v in value.items()}


def _env(name: Any) -> str | None:
    return os.environ.get(str(name)) if name else None


def _where(url: str) -> str:
    """The URL without credentials or query, for messages."""
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}{f':{parsed.port}' if parsed.port else ''}" \
           f"{parsed.path}"


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
