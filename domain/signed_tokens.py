"""Opaque tokens the service hands out and takes back: a body and its HMAC-SHA256, base64url."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

_MAC_BYTES = 16


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
