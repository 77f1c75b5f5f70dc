"""`GET /metrics` in the Prometheus text format (written here: no extra dependency).

It needs an administrator's API token (`Authorization: Bearer trp_…`): the numbers tell how
busy each process is, which is not for everyone, and a scraper sends a bearer token easily.
Everything is read when scraped: executions by status, recent step durations, the queue's
depth, pending approvals and whether a worker is alive.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import func, select
from sqlmodel import col

from app.repositories import ExecutionRepository
from app.rest.auth import authenticator
from app.rest.errors import guarded_route_class
from app.tables import ApprovalRow, StepRunRow

__all__ = ["build_metrics_router", "render"]

WINDOW = timedelta(minutes=10)
QUANTILES = (0.5, 0.9, 0.99)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Sample = tuple[dict[str, str], float]


def build_metrics_router(c: Any) -> APIRouter:
    router = APIRouter(route_class=guarded_route_class(authenticator(c)))

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> PlainTextResponse:
        await request.state.actor.require_admin_view("metrics", "prometheus")
        return PlainTextResponse(await collect(c), media_type=CONTENT_TYPE)

    return router


async def collect(c: Any) -> str:
    async with c.db.read() as s:
        by_status = await ExecutionRepository(s).count_by_status()
        since = c.runtime.clock() - WINDOW
        runs = (await s.execute(select(col(StepRunRow.status), col(StepRunRow.started_at),
                                       col(StepRunRow.finished_at)).where(
            col(StepRunRow.finished_at) >= since))).all()
        pending = (await s.execute(select(func.count()).select_from(ApprovalRow).where(
            col(ApprovalRow.status) == "pending"))).scalar() or 0
    queued = await c.redis.zcard(c.settings.queue_name)
    alive = await c.redis.exists(f"{c.settings.queue_name}:health-check")
    durations: dict[str, list[float]] = {}
    for status, started, finished in runs:
        if started is not None and finished is not None:
            durations.setdefault(status, []).append((finished - started).total_seconds())
    return "".join([
        render("trinity_executions", "gauge", "Executions by status.",
               [({"status": k}, float(v)) for k, v in sorted(by_status.items())]),
        summary("trinity_step_duration_seconds",
                f"Step attempts finished in the last {int(WINDOW.total_seconds())} s, "
                "by final status.", durations),
        render("trinity_queue_depth", "gauge", "Jobs waiting in the arq queue.",
               [({}, float(queued))]),
        render("trinity_approvals_pending", "gauge", "Approval requests waiting.",
               [({}, float(pending))]),
        render("trinity_worker_alive", "gauge",
               "1 when at least one worker's health check is fresh.",
               [({}, 1.0 if alive else 0.0)]),
    ])


def render(name: str, kind: str, help_text: str, samples: Iterable[Sample],
           suffix: str = "") -> str:
    lines = [f"# HELP {name} {_escape_help(help_text)}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{suffix}{_labels(labels)} {_number(value)}" for labels, value in samples]
    return "\n".join(lines) + "\n"


def summary(name: str, help_text: str, durations: Mapping[str, Sequence[float]]) -> str:
    samples: list[str] = []
    for status, values in sorted(durations.items()):
        ordered = sorted(values)
        for q in QUANTILES:
            labels = {"status": status, "quantile": str(q)}
            samples.append(f"{name}{_labels(labels)} {_number(_quantile(ordered, q))}")
        samples.append(f"{name}_sum{_labels({'status': status})} {_number(sum(ordered))}")
        samples.append(f"{name}_count{_labels({'status': status})} {len(ordered)}")
    head = [f"# HELP {name} {_escape_help(help_text)}", f"# TYPE {name} summary"]
    return "\n".join(head + samples) + "\n"


def _quantile(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    body = ",".join(f'{k}="{_escape_value(v)}"' for k, v in labels.items())
    return "{" + body + "}"


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
