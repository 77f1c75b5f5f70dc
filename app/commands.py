"""Runtime CLI commands: processes, start, executions, agents, recover, worker."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from app.local import LocalSession, open_local
from app.services import (
    InvalidDefinition,
    InvalidInput,
    NotFound,
    ServiceError,
    template_name_for,
)
from app.settings import Settings, SettingsError
from app.views import agent_view, definition_view, execution_view

__all__ = ["add_runtime_commands"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_runtime_commands(sub: Any) -> None:
    p = sub.add_parser("processes", help="import, list and show process definitions")
    psub = p.add_subparsers(title="processes commands", metavar="ACTION", required=True)
    q = psub.add_parser("import", help="store a definition file (optionally publish it)")
    q.add_argument("files", nargs="+", type=Path, metavar="FILE")
    q.add_argument("--publish", action="store_true")
    q.add_argument("--name", help="name for a template file (default: from the file name)")
    _json_flag(q)
    q.set_defaults(func=_cmd(_processes_import))
    q = psub.add_parser("list", help="every stored definition version")
    _json_flag(q)
    q.set_defaults(func=_cmd(_processes_list))
    q = psub.add_parser("show", help="one process: versions and YAML")
    q.add_argument("name")
    q.add_argument("--version")
    _json_flag(q)
    q.set_defaults(func=_cmd(_processes_show))
    for action, status in (("publish", "published"), ("archive", "archived")):
        q = psub.add_parser(action, help=f"{action} a stored version")
        q.add_argument("name")
        q.add_argument("version")
        _json_flag(q)
        q.set_defaults(func=_cmd(_status_changer(status)))

    p = sub.add_parser("start", help="start an execution of a process name or a file")
    p.add_argument("process", metavar="NAME|FILE")
    p.add_argument("--input", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--input-json", metavar="JSON")
    p.add_argument("--version")
    p.add_argument("--name", help="name for a template file (default: from the file name)")
    p.add_argument("--wait", action="store_true", help="wait for the end and print it")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (--wait)")
    _json_flag(p)
    p.set_defaults(func=_cmd(_start))

    p = sub.add_parser("executions", help="list, show, cancel, retry and resume executions")
    esub = p.add_subparsers(title="executions commands", metavar="ACTION", required=True)
    q = esub.add_parser("list", help="recent executions")
    q.add_argument("--status")
    q.add_argument("--process")
    q.add_argument("--limit", type=int, default=50)
    _json_flag(q)
    q.set_defaults(func=_cmd(_executions_list))
    for action in ("show", "cancel", "retry", "resume", "pause"):
        q = esub.add_parser(action, help=f"{action} one execution")
        q.add_argument("id")
        if action == "cancel":
            q.add_argument("--reason", default="")
        _json_flag(q)
        q.set_defaults(func=_cmd(_execution_action(action)))

    p = sub.add_parser("agents", help="register, list and test agents")
    asub = p.add_subparsers(title="agents commands", metavar="ACTION", required=True)
    q = asub.add_parser("add", help="register (or update) an agent")
    q.add_argument("name")
    q.add_argument("--kind", required=True, choices=("demo", "http", "openai", "command"))
    q.add_argument("--url")
    q.add_argument("--model")
    q.add_argument("--command", dest="program")
    q.add_argument("--api-key-env")
    q.add_argument("--capacity", type=int, default=1)
    q.add_argument("--timeout", type=float)
    q.add_argument("--config-json", help="extra kind-specific settings as JSON")
    q.add_argument("--description")
    _json_flag(q)
    q.set_defaults(func=_cmd(_agents_add))
    q = asub.add_parser("list", help="registered agents")
    _json_flag(q)
    q.set_defaults(func=_cmd(_agents_list))
    q = asub.add_parser("test", help="send a test message to an agent")
    q.add_argument("name")
    _json_flag(q)
    q.set_defaults(func=_cmd(_agents_test))

    p = sub.add_parser("recover", help="run the recovery sweep now and print its report")
    p.add_argument("--dry-run", action="store_true", help="report only, change nothing")
    _json_flag(p)
    p.set_defaults(func=_cmd(_recover))

    from app.approvals_cli import add_approval_commands, add_subscription_commands

    add_approval_commands(sub, _cmd, _json_flag, _out)
    add_subscription_commands(sub, _cmd, _json_flag, _out)

    p = sub.add_parser("worker", help="run a worker (scale-out: any number of them)")
    p.set_defaults(func=_worker)

    p = sub.add_parser("web", help="run only the web server (scale-out: any number of them)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=_web)


def _json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


Handler = Callable[[LocalSession, argparse.Namespace], Awaitable[int]]


def _cmd(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Run an async command in a local session; errors become one clear line."""
    def run(args: argparse.Namespace) -> int:
        async def main() -> int:
            async with open_local() as session:
                return await handler(session, args)
        try:
            return asyncio.run(main())
        except InvalidDefinition as e:
            for issue in e.issues:
                print(issue.format(), file=sys.stderr)
            return EXIT_FAILED
        except (ServiceError, SettingsError) as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_USAGE if isinstance(e, NotFound | InvalidInput) else EXIT_FAILED
    return run


