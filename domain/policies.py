"""The tunable rules of authentication: session lifetimes, lock-out, password-reset expiry, and how
often security mail may go to one address."""

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
    """``max_failures`` failed sign-ins within ``window`` lock the account for ``duration``."""

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    duration: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class SecurityMailPolicy:
    """Security mail (a reset link, a lock notice) to one address: at most one per ``cooldown``
    and at most ``max_per_window`` within any ``window``, so nobody can flood an inbox or keep
    voiding the link a user was just sent."""

    cooldown: timedelta = timedelta(seconds=60)
    max_per_window: int = 5
    window: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class AuthPolicy:
    """Every authentication rule in one value, as the use cases take it."""

    sessions: SessionPolicy = SessionPolicy()
    lockout: LockoutPolicy = LockoutPolicy()
    password_reset_lifetime: timedelta = timedelta(hours=1)
    security_mail: SecurityMailPolicy = SecurityMailPolicy()
