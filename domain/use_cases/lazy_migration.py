"""Lazy migration: a user the old system knows, and this service not yet, is created at sign-in.

Asked only when an email is unknown here and the hook is on (server.legacy_auth). The old
system checks the password; on success the user is created, with an argon2id hash of the
password given, in one write with its email guard (as RegisterUser), and the sign-in goes on
as for any user. At password reset (after the reply, in its deferred work) the old system is
asked only whether it knows the email: the user it names is created with an unusable password
(an argon2id hash of 32 random bytes nobody is told), and the reset mail goes as for any user.
"""

from __future__ import annotations

import logging
import secrets

from domain.errors import EmailAlreadyRegistered, InvalidValue
from domain.ports import Clock, LegacyAuthenticator, LegacyUser, PasswordHasher, UnitOfWork
from domain.use_cases.retry import retry_on_conflict
from domain.user import User
from domain.values import PASSWORD_PRESENTED_MAX_LENGTH, Email, Password, PersonName, UserId

log = logging.getLogger(__name__)


async def migrate_on_sign_in(
    uow: UnitOfWork,
    hasher: PasswordHasher,
    clock: Clock,
    legacy: LegacyAuthenticator,
    *,
    email: Email,
    password: Password,
    typed: str,
) -> User | None:
    """The user of ``email`` when the old system accepts the password and the user could be
    created here (or a concurrent write created it meanwhile); None otherwise. The caller then
    checks the password against the user as for any sign-in.

    The old system gets the password as ``typed``: it hashed what its users typed, while this
    service hashes (and will check) ``password``, its NFKC form, as at registration."""
    if len(typed) > PASSWORD_PRESENTED_MAX_LENGTH:
        return None  # only its normal form was bounded: the old system is not sent megabytes
    answer = await legacy.check(email.value, Password(typed))
    if answer is None:
        return None
    try:
        parsed_email, first_name, last_name = _profile(answer, email)
    except InvalidValue as error:
        # The answer is the old system's, not the caller's: a refusal, logged for the operator.
        log.warning("lazy migration refused: the old system's answer has %s", error)
        return None
    return await _create(uow, hasher, clock, answer, parsed_email, first_name, last_name, password)


async def migrate_on_password_reset(
    uow: UnitOfWork, hasher: PasswordHasher, clock: Clock, legacy: LegacyAuthenticator, email: Email
) -> User | None:
    """The user of ``email`` when the old system knows it and the user could be created here
    (or a concurrent write created it meanwhile); None otherwise. Runs after the reply only.

    No password is given, so the user gets a hash of 32 random bytes nobody is told: nothing
    signs in with it, and the reset that follows sets the password."""
    answer = await legacy.lookup(email.value)
    if answer is None:
        return None
    try:
        parsed_email, first_name, last_name = _profile(answer, email)
    except InvalidValue as error:
        log.warning("lazy migration refused: the old system's answer has %s", error)
        return None
    unusable = Password(secrets.token_bytes(32).hex())
    return await _create(uow, hasher, clock, answer, parsed_email, first_name, last_name, unusable)


async def _create(
    uow: UnitOfWork,
    hasher: PasswordHasher,
    clock: Clock,
    answer: LegacyUser,
    email: Email,
    first_name: PersonName,
    last_name: PersonName,
    password: Password,
) -> User | None:
    password_hash = await hasher.hash(password)

    async def commit(attempt: int) -> None:
        async with uow:
            user_id = _kept_id(answer.id)
            if user_id is None or await uow.users.get_by_id(user_id) is not None:
                user_id = UserId.new()
            now = clock()
            user = User.register(
                user_id=user_id,
                email=email,
                first_name=first_name,
                last_name=last_name,
                password_hash=password_hash,
                now=now,
            )
            if answer.email_confirmed:
                user.mark_email_verified(now)
            # One write with the email guard: of concurrent creations of this address, the
            # guard lets one land.
            await uow.users.add(user)
            await uow.commit()
            log.info("lazy migration: user %s created from the old system", user_id.value)

    try:
        await retry_on_conflict(commit)
    except EmailAlreadyRegistered:
        pass  # registered meanwhile (another first sign-in, or RegisterUser): that user stands
    async with uow:
        return await uow.users.get_by_email(email)


def _profile(answer: LegacyUser, asked: Email) -> tuple[Email, PersonName, PersonName]:
    try:
        email = Email.parse(answer.email)
    except InvalidValue as error:
        raise InvalidValue(f"an unusable email ({error})") from None
    if email.normalized != asked.normalized:
        raise InvalidValue("another email than the one asked about")
    try:
        first, last = PersonName.parse(answer.first_name), PersonName.parse(answer.last_name)
    except InvalidValue as error:
        raise InvalidValue(f"an unusable name ({error})") from None
    return email, first, last


def _kept_id(raw: str) -> UserId | None:
    try:
        return UserId.parse(raw)
    except InvalidValue:
        return None