def _out(args: argparse.Namespace, data: Any, human: Callable[[], None]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=str))
    else:
        human()


def cli_actor(s: LocalSession) -> Any:
    """The command line acts as an administrator (whoever runs it can read the database
    anyway), through the same gate as the web, so its actions are audited as cli:<user>."""
    import getpass

    from app.security import SYSTEM, Principal

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return s.container.guard.actor(Principal(f"cli:{who}", SYSTEM.grants, via="cli"))


# --- processes -----------------------------------------------------------------------------


async def _processes_import(s: LocalSession, args: argparse.Namespace) -> int:
    results = []
    for path in args.files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            print(f"error: cannot read {path}: {e}", file=sys.stderr)
            return EXIT_USAGE
        imported = await cli_actor(s).save_definition(
            text, publish=args.publish, name=args.name or template_name_for(path.stem))
        for w in imported.warnings:
            print(w.format(str(path)), file=sys.stderr)
        results.append({**definition_view(imported.row), "created": imported.created,
                        "file": str(path)})
    _out(args, results, lambda: [print(f"{r['file']}: {r['name']} {r['version']} "
                                       f"{'stored' if r['created'] else 'unchanged'} "
                                       f"({r['status']})") for r in results])
    return EXIT_OK


async def _processes_list(s: LocalSession, args: argparse.Namespace) -> int:
    rows = [definition_view(r) for r in await s.container.definitions.list()]

    def human() -> None:
        if not rows:
            print("no processes yet: import one with `trinity processes import FILE --publish`")
        for r in rows:
            print(f"{r['name']:<40} {r['version']:<8} {r['status']:<10} {r['description'] or ''}"
                  [:120])
    _out(args, rows, human)
    return EXIT_OK


async def _processes_show(s: LocalSession, args: argparse.Namespace) -> int:
    row = await s.container.definitions.find(args.name, args.version, include_drafts=True)
    data = {**definition_view(row), "yaml": row.yaml_text}
    _out(args, data, lambda: print(f"# {row.name} {row.version} ({row.status})\n"
                                   f"{row.yaml_text}"))
    return EXIT_OK


def _status_changer(status: str) -> Handler:
    async def change(s: LocalSession, args: argparse.Namespace) -> int:
        row = await cli_actor(s).set_status(args.name, args.version, status)
        _out(args, definition_view(row), lambda: print(f"{row.name} {row.version}: {status}"))
        return EXIT_OK
    return change


# --- executions ----------------------------------------------------------------------------


