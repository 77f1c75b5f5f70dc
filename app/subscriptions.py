"""Outbound event webhooks: a process (or the whole installation) subscribes URLs to
execution events; each delivery is a JSON POST signed with HMAC-SHA256 and retried."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

import httpx
from sqlalchemy import delete, select

from app.runtime import new_id, utcnow
from app.services import ServiceError
from app.tables import SubscriptionRow
from engine.events import Event

__all__ = ["DELIVERABLE", "SubscriptionService", "sign"]

log = logging.getLogger("trinity.subscriptions")
DELIVERABLE = ("execution_completed", "execution_failed", "execution_cancelled",
               "approval_requested", "step_failed")
CACHE_SECONDS = 5.0


def sign(secret: str, body: bytes) -> str:
    """The X-Trinity-Signature header value: sha256=<hex HMAC of the raw body>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class SubscriptionService:
    def __init__(self, db: Any, dispatcher: Any) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self._cache: tuple[float, list[SubscriptionRow]] | None = None
        self._client: httpx.AsyncClient | None = None

    async def add(self, url: str, process_name: str | None = None,
                  events: Sequence[str] = DELIVERABLE, secret: str | None = None
                  ) -> SubscriptionRow:
        if not url.startswith(("http://", "https://")):
            raise ServiceError(f"'{url}' is not an http(s) URL")
        unknown = sorted(set(events) - set(DELIVERABLE))
        if unknown:
            raise ServiceError(f"unknown event(s) {', '.join(unknown)}; choose from "
                               f"{', '.join(DELIVERABLE)}")
        row = SubscriptionRow(id=new_id(), url=url, process_name=process_name,
                              events=list(events), secret=secret or secrets.token_hex(24),
                              created_at=utcnow())
        async with self.db.write() as s:
            s.add(row)
        self._cache = None
        return row

    async def remove(self, subscription_id: str) -> None:
        async with self.db.write() as s:
            done = await s.execute(delete(SubscriptionRow).where(
                SubscriptionRow.id == subscription_id))
        if not done.rowcount:  # type: ignore[attr-defined]
            raise ServiceError(f"no subscription with id '{subscription_id}'")
        self._cache = None

    async def list(self) -> list[SubscriptionRow]:
        async with self.db.read() as s:
            return list((await s.execute(select(SubscriptionRow))).scalars())

    async def fan_out(self, execution: Any, events: Sequence[Event]) -> None:
        """Enqueue one delivery job per matching subscription and event (after commit)."""
        wanted = [e for e in events if e.name in DELIVERABLE]
        if not wanted:
            return
        for sub in await self._active():
            if sub.process_name not in (None, execution.process_name):
                continue
            for e in wanted:
                if e.name not in (sub.events or DELIVERABLE):
                    continue
                payload = {"event": e.name, "execution_id": execution.id,
                           "process": execution.process_name,
                           "version": execution.process_version, "status":
                           execution.status.value, "data": e.to_dict()}
                seq = execution.event_count
                await self.dispatcher.enqueue(
                    "deliver_event", f"deliver:{sub.id}:{execution.id}:{e.name}:{seq}",
                    (sub.id, payload))

    async def deliver(self, subscription_id: str, payload: dict[str, Any],
                      attempt: int) -> None:
        """POST once; raises to make the job retry (arq backs off)."""
        async with self.db.read() as s:
            sub = await s.get(SubscriptionRow, subscription_id)
        if sub is None or not sub.enabled:
            return
        body = json.dumps(payload, default=str).encode()
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=15)
        response = await self._client.post(sub.url, content=body, headers={
            "Content-Type": "application/json", "X-Trinity-Event": payload["event"],
            "X-Trinity-Signature": sign(sub.secret, body),
            "X-Trinity-Delivery-Attempt": str(attempt)})
        if response.status_code >= 300:
            raise RuntimeError(f"{httpx.URL(sub.url).host} answered {response.status_code}")

    async def _active(self) -> list[SubscriptionRow]:
        now = time.monotonic()
        if self._cache is None or now - self._cache[0] > CACHE_SECONDS:
            async with self.db.read() as s:
                rows = list((await s.execute(select(SubscriptionRow).where(
                    SubscriptionRow.enabled == True))).scalars())  # noqa: E712
            self._cache = (now, rows)
        return self._cache[1]

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
