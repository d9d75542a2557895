"""The AES-256-GCM key ring that seals TOTP secrets at rest, and the TotpCodes port on top of it
(RFC 6238 codes by pyotp, QR codes by segno).

``USER_SERVICE_TOTP_ENCRYPTION_KEYS`` holds comma-separated ``<key id>:<base64 of 32 bytes>``
entries. The first key seals every new secret; every key unseals, so keys rotate by putting a new
one first and dropping the old one once no stored secret names it (``user-service migrate``
does not re-seal: a user's secret is sealed anew when they enroll again). A sealed secret reads
``<key id>:<base64url of a 96-bit nonce, the ciphertext and the 128-bit tag>``; the key id travels
with it, in clear, and is bound to it as associated data, so that a ciphertext moved under
another key id does not open.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import logging
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.second_factors import NewTotpSecret, SealedSecret

log = logging.getLogger(__name__)

KEY_BYTES = 32
NONCE_BYTES = 12
SECRET_BYTES = 20  # 160 bits, as RFC 4226 recommends; 32 base-32 symbols
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")


class TotpKeyError(ValueError):
    """A TOTP encryption key, or a sealed secret, cannot be used; the message never holds key
    material nor a secret."""


@dataclass(frozen=True, repr=False)
class TotpKeyRing:
    """AES-256-GCM keys by id; ``sealing_id`` names the one that seals."""

    keys: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise TotpKeyError("no TOTP encryption key given")
        ids = [key_id for key_id, _ in self.keys]
        if len(set(ids)) != len(ids):
            raise TotpKeyError("two TOTP encryption keys have the same id")
        for key_id, key in self.keys:
            if not _KEY_ID.fullmatch(key_id):
                raise TotpKeyError(
                    "a TOTP encryption key id must be 1 to 32 letters, digits, '.', '_' or '-'"
                )
            if len(key) != KEY_BYTES:
                raise TotpKeyError(f"TOTP encryption key {key_id} is not {KEY_BYTES} bytes")

    def __repr__(self) -> str:
        return f"TotpKeyRing(ids={[key_id for key_id, _ in self.keys]!r})"

    @property
    def sealing_id(self) -> str:
        return self.keys[0][0]

    @classmethod
    def parse(cls, text: str) -> TotpKeyRing:
        """Keys from ``id:base64key,id:base64key``; TotpKeyError naming what is wrong (never a
        key)."""
        keys: list[tuple[str, bytes]] = []
        for number, entry in enumerate(filter(None, (p.strip() for p in text.split(","))), 1):
            key_id, colon, encoded = entry.partition(":")
            if not colon:
                raise TotpKeyError(f"TOTP encryption key {number} is not <id>:<base64 key>")
            try:
                standard = encoded.strip().replace("-", "+").replace("_", "/")
                key = base64.b64decode(_padded(standard), validate=True)
            except (binascii.Error, ValueError):
                raise TotpKeyError(
                    f"TOTP encryption key {number} ({key_id.strip()}) is not valid base64"
                ) from None
            keys.append((key_id.strip(), key))
        return cls(tuple(keys))

    @classmethod
    def generate(cls, key_id: str) -> TotpKeyRing:
        """A ring of one fresh random key (development without a configured key)."""
        return cls(((key_id, AESGCM.generate_key(bit_length=256)),))

    def seal(self, plain: bytes) -> SealedSecret:
        key_id, key = self.keys[0]
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + AESGCM(key).encrypt(nonce, plain, key_id.encode())
        return SealedSecret(f"{key_id}:{base64.urlsafe_b64encode(sealed).decode().rstrip('=')}")

    def unseal(self, sealed: SealedSecret) -> bytes:
        """The secret in clear; TotpKeyError for an unknown key id or a damaged ciphertext."""
        key_id, colon, encoded = sealed.value.partition(":")
        key = dict(self.keys).get(key_id)
        if not colon or key is None:
            raise TotpKeyError(f"no TOTP encryption key with the id {key_id[:32]!r} is configured")
        try:
            raw = base64.urlsafe_b64decode(_padded(encoded))
            return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], key_id.encode())
        except (binascii.Error, ValueError, InvalidTag):
            raise TotpKeyError(
                f"a TOTP secret sealed with key {key_id} does not open: damaged"
            ) from None


class SealedTotpCodes:
    """domain.ports.TotpCodes: secrets of 160 random bits sealed by ``keys``, codes of 6 digits
    every 30 seconds (SHA-1, what every authenticator app reads), in apps under ``issuer``."""

    def __init__(self, keys: TotpKeyRing, issuer: str) -> None:
        self._keys = keys
        self._issuer = issuer

    def __repr__(self) -> str:
        return f"SealedTotpCodes(keys={self._keys!r}, issuer={self._issuer!r})"

    def new_secret(self) -> NewTotpSecret:
        raw = secrets.token_bytes(SECRET_BYTES)
        return NewTotpSecret(base64.b32encode(raw).decode(), self._keys.seal(raw))

    def provisioning_uri(self, secret: NewTotpSecret, account_name: str) -> str:
        return pyotp.TOTP(secret.secret).provisioning_uri(
            name=account_name, issuer_name=self._issuer
        )

    def matching_step(
        self, sealed: SealedSecret, code: str, now: datetime, *, after_step: int | None
    ) -> int | None:
        totp = pyotp.TOTP(base64.b32encode(self._keys.unseal(sealed)).decode())
        current = totp.timecode(now)
        found = None
        # Every step of the window is computed and compared (no early exit), earliest wins.
        for step in (current + 1, current, current - 1):
            matches = hmac.compare_digest(totp.generate_otp(step), code)
            if matches and (after_step is None or step > after_step):
                found = step
        return found


def qr_code_svg(uri: str) -> bytes:
    """The URI as a QR code, an SVG image (UTF-8 bytes)."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=4, xmldecl=False)
    return buffer.getvalue()


def _padded(text: str) -> str:
    return text + "=" * (-len(text) % 4)
