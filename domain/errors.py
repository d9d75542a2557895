"""Errors the domain raises; each names one failure a caller can act on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request and why it is invalid."""

    field: str
    description: str


class InvalidArgument(DomainError):
    """The request is malformed; nothing was changed."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = list(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))


class InvalidValue(ValueError):
    """A value object refused its raw input (the field name is added by the caller)."""


class UserNotFound(DomainError):
    """No user has the given id or email."""

    def __init__(self, message: str = "user not found") -> None:
        super().__init__(message)


class SessionNotFound(DomainError):
    """The user has no live session with the given id (unknown, another user's, or ended)."""

    def __init__(self) -> None:
        super().__init__("the user has no live session with this id")


class EmailAlreadyRegistered(DomainError):
    """Another user already has this email, in some letter case."""

    def __init__(self) -> None:
        super().__init__("a user with this email already exists")


class VersionConflict(DomainError):
    """The user changed since the caller read it: its expected version is stale."""

    def __init__(self, expected: int, actual: int | None = None) -> None:
        self.expected = expected
        self.actual = actual
        if actual is None or actual == expected:
            # Only bookkeeping (sessions, sign-in failures) moved: the version a caller sees is
            # the same, but the write it was checked against lost a race.
            super().__init__("the user was changed concurrently; read it again and retry")
            return
        detail = f"expected version {expected}, stored version is {actual}"
        super().__init__(f"the user was changed concurrently ({detail}); read it again and retry")


class ConcurrentWrite(VersionConflict):
    """Another write to the same user was under way at that instant; nothing was written."""

    def __init__(self) -> None:
        self.expected = 0
        self.actual = None
        DomainError.__init__(
            self, "another write to this user was under way at the same moment; retry"
        )


class StaleVersion(VersionConflict):
    """The caller's expected_version is not the stored version: re-reading will not help it."""


class StorageUnavailable(DomainError):
    """The store could not be reached or is throttling; the request may be retried."""

    def __init__(self, message: str = "the user store is unavailable; retry later") -> None:
        super().__init__(message)


class DeadlineExceeded(DomainError):
    """The caller's deadline passed before the store was asked; that request was never sent."""

    def __init__(self, message: str = "the deadline passed before the store was asked") -> None:
        super().__init__(message)


class StorageError(DomainError):
    """The store refused a request for a reason a retry will not fix (set-up, permissions)."""


class AuthenticationFailed(DomainError):
    """The email or the password is wrong; which one is never said."""

    def __init__(self, message: str = "the email or password is incorrect") -> None:
        super().__init__(message)


class AccountDisabled(DomainError):
    """The account is disabled (said only to a caller who proved the password)."""

    def __init__(self) -> None:
        super().__init__("this account is disabled")


class EmailNotVerified(DomainError):
    """Sign-in needs a verified address and this account's is not (said only to a caller who
    proved the password)."""

    def __init__(self) -> None:
        super().__init__(
            "this account's email address is not verified yet; follow the link or enter the code "
            "from the verification mail (ResendVerification sends a new one)"
        )


class InvalidRefreshToken(DomainError):
    """The refresh token is unknown, expired, revoked or was already used."""

    def __init__(self) -> None:
        super().__init__("the refresh token is not valid; sign in again")


class ConcurrentRefresh(DomainError):
    """Another refresh with the same token won a race; its result is the one to use."""

    def __init__(self) -> None:
        super().__init__(
            "this refresh token was just used by a concurrent request; use that request's tokens"
        )


class InvalidResetToken(DomainError):
    """The password-reset token is unknown, expired, used or superseded by a newer one."""

    def __init__(self) -> None:
        super().__init__("the password-reset token is not valid; request a new one")


class InvalidEmailChangeToken(DomainError):
    """The email-change token (to confirm or to cancel) is unknown, expired, used or superseded
    by a newer request."""

    def __init__(self) -> None:
        super().__init__("the email-change token is not valid; request the change again")


class SecurityMailLimited(DomainError):
    """Security mail went to this user too recently, or too often within the hour; nothing was
    changed. ``retry_after``: when more may go."""

    def __init__(self, retry_after: timedelta) -> None:
        self.retry_after = retry_after
        seconds = max(1, int(-(-retry_after.total_seconds() // 1)))
        super().__init__(
            f"security mail went to this account too recently; retry in {seconds} seconds"
        )


class InvalidVerificationToken(DomainError):
    """The verification link's token is unknown, expired, used, superseded by a newer one, or was
    issued for an address the account no longer has."""

    def __init__(self) -> None:
        super().__init__("the verification token is not valid; request a new verification mail")


class InvalidVerificationCode(DomainError):
    """The verification code is wrong, or no usable verification is pending for the address
    (none, expired, used, or issued for another address)."""

    def __init__(self) -> None:
        super().__init__(
            "the verification code is not valid for this address; check it, or request a new "
            "verification mail"
        )


class VerificationCodeAttemptsExhausted(InvalidVerificationCode):
    """Too many wrong codes were tried: the pending code is void (its link still works). Said to
    the caller as any invalid code is, in the same words: a distinct answer would tell anyone
    without the code that the address has an unverified account."""


class InvalidSecondFactorCode(DomainError):
    """The second-factor code (a TOTP code or a recovery code) is wrong, malformed, already used,
    or the user has no such factor; nothing was changed. Which of these is never said."""

    def __init__(self) -> None:
        super().__init__("the code is not valid")


class SecondFactorPrecondition(DomainError):
    """The account's second factors are not in the state the request needs; nothing changed.
    ``reason`` names the state, for callers that act on it."""

    reason = "SECOND_FACTOR_STATE"


class TotpAlreadyEnabled(SecondFactorPrecondition):
    """TOTP is on already: disable it first to enroll another app."""

    reason = "TOTP_ALREADY_ENABLED"

    def __init__(self) -> None:
        super().__init__("TOTP is already on for this account; disable it to enroll anew")


class TotpNotEnabled(SecondFactorPrecondition):
    """The request needs TOTP on, and it is off."""

    reason = "TOTP_NOT_ENABLED"

    def __init__(self) -> None:
        super().__init__("TOTP is not on for this account")


class NoTotpEnrollmentPending(SecondFactorPrecondition):
    """No TOTP enrollment waits for its code: none was begun, or it expired."""

    reason = "NO_TOTP_ENROLLMENT_PENDING"

    def __init__(self) -> None:
        super().__init__("no TOTP enrollment is pending (none begun, or it expired); begin anew")


class TotpUnavailable(SecondFactorPrecondition):
    """This service does not offer TOTP (turned off, or no encryption key configured)."""

    reason = "TOTP_UNAVAILABLE"

    def __init__(self) -> None:
        super().__init__("TOTP is turned off on this service")


class InvalidSignInChallenge(DomainError):
    """The sign-in challenge is unknown, expired, already used, exhausted by wrong codes, or
    another user's; which one is never said."""

    def __init__(self) -> None:
        super().__init__("the sign-in challenge is not valid; sign in again with the password")


class PasskeyCeremonyFailed(DomainError):
    """A passkey ceremony's response was refused: it did not verify (origin, relying party,
    challenge, signature, counter), its ceremony is unknown, expired or spent, or its credential
    is not a passkey the account has. Which one is never said: to a caller without the passkey,
    the answer must not tell whether an account exists."""

    def __init__(self) -> None:
        super().__init__("the passkey response was not accepted; begin the ceremony again")


class PasskeyNotFound(DomainError):
    """The user has no passkey with the given id."""

    def __init__(self) -> None:
        super().__init__("the user has no passkey with this id")


class PasskeyLimitReached(DomainError):
    """The user has as many passkeys as an account may hold; one must go before another comes."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the account has {limit} passkeys, the most it may hold; remove one first"
        )
