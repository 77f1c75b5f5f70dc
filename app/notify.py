"""Notification channels: webhook (JSON POST), Slack (incoming-webhook format), email (SMTP)."""

from __future__ import annotations

import asyncio
import os
import re
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx

__all__ = ["Notifier", "NotifyError", "SmtpSettings", "substitute_env"]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class NotifyError(Exception):
    def __init__(self, code: str, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.code, self.message, self.retryable = code, message, retryable


@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""
    port: int = 25
    username: str | None = None
    password: str | None = None
    tls: str = "none"  # none | starttls | ssl
    sender: str = "trinity@localhost"
    timeout: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SmtpSettings:
        env = os.environ if env is None else env
        return cls(host=env.get("TRINITY_SMTP_HOST", ""),
                   port=int(env.get("TRINITY_SMTP_PORT", "25") or 25),
                   username=env.get("TRINITY_SMTP_USER") or None,
                   password=env.get("TRINITY_SMTP_PASSWORD") or None,
                   tls=env.get("TRINITY_SMTP_TLS", "none").lower(),
                   sender=env.get("TRINITY_SMTP_FROM", "trinity@localhost"))


def substitute_env(text: str, env: Mapping[str, str] | None = None) -> str:
    """Replace ${NAME} with the environment variable; a missing one is an error."""
    env = os.environ if env is None else env

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise NotifyError("INVALID_CONFIG", f"environment variable {name} is not set",
                              False)
        return env[name]

    return _ENV.sub(value, text)


@dataclass
class Notifier:
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    default_webhook: str | None = None
    timeout: float = 30.0
    _client: httpx.AsyncClient | None = None

    async def send(self, channel: str, message: str, url: str | None = None,
                   recipients: Sequence[str] = (), subject: str | None = None,
                   context: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Deliver one message; returns what was delivered (the step output)."""
        message = substitute_env(message)
        if channel == "email":
            to = [substitute_env(r) for r in recipients]
            await asyncio.to_thread(self._send_email, to, subject or "Trinity notification",
                                    message)
            return {"channel": "email", "recipients": to, "status": "sent"}
        target = self._url(channel, url)
        payload: dict[str, Any] = {"text": message}
        if channel == "webhook":
            payload = {"message": message, "subject": subject, **dict(context or {})}
        await self._post(target, payload)
        return {"channel": channel, "status": "sent"}

    def _url(self, channel: str, url: str | None) -> str:
        if url:
            return substitute_env(url)
        fallback = os.environ.get("SLACK_WEBHOOK_URL") if channel == "slack" else None
        fallback = fallback or self.default_webhook
        if not fallback:
            raise NotifyError("INVALID_CONFIG", f"the {channel} channel has no webhook_url and "
                              "no default is configured (TRINITY_WEBHOOK_URL"
                              + (" or SLACK_WEBHOOK_URL)" if channel == "slack" else ")"), False)
        return fallback

    async def _post(self, url: str, payload: Mapping[str, Any]) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        try:
            response = await self._client.post(url, json=payload)
        except httpx.TimeoutException:
            raise NotifyError("TIMEOUT", f"no answer from {_host(url)}", True) from None
        except httpx.HTTPError as e:
            raise NotifyError("NOTIFICATION_FAILED", f"cannot reach {_host(url)}: {e}",
                              True) from None
        if response.status_code >= 400:
            retryable = response.status_code >= 500 or response.status_code == 429
            raise NotifyError("NOTIFICATION_FAILED", f"{_host(url)} answered "
                              f"{response.status_code}: {response.text[:200]}", retryable)

    def _send_email(self, to: Sequence[str], subject: str, body: str) -> None:
        if not self.smtp.host:
            raise NotifyError("INVALID_CONFIG", "email needs TRINITY_SMTP_HOST", False)
        if not to:
            raise NotifyError("INVALID_CONFIG", "email needs recipients", False)
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.smtp.sender, ", ".join(to), subject
        msg.set_content(body)
        try:
            with self._smtp() as server:
                if self.smtp.username:
                    server.login(self.smtp.username, self.smtp.password or "")
                server.send_message(msg)
        except (OSError, smtplib.SMTPException) as e:
            retryable = not isinstance(e, smtplib.SMTPRecipientsRefused)
            raise NotifyError("NOTIFICATION_FAILED", f"email not sent: {e}", retryable) from None

    def _smtp(self) -> smtplib.SMTP:
        s = self.smtp
        if s.tls == "ssl":
            return smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                    context=ssl.create_default_context())
        server = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        if s.tls == "starttls":
            server.starttls(context=ssl.create_default_context())
        return server

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _host(url: str) -> str:
    return httpx.URL(url).host or url  # never log the full URL: webhook URLs hold secrets
