"""Errors at the HTTP edge: every failure becomes `{error: {code, message, details}}`.

The API's routes use `guarded_route_class`, whose handler wrapper limits the body size,
authenticates (for private routes) and turns every exception into that shape: a denial into
403, a missing thing into 404, bad input into 422 with the fields, a conflict into 409, and
anything unexpected into a logged 500 without a stack trace. Doing it in the route class
(not in app-wide exception handlers) keeps the API self-contained wherever it is mounted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import yaml
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from app.identity import IdentityError
from app.security import Denied
from app.services import InvalidDefinition, InvalidInput, NotFound, ServiceError

__all__ = ["MAX_BODY", "ApiError", "error_response", "guarded_route_class", "to_response"]

log = logging.getLogger("trinity.api")
MAX_BODY = 1_000_000
_STATUS_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden",
                 404: "not_found", 405: "method_not_allowed", 409: "conflict",
                 413: "too_large", 415: "unsupported_media_type", 422: "invalid_request",
                 429: "rate_limited"}


class ApiError(Exception):
    """An answer decided at the edge (authentication, CSRF, size, bad cursor)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.headers = details, headers


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": details}},
                        status_code=status, headers=headers)


def to_response(e: Exception, request: Request) -> JSONResponse:
    """The JSON answer for an exception raised while handling `request`."""
    if isinstance(e, ApiError):
        return error_response(e.status, e.code, e.message, e.details, e.headers)
    if isinstance(e, RequestValidationError):
        return error_response(422, "invalid_request", "the request is not valid",
                              [_field_error(err) for err in e.errors()])
    if isinstance(e, HTTPException):
        return error_response(e.status_code, _STATUS_CODES.get(e.status_code, "error"),
                              str(e.detail), None, dict(e.headers or {}) or None)
    if isinstance(e, Denied):
        return error_response(403, "forbidden", e.reason,
                              {"permission": e.permission.value if e.permission else None})
    if isinstance(e, IdentityError):
        status = 409 if "already exists" in str(e) else 400
        return error_response(status, _STATUS_CODES[status], str(e))
    if isinstance(e, ServiceError):
        return _service_error(e)
    if isinstance(e, yaml.YAMLError):  # characters YAML refuses before parsing starts
        return error_response(422, "invalid_yaml", f"the body is not valid YAML: {e}")
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal", "something went wrong on the server; the error "
                          "was logged")


def _service_error(e: ServiceError) -> JSONResponse:
    from app.guard import RateLimited

    if isinstance(e, RateLimited):
        return error_response(429, "rate_limited", str(e), {"retry_after": e.retry_after},
                              {"Retry-After": str(e.retry_after)})
    if isinstance(e, NotFound):
        return error_response(404, "not_found", str(e))
    if isinstance(e, InvalidInput):
        return error_response(422, "invalid_input", str(e),
                              [{"field": i.field, "message": i.message} for i in e.errors])
    if isinstance(e, InvalidDefinition):
        return error_response(422, "invalid_definition", str(e),
                              [i.to_dict() for i in e.issues])
    return error_response(409, "conflict", str(e))


def _field_error(err: Any) -> dict[str, Any]:
    loc = [str(part) for part in err.get("loc", ())]
    return {"field": ".".join(loc[1:]) if len(loc) > 1 else ".".join(loc),
            "in": loc[0] if loc else None, "message": err.get("msg", ""),
            "type": err.get("type")}


Authenticate = Callable[[Request], Awaitable[Any]]


def guarded_route_class(authenticate: Authenticate | None) -> type[APIRoute]:
    """A route class whose handler checks size and credentials first and answers every
    error in the API's shape; `authenticate` sets `request.state.actor` (None: public)."""

    class GuardedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def run(request: Request) -> Response:
                try:
                    await _check_size(request)
                    if authenticate is not None:
                        request.state.actor = await authenticate(request)
                    return await handler(request)
                except Exception as e:  # the edge: every error becomes a JSON answer
                    return to_response(e, request)
            return run

    return GuardedRoute


async def _check_size(request: Request) -> None:
    declared = request.headers.get("content-length")
    too_large = ApiError(413, "too_large", f"the body is larger than {MAX_BODY} bytes")
    if declared is not None:
        try:
            if int(declared) > MAX_BODY:
                raise too_large
        except ValueError:
            raise ApiError(400, "bad_request", "Content-Length is not a number") from None
    if request.method not in ("POST", "PUT", "PATCH", "DELETE"):
        return
    chunks, size = [], 0
    async for chunk in request.stream():  # stop reading as soon as it is too large
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large
        chunks.append(chunk)
    request._body = b"".join(chunks)  # what request.body() hands the route afterwards
