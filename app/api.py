"""The HTTP endpoints: health checks, webhook triggers, /metrics and the REST API (app.rest).

Errors are always JSON `{error: {code, message, details}}`, never a stack trace.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.notify import NotifyError, substitute_env
from app.rest import build_api_router
from app.rest.auth import context_of
from app.rest.errors import MAX_BODY, to_response
from app.security import ALL_TEAMS, Denied, Principal, Role
from app.services import NotFound, ServiceError

__all__ = ["build_router", "secret_matches"]

log = logging.getLogger("trinity.api")


def error(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": details}},
                        status_code=status)


def secret_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of digests (so length and content leak nothing)."""
    want = hashlib.sha256(expected.encode()).digest()
    got = hashlib.sha256((given or "").encode()).digest()
    return hmac.compare_digest(want, got)


def build_router(container: Any) -> APIRouter:
    """Routes bound to a bootstrapped container (app.bootstrap.Container)."""
    router = APIRouter()

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = await _readiness(container)
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks},
                            status_code=200 if ok else 503)

    @router.post("/api/v1/hooks/{process}/{trigger_id}", status_code=202,
                 tags=["webhooks"], summary="Start an execution from a webhook trigger")
    async def hook(process: str, trigger_id: str, request: Request) -> JSONResponse:
        return await _fire_webhook(container, process, trigger_id, request)

    from app.metrics import build_metrics_router

    router.include_router(build_metrics_router(container))
    router.include_router(build_api_router(container, extra=[hook_route(router)]))
    return router


def hook_route(router: APIRouter) -> Any:
    """The webhook route, so the API's OpenAPI document lists it too."""
    return next(r for r in router.routes if getattr(r, "path", "") ==
                "/api/v1/hooks/{process}/{trigger_id}")


async def _fire_webhook(c: Any, process: str, trigger_id: str,
                        request: Request) -> JSONResponse:
    from app.repositories import parsed_definition

    try:
        row = await c.definitions.find(process)
    except NotFound:
        return error(404, "not_found", f"no published process '{process}' with that trigger")
    trigger = next((t for t in parsed_definition(row).triggers if t.id == trigger_id
                    and t.type == "webhook" and t.enabled), None)
    if trigger is None:  # unknown and disabled answer the same: nothing to probe
        return error(404, "not_found", f"no published process '{process}' with that trigger")
    if trigger.secret:
        try:
            expected = substitute_env(trigger.secret)
        except NotifyError as e:
            log.error("webhook %s/%s: %s", process, trigger_id, e.message)
            return error(500, "misconfigured", "the trigger's secret is not configured")
        if not secret_matches(expected, request.headers.get("x-webhook-secret")):
            return error(401, "unauthorized", "missing or wrong X-Webhook-Secret header")
    body = await request.body()
    if len(body) > MAX_BODY:
        return error(413, "too_large", f"the body is larger than {MAX_BODY} bytes")
    try:
        data = json.loads(body) if body.strip() else {}
    except ValueError as e:
        return error(400, "invalid_json", f"the body is not JSON: {e}")
    if not isinstance(data, dict):
        return error(422, "invalid_input", "the body must be a JSON object (the input)")
    try:  # through the gate like any caller: audited and rate-limited
        x = await c.guard.actor(_webhook_principal(trigger_id), context_of(request)).start(
            row.name, data, triggered_by="webhook", row=row)
    except (ServiceError, Denied) as e:
        return to_response(e, request)
    return JSONResponse({"execution_id": x.id, "status": x.status.value}, status_code=202)


def _webhook_principal(trigger_id: str) -> Principal:
    """A webhook acts as an operator of every team, named after its trigger (which becomes
    the execution's `started_by`)."""
    return Principal(f"webhook:{trigger_id}", frozenset({(ALL_TEAMS, Role.OPERATOR)}),
                     via="webhook")


async def _readiness(c: Any) -> dict[str, str]:
    from sqlalchemy import text

    checks: dict[str, str] = {}
    try:
        async with c.db.read() as s:
            await s.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as e:  # readiness reports, it does not raise
        checks["database"] = f"error: {type(e).__name__}"
    try:
        await c.redis.ping()
        checks["redis"] = "ok"
        alive = await c.redis.exists(f"{c.settings.queue_name}:health-check")
        checks["worker"] = "ok" if alive else "no worker alive"
    except Exception as e:  # readiness reports, it does not raise
        checks["redis"] = f"error: {type(e).__name__}"
        checks["worker"] = "unknown"
    return checks
