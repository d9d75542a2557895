"""Lazy migration at sign-in, on in-memory fakes: an email unknown here is asked of the old
system; a user it vouches for is created (one write with its email guard) and signs in; every
other answer costs what an unknown email costs without the hook."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from domain.errors import AuthenticationFailed, EmailNotVerified
from domain.events import EmailVerified, SessionStarted, UserRegistered
from domain.policies import AuthPolicy, VerificationPolicy
from domain.ports import LegacyUser
from domain.use_cases import accounts
from domain.user import User
from domain.values import Email, Password, UserId
from tests.fakes import FakeLegacyAuthenticator, FakePasswordHasher, unsent_verification_mailing
from tests.unit.domain.use_cases.auth_kit import EMAIL, PASSWORD, WRONG_PASSWORD, AuthKit, fake_hash

OLD_ID = "0b6c3e0e-6f1e-4a8a-9d43-2b1f5a7c9e11"


@pytest.fixture
def legacy() -> FakeLegacyAuthenticator:
    return FakeLegacyAuthenticator()


@pytest.fixture
def kit(legacy: FakeLegacyAuthenticator) -> AuthKit:
    return AuthKit(legacy=legacy)


def stored_by_email(kit: AuthKit, email: str = EMAIL) -> User | None:
    user_id = kit.store.emails.get(Email.parse(email).normalized)
    return None if user_id is None else kit.store.users[user_id]


async def test_a_user_the_old_system_vouches_for_is_created_and_signed_in(
    kit: AuthKit, legacy: FakeLegacyAuthenticator
) -> None:
    legacy.add("Ada.Lovelace@Example.com", PASSWORD, user_id=OLD_ID)

    tokens = await kit.sign_in(EMAIL, PASSWORD)

    user = stored_by_email(kit)
    assert user is not None and tokens.user.id == user.id
    assert user.id == UserId.parse(OLD_ID)  # the old system's id is kept: it is a UUID
    assert user.email.value == "Ada.Lovelace@Example.com"  # as the old system holds it
    assert user.password_hash == fake_hash(PASSWORD)  # today's hash of the password given
    assert user.email_verified
    assert legacy.asked == [EMAIL]
    events = kit.events(user)
    assert events[:2] == [
        UserRegistered(OLD_ID, kit.clock.now, "Ada.Lovelace@Example.com", "Ada", "Lovelace"),
        EmailVerified(OLD_ID, kit.clock.now, email="Ada.Lovelace@Example.com"),
    ]
    assert events[2:] == [SessionStarted(OLD_ID, kit.clock.now, session_id=tokens.session_id)]
    # The dummy check ran while the old system was asked; then the user's own hash, as at any
    # sign-in.
    assert kit.hasher.verified == [kit.hasher.dummy_hash, fake_hash(PASSWORD)]
    assert kit.store.shadow_logins == 0


async def test_the_second_sign_in_does_not_ask_the_old_system(
    kit: AuthKit, legacy: FakeLegacyAuthenticator
) -> None:
    legacy.add(EMAIL, PASSWORD)
    await kit.sign_in(EMAIL, PASSWORD)
    await kit.sign_in(EMAIL, PASSWORD)
    with pytest.raises(AuthenticationFailed):
        await kit.sign_in(EMAIL, WRONG_PASSWORD)
    assert legacy.asked == [EMAIL]


@pytest.mark.parametrize(
    ("password", "changes"),
    [
        pytest.param(WRONG_PASSWORD, {}, id="refused"),
        pytest.param(PASSWORD, {"email": "someone.else@example.com"}, id="another-email"),
        pytest.param(PASSWORD, {"email": "not an email"}, id="bad-email"),
        pytest.param(PASSWORD, {"first_name": "  "}, id="empty-name"),
        pytest.param(PASSWORD, {"last_name": "x" * 101}, id="long-name"),
    ],
)
async def test_anything_but_a_usable_yes_fails_as_an_unknown_email_does_without_the_hook(
    kit: AuthKit, legacy: FakeLegacyAuthenticator, password: str, changes: dict[str, Any]
) -> None:
    user = legacy.add(EMAIL, password)
    legacy.accounts[EMAIL] = (password, replace(user, **changes))

    with pytest.raises(AuthenticationFailed) as failed:
        await kit.sign_in(EMAIL, PASSWORD)

    assert str(failed.value) == "the email or password is incorrect"
    # The cost of an unknown email without the hook: the dummy check and the shadow write.
    assert kit.hasher.verified == [FakePasswordHasher.dummy_hash]
    assert kit.store.shadow_logins == 1
    assert kit.store.users == {} and kit.store.commits == 0


async def test_without_the_hook_nothing_is_asked(legacy: FakeLegacyAuthenticator) -> None:
    kit = AuthKit()  # legacy=None: the hook is off
    legacy.add(EMAIL, PASSWORD)
    with pytest.raises(AuthenticationFailed):
        await kit.sign_in(EMAIL, PASSWORD)
    assert legacy.asked == []
    assert kit.hasher.verified == [FakePasswordHasher.dummy_hash]
    assert kit.store.shadow_logins == 1


async def test_an_unconfirmed_address_stays_unverified_and_the_verified_email_rule_holds(
    legacy: FakeLegacyAuthenticator,
) -> None:
    policy = AuthPolicy(verification=VerificationPolicy(required_for_sign_in=True))
    kit = AuthKit(legacy=legacy, policy=policy)
    legacy.add(EMAIL, PASSWORD, confirmed=False)

    with pytest.raises(EmailNotVerified):
        await kit.sign_in(EMAIL, PASSWORD)

    user = stored_by_email(kit)
    assert user is not None and not user.email_verified  # created: it may verify and sign in
    assert [type(event) for event in kit.events(user)] == [UserRegistered]
    with pytest.raises(EmailNotVerified):
        await kit.sign_in(EMAIL, PASSWORD)
    assert len(legacy.asked) == 1


async def test_an_old_id_taken_here_gives_the_user_a_new_one(
    kit: AuthKit, legacy: FakeLegacyAuthenticator
) -> None:
    other = await kit.add_user("grace@example.com")
    legacy.add(EMAIL, PASSWORD, user_id=other.id.value)

    tokens = await kit.sign_in(EMAIL, PASSWORD)

    assert tokens.user.id != other.id
    assert kit.stored(other).email.value == "grace@example.com"
    assert len(kit.store.users) == 2


async def test_an_old_id_that_is_no_uuid_gives_the_user_a_new_one(
    kit: AuthKit, legacy: FakeLegacyAuthenticator
) -> None:
    legacy.add(EMAIL, PASSWORD, user_id="12345")
    tokens = await kit.sign_in(EMAIL, PASSWORD)
    assert UserId.parse(tokens.user.id.value) == tokens.user.id


async def test_concurrent_first_sign_ins_create_one_user_and_both_sign_in(
    kit: AuthKit, legacy: FakeLegacyAuthenticator
) -> None:
    legacy.add(EMAIL, PASSWORD)
    legacy.hold = asyncio.Event()
    both = asyncio.gather(kit.sign_in(EMAIL, PASSWORD), kit.sign_in(EMAIL, PASSWORD))
    await legacy.until_asked(2)  # both found the email unknown and asked
    legacy.hold.set()

    first, second = await both

    assert len(kit.store.users) == 1
    assert first.user.id == second.user.id
    user = stored_by_email(kit)
    assert user is not None
    registered = [e for e in kit.events(user) if isinstance(e, UserRegistered)]
    assert len(registered) == 1
    assert len(kit.sessions(user)) == 2


async def test_a_registration_meanwhile_decides_and_its_password_counts(
    kit: AuthKit, legacy: FakeLegacyAuthenticator
) -> None:
    legacy.add(EMAIL, PASSWORD)
    legacy.hold = asyncio.Event()
    sign_in = asyncio.ensure_future(kit.sign_in(EMAIL, PASSWORD))
    await legacy.until_asked(1)
    registered = await accounts.register_user(
        kit.uow(),
        kit.hasher,
        kit.clock,
        kit.policy,
        unsent_verification_mailing(),
        email=EMAIL,
        password="Another-Horse-77",
        first_name="Someone",
        last_name="Else",
    )
    legacy.hold.set()

    with pytest.raises(AuthenticationFailed):
        await sign_in  # the guard kept the registration; its password is not this one

    assert list(kit.store.users) == [registered.id.value]
    assert kit.stored(registered).first_name.value == "Someone"
    assert kit.stored(registered).failed_logins == 1  # counted, as any wrong password


async def test_the_old_system_gets_the_password_as_typed_and_the_new_hash_is_of_its_nfkc_form(
    kit: AuthKit, legacy: FakeLegacyAuthenticator
) -> None:
    typed = "Cafe\u0301-Quill-\uff14\uff12"  # a combining accent, full-width digits
    normalized = "Caf\u00e9-Quill-42"
    legacy.add(EMAIL, typed)  # the old system hashed it as typed, without normalising

    tokens = await kit.sign_in(EMAIL, typed)

    assert kit.stored(tokens.user).password_hash == fake_hash(normalized)
    await kit.sign_in(EMAIL, typed)  # checked here from now on, normalised as always
    await kit.sign_in(EMAIL, normalized)
    assert len(legacy.asked) == 1


class SignallingHasher(FakePasswordHasher):
    """A hasher that tells when the dummy check begins."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy_begun = asyncio.Event()

    async def verify(self, password_hash: str, password: Password) -> bool:
        if password_hash == self.dummy_hash:
            self.dummy_begun.set()
        return await super().verify(password_hash, password)


class AskedWhileHashing(FakeLegacyAuthenticator):
    """An old system that answers only once the dummy check has begun: a sign-in that asked it
    before beginning that check would never get an answer."""

    def __init__(self, hasher: SignallingHasher) -> None:
        super().__init__()
        self.hasher = hasher

    async def check(self, email: str, password: Password) -> LegacyUser | None:
        await self.hasher.dummy_begun.wait()
        return await super().check(email, password)


async def test_the_old_system_is_asked_while_the_dummy_check_runs() -> None:
    # Overlapped, an unknown email costs max(the old system's answer, a hash), not their sum.
    hasher = SignallingHasher()
    legacy = AskedWhileHashing(hasher)
    kit = AuthKit(legacy=legacy, hasher=hasher)

    with pytest.raises(AuthenticationFailed):
        await asyncio.wait_for(kit.sign_in("nobody@example.com", PASSWORD), timeout=5)

    assert hasher.verified == [hasher.dummy_hash]
    assert legacy.asked == ["nobody@example.com"]
    assert kit.store.shadow_logins == 1
