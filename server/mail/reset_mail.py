"""The password-reset message, built by the one security-mail builder."""

from __future__ import annotations

from email.message import EmailMessage

from domain.ports import PasswordResetMail
from server.mail.security_message import (
    SecurityText,
    build_security_message,
    token_link,
    utc_minute,
)

SUBJECT = "Reset your password"


def build_reset_message(
    mail: PasswordResetMail, *, sender: str, link_template: str
) -> EmailMessage:
    """A password-reset message from ``sender`` to ``mail.to`` (plain text and HTML)."""
    text = SecurityText(
        subject=SUBJECT,
        before_link=[
            "Hello,",
            "Someone, we hope you, asked to reset the password of your account.",
            "Follow this link to choose a new password:",
        ],
        link=token_link(mail.token, link_template),
        after_link=[
            f"The link works once, until {utc_minute(mail.expires_at)}.",
            "If you did not ask for this, ignore this message; your password stays as it is.",
        ],
    )
    return build_security_message(text, sender=sender, to=mail.to)
