"""/api/v1/processes: definitions as YAML in and out, validation, the version life cycle."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from app.definitions import validate_text
from app.rest.common import YAML_BODY, Name, Version, actor, yaml_body
from app.rest.errors import ApiError
from app.services import ServiceError, fill_template_name
from app.views import definition_view

__all__ = ["add_process_routes"]

VersionQuery = Annotated[str | None, Query(max_length=20, pattern=r"^[0-9]+(\.[0-9]+)?$")]


class NewVersion(BaseModel):
    version: str | None = Field(None, max_length=20, pattern=r"^[0-9]+(\.[0-9]+)?$",
                                description="default: the next minor version")


def add_process_routes(r: APIRouter) -> None:
    @r.get("/processes", tags=["processes"], summary="Process versions you may read")
    async def list_processes(request: Request, include_drafts: bool = True) -> Any:
        rows = await actor(request).processes(include_drafts)
        return {"items": [definition_view(row) for row in rows]}

    @r.post("/processes", tags=["processes"], openapi_extra=YAML_BODY, status_code=201,
            summary="Create a draft, or update an unused draft, from YAML")
    async def create_process(request: Request, publish: bool = False,
                             name: Annotated[str | None, Query(max_length=200)] = None) -> Any:
        return await _save(request, publish, name, None)

    @r.post("/processes/validate", tags=["processes"], openapi_extra=YAML_BODY,
            summary="Validate YAML without saving it; issues carry line and column")
    async def validate(request: Request,
                       name: Annotated[str | None, Query(max_length=200)] = None) -> Any:
        text, data = await yaml_body(request)
        try:
            definition, issues = validate_text(fill_template_name(text, name or
                                                                  _str(data.get("name"))))
        except ServiceError as e:
            raise ApiError(422, "template_needs_name", str(e)) from None
        return {"valid": definition is not None and not any(i.is_error for i in issues),
                "name": definition.name if definition else None,
                "version": definition.version if definition else None,
                "issues": [i.to_dict() for i in issues]}

    @r.get("/processes/{name}", tags=["processes"],
           summary="The latest version (or ?version=) with its YAML and every version")
    async def get_process(request: Request, name: Name, version: VersionQuery = None) -> Any:
        a = actor(request)
        row = await a.process(name, version)
        versions = [definition_view(v) for v in await a.processes() if v.name == name]
        return {**definition_view(row), "yaml": row.yaml_text, "versions": versions}

    @r.put("/processes/{name}", tags=["processes"], openapi_extra=YAML_BODY,
           summary="Create or update a draft of this process from YAML")
    async def put_process(request: Request, name: Name, publish: bool = False) -> Any:
        return await _save(request, publish, name, name)

    @r.get("/processes/{name}/yaml", tags=["processes"], response_class=PlainTextResponse,
           summary="The YAML text exactly as stored")
    async def get_yaml(request: Request, name: Name, version: VersionQuery = None) -> Any:
        row = await actor(request).process(name, version)
        return PlainTextResponse(row.yaml_text, media_type="application/yaml")

    _add_version_routes(r)


def _add_version_routes(r: APIRouter) -> None:
    @r.get("/processes/{name}/versions/{version}", tags=["processes"],
           summary="One version with its YAML")
    async def get_version(request: Request, name: Name, version: Version) -> Any:
        row = await actor(request).process(name, version)
        return {**definition_view(row), "yaml": row.yaml_text}

    @r.post("/processes/{name}/versions/{version}/publish", tags=["processes"],
            summary="Publish a draft")
    async def publish(request: Request, name: Name, version: Version) -> Any:
        return definition_view(await actor(request).set_status(name, version, "published"))

    @r.post("/processes/{name}/versions/{version}/archive", tags=["processes"],
            summary="Archive a version (no new executions)")
    async def archive(request: Request, name: Name, version: Version) -> Any:
        return definition_view(await actor(request).set_status(name, version, "archived"))

    @r.post("/processes/{name}/versions/{version}/new-version", tags=["processes"],
            status_code=201, summary="Copy a published version into a new draft version")
    async def new_version(request: Request, name: Name, version: Version,
                          body: Annotated[NewVersion | None, Body()] = None) -> Any:
        return await _new_version(request, name, version, body.version if body else None)

    @r.delete("/processes/{name}/versions/{version}", tags=["processes"],
              summary="Delete a draft no execution uses")
    async def delete_draft(request: Request, name: Name, version: Version) -> Any:
        row = await actor(request).delete_draft(name, version)
        return {**definition_view(row), "deleted": True}


async def _save(request: Request, publish: bool, name: str | None,
                expected: str | None) -> Any:
    text, data = await yaml_body(request)
    publish = publish or bool(data.get("publish"))
    name = name or _str(data.get("name"))
    if expected is not None:
        _check_name(text, expected)
    imported = await actor(request).save_definition(text, publish, name)
    body = {**definition_view(imported.row), "created": imported.created,
            "warnings": [w.to_dict() for w in imported.warnings]}
    return JSONResponse(_jsonable(body), status_code=201 if imported.created else 200)


def _check_name(text: str, expected: str) -> None:
    try:
        definition, _ = validate_text(fill_template_name(text, expected))
    except ServiceError:
        return
    if definition is not None and definition.name != expected:
        raise ApiError(422, "name_mismatch", f"the YAML defines '{definition.name}', not "
                       f"'{expected}'", [{"field": "name", "in": "body",
                                          "message": "must match the URL", "type": "value"}])


async def _new_version(request: Request, name: str, version: str, wanted: str | None) -> Any:
    imported = await actor(request).new_version(name, version, wanted)
    return JSONResponse(_jsonable({**definition_view(imported.row), "created": True,
                                   "copied_from": version}), status_code=201)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _jsonable(value: Any) -> Any:
    from fastapi.encoders import jsonable_encoder

    return jsonable_encoder(value)
