"""Use cases of email verification: the mail that registration or a resend issues, and verifying
the address with the mail's link (its token) or its 6-digit code."""

from __future__ import annotations

from datetime import datetime

from domain.errors import InvalidValue, InvalidVerificationCode, InvalidVerificationToken
from domain.policies import AuthPolicy, VerificationPolicy
from domain.ports import Clock, Notifier, UnitOfWork, VerificationMail, VerificationMailing
from domain.secret_tokens import TokenLookup, parse_code, parse_token
from domain.use_cases.retry import retry_on_conflict
from domain.use_cases.validation import Violations
from domain.user import User, UserStatus
from domain.values import Email

# A wrong code is counted in the write that checked it; of many guesses at once most lose that
# write and check again on a fresh read, so they get more attempts than other writes (as failed
# sign-ins do). A guess whose count never lands is answered ABORTED, which says nothing of it.
CODE_CHECK_ATTEMPTS = 7


def issue_verification(user: User, now: datetime, policy: AuthPolicy) -> VerificationMail:
    """Issue a new verification of the user's address (replacing any earlier one), note the
    security mail that carries it, and return that mail (to send once the write has landed)."""
    lifetime = policy.verification.lifetime
    token, code = user.request_email_verification(now, lifetime)
    user.record_security_mail(now, policy.security_mail)
    return VerificationMail(
        to=user.email.value,
        name=user.first_name.value,
        token=token.value,
        code=code.value,
        expires_at=now + lifetime,
    )


def mail_after_reply(mailing: VerificationMailing, mail: VerificationMail) -> None:
    """Send ``mail`` after the reply, so that neither the reply nor its time waits for it."""
    mailing.later.spawn(mailing.notifier.send_verification(mail), name="send a verification mail")


async def verify_email(
    uow: UnitOfWork,
    clock: Clock,
    policy: VerificationPolicy,
    *,
    token: str,
    email: str,
    code: str,
) -> User:
    """Verify an address with the link's ``token``, or with ``email`` and ``code``; the user,
    verified. A wrong code is counted before the refusal (InvalidVerificationCode), so that at
    most ``policy.max_code_attempts`` codes are ever checked against one issue."""
    presented = _presented(token=token, email=email, code=code)

    async def apply(attempt: int) -> User:
        async with uow:
            if isinstance(presented, TokenLookup):
                user = await uow.users.get_by_id(presented.user_id)
                if user is None:
                    raise InvalidVerificationToken()
                verified = user.verify_email(presented, clock(), policy.max_code_attempts)
            else:
                address, digits = presented
                user = await uow.users.get_by_email(address)
                if user is None:
                    # The store calls of a wrong code: the time taken does not tell that no
                    # account has the address.
                    await uow.users.shadow_failed_login()
                    raise InvalidVerificationCode()
                try:
                    verified = user.verify_email(digits, clock(), policy.max_code_attempts)
                except InvalidVerificationCode:
                    # Nothing to count (verified, none pending, or the code void): the same store
                    # calls as an unknown address, so the time tells nothing either.
                    await uow.users.shadow_failed_login()
                    raise
            await uow.users.update(user)
            await uow.commit()
        if not verified:
            raise InvalidVerificationCode()
        return user

    return await retry_on_conflict(apply, attempts=CODE_CHECK_ATTEMPTS)


def _presented(*, token: str, email: str, code: str) -> TokenLookup | tuple[Email, str]:
    """The token's lookup, or the address and the code's digits; INVALID_ARGUMENT unless exactly
    one of the two ways is given, and InvalidVerificationToken for a token not of our form."""
    with Violations() as check:
        if token.strip():
            if email or code:
                check.add("token", "give either the token from the link, or email and code")
        elif not email.strip() and not code.strip():
            check.add("token", "give the token from the mail's link, or email and code")
        else:
            parsed_email = check.parse("email", Email.parse, email)
            digits = check.parse("code", parse_code, code)
    if not token.strip():
        return parsed_email, digits
    try:
        return parse_token(token)
    except InvalidValue:
        raise InvalidVerificationToken() from None


async def resend_verification(
    uow: UnitOfWork,
    clock: Clock,
    policy: AuthPolicy,
    mailing: VerificationMailing,
    *,
    email: str,
) -> None:
    """Mail a new verification to the address if an active account with it is unverified;
    otherwise do nothing, quietly.

    As with a password reset, only the address's form is checked before the reply: the lookup,
    the write and the mail happen after it, so the reply is the same, and as fast, whether or
    not the address exists, is verified, or may be mailed now (policy.security_mail: the same
    per-address cool-down and hourly maximum as reset mail).
    """
    with Violations() as check:
        parsed_email = check.parse("email", Email.parse, email)
    mailing.later.spawn(
        _resend(uow, mailing.notifier, clock, policy, parsed_email),
        name="resend a verification mail",
        key=f"verification:{parsed_email.normalized}",
    )


async def _resend(
    uow: UnitOfWork, notifier: Notifier, clock: Clock, policy: AuthPolicy, email: Email
) -> None:
    async def issue(attempt: int) -> VerificationMail | None:
        async with uow:
            user = await uow.users.get_by_email(email)
            if user is None or user.status is UserStatus.DISABLED or user.email_verified:
                return None
            now = clock()
            if not user.may_send_security_mail(now, policy.security_mail):
                return None  # too soon after the last mail: the link and code sent stay valid
            mail = issue_verification(user, now, policy)
            await uow.users.update(user)
            await uow.commit()
        return mail

    mail = await retry_on_conflict(issue)
    if mail is not None:
        await notifier.send_verification(mail)
