"""Notification steps against real channels: a real SMTP server (aiosmtpd), a real HTTP
receiver, the real runtime and a real arq worker. SQLite only: the channels, not the
database, are under test here."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from app.notify import Notifier, NotifyError, SmtpSettings
from app.settings import Settings
from tests.integration.conftest import make_settings, wait_terminal
from tests.support.http import Receiver

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")]

SMTP_USER = "trinity-mailer"
SMTP_PASSWORD = "correct horse battery staple"
SENDER = "Trinity Bot <trinity@example.org>"


# --- a real SMTP server ---------------------------------------------------------------------

@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None

    @property
    def body(self) -> str:
        return str(self.message.get_content()).strip()


@dataclass
class MailServer:
    host: str
    port: int
    received: list[Mail] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content or envelope.content,
                                     policy=policy.default)
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        self.received.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message,
                                  login))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


def _accept_one_user(server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode()
          and auth_data.password == SMTP_PASSWORD.encode())
    # handled=False: aiosmtpd then answers 535 itself instead of leaving the client waiting
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    """Requires AUTH (without TLS, as in a lab): a message only arrives with the right login."""
    server = MailServer("127.0.0.1", _free_port())
    controller = Controller(server, hostname=server.host, port=server.port,
                            authenticator=_accept_one_user, auth_required=True,
                            auth_require_tls=False)
    controller.start()
    yield server
    controller.stop()


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


# Parametrize these by name in a test to change what the worker is configured with.
@pytest.fixture
def smtp_password() -> str:
    return SMTP_PASSWORD


@pytest.fixture
def smtp_state() -> str:
    return "up"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'trinity.db'}"


@pytest.fixture
def settings(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             mail_server: MailServer, hooks: Receiver, smtp_password: str,
             smtp_state: str) -> Settings:
    """The worker reads SMTP settings from the environment when it boots: set them first."""
    port = mail_server.port if smtp_state == "up" else _free_port()  # nobody listens there
    monkeypatch.setenv("TRINITY_SMTP_HOST", mail_server.host)
    monkeypatch.setenv("TRINITY_SMTP_PORT", str(port))
    monkeypatch.setenv("TRINITY_SMTP_USER", SMTP_USER)
    monkeypatch.setenv("TRINITY_SMTP_PASSWORD", smtp_password)
    monkeypatch.setenv("TRINITY_SMTP_TLS", "none")
    monkeypatch.setenv("TRINITY_SMTP_FROM", SENDER)
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    return replace(make_settings(database_url, tmp_path / "home"),
                   webhook_url=f"{hooks.url}/default")


async def _run(c: Any, text: str, data: dict[str, Any] | None = None) -> Any:
    imported = await c.definitions.import_text(text, publish=True)
    x = await c.executions.start(imported.row, data or {}, "test")
    return await wait_terminal(c, x.id, timeout=30)


def _attempts(final: Any, step_id: str) -> list[tuple[str, str | None]]:
    return [(a.status, a.error_code) for a in final.steps[step_id].attempts]


# --- email ---------------------------------------------------------------------------------

EMAIL = """
name: mail-report
input:
  customer: {type: string, required: true}
  contact: {type: string, required: true}
steps:
  - id: tell
    type: notification
    channel: email
    recipients: ["{{input.contact}}", ops@example.org]
    subject: "Report for {{input.customer}}"
    template: "Hello {{input.customer}}, your report is ready."
    retry: {max_attempts: 2, initial_delay: 0.2s}
