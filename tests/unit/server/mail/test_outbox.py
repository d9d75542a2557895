"""The development outbox: one private, parseable .eml file per message, written whole."""

from __future__ import annotations

import email
import email.policy
import logging
import re
import stat
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from domain.ports import LockNoticeMail, PasswordResetMail
from server.mail.delivery import NotificationError
from server.mail.outbox import OutboxNotifier
from tests.mail_kit import SENDER, composer, send
from tests.mail_kit import mails as kit_mails
from tests.smtp_server import reset_token_from

FILE_NAME = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{8}\.eml$")


def reset_mail(token: str = "s3cret-Token/+=", to: str = "ann@example.com") -> PasswordResetMail:
    return PasswordResetMail(
        to=to,
        token=token,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )


def outbox(directory: Path) -> OutboxNotifier:
    return OutboxNotifier(directory=directory, composer=composer())


def read_eml(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def files_in(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_message_becomes_one_parseable_eml_file_holding_the_token(tmp_path: Path) -> None:
    notifier = outbox(tmp_path)

    await notifier.send_password_reset(reset_mail(token="s3cret-Token/+="))

    [path] = files_in(tmp_path)
    assert FILE_NAME.match(path.name)
    message = read_eml(path)
    assert message["To"] == "ann@example.com"
    assert message["From"] == SENDER
    assert message["Subject"] == "Reset your password"
    assert reset_token_from(message) == "s3cret-Token/+="


async def test_a_lock_notice_becomes_a_private_eml_file_with_its_reset_link(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    notice = LockNoticeMail(
        to="ann@example.com",
        locked_at=now,
        token="lock-Token/+=",
        expires_at=now + timedelta(hours=1),
    )

    with caplog.at_level(logging.INFO, logger="server.mail.outbox"):
        await outbox(tmp_path).send_lock_notice(notice)

    [path] = files_in(tmp_path)
    assert mode_of(path) == 0o600
    message = read_eml(path)
    assert message["Subject"] == "Your account was locked after failed sign-ins"
    assert reset_token_from(message) == "lock-Token/+="
    assert "lock notice written to" in caplog.text and "lock-Token" not in caplog.text


async def test_the_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    await outbox(tmp_path).send_password_reset(reset_mail())

    [path] = files_in(tmp_path)
    assert mode_of(path) == 0o600


async def test_a_missing_folder_is_created_private(tmp_path: Path) -> None:
    directory = tmp_path / "var" / "outbox"
    notifier = outbox(directory)

    await notifier.send_password_reset(reset_mail())

    assert notifier.directory == directory
    assert mode_of(directory) == 0o700
    assert len(files_in(directory)) == 1


async def test_two_messages_make_two_files_that_sort_in_sending_order(tmp_path: Path) -> None:
    notifier = outbox(tmp_path)

    await notifier.send_password_reset(reset_mail(token="first-token"))
    await notifier.send_password_reset(reset_mail(token="second-token"))

    paths = files_in(tmp_path)
    assert [reset_token_from(read_eml(path)) for path in paths] == ["first-token", "second-token"]


async def test_no_temporary_file_is_left_behind(tmp_path: Path) -> None:
    notifier = outbox(tmp_path)

    for _ in range(3):
        await notifier.send_password_reset(reset_mail())

    assert all(FILE_NAME.match(path.name) for path in files_in(tmp_path))


async def test_the_log_names_the_file_but_never_the_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = "never-log-this-token"
    caplog.set_level(logging.DEBUG)

    await outbox(tmp_path).send_password_reset(reset_mail(token=token))

    [path] = files_in(tmp_path)
    assert any(str(path) in record.getMessage() for record in caplog.records)
    assert all(token not in record.getMessage() for record in caplog.records)
    assert token not in caplog.text


async def test_a_folder_that_cannot_be_written_is_a_notification_error_without_the_token(
    tmp_path: Path,
) -> None:
    not_a_folder = tmp_path / "outbox"
    not_a_folder.write_text("a file where the folder should be")

    with pytest.raises(NotificationError) as raised:
        await outbox(not_a_folder).send_password_reset(reset_mail(token="hidden-token"))

    assert "hidden-token" not in str(raised.value)


async def test_each_kind_of_mail_is_written_with_its_link(tmp_path: Path) -> None:
    notifier = outbox(tmp_path)

    await send(notifier, kit_mails(token="verify-me")["verification"])
    await send(notifier, kit_mails(token="move-me")["email_change"])
    await send(notifier, kit_mails(token="stop-me")["email_change_notice"])

    messages = [read_eml(path) for path in files_in(tmp_path)]
    assert [reset_token_from(message) for message in messages] == [
        "verify-me",
        "move-me",
        "stop-me",
    ]
    assert [message["Subject"] for message in messages] == [
        "Confirm your email address",
        "Confirm your new email address",
        "Your account's email address is about to change",
    ]
