"""Value objects of the User aggregate: validated on construction, immutable afterwards."""

from __future__ import annotations

import enum
import ipaddress
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from domain.errors import InvalidValue

EMAIL_MAX_LENGTH = 254
EMAIL_LOCAL_MAX_LENGTH = 64
NAME_MAX_LENGTH = 100
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
PASSWORD_PRESENTED_MAX_LENGTH = 1024
USER_AGENT_MAX_LENGTH = 512
DEVICE_LABEL_MAX_LENGTH = 64

# Pragmatic, not RFC 5322: one "@", no white space or control characters, a
# dotted domain whose labels are letters, digits and inner hyphens. Unicode
# letters are allowed (internationalised addresses, RFC 6531).
_LOCAL_PART = re.compile(r"^[^\s@\"(),:;<>\[\\\]]+$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[^\W_](?:[\w-]*[^\W_])?$")
# The spellings of a UUID uuid.UUID documents: ASCII hex digits and hyphens, perhaps in braces
# or after "urn:uuid:".
_UUID_SPELLING = re.compile(r"(?:urn:uuid:)?\{?(?P<hex>[0-9a-fA-F-]+)\}?")


def _has_control_characters(text: str) -> bool:
    return any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"} for ch in text)


@dataclass(frozen=True)
class UserId:
    """A user's identity: a UUID, held in canonical lower-case string form."""

    value: str

    @classmethod
    def new(cls) -> UserId:
        return cls(str(uuid.uuid4()))

    @classmethod
    def parse(cls, raw: str) -> UserId:
        # Checked here, not left to uuid.UUID: it hands the digits to int(), which also takes a
        # sign, "0x", underscores and non-ASCII (e.g. fullwidth) digits.
        match = _UUID_SPELLING.fullmatch(raw.strip())
        digits = match["hex"].replace("-", "") if match else ""
        if len(digits) != 32:
            raise InvalidValue("must be a UUID such as 3f2b8a3e-1c4d-4e5f-9a6b-7c8d9e0f1a2b")
        return cls(str(uuid.UUID(digits)))

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Email:
    """An email address: trimmed display form, and the case-folded form that must be unique."""

    value: str
    normalized: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "normalized", unicodedata.normalize("NFC", self.value).casefold())

    @classmethod
    def parse(cls, raw: str) -> Email:
        text = unicodedata.normalize("NFC", raw.strip())
        if not text:
            raise InvalidValue("must not be empty")
        if len(text) > EMAIL_MAX_LENGTH:
            raise InvalidValue(f"must be at most {EMAIL_MAX_LENGTH} characters")
        if _has_control_characters(text):
            raise InvalidValue("must not contain control characters")
        local, at, domain = text.rpartition("@")
        if not at or not local or not domain:
            raise InvalidValue("must be an address such as name@example.com")
        if len(local) > EMAIL_LOCAL_MAX_LENGTH or not _LOCAL_PART.match(local):
            raise InvalidValue("has an invalid part before the @")
        if local.startswith(".") or local.endswith(".") or ".." in local:
            raise InvalidValue("has an invalid part before the @")
        labels = domain.split(".")
        if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
            raise InvalidValue("has an invalid domain after the @")
        return cls(text)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class PersonName:
    """A first or last name: trimmed, non-empty, at most 100 characters, printable."""

    value: str

    @classmethod
    def parse(cls, raw: str) -> PersonName:
        text = unicodedata.normalize("NFC", raw.strip())
        if not text:
            raise InvalidValue("must not be empty")
        if len(text) > NAME_MAX_LENGTH:
            raise InvalidValue(f"must be at most {NAME_MAX_LENGTH} characters")
        if _has_control_characters(text):
            raise InvalidValue("must not contain control characters")
        return cls(text)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, repr=False)
