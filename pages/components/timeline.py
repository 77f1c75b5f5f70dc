"""The attempt timeline (a Gantt chart): one bar per step attempt, on a shared time axis from
the execution's start, coloured by outcome. Plain HTML, so it reads without a chart library
and every bar carries its times and error as text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pages.components.status import duration_text

__all__ = ["Bar", "bars_from_runs", "timeline"]


@dataclass(frozen=True)
class Bar:
    step_id: str
    label: str
    status: str
    start: float  # seconds after the origin
    end: float
    detail: str


def bars_from_runs(runs: Sequence[Any], names: dict[str, str], origin: datetime | None,
                   now: datetime) -> list[Bar]:
    """Bars from step-run rows (`app.tables.StepRunRow`); a running attempt ends at `now`."""
    started = [r.started_at for r in runs if r.started_at is not None]
    if origin is None and not started:
        return []
    origin = origin or min(started)
    out = []
    for r in runs:
        if r.started_at is None:
            continue
        end = r.finished_at or now
        visit = f" (pass {r.visit})" if r.visit > 1 else ""
        detail = f"{r.status}, {duration_text((end - r.started_at).total_seconds())}"
        if r.error_code:
            detail += f": {r.error_code} {r.error_message or ''}".rstrip()
        out.append(Bar(r.step_id, f"{names.get(r.step_id, r.step_id)} · attempt {r.attempt}"
                       f"{visit}", r.status, (r.started_at - origin).total_seconds(),
                       (end - origin).total_seconds(), detail))
    return out


def timeline(bars: Sequence[Bar]) -> None:
    from nicegui import ui

    if not bars:
        ui.label("No step has run yet.").classes("text-sm text-slate-500")
        return
    total = max(max(b.end for b in bars), 0.001)
    with ui.column().classes("w-full gap-1").props('data-testid="timeline" role="list"'):
        for b in bars:
            left = 100 * b.start / total
            width = max(100 * (b.end - b.start) / total, 0.6)
            with ui.row().classes("w-full items-center no-wrap gap-2").props('role="listitem"'):
                ui.label(b.label).classes("text-xs w-56 shrink-0 truncate").props(
                    f'title="{b.label}"')
                with ui.element("div").classes("relative grow h-4 rounded bg-slate-100"):
                    ui.element("div").classes(f"absolute h-4 rounded status-{b.status}").style(
                        f"left:{left:.2f}%;width:{width:.2f}%;"
                        "background-color:currentColor;opacity:.8").props(
                        f'title="{b.detail}" aria-label="{b.detail}"')
                ui.label(b.detail).classes("text-xs text-slate-500 w-72 shrink-0 truncate")
        ui.label(f"0 s … {duration_text(total)} after the start").classes(
            "text-xs text-slate-400")
