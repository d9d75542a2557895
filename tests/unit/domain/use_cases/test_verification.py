"""Email verification through the use cases: the mail registration issues, verifying with the
link or the code, resending within the security mail limit, and sign-in that may need it."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest

from domain.errors import (
    AuthenticationFailed,
    EmailNotVerified,
    InvalidArgument,
    InvalidVerificationCode,
    InvalidVerificationToken,
    VerificationCodeAttemptsExhausted,
    VersionConflict,
)
from domain.events import EmailVerificationRequested, EmailVerified, UserRegistered
from domain.policies import VerificationPolicy
from domain.ports import VerificationMail, VerificationMailing
from domain.secret_tokens import hash_token, parse_token
from domain.use_cases import accounts
from domain.use_cases.passwords import request_password_reset
from domain.use_cases.verification import resend_verification, verify_email
from domain.user import User
from domain.values import Email
from tests.unit.domain.use_cases.auth_kit import EMAIL, PASSWORD, WRONG_PASSWORD, AuthKit

LIMIT = VerificationPolicy().max_code_attempts


@pytest.fixture
def kit() -> AuthKit:
    return AuthKit()


def mailing(kit: AuthKit) -> VerificationMailing:
    return VerificationMailing(kit.notifier, kit.after_reply)


async def register(kit: AuthKit, email: str = EMAIL, *, verified: bool = False) -> User:
    user = await accounts.register_user(
        kit.uow(),
        kit.hasher,
        kit.clock,
        kit.policy,
        mailing(kit),
        email=email,
        password=PASSWORD,
        first_name="Ada",
        last_name="Lovelace",
        email_verified=verified,
    )
    await kit.after_reply.run_all()
    return user


def last_mail(kit: AuthKit) -> VerificationMail:
    return kit.notifier.verifications[-1]


async def verify(kit: AuthKit, *, token: str = "", email: str = "", code: str = "") -> User:
    return await verify_email(
        kit.uow(), kit.clock, kit.policy.verification, token=token, email=email, code=code
    )


async def resend(kit: AuthKit, email: str = EMAIL) -> None:
    await resend_verification(kit.uow(), kit.clock, kit.policy, mailing(kit), email=email)
    await kit.after_reply.run_all()


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def fields_of(error: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {violation.field for violation in error.value.violations}


# --- registration ---------------------------------------------------------------------------


async def test_registration_issues_the_verification_in_its_write_and_mails_it_after_the_reply(
    kit: AuthKit,
) -> None:
    user = await accounts.register_user(
        kit.uow(),
        kit.hasher,
        kit.clock,
        kit.policy,
        mailing(kit),
        email=" Ada.Lovelace@Example.com ",
        password=PASSWORD,
        first_name="Ada",
        last_name="Lovelace",
    )
    stored = kit.stored(user)
    assert stored.email_verification is not None and not stored.email_verified
    assert kit.notifier.verifications == []  # not before the reply
    commits = kit.store.commits

    await kit.after_reply.run_all()

    (mail,) = kit.notifier.verifications
    assert (mail.to, mail.name) == ("Ada.Lovelace@Example.com", "Ada")
    assert mail.expires_at == kit.clock.now + timedelta(hours=24)
    assert hash_token(mail.token) == stored.email_verification.token_hash
    assert len(mail.code) == 6 and mail.code.isdigit()
    assert mail.token not in repr(mail) and mail.code not in repr(mail)
    assert kit.store.commits == commits  # the mail writes nothing more
    assert stored.security_mail_sent_at == (kit.clock.now,)  # under the security mail limit
    assert kit.events(user) == [
        UserRegistered(user.id.value, kit.clock.now, "Ada.Lovelace@Example.com", "Ada", "Lovelace"),
        EmailVerificationRequested(user.id.value, kit.clock.now, mail.expires_at),
    ]


async def test_an_account_registered_verified_gets_no_mail(kit: AuthKit) -> None:
    user = await register(kit, verified=True)

    stored = kit.stored(user)
    assert stored.email_verified and stored.email_verified_at == kit.clock.now
    assert stored.email_verification is None
    assert kit.notifier.verifications == []
    assert [type(event) for event in kit.events(user)] == [UserRegistered, EmailVerified]
    assert stored.version == 1


# --- verifying --------------------------------------------------------------------------------


async def test_the_mailed_link_verifies_the_address(kit: AuthKit) -> None:
    user = await register(kit)
    kit.new_events(user)
    kit.later(hours=2)

    verified = await verify(kit, token=last_mail(kit).token)

    assert verified.email_verified and verified.version == 2
    stored = kit.stored(user)
    assert stored.email_verified and stored.email_verified_at == kit.clock.now
    assert stored.email_verification is None
    assert kit.new_events(user) == [EmailVerified(user.id.value, kit.clock.now, EMAIL)]


async def test_the_mailed_code_verifies_the_address_given_in_any_letter_case(kit: AuthKit) -> None:
    user = await register(kit)

    verified = await verify(kit, email=" ADA.lovelace@example.com ", code=last_mail(kit).code)

    assert verified.email_verified and kit.stored(user).email_verified


async def test_a_used_link_is_refused_and_changes_nothing(kit: AuthKit) -> None:
    await register(kit)
    token = last_mail(kit).token
    await verify(kit, token=token)
    commits = kit.store.commits

    with pytest.raises(InvalidVerificationToken):
        await verify(kit, token=token)
    with pytest.raises(InvalidVerificationCode):
        await verify(kit, email=EMAIL, code=last_mail(kit).code)
    assert kit.store.commits == commits


async def test_an_expired_link_or_code_is_refused(kit: AuthKit) -> None:
    user = await register(kit)
    kit.later(hours=24)

    with pytest.raises(InvalidVerificationToken):
        await verify(kit, token=last_mail(kit).token)
    with pytest.raises(InvalidVerificationCode):
        await verify(kit, email=EMAIL, code=last_mail(kit).code)
    assert not kit.stored(user).email_verified


@pytest.mark.parametrize(
    "token",
    [
        "x",
        "not-a-token",
        "a" * 10_000,
        "3f2b8a3e-1c4d-4e5f-9a6b-7c8d9e0f1a2b",
        "3f2b8a3e-1c4d-4e5f-9a6b-7c8d9e0f1a2b.",
        "3f2b8a3e-1c4d-4e5f-9a6b-7c8d9e0f1a2b.secret",
        "\x00\x01",
        "é.é",
    ],
)
async def test_a_token_that_is_not_one_of_ours_is_refused_as_invalid(
    kit: AuthKit, token: str
) -> None:
    await register(kit)
    commits = kit.store.commits
    with pytest.raises(InvalidVerificationToken):
        await verify(kit, token=token)
    assert kit.store.commits == commits


async def test_a_reset_token_or_another_user_s_token_is_not_a_verification_token(
    kit: AuthKit,
) -> None:
    await register(kit)
    await register(kit, "grace@example.com")
    grace_token = last_mail(kit).token
    kit.later(minutes=5)
    await request_password_reset(
        kit.uow(), kit.notifier, kit.clock, kit.policy, kit.after_reply, email=EMAIL
    )
    await kit.after_reply.run_all()
    reset_token = kit.notifier.sent[-1].token
    ada_token = kit.notifier.verifications[0].token
    grace_lookup = parse_token(grace_token)
    forged = f"{parse_token(ada_token).user_id}.{grace_token.split('.', 1)[1]}"

    for token in (reset_token, forged):
        with pytest.raises(InvalidVerificationToken):
            await verify(kit, token=token)
    assert not any(user.email_verified for user in kit.store.users.values())
    assert (await verify(kit, token=grace_token)).id == grace_lookup.user_id


async def test_every_wrong_code_is_counted_and_at_the_limit_the_code_is_void_not_the_link(
    kit: AuthKit,
) -> None:
    user = await register(kit)
    mail = last_mail(kit)
    for attempt in range(1, LIMIT + 1):
        with pytest.raises(InvalidVerificationCode):
            await verify(kit, email=EMAIL, code=wrong(mail.code))
        pending = kit.stored(user).email_verification
        assert pending is not None and pending.wrong_codes == attempt
    assert kit.stored(user).version == 1  # counting is bookkeeping
    commits = kit.store.commits

    with pytest.raises(VerificationCodeAttemptsExhausted):
        await verify(kit, email=EMAIL, code=mail.code)
    assert kit.store.commits == commits
    assert (await verify(kit, token=mail.token)).email_verified


async def test_concurrent_wrong_codes_never_get_past_the_limit(kit: AuthKit) -> None:
    user = await register(kit)
    mail = last_mail(kit)

    results = await asyncio.gather(
        *(verify(kit, email=EMAIL, code=wrong(mail.code)) for _ in range(20)),
        return_exceptions=True,
    )

    # Those counted: refused as wrong, not for the limit (said alike to the caller).
    wrong_answers = [
        r
        for r in results
        if isinstance(r, InvalidVerificationCode)
        and not isinstance(r, VerificationCodeAttemptsExhausted)
    ]
    assert len(wrong_answers) <= LIMIT
    assert all(
        isinstance(r, (InvalidVerificationCode, VerificationCodeAttemptsExhausted, VersionConflict))
        for r in results
    )
    pending = kit.stored(user).email_verification
    assert pending is not None and pending.wrong_codes == LIMIT
    with pytest.raises(VerificationCodeAttemptsExhausted):
        await verify(kit, email=EMAIL, code=mail.code)


async def test_a_code_for_an_address_nobody_has_is_refused_like_a_wrong_one(kit: AuthKit) -> None:
    await register(kit)
    commits, shadows = kit.store.commits, kit.store.shadow_logins

    with pytest.raises(InvalidVerificationCode):
        await verify(kit, email="nobody@example.com", code="123456")

    assert kit.store.commits == commits
    assert kit.store.shadow_logins == shadows + 1  # the store calls a wrong code makes


async def test_a_verification_is_void_once_the_address_changed(kit: AuthKit) -> None:
    user = await register(kit)
    async with kit.uow() as uow:
        stored = await uow.users.require(user.id)
        stored.change_email(Email.parse("ada@new.example"), now=kit.clock())
        await uow.users.update(stored)
        await uow.commit()

    with pytest.raises(InvalidVerificationToken):
        await verify(kit, token=last_mail(kit).token)
    with pytest.raises(InvalidVerificationCode):
        await verify(kit, email="ada@new.example", code=last_mail(kit).code)
    assert not kit.stored(user).email_verified


@pytest.mark.parametrize(
    ("request_fields", "fields"),
    [
        ({}, {"token"}),
        ({"token": "  ", "email": "", "code": ""}, {"token"}),
        ({"token": "t.t", "email": EMAIL}, {"token"}),
        ({"token": "t.t", "code": "123456"}, {"token"}),
        ({"email": EMAIL}, {"code"}),
        ({"code": "123456"}, {"email"}),
        ({"email": "nope", "code": "12345"}, {"email", "code"}),
        ({"email": EMAIL, "code": "12345a"}, {"code"}),
        ({"email": EMAIL, "code": "1" * 10_000}, {"code"}),
    ],
)
async def test_malformed_requests_are_invalid_arguments_and_change_nothing(
    kit: AuthKit, request_fields: dict[str, str], fields: set[str]
) -> None:
    await register(kit)
    commits = kit.store.commits
    with pytest.raises(InvalidArgument) as error:
        await verify(kit, **request_fields)
    assert fields_of(error) == fields
    assert kit.store.commits == commits


# --- resending --------------------------------------------------------------------------------


async def test_a_resend_mails_a_new_link_and_code_and_voids_the_earlier_ones(kit: AuthKit) -> None:
    user = await register(kit)
    first = last_mail(kit)
    kit.new_events(user)
    kit.later(seconds=60)

    await resend(kit, "ADA.lovelace@example.com")

    second = last_mail(kit)
    assert len(kit.notifier.verifications) == 2 and second.token != first.token
    assert kit.new_events(user) == [
        EmailVerificationRequested(user.id.value, kit.clock.now, second.expires_at)
    ]
    with pytest.raises(InvalidVerificationToken):
        await verify(kit, token=first.token)
    assert (await verify(kit, email=EMAIL, code=second.code)).email_verified


async def test_a_resend_replies_before_looking_anything_up(kit: AuthKit) -> None:
    await register(kit)
    kit.later(minutes=5)
    commits = kit.store.commits

    await resend_verification(kit.uow(), kit.clock, kit.policy, mailing(kit), email=EMAIL)

    assert kit.store.commits == commits and len(kit.notifier.verifications) == 1
    await kit.after_reply.run_all()
    assert len(kit.notifier.verifications) == 2


async def test_a_resend_within_the_cool_down_mails_nothing_and_keeps_the_link(kit: AuthKit) -> None:
    await register(kit)
    first = last_mail(kit)
    commits = kit.store.commits
    kit.later(seconds=59)

    await resend(kit)

    assert kit.notifier.verifications == [first] and kit.store.commits == commits
    assert (await verify(kit, token=first.token)).email_verified


async def test_reset_mail_and_verification_mail_share_the_cool_down(kit: AuthKit) -> None:
    await register(kit)
    kit.later(seconds=30)
    await request_password_reset(
        kit.uow(), kit.notifier, kit.clock, kit.policy, kit.after_reply, email=EMAIL
    )
    await kit.after_reply.run_all()
    assert kit.notifier.sent == []  # the verification mail went 30 s ago
    kit.later(seconds=30)
    await request_password_reset(
        kit.uow(), kit.notifier, kit.clock, kit.policy, kit.after_reply, email=EMAIL
    )
    await kit.after_reply.run_all()
    kit.later(seconds=30)

    await resend(kit)

    assert len(kit.notifier.sent) == 1 and len(kit.notifier.verifications) == 1


@pytest.mark.parametrize("state", ["unknown", "verified", "disabled"])
async def test_a_resend_for_an_address_without_an_unverified_active_account_does_nothing(
    kit: AuthKit, state: str
) -> None:
    user = await register(kit, verified=state == "verified")
    if state == "disabled":
        await accounts.disable_user(
            kit.uow(), kit.clock, kit.policy.sessions, user_id=user.id.value
        )
    kit.later(minutes=5)
    mails, commits = len(kit.notifier.verifications), kit.store.commits

    await resend(kit, "nobody@example.com" if state == "unknown" else EMAIL)

    assert len(kit.notifier.verifications) == mails and kit.store.commits == commits


async def test_disabling_voids_the_mailed_link(kit: AuthKit) -> None:
    user = await register(kit)
    await accounts.disable_user(kit.uow(), kit.clock, kit.policy.sessions, user_id=user.id.value)
    await accounts.enable_user(kit.uow(), kit.clock, user_id=user.id.value)

    with pytest.raises(InvalidVerificationToken):
        await verify(kit, token=last_mail(kit).token)


async def test_a_resend_with_a_malformed_email_is_an_invalid_argument(kit: AuthKit) -> None:
    with pytest.raises(InvalidArgument) as error:
        await resend(kit, "not an address")
    assert fields_of(error) == {"email"}


# --- sign-in ----------------------------------------------------------------------------------


def requiring(kit: AuthKit) -> AuthKit:
    verification = dataclasses.replace(kit.policy.verification, required_for_sign_in=True)
    kit.policy = dataclasses.replace(kit.policy, verification=verification)
    return kit


async def test_when_required_the_right_password_of_an_unverified_account_is_told_so(
    kit: AuthKit,
) -> None:
    user = await register(requiring(kit))
    commits = kit.store.commits

    with pytest.raises(EmailNotVerified):
        await kit.sign_in()

    assert kit.sessions(user) == () and kit.store.commits == commits


async def test_when_required_a_wrong_password_is_refused_and_counted_as_before(
    kit: AuthKit,
) -> None:
    user = await register(requiring(kit))

    with pytest.raises(AuthenticationFailed):
        await kit.sign_in(password=WRONG_PASSWORD)

    assert kit.stored(user).failed_logins == 1


async def test_when_required_a_locked_unverified_account_is_refused_as_any_locked_one(
    kit: AuthKit,
) -> None:
    await register(requiring(kit))
    for _ in range(kit.policy.lockout.max_failures):
        with pytest.raises(AuthenticationFailed):
            await kit.sign_in(password=WRONG_PASSWORD)

    with pytest.raises(AuthenticationFailed):  # not EmailNotVerified: the wait comes first
        await kit.sign_in()
    await kit.after_reply.run_all()  # the lock notice


async def test_when_required_sign_in_works_once_verified_and_the_token_says_so(
    kit: AuthKit,
) -> None:
    await register(requiring(kit))
    await verify(kit, token=last_mail(kit).token)

    tokens = await kit.sign_in()
    await kit.refresh(tokens.refresh_token)

    assert tokens.user.email_verified
    assert kit.issuer.email_verified_claims == [True, True]


async def test_when_not_required_an_unverified_account_signs_in_and_its_token_says_so(
    kit: AuthKit,
) -> None:
    await register(kit)

    tokens = await kit.sign_in()

    assert not tokens.user.email_verified
    assert kit.issuer.email_verified_claims == [False]