async def _start(s: LocalSession, args: argparse.Namespace) -> int:
    row = await _resolve_process(s, args.process, args.version, args.name)
    data = _parse_inputs(args.input, args.input_json)
    x = await cli_actor(s).start(row.name, data, triggered_by="cli", row=row)
    if not args.wait:
        if await s.ensure_worker() or s.has_private_redis:
            # the worker lives in this command: run until only people or timers can move it
            await _wait(s, x.id, args.timeout, settle=True)
        _out(args, {"id": x.id, "status": x.status.value},
             lambda: print(f"started {x.id} ({row.name} {row.version})"))
        return EXIT_OK
    await s.ensure_worker()
    final = await _wait(s, x.id, args.timeout)
    if final is None:
        print(f"error: execution {x.id} did not finish within {args.timeout:g}s; it goes on "
              f"in the background (`trinity executions show {x.id}`)", file=sys.stderr)
        return EXIT_FAILED
    view = await _full_view(s, x.id)
    _out(args, view, lambda: _print_execution(view))
    return EXIT_OK if view["status"] == "completed" else EXIT_FAILED


async def _resolve_process(s: LocalSession, name_or_file: str, version: str | None,
                           name: str | None = None) -> Any:
    path = Path(name_or_file)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise NotFound(f"cannot read {path}: {e.strerror}") from None
        imported = await cli_actor(s).save_definition(
            text, publish=True, name=name or template_name_for(path.stem))
        for w in imported.warnings:
            print(w.format(str(path)), file=sys.stderr)
        return imported.row
    return await s.container.definitions.find(name_or_file, version)


