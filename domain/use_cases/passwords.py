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
from domain.policies import AuthPolicy, SessionPolicy
from domain.ports import (
    Clock,
    LegacyAuthenticator,
    LockNotices,
    Notifier,
    PasswordHasher,
    PasswordResetMail,
    TaskRunner,
    UnitOfWork,
)
from domain.secret_tokens import parse_token
from domain.use_cases.lazy_migration import migrate_on_password_reset
from domain.use_cases.retry import retry_on_conflict
from domain.use_cases.sessions import check_may_sign_in, password_accepted
from domain.use_cases.validation import Violations
from domain.user import User, UserStatus
from domain.values import Email, Password, UserId

_SESSION_ID_MAX_LENGTH = 64


async def change_password(
    uow: UnitOfWork,
    hasher: PasswordHasher,
    clock: Clock,
    policy: AuthPolicy,
    notices: LockNotices,
    *,
    user_id: str,
    current_password: str,
    new_password: str,
    keep_session_id: str,
) -> None:
    """Set a new password for a caller who gives the current one; every other session ends.

    The current password is verified first, counted like a sign-in (the same growing delays, the
    same refusal for every password while one runs), and only then is the new one held to the
    policy: so no caller without the current password learns anything from the policy's answer.
    """
    with Violations() as check:
        parsed_id = check.parse("user_id", UserId.parse, user_id)
        current = check.parse("current_password", Password.presented, current_password)
        check.parse("new_password", Password.presented, new_password)
        if len(keep_session_id) > _SESSION_ID_MAX_LENGTH:
            check.add("keep_session_id", f"must be at most {_SESSION_ID_MAX_LENGTH} characters")
    async with uow:
        first_read = await uow.users.require(parsed_id)
    verified_hash = first_read.password_hash
    if not await password_accepted(uow, first_read, hasher, current, clock, policy, notices):
        raise AuthenticationFailed("the current password is incorrect")
    check_may_sign_in(first_read)
    with Violations() as check:
        new = check.parse("new_password", Password.parse, new_password)
        check.rule("new_password", check_new_password, new, email=first_read.email)
    new_hash = await hasher.hash(new)

    async def apply(attempt: int) -> None:
        async with uow:
            # A retry reads the user again: another write landed since the first read.
            user = first_read if not attempt else await uow.users.require(parsed_id)
            if user.password_hash != verified_hash:
                # Changed by someone else since we checked the current password against it.
                raise StaleVersion(expected=user.version, actual=user.version)
            now = clock()
            if attempt:
                check_may_sign_in(user)  # the write we lost to may have disabled it
                if user.lock_remaining(now) is not None:
                    raise AuthenticationFailed("the current password is incorrect")
            user.change_password(new_hash, now)
            ended = user.end_sessions(
                now,
                policy.sessions,
                await uow.sessions.current(user),
                SessionEndReason.PASSWORD_CHANGED,
                keep_session_id=keep_session_id or None,
            )
            user.record_successful_login()
            await uow.users.update(user)
            if ended.kept is not None and ended.moved is not None:
                await uow.sessions.move(user, ended.kept, ended.moved)
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
    legacy: tuple[LegacyAuthenticator, PasswordHasher] | None = None,
) -> None:
    """Mail a reset token if an active account has this address; otherwise do nothing, quietly.

    Only the address's form is checked before the reply; the lookup, the write and the mail
    happen after it, so the reply is the same, and as fast, whether or not the address exists,
    and whether or not the security mail limit lets a mail go (policy.security_mail). Requests
    for one address while its work is under way make one more job after it (the key).

    With ``legacy`` (the lazy-migration hook and the hasher), an address unknown here is asked
    of the old system in that deferred work too; a user it knows is created first (with an
    unusable password) and then mailed as any user.
    """
    with Violations() as check:
        parsed_email = check.parse("email", Email.parse, email)
    later.spawn(
        _issue_reset(uow, notifier, clock, policy, parsed_email, legacy),
        name="issue a password reset",
        key=f"password reset:{parsed_email.normalized}",
    )


async def _issue_reset(
    uow: UnitOfWork,
    notifier: Notifier,
    clock: Clock,
    policy: AuthPolicy,
    email: Email,
    legacy: tuple[LegacyAuthenticator, PasswordHasher] | None,
) -> None:
    if legacy is not None:
        async with uow:
            known = await uow.users.get_by_email(email) is not None
        if not known:
            authenticator, hasher = legacy
            await migrate_on_password_reset(uow, hasher, clock, authenticator, email)

    async def issue(attempt: int) -> PasswordResetMail | None:
        async with uow:
            user = await uow.users.get_by_email(email)
            if user is None or user.status is UserStatus.DISABLED:
                return None
            now = clock()
            if not user.may_send_security_mail(now, policy.security_mail):
                return None  # too soon after the last one: the link already sent stays valid
            token = user.request_password_reset(now, policy.password_reset_lifetime)
            user.record_security_mail(now, policy.security_mail)
            await uow.users.update(user)
            await uow.commit()
        return PasswordResetMail(
            to=user.email.value,
            name=user.first_name.value,
            token=token.value,
            expires_at=now + policy.password_reset_lifetime,
        )

    mail = await retry_on_conflict(issue)
    if mail is not None:
        await notifier.send_password_reset(mail)


async def reset_password(
    uow: UnitOfWork,
    hasher: PasswordHasher,
    clock: Clock,
    policy: SessionPolicy,
    *,
    reset_token: str,
    new_password: str,
) -> None:
    """Set a new password with a reset token; the token is spent and every session ends."""
    with Violations() as check:
        if not reset_token.strip():
            check.add("reset_token", "must not be empty")
        new = check.parse("new_password", Password.parse, new_password)
    try:
        lookup = parse_token(reset_token)
    except InvalidValue:
        raise InvalidResetToken() from None
    async with uow:
        found = await uow.users.get_by_id(lookup.user_id)
    if found is None:
        raise InvalidResetToken()
    found.check_reset_token(lookup, clock())
    with Violations() as check:
        check.rule("new_password", check_new_password, new, email=found.email)
    new_hash = await hasher.hash(new)
    first_read: User = found

    async def apply(attempt: int) -> None:
        async with uow:
            user = first_read if not attempt else await uow.users.get_by_id(lookup.user_id)
            if user is None:
                raise InvalidResetToken()
            # Checked again on the fresh copy: of two uses of one token, only one commits.
            current = await uow.sessions.current(user)
            user.reset_password(lookup, new_hash, clock(), policy, current)
            await uow.users.update(user)
            await uow.commit()

    await retry_on_conflict(apply)
