"""The one builder of security mail (password reset, lock notice): the same text as plain text and
as HTML (multipart/alternative), with only the service's own words, the link and times in it.

No text a registrant chose (a name, say) is ever put in: the mail goes to whoever owns the
address, and such text could be made to read as a lure. What is interpolated (the link, a time)
is escaped in the HTML part all the same.
"""

from __future__ import annotations

import email.policy
import email.utils
import html
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage

TOKEN_PLACEHOLDER = "{token}"


@dataclass(frozen=True, repr=False)
class SecurityText:
    """What a security mail says: paragraphs before the link, the link, paragraphs after it.

    ``link`` holds a live token: it never shows in repr.
    """

    subject: str
    before_link: Sequence[str]
    link: str
    after_link: Sequence[str]

    def __repr__(self) -> str:
        return f"SecurityText(subject={self.subject!r}, link=***)"


def check_link_template(link_template: str) -> str:
    """Return the template unchanged if it holds ``{token}`` exactly once, else raise ValueError."""
    if link_template.count(TOKEN_PLACEHOLDER) != 1:
        raise ValueError("must contain {token} exactly once")
    return link_template


def token_link(token: str, link_template: str) -> str:
    """The link the user follows: the template with the URL-quoted token in place of ``{token}``."""
    # str.replace rather than str.format: a URL may hold other braces.
    quoted = urllib.parse.quote(token, safe="")
    return check_link_template(link_template).replace(TOKEN_PLACEHOLDER, quoted)


def utc_minute(moment: datetime) -> str:
    """A time as mail shows it: ``2026-11-26 04:15 UTC``."""
    if moment.tzinfo is None:
        raise ValueError("times in mail must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def build_security_message(text: SecurityText, *, sender: str, to: str) -> EmailMessage:
    """A multipart/alternative message from ``sender`` to ``to``: plain text first, then HTML."""
    # An address with non-ASCII characters can only be written as UTF-8 (RFC 6532, SMTPUTF8).
    policy = email.policy.SMTP if to.isascii() else email.policy.SMTPUTF8
    message = EmailMessage(policy=policy)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = text.subject
    message["Date"] = email.utils.format_datetime(datetime.now(UTC))
    # An explicit domain: make_msgid() would otherwise ask DNS for this host's FQDN.
    _, at, sender_domain = email.utils.parseaddr(sender)[1].rpartition("@")
    message["Message-ID"] = email.utils.make_msgid(domain=sender_domain if at else "localhost")
    plain, rich = _plain(text), _html(text)
    # Unencoded parts (7bit: the text is ASCII) keep the link readable in a raw .eml file;
    # aiosmtplib re-encodes for servers that need it.
    message.set_content(plain, cte="7bit" if plain.isascii() else "8bit")
    message.add_alternative(rich, subtype="html", cte="7bit" if rich.isascii() else "8bit")
    return message


def _plain(text: SecurityText) -> str:
    paragraphs = [*text.before_link, text.link, *text.after_link]
    return "\n\n".join(paragraphs) + "\n"


def _html(text: SecurityText) -> str:
    link = html.escape(text.link, quote=True)
    paragraphs = [
        *(f"<p>{html.escape(p)}</p>" for p in text.before_link),
        f'<p><a href="{link}">{link}</a></p>',
        *(f"<p>{html.escape(p)}</p>" for p in text.after_link),
    ]
    title = html.escape(text.subject)
    body = "\n".join(paragraphs)
    return (
        f'<!DOCTYPE html>\n<html>\n<head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body>\n{body}\n</body>\n</html>\n"
    )
