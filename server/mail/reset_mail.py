"""The password-reset message, shared by every notifier, and the error for a failed delivery."""

from __future__ import annotations

import email.policy
import email.utils
import urllib.parse
from datetime import UTC, datetime
from email.message import EmailMessage

from domain.ports import PasswordResetMail

SUBJECT = "Reset your password"
TOKEN_PLACEHOLDER = "{token}"


class NotificationError(Exception):
    """A message could not be delivered; the text never contains the token or a password."""


def check_link_template(link_template: str) -> str:
    """Return the template unchanged if it holds ``{token}`` exactly once, else raise ValueError."""
    if link_template.count(TOKEN_PLACEHOLDER) != 1:
        raise ValueError("must contain {token} exactly once")
    return link_template


def reset_link(token: str, link_template: str) -> str:
    """The link the user follows: the template with the URL-quoted token in place of ``{token}``."""
    # str.replace rather than str.format: a URL may hold other braces.
    quoted = urllib.parse.quote(token, safe="")
    return check_link_template(link_template).replace(TOKEN_PLACEHOLDER, quoted)


def recipient_domain(address: str) -> str:
    """The part after the last ``@``, for log lines that must not name the user."""
    return address.rpartition("@")[2] or "?"


def build_reset_message(
    mail: PasswordResetMail, *, sender: str, link_template: str
) -> EmailMessage:
    """A plain-text password-reset message from ``sender`` to ``mail.to``."""
    if mail.expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    expires = mail.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = (
        f"Hello {mail.first_name},\n"
        "\n"
        "Someone, we hope you, asked to reset the password of your account.\n"
        "Follow this link to choose a new password:\n"
        "\n"
        f"{reset_link(mail.token, link_template)}\n"
        "\n"
        f"The link works once, until {expires}.\n"
        "\n"
        "If you did not ask for this, ignore this message; your password stays as it is.\n"
    )
    # An address with non-ASCII characters can only be written as UTF-8 (RFC 6532, SMTPUTF8).
    policy = email.policy.SMTP if mail.to.isascii() else email.policy.SMTPUTF8
    message = EmailMessage(policy=policy)
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = SUBJECT
    message["Date"] = email.utils.format_datetime(datetime.now(UTC))
    # An explicit domain: make_msgid() would otherwise ask DNS for this host's FQDN.
    _, at, sender_domain = email.utils.parseaddr(sender)[1].rpartition("@")
    message["Message-ID"] = email.utils.make_msgid(domain=sender_domain if at else "localhost")
    # Unencoded body (8bit only for non-ASCII names) keeps the link readable in a raw .eml file;
    # aiosmtplib re-encodes it for servers that lack 8BITMIME.
    message.set_content(body, cte="7bit" if body.isascii() else "8bit")
    return message
