"""The capacity phase's reading of the service's outbox: each message handed out once, to its
recipient only, with the link's token and the verification code as the service wrote them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from domain.ports import EmailChangeMail, VerificationMail
from server.mail.outbox import OutboxNotifier
from tests.mail_kit import composer
from tools.bench.capacity.mail import Outbox, link_token, verification_code

EXPIRES = datetime(2026, 12, 7, tzinfo=UTC) + timedelta(days=1)
TOKEN = "v1.Zm9v-YmFy_baz/+="


def verification(to: str, token: str = TOKEN, code: str = "042917") -> VerificationMail:
    return VerificationMail(to=to, name="Ann", token=token, code=code, expires_at=EXPIRES)


async def test_the_token_and_code_of_a_verification_mail_are_read_back(tmp_path: Path) -> None:
    notifier = OutboxNotifier(directory=tmp_path, composer=composer())
    await notifier.send_verification(verification("ann@example.com"))

    message = await Outbox(tmp_path).next_to("Ann@Example.com")

    assert link_token(message) == TOKEN
    assert verification_code(message) == "042917"


async def test_each_message_is_handed_out_once_and_only_to_its_recipient(tmp_path: Path) -> None:
    notifier = OutboxNotifier(directory=tmp_path, composer=composer())
    outbox = Outbox(tmp_path)
    await notifier.send_verification(verification("ann@example.com", token="first"))
    await notifier.send_email_change(
        EmailChangeMail(to="bob@example.com", name="Bob", token="change", expires_at=EXPIRES)
    )

    assert link_token(await outbox.next_to("bob@example.com")) == "change"
    assert link_token(await outbox.next_to("ann@example.com")) == "first"
    with pytest.raises(TimeoutError):  # nothing new for either: the wait goes on
        async with asyncio.timeout(0.1):
            await outbox.next_to("ann@example.com")

    await notifier.send_verification(verification("ann@example.com", token="second"))
    assert link_token(await outbox.next_to("ann@example.com")) == "second"


async def test_a_folder_not_written_yet_is_waited_for(tmp_path: Path) -> None:
    folder = tmp_path / "outbox"
    outbox = Outbox(folder)
    waiting = asyncio.create_task(outbox.next_to("ann@example.com"))
    await asyncio.sleep(0.05)
    assert not waiting.done()

    notifier = OutboxNotifier(directory=folder, composer=composer())
    await notifier.send_verification(verification("ann@example.com"))

    async with asyncio.timeout(5):
        assert verification_code(await waiting) == "042917"
