"""Status chips and the words the pages use for statuses, skip reasons, times and money."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["STATUS_WORDS", "ago", "duration_text", "money", "skip_words", "status_chip",
           "until"]

STATUS_WORDS = {
    "pending": "pending", "queued": "queued", "running": "running",
    "retrying": "waiting to retry", "waiting_approval": "waiting for approval",
    "waiting_timer": "waiting for a timer", "waiting_subprocess": "waiting for a sub-process",
    "completed": "completed", "failed": "failed", "skipped": "skipped",
    "cancelled": "cancelled", "paused": "paused", "draft": "draft",
    "published": "published", "archived": "archived", "approved": "approved",
    "rejected": "rejected", "needs_changes": "changes requested", "timed_out": "timed out",
}
_ICONS = {"completed": "check_circle", "failed": "error", "running": "autorenew",
          "waiting_approval": "how_to_reg", "waiting_timer": "schedule", "retrying": "replay",
          "cancelled": "block", "skipped": "redo", "paused": "pause_circle",
          "queued": "hourglass_top", "pending": "radio_button_unchecked"}


def status_chip(status: str, testid: str | None = None) -> Any:
    """A coloured pill with an icon and the status in words (colour is never the only cue)."""
    from nicegui import ui

    with ui.element("span").classes(f"status-chip status-{status} inline-flex items-center "
                                    "gap-1 whitespace-nowrap").props(
            f'data-status="{status}"' + (f' data-testid="{testid}"' if testid else "")) as chip:
        ui.icon(_ICONS.get(status, "circle")).classes("text-xs")
        ui.label(STATUS_WORDS.get(status, status.replace("_", " ")))
    return chip


def skip_words(reason: str | None, detail: str | None = None) -> str:
    """Why a step was skipped, as a sentence."""
    base = {
        "condition_not_met": "its condition was false",
        "route_not_taken": "the gateway chose another route",
        "upstream_skipped": "the steps before it were skipped",
        "error_skipped": "it failed and on_error says skip_step",
        "timeout_skipped": "nobody decided before the deadline (on_timeout: skip)",
    }.get(reason or "", reason or "no reason recorded")
    return f"skipped: {base}" + (f" ({detail})" if detail else "")


def money(value: Any) -> str:
    try:
        amount = Decimal(str(value or "0"))
    except InvalidOperation:
        return str(value)
    if amount and abs(amount) < Decimal("0.01"):
        return f"${amount:.4f}"
    return f"${amount:.2f}"


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "—"
    return f"{duration_text((now - when).total_seconds())} ago"


def until(when: datetime | None, now: datetime) -> str:
    """A due time in words: 'in 3 h' or 'overdue by 5 min'."""
    if when is None:
        return "no deadline"
    left = (when - now).total_seconds()
    if left < 0:
        return f"overdue by {duration_text(-left)}"
    return f"due in {duration_text(left)}"


def seconds_between(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return max((b - a) / timedelta(seconds=1), 0.0)


__all__ += ["seconds_between"]
