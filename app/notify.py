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

__all__ = ["Notifier", "NotifyError", "SmtpSettings", "render", "substitute_env"]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TLS_MODES = ("none", "starttls", "ssl")
_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")


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


def render(template: str | None, context: Mapping[str, Any]) -> str:
    """A notification field: ${VAR} is read from the environment in the text the process
    author wrote, before any value is filled in, so input that looks like ${SECRET} is
    sent as written and can never read the worker's environment."""
    from engine.expressions import render_template

    if not template:
        return ""
    return render_template(substitute_env(template), context).text


@dataclass
class Notifier:
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    default_webhook: str | None = None
    timeout: float = 30.0
    _client: httpx.AsyncClient | None = None

    async def send(self, channel: str, message: str, url: str | None = None,
                   recipients: Sequence[str] = (), subject: str | None = None,
                   context: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Deliver one message as given (see `render` for ${VAR} and templates); returns
        what was delivered (the step output)."""
        if channel == "email":
            to = list(recipients)
            await asyncio.to_thread(self._send_email, to, subject or "Trinity notification",
                                    message)
            return {"channel": "email", "recipients": to, "status": "sent"}
        target = _checked_url(channel, self._url(channel, url))
        payload: dict[str, Any] = {"text": message}
        if channel == "webhook":
            payload = {"message": message, "subject": subject, **dict(context or {})}
        await self._post(target, payload)
        return {"channel": channel, "status": "sent"}

    def _url(self, channel: str, url: str | None) -> str:
        if url:
            return url
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
        except httpx.HTTPError as e:  # in case its text ever quotes the URL
            raise NotifyError("NOTIFICATION_FAILED", f"cannot reach {_host(url)}: "
                              f"{_without(str(e) or type(e).__name__, url)}", True) from None
        if response.status_code >= 400:
            retryable = response.status_code >= 500 or response.status_code == 429
            raise NotifyError("NOTIFICATION_FAILED", f"{_host(url)} answered "
                              f"{response.status_code}: {response.text[:200]}", retryable)

    def _send_email(self, to: Sequence[str], subject: str, body: str) -> None:
        s = self.smtp
        if not s.host:
            raise NotifyError("INVALID_CONFIG", "email needs TRINITY_SMTP_HOST", False)
        if s.tls not in _TLS_MODES:  # a typo must not silently send in plain text
            raise NotifyError("INVALID_CONFIG", f"TRINITY_SMTP_TLS is '{s.tls}'; use one of "
                              + ", ".join(_TLS_MODES), False)
        if not to:
            raise NotifyError("INVALID_CONFIG", "email needs recipients", False)
        msg = _email(s.sender, to, subject, body)
        where = f"the SMTP server {s.host}:{s.port}"
        try:
            with self._smtp() as server:
                if s.username:
                    server.login(s.username, s.password or "")
                server.send_message(msg)
        except smtplib.SMTPAuthenticationError as e:
            raise NotifyError("NOTIFICATION_FAILED", f"email not sent: {where} rejected the "
                              f"login of '{s.username}' ({_reply(e)}); check "
                              "TRINITY_SMTP_USER and TRINITY_SMTP_PASSWORD",
                              e.smtp_code < 500) from None
        except (OSError, smtplib.SMTPException) as e:
            raise NotifyError("NOTIFICATION_FAILED", f"email not sent via {where}: {_reply(e)}",
                              _smtp_retryable(e)) from None

    def _smtp(self) -> smtplib.SMTP:
        s = self.smtp
        if s.tls == "ssl":
            return smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                    context=ssl.create_default_context())
        server = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        if s.tls == "starttls":
            try:
                server.starttls(context=ssl.create_default_context())
            except smtplib.SMTPNotSupportedError:
                server.close()
                raise smtplib.SMTPNotSupportedError(
                    "TRINITY_SMTP_TLS is starttls but the server does not offer STARTTLS"
                ) from None
            except BaseException:
                server.close()
                raise
        return server

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _host(url: str) -> str:
    """The host alone: never log the full URL, webhook URLs hold secrets."""
    try:
        return httpx.URL(url).host or "an invalid URL"
    except httpx.InvalidURL:
        return "an invalid URL"


def _without(text: str, url: str) -> str:
    return text.replace(url, _host(url))


def _checked_url(channel: str, url: str) -> str:
    """A URL that cannot work is a configuration error, not something to retry."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise NotifyError("INVALID_CONFIG", f"the {channel} URL is not an http(s) URL with a "
                          f"host (host: {_host(url)})", False)
    return url


def _email(sender: str, to: Sequence[str], subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    # a rendered subject may carry line breaks from input; a header cannot
    msg["Subject"] = _LINE_BREAKS.sub(" ", subject).strip()
    try:
        msg["From"], msg["To"] = sender, ", ".join(to)
    except ValueError as e:  # e.g. a line break in a rendered recipient
        raise NotifyError("INVALID_CONFIG", f"invalid sender or recipients: {e}",
                          False) from None
    msg.set_content(body)
    return msg


def _reply(e: Exception) -> str:
    """An SMTP answer as `535 5.7.8 text`, not a tuple of bytes."""
    if isinstance(e, smtplib.SMTPResponseException):
        error = e.smtp_error
        text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
        return f"{e.smtp_code} {text}"
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        return "recipients refused: " + ", ".join(
            f"{r} ({code} {msg.decode(errors='replace')})"
            for r, (code, msg) in e.recipients.items())
    return str(e) or type(e).__name__


def _smtp_retryable(e: Exception) -> bool:
    """SMTP says it itself: 4xx is temporary, 5xx is permanent."""
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        return all(code < 500 for code, _msg in e.recipients.values())
    if isinstance(e, smtplib.SMTPResponseException):
        return e.smtp_code < 500
    return not isinstance(e, smtplib.SMTPNotSupportedError)
