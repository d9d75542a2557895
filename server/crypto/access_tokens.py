"""Ed25519-signed JWT access tokens, the signing keys they use, and the JWKS that verifies them."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from domain.ports import AccessToken

log = logging.getLogger(__name__)

_ALGORITHM = "EdDSA"
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)


class SigningKeyError(ValueError):
    """A signing key could not be loaded (the message never contains key material)."""


@dataclass(frozen=True, repr=False)
class SigningKeys:
    """The key that signs (the newest) and every public key published for verification."""

    signer: Ed25519PrivateKey
    kid: str
    published: tuple[tuple[str, Ed25519PublicKey], ...]

    def __repr__(self) -> str:
        kids = [kid for kid, _ in self.published]
        return f"SigningKeys(kid={self.kid!r}, published={kids!r})"


def load_signing_keys(pem_text: str) -> SigningKeys:
    """Keys from concatenated PEM blocks: the first an Ed25519 private key, the rest published."""
    blocks = list(_PEM_BLOCK.finditer(pem_text))
    if not blocks:
        raise SigningKeyError("no PEM key found in the signing key text")
    if _PEM_BLOCK.sub("", pem_text).strip():
        raise SigningKeyError("the signing key text has content outside complete PEM blocks")
    keys = [_load_block(number, block) for number, block in enumerate(blocks, start=1)]
    signer = keys[0]
    if not isinstance(signer, Ed25519PrivateKey):
        raise SigningKeyError("key 1 must be an Ed25519 private key: it is the one that signs")
    published: dict[str, Ed25519PublicKey] = {}
    for key in keys:
        public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
        published.setdefault(_thumbprint(public), public)
    kid = _thumbprint(signer.public_key())
    log.info("loaded %d signing key(s); signing with kid %s", len(published), kid)
    return SigningKeys(signer=signer, kid=kid, published=tuple(published.items()))


def generate_signing_keys() -> SigningKeys:
    """A fresh Ed25519 key, for development."""
    signer = Ed25519PrivateKey.generate()
    kid = _thumbprint(signer.public_key())
    return SigningKeys(signer=signer, kid=kid, published=((kid, signer.public_key()),))


def signing_key_pem(keys: SigningKeys) -> str:
    """The signer as an unencrypted PKCS8 PEM block."""
    return keys.signer.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


class JwtAccessTokenIssuer:
    """domain.ports.AccessTokenIssuer: EdDSA-signed JWTs whose header kid names a JWKS entry."""

    def __init__(
        self, keys: SigningKeys, *, issuer: str, audience: str, lifetime_seconds: int
    ) -> None:
        if lifetime_seconds <= 0:
            raise ValueError("lifetime_seconds must be positive")
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._lifetime = lifetime_seconds

    def issue(
        self,
        *,
        user_id: str,
        session_id: str,
        now: datetime,
        email_verified: bool = False,
        amr: tuple[str, ...] = ("pwd",),
        auth_time: datetime | None = None,
    ) -> AccessToken:
        signed_in = now if auth_time is None else auth_time
        if now.tzinfo is None or signed_in.tzinfo is None:
            raise ValueError("now and auth_time must be timezone-aware")
        issued_at = int(now.timestamp())
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": user_id,
            "sid": session_id,
            "iat": issued_at,
            "exp": issued_at + self._lifetime,
            "jti": uuid.uuid4().hex,
            "email_verified": email_verified,
            "amr": list(amr),
            "auth_time": int(signed_in.timestamp()),
        }
        value = jwt.encode(
            claims, self._keys.signer, algorithm=_ALGORITHM, headers={"kid": self._keys.kid}
        )
        return AccessToken(value=value, expires_in=self._lifetime)

    def jwks(self) -> list[dict[str, str]]:
        """The public keys as JWKs, signer first: what a verifier fetches."""
        return [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": _raw_x(public),
                "kid": kid,
                "alg": _ALGORITHM,
                "use": "sig",
            }
            for kid, public in self._keys.published
        ]


def _load_block(number: int, block: re.Match[str]) -> Ed25519PrivateKey | Ed25519PublicKey:
    label = block.group(1)
    if label != "PUBLIC KEY" and not label.endswith("PRIVATE KEY"):
        raise SigningKeyError(f"key {number} is a PEM {label}, not a private or public key")
    data = block.group(0).encode("ascii", errors="replace")
    try:
        if label == "PUBLIC KEY":
            key: object = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        # cryptography raises TypeError for an encrypted key loaded without a password.
        raise SigningKeyError(f"key {number} is encrypted; use an unencrypted PKCS8 key") from None
    except UnsupportedAlgorithm:
        raise SigningKeyError(f"key {number} is not an Ed25519 key") from None
    except ValueError:
        # cryptography's messages are generic, but they are not ours to vouch for: leave them out.
        raise SigningKeyError(f"key {number} could not be parsed as a PEM key") from None
    if not isinstance(key, Ed25519PrivateKey | Ed25519PublicKey):
        raise SigningKeyError(f"key {number} is not an Ed25519 key")
    return key


def _raw_x(public_key: Ed25519PublicKey) -> str:
    return _b64url(public_key.public_bytes_raw())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _thumbprint(public_key: Ed25519PublicKey) -> str:
    """The RFC 7638 thumbprint (SHA-256, base64url without padding) of an Ed25519 public key."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _raw_x(public_key)},
        separators=(",", ":"),
        sort_keys=True,
    )
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())
