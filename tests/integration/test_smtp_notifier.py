"""SmtpNotifier against a real SMTP server on loopback: plain, STARTTLS, implicit TLS, failures."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from domain.ports import LockNoticeMail, PasswordResetMail
from server.mail.smtp import NotificationError, SmtpNotifier, SmtpSecurity
from tests.mail_kit import CODE, KINDS, LINK_OF_KIND, PRODUCT, SENDER, composer, mails, part, send
from tests.smtp_server import (
    CapturingSmtpServer,
    loopback_tls_contexts,
    reset_token_from,
    verification_code_from,
)

TOKEN = "tok-3n/with+odd=chars"
LOGIN = "mailer"
PASSWORD = "smtp-Pa55word-never-shown"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts for the test CA's server certificate, which the client trusts."""
    return loopback_tls_contexts(tmp_path_factory.mktemp("smtp-tls"))


def reset_mail(to: str = "ann@example.com", token: str = TOKEN) -> PasswordResetMail:
    return PasswordResetMail(to=to, token=token, expires_at=datetime.now(UTC) + timedelta(hours=1))


def notifier(
    port: int,
    security: SmtpSecurity = "none",
    *,
    username: str | None = None,
    password: str | None = None,
    tls_context: ssl.SSLContext | None = None,
    timeout: float = 3.0,
) -> SmtpNotifier:
    return SmtpNotifier(
        host="127.0.0.1",
        port=port,
        security=security,
        username=username,
        password=password,
        composer=composer(),
        timeout=timeout,
        tls_context=tls_context,
    )


@pytest.fixture
def unused_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it), not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A loopback port that accepts connections and never says a word."""
    connections: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


def service_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the service logged, leaving out the test SMTP server (aiosmtpd's "mail.*" loggers
    echo every line it receives at DEBUG, message body included)."""
    return "\n".join(
        record.getMessage() for record in caplog.records if not record.name.startswith("mail.")
    )


async def test_a_reset_mail_is_delivered_over_plain_smtp() -> None:
    async with CapturingSmtpServer() as smtp:
        await notifier(smtp.port, "none").send_password_reset(reset_mail())

        message = await smtp.wait_for_message(to="ann@example.com")

    assert message["From"] == SENDER
    assert message["Subject"] == "Reset your password"
    assert reset_token_from(message) == TOKEN


async def test_each_kind_of_mail_arrives_readable_as_text_and_html_with_its_own_link() -> None:
    async with CapturingSmtpServer() as smtp:
        smtp_notifier = notifier(smtp.port, "none")
        for kind in KINDS:
            await send(
                smtp_notifier, mails(to=f"{kind}@example.com", name="Zoë", token=TOKEN)[kind]
            )
        received = {kind: await smtp.wait_for_message(to=f"{kind}@example.com") for kind in KINDS}

    for kind, message in received.items():
        assert message.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        text, rich = part(message, "plain"), part(message, "html")
        link = LINK_OF_KIND[kind].replace("{token}", "tok-3n%2Fwith%2Bodd%3Dchars")
        assert text.startswith("Hello Zoë,\n") and "<p>Hello Zoë,</p>" in rich
        assert f"\n{link}\n" in text and f'href="{link}"' in rich
        assert PRODUCT in text and PRODUCT in rich
        assert reset_token_from(message) == TOKEN
    assert verification_code_from(received["verification"]) == CODE
    assert CODE in part(received["verification"], "html")


async def test_a_lock_notice_is_delivered_with_its_reset_link_and_logged_without_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    locked_at = datetime.now(UTC)
    notice = LockNoticeMail(
        to="ann@example.com",
        locked_at=locked_at,
        token=TOKEN,
        expires_at=locked_at + timedelta(hours=1),
    )
    with caplog.at_level(logging.DEBUG):
        async with CapturingSmtpServer() as smtp:
            await notifier(smtp.port, "none").send_lock_notice(notice)

            message = await smtp.wait_for_message(to="ann@example.com")

    assert message["Subject"] == "Your account was locked after failed sign-ins"
    assert message.get_content_type() == "multipart/alternative"
    assert reset_token_from(message) == TOKEN
    assert "lock notice sent to ...@example.com" in service_log(caplog)
    assert TOKEN not in service_log(caplog)


