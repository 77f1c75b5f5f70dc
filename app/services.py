"""Application services: the commands every entry point (CLI, API, pages, webhooks) uses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.definitions import validate_text
from app.repositories import DefinitionRepository, ExecutionRepository, parsed_definition
from app.runtime import ExecutionNotFound, Runtime, new_id
from app.tables import DefinitionRow, ExecutionRow
from engine.definition import ProcessDefinition
from engine.execution import Command, ExecutionError, ProcessExecution
from engine.inputs import InputError, validate_input
from engine.issues import Issue
from engine.loader import DefinitionError

__all__ = ["DefinitionService", "ExecutionService", "InvalidInput", "NotFound", "ServiceError"]


class ServiceError(ValueError):
    """A request that cannot be done as asked; the message says why and what to do."""


class NotFound(ServiceError, LookupError):
    pass


class InvalidInput(ServiceError):
    def __init__(self, process: str, errors: list[InputError]) -> None:
        self.errors = errors
        super().__init__(f"invalid input for '{process}': " + "; ".join(map(str, errors)))


class InvalidDefinition(ServiceError):
    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        errors = [i for i in issues if i.is_error]
        super().__init__("; ".join(i.format() for i in errors[:5]) +
                         (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""))


@dataclass(frozen=True)
class Imported:
    row: DefinitionRow
    created: bool
    warnings: tuple[Issue, ...]


class DefinitionService:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.db = runtime.db
        # called after a version was published or archived (schedules register here)
        self.on_published: list[Any] = []
        self.on_archived: list[Any] = []

    async def import_text(self, text: str, publish: bool = False,
                          created_by: str | None = None, name: str | None = None) -> Imported:
        """Store a definition version. The same name+version with the same text is reused;
        with different text it is refused unless it is an unused draft (then updated).
        A template (`name: "{{name}}"`) needs `name`, which replaces every `{{name}}`."""
        text = fill_template_name(text, name)
        children = await self._sub_process_map()
        definition, issues = validate_text(text, lambda process: children.get(process))
        if definition is None:
            raise InvalidDefinition(issues)
        warnings = tuple(i for i in issues if not i.is_error)
        parsed_data = _data_of(text)
        now = self.runtime.clock()
        async with self.db.write() as s:
            repo = DefinitionRepository(s)
            existing = await repo.find(definition.name, definition.version)
            if existing is not None:
                row, created = await self._reuse(s, existing, text, parsed_data, now), False
            else:
                major, minor = definition.version_tuple
                row = DefinitionRow(id=new_id(), name=definition.name,
                                    version=definition.version, version_major=major,
                                    version_minor=minor, status="draft", yaml_text=text,
                                    data=parsed_data, description=definition.description,
                                    owner=definition.owner, created_by=created_by,
                                    created_at=now, updated_at=now)
                repo.add(row)
                created = True
            published = publish and row.status == "draft"
            if published:
                row.status, row.published_at, row.updated_at = "published", now, now
        if published:
            await self._announce(self.on_published, row)
        return Imported(row, created, warnings)

    async def _announce(self, listeners: list[Any], row: DefinitionRow) -> None:
        for listener in listeners:
            await listener(row)

    async def _sub_process_map(self) -> dict[str, list[str]]:
        """For recursion checks: the processes each stored process starts as sub-processes
        (across all its versions)."""
        out: dict[str, list[str]] = {}
        async with self.db.read() as s:
            rows = (await s.execute(select(DefinitionRow.name, DefinitionRow.data))).all()
        for name, data in rows:
            steps = (data or {}).get("steps") or []
            out.setdefault(name, []).extend(
                str(st.get("process_name") or st.get("process")) for st in steps
                if isinstance(st, dict) and st.get("type") == "sub_process")
        return out

    async def _reuse(self, s: Any, row: DefinitionRow, text: str, data: Any,
                     now: datetime) -> DefinitionRow:
        if row.yaml_text == text:
            return row
        used = (await s.execute(select(ExecutionRow.id).where(
            ExecutionRow.definition_id == row.id).limit(1))).first()
        if row.status != "draft" or used:
            raise ServiceError(
                f"version {row.version} of '{row.name}' already exists with different "
                f"content and is {'used by executions' if used else row.status}; "
                "change `version:` in the file to store a new version")
        row.yaml_text, row.data, row.updated_at = text, data, now
        return row

    async def set_status(self, name: str, version: str, status: str) -> DefinitionRow:
        now = self.runtime.clock()
        async with self.db.write() as s:
            row = await DefinitionRepository(s).find(name, version)
            if row is None:
                raise NotFound(f"no process '{name}' version {version}")
            allowed = {"published": ("draft",), "archived": ("draft", "published")}
            if row.status not in allowed.get(status, ()):
                raise ServiceError(f"'{name}' version {version} is {row.status} and cannot "
                                   f"become {status}")
            row.status, row.updated_at = status, now
            if status == "published":
                row.published_at = now
            if status == "archived":
                row.archived_at = now
        await self._announce(self.on_published if status == "published" else self.on_archived,
                             row)
        return row

    async def list(self) -> list[DefinitionRow]:
        async with self.db.read() as s:
            return await DefinitionRepository(s).list()

    async def find(self, name: str, version: str | None = None,
                   include_drafts: bool = False) -> DefinitionRow:
        statuses = ("published", "draft") if include_drafts else ("published",)
        async with self.db.read() as s:
            row = await DefinitionRepository(s).find(name, version, statuses)
        if row is None:
            which = f"version {version} of " if version else "a published version of "
            raise NotFound(f"there is no {which}process '{name}'"
                           + ("" if version else "; import it with --publish first"))
        return row


class ExecutionService:
    def __init__(self, runtime: Runtime, definitions: DefinitionService) -> None:
        self.runtime = runtime
        self.definitions = definitions

    async def start(self, row: DefinitionRow, input: Mapping[str, Any] | None = None,
                    triggered_by: str = "manual", started_by: str | None = None,
                    parent_id: str | None = None, parent_step_id: str | None = None,
                    retry_of: str | None = None) -> ProcessExecution:
        """Validate the input and start a new execution of this definition version."""
        if row.status == "archived":
            raise ServiceError(f"'{row.name}' version {row.version} is archived")
        definition = parsed_definition(row)
        clean, errors = validate_input(definition, input)
        if errors:
            raise InvalidInput(definition.name, errors)
        x = ProcessExecution.create(definition, new_id(), self.runtime.clock(), clean,
                                    triggered_by, started_by, parent_id, parent_step_id)
        outcome = await self.runtime.create(x, row.id, definition, retry_of)
        return outcome.execution

    async def cancel(self, execution_id: str, by: str | None = None,
                     reason: str = "") -> ProcessExecution:
        return await self._act(execution_id, lambda x, d, now: x.cancel(now, by, reason))

    async def pause(self, execution_id: str, by: str | None = None) -> ProcessExecution:
        def decide(x: ProcessExecution, d: ProcessDefinition, now: datetime) -> list[Command]:
            x.pause(now, by)
            return []
        return await self._act(execution_id, decide)

    async def resume(self, execution_id: str, by: str | None = None) -> ProcessExecution:
        """Resume a paused execution, or retry the failed steps of a failed one in place."""
        def decide(x: ProcessExecution, d: ProcessDefinition, now: datetime) -> list[Command]:
            if x.status.value == "failed":
                failed = [s for s, st in x.steps.items() if st.status.value == "failed"]
                if not failed:
                    raise ExecutionError(f"execution {x.id} failed before any step ran; "
                                         "use retry to start it again")
                return x.retry_failed_step(d, failed[0], now, by)
            return x.resume(d, now, by)
        return await self._act(execution_id, decide)

    async def retry(self, execution_id: str, by: str | None = None) -> ProcessExecution:
        """Start a new execution with the same definition version and input."""
        row, x = await self.runtime.load(execution_id)
        async with self.runtime.db.read() as s:
            definition_row = await DefinitionRepository(s).get(row.definition_id)
        assert definition_row is not None
        return await self.start(definition_row, x.input, "retry", by, retry_of=execution_id)

    async def get(self, execution_id: str) -> tuple[ExecutionRow, ProcessExecution]:
        try:
            return await self.runtime.load(execution_id)
        except ExecutionNotFound as e:
            raise NotFound(str(e)) from None

    async def list(self, status: str | None = None, process: str | None = None,
                   limit: int = 50) -> list[ExecutionRow]:
        q = select(ExecutionRow).order_by(ExecutionRow.created_at.desc())  # type: ignore
        if status:
            q = q.where(ExecutionRow.status == status)
        if process:
            q = q.where(ExecutionRow.process_name == process)
        async with self.runtime.db.read() as s:
            return list((await s.execute(q.limit(limit))).scalars())

    async def history(self, execution_id: str) -> tuple[list[Any], list[Any]]:
        async with self.runtime.db.read() as s:
            repo = ExecutionRepository(s)
            return await repo.events(execution_id), await repo.step_runs(execution_id)

    async def _act(self, execution_id: str, decide: Any) -> ProcessExecution:
        try:
            outcome = await self.runtime.transition(execution_id, decide)
        except ExecutionNotFound as e:
            raise NotFound(str(e)) from None
        except ExecutionError as e:
            raise ServiceError(str(e)) from None
        return outcome.execution


TEMPLATE_NAME = "{{name}}"


def fill_template_name(text: str, name: str | None) -> str:
    """Replace `{{name}}` in a template; a template without a name is refused."""
    if TEMPLATE_NAME not in text:
        return text
    if not name:
        raise ServiceError("this file is a template (name: \"{{name}}\"); give the process a "
                           "name, e.g. --name my-process")
    return text.replace(TEMPLATE_NAME, name)


def template_name_for(path_stem: str) -> str:
    """The process name a template file gets by default: its file name without suffixes."""
    return path_stem.split("__")[0]


def _data_of(text: str) -> Any:
    from app.yamlio import parse_yaml

    return _jsonable(parse_yaml(text).data)


def _jsonable(value: Any) -> Any:
    """YAML can hold dates; the stored parsed form must be JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


__all__ += ["DefinitionError", "Imported", "InvalidDefinition"]
