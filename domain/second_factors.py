"""Second factors a user holds beside the password: an authenticator app's TOTP codes (RFC 6238)
and single-use recovery codes. Values only: the User aggregate decides how they change.

The TOTP secret is held sealed (encrypted, by the TotpCodes port's key ring, with the id of the
key that sealed it): the domain never sees it in clear, except once, at enrollment, to hand it
to the owner. Recovery codes carry 80 random bits each, so a fast hash of one cannot be reversed
by guessing: they are stored only as such hashes, never raw.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from domain.errors import InvalidValue

TOTP_FACTOR_ID = "totp"
TOTP_CODE_DIGITS = 6
# How long a begun enrollment waits for its confirming code.
TOTP_ENROLLMENT_LIFETIME = timedelta(minutes=15)
RECOVERY_CODE_COUNT = 10
# Crockford's base 32 without I, L, O, U: no two symbols that read alike. 16 symbols: 80 bits.
RECOVERY_CODE_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
RECOVERY_CODE_LENGTH = 16
RECOVERY_CODE_GROUP = 4
# Longer presented codes are refused before any work is done on them.
SECOND_FACTOR_CODE_MAX_LENGTH = 64
_IGNORED_IN_RECOVERY_CODES = str.maketrans("", "", "- \t")
# 64 bits of SHA-256. Online, a guess must match one of ten stored codes, 80 bits each, whatever
# the hash's length. Offline, a stored hash names about 2**16 of the 2**80 codes and finding any
# of them takes about 2**64 hashes; and 64 bits keep ten of them in 80 bytes of the user item.
RECOVERY_HASH_BYTES = 8


@dataclass(frozen=True, repr=False)
class SealedSecret:
    """A TOTP secret as stored: encrypted, opaque to the domain (the port that sealed it names the
    key inside, so that keys can rotate)."""

    value: str

    def __repr__(self) -> str:
        return "SealedSecret(***)"


@dataclass(frozen=True, repr=False)
class NewTotpSecret:
    """A freshly made TOTP secret: in clear (base 32, to show its owner once) and sealed (to
    store)."""

    secret: str
    sealed: SealedSecret

    def __repr__(self) -> str:
        return "NewTotpSecret(***)"


@dataclass(frozen=True)
class TotpFactor:
    """A confirmed TOTP factor: its sealed secret, when it was turned on, and the last time step
    a code was accepted at (None: none since); a code of that step or an earlier one is refused,
    so each code works once."""

    sealed_secret: SealedSecret = field(repr=False)
    confirmed_at: datetime
    last_used_step: int | None = None


@dataclass(frozen=True)
class PendingTotpEnrollment:
    """An enrollment begun and not yet confirmed by a code from the app: its sealed secret, until
    ``expires_at``. A new begin replaces it."""

    sealed_secret: SealedSecret = field(repr=False)
    begun_at: datetime
    expires_at: datetime

    def is_usable(self, now: datetime) -> bool:
        return now < self.expires_at


@dataclass(frozen=True, repr=False)
class IssuedRecoveryCodes:
    """Fresh recovery codes, to show their owner once (grouped for reading), and their hashes, to
    store."""

    codes: tuple[str, ...]
    hashes: tuple[str, ...]

    def __repr__(self) -> str:
        return f"IssuedRecoveryCodes(*** x {len(self.codes)})"


def issue_recovery_codes(user_id: str, count: int = RECOVERY_CODE_COUNT) -> IssuedRecoveryCodes:
    """``count`` new recovery codes of ``user_id``, uniformly drawn."""
    raw = [
        "".join(secrets.choice(RECOVERY_CODE_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
        for _ in range(count)
    ]
    shown = tuple(
        "-".join(
            code[i : i + RECOVERY_CODE_GROUP] for i in range(0, len(code), RECOVERY_CODE_GROUP)
        )
        for code in raw
    )
    return IssuedRecoveryCodes(shown, tuple(hash_recovery_code(user_id, code) for code in raw))


def normalize_recovery_code(raw: str) -> str:
    """A presented recovery code as it is hashed: lower case, without dashes or spaces;
    InvalidValue when it cannot be one (wrong length or a symbol outside the alphabet)."""
    if len(raw) > SECOND_FACTOR_CODE_MAX_LENGTH:
        raise InvalidValue("is not a recovery code")
    text = raw.strip().translate(_IGNORED_IN_RECOVERY_CODES).lower()
    if len(text) != RECOVERY_CODE_LENGTH or any(ch not in RECOVERY_CODE_ALPHABET for ch in text):
        raise InvalidValue("is not a recovery code")
    return text


def hash_recovery_code(user_id: str, normalized: str) -> str:
    """The hash a recovery code is stored as: SHA-256 over the user's id and the code (so that one
    hash is worth nothing for another user), its first 64 bits in hex."""
    digest = hashlib.sha256(f"{user_id}:{normalized}".encode()).digest()
    return digest[:RECOVERY_HASH_BYTES].hex()


def find_recovery_code(hashes: tuple[str, ...], presented_hash: str) -> int | None:
    """The index of ``presented_hash`` in ``hashes``, compared in constant time against every one
    (no early exit); None when absent."""
    found = None
    for index, stored in enumerate(hashes):
        if hmac.compare_digest(stored, presented_hash):
            found = index
    return found


def parse_totp_code(raw: str) -> str:
    """A presented TOTP code: its 6 ASCII digits (surrounding white space and inner spaces
    dropped); InvalidValue otherwise."""
    if len(raw) > SECOND_FACTOR_CODE_MAX_LENGTH:
        raise InvalidValue("is not a code from the authenticator app")
    text = raw.replace(" ", "").strip()
    if len(text) != TOTP_CODE_DIGITS or not (text.isascii() and text.isdigit()):
        raise InvalidValue("is not a code from the authenticator app")
    return text