def _parse_inputs(pairs: list[str], raw_json: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if raw_json:
        try:
            loaded = json.loads(raw_json)
        except ValueError as e:
            raise ServiceError(f"--input-json is not valid JSON: {e}") from None
        if not isinstance(loaded, dict):
            raise ServiceError("--input-json must be a JSON object")
        data.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ServiceError(f"--input '{pair}' must look like key=value")
        data[key.strip()] = value
    return data


async def _wait(s: LocalSession, execution_id: str, timeout: float,
                settle: bool = False) -> str | None:
    """Until the execution ends (or, with `settle`, until it only waits for a person,
    a timer or a child process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _row, x = await s.container.executions.get(execution_id)
        if x.status.is_terminal:
            return x.status.value
        if settle and not any(st.status.value in ("pending", "queued", "running", "retrying")
                              and _can_move(x, sid) for sid, st in x.steps.items()):
            return x.status.value
        await asyncio.sleep(0.1)
    return None


def _can_move(x: Any, step_id: str) -> bool:
    """A pending step can move only once nothing it waits on is waiting for outside input."""
    st = x.steps[step_id]
    return st.status.value != "pending" or not any(
        other.status.value.startswith("waiting_") for other in x.steps.values())


async def _full_view(s: LocalSession, execution_id: str) -> dict[str, Any]:
    row, x = await s.container.executions.get(execution_id)
    definition = await _definition_of(s, row)
    return execution_view(row, x, definition)


async def _definition_of(s: LocalSession, row: Any) -> Any:
    async with s.container.db.read() as session:
        return await s.container.runtime.definition_for(session, row)


def _print_execution(view: dict[str, Any]) -> None:
    print(f"execution {view['id']}  {view['process']} {view['version']}  {view['status']}"
          f"  cost {view['cost']}  {view['duration'] or ''}")
    if view.get("error"):
        print(f"  error: {view['error'].get('code')}: {view['error'].get('message')}")
    if view.get("parent_id"):
        print(f"  parent: {view['parent_id']} (step {view['parent_step_id']})")
    for step in view["steps"]:
        why = f" — {step['skip_detail']}" if step.get("skip_detail") else ""
        err = f" — {step['error']['code']}: {step['error']['message']}" if step.get("error") \
            and step["status"] != "completed" else ""
        child = f" → child {step['child_id']}" if step.get("child_id") else ""
        print(f"  {step['id']:<32} {step['status']:<18} attempts {step['attempts']}"
              f"{why}{err}{child}")
    if view.get("outputs"):
        print("  outputs: " + json.dumps(view["outputs"], default=str)[:500])


async def _executions_list(s: LocalSession, args: argparse.Namespace) -> int:
    rows = await s.container.executions.list(args.status, args.process, args.limit)
    data = [{"id": r.id, "process": r.process_name, "version": r.process_version,
             "status": r.status, "cost": r.cost, "created_at": r.created_at} for r in rows]

    def human() -> None:
        if not data:
            print("no executions yet: start one with `trinity start NAME|FILE`")
        for d in data:
            print(f"{d['id']}  {d['process']:<32} {d['status']:<10} {d['created_at']}")
    _out(args, data, human)
    return EXIT_OK


def _execution_action(action: str) -> Handler:
    async def act(s: LocalSession, args: argparse.Namespace) -> int:
        target = args.id
        if action != "show":
            result = await cli_actor(s).act(args.id, action, getattr(args, "reason", "") or "")
            target = result.id if action == "retry" else args.id
        view = await _full_view(s, target)
        _out(args, view, lambda: _print_execution(view))
        return EXIT_OK
    return act


# --- agents --------------------------------------------------------------------------------


async def _agents_add(s: LocalSession, args: argparse.Namespace) -> int:

    config: dict[str, Any] = json.loads(args.config_json) if args.config_json else {}
    for key, value in (("url", args.url), ("model", args.model), ("command", args.program),
                       ("api_key_env", args.api_key_env)):
        if value:
            config[key] = value
    row = await cli_actor(s).save_agent(args.name, args.kind, config, args.capacity,
                                        args.timeout, args.description)
    _out(args, agent_view(row), lambda: print(f"agent {row.name} ({row.kind}) saved"))
    return EXIT_OK


async def _agents_list(s: LocalSession, args: argparse.Namespace) -> int:
    from app.repositories import AgentRepository

    async with s.container.db.read() as session:
        rows = [agent_view(r) for r in await AgentRepository(session).list()]
    _out(args, rows, lambda: [print(f"{r['name']:<24} {r['kind']:<8} capacity {r['capacity']}"
                                    f"  {r['description'] or ''}") for r in rows])
    return EXIT_OK


async def _agents_test(s: LocalSession, args: argparse.Namespace) -> int:
    from app.agents.gateway import test_agent

    agent = await s.container.lookup_agent(args.name)
    if agent is None:
        raise NotFound(f"no agent named '{args.name}'")
    ok, message = await test_agent(agent)
    _out(args, {"name": args.name, "ok": ok, "message": message},
         lambda: print(f"{args.name}: {'ok' if ok else 'FAILED'} — {message}"))
    return EXIT_OK if ok else EXIT_FAILED


# --- recovery and worker -------------------------------------------------------------------


async def _recover(s: LocalSession, args: argparse.Namespace) -> int:
    report = await s.container.recovery.sweep(full=True, dry_run=args.dry_run)
    data = report.to_dict()

    def human() -> None:
        print(f"recovery {'(dry run) ' if args.dry_run else ''}at {data['started_at']}: "
              f"{data['scanned']} active execution(s) scanned")
        for key in ("redispatched", "lost_attempts", "wakeups", "failed_idle", "errors"):
            for item in data[key]:
                print(f"  {key.replace('_', ' ')}: {item}")
        if not report.changed:
            print("  nothing to recover")
    _out(args, data, human)
    return EXIT_OK


def _worker(args: argparse.Namespace) -> int:
    from app.local import known_redis_url
    from worker.main import run_worker

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings.from_env()
    url = known_redis_url(settings)
    if not url:
        print("error: a worker needs a shared Redis: set REDIS_URL (or run `trinity up`)",
              file=sys.stderr)
        return EXIT_USAGE
    run_worker(settings, url)
    return EXIT_OK


def _web(args: argparse.Namespace) -> int:
    from app.db import migrate
    from app.local import known_redis_url
    from app.web import serve

    settings = Settings.from_env()
    url = known_redis_url(settings)
    if not url:
        print("error: a web server needs a shared Redis: set REDIS_URL (or run `trinity up`)",
              file=sys.stderr)
        return EXIT_USAGE
    migrate(settings.database_url)
    serve(settings, url, args.host or settings.host, args.port or settings.port)
    return EXIT_OK
