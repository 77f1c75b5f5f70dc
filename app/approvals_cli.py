"""`trinity approvals …` and `trinity users add`: deciding from the command line."""

from __future__ import annotations

import argparse
import json
from typing import Any

from app.local import LocalSession
from app.runtime import utcnow
from app.services import ServiceError
from app.tables import TeamMemberRow, UserRow

__all__ = ["add_approval_commands"]


def add_approval_commands(sub: Any, cmd: Any, json_flag: Any, out: Any) -> None:
    p = sub.add_parser("approvals", help="list, decide and delegate approval requests")
    asub = p.add_subparsers(title="approvals commands", metavar="ACTION", required=True)
    q = asub.add_parser("list", help="pending requests")
    q.add_argument("--mine", action="store_true", help="only those --as USER may decide")
    q.add_argument("--as", dest="user", help="the person asking")
    q.add_argument("--all", action="store_true", help="closed requests too")
    json_flag(q)
    q.set_defaults(func=cmd(_list(out)))
    q = asub.add_parser("decide", help="approve, reject or request changes")
    q.add_argument("id")
    q.add_argument("--decision", required=True,
                   choices=("approved", "rejected", "needs_changes", "approve", "reject"))
    q.add_argument("--comment")
    q.add_argument("--edit", help="the edited artifact (text, or JSON with --edit-json)")
    q.add_argument("--edit-json", action="store_true")
    q.add_argument("--as", dest="user", required=True, help="who decides")
    json_flag(q)
    q.set_defaults(func=cmd(_decide(out)))
    q = asub.add_parser("delegate", help="hand a request to someone else")
    q.add_argument("id")
    q.add_argument("--to", required=True)
    q.add_argument("--as", dest="user", required=True)
    q.add_argument("--reason", required=True)
    json_flag(q)
    q.set_defaults(func=cmd(_delegate(out)))

    p = sub.add_parser("users", help="people who can be assigned approvals")
    usub = p.add_subparsers(title="users commands", metavar="ACTION", required=True)
    q = usub.add_parser("add", help="add (or update) a person and their teams")
    q.add_argument("username")
    q.add_argument("--email")
    q.add_argument("--name")
    q.add_argument("--team", action="append", default=[], metavar="TEAM[:ROLE]")
    q.add_argument("--role", action="append", default=[], metavar="[TEAM:]ROLE",
                   help="an access role (designer, operator, viewer, approver, admin) in a "
                   "team, or in every team without TEAM or with *")
    q.add_argument("--password-stdin", action="store_true",
                   help="set a password read from the first line of standard input")
    json_flag(q)
    q.set_defaults(func=cmd(_users_add(out)))
    from app.admin_cli import add_user_commands

    add_user_commands(usub, cmd, json_flag, out)


def approval_view(row: Any, decisions: list[Any]) -> dict[str, Any]:
    return {"id": row.id, "execution_id": row.execution_id, "step_id": row.step_id,
            "process": row.process_name, "title": row.title, "description": row.description,
            "artifacts": row.artifacts, "assignees": row.assignees,
            "required_approvals": row.required_approvals, "status": row.status,
            "deadline": row.deadline, "escalated": row.escalated,
            "decisions": [{"by": d.decided_by, "decision": d.decision, "comment": d.comment,
                           "on_behalf_of": d.on_behalf_of, "at": d.at} for d in decisions]}


def _list(out: Any) -> Any:
    async def run(s: LocalSession, args: argparse.Namespace) -> int:
        if args.mine and not args.user:
            raise ServiceError("--mine needs --as USER")
        rows = await s.container.approvals.list(args.user if args.mine else None,
                                                None if args.all else "pending")
        data = [approval_view(r, d) for r, d in rows]

        def human() -> None:
            if not data:
                print("no pending approval requests")
            for a in data:
                got = sum(1 for d in a["decisions"] if d["decision"] == "approved")
                print(f"{a['id']}  {a['process']}/{a['step_id']}  {a['status']}  "
                      f"{got}/{a['required_approvals']}  due {a['deadline']}  {a['title']}")
        out(args, data, human)
        return 0
    return run


def _decide(out: Any) -> Any:
    async def run(s: LocalSession, args: argparse.Namespace) -> int:
        decision = {"approve": "approved", "reject": "rejected"}.get(args.decision,
                                                                      args.decision)
        edited: Any = args.edit
        if args.edit is not None and args.edit_json:
            try:
                edited = json.loads(args.edit)
            except ValueError as e:
                raise ServiceError(f"--edit is not valid JSON: {e}") from None
        result = await s.container.approvals.decide(args.id, decision, args.user,
                                                    args.comment, edited)
        row, decisions = await s.container.approvals.get(args.id)
        data = {**approval_view(row, decisions), "final": result.final}
        out(args, data, lambda: print(
            f"{args.id}: {decision} by {args.user}; " + (
                f"request {row.status}" if result.final else
                f"{result.approvals_so_far} of {row.required_approvals} approvals so far")))
        return 0
    return run


