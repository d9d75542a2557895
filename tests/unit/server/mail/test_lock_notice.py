"""The lock notice: says the account was locked and when, carries the reset link, and holds no
text the registrant chose."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from domain.ports import LockNoticeMail
from server.mail.lock_notice import SUBJECT, build_lock_notice
from tests.smtp_server import reset_token_from

SENDER = "Biome <no-reply@biome.example>"
TEMPLATE = "https://app.biome.example/reset-password?token={token}"
LOCKED_AT = datetime(2026, 11, 26, 4, 15, tzinfo=UTC)
TOKEN = "0b93bdad-8394-4292-84fb-f6fa75055bdc.tok/en+odd"


def notice() -> LockNoticeMail:
    return LockNoticeMail(
        to="ann@example.com",
        locked_at=LOCKED_AT,
        token=TOKEN,
        expires_at=LOCKED_AT + timedelta(hours=1),
    )


def received(message: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(bytes(message), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_the_notice_says_when_the_account_locked_and_carries_the_reset_link() -> None:
    message = received(build_lock_notice(notice(), sender=SENDER, link_template=TEMPLATE))

    assert message["Subject"] == SUBJECT
    assert message["To"] == "ann@example.com"
    assert message.get_content_type() == "multipart/alternative"
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    plain = body.get_content()
    assert "2026-11-26 04:15 UTC" in plain  # locked at
    assert "until 2026-11-26 05:15 UTC" in plain  # the link's expiry
    assert reset_token_from(message) == TOKEN


def test_the_token_never_shows_in_the_mail_s_repr() -> None:
    assert TOKEN not in repr(notice())
