"""The lock notice: failed sign-ins have locked the account; the owner gets a reset link."""

from __future__ import annotations

from email.message import EmailMessage

from domain.ports import LockNoticeMail
from server.mail.security_message import (
    SecurityText,
    build_security_message,
    token_link,
    utc_minute,
)

SUBJECT = "Your account was locked after failed sign-ins"


def build_lock_notice(mail: LockNoticeMail, *, sender: str, link_template: str) -> EmailMessage:
    """A lock notice from ``sender`` to ``mail.to`` (plain text and HTML), with the reset link."""
    text = SecurityText(
        subject=SUBJECT,
        before_link=[
            "Hello,",
            f"By {utc_minute(mail.locked_at)}, several sign-ins to your account in a row had "
            "failed with a wrong password. Sign-in is now paused after each further failure, "
            "for longer each time; once a pause is over, the right password works again.",
            "If these attempts were not yours, someone may be guessing your password. "
            "Follow this link to choose a new one, which also lifts the pause:",
        ],
        link=token_link(mail.token, link_template),
        after_link=[
            f"The link works once, until {utc_minute(mail.expires_at)}.",
            "If the attempts were yours and you remember your password, you may ignore this "
            "message.",
        ],
    )
    return build_security_message(text, sender=sender, to=mail.to)
