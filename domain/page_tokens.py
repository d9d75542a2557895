"""Tamper-evident page tokens for ListUsers: the last key of a page, signed with HMAC-SHA256."""

from __future__ import annotations

import uuid

from domain.errors import InvalidValue
from domain.signed_tokens import TokenSigner
from domain.values import UserId

# Another format byte than ListUserEvents' tokens (domain.event_page_tokens).
_FORMAT = b"\x01"


class PageTokenCodec:
    """Turns a page's last key into a token and back, refusing any token it did not make."""

    def __init__(self, key: bytes) -> None:
        self._signer = TokenSigner(key)

    def encode(self, last_key: UserId) -> str:
        return self._signer.seal(_FORMAT + uuid.UUID(last_key.value).bytes)

    def decode(self, token: str) -> UserId:
        body = self._signer.open(token)
        if body is None or len(body) != 1 + 16 or body[:1] != _FORMAT:
            raise InvalidValue(
                "is not a page token issued by this service; start again with an empty page_token"
            )
        return UserId(str(uuid.UUID(bytes=body[1:])))
