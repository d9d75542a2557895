"""domain.ports.Notifier for development: each message becomes an .eml file in a private folder."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import tempfile
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from domain.ports import (
    EmailChangeMail,
    EmailChangeNoticeMail,
    LockNoticeMail,
    PasswordResetMail,
    SecondFactorNoticeMail,
    VerificationMail,
)
from server.mail.compose import MailComposer
from server.mail.delivery import NotificationError

log = logging.getLogger(__name__)


class OutboxNotifier:
    """Writes messages as ``<UTC time>-<random>.eml`` files (mode 0600) that sort by time.

    The folder is created with mode 0700 if missing: the files hold live reset tokens.
    Each file appears whole or not at all (written to a temporary file, then renamed).
    """

    def __init__(self, *, directory: Path, composer: MailComposer) -> None:
        self._directory = Path(directory)
        self._composer = composer

    def __repr__(self) -> str:
        return (
            f"OutboxNotifier(directory={str(self._directory)!r}, sender={self._composer.sender!r})"
        )

    @property
    def directory(self) -> Path:
        return self._directory

    async def send_password_reset(self, mail: PasswordResetMail) -> None:
        message = self._composer.password_reset(mail)
        await self._deliver(message, "password-reset mail")

    async def send_lock_notice(self, mail: LockNoticeMail) -> None:
        message = self._composer.lock_notice(mail)
        await self._deliver(message, "lock notice")

    async def send_verification(self, mail: VerificationMail) -> None:
        message = self._composer.verification(mail)
        await self._deliver(message, "verification mail")

    async def send_email_change(self, mail: EmailChangeMail) -> None:
        message = self._composer.email_change(mail)
        await self._deliver(message, "email-change mail")

    async def send_email_change_notice(self, mail: EmailChangeNoticeMail) -> None:
        message = self._composer.email_change_notice(mail)
        await self._deliver(message, "email-change notice")

    async def send_second_factor_notice(self, mail: SecondFactorNoticeMail) -> None:
        message = self._composer.second_factor_notice(mail)
        await self._deliver(message, "second-factor notice")

    async def _deliver(self, message: EmailMessage, kind: str) -> None:
        try:
            path = await asyncio.to_thread(self._write, bytes(message))
        except OSError as error:
            raise NotificationError(f"{kind} not written to {self._directory}: {error}") from error
        log.info("%s written to %s", kind, path)

    def _write(self, content: bytes) -> Path:
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self._directory / f"{stamp}-{secrets.token_hex(4)}.eml"
        # mkstemp creates the file with mode 0600 whatever the umask.
        descriptor, temporary = tempfile.mkstemp(dir=self._directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path
