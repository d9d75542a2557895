"""Use cases of the email address: a change its owner asks for, confirms from the new address or
cancels from the old one, and the change an administrator makes directly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from domain.errors import (
    AccountDisabled,
    EmailAlreadyRegistered,
    FieldViolation,
    InvalidArgument,
    InvalidEmailChangeToken,
    InvalidValue,
    SecurityMailLimited,
)
from domain.policies import AuthPolicy
from domain.ports import (
    Clock,
    EmailChangeMail,
    EmailChangeNoticeMail,
    Notifier,
    TaskRunner,
    UnitOfWork,
)
from domain.secret_tokens import TokenLookup, parse_token
from domain.use_cases.accounts import check_expected_version, load_at_version
from domain.use_cases.retry import retry_on_conflict
from domain.use_cases.validation import Violations
from domain.user import User, UserStatus
from domain.values import Email, UserId


async def request_email_change(
    uow: UnitOfWork,
    notifier: Notifier,
    clock: Clock,
    policy: AuthPolicy,
    later: TaskRunner,
    *,
    user_id: str,
    new_email: str,
    expected_version: int,
) -> datetime:
    """Ask to move the account to ``new_email``: once the reply has gone, the new address gets
    the link that confirms the move, the one in use a notice with a link that cancels it. The
    address in use keeps working until then. When the links stop working is returned."""
    with Violations() as check:
        parsed_id = check.parse("id", UserId.parse, user_id)
        parsed_email = check.parse("new_email", Email.parse, new_email)
        check_expected_version(check, expected_version)

    async def apply(attempt: int) -> tuple[EmailChangeMail, EmailChangeNoticeMail]:
        async with uow:
            user = await load_at_version(uow, parsed_id, expected_version)
            if user.status is UserStatus.DISABLED:
                raise AccountDisabled()
            now, old = clock(), user.email
            with _reported_in("new_email"):
                tokens = user.request_email_change(parsed_email, now, policy.email_change_lifetime)
            # The mail limit first: past it no answer tells whether an address is taken.
            wait = user.security_mail_wait(now, policy.security_mail)
            if wait is not None:
                raise SecurityMailLimited(wait)
            if await uow.users.get_by_email(parsed_email) is not None:
                raise EmailAlreadyRegistered()  # taken now; the guard decides again at confirm
            user.record_security_mail(now, policy.security_mail)
            await uow.users.update(user)
            await uow.commit()
        name, expires_at = user.first_name.value, tokens.expires_at
        return (
            EmailChangeMail(parsed_email.value, name, tokens.confirm.value, expires_at),
            EmailChangeNoticeMail(old.value, name, tokens.cancel.value, expires_at),
        )

    to_new, to_old = await retry_on_conflict(apply)
    later.spawn(notifier.send_email_change(to_new), name="mail an email change")
    later.spawn(notifier.send_email_change_notice(to_old), name="mail an email change notice")
    return to_new.expires_at


async def confirm_email_change(uow: UnitOfWork, clock: Clock, *, token: str) -> User:
    """Move the account to the pending address with the token mailed there, which proves it:
    the address is verified. EmailAlreadyRegistered, and nothing changes, when it was taken
    since the request."""
    lookup = _parse_change_token(token)

    async def apply(attempt: int) -> User:
        async with uow:
            user = await _token_owner(uow, lookup)
            user.confirm_email_change(lookup, clock())
            await uow.users.update(user)
            await uow.commit()
        return user

    return await retry_on_conflict(apply)


async def cancel_email_change(uow: UnitOfWork, clock: Clock, *, token: str) -> None:
    """Drop the pending change with the token mailed to the address in use."""
    lookup = _parse_change_token(token)

    async def apply(attempt: int) -> None:
        async with uow:
            user = await _token_owner(uow, lookup)
            user.cancel_email_change(lookup, clock())
            await uow.users.update(user)
            await uow.commit()

    await retry_on_conflict(apply)


async def change_email(
    uow: UnitOfWork, clock: Clock, *, user_id: str, email: str, expected_version: int
) -> User:
    """An administrator moves the account to ``email`` and vouches for it: verified at once."""
    with Violations() as check:
        parsed_id = check.parse("id", UserId.parse, user_id)
        parsed_email = check.parse("email", Email.parse, email)
        check_expected_version(check, expected_version)

    async def apply(attempt: int) -> User:
        async with uow:
            user = await load_at_version(uow, parsed_id, expected_version)
            with _reported_in("email"):
                user.change_email_verified(parsed_email, clock())
            await uow.users.update(user)
            await uow.commit()
        return user

    return await retry_on_conflict(apply)


def _parse_change_token(token: str) -> TokenLookup:
    """The lookup of an email-change token; an empty one is invalid input, anything else that
    is no token of ours is an InvalidEmailChangeToken, as an unknown one is."""
    if not token.strip():
        raise InvalidArgument([FieldViolation("token", "must not be empty")])
    try:
        lookup = parse_token(token)
    except InvalidValue:
        raise InvalidEmailChangeToken() from None
    if lookup.session_id is not None:  # a refresh token's shape: never an email-change token
        raise InvalidEmailChangeToken()
    return lookup


async def _token_owner(uow: UnitOfWork, lookup: TokenLookup) -> User:
    user = await uow.users.get_by_id(lookup.user_id)
    if user is None:
        raise InvalidEmailChangeToken()
    return user


@contextmanager
def _reported_in(field: str) -> Iterator[None]:
    """A value the aggregate refuses (InvalidValue) reported as invalid input in ``field``."""
    try:
        yield
    except InvalidValue as error:
        raise InvalidArgument([FieldViolation(field, str(error))]) from None
