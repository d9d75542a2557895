"""Use cases of second factors: enrolling an authenticator app (TOTP) and turning it off, the
recovery codes that stand in for it, and an administrator's reset of them all.

A wrong code in DisableTotp or RegenerateRecoveryCodes counts as a failed sign-in (the lock-out
rules, domain.policies.LockoutPolicy) before the reply, and while a wait runs every code is
refused: a caller holding a stolen access token cannot try the million codes. A wrong code at
enrollment is not counted: it guesses a secret the caller was just handed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from domain.errors import (
    AccountDisabled,
    InvalidSecondFactorCode,
    InvalidValue,
    TotpNotEnabled,
    TotpUnavailable,
)
from domain.events import SecondFactorKind
from domain.policies import AuthPolicy
from domain.ports import (
    Clock,
    LockNotices,
    SecondFactorNoticeMail,
    SecondFactorNotices,
    TotpCodes,
    UnitOfWork,
)
from domain.second_factors import SECOND_FACTOR_CODE_MAX_LENGTH
from domain.use_cases.retry import retry_on_conflict
from domain.use_cases.sessions import record_failed_login
from domain.use_cases.validation import Violations
from domain.user import User, UserStatus
from domain.values import UserId

T = TypeVar("T")


@dataclass(frozen=True, repr=False)
class TotpEnrollment:
    """A begun enrollment: the secret in clear (base 32) and the ``otpauth://`` URI that holds it,
    to show the owner once, and when the enrollment stops waiting for its code."""

    secret: str
    uri: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"TotpEnrollment(***, expires_at={self.expires_at.isoformat()})"


@dataclass(frozen=True, repr=False)
class RecoveryCodesIssued:
    """The user as it now is, and new recovery codes to show once."""

    user: User
    recovery_codes: tuple[str, ...]

    def __repr__(self) -> str:
        return f"RecoveryCodesIssued(user={self.user.id}, *** x {len(self.recovery_codes)})"


@dataclass(frozen=True)
class SecondFactorDeps:
    """What the second-factor use cases share: the TOTP codes (None: the service offers no TOTP),
    the lock-out's notices and the factor notices."""

    codes: TotpCodes | None
    lock_notices: LockNotices
    notices: SecondFactorNotices

    def totp(self) -> TotpCodes:
        if self.codes is None:
            raise TotpUnavailable()
        return self.codes


async def begin_totp_enrollment(
    uow: UnitOfWork, clock: Clock, deps: SecondFactorDeps, *, user_id: str
) -> TotpEnrollment:
    """A new secret for the user's authenticator app, waiting for a code from it (see
    confirm_totp_enrollment); a pending enrollment before is replaced."""
    with Violations() as check:
        parsed_id = check.parse("user_id", UserId.parse, user_id)
    codes = deps.totp()
    secret = codes.new_secret()

    async def apply(attempt: int) -> TotpEnrollment:
        async with uow:
            user = await uow.users.require(parsed_id)
            _check_active(user)
            expires_at = user.begin_totp_enrollment(secret.sealed, clock())
            await uow.users.update(user)
            await uow.commit()
        uri = codes.provisioning_uri(secret, user.email.value)
        return TotpEnrollment(secret.secret, uri, expires_at)

    return await retry_on_conflict(apply)


async def confirm_totp_enrollment(
    uow: UnitOfWork, clock: Clock, deps: SecondFactorDeps, *, user_id: str, code: str
) -> RecoveryCodesIssued:
    """Turn TOTP on with a code from the app, and issue the recovery codes; the owner is mailed
    after the reply."""
    with Violations() as check:
        parsed_id = check.parse("user_id", UserId.parse, user_id)
        check.parse("code", presented_code, code)
    codes = deps.totp()

    async def apply(attempt: int) -> RecoveryCodesIssued:
        async with uow:
            user = await uow.users.require(parsed_id)
            _check_active(user)
            issued = user.confirm_totp_enrollment(code, clock(), codes)
            await uow.users.update(user)
            await uow.commit()
        return RecoveryCodesIssued(user, issued.codes)

    confirmed = await retry_on_conflict(apply)
    _mail_notice(deps.notices, confirmed.user, SecondFactorKind.TOTP, added=True)
    return confirmed


async def regenerate_recovery_codes(
    uow: UnitOfWork,
    clock: Clock,
    policy: AuthPolicy,
    deps: SecondFactorDeps,
    *,
    user_id: str,
    totp_code: str,
) -> RecoveryCodesIssued:
    """New recovery codes for a current TOTP code; the old ones stop working."""
    with Violations() as check:
        parsed_id = check.parse("user_id", UserId.parse, user_id)
        check.parse("totp_code", presented_code, totp_code)
    codes = deps.totp()

    async def apply(attempt: int) -> RecoveryCodesIssued:
        async with uow:
            user = await uow.users.require(parsed_id)
            now = clock()
            _check_active(user)
            if user.totp is None:
                raise TotpNotEnabled()
            _prove(user, now, lambda: user.use_totp_code(totp_code, now, codes))
            issued = user.regenerate_recovery_codes(now)
            await uow.users.update(user)
            await uow.commit()
        return RecoveryCodesIssued(user, issued.codes)

    return await _counting_wrong_codes(uow, clock, policy, deps, apply)


