"""`/audit`: the audit log for administrators — filter, page back in time, export the
filtered entries as CSV, and verify the hash chain.

Reading goes through `actor.audit_log` (admins only; a refusal is itself audited). Exports
and verifications are recorded too, so the log says who looked at it in bulk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request

from app.audit import to_csv
from app.security import Denied, Permission
from pages.errors import refuse
from pages.shell import frame, page_actor, to_login, when

__all__ = ["register"]

PAGE_SIZE = 50
EXPORT_LIMIT = 100_000


def register() -> None:
    from nicegui import ui

    @ui.page("/audit")
    async def audit_page(request: Request) -> Any:
        actor = await page_actor(request)
        if actor is None:
            return to_login(request)
        if not actor.p.is_admin:
            await refuse(actor, "the audit log", Permission.AUDIT_READ, "/audit")
            return None
        with frame(actor, "Audit log", active="/audit"):
            await AuditView(actor).render()
        return None


class FilterError(ValueError):
    pass


@dataclass
class Filters:
    actor: str = ""
    action: str = ""
    resource: str = ""
    since: str = ""
    until: str = ""
    cursors: list[int] = field(default_factory=list)  # before_seq of each older page

    def query(self) -> dict[str, Any]:
        """Keyword arguments for `actor.audit_log`; FilterError names a bad field."""
        return {"actor": (self.actor or "").strip() or None,
                "action": (self.action or "").strip() or None,
                "resource": (self.resource or "").strip() or None,
                "since": parse_time(self.since or "", "From"),
                "until": parse_time(self.until or "", "Until", end=True)}


def parse_time(text: str, label: str, end: bool = False) -> datetime | None:
    """'2026-11-28' or '2026-11-28 14:30' (UTC); a bare date as `until` means its end."""
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("T", " "))
    except ValueError:
        raise FilterError(f"{label}: write a date like 2026-11-28 or 2026-11-28 14:30") \
            from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if end and len(text) <= 10:
        value += timedelta(days=1) - timedelta(microseconds=1)
    return value


# The guard reads the log; verifying and exporting are recorded like other admin actions.

async def verify_chain(actor: Any) -> tuple[int, Any]:
    if not actor.p.is_admin:
        await actor.denied(Permission.AUDIT_READ.value, "audit", "verify")
        raise Denied("only administrators verify the audit log", Permission.AUDIT_READ)
    checked, breach = await actor.g.audit.verify()
    await actor.g.audit.append(
        actor.p.username, "audit.verified", "audit", "log",
        {"checked": checked, **({"breach_seq": breach.seq} if breach else {})},
        outcome="ok" if breach is None else "failed", context=actor.ctx)
    return checked, breach


async def export_csv(actor: Any, filters: dict[str, Any]) -> tuple[str, int]:
    rows = await actor.audit_log(**filters, limit=EXPORT_LIMIT)
    await actor.g.audit.append(actor.p.username, "audit.exported", "audit", "log",
                               {"rows": len(rows), **{k: str(v) for k, v in filters.items()
                                                      if v is not None}}, context=actor.ctx)
    return to_csv(rows), len(rows)


class AuditView:
    def __init__(self, actor: Any) -> None:
        self.actor = actor
        self.filters = Filters()
        self.table: Any = None
        self.verdict: Any = None

    async def render(self) -> None:
        from nicegui import ui

        with ui.row().classes("w-full items-center justify-between"):
            ui.label("Audit log").classes("text-2xl font-semibold")
            with ui.row().classes("gap-2"):
                ui.button("Export CSV", icon="download", on_click=self.export).props(
                    'outline data-testid="audit-export"')
                ui.button("Verify chain", icon="verified", on_click=self.verify).props(
                    'data-testid="audit-verify"')
        self.verdict = ui.label("").classes("text-sm").props(
            'role=status data-testid="audit-verdict"')
        self.verdict.set_visibility(False)
        self._filter_bar()
        self.table = ui.refreshable(self._table)
        await self.table()

    def _filter_bar(self) -> None:
        from nicegui import ui

        f = self.filters
        with ui.row().classes("items-end gap-2 w-full"):
            for key, label, hint in (("actor", "Actor", "username"),
                                     ("action", "Action starts with", "e.g. auth. or user."),
                                     ("resource", "Resource", "type or type:id"),
                                     ("since", "From (UTC)", "2026-11-28 09:00"),
                                     ("until", "Until (UTC)", "2026-11-28")):
                box = ui.input(label, placeholder=hint).bind_value(f, key).props(
                    f'dense clearable data-testid="audit-filter-{key}"').classes("w-44")
                box.on("keydown.enter", self.apply)
            ui.button("Apply", icon="filter_alt", on_click=self.apply).props(
                'data-testid="audit-apply"')
            ui.button("Clear", on_click=self.clear).props('flat data-testid="audit-clear"')

    async def apply(self) -> None:
        self.filters.cursors.clear()
        self.table.refresh()

    async def clear(self) -> None:
        for key in ("actor", "action", "resource", "since", "until"):
            setattr(self.filters, key, "")  # the bound inputs follow
        self.filters.cursors.clear()
        self.table.refresh()

    async def _table(self) -> None:
        from nicegui import ui

        f = self.filters
        try:
            query = f.query()
        except FilterError as e:
            ui.label(str(e)).classes("text-red-700").props(
                'role=alert data-testid="audit-filter-error"')
            return
        before = f.cursors[-1] if f.cursors else None
        rows = await self.actor.audit_log(**query, limit=PAGE_SIZE + 1, before_seq=before)
        more, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
        if not rows:
            ui.label("No entries match these filters." if any(query.values()) or before
                     else "The audit log is empty.").classes("text-slate-500").props(
                'data-testid="audit-empty"')
        else:
            t = ui.table(columns=COLUMNS, rows=[entry_view(r) for r in rows],
                         row_key="seq").classes("w-full")
            t.props('flat bordered dense data-testid="audit-table" '
                    ':pagination="{rowsPerPage: 0}" hide-pagination')
        with ui.row().classes("items-center gap-2"):
            if f.cursors:
                ui.button("Newest", icon="first_page", on_click=self.newest).props(
                    'flat data-testid="audit-newest"')
            if more:
                ui.button("Older", icon="chevron_right",
                          on_click=lambda: self.older(rows[-1].seq)).props(
                    'flat data-testid="audit-older"')
            if rows:
                ui.label(f"entries {rows[0].seq} … {rows[-1].seq}").classes(
                    "text-xs text-slate-500").props('data-testid="audit-range"')

    def older(self, seq: int) -> None:
        self.filters.cursors.append(seq)
        self.table.refresh()

    def newest(self) -> None:
        self.filters.cursors.clear()
        self.table.refresh()

    async def export(self) -> None:
        from nicegui import ui

        try:
            query = self.filters.query()
        except FilterError as e:
            ui.notify(str(e), type="warning")
            return
        text, count = await export_csv(self.actor, query)
        stamp = self.actor.g.audit.clock().strftime("%Y%m%d-%H%M%S")
        ui.download(text.encode(), f"trinity-audit-{stamp}.csv", "text/csv")
        ui.notify(f"Exported {count} entries")

    async def verify(self) -> None:
        checked, breach = await verify_chain(self.actor)
        if breach is None:
            self.verdict.text = f"The chain is intact: {checked} entries checked."
            self.verdict.classes(replace="text-sm text-green-800")
        else:
            self.verdict.text = (f"The chain is broken at entry {breach.seq}: {breach.reason} "
                                 f"({checked} entries before it are intact).")
            self.verdict.classes(replace="text-sm text-red-700 font-semibold")
        self.verdict.set_visibility(True)


def entry_view(r: Any) -> dict[str, Any]:
    return {"seq": r.seq, "at": when(r.at), "actor": r.actor, "action": r.action,
            "resource": f"{r.resource_type}:{r.resource_id}", "outcome": r.outcome,
            "details": summarize(r.details or {}), "ip": r.ip or ""}


def summarize(details: dict[str, Any], limit: int = 90) -> str:
    parts = []
    for key, value in details.items():
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        parts.append(f"{key}={shown}")
    text = ", ".join(parts)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _col(name: str, label: str) -> dict[str, Any]:
    return {"name": name, "label": label, "field": name, "align": "left"}


COLUMNS = [_col("seq", "#"), _col("at", "Time"), _col("actor", "Actor"),
           _col("action", "Action"), _col("resource", "Resource"),
           _col("outcome", "Outcome"), _col("details", "Details"), _col("ip", "IP")]
