"""Secret tokens (refresh, password reset): made, parsed, compared; stored only as hashes.

A token reads ``<user id>.<secret>``: the user id is its lookup key, so finding the account
needs one strongly consistent read by id and never an eventually consistent index; the
secret carries 256 random bits. Only the SHA-256 of the whole token is ever stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from domain.errors import InvalidValue
from domain.values import UserId

SECRET_BYTES = 32  # 256 bits
_MAX_TOKEN_LENGTH = 200


@dataclass(frozen=True, repr=False)
class IssuedToken:
    """A freshly made token (the secret to hand out once) and the hash to store."""

    value: str
    token_hash: str

    def __repr__(self) -> str:
        return "IssuedToken(***)"


@dataclass(frozen=True)
class TokenLookup:
    """A presented token reduced to what may be looked up and compared: its user and its hash."""

    user_id: UserId
    token_hash: str


def issue_token(user_id: UserId) -> IssuedToken:
    value = f"{user_id.value}.{secrets.token_urlsafe(SECRET_BYTES)}"
    return IssuedToken(value=value, token_hash=hash_token(value))


def hash_token(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def parse_token(raw: str) -> TokenLookup:
    """The lookup of a presented token; InvalidValue when it cannot be one of ours."""
    text = raw.strip()
    if not text:
        raise InvalidValue("must not be empty")
    user_part, dot, secret = text.partition(".")
    if not dot or not secret or len(text) > _MAX_TOKEN_LENGTH or not text.isascii():
        raise InvalidValue("is not a token this service issued")
    try:
        user_id = UserId.parse(user_part)
    except InvalidValue:
        raise InvalidValue("is not a token this service issued") from None
    return TokenLookup(user_id=user_id, token_hash=hash_token(text))


def same_hash(stored: str | None, presented: str) -> bool:
    """Constant-time comparison, so response times reveal nothing about a stored hash."""
    return stored is not None and hmac.compare_digest(stored, presented)
