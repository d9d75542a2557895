"""Reset mail is delivered after the reply: failures are logged without secrets, shutdown drains."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from domain.ports import PasswordResetMail
from server.background_notifier import BackgroundNotifier

TOKEN = "3f2b8a3e-1c4d-4e5f-9a6b-7c8d9e0f1a2b.s3cr3t-t0ken-value"
MAIL = PasswordResetMail(
    to="ada@example.com",
    first_name="Ada",
    token=TOKEN,
    expires_at=datetime(2026, 11, 26, tzinfo=UTC),
)


class SlowNotifier:
    """Delivers after ``release`` is set; records what it delivered."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.delivered: list[PasswordResetMail] = []

    async def send_password_reset(self, mail: PasswordResetMail) -> None:
        await self.release.wait()
        self.delivered.append(mail)


class FailingNotifier:
    async def send_password_reset(self, mail: PasswordResetMail) -> None:
        raise ConnectionRefusedError("connection refused by smtp.example.com:587")


async def test_sending_returns_before_the_mail_is_delivered() -> None:
    inner = SlowNotifier()
    notifier = BackgroundNotifier(inner)

    await asyncio.wait_for(notifier.send_password_reset(MAIL), timeout=1)
    assert inner.delivered == []

    inner.release.set()
    await notifier.drain(grace_seconds=1)
    assert inner.delivered == [MAIL]


async def test_a_failed_delivery_is_logged_without_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    notifier = BackgroundNotifier(FailingNotifier())

    await notifier.send_password_reset(MAIL)
    await notifier.drain(grace_seconds=1)

    failures = [r for r in caplog.records if "delivery failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].levelno == logging.ERROR
    assert "ConnectionRefusedError" in failures[0].getMessage()
    assert all(TOKEN not in record.getMessage() for record in caplog.records)


async def test_shutdown_waits_for_deliveries_then_gives_up_on_the_stuck_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inner = SlowNotifier()  # never released: a stuck SMTP server
    notifier = BackgroundNotifier(inner)
    await notifier.send_password_reset(MAIL)

    await asyncio.wait_for(notifier.drain(grace_seconds=0.05), timeout=1)

    assert inner.delivered == []
    assert any("not delivered before shutdown" in r.getMessage() for r in caplog.records)