"""


async def test_an_email_step_sends_the_rendered_mail_through_smtp_with_the_login(
        container: Any, in_process_worker: Any, mail_server: MailServer) -> None:
    final = await _run(container, EMAIL, {"customer": "ACME", "contact": "jo@acme.test"})

    assert final.status.value == "completed", final.error
    [mail] = mail_server.received
    assert mail.rcpt_tos == ["jo@acme.test", "ops@example.org"]
    assert mail.message["To"] == "jo@acme.test, ops@example.org"
    assert mail.message["Subject"] == "Report for ACME"
    assert mail.message["From"] == SENDER
    assert mail.body == "Hello ACME, your report is ready."
    assert mail.login == SMTP_USER
    assert final.steps["tell"].output["sent"] == [
        {"channel": "email", "recipients": ["jo@acme.test", "ops@example.org"],
         "status": "sent"}]


@pytest.mark.parametrize("smtp_password", ["wrong password"])
async def test_a_wrong_smtp_password_fails_the_step_clearly_and_sends_nothing(
        container: Any, in_process_worker: Any, mail_server: MailServer) -> None:
    final = await _run(container, EMAIL, {"customer": "ACME", "contact": "jo@acme.test"})

    assert final.status.value == "failed"
    error = final.steps["tell"].error
    assert error["code"] == "NOTIFICATION_FAILED"
    assert "rejected the login" in error["message"] and SMTP_USER in error["message"]
    assert "wrong password" not in error["message"]
    assert mail_server.received == []
    # a rejected password does not get better by asking again
    assert _attempts(final, "tell") == [("failed", "NOTIFICATION_FAILED")]


@pytest.mark.parametrize("smtp_state", ["down"])
async def test_an_unreachable_mail_server_fails_the_step_after_the_policy_s_attempts(
        container: Any, in_process_worker: Any, mail_server: MailServer) -> None:
    final = await _run(container, EMAIL, {"customer": "ACME", "contact": "jo@acme.test"})

    assert final.status.value == "failed"
    error = final.steps["tell"].error
    assert error["code"] == "NOTIFICATION_FAILED"
    assert "127.0.0.1" in error["message"] and "refused" in error["message"].lower()
    assert _attempts(final, "tell") == [("failed", "NOTIFICATION_FAILED")] * 2
    assert mail_server.received == []


# --- webhook and Slack -----------------------------------------------------------------------

HOOKS = """
name: hook-report
input:
  customer: {type: string, required: true}
steps:
  - id: post
    type: notification
    channel: webhook
    url: "${HOOK_BASE}/hooks/${HOOK_TOKEN}"
    subject: "Report (${DEPLOY_ENV})"
    message: "{{input.customer}} on ${DEPLOY_ENV}"
  - id: chat
    type: notification
    channel: slack
    depends_on: post
    webhook_url: "${HOOK_BASE}/slack"
    message: "Report for {{input.customer}} is out"
  - id: fallback
    type: notification
    channel: slack
    depends_on: chat
    message: "no url on this one"
"""


async def test_webhook_and_slack_steps_post_their_json_with_environment_values_filled_in(
        container: Any, in_process_worker: Any, hooks: Receiver,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_BASE", hooks.url)
    monkeypatch.setenv("HOOK_TOKEN", "T0K3N")
    monkeypatch.setenv("DEPLOY_ENV", "staging")
    final = await _run(container, HOOKS, {"customer": "ACME"})

    assert final.status.value == "completed", final.error
    paths = [path for path, _body, _headers in hooks.requests]
    assert paths == ["/hooks/T0K3N", "/slack", "/default"]
    assert hooks.received[0] == {"message": "ACME on staging", "subject": "Report (staging)",
                                 "execution_id": final.id, "step_id": "post",
                                 "process": "hook-report"}
    assert hooks.received[1] == {"text": "Report for ACME is out"}
    assert hooks.received[2] == {"text": "no url on this one"}
    assert all({k.lower(): v for k, v in h.items()}["content-type"] == "application/json"
               for _p, _b, h in hooks.requests)


ALL_CHANNELS = """
name: everywhere
steps:
  - id: shout
    type: notification
    channels: [slack, webhook, email]
    webhook_url: "${HOOK_BASE}/everywhere"
    recipients: [ops@example.org]
    subject: Deployed
    message: "{{process.name}} deployed"
"""


async def test_one_step_with_three_channels_delivers_to_each_of_them(
        container: Any, in_process_worker: Any, hooks: Receiver, mail_server: MailServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_BASE", hooks.url)
    final = await _run(container, ALL_CHANNELS)

    assert final.status.value == "completed", final.error
    assert [c["channel"] for c in final.steps["shout"].output["sent"]] == [
        "slack", "webhook", "email"]
    assert hooks.received == [
        {"text": "everywhere deployed"},
        {"message": "everywhere deployed", "subject": "Deployed", "execution_id": final.id,
         "step_id": "shout", "process": "everywhere"}]
    [mail] = mail_server.received
    assert mail.rcpt_tos == ["ops@example.org"] and mail.body == "everywhere deployed"
    assert mail.message["Subject"] == "Deployed"


MISSING_ENV = """
name: missing-env
steps:
  - id: post
    type: notification
    channel: webhook
    webhook_url: "${TRINITY_TEST_UNSET_HOOK}"
    message: hello
    retry: {max_attempts: 3, initial_delay: 0.2s}