class Password:
    """A clear-text password that met the policy; it never shows in repr, logs or errors.

    ``typed``: the text as the caller sent it, before normalisation, when that differs (only
    for a password presented for checking): hashes made by other systems were made from it.
    """

    value: str
    typed: str | None = field(default=None, compare=False)

    @property
    def as_typed(self) -> str:
        """The text as typed: what a hash made by another system (which did not normalise)
        was made from."""
        return self.value if self.typed is None else self.typed

    @classmethod
    def parse(cls, raw: str) -> Password:
        # NIST SP 800-63B: normalise before hashing so the same password typed
        # on different keyboards verifies; no composition rules.
        text = unicodedata.normalize("NFKC", raw)
        if len(text) < PASSWORD_MIN_LENGTH:
            raise InvalidValue(f"must be at least {PASSWORD_MIN_LENGTH} characters")
        if len(text) > PASSWORD_MAX_LENGTH:
            raise InvalidValue(f"must be at most {PASSWORD_MAX_LENGTH} characters")
        if "\x00" in text:
            raise InvalidValue("must not contain NUL characters")
        return cls(text)

    @classmethod
    def presented(cls, raw: str) -> Password:
        """A password offered for checking: normalised like at registration, no policy applied.

        Only an upper bound applies, so nobody can make the server hash megabytes.
        """
        text = unicodedata.normalize("NFKC", raw)
        if not text:
            raise InvalidValue("must not be empty")
        if len(text) > PASSWORD_PRESENTED_MAX_LENGTH:
            raise InvalidValue(f"must be at most {PASSWORD_PRESENTED_MAX_LENGTH} characters")
        return cls(text, None if raw == text else raw)

    def __repr__(self) -> str:
        return "Password(***)"

    __str__ = __repr__


class Requester(enum.Enum):
    """Who asked for a change to a user's sessions: the user, through their own access token,
    or an administrator (a service acting through its role)."""

    USER = "user"
    ADMIN = "admin"


def parse_session_id(raw: str) -> str:
    """A session's id as the service issues it: a UUID, in canonical lower-case form."""
    return UserId.parse(raw).value


@dataclass(frozen=True)
class ClientDetails:
    """What the calling service knows of the device a session was opened from; each part may
    be unknown (empty). Validated: at most a user agent's worth of printable text, an IP address
    in canonical form, a short printable label."""

    user_agent: str = ""
    ip_address: str = ""
    device_label: str = ""

    @staticmethod
    def parse_user_agent(raw: str) -> str:
        raw = raw.strip()
        if len(raw) > USER_AGENT_MAX_LENGTH:
            raise InvalidValue(f"must be at most {USER_AGENT_MAX_LENGTH} characters")
        if not raw.isprintable():
            raise InvalidValue("must be printable, without control characters")
        return raw

    @staticmethod
    def parse_ip_address(raw: str) -> str:
        if not raw:
            return ""
        # ipaddress takes no white space, port, zone or prefix, and only ASCII digits (3.11+).
        if len(raw) > 64 or not raw.isascii():
            raise InvalidValue("must be an IPv4 or IPv6 address such as 192.0.2.1 or 2001:db8::1")
        try:
            address = ipaddress.ip_address(raw)
        except ValueError:
            raise InvalidValue(
                "must be an IPv4 or IPv6 address such as 192.0.2.1 or 2001:db8::1"
            ) from None
        if isinstance(address, ipaddress.IPv6Address):
            if address.scope_id is not None:
                raise InvalidValue("must be an address without a zone (%...)")
            if address.ipv4_mapped is not None:  # RFC 5952 section 5: the IPv4 part dotted
                return f"::ffff:{address.ipv4_mapped}"
        return address.compressed

    @staticmethod
    def parse_device_label(raw: str) -> str:
        text = unicodedata.normalize("NFC", raw.strip())
        if len(text) > DEVICE_LABEL_MAX_LENGTH:
            raise InvalidValue(f"must be at most {DEVICE_LABEL_MAX_LENGTH} characters")
        if not text.isprintable():
            raise InvalidValue("must be printable, without control characters")
        return text

    @property
    def is_empty(self) -> bool:
        return not (self.user_agent or self.ip_address or self.device_label)


