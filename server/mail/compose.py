"""Each kind of security mail, from its port (domain.ports) to a message: the values its templates
receive, the link of its kind, the envelope.

What a registrant chose appears in no mail but their first name in the greeting, and only when it
looks like a name: letters, marks, spaces, apostrophes, hyphens, and full stops that end a word.
Anything else (a link, an address, digits, markup, a line break) could be made to read as the
service's own words, so such a name is left out and the greeting has none.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import datetime
from email.message import EmailMessage

from domain.events import SecondFactorKind
from domain.ports import (
    EmailChangeMail,
    EmailChangeNoticeMail,
    LockNoticeMail,
    PasswordResetMail,
    SecondFactorNoticeMail,
    VerificationMail,
)
from server.mail.envelope import build_message
from server.mail.links import LinkTemplates, token_link, utc_minute
from server.mail.templates import MailTemplates

_NAME_PUNCTUATION = frozenset("'\u2019-\u2010.")
# How a notice names each kind of second factor.
_FACTOR_NAMES = {
    SecondFactorKind.TOTP: "an authenticator app",
    SecondFactorKind.PASSKEY: "a passkey",
}


def greeting_name(raw: str) -> str:
    """The name a greeting shows: ``raw`` with its spaces made plain and single, or "" when it
    holds anything but letters, marks, spaces, apostrophes, hyphens and word-ending full stops
    (a control or format character or a line break among them)."""
    text = unicodedata.normalize("NFC", raw)
    if any(
        unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp")
        for ch in text
    ):
        return ""
    name = " ".join("".join(" " if unicodedata.category(ch) == "Zs" else ch for ch in text).split())
    for index, ch in enumerate(name):
        if ch == "." and name[index + 1 : index + 2] not in ("", " "):
            return ""  # "evil.example" would become a link in many mail readers
        if not (ch == " " or ch in _NAME_PUNCTUATION or unicodedata.category(ch)[0] in "LM"):
            return ""
    return name


class MailComposer:
    """Writes each kind of security mail from ``sender`` with the templates and links given."""

    def __init__(
        self, *, sender: str, product: str, links: LinkTemplates, templates: MailTemplates
    ) -> None:
        self._sender = sender
        self._product = product
        self._links = links
        self._templates = templates

    def __repr__(self) -> str:
        return f"MailComposer(sender={self._sender!r}, product={self._product!r})"

    @property
    def sender(self) -> str:
        return self._sender

    def password_reset(self, mail: PasswordResetMail) -> EmailMessage:
        link = token_link(mail.token, self._links.password_reset)
        return self._compose("password_reset", mail.to, mail.name, link, mail.expires_at, {})

    def lock_notice(self, mail: LockNoticeMail) -> EmailMessage:
        link = token_link(mail.token, self._links.password_reset)
        extra = {"locked_at": utc_minute(mail.locked_at)}
        return self._compose("lock_notice", mail.to, mail.name, link, mail.expires_at, extra)

    def verification(self, mail: VerificationMail) -> EmailMessage:
        link = token_link(mail.token, self._links.email_verification)
        extra = {"code": mail.code}
        return self._compose("verification", mail.to, mail.name, link, mail.expires_at, extra)

    def email_change(self, mail: EmailChangeMail) -> EmailMessage:
        link = token_link(mail.token, self._links.email_change)
        return self._compose("email_change", mail.to, mail.name, link, mail.expires_at, {})

    def email_change_notice(self, mail: EmailChangeNoticeMail) -> EmailMessage:
        # The new address stays out: its owner chose it, and this mail goes to someone else.
        link = token_link(mail.cancel_token, self._links.email_change_cancel)
        return self._compose("email_change_notice", mail.to, mail.name, link, mail.expires_at, {})

    def second_factor_notice(self, mail: SecondFactorNoticeMail) -> EmailMessage:
        extra = {
            "factor": _FACTOR_NAMES[mail.kind],
            "change": "added" if mail.added else "removed",
        }
        return self._compose("second_factor_notice", mail.to, mail.first_name, "", None, extra)

    def _compose(
        self,
        kind: str,
        to: str,
        name: str,
        link: str,
        expires_at: datetime | None,
        extra: Mapping[str, str],
    ) -> EmailMessage:
        values = {
            "product": self._product,
            "name": greeting_name(name),
            "link": link,
            "expires": utc_minute(expires_at) if expires_at is not None else "",
            **extra,
        }
        rendered = self._templates.render(kind, values)
        return build_message(rendered, sender=self._sender, to=to)
