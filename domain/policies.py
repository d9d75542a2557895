"""The tunable rules of authentication: session lifetimes, lock-out, password-reset expiry, email
verification, and how often security mail may go to one address."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class SessionPolicy:
    """How many sessions a user may hold and how long a session and a rotated token live."""

    max_sessions: int = 10
    absolute_lifetime: timedelta = timedelta(days=30)
    idle_lifetime: timedelta = timedelta(days=7)
    reuse_grace: timedelta = timedelta(seconds=10)
    # Rotated tokens remembered per session, so a stolen old one is recognised as reuse.
    retired_tokens_kept: int = 5


@dataclass(frozen=True)
class LockoutPolicy:
    """Growing delays after failed sign-ins, as Amazon Cognito does.

    Failures count in a row until a sign-in succeeds (or a reset sets a new password). Once
    ``max_failures`` have been made, the attempt after the n-th failure is refused for
    ``delay_after(n)``: 1 s after the 5th, 2 s after the 6th, then 4, 8, ... up to ``max_delay``.
    An owner is thus kept out for at most ``max_delay`` at a time, while a guesser gets at
    most one try per ``max_delay`` once the delays have grown.
    """

    max_failures: int = 5
    max_delay: timedelta = timedelta(minutes=15)

    def delay_after(self, failures: int) -> timedelta | None:
        """How long the next attempt waits after ``failures`` in a row; None: it need not."""
        if failures < self.max_failures:
            return None
        # Capped before the power is taken: 2 ** n for a large n would be needlessly big.
        exponent = min(failures - self.max_failures, _EXPONENT_CAP)
        return min(timedelta(seconds=2**exponent), self.max_delay)


# 2 ** 40 seconds is beyond any sensible max_delay (timedelta itself ends at 10**9 days).
_EXPONENT_CAP = 40


@dataclass(frozen=True)
class SecurityMailPolicy:
    """Security mail (a reset link, a lock notice) to one address: at most one per ``cooldown``
    and at most ``max_per_window`` within any ``window``, so nobody can flood an inbox or keep
    voiding the link a user was just sent."""

    cooldown: timedelta = timedelta(seconds=60)
    max_per_window: int = 5
    window: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class VerificationPolicy:
    """Email verification: how long a mailed link and code stay valid, how many wrong codes void
    the code (its only defence: six digits are a million values), and whether an account must
    have a verified address to sign in."""

    lifetime: timedelta = timedelta(hours=24)
    max_code_attempts: int = 5
    required_for_sign_in: bool = False


@dataclass(frozen=True)
class SignInChallengePolicy:
    """A sign-in that waits on a second factor: how long its challenge lives, and how many wrong
    codes it survives (each also counts toward the lock-out, as a wrong password does)."""

    lifetime: timedelta = timedelta(minutes=5)
    max_wrong_codes: int = 3


@dataclass(frozen=True)
class AuthPolicy:
    """Every authentication rule in one value, as the use cases take it."""

    sessions: SessionPolicy = SessionPolicy()
    lockout: LockoutPolicy = LockoutPolicy()
    password_reset_lifetime: timedelta = timedelta(hours=1)
    security_mail: SecurityMailPolicy = SecurityMailPolicy()
    # How long the links of a requested email change work (to confirm, to cancel).
    email_change_lifetime: timedelta = timedelta(hours=24)
    verification: VerificationPolicy = VerificationPolicy()
    sign_in_challenges: SignInChallengePolicy = SignInChallengePolicy()
