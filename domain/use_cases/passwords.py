"""Use cases of passwords: change with the current one, or reset with a mailed single-use token."""

from __future__ import annotations

from domain.errors import (
    AuthenticationFailed,
    InvalidResetToken,
    InvalidValue,
    StaleVersion,
)
from domain.events import SessionEndReason
from domain.password_policy import check_new_password
from domain.policies import AuthPolicy
from domain.ports import (
    Clock,
    Notifier,
    PasswordHasher,
    PasswordResetMail,
    TaskRunner,
    UnitOfWork,
)
from domain.secret_tokens import parse_token
from domain.use_cases.retry import retry_on_conflict
from domain.use_cases.sessions import check_may_sign_in, record_failed_login
from domain.use_cases.validation import Violations
from domain.user import User, UserStatus
from domain.values import Email, Password, UserId

_SESSION_ID_MAX_LENGTH = 64


async def change_password(
    uow: UnitOfWork,
    hasher: PasswordHasher,
    clock: Clock,
    policy: AuthPolicy,
    *,
    user_id: str,
    current_password: str,
    new_password: str,
    keep_session_id: str,
) -> None:
    violations = Violations()
    parsed_id = violations.parse("user_id", UserId.parse, user_id)
    current = violations.parse("current_password", Password.presented, current_password)
    new = violations.parse("new_password", Password.parse, new_password)
    if len(keep_session_id) > _SESSION_ID_MAX_LENGTH:
        violations.add("keep_session_id", f"must be at most {_SESSION_ID_MAX_LENGTH} characters")
    violations.raise_if_any()
    assert parsed_id and current and new
    async with uow:
        user = await uow.users.require(parsed_id)
    violations.check("new_password", check_new_password, new, email=user.email)
    violations.raise_if_any()
    verified_hash = user.password_hash
    if not await hasher.verify(verified_hash, current):
        await record_failed_login(uow, user, clock, policy)
        raise AuthenticationFailed("the current password is incorrect")
    check_may_sign_in(user, clock())
    new_hash = await hasher.hash(new)

    async def apply(attempt: int) -> None:
        nonlocal user
        async with uow:
            if attempt:
                user = await uow.users.require(parsed_id)
            if user.password_hash != verified_hash:
                # Changed by someone else since we checked the current password against it.
                raise StaleVersion(expected=user.version, actual=user.version)
            now = clock()
            if attempt:
                check_may_sign_in(user, now)  # the write we lost to may have disabled it
            user.change_password(new_hash, now)
            user.end_sessions(
                now, SessionEndReason.PASSWORD_CHANGED, keep_session_id=keep_session_id or None
            )
            user.record_successful_login()
            await uow.users.update(user)
            await uow.commit()

    await retry_on_conflict(apply)


async def request_password_reset(
    uow: UnitOfWork,
    notifier: Notifier,
    clock: Clock,
    policy: AuthPolicy,
    later: TaskRunner,
    *,
    email: str,
) -> None:
    """Mail a reset token if an active account has this address; otherwise do nothing, quietly.

    Only the address's form is checked before the reply; the lookup, the write and the mail
    happen after it, so the reply is the same, and as fast, whether or not the address exists.
    """
    violations = Violations()
    parsed_email = violations.parse("email", Email.parse, email)
    violations.raise_if_any()
    assert parsed_email
    later.spawn(
        _issue_reset(uow, notifier, clock, policy, parsed_email), name="issue a password reset"
    )


async def _issue_reset(
    uow: UnitOfWork, notifier: Notifier, clock: Clock, policy: AuthPolicy, email: Email
) -> None:
    async def issue(attempt: int) -> PasswordResetMail | None:
        async with uow:
            user = await uow.users.get_by_email(email)
            if user is None or user.status is UserStatus.DISABLED:
                return None
            now = clock()
            token = user.request_password_reset(now, policy.password_reset_lifetime)
            await uow.users.update(user)
            await uow.commit()
        return PasswordResetMail(
            to=user.email.value,
            first_name=user.first_name.value,
            token=token.value,
            expires_at=now + policy.password_reset_lifetime,
        )

    mail = await retry_on_conflict(issue)
    if mail is not None:
        await notifier.send_password_reset(mail)


async def reset_password(
    uow: UnitOfWork, hasher: PasswordHasher, clock: Clock, *, reset_token: str, new_password: str
) -> None:
    """Set a new password with a reset token; the token is spent and every session ends."""
    violations = Violations()
    if not reset_token.strip():
        violations.add("reset_token", "must not be empty")
    new = violations.parse("new_password", Password.parse, new_password)
    violations.raise_if_any()
    assert new
    try:
        lookup = parse_token(reset_token)
    except InvalidValue:
        raise InvalidResetToken() from None
    async with uow:
        found = await uow.users.get_by_id(lookup.user_id)
    if found is None:
        raise InvalidResetToken()
    found.check_reset_token(lookup, clock())
    violations.check("new_password", check_new_password, new, email=found.email)
    violations.raise_if_any()
    new_hash = await hasher.hash(new)
    first_read: User = found

    async def apply(attempt: int) -> None:
        async with uow:
            user = first_read if not attempt else await uow.users.get_by_id(lookup.user_id)
            if user is None:
                raise InvalidResetToken()
            # Checked again on the fresh copy: of two uses of one token, only one commits.
            user.reset_password(lookup, new_hash, clock())
            await uow.users.update(user)
            await uow.commit()

    await retry_on_conflict(apply)
