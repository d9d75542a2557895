"""Tamper-evident page tokens for ListUserEvents: a user and the last sequence of a page, signed."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import uuid

from domain.errors import InvalidValue
from domain.values import UserId

# Another format byte than ListUsers' tokens (domain.page_tokens), so neither passes for the other.
_FORMAT = b"\x02"
_BODY = struct.Struct(">c16sQ")  # format, user id, last sequence of the page
_MAC_BYTES = 16


class EventPageTokenCodec:
    """Turns (user, last sequence) into a token and back; refuses tokens it did not make, and
    tokens made for another user's list."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the page-token key must be at least 16 bytes")
        self._key = key

    def encode(self, user_id: UserId, last_sequence: int) -> str:
        body = _BODY.pack(_FORMAT, uuid.UUID(user_id.value).bytes, last_sequence)
        return _text(body + self._mac(body))

    def decode(self, token: str, user_id: UserId) -> int:
        """The last sequence of the page ``token`` follows; InvalidValue if forged or not
        issued for ``user_id``."""
        invalid = InvalidValue(
            "is not a page token issued by this service for this user_id; "
            "start again with an empty page_token"
        )
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii") + b"=" * (-len(token) % 4))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise invalid from None
        if _text(raw) != token:
            raise invalid  # not the one spelling this service gives (e.g. other padding bits)
        body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(body) != _BODY.size or not hmac.compare_digest(mac, self._mac(body)):
            raise invalid
        kind, user, last_sequence = _BODY.unpack(body)
        if kind != _FORMAT or user != uuid.UUID(user_id.value).bytes:
            raise invalid
        return int(last_sequence)

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_BYTES]


def _text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
