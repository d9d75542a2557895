"""Tamper-evident page tokens for ListUsers: the last key of a page, signed with HMAC-SHA256."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid

from domain.errors import InvalidValue
from domain.values import UserId

_FORMAT = b"\x01"
_MAC_BYTES = 16


class PageTokenCodec:
    """Turns a page's last key into a token and back, refusing any token it did not make."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the page-token key must be at least 16 bytes")
        self._key = key

    def encode(self, last_key: UserId) -> str:
        body = _FORMAT + uuid.UUID(last_key.value).bytes
        return base64.urlsafe_b64encode(body + self._mac(body)).rstrip(b"=").decode("ascii")

    def decode(self, token: str) -> UserId:
        invalid = InvalidValue(
            "is not a page token issued by this service; start again with an empty page_token"
        )
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise invalid from None
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
            raise invalid  # not the one spelling this service gives (e.g. other padding bits)
        body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if (
            len(body) != 1 + 16
            or body[:1] != _FORMAT
            or not hmac.compare_digest(mac, self._mac(body))
        ):
            raise invalid
        return UserId(str(uuid.UUID(bytes=body[1:])))

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_BYTES]
