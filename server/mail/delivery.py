"""What every notifier shares: the error for a failed delivery, the recipient as logs show it."""

from __future__ import annotations


class NotificationError(Exception):
    """A message could not be delivered; the text never contains the token or a password."""


def recipient_domain(address: str) -> str:
    """The part after the last ``@``, for log lines that must not name the user."""
    return address.rpartition("@")[2] or "?"
