"""The capacity service's mail, read from its outbox folder (USER_SERVICE_NOTIFIER=outbox): the
token of a verification or email-change link and a verification's 6-digit code, and a way to
wait for mail the service sends after its reply (so the write before it lands in the window)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import urllib.parse
from email.message import EmailMessage
from pathlib import Path

POLL_SECONDS = 0.01
# The default link templates end in ?token={token}; the code follows the word "code".
_TOKEN_IN_LINK = re.compile(r"[?&]token=([^\s&#]+)")
_CODE_IN_TEXT = re.compile(r"\bcode\b\D{0,40}?\b(\d{6})\b", re.IGNORECASE)


class Outbox:
    """The .eml files the service writes into ``directory``, each handed out once."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._seen: set[str] = set()
        self._recipients: dict[str, str] = {}  # file name: its To header, lower case

    async def next_to(self, to: str) -> EmailMessage:
        """The oldest message to ``to`` not handed out before, once there is one (the caller
        bounds the wait)."""
        while True:
            found = await asyncio.to_thread(self._next_to, to.lower())
            if found is not None:
                return found
            await asyncio.sleep(POLL_SECONDS)

    def _next_to(self, to: str) -> EmailMessage | None:
        if not self._directory.is_dir():
            return None
        for path in sorted(self._directory.glob("*.eml")):  # names sort by time
            if path.name in self._seen:
                continue
            if to not in self._recipients.get(path.name, to):
                continue  # read before: to someone else
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            self._recipients[path.name] = str(message["To"]).lower()
            if to in self._recipients[path.name]:
                self._seen.add(path.name)
                return message
        return None


def _text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain", "html"))
    if body is None:
        raise AssertionError("the message has no text body")
    content = body.get_content()
    assert isinstance(content, str)
    return content


def link_token(message: EmailMessage) -> str:
    """The raw token of the message's link (its ``token=`` parameter)."""
    match = _TOKEN_IN_LINK.search(_text(message))
    if match is None:
        raise AssertionError("the message has no link with a token= parameter")
    return urllib.parse.unquote(match.group(1))


def verification_code(message: EmailMessage) -> str:
    """The 6-digit code a verification message gives."""
    match = _CODE_IN_TEXT.search(_text(message))
    if match is None:
        raise AssertionError("the message has no 6-digit code")
    return match.group(1)
