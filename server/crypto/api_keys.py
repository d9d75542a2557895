"""API keys for calling services: new random keys, and the SHA-256 the server is configured with."""

from __future__ import annotations

import hashlib
import secrets

API_KEY_PREFIX = "usk_"
_KEY_BYTES = 32


def new_api_key() -> str:
    """A fresh random API key: "usk_" and 32 random bytes, URL-safe base64 (43 characters)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)


def api_key_sha256(key: str) -> str:
    """The lower-case hex SHA-256 of ``key`` (UTF-8), as the server's API key settings hold it."""
    return hashlib.sha256(key.encode()).hexdigest()
