"""Mail about the address itself: verifying it, and moving an account to another one."""

from __future__ import annotations

from email.message import EmailMessage

from domain.ports import EmailChangeMail, EmailChangeNoticeMail, VerificationMail
from server.mail.security_message import (
    SecurityText,
    build_security_message,
    token_link,
    utc_minute,
)


def build_verification_message(
    mail: VerificationMail, *, sender: str, link_template: str
) -> EmailMessage:
    """Asks the owner of ``mail.to`` to confirm it, by the link or by the code."""
    text = SecurityText(
        subject="Confirm your email address",
        before_link=[
            "Hello,",
            "Someone, we hope you, created an account with this address. "
            "Follow this link to confirm it:",
        ],
        link=token_link(mail.token, link_template),
        after_link=[
            f"Or enter this code where you signed up: {mail.code}",
            f"The link and the code work once, until {utc_minute(mail.expires_at)}.",
            "If you did not create an account, ignore this message.",
        ],
    )
    return build_security_message(text, sender=sender, to=mail.to)


def build_email_change_message(
    mail: EmailChangeMail, *, sender: str, link_template: str
) -> EmailMessage:
    """Asks the owner of the new address to confirm the move to it."""
    text = SecurityText(
        subject="Confirm your new email address",
        before_link=[
            "Hello,",
            "Someone, we hope you, asked to move an account to this address. "
            "Follow this link to confirm it:",
        ],
        link=token_link(mail.token, link_template),
        after_link=[
            f"The link works once, until {utc_minute(mail.expires_at)}.",
            "If you did not ask for this, ignore this message; nothing changes.",
        ],
    )
    return build_security_message(text, sender=sender, to=mail.to)


def build_email_change_notice(
    mail: EmailChangeNoticeMail, *, sender: str, link_template: str
) -> EmailMessage:
    """Tells the owner of the address in use that a move away from it was asked, with a link
    that cancels it."""
    text = SecurityText(
        subject="Your account's email address is about to change",
        before_link=[
            "Hello,",
            f"Someone asked to move your account to the address {mail.new_address_hint}. "
            "This address keeps working until the new one is confirmed.",
            "If this was not you, follow this link to cancel the change:",
        ],
        link=token_link(mail.cancel_token, link_template),
        after_link=[f"The link works once, until {utc_minute(mail.expires_at)}."],
    )
    return build_security_message(text, sender=sender, to=mail.to)
