"""The command line against a running server: `trinity --server URL --token TOKEN …`
(or TRINITY_SERVER / TRINITY_TOKEN) sends processes, start, executions and approvals
commands through the REST API instead of opening the local database.

Errors are one line on stderr: exit 2 for a refused token, an unreachable server or a
request the server calls invalid or unknown; exit 1 for other refusals.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when used: most commands never need an HTTP client
    import httpx

__all__ = ["REMOTE_COMMANDS", "RemoteError", "run_remote", "server_of"]

REMOTE_COMMANDS = frozenset({"processes", "start", "executions", "approvals"})
LOCAL_COMMANDS = frozenset({"validate", "schema", "up", "worker", "web"})
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class RemoteError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def server_of(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(server URL, token) from the flags, else the environment."""
    return (getattr(args, "server", None) or os.environ.get("TRINITY_SERVER") or None,
            getattr(args, "token", None) or os.environ.get("TRINITY_TOKEN") or None)


def run_remote(server: str, token: str | None, argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    if not token:
        print("error: --token (or TRINITY_TOKEN) is needed with --server; create one in "
              "the web application or with POST /api/v1/me/tokens", file=sys.stderr)
        return EXIT_USAGE
    import httpx

    try:
        with httpx.Client(base_url=server.rstrip("/") + "/api/v1", timeout=30.0,
                          headers={"Authorization": f"Bearer {token}"}) as http:
            return int(args.run(Api(http, server), args))
    except RemoteError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code


class Api:
    def __init__(self, http: httpx.Client, server: str) -> None:
        self.http, self.server = http, server

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            answer = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise RemoteError(f"cannot reach {self.server}: {e}", EXIT_USAGE) from None
        if answer.status_code < 400:
            return answer.json()
        raise _refusal(answer)


def _refusal(answer: httpx.Response) -> RemoteError:
    try:
        err = answer.json()["error"]
        message = err.get("message") or err.get("code")
        details = err.get("details")
    except (ValueError, KeyError, TypeError, AttributeError):
        message, details = answer.text[:200] or answer.reason_phrase, None
    if answer.status_code == 401:
        return RemoteError(f"the server refused the token ({message})", EXIT_USAGE)
    if isinstance(details, list) and details and isinstance(details[0], dict):
        message += " — " + "; ".join(f"{d.get('field') or d.get('path')}: {d.get('message')}"
                                     for d in details[:5])
    code = EXIT_USAGE if answer.status_code in (400, 404, 422) else EXIT_FAILED
    return RemoteError(f"{message} (HTTP {answer.status_code})", code)


# --- commands ------------------------------------------------------------------------------


def _processes_list(api: Api, args: argparse.Namespace) -> int:
    rows = api.call("GET", "/processes")["items"]
    _out(args, rows, lambda: [print(f"{r['name']:<40} {r['version']:<8} {r['status']:<10} "
                                    f"{r['description'] or ''}"[:120]) for r in rows])
    return EXIT_OK


def _processes_show(api: Api, args: argparse.Namespace) -> int:
    data = api.call("GET", f"/processes/{args.name}",
                    params={"version": args.version} if args.version else None)
    _out(args, data, lambda: print(f"# {data['name']} {data['version']} ({data['status']})\n"
                                   f"{data['yaml']}"))
    return EXIT_OK


def _start(api: Api, args: argparse.Namespace) -> int:
    body = {"process": args.process, "version": args.version,
            "input": _inputs(args.input, args.input_json)}
    started = api.call("POST", "/executions", json=body)
    if not args.wait:
        _out(args, started, lambda: print(f"started {started['id']} ({started['process']} "
                                          f"{started['version']})"))
        return EXIT_OK
    view = _wait(api, started["id"], args.timeout)
    _out(args, view, lambda: _print_execution(view))
    return EXIT_OK if view["status"] == "completed" else EXIT_FAILED


def _wait(api: Api, execution_id: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        view = api.call("GET", f"/executions/{execution_id}")
        if view["status"] in ("completed", "failed", "cancelled", "timed_out"):
            return view
        if time.monotonic() > deadline:
            raise RemoteError(f"execution {execution_id} did not finish within {timeout:g}s; "
                              "it goes on on the server")
        time.sleep(0.3)


def _executions_list(api: Api, args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("status", args.status), ("process", args.process),
                                ("limit", args.limit)) if v}
    rows = api.call("GET", "/executions", params=params)["items"]

    def human() -> None:
        if not rows:
            print("no executions")
        for d in rows:
            print(f"{d['id']}  {d['process']:<32} {d['status']:<10} {d['created_at']}")
    _out(args, rows, human)
    return EXIT_OK


def _execution_action(action: str) -> Callable[[Api, argparse.Namespace], int]:
    def run(api: Api, args: argparse.Namespace) -> int:
        if action == "show":
            view = api.call("GET", f"/executions/{args.id}")
        else:
            view = api.call("POST", f"/executions/{args.id}/{action}",
                            json={"reason": getattr(args, "reason", "") or ""})
        _out(args, view, lambda: _print_execution(view))
        return EXIT_OK
    return run


def _approvals_list(api: Api, args: argparse.Namespace) -> int:
    params = {"all": "true"} if args.all else {}
    rows = api.call("GET", "/approvals", params=params)["items"]

    def human() -> None:
        if not rows:
            print("no pending approval requests")
        for a in rows:
            print(f"{a['id']}  {a['process']}/{a['step_id']}  {a['status']}  "
                  f"due {a['deadline']}  {a['title']}")
    _out(args, rows, human)
    return EXIT_OK


def _approvals_decide(api: Api, args: argparse.Namespace) -> int:
    decision = {"approve": "approved", "reject": "rejected"}.get(args.decision, args.decision)
    data = api.call("POST", f"/approvals/{args.id}/decide",
                    json={"decision": decision, "comment": args.comment})
    _out(args, data, lambda: print(f"{args.id}: {decision}; request {data['status']}"))
    return EXIT_OK


# --- plumbing ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trinity --server URL")
    parser.add_argument("--server")
    parser.add_argument("--token")
    sub = parser.add_subparsers(metavar="COMMAND", required=True)
    p = sub.add_parser("processes").add_subparsers(metavar="ACTION", required=True)
    _cmd(p.add_parser("list"), _processes_list)
    q = _cmd(p.add_parser("show"), _processes_show)
    q.add_argument("name")
    q.add_argument("--version")
    q = _cmd(sub.add_parser("start"), _start)
    q.add_argument("process", metavar="NAME")
    q.add_argument("--input", action="append", default=[], metavar="KEY=VALUE")
    q.add_argument("--input-json", metavar="JSON")
    q.add_argument("--version")
    q.add_argument("--wait", action="store_true")
    q.add_argument("--timeout", type=float, default=600.0)
    p = sub.add_parser("executions").add_subparsers(metavar="ACTION", required=True)
    q = _cmd(p.add_parser("list"), _executions_list)
    q.add_argument("--status")
    q.add_argument("--process")
    q.add_argument("--limit", type=int, default=50)
    for action in ("show", "cancel", "retry", "resume", "pause"):
        q = _cmd(p.add_parser(action), _execution_action(action))
        q.add_argument("id")
        if action == "cancel":
            q.add_argument("--reason", default="")
    p = sub.add_parser("approvals").add_subparsers(metavar="ACTION", required=True)
    q = _cmd(p.add_parser("list"), _approvals_list)
    q.add_argument("--all", action="store_true", help="everyone's (administrators)")
    q = _cmd(p.add_parser("decide"), _approvals_decide)
    q.add_argument("id")
    q.add_argument("--decision", required=True,
                   choices=("approved", "rejected", "needs_changes", "approve", "reject"))
    q.add_argument("--comment")
    return parser


def _cmd(p: argparse.ArgumentParser, run: Callable[[Api, argparse.Namespace], int]
         ) -> argparse.ArgumentParser:
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)
    return p


def _inputs(pairs: list[str], raw_json: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if raw_json:
        try:
            loaded = json.loads(raw_json)
        except ValueError as e:
            raise RemoteError(f"--input-json is not valid JSON: {e}", EXIT_USAGE) from None
        if not isinstance(loaded, dict):
            raise RemoteError("--input-json must be a JSON object", EXIT_USAGE)
        data.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RemoteError(f"--input '{pair}' must look like key=value", EXIT_USAGE)
        data[key.strip()] = value
    return data


def _out(args: argparse.Namespace, data: Any, human: Callable[[], Any]) -> None:
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        human()


def _print_execution(view: dict[str, Any]) -> None:
    print(f"execution {view['id']}  {view['process']} {view['version']}  {view['status']}"
          f"  cost {view.get('cost', '-')}  {view.get('duration') or ''}")
    if view.get("error"):
        print(f"  error: {view['error'].get('code')}: {view['error'].get('message')}")
    for step in view.get("steps", []):
        print(f"  {step['id']:<32} {step['status']:<18} attempts {step['attempts']}")
