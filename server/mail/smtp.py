"""domain.ports.Notifier that delivers security mail through an SMTP server (aiosmtplib)."""

from __future__ import annotations

import logging
import ssl
from email.message import EmailMessage
from typing import Literal

import aiosmtplib

from domain.ports import (
    EmailChangeMail,
    EmailChangeNoticeMail,
    LockNoticeMail,
    PasswordResetMail,
    SecondFactorNoticeMail,
    VerificationMail,
)
from server.mail.compose import MailComposer
from server.mail.delivery import NotificationError, recipient_domain

log = logging.getLogger(__name__)

SmtpSecurity = Literal["starttls", "tls", "none"]

__all__ = ["NotificationError", "SmtpNotifier", "SmtpSecurity"]


class SmtpNotifier:
    """Sends each message over its own SMTP connection.

    ``security``: "tls" connects over TLS (usually port 465), "starttls" upgrades a plain
    connection and fails if the server does not offer STARTTLS (usually port 587), "none"
    never encrypts (local relays and tests only). Logs in only when ``username`` is given.
    ``timeout`` bounds each network step (connect, each command), in seconds.
    ``tls_context`` replaces the default one, which trusts the system's CAs.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: SmtpSecurity,
        username: str | None,
        password: str | None,
        composer: MailComposer,
        timeout: float,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"unknown SMTP security {security!r}")
        self._host = host
        self._port = port
        self._security: SmtpSecurity = security
        self._username = username
        self._password = password
        self._composer = composer
        self._timeout = timeout
        self._tls_context = tls_context

    def __repr__(self) -> str:
        password = "None" if self._password is None else "'***'"
        return (
            f"SmtpNotifier(host={self._host!r}, port={self._port}, security={self._security!r}, "
            f"username={self._username!r}, password={password}, sender={self._composer.sender!r})"
        )

    async def send_password_reset(self, mail: PasswordResetMail) -> None:
        message = self._composer.password_reset(mail)
        await self._deliver(message, "password-reset mail", to=mail.to, token=mail.token)

    async def send_lock_notice(self, mail: LockNoticeMail) -> None:
        message = self._composer.lock_notice(mail)
        await self._deliver(message, "lock notice", to=mail.to, token=mail.token)

    async def send_verification(self, mail: VerificationMail) -> None:
        message = self._composer.verification(mail)
        await self._deliver(message, "verification mail", to=mail.to, token=mail.token)

    async def send_email_change(self, mail: EmailChangeMail) -> None:
        message = self._composer.email_change(mail)
        await self._deliver(message, "email-change mail", to=mail.to, token=mail.token)

    async def send_email_change_notice(self, mail: EmailChangeNoticeMail) -> None:
        message = self._composer.email_change_notice(mail)
        await self._deliver(message, "email-change notice", to=mail.to, token=mail.cancel_token)

    async def send_second_factor_notice(self, mail: SecondFactorNoticeMail) -> None:
        message = self._composer.second_factor_notice(mail)
        await self._deliver(message, "second-factor notice", to=mail.to, token=None)

    async def _deliver(
        self, message: EmailMessage, kind: str, *, to: str, token: str | None
    ) -> None:
        domain = recipient_domain(to)
        try:
            await aiosmtplib.send(
                message,
                hostname=self._host,
                port=self._port,
                use_tls=self._security == "tls",
                start_tls=self._security == "starttls",
                tls_context=self._tls_context,
                username=self._username,
                password=self._password if self._username is not None else None,
                timeout=self._timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as error:
            # OSError covers ssl.SSLError (e.g. an untrusted certificate).
            # Servers echo neither the body nor the password; the token is masked all the same,
            # since this text ends up in logs. (Masking a password would hint at its letters.)
            reason = f"{type(error).__name__}: {error}"
            if token is not None:
                reason = reason.replace(token, "***")
            raise NotificationError(
                f"{kind} to ...@{domain} was not sent "
                f"via {self._host}:{self._port} ({self._security}): {reason}"
            ) from error
        log.info("%s sent to ...@%s via %s:%s", kind, domain, self._host, self._port)
