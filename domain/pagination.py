"""Page tokens: opaque, tamper-evident positions the service hands out with a page and takes back.

A token is a small binary body and its HMAC-SHA256, in URL-safe base64. The body's first byte
says which list it belongs to, so a token of one list never passes for another's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import uuid

from domain.errors import InvalidValue
from domain.values import UserId

_MAC_BYTES = 16
# The format bytes of the two lists' tokens.
_USERS_FORMAT = b"\x01"
_EVENTS_FORMAT = b"\x02"
_EVENTS_BODY = struct.Struct(">c16sQ")  # format, user id, last sequence of the page


class TokenSigner:
    """Seals bytes into a URL-safe token, and opens only tokens it sealed, spelled as it spells
    them (the base64 decoder alone would skip stray characters and accept other padding bits)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the page-token key must be at least 16 bytes")
        self._key = key

    def seal(self, body: bytes) -> str:
        return _text(body + self._mac(body))

    def open(self, token: str) -> bytes | None:
        """The body ``token`` seals; None if this signer did not make it."""
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii") + b"=" * (-len(token) % 4))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            return None
        if _text(raw) != token:
            return None
        body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, self._mac(body)):
            return None
        return body

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_BYTES]


def _text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class PageTokenCodec:
    """ListUsers' tokens: a page's last key into a token and back, refusing any token it did
    not make."""

    def __init__(self, key: bytes) -> None:
        self._signer = TokenSigner(key)

    def encode(self, last_key: UserId) -> str:
        return self._signer.seal(_USERS_FORMAT + uuid.UUID(last_key.value).bytes)

    def decode(self, token: str) -> UserId:
        body = self._signer.open(token)
        if body is None or len(body) != 1 + 16 or body[:1] != _USERS_FORMAT:
            raise InvalidValue(
                "is not a page token issued by this service; start again with an empty page_token"
            )
        return UserId(str(uuid.UUID(bytes=body[1:])))


class EventPageTokenCodec:
    """ListUserEvents' tokens: (user, last sequence) into a token and back; refuses tokens it
    did not make, and tokens made for another user's list."""

    def __init__(self, key: bytes) -> None:
        self._signer = TokenSigner(key)

    def encode(self, user_id: UserId, last_sequence: int) -> str:
        body = _EVENTS_BODY.pack(_EVENTS_FORMAT, uuid.UUID(user_id.value).bytes, last_sequence)
        return self._signer.seal(body)

    def decode(self, token: str, user_id: UserId) -> int:
        """The last sequence of the page ``token`` follows; InvalidValue if forged or not
        issued for ``user_id``."""
        body = self._signer.open(token)
        if body is not None and len(body) == _EVENTS_BODY.size:
            kind, user, last_sequence = _EVENTS_BODY.unpack(body)
            if kind == _EVENTS_FORMAT and user == uuid.UUID(user_id.value).bytes:
                return int(last_sequence)
        raise InvalidValue(
            "is not a page token issued by this service for this user_id; "
            "start again with an empty page_token"
        )
