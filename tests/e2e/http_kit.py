"""What the HTTP listener's end-to-end tests share: requests over real sockets, signing keys."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from multidict import CIMultiDictProxy
from pydantic import SecretStr

JWKS = "/.well-known/jwks.json"
DISCOVERY = "/.well-known/openid-configuration"
TIMEOUT = aiohttp.ClientTimeout(total=10)


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, headers, body."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Reply:
    """One request on a fresh connection (no client cache in between)."""
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        async with session.request(
            method, url, headers=headers, ssl=ssl_context if ssl_context is not None else True
        ) as response:
            return Reply(response.status, response.headers, await response.read())


def new_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def signing_keys_setting(signer: Ed25519PrivateKey, *published: Ed25519PrivateKey) -> SecretStr:
    """USER_SERVICE_JWT_SIGNING_KEYS: ``signer`` first (it signs), then older keys' public
    halves, still published for the tokens they signed."""
    blocks = [
        signer.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    ]
    blocks += [
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
        for key in published
    ]
    return SecretStr("".join(blocks))
