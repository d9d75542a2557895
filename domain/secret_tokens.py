"""Secret tokens (refresh, password reset, email verification) and verification codes: made,
parsed, compared; stored only as hashes.

A reset token reads ``<user id>.<secret>``, a refresh token ``<user id>.<session id>.<secret>``:
the ids are its lookup keys, so finding the account (and the session) needs strongly consistent
reads by key and never an eventually consistent index; the secret carries 256 random bits. Refresh
tokens issued before sessions had their own items have no session id, and still parse (their
``session_id`` is None). Only the SHA-256 of the whole token is ever stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from domain.errors import InvalidValue
from domain.values import UserId

SECRET_BYTES = 32  # 256 bits
CODE_DIGITS = 6
_CODE_SALT_BYTES = 16
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
    """A presented token reduced to what may be looked up and compared: its user, its session
    (None for a reset token and for a refresh token of the older form) and its hash."""

    user_id: UserId
    token_hash: str
    session_id: str | None = None


def issue_token(user_id: UserId, session_id: str | None = None) -> IssuedToken:
    """A new token of ``user_id`` (a refresh token names its ``session_id`` too)."""
    keys = user_id.value if session_id is None else f"{user_id.value}.{session_id}"
    value = f"{keys}.{secrets.token_urlsafe(SECRET_BYTES)}"
    return IssuedToken(value=value, token_hash=hash_token(value))


def hash_token(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def parse_token(raw: str) -> TokenLookup:
    """The lookup of a presented token; InvalidValue when it cannot be one of ours."""
    text = raw.strip()
    if not text:
        raise InvalidValue("must not be empty")
    parts = text.split(".")
    if len(parts) not in (2, 3) or not all(parts) or len(text) > _MAX_TOKEN_LENGTH:
        raise InvalidValue("is not a token this service issued")
    if not text.isascii():
        raise InvalidValue("is not a token this service issued")
    try:
        user_id = UserId.parse(parts[0])
        # A session id is a UUID too; held in the canonical form the service issued.
        session_id = UserId.parse(parts[1]).value if len(parts) == 3 else None
    except InvalidValue:
        raise InvalidValue("is not a token this service issued") from None
    return TokenLookup(user_id=user_id, token_hash=hash_token(text), session_id=session_id)


def same_hash(stored: str | None, presented: str) -> bool:
    """Constant-time comparison, so response times reveal nothing about a stored hash."""
    return stored is not None and hmac.compare_digest(stored, presented)


@dataclass(frozen=True, repr=False)
class IssuedCode:
    """A fresh verification code (the digits to mail once), and its salted hash and the salt,
    to store. Six digits are a million values, guessed offline from the hash in an instant: the
    hash only keeps the code out of the store and the logs, and the code is only as strong as
    the limit on the attempts made online."""

    value: str
    code_hash: str
    salt: str

    def __repr__(self) -> str:
        return "IssuedCode(***)"


def issue_code() -> IssuedCode:
    """A new 6-digit code, uniformly drawn, and its hash under a random salt of its own."""
    value = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    salt = secrets.token_hex(_CODE_SALT_BYTES)
    return IssuedCode(value=value, code_hash=hash_code(value, salt), salt=salt)


def hash_code(value: str, salt: str) -> str:
    """The hash a code is stored as: HMAC-SHA-256 keyed with the salt of its issue."""
    return hmac.new(bytes.fromhex(salt), value.encode(), hashlib.sha256).hexdigest()


def parse_code(raw: str) -> str:
    """A presented code: its 6 ASCII digits (surrounding white space dropped); InvalidValue."""
    text = raw.strip()
    if not text:
        raise InvalidValue("must not be empty")
    if len(text) != CODE_DIGITS or not (text.isascii() and text.isdigit()):
        raise InvalidValue(f"must be the {CODE_DIGITS} digits from the verification mail")
    return text
