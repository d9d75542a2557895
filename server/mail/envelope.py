"""The envelope of every security mail: headers, and the rendered text and HTML as
multipart/alternative alternatives (plain text first)."""

from __future__ import annotations

import email.policy
import email.utils
from datetime import UTC, datetime
from email.message import EmailMessage

from server.mail.templates import RenderedMail

MAX_LINE_BYTES = 998  # RFC 5322, section 2.1.1


def build_message(rendered: RenderedMail, *, sender: str, to: str) -> EmailMessage:
    """A multipart/alternative message from ``sender`` to ``to``: plain text first, then HTML."""
    # An address with non-ASCII characters can only be written as UTF-8 (RFC 6532, SMTPUTF8).
    policy = email.policy.SMTP if to.isascii() else email.policy.SMTPUTF8
    message = EmailMessage(policy=policy)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = rendered.subject
    message["Date"] = email.utils.format_datetime(datetime.now(UTC))
    # An explicit domain: make_msgid() would otherwise ask DNS for this host's FQDN.
    _, at, sender_domain = email.utils.parseaddr(sender)[1].rpartition("@")
    message["Message-ID"] = email.utils.make_msgid(domain=sender_domain if at else "localhost")
    message.set_content(rendered.text, cte=_transfer_encoding(rendered.text))
    message.add_alternative(rendered.html, subtype="html", cte=_transfer_encoding(rendered.html))
    return message


def _transfer_encoding(content: str) -> str:
    """Unencoded (7bit when ASCII) where SMTP allows, so the link reads plainly in a raw .eml
    file (aiosmtplib re-encodes for servers without 8BITMIME); quoted-printable when a line is
    longer than SMTP carries (998 bytes), as a replaced template may make it."""
    if any(len(line.encode()) > MAX_LINE_BYTES for line in content.splitlines()):
        return "quoted-printable"
    return "7bit" if content.isascii() else "8bit"
