"""The REST API under /api/v1 (DESIGN §7): the same gate as the pages and the CLI.

Every route but the OpenAPI document, its docs page and webhooks needs an API token
(`Authorization: Bearer trp_…`) or the browser's session cookie (see `app.rest.auth`).
Errors are `{error: {code, message, details}}` (see `app.rest.errors`). `operations(app)`
lists every (method, path) of the API so tests can walk all of them.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.routing import Match, Route

from app.rest.auth import authenticator
from app.rest.errors import ApiError, guarded_route_class, to_response
from app.rest.executions import add_execution_routes
from app.rest.people import add_people_routes
from app.rest.processes import add_process_routes

__all__ = ["PREFIX", "api_document", "build_api_router", "create_app", "openapi_document",
           "operations"]

PREFIX = "/api/v1"
TITLE = "Trinity Processes API"
PUBLIC = frozenset({f"{PREFIX}/openapi.json", f"{PREFIX}/docs"})


def build_api_router(c: Any, extra: Iterable[Any] = ()) -> APIRouter:
    """Every /api/v1 route for container `c`; `extra` routes (the webhook) are listed in
    the OpenAPI document too."""
    private = APIRouter(prefix=PREFIX, route_class=guarded_route_class(authenticator(c)))
    add_process_routes(private)
    add_execution_routes(private)
    add_people_routes(private)
    documented = [*private.routes, *extra]
    public = APIRouter(prefix=PREFIX, route_class=guarded_route_class(None))
    cache: dict[str, Any] = {}

    @public.get("/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        if "doc" not in cache:
            cache["doc"] = openapi_document(documented)
        return JSONResponse(cache["doc"])

    @public.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    async def docs() -> HTMLResponse:
        if "doc" not in cache:
            cache["doc"] = openapi_document(documented)
        return HTMLResponse(docs_page(cache["doc"]))

    # last: any other path or method under the prefix gets a JSON 404 or 405
    public.routes.append(Route(f"{PREFIX}/{{path:path}}", _Fallback(documented),
                               include_in_schema=False))

    router = APIRouter()
    router.include_router(private)
    router.include_router(public)
    return router


class _Fallback:
    """An ASGI endpoint (so it answers every method, even unusual ones like QUERY)."""

    def __init__(self, routes: list[Any]) -> None:
        self.routes = routes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        response = to_response(self._error(request), request)
        await response(scope, receive, send)

    def _error(self, request: Request) -> ApiError:
        allowed = sorted({m for route in self.routes
                          if route.matches(request.scope)[0] is Match.PARTIAL
                          for m in route.methods})
        if allowed:
            return ApiError(405, "method_not_allowed", f"{request.method} is not allowed "
                            f"here; use {', '.join(allowed)}",
                            headers={"Allow": ", ".join(allowed)})
        return ApiError(404, "not_found", f"no API route {request.method} "
                        f"{request.url.path}; see {PREFIX}/docs")


def openapi_document(routes: Iterable[Any]) -> dict[str, Any]:
    doc = get_openapi(title=TITLE, version=_version(), routes=list(routes),
                      description="Authenticate with `Authorization: Bearer <API token>` "
                      "(create one under /api/v1/me/tokens or in the web application). "
                      "Errors are `{error: {code, message, details}}`.")
    doc.setdefault("components", {})["securitySchemes"] = {
        "token": {"type": "http", "scheme": "bearer"},
        "session": {"type": "apiKey", "in": "cookie", "name": "trinity_session"}}
    for path, item in doc.get("paths", {}).items():
        for operation in item.values():
            if "/hooks/" not in path:
                operation["security"] = [{"token": []}, {"session": []}]
    return doc


def api_document() -> dict[str, Any]:
    """The OpenAPI document, without a running server (routes are built unbound)."""
    from app.api import build_router

    routes = [r for r in _flat(build_router(None).routes)
              if getattr(r, "include_in_schema", False)
              and (getattr(r, "path", None) or "").startswith(PREFIX)]
    return openapi_document(routes)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("trinity-processes")
    except PackageNotFoundError:
        return "0"


def operations(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every documented /api/v1 route of `app` (a FastAPI or router)."""
    out: set[tuple[str, str]] = set()
    for route in _flat(app.routes):
        path = getattr(route, "path", None) or ""
        if getattr(route, "include_in_schema", False) and path.startswith(PREFIX):
            out.update((m, path) for m in getattr(route, "methods", None) or () if m != "HEAD")
    return sorted(out, key=lambda mp: (mp[1], mp[0]))


def _flat(routes: list[Any]) -> list[Any]:
    """Routes of included routers too (FastAPI ≥ 0.16x keeps them nested)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return list(routes)
    return list(iter_route_contexts(routes))


def docs_page(doc: dict[str, Any]) -> str:
    """A self-contained page listing the operations (works offline: no CDN assets)."""
    rows = []
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            rows.append(f"<tr><td><code>{method.upper()}</code></td><td><code>"
                        f"{html.escape(path)}</code></td><td>{html.escape(op.get('summary', ''))}"
                        "</td></tr>")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{TITLE}</title>"
            "<style>body{font:15px system-ui,sans-serif;margin:2rem;max-width:70rem}"
            "td{padding:.25rem .75rem;border-bottom:1px solid #ddd}code{font-size:14px}"
            f"</style></head><body><h1>{TITLE}</h1>"
            f"<p>{html.escape(doc['info'].get('description', ''))}</p>"
            f"<p>Machine-readable: <a href='{PREFIX}/openapi.json'>{PREFIX}/openapi.json"
            "</a></p><table><thead><tr><th>method</th><th>path</th><th>what</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></body></html>")


def create_app(c: Any) -> FastAPI:
    """An API-only application (health, webhooks, /metrics, /api/v1) for container `c`."""
    from app.api import build_router

    api = FastAPI(title=TITLE, docs_url=None, redoc_url=None, openapi_url=None)
    api.include_router(build_router(c))
    return api
