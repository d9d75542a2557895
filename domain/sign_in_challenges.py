"""Sign-in challenges: what a sign-in whose password was right waits on when the account has a
second factor, kept on the user item only as hashes until a factor is shown (or they expire)."""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass, field
from datetime import datetime

# The most challenges one user holds at once: a new one beyond it replaces the oldest. Each adds
# about 100 bytes to the user item (DynamoDB charges a write unit per KB of the item), and only a
# caller who knows the password can make them.
MAX_SIGN_IN_CHALLENGES = 4
# The random challenge a passkey signs (WebAuthn): 32 bytes, above the spec's 16-byte minimum.
WEBAUTHN_CHALLENGE_BYTES = 32


class SignInFactor(enum.StrEnum):
    """A way to complete a challenged sign-in."""

    TOTP = "totp"
    RECOVERY_CODE = "recovery_code"
    PASSKEY = "passkey"


@dataclass(frozen=True)
class SignInChallenge:
    """A pending second-factor sign-in: the SHA-256 of its single-use token (domain.
    secret_tokens: ``<user id>.<secret>``, 256 random bits), when it expires, how many wrong
    codes were tried against it (at the policy's limit it is dropped), and the WebAuthn
    challenge a passkey answers it with (empty when the user had no passkey when it was
    issued: then no passkey can answer it)."""

    token_hash: str = field(repr=False)
    expires_at: datetime
    webauthn_challenge: bytes = field(repr=False)
    wrong_codes: int = 0

    def is_usable(self, now: datetime) -> bool:
        return now < self.expires_at


def new_webauthn_challenge() -> bytes:
    return secrets.token_bytes(WEBAUTHN_CHALLENGE_BYTES)


@dataclass(frozen=True, repr=False)
class IssuedSignInChallenge:
    """A challenge just issued: its token (a secret, handed out once), when it expires, the
    factors that complete it and the WebAuthn challenge (for the passkeys' request options)."""

    token: str
    expires_at: datetime
    factors: tuple[SignInFactor, ...]
    webauthn_challenge: bytes

    def __repr__(self) -> str:
        return f"IssuedSignInChallenge(expires_at={self.expires_at.isoformat()}, ***)"