async def test_a_reset_mail_is_delivered_after_starttls_to_a_trusted_certificate(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_context, client_context = tls
    async with CapturingSmtpServer(starttls_context=server_context, require_starttls=True) as smtp:
        await notifier(smtp.port, "starttls", tls_context=client_context).send_password_reset(
            reset_mail()
        )

        message = await smtp.wait_for_message(to="ann@example.com")

    assert reset_token_from(message) == TOKEN


async def test_a_reset_mail_is_delivered_over_implicit_tls(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_context, client_context = tls
    async with CapturingSmtpServer(implicit_tls_context=server_context) as smtp:
        await notifier(smtp.port, "tls", tls_context=client_context).send_password_reset(
            reset_mail()
        )

        message = await smtp.wait_for_message(to="ann@example.com")

    assert reset_token_from(message) == TOKEN


async def test_the_notifier_logs_in_when_given_a_username(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_context, client_context = tls
    async with CapturingSmtpServer(
        starttls_context=server_context, require_starttls=True, credentials=(LOGIN, PASSWORD)
    ) as smtp:
        sender = notifier(
            smtp.port, "starttls", username=LOGIN, password=PASSWORD, tls_context=client_context
        )
        await sender.send_password_reset(reset_mail())

        await smtp.wait_for_message(to="ann@example.com")

    assert smtp.logins == [LOGIN]


async def test_an_internationalized_address_is_delivered_with_smtputf8() -> None:
    async with CapturingSmtpServer() as smtp:
        await notifier(smtp.port).send_password_reset(reset_mail(to="zoë@exämple.com"))

        message = await smtp.wait_for_message(to="zoë@exämple.com")

    assert message["To"] == "zoë@exämple.com"
    assert reset_token_from(message) == TOKEN


async def test_several_messages_reach_their_own_recipients() -> None:
    async with CapturingSmtpServer() as smtp:
        sender = notifier(smtp.port)
        await asyncio.gather(
            sender.send_password_reset(reset_mail(to="ann@example.com", token="token-ann")),
            sender.send_password_reset(reset_mail(to="bob@example.com", token="token-bob")),
        )

        bob = await smtp.wait_for_message(to="bob@example.com")
        ann = await smtp.wait_for_message(to="ann@example.com")

    assert (reset_token_from(ann), reset_token_from(bob)) == ("token-ann", "token-bob")
    assert len(smtp.messages) == 2


async def test_a_wrong_password_is_a_notification_error_that_does_not_show_it(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_context, client_context = tls
    wrong = "wrong-Pa55word-never-shown"
    async with CapturingSmtpServer(
        starttls_context=server_context, require_starttls=True, credentials=(LOGIN, PASSWORD)
    ) as smtp:
        sender = notifier(
            smtp.port, "starttls", username=LOGIN, password=wrong, tls_context=client_context
        )
        with pytest.raises(NotificationError) as raised:
            await sender.send_password_reset(reset_mail())

    assert "SMTPAuthenticationError" in str(raised.value)
    assert wrong not in str(raised.value)
    assert TOKEN not in str(raised.value)
    assert smtp.messages == []


async def test_starttls_that_the_server_does_not_offer_is_a_notification_error() -> None:
    async with CapturingSmtpServer() as smtp:
        with pytest.raises(NotificationError, match="STARTTLS"):
            await notifier(smtp.port, "starttls").send_password_reset(reset_mail())

    assert smtp.messages == []


async def test_an_untrusted_certificate_is_a_notification_error(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_context, _ = tls
    trusts_only_public_cas = ssl.create_default_context()
    async with CapturingSmtpServer(starttls_context=server_context) as smtp:
        sender = notifier(smtp.port, "starttls", tls_context=trusts_only_public_cas)
        with pytest.raises(NotificationError, match=r"(?i)certificate"):
            await sender.send_password_reset(reset_mail())

    assert smtp.messages == []


async def test_a_refused_connection_is_a_notification_error_at_once(unused_port: int) -> None:
    started = time.monotonic()

    with pytest.raises(NotificationError) as raised:
        await notifier(unused_port).send_password_reset(reset_mail())

    assert time.monotonic() - started < 2.0
    assert f"127.0.0.1:{unused_port}" in str(raised.value)
    assert "...@example.com" in str(raised.value)
    assert TOKEN not in str(raised.value)


async def test_a_stopped_server_is_a_notification_error() -> None:
    async with CapturingSmtpServer() as smtp:
        port = smtp.port

    with pytest.raises(NotificationError):
        await notifier(port).send_password_reset(reset_mail())


async def test_a_server_that_never_answers_is_a_notification_error_after_the_timeout(
    silent_server: int,
) -> None:
    started = time.monotonic()

    with pytest.raises(NotificationError, match="Timeout"):
        await notifier(silent_server, timeout=0.3).send_password_reset(reset_mail())

    assert time.monotonic() - started < 2.0


async def test_the_log_shows_the_recipient_domain_but_never_the_token_or_password(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
    caplog: pytest.LogCaptureFixture,
    unused_port: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    server_context, client_context = tls
    async with CapturingSmtpServer(
        starttls_context=server_context, require_starttls=True, credentials=(LOGIN, PASSWORD)
    ) as smtp:
        sender = notifier(
            smtp.port, "starttls", username=LOGIN, password=PASSWORD, tls_context=client_context
        )
        await sender.send_password_reset(reset_mail())
        await smtp.wait_for_message(to="ann@example.com")
    with pytest.raises(NotificationError):
        await notifier(unused_port, username=LOGIN, password=PASSWORD).send_password_reset(
            reset_mail()
        )

    logged = service_log(caplog)
    assert "password-reset mail sent to ...@example.com" in logged
    assert "ann@example.com" not in logged
    assert TOKEN not in logged
    assert PASSWORD not in logged


def test_the_repr_hides_the_password() -> None:
    text = repr(notifier(25, "starttls", username=LOGIN, password=PASSWORD))

    assert PASSWORD not in text
    assert "'***'" in text
    assert LOGIN in text


def test_an_unknown_security_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="security"):
        notifier(25, "ssl")  # type: ignore[arg-type]


async def test_waiting_for_mail_that_never_comes_fails_naming_the_recipient() -> None:
    async with CapturingSmtpServer() as smtp:
        await notifier(smtp.port).send_password_reset(reset_mail(to="ann@example.com"))
        await smtp.wait_for_message(to="ann@example.com")

        with pytest.raises(AssertionError, match=r"ann@example\.com"):
            await smtp.wait_for_message(to="ann@example.com", timeout=0.1)