"""


async def test_a_missing_environment_variable_fails_at_once_and_names_the_variable(
        container: Any, in_process_worker: Any, hooks: Receiver,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRINITY_TEST_UNSET_HOOK", raising=False)
    final = await _run(container, MISSING_ENV)

    assert final.status.value == "failed"
    error = final.steps["post"].error
    assert error["code"] == "INVALID_CONFIG"
    assert "TRINITY_TEST_UNSET_HOOK" in error["message"]
    assert _attempts(final, "post") == [("failed", "INVALID_CONFIG")]
    assert hooks.requests == []


# --- retries ---------------------------------------------------------------------------------

RETRIED = """
name: retried-hook
steps:
  - id: post
    type: notification
    channel: webhook
    webhook_url: "${HOOK_BASE}/flaky"
    message: hello
    retry: {max_attempts: 3, initial_delay: 0.2s}
"""


async def test_a_webhook_answering_500_twice_is_retried_and_succeeds_on_attempt_3(
        container: Any, in_process_worker: Any, hooks: Receiver,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_BASE", hooks.url)
    hooks.responder = lambda path, body, headers: (
        (500, {"error": "busy"}) if len(hooks.requests) <= 2 else (200, {"ok": True}))
    final = await _run(container, RETRIED)

    assert final.status.value == "completed", final.error
    assert _attempts(final, "post") == [("failed", "NOTIFICATION_FAILED"),
                                        ("failed", "NOTIFICATION_FAILED"),
                                        ("completed", None)]
    assert len(hooks.requests) == 3


async def test_a_webhook_answering_400_is_not_retried(
        container: Any, in_process_worker: Any, hooks: Receiver,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_BASE", hooks.url)
    hooks.responder = lambda path, body, headers: (400, {"error": "bad payload"})
    final = await _run(container, RETRIED)

    assert final.status.value == "failed"
    error = final.steps["post"].error
    assert error["code"] == "NOTIFICATION_FAILED" and "400" in error["message"]
    assert _attempts(final, "post") == [("failed", "NOTIFICATION_FAILED")]
    assert len(hooks.requests) == 1


# --- the Notifier on its own -------------------------------------------------------------------

async def test_starttls_is_required_when_configured_and_a_server_without_it_is_refused(
        mail_server: MailServer) -> None:
    notifier = Notifier(SmtpSettings(mail_server.host, mail_server.port, SMTP_USER,
                                     SMTP_PASSWORD, tls="starttls", timeout=5))
    with pytest.raises(NotifyError) as caught:
        await notifier.send("email", "hi", recipients=["ops@example.org"])

    assert caught.value.code == "NOTIFICATION_FAILED"
    assert "STARTTLS" in caught.value.message
    assert mail_server.received == []


async def test_an_unknown_tls_mode_is_a_configuration_error_not_a_plaintext_send(
        mail_server: MailServer) -> None:
    notifier = Notifier(SmtpSettings.from_env({
        "TRINITY_SMTP_HOST": mail_server.host, "TRINITY_SMTP_PORT": str(mail_server.port),
        "TRINITY_SMTP_USER": SMTP_USER, "TRINITY_SMTP_PASSWORD": SMTP_PASSWORD,
        "TRINITY_SMTP_TLS": "tls"}))
    with pytest.raises(NotifyError) as caught:
        await notifier.send("email", "hi", recipients=["ops@example.org"])

    assert caught.value.code == "INVALID_CONFIG" and not caught.value.retryable
    assert "TRINITY_SMTP_TLS" in caught.value.message
    assert mail_server.received == []


async def test_a_subject_with_line_breaks_is_sent_on_one_line(
        mail_server: MailServer) -> None:
    notifier = Notifier(SmtpSettings(mail_server.host, mail_server.port, SMTP_USER,
                                     SMTP_PASSWORD, sender=SENDER, timeout=5))
    await notifier.send("email", "body", recipients=["ops@example.org"],
                        subject="Ticket: printer on fire\r\nBcc: everyone@example.org")

    [mail] = mail_server.received
    assert mail.message["Subject"] == "Ticket: printer on fire Bcc: everyone@example.org"
    assert mail.message["Bcc"] is None and mail.rcpt_tos == ["ops@example.org"]


async def test_a_recipient_with_a_line_break_is_a_config_error_and_nothing_is_sent(
        mail_server: MailServer) -> None:
    notifier = Notifier(SmtpSettings(mail_server.host, mail_server.port, SMTP_USER,
                                     SMTP_PASSWORD, timeout=5))
    with pytest.raises(NotifyError) as caught:
        await notifier.send("email", "body", recipients=["ops@example.org\nBcc: x@evil.test"])

    assert caught.value.code == "INVALID_CONFIG" and not caught.value.retryable
    assert mail_server.received == []


SECRET = "T000/B000/XXXXsecretXXXX"


@pytest.mark.parametrize("answer", [500, 403])
async def test_a_failed_webhook_names_only_the_host_never_the_secret_url(
        hooks: Receiver, answer: int) -> None:
    hooks.responder = lambda path, body, headers: (answer, {"error": "nope"})
    notifier = Notifier(timeout=5)
    with pytest.raises(NotifyError) as caught:
        await notifier.send("slack", "hi", url=f"{hooks.url}/services/{SECRET}")
    await notifier.aclose()

    assert "127.0.0.1" in caught.value.message and str(answer) in caught.value.message
    assert "secret" not in caught.value.message and "/services" not in caught.value.message
    assert caught.value.retryable is (answer >= 500)


async def test_an_unreachable_webhook_is_retryable_and_named_by_its_host_only() -> None:
    notifier = Notifier(timeout=5)
    with pytest.raises(NotifyError) as caught:
        await notifier.send("webhook", "hi", url=f"http://127.0.0.1:{_free_port()}/s/{SECRET}")
    await notifier.aclose()

    assert caught.value.code == "NOTIFICATION_FAILED" and caught.value.retryable
    assert "127.0.0.1" in caught.value.message
    assert "secret" not in caught.value.message and "/s/" not in caught.value.message


@pytest.mark.parametrize("url", [
    f"hooks.example.org/services/{SECRET}",  # the scheme was forgotten
    f"ftp://hooks.example.org/services/{SECRET}",
    f"https:///services/{SECRET}",  # no host
    f"http://hooks.example.org:443x/services/{SECRET}",  # httpx refuses to parse it
])
async def test_a_malformed_webhook_url_is_a_config_error_that_does_not_echo_it(
        url: str) -> None:
    notifier = Notifier(timeout=5)
    with pytest.raises(NotifyError) as caught:
        await notifier.send("webhook", "hi", url=url)
    await notifier.aclose()

    assert caught.value.code == "INVALID_CONFIG" and not caught.value.retryable
    assert "secret" not in caught.value.message
    assert "/services" not in caught.value.message


LEAKY = """
name: echo-input
input:
  note: {type: string, required: true}
