"""The `trinity` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from app.commands import add_runtime_commands
from app.definitions import ValidatedFile, validate_files
from app.remote import LOCAL_COMMANDS, REMOTE_COMMANDS, run_remote, server_of
from engine.jsonschema import json_schema

__all__ = ["main"]

EXIT_OK, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_OK
    server, token = server_of(args)
    if server and args.command not in LOCAL_COMMANDS:
        if args.command not in REMOTE_COMMANDS:
            print(f"error: `trinity {args.command}` works only on the server's machine, not "
                  "with --server", file=sys.stderr)
            return EXIT_UNREADABLE
        return run_remote(server, token, list(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into head and the like
        sys.stderr.close()
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trinity", description="Trinity Processes: a process engine for AI agents and "
        "people working together.")
    parser.add_argument("--server", metavar="URL", help="run processes, start, executions "
                        "and approvals against this server's API (env TRINITY_SERVER)")
    parser.add_argument("--token", help="API token for --server (env TRINITY_TOKEN)")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")

    p = sub.add_parser("validate", help="check process definition files")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--quiet", "-q", action="store_true", help="print errors only")
    p.set_defaults(func=_validate)

    p = sub.add_parser("schema", help="print the JSON Schema of the process format")
    p.set_defaults(func=_schema)

    p = sub.add_parser("up", help="start everything on this machine")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=_up)

    add_runtime_commands(sub)
    from app.admin_cli import add_admin_commands

    add_admin_commands(sub)
    return parser


def _validate(args: argparse.Namespace) -> int:
    results = validate_files(args.files)
    if args.json:
        print(json.dumps({"files": [r.to_dict() for r in results]}, indent=2))
    else:
        for r in results:
            _print_file(r, args.quiet)
        _print_summary(results)
    if any(r.unreadable for r in results):
        return EXIT_UNREADABLE
    return EXIT_INVALID if any(r.errors for r in results) else EXIT_OK


def _print_file(r: ValidatedFile, quiet: bool) -> None:
    for issue in r.issues:
        if quiet and not issue.is_error:
            continue
        print(issue.format(str(r.path)))
    if not r.issues and not quiet:
        print(f"{r.path}: ok")


def _print_summary(results: Sequence[ValidatedFile]) -> None:
    errors = sum(len(r.errors) for r in results)
    warnings = sum(len(r.issues) - len(r.errors) for r in results)
    bad = sum(1 for r in results if r.errors or r.unreadable)
    print(f"{len(results)} file(s): {len(results) - bad} valid, {bad} invalid; "
          f"{errors} error(s), {warnings} warning(s)", file=sys.stderr)


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def _up(args: argparse.Namespace) -> int:
    from app.up import up

    return up(args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
