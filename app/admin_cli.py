"""`trinity audit …` and the account commands of `trinity users …` (passwd, grant, revoke).

They act on the local installation through the guard as `cli:<os user>` with administrator
rights (whoever can run them can read the database anyway), so every change is audited like
one made on the web pages.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from app.identity import IdentityError
from app.local import LocalSession
from app.security import ALL_TEAMS, Role
from app.services import ServiceError

__all__ = ["add_admin_commands", "add_user_commands", "read_password"]

ROLES = [r.value for r in Role]


def add_admin_commands(sub: Any) -> None:
    """`trinity audit verify | list` (registered by app.cli)."""
    from app.commands import _cmd, _json_flag, _out

    p = sub.add_parser("audit", help="read and verify the audit log")
    asub = p.add_subparsers(title="audit commands", metavar="ACTION", required=True)
    q = asub.add_parser("verify", help="check the hash chain; exit 1 at the first breach")
    _json_flag(q)
    q.set_defaults(func=_cmd(_verify(_out)))
    q = asub.add_parser("list", help="recent entries, newest first")
    q.add_argument("--actor")
    q.add_argument("--action", help="entries whose action starts with this")
    q.add_argument("--resource", help="TYPE or TYPE:ID")
    q.add_argument("--limit", type=int, default=50)
    _json_flag(q)
    q.set_defaults(func=_cmd(_list(_out)))


def add_user_commands(usub: Any, cmd: Any, json_flag: Any, out: Any) -> None:
    """`trinity users passwd | grant | revoke` (added to the `users` command)."""
    q = usub.add_parser("passwd", help="set a user's password (and unlock the account)")
    q.add_argument("username")
    q.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    json_flag(q)
    q.set_defaults(func=cmd(_passwd(out)))
    for action in ("grant", "revoke"):
        q = usub.add_parser(action, help=f"{action} a role in a team (or every team: *)")
        q.add_argument("username")
        q.add_argument("role", choices=ROLES)
        q.add_argument("--team", default=ALL_TEAMS, help="team name, or * (default)")
        json_flag(q)
        q.set_defaults(func=cmd(_role_change(action, out)))


def read_password(from_stdin: bool) -> str:
    """The first line of stdin, or a prompt asked twice."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        raise ServiceError("the two passwords differ")
    return first


def _actor(s: LocalSession) -> Any:
    from app.commands import cli_actor

    return cli_actor(s)


async def _guarded(change: Any) -> None:
    """Identity refusals become the one-line errors the CLI prints."""
    try:
        await change
    except IdentityError as e:
        raise ServiceError(str(e)) from None


def _verify(out: Any) -> Any:
    async def run(s: LocalSession, args: argparse.Namespace) -> int:
        checked, breach = await s.container.audit.verify()
        data = {"ok": breach is None, "checked": checked,
                "breach": None if breach is None else {"seq": breach.seq,
                                                       "reason": breach.reason}}

        def human() -> None:
            if breach is None:
                print(f"audit log intact: {checked} entries checked")
            else:
                print(f"audit log BROKEN at entry {breach.seq}: {breach.reason} "
                      f"({checked} entries before it are intact)")
        out(args, data, human)
        return 0 if breach is None else 1
    return run


def _list(out: Any) -> Any:
    async def run(s: LocalSession, args: argparse.Namespace) -> int:
        rows = await _actor(s).audit_log(actor=args.actor, action=args.action,
                                         resource=args.resource, limit=max(1, args.limit))
        data = [{"seq": r.seq, "at": r.at.isoformat(), "actor": r.actor, "action": r.action,
                 "resource_type": r.resource_type, "resource_id": r.resource_id,
                 "outcome": r.outcome, "details": r.details or {}, "ip": r.ip}
                for r in rows]

        def human() -> None:
            if not data:
                print("no audit entries match")
            for d in data:
                print(f"{d['seq']:>6}  {d['at'][:19]}  {d['actor']:<16} {d['action']:<24} "
                      f"{d['resource_type']}:{d['resource_id']}  {d['outcome']}")
        out(args, data, human)
        return 0
    return run


def _passwd(out: Any) -> Any:
    async def run(s: LocalSession, args: argparse.Namespace) -> int:
        password = read_password(args.password_stdin)
        await _guarded(_actor(s).reset_password(args.username, password))
        out(args, {"username": args.username, "password_set": True},
            lambda: print(f"password of {args.username} set; their sessions ended"))
        return 0
    return run


def _role_change(action: str, out: Any) -> Any:
    async def run(s: LocalSession, args: argparse.Namespace) -> int:
        actor = _actor(s)
        method = actor.grant if action == "grant" else actor.revoke
        await _guarded(method(args.username, args.team, args.role))
        where = "every team" if args.team == ALL_TEAMS else f"team {args.team}"
        verb = "granted to" if action == "grant" else "revoked from"
        out(args, {"username": args.username, "role": args.role, "team": args.team,
                   "action": action},
            lambda: print(f"{args.role} in {where} {verb} {args.username}"))
        return 0
    return run