steps:
  - id: post
    type: notification
    channel: webhook
    webhook_url: "${HOOK_BASE}/echo"
    message: "Note: {{input.note}}"
    retry: {max_attempts: 1}
"""


async def test_input_text_that_looks_like_an_env_reference_is_sent_as_written(
        container: Any, in_process_worker: Any, hooks: Receiver,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_BASE", hooks.url)
    final = await _run(container, LEAKY, {"note": "${TRINITY_SMTP_PASSWORD}"})

    assert hooks.received and hooks.received[0]["message"] == (
        "Note: ${TRINITY_SMTP_PASSWORD}"), final.error


# --- approval requests tell their deciders -------------------------------------------------

ASK = """
name: ask-jo
steps:
  - id: sign-off
    type: human_approval
    title: Sign off the quarter
    assignees: [jo@acme.test]
"""


async def test_an_opened_approval_emails_its_deciders_a_signed_link_to_the_request(
        container: Any, in_process_worker: Any, mail_server: MailServer) -> None:
    from urllib.parse import parse_qs, urlsplit

    from app.approval_links import verify_link
    from tests.integration.conftest import wait_for

    imported = await container.definitions.import_text(ASK, publish=True)
    await container.executions.start(imported.row, {}, "test")

    await wait_for(lambda: mail_server.received, timeout=30)
    [mail] = mail_server.received
    assert mail.rcpt_tos == ["jo@acme.test"]
    assert mail.message["Subject"] == "Approval is waiting for your decision: Sign off the quarter"
    link = next(w for w in mail.body.split() if "/inbox?request=" in w)
    query = parse_qs(urlsplit(link).query)
    [request], [sig] = query["request"], query["sig"]
    assert verify_link(container.settings, request, sig)
    assert not verify_link(container.settings, request + "x", sig)
