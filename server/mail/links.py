"""The links in security mail: one template per kind of mail, each holding ``{token}`` once."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, fields
from datetime import UTC, datetime

TOKEN_PLACEHOLDER = "{token}"


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


@dataclass(frozen=True)
class LinkTemplates:
    """Where each kind of link leads: the reset page (reset mail and lock notice), the page that
    verifies an address, and the pages that confirm or cancel an email change."""

    password_reset: str
    email_verification: str
    email_change: str
    email_change_cancel: str

    def __post_init__(self) -> None:
        for field in fields(self):
            try:
                check_link_template(getattr(self, field.name))
            except ValueError as error:
                raise ValueError(f"the {field.name} link template {error}") from None
