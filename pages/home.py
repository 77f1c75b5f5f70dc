"""`/`: the signed-in user's starting point (the first-run welcome comes with the catalog)."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from pages.shell import frame, page_actor, to_login

__all__ = ["register"]


def register() -> None:
    from nicegui import ui

    @ui.page("/")
    async def home(request: Request) -> Any:
        actor = await page_actor(request)
        if actor is None:
            return to_login(request)
        with frame(actor, "Home", active="/"):
            ui.label(f"Welcome, {actor.p.display_name or actor.p.username}").classes(
                "text-2xl font-semibold").props('data-testid="home-title"')
            pending = await actor.inbox()
            with ui.row().classes("gap-4"):
                with ui.card().classes("p-4"):
                    ui.label("Waiting for your decision").classes("text-sm text-slate-500")
                    ui.link(str(len(pending)), "/inbox").classes("text-3xl font-bold").props(
                        'data-testid="home-inbox-count"')
                with ui.card().classes("p-4"):
                    ui.label("Recent executions").classes("text-sm text-slate-500")
                    recent = await actor.executions(limit=5)
                    if not recent:
                        ui.label("None yet: start a process from the catalog.")
                    for row in recent:
                        ui.link(f"{row.process_name} · {row.status}",
                                f"/executions/{row.id}")
        return None