async def disable_totp(
    uow: UnitOfWork,
    clock: Clock,
    policy: AuthPolicy,
    deps: SecondFactorDeps,
    *,
    user_id: str,
    totp_code: str = "",
    recovery_code: str = "",
    without_code: bool = False,
) -> User:
    """Turn TOTP off (and the recovery codes with it) for a current TOTP code, a recovery code,
    or ``without_code`` (an administrator's role: the caller checked it); the owner is mailed
    after the reply."""
    with Violations() as check:
        parsed_id = check.parse("user_id", UserId.parse, user_id)
        if totp_code:
            check.parse("totp_code", presented_code, totp_code)
        elif recovery_code:
            check.parse("recovery_code", presented_code, recovery_code)
        elif not without_code:
            check.add(
                "totp_code",
                "give a current code from the authenticator app here, or recovery_code",
            )

    async def apply(attempt: int) -> User:
        async with uow:
            user = await uow.users.require(parsed_id)
            now = clock()
            if not without_code:
                _check_active(user)  # an administrator may still turn it off
            if user.totp is None:
                raise TotpNotEnabled()
            if totp_code:
                codes = deps.totp()
                _prove(user, now, lambda: user.use_totp_code(totp_code, now, codes))
            elif recovery_code:
                _prove(user, now, lambda: user.use_recovery_code(recovery_code, now))
            user.disable_totp(now)
            await uow.users.update(user)
            await uow.commit()
        return user

    user = await _counting_wrong_codes(uow, clock, policy, deps, apply)
    _mail_notice(deps.notices, user, SecondFactorKind.TOTP, added=False)
    return user


async def reset_second_factors(
    uow: UnitOfWork, clock: Clock, deps: SecondFactorDeps, *, user_id: str
) -> User:
    """An administrator removes every second factor of the user and the recovery codes
    (SecondFactorsReset); the owner is mailed for each kind that was on. Nothing changes for a
    user without any."""
    with Violations() as check:
        parsed_id = check.parse("user_id", UserId.parse, user_id)

    async def apply(attempt: int) -> tuple[User, frozenset[SecondFactorKind]]:
        async with uow:
            user = await uow.users.require(parsed_id)
            removed = user.reset_second_factors(clock())
            if user.events:
                await uow.users.update(user)
                await uow.commit()
        return user, removed

    user, removed = await retry_on_conflict(apply)
    for kind in sorted(removed):
        _mail_notice(deps.notices, user, kind, added=False)
    return user


def _check_active(user: User) -> None:
    """AccountDisabled for a disabled account: its access tokens outlive the disable by up to
    their lifetime, and must not renew or remove its factors meanwhile."""
    if user.status is UserStatus.DISABLED:
        raise AccountDisabled()


def presented_code(raw: str) -> str:
    """A code as a request carries it, before the aggregate checks it: InvalidValue when empty or
    longer than any code (those are malformed requests; any other wrong code is refused as
    InvalidSecondFactorCode, the same for every kind of wrong)."""
    if not raw.strip():
        raise InvalidValue("must not be empty")
    if len(raw) > SECOND_FACTOR_CODE_MAX_LENGTH:
        raise InvalidValue(f"must be at most {SECOND_FACTOR_CODE_MAX_LENGTH} characters")
    return raw


class _WrongCode(Exception):
    """A code was refused; the failure is counted once the write block is left."""

    def __init__(self, user: User) -> None:
        super().__init__("wrong second-factor code")
        self.user = user


def _prove(user: User, now: datetime, check: Callable[[], None]) -> None:
    """Run ``check`` (a use_*_code call); while a lock-out wait runs, refuse without it."""
    try:
        if user.lock_remaining(now) is not None:
            raise InvalidSecondFactorCode()
        check()
    except InvalidSecondFactorCode:
        raise _WrongCode(user) from None


async def _counting_wrong_codes(
    uow: UnitOfWork,
    clock: Clock,
    policy: AuthPolicy,
    deps: SecondFactorDeps,
    apply: Callable[[int], Awaitable[T]],
) -> T:
    """``apply`` retried on conflicts; a wrong code is counted as a failed sign-in (its write
    committed before the reply) and refused."""
    try:
        return await retry_on_conflict(apply)
    except _WrongCode as wrong:
        await record_failed_login(uow, wrong.user, clock, policy, deps.lock_notices)
        raise InvalidSecondFactorCode() from None


def _mail_notice(
    notices: SecondFactorNotices, user: User, kind: SecondFactorKind, *, added: bool
) -> None:
    mail = SecondFactorNoticeMail(
        to=user.email.value, first_name=user.first_name.value, kind=kind, added=added
    )
    notices.later.spawn(
        notices.notifier.send_second_factor_notice(mail), name="mail a second-factor notice"
    )
