"""Security mail for tests: a composer with the packaged templates (or a folder's), one mail of
each kind, and the parts of a message as a mail reader sees them."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from domain.ports import (
    EmailChangeMail,
    EmailChangeNoticeMail,
    LockNoticeMail,
    Notifier,
    PasswordResetMail,
    SecondFactorNoticeMail,
    VerificationMail,
)
from server.mail.compose import MailComposer
from server.mail.links import LinkTemplates
from server.mail.templates import MailTemplates

SENDER = "Biome <no-reply@biome.example>"
PRODUCT = "Biome Accounts"
LINKS = LinkTemplates(
    password_reset="https://app.biome.example/reset-password?token={token}",
    email_verification="https://app.biome.example/verify-email?token={token}",
    email_change="https://app.biome.example/confirm-email-change?token={token}",
    email_change_cancel="https://app.biome.example/cancel-email-change?token={token}",
)
EXPIRES = datetime(2026, 11, 26, 5, 15, tzinfo=UTC)
LOCKED_AT = EXPIRES - timedelta(hours=1)
CODE = "042917"

_PACKAGED = MailTemplates()


def composer(
    *,
    templates_dir: Path | None = None,
    links: LinkTemplates = LINKS,
    product: str = PRODUCT,
    sender: str = SENDER,
) -> MailComposer:
    templates = _PACKAGED if templates_dir is None else MailTemplates(templates_dir)
    return MailComposer(sender=sender, product=product, links=links, templates=templates)


Mail = (
    PasswordResetMail
    | LockNoticeMail
    | VerificationMail
    | EmailChangeMail
    | EmailChangeNoticeMail
    | SecondFactorNoticeMail
)


def mails(
    *, to: str = "ann@example.com", name: str = "Ann", token: str = "tok/en+odd=chars&more"
) -> dict[str, Mail]:
    """One mail of each kind (keyed as the templates are), all carrying ``token``."""
    return {
        "password_reset": PasswordResetMail(to=to, name=name, token=token, expires_at=EXPIRES),
        "lock_notice": LockNoticeMail(
            to=to, name=name, locked_at=LOCKED_AT, token=token, expires_at=EXPIRES
        ),
        "verification": VerificationMail(
            to=to, name=name, token=token, code=CODE, expires_at=EXPIRES
        ),
        "email_change": EmailChangeMail(to=to, name=name, token=token, expires_at=EXPIRES),
        "email_change_notice": EmailChangeNoticeMail(
            to=to,
            name=name,
            cancel_token=token,
            expires_at=EXPIRES,
        ),
    }


KINDS = tuple(mails())
LINK_OF_KIND = {
    "password_reset": LINKS.password_reset,
    "lock_notice": LINKS.password_reset,
    "verification": LINKS.email_verification,
    "email_change": LINKS.email_change,
    "email_change_notice": LINKS.email_change_cancel,
}


def compose(mail: Mail, writer: MailComposer | None = None) -> EmailMessage:
    """The message ``writer`` (the packaged templates by default) makes of ``mail``."""
    writer = writer or composer()
    match mail:
        case PasswordResetMail():
            return writer.password_reset(mail)
        case LockNoticeMail():
            return writer.lock_notice(mail)
        case VerificationMail():
            return writer.verification(mail)
        case EmailChangeMail():
            return writer.email_change(mail)
        case EmailChangeNoticeMail():
            return writer.email_change_notice(mail)
        case SecondFactorNoticeMail():
            return writer.second_factor_notice(mail)


async def send(notifier: Notifier, mail: Mail) -> None:
    """``mail`` sent by the ``notifier`` method for its kind."""
    match mail:
        case PasswordResetMail():
            await notifier.send_password_reset(mail)
        case LockNoticeMail():
            await notifier.send_lock_notice(mail)
        case VerificationMail():
            await notifier.send_verification(mail)
        case EmailChangeMail():
            await notifier.send_email_change(mail)
        case EmailChangeNoticeMail():
            await notifier.send_email_change_notice(mail)
        case SecondFactorNoticeMail():
            await notifier.send_second_factor_notice(mail)


def with_name(mail: Mail, name: str) -> Mail:
    if isinstance(mail, SecondFactorNoticeMail):
        return replace(mail, first_name=name)
    return replace(mail, name=name)


def as_received(message: EmailMessage) -> EmailMessage:
    """The message as a mail reader would see it: serialized, then parsed again."""
    parsed = email.message_from_bytes(bytes(message), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def part(message: EmailMessage, subtype: str) -> str:
    """The text/``subtype`` alternative of a multipart/alternative message (lines end in \\n)."""
    assert message.get_content_type() == "multipart/alternative"
    body = message.get_body(preferencelist=(subtype,))
    assert body is not None and body.get_content_type() == f"text/{subtype}"
    content = body.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")
