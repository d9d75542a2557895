"""Lazy migration at password reset, on in-memory fakes: an email unknown here is asked of the
old system (with no password) in the work after the reply; a user it knows is created with an
unusable password and mailed a reset as any user; anything else creates and sends nothing."""

from __future__ import annotations

import asyncio

import pytest

from domain.errors import AuthenticationFailed
from domain.events import EmailVerified, PasswordResetRequested, UserRegistered
from domain.ports import LegacyUser
from domain.use_cases.passwords import request_password_reset, reset_password
from domain.user import User
from domain.values import Email, UserId
from tests.fakes import FakeLegacyAuthenticator
from tests.unit.domain.use_cases.auth_kit import EMAIL, PASSWORD, AuthKit, fake_hash

OLD_ID = "0b6c3e0e-6f1e-4a8a-9d43-2b1f5a7c9e11"
NEW_PASSWORD = "Heron-Basket-31"


class FailingLegacyAuthenticator(FakeLegacyAuthenticator):
    """The old system down, slow past its timeout, or garbled: the hook answers None."""

    async def lookup(self, email: str) -> LegacyUser | None:
        self.looked_up.append(email)
        return None


@pytest.fixture
def legacy() -> FakeLegacyAuthenticator:
    return FakeLegacyAuthenticator()


@pytest.fixture
def kit(legacy: FakeLegacyAuthenticator) -> AuthKit:
    return AuthKit(legacy=legacy)


def stored_by_email(kit: AuthKit, email: str = EMAIL) -> User | None:
    user_id = kit.store.emails.get(Email.parse(email).normalized)
    return None if user_id is None else kit.store.users[user_id]


async def ask_reset(kit: AuthKit, email: str = EMAIL, *, hook: bool = True) -> None:
    legacy = (kit.legacy, kit.hasher) if hook and kit.legacy is not None else None
    await request_password_reset(
        kit.uow(), kit.notifier, kit.clock, kit.policy, kit.after_reply, email=email, legacy=legacy
    )


async def test_the_old_system_is_asked_only_after_the_reply(
    kit: AuthKit, legacy: FakeLegacyAuthenticator
) -> None:
    legacy.add(EMAIL, PASSWORD, user_id=OLD_ID)

    await ask_reset(kit)

    assert legacy.looked_up == [] and legacy.asked == []  # the reply went without asking
    assert kit.store.users == {}
    await kit.after_reply.run_all()
    assert legacy.looked_up == [EMAIL]


async def test_a_user_the_old_system_knows_is_created_mailed_a_reset_and_signs_in_after_it(
    kit: AuthKit, legacy: FakeLegacyAuthenticator
) -> None:
    legacy.add("Ada.Lovelace@Example.com", PASSWORD, user_id=OLD_ID)

    await ask_reset(kit)
    await kit.after_reply.run_all()

    user = stored_by_email(kit)
    assert user is not None and user.id == UserId.parse(OLD_ID)
    assert user.email_verified
    # Unusable: a hash of 32 random bytes (64 hex digits), not of the old password.
    assert user.password_hash != fake_hash(PASSWORD)
    assert user.password_hash.startswith("fake$") and len(user.password_hash) == 5 + 64
    (mail,) = kit.notifier.sent
    assert mail.to == "Ada.Lovelace@Example.com" and mail.name == "Ada"
    events = kit.events(user)
    assert events == [
        UserRegistered(OLD_ID, kit.clock.now, "Ada.Lovelace@Example.com", "Ada", "Lovelace"),
        EmailVerified(OLD_ID, kit.clock.now, email="Ada.Lovelace@Example.com"),
        PasswordResetRequested(OLD_ID, kit.clock.now, mail.expires_at),
    ]
    with pytest.raises(AuthenticationFailed):
        await kit.sign_in(EMAIL, PASSWORD)  # the old password does not work here
    assert legacy.asked == []  # the user is known now: sign-in does not ask the old system

    await reset_password(
        kit.uow(),
        kit.hasher,
        kit.clock,
        kit.policy.sessions,
        reset_token=mail.token,
        new_password=NEW_PASSWORD,
    )
    tokens = await kit.sign_in(EMAIL, NEW_PASSWORD)
    assert tokens.user.id == user.id


async def test_an_unconfirmed_address_is_created_unverified(
    kit: AuthKit, legacy: FakeLegacyAuthenticator
) -> None:
    legacy.add(EMAIL, PASSWORD, confirmed=False)
    await ask_reset(kit)
    await kit.after_reply.run_all()
    user = stored_by_email(kit)
    assert user is not None and not user.email_verified
    assert [type(e) for e in kit.events(user)] == [UserRegistered, PasswordResetRequested]


async def test_an_email_the_old_system_does_not_know_creates_and_sends_nothing(
    kit: AuthKit, legacy: FakeLegacyAuthenticator
) -> None:
    legacy.add("someone.else@example.com", PASSWORD)
    await ask_reset(kit)
    await kit.after_reply.run_all()
    assert legacy.looked_up == [EMAIL]
    assert kit.store.users == {} and kit.store.commits == 0
    assert kit.notifier.sent == []


async def test_a_failing_old_system_creates_and_sends_nothing() -> None:
    legacy = FailingLegacyAuthenticator()
    legacy.add(EMAIL, PASSWORD)
    kit = AuthKit(legacy=legacy)
    await ask_reset(kit)
    await kit.after_reply.run_all()
    assert legacy.looked_up == [EMAIL]
    assert kit.store.users == {} and kit.notifier.sent == []


async def test_an_answer_for_another_email_creates_nothing(
    kit: AuthKit, legacy: FakeLegacyAuthenticator
) -> None:
    user = legacy.add(EMAIL, PASSWORD)
    legacy.accounts[EMAIL] = (PASSWORD, LegacyUser(**{**vars(user), "email": "x@example.com"}))
    await ask_reset(kit)
    await kit.after_reply.run_all()
    assert kit.store.users == {} and kit.notifier.sent == []


async def test_a_known_user_is_not_asked_of_the_old_system(
    kit: AuthKit, legacy: FakeLegacyAuthenticator
) -> None:
    await kit.add_user()
    await ask_reset(kit)
    await kit.after_reply.run_all()
    assert legacy.looked_up == []
    assert len(kit.notifier.sent) == 1


async def test_without_the_hook_nothing_is_asked(
    kit: AuthKit, legacy: FakeLegacyAuthenticator
) -> None:
    legacy.add(EMAIL, PASSWORD)
    await ask_reset(kit, hook=False)
    await kit.after_reply.run_all()
    assert legacy.looked_up == [] and kit.store.users == {} and kit.notifier.sent == []


async def test_concurrent_resets_of_one_new_email_create_one_user(
    kit: AuthKit, legacy: FakeLegacyAuthenticator
) -> None:
    legacy.add(EMAIL, PASSWORD, user_id=OLD_ID)
    legacy.hold = asyncio.Event()
    await ask_reset(kit)
    await ask_reset(kit)
    works = [work for _, work in kit.after_reply.pending]
    kit.after_reply.pending.clear()
    both = asyncio.gather(*works)  # as two replicas would run them
    await legacy.until_asked(2)
    legacy.hold.set()
    await both

    assert len(kit.store.users) == 1
    user = stored_by_email(kit)
    assert user is not None
    assert [e for e in kit.events(user) if isinstance(e, UserRegistered)] != []
    assert len([e for e in kit.events(user) if isinstance(e, UserRegistered)]) == 1
    assert len(kit.notifier.sent) == 1  # the security-mail limit lets one go
