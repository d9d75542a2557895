"""Domain events the User aggregate records as it changes; they never carry secrets.

Each event is stored in the same atomic write as the change that caused it (the outbox), under a
per-user sequence number 1, 2, 3, ... without gaps. Consumers read them per user, in order, or
across the service through a cursor.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class DomainEvent:
    """Something that happened to one user, at one instant."""

    user_id: str
    occurred_at: datetime


@dataclass(frozen=True)
class UserRegistered(DomainEvent):
    """A new account was created."""

    email: str
    first_name: str
    last_name: str


@dataclass(frozen=True)
class ProfileUpdated(DomainEvent):
    """The user's names changed."""

    first_name: str
    last_name: str


@dataclass(frozen=True)
class EmailChanged(DomainEvent):
    """The user's email changed; the old address is free again."""

    old_email: str
    new_email: str


@dataclass(frozen=True)
class EmailChangeRequested(DomainEvent):
    """A move to ``new_email`` was asked; it happens (EmailChanged) once confirmed from there,
    before ``expires_at``. Never the tokens mailed for it."""

    new_email: str
    expires_at: datetime


@dataclass(frozen=True)
class EmailChangeCancelled(DomainEvent):
    """The pending move to ``new_email`` was cancelled from the address in use."""

    new_email: str


@dataclass(frozen=True)
class EmailVerified(DomainEvent):
    """The owner of ``email`` showed they receive mail there (or an administrator vouched)."""

    email: str


@dataclass(frozen=True)
class EmailVerificationRequested(DomainEvent):
    """A verification link and code were issued for the address and mailed; the event never
    holds either."""

    expires_at: datetime


class PasswordChangeReason(enum.StrEnum):
    """How a password came to change."""

    CHANGED = "changed"  # by its owner, who knew the old one
    RESET = "reset"  # with a password-reset token


@dataclass(frozen=True)
class PasswordChanged(DomainEvent):
    """The password changed (never the password nor its hash)."""

    reason: PasswordChangeReason


@dataclass(frozen=True)
class PasswordResetRequested(DomainEvent):
    """A reset token was issued and mailed; the event never holds the token."""

    expires_at: datetime


@dataclass(frozen=True)
class SessionStarted(DomainEvent):
    """A sign-in opened a session (never its refresh token)."""

    session_id: str


class SessionEndReason(enum.StrEnum):
    """Why a session ended."""

    LOGOUT = "logout"
    LOGOUT_ALL = "logout_all"
    PASSWORD_CHANGED = "password_changed"
    PASSWORD_RESET = "password_reset"
    USER_DISABLED = "user_disabled"
    TOKEN_REUSED = "token_reused"  # an exchanged refresh token came back: a copy is in other hands
    EXPIRED = "expired"  # outlived its absolute or idle lifetime
    EVICTED = "evicted"  # the oldest session, ended to make room under the per-user limit
    REVOKED_BY_USER = "revoked_by_user"  # EndSession, with the user's own access token
    REVOKED_BY_ADMIN = "revoked_by_admin"  # EndSession, by a service acting through its role


@dataclass(frozen=True)
class SessionRevoked(DomainEvent):
    """A session ended before or at its expiry; its refresh token no longer works."""

    session_id: str
    reason: SessionEndReason


@dataclass(frozen=True)
class SessionsRevoked(DomainEvent):
    """Every session of the user ended at once (but ``kept_session_id``, when one was kept);
    ``sessions_ended`` of them were live. Their refresh tokens no longer work."""

    reason: SessionEndReason
    sessions_ended: int
    kept_session_id: str | None = None


@dataclass(frozen=True)
class AccountLocked(DomainEvent):
    """Too many failed sign-ins: sign-in is refused until ``locked_until``."""

    locked_until: datetime


@dataclass(frozen=True)
class UserDisabled(DomainEvent):
    """An administrator disabled the account."""


@dataclass(frozen=True)
class UserEnabled(DomainEvent):
    """An administrator enabled the account again."""


@dataclass(frozen=True)
class UserDeleted(DomainEvent):
    """The account was deleted; its email is free again."""


class SecondFactorKind(enum.StrEnum):
    """A kind of second factor a user may hold."""

    TOTP = "totp"  # an authenticator app's time-based one-time codes (RFC 6238)
    PASSKEY = "passkey"  # a WebAuthn credential


@dataclass(frozen=True)
class SecondFactorAdded(DomainEvent):
    """A second factor was turned on: ``factor_id`` is "totp" for TOTP, the passkey's id for a
    passkey; never a secret."""

    kind: SecondFactorKind
    factor_id: str


@dataclass(frozen=True)
class SecondFactorRemoved(DomainEvent):
    """A second factor was turned off (by its owner, or an administrator's role); ``factor_id``
    as in SecondFactorAdded."""

    kind: SecondFactorKind
    factor_id: str


@dataclass(frozen=True)
class RecoveryCodeUsed(DomainEvent):
    """A recovery code was spent (never the code nor its hash); ``remaining`` are left."""

    remaining: int


@dataclass(frozen=True)
class RecoveryCodesRegenerated(DomainEvent):
    """A new set of ``count`` recovery codes replaced the old ones, which stopped working."""

    count: int


@dataclass(frozen=True)
class SecondFactorsReset(DomainEvent):
    """An administrator removed every second factor of the user (and the recovery codes)."""


EVENT_TYPES: dict[str, type[DomainEvent]] = {
    kind.__name__: kind
    for kind in (
        UserRegistered,
        ProfileUpdated,
        EmailChanged,
        EmailVerified,
        EmailChangeRequested,
        EmailChangeCancelled,
        EmailVerificationRequested,
        PasswordChanged,
        PasswordResetRequested,
        SessionStarted,
        SessionRevoked,
        SessionsRevoked,
        AccountLocked,
        UserDisabled,
        UserEnabled,
        UserDeleted,
        SecondFactorAdded,
        SecondFactorRemoved,
        RecoveryCodeUsed,
        RecoveryCodesRegenerated,
        SecondFactorsReset,
    )
}


@dataclass(frozen=True)
class RecordedEvent:
    """An event as stored: its per-user ``sequence`` (1, 2, 3, ...), when the write carrying it
    was made (``recorded_at``), and its ``cursor``, its place in the service-wide stream."""

    event: DomainEvent
    sequence: int
    recorded_at: datetime
    cursor: str