NO_CLIENT_DETAILS = ClientDetails()


# Authentication method references (RFC 8176) an access token's ``amr`` claim lists: a password
# alone, a password and a one-time code (TOTP or a recovery code), a password and a passkey, a
# passkey alone.
AMR_PASSWORD: tuple[str, ...] = ("pwd",)
AMR_PASSWORD_AND_OTP: tuple[str, ...] = ("pwd", "otp")
AMR_PASSWORD_AND_KEY: tuple[str, ...] = ("pwd", "hwk")
AMR_KEY: tuple[str, ...] = ("hwk",)


@dataclass(frozen=True)
class Session:
    """One signed-in device: its current refresh token (as a hash) and the tokens it replaced.

    ``previous_token_hash`` is the token rotated away at ``rotated_at``: presented again
    within the reuse grace it is taken for a concurrent refresh that lost the race (refused,
    the session kept); later, or any of ``retired_token_hashes``, it is treated as stolen and
    ends the session.

    ``epoch`` is the user's session epoch the session was opened in (or moved to): a session is
    live only while it equals the user's ``session_epoch``, so moving that on ends every
    session at once, without touching them.
    """

    session_id: str
    token_hash: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime
    previous_token_hash: str | None = None
    rotated_at: datetime | None = None
    retired_token_hashes: tuple[str, ...] = ()
    epoch: int = 0
    # The device it was opened from, as the calling service told at sign-in; kept on refresh.
    client: ClientDetails = NO_CLIENT_DETAILS
    # How its sign-in was proven (RFC 8176 values, see AMR_PASSWORD): every access token the
    # session issues, refreshed ones too, carries it as its ``amr`` claim.
    amr: tuple[str, ...] = AMR_PASSWORD

    def is_live(self, now: datetime, idle_lifetime: timedelta) -> bool:
        return now < self.ends_at(idle_lifetime)

    def ends_at(self, idle_lifetime: timedelta) -> datetime:
        """When the session ends unless used again: its absolute end, or idle_lifetime after its
        last use, whichever comes first."""
        return min(self.expires_at, self.last_used_at + idle_lifetime)


@dataclass(frozen=True)
class PasswordReset:
    """A pending password reset, kept only as a hash of the single-use token."""

    token_hash: str
    requested_at: datetime
    expires_at: datetime

    def is_usable(self, now: datetime) -> bool:
        return now < self.expires_at


@dataclass(frozen=True)
class PendingEmailChange:
    """A move to ``new_email`` that its owner has yet to confirm: kept only as hashes of the two
    single-use tokens, the one mailed to the new address (it confirms) and the one mailed to the
    address in use (it cancels)."""

    new_email: Email
    confirm_token_hash: str = field(repr=False)
    cancel_token_hash: str = field(repr=False)
    requested_at: datetime
    expires_at: datetime

    def is_usable(self, now: datetime) -> bool:
        return now < self.expires_at


@dataclass(frozen=True)
class EmailVerification:
    """A pending verification of the address ``email`` (its normalized form) was issued for:
    a single-use link token, kept only as its SHA-256 (``token_hash``), and a 6-digit code for
    mail read on another device, kept only as a salted hash (``code_hash``, with the random
    ``code_salt`` of this issue), never raw.

    A 6-digit code has a million values: it is only as strong as its online attempt limit.
    ``wrong_codes`` counts the wrong codes tried; at the limit the code is void (the link still
    works), and each is counted in the same conditional write as its check, so concurrent
    guesses cannot exceed it. Once the account's address is another one, the verification is
    void: it vouches for the address it was mailed to, and only that one.
    """

    email: str
    token_hash: str = field(repr=False)
    code_hash: str = field(repr=False)
    code_salt: str = field(repr=False)
    requested_at: datetime
    expires_at: datetime
    wrong_codes: int = 0

    def is_usable(self, now: datetime) -> bool:
        return now < self.expires_at