def _delegate(out: Any) -> Any:
    async def run(s: LocalSession, args: argparse.Namespace) -> int:
        row = await s.container.approvals.delegate(args.id, args.user, args.to, args.reason)
        out(args, {"id": row.id, "delegated_to": args.to},
            lambda: print(f"{row.id}: delegated by {args.user} to {args.to}"))
        return 0
    return run


def _users_add(out: Any) -> Any:
    async def run(s: LocalSession, args: argparse.Namespace) -> int:
        from app.admin_cli import read_password
        from app.commands import cli_actor
        from app.identity import IdentityError

        roles = [_role_spec(spec) for spec in args.role]
        password = read_password(True) if args.password_stdin else None
        actor = cli_actor(s)
        try:
            async with s.container.db.read() as db:
                exists = await db.get(UserRow, args.username) is not None
            if not exists:
                teams = [(t, r or "member") for t, _, r in
                         (spec.partition(":") for spec in args.team)]
                await actor.create_user(args.username, password, email=args.email,
                                        display_name=args.name, roles=roles, teams=teams)
            await _update_user(s, args)
            for team, role in roles if exists else []:
                await actor.grant(args.username, team, role)
            if password is not None and exists:
                await actor.reset_password(args.username, password)
        except IdentityError as e:
            raise ServiceError(str(e)) from None
        out(args, {"username": args.username, "teams": args.team,
                   "roles": [f"{t}:{r}" for t, r in roles]},
            lambda: print(f"user {args.username} saved"))
        return 0
    return run


def _role_spec(spec: str) -> tuple[str, str]:
    team, _, role = spec.rpartition(":")
    return team or "*", role


async def _update_user(s: LocalSession, args: argparse.Namespace) -> None:
    async with s.container.db.write() as db:
        user = await db.get(UserRow, args.username)
        if user is None:
            user = UserRow(username=args.username, created_at=utcnow())
            db.add(user)
        if args.email:
            user.email = args.email
        if args.name:
            user.display_name = args.name
        await db.flush()
        for spec in args.team:
            team, _, role = spec.partition(":")
            member = await db.get(TeamMemberRow, (team, args.username))
            if member is None:
                db.add(TeamMemberRow(team=team, username=args.username,
                                     role=role or "member"))
            else:
                member.role = role or member.role


def add_subscription_commands(sub: Any, cmd: Any, json_flag: Any, out: Any) -> None:
    from app.subscriptions import DELIVERABLE

    p = sub.add_parser("subscriptions", help="outbound webhooks for execution events")
    ssub = p.add_subparsers(title="subscriptions commands", metavar="ACTION", required=True)
    q = ssub.add_parser("add", help="POST events to a URL, signed with HMAC-SHA256")
    q.add_argument("url")
    q.add_argument("--process", help="only this process (default: all)")
    q.add_argument("--events", default=",".join(DELIVERABLE),
                   help=f"comma-separated, from {', '.join(DELIVERABLE)}")
    json_flag(q)
    q.set_defaults(func=cmd(_subscription_add(out)))
    q = ssub.add_parser("list", help="subscriptions")
    json_flag(q)
    q.set_defaults(func=cmd(_subscription_list(out)))
    q = ssub.add_parser("remove", help="stop a subscription")
    q.add_argument("id")
    json_flag(q)
    q.set_defaults(func=cmd(_subscription_remove(out)))


def _subscription_add(out: Any) -> Any:
    async def run(s: LocalSession, args: argparse.Namespace) -> int:
        events = [e.strip() for e in args.events.split(",") if e.strip()]
        row = await s.container.subscriptions.add(args.url, args.process, events)
        data = {"id": row.id, "url": row.url, "process": row.process_name,
                "events": row.events, "secret": row.secret}
        out(args, data, lambda: print(
            f"subscription {row.id} created. Signing secret (shown once): {row.secret}\n"
            "Check X-Trinity-Signature: sha256=HMAC-SHA256(secret, raw body)"))
        return 0
    return run


def _subscription_list(out: Any) -> Any:
    async def run(s: LocalSession, args: argparse.Namespace) -> int:
        rows = await s.container.subscriptions.list()
        data = [{"id": r.id, "url": r.url, "process": r.process_name, "events": r.events,
                 "enabled": r.enabled} for r in rows]

        def human() -> None:
            if not data:
                print("no subscriptions")
            for d in data:
                print(f"{d['id']}  {d['process'] or '*'}  {d['url']}  "
                      f"{','.join(d['events'] or [])}")
        out(args, data, human)
        return 0
    return run


def _subscription_remove(out: Any) -> Any:
    async def run(s: LocalSession, args: argparse.Namespace) -> int:
        await s.container.subscriptions.remove(args.id)
        out(args, {"id": args.id, "removed": True}, lambda: print(f"{args.id} removed"))
        return 0
    return run
