"""Use cases on in-memory fakes: validation, conflicts, the events stored with each change, and
nothing written (no event either) on failure."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from domain.errors import (
    AccountDisabled,
    ConcurrentWrite,
    EmailAlreadyRegistered,
    InvalidArgument,
    InvalidRefreshToken,
    UserNotFound,
    VersionConflict,
)
from domain.events import (
    DomainEvent,
    EmailVerificationRequested,
    ProfileUpdated,
    SessionEndReason,
    SessionsRevoked,
    UserDeleted,
    UserDisabled,
    UserEnabled,
    UserRegistered,
)
from domain.pagination import PageTokenCodec
from domain.policies import AuthPolicy, SessionPolicy
from domain.use_cases import accounts
from domain.use_cases.retry import ATTEMPTS
from domain.user import User, UserStatus
from domain.values import UserId
from tests.fakes import (
    FakePasswordHasher,
    FakeUnitOfWork,
    FixedClock,
    InMemoryStore,
    unsent_verification_mailing,
)
from tests.unit.domain.use_cases.auth_kit import AuthKit

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CODEC = PageTokenCodec(b"p" * 32)


# A registration records UserRegistered and EmailVerificationRequested.
REGISTRATION_EVENTS = 2


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


async def register(store: InMemoryStore, clock: FixedClock, email: str = "Ada@Example.com") -> User:
    return await accounts.register_user(
        FakeUnitOfWork(store),
        FakePasswordHasher(),
        clock,
        AuthPolicy(),
        unsent_verification_mailing(),
        email=email,
        password="correct horse battery",
        first_name=" Ada ",
        last_name="Lovelace",
    )


def violated_fields(error: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {violation.field for violation in error.value.violations}


async def test_register_user_stores_a_hashed_password_and_version_one(
    store: InMemoryStore, clock: FixedClock
) -> None:
    user = await register(store, clock)
    stored = store.users[user.id.value]
    assert user.version == stored.version == 1
    assert stored.first_name.value == "Ada"
    assert stored.password_hash == "fake$" + "correct horse battery"[::-1]
    assert store.emails == {"ada@example.com": user.id.value}
    assert store.events_of(user.id) == [
        UserRegistered(user.id.value, NOW, "Ada@Example.com", "Ada", "Lovelace"),
        EmailVerificationRequested(user.id.value, NOW, expires_at=NOW + timedelta(hours=24)),
    ]
    assert [recorded.sequence for recorded in store.events[user.id.value]] == [1, 2]
    assert user.events == []  # landed, so no longer pending


async def test_register_user_reports_every_invalid_field_and_writes_nothing(
    store: InMemoryStore, clock: FixedClock
) -> None:
    with pytest.raises(InvalidArgument) as error:
        await accounts.register_user(
            FakeUnitOfWork(store),
            FakePasswordHasher(),
            clock,
            AuthPolicy(),
            unsent_verification_mailing(),
            email="nope",
            password="short",
            first_name=" ",
            last_name="x" * 101,
        )
    assert violated_fields(error) == {"email", "password", "first_name", "last_name"}
    assert store.users == {} and store.commits == 0 and store.events == {}


async def test_register_user_refuses_duplicate_email_in_other_case(
    store: InMemoryStore, clock: FixedClock
) -> None:
    first = await register(store, clock)
    with pytest.raises(EmailAlreadyRegistered):
        await register(store, clock, email="  ADA@example.COM ")
    assert list(store.users) == [first.id.value]
    assert list(store.events) == [first.id.value]  # the refused registration left no event


async def test_concurrent_registrations_of_one_email_let_exactly_one_win(
    store: InMemoryStore, clock: FixedClock
) -> None:
    emails = [f"{'ADA' if i % 2 else 'ada'}@Example.com" for i in range(20)]
    results = await asyncio.gather(
        *(register(store, clock, email) for email in emails), return_exceptions=True
    )
    assert sum(isinstance(result, User) for result in results) == 1
    assert all(isinstance(result, (User, EmailAlreadyRegistered)) for result in results)
    assert len(store.users) == len(store.emails) == 1


async def test_get_user_by_email_matches_without_regard_to_case(
    store: InMemoryStore, clock: FixedClock
) -> None:
    user = await register(store, clock)
    found = await accounts.get_user_by_email(FakeUnitOfWork(store), email=" ada@EXAMPLE.com")
    assert found.id == user.id and found.email.value == "Ada@Example.com"


async def test_get_user_refuses_malformed_id_and_reports_unknown_id(store: InMemoryStore) -> None:
    with pytest.raises(InvalidArgument) as error:
        await accounts.get_user(FakeUnitOfWork(store), user_id="42")
    assert violated_fields(error) == {"id"}
    with pytest.raises(UserNotFound):
        await accounts.get_user(
            FakeUnitOfWork(store), user_id="3f2b8a3e-1c4d-4e5f-9a6b-7c8d9e0f1a2b"
        )


async def test_update_profile_bumps_version_and_keeps_absent_names(
    store: InMemoryStore, clock: FixedClock
) -> None:
    user = await register(store, clock)
    clock.now = NOW + timedelta(minutes=5)
    updated = await accounts.update_profile(
        FakeUnitOfWork(store),
        clock,
        user_id=user.id.value,
        first_name="Augusta",
        last_name=None,
        expected_version=1,
    )
    assert updated.version == 2 and updated.updated_at == clock.now
    assert store.events_of(user.id)[REGISTRATION_EVENTS:] == [
        ProfileUpdated(user.id.value, clock.now, "Augusta", "Lovelace")
    ]
    stored = store.users[user.id.value]
    assert (stored.first_name.value, stored.last_name.value, stored.version) == (
        "Augusta",
        "Lovelace",
        2,
    )


async def test_update_profile_with_stale_version_is_a_conflict_and_changes_nothing(
    store: InMemoryStore, clock: FixedClock
) -> None:
    user = await register(store, clock)
    await accounts.update_profile(
        FakeUnitOfWork(store),
        clock,
        user_id=user.id.value,
        first_name="B",
        last_name=None,
        expected_version=1,
    )
    with pytest.raises(VersionConflict) as error:
        await accounts.update_profile(
            FakeUnitOfWork(store),
            clock,
            user_id=user.id.value,
            first_name="C",
            last_name=None,
            expected_version=1,
        )
    assert (error.value.expected, error.value.actual) == (1, 2)
    assert store.users[user.id.value].first_name.value == "B"
    assert [type(event) for event in store.events_of(user.id)] == [
        UserRegistered,
        EmailVerificationRequested,
        ProfileUpdated,
    ]


async def test_update_profile_requires_a_name_and_a_version(
    store: InMemoryStore, clock: FixedClock
) -> None:
    user = await register(store, clock)
    with pytest.raises(InvalidArgument) as error:
        await accounts.update_profile(
            FakeUnitOfWork(store),
            clock,
            user_id=user.id.value,
            first_name=None,
            last_name=None,
            expected_version=0,
        )
    assert violated_fields(error) == {"first_name", "expected_version"}
    assert store.users[user.id.value].version == 1


async def test_update_profile_without_change_does_not_write(
    store: InMemoryStore, clock: FixedClock
) -> None:
    user = await register(store, clock)
    commits = store.commits
    same = await accounts.update_profile(
        FakeUnitOfWork(store),
        clock,
        user_id=user.id.value,
        first_name="Ada",
        last_name=None,
        expected_version=1,
    )
    assert same.version == 1 and store.commits == commits
    assert len(store.events_of(user.id)) == REGISTRATION_EVENTS


async def test_lost_update_is_impossible_when_two_writers_read_the_same_version(
    store: InMemoryStore, clock: FixedClock
) -> None:
    user = await register(store, clock)
    results = await asyncio.gather(
        *(
            accounts.update_profile(
                FakeUnitOfWork(store),
                clock,
                user_id=user.id.value,
                first_name=f"N{i}",
                last_name=None,
                expected_version=1,
            )
            for i in range(10)
        ),
        return_exceptions=True,
    )
    winners = [result for result in results if isinstance(result, User)]
    assert len(winners) == 1
    assert all(isinstance(result, (User, VersionConflict)) for result in results)
    assert store.users[user.id.value].first_name == winners[0].first_name
    (updated,) = store.events_of(user.id)[REGISTRATION_EVENTS:]
    assert updated == ProfileUpdated(user.id.value, NOW, winners[0].first_name.value, "Lovelace")


async def test_delete_user_frees_the_email(store: InMemoryStore, clock: FixedClock) -> None:
    user = await register(store, clock)
    await accounts.delete_user(
        FakeUnitOfWork(store), clock, user_id=user.id.value, expected_version=1
    )
    assert store.users == {} and store.emails == {}
    # The events outlive the user.
    assert store.events_of(user.id)[REGISTRATION_EVENTS:] == [UserDeleted(user.id.value, NOW)]
    assert [recorded.sequence for recorded in store.events[user.id.value]] == [1, 2, 3]
    again = await register(store, clock, email="ADA@example.com")
    assert again.id != user.id


async def test_delete_user_with_stale_version_keeps_the_user(
    store: InMemoryStore, clock: FixedClock
) -> None:
    user = await register(store, clock)
    with pytest.raises(VersionConflict):
        await accounts.delete_user(
            FakeUnitOfWork(store), clock, user_id=user.id.value, expected_version=7
        )
    assert user.id.value in store.users
    assert len(store.events_of(user.id)) == REGISTRATION_EVENTS


async def test_delete_unknown_user_is_not_found(store: InMemoryStore, clock: FixedClock) -> None:
    with pytest.raises(UserNotFound):
        await accounts.delete_user(
            FakeUnitOfWork(store),
            clock,
            user_id="3f2b8a3e-1c4d-4e5f-9a6b-7c8d9e0f1a2b",
            expected_version=1,
        )


async def test_list_users_pages_through_everyone_once(
    store: InMemoryStore, clock: FixedClock
) -> None:
    registered = {(await register(store, clock, f"user{i}@example.com")).id for i in range(7)}
    seen: list[UserId] = []
    token, pages = "", 0
    while True:
        page = await accounts.list_users(
            FakeUnitOfWork(store), CODEC, page_size=3, page_token=token
        )
        seen.extend(user.id for user in page.users)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen, key=str) == sorted(registered, key=str)
    assert pages == 3


@pytest.mark.parametrize("page_size", [-1, 101, 2**31 - 1])
async def test_list_users_refuses_page_size_out_of_range(
    store: InMemoryStore, page_size: int
) -> None:
    with pytest.raises(InvalidArgument) as error:
        await accounts.list_users(FakeUnitOfWork(store), CODEC, page_size=page_size, page_token="")
    assert violated_fields(error) == {"page_size"}


async def test_list_users_refuses_a_forged_page_token(store: InMemoryStore) -> None:
    with pytest.raises(InvalidArgument) as error:
        await accounts.list_users(
            FakeUnitOfWork(store), CODEC, page_size=10, page_token="bm90IGEgdG9rZW4"
        )
    assert violated_fields(error) == {"page_token"}


@pytest.mark.parametrize(
    "password", ["password1", "QWERTYUIOP", "ada.lovelace@example.com", "Ada.Lovelace"]
)
async def test_register_user_refuses_a_common_password_or_the_email_as_password(
    store: InMemoryStore, clock: FixedClock, password: str
) -> None:
    with pytest.raises(InvalidArgument) as error:
        await accounts.register_user(
            FakeUnitOfWork(store),
            FakePasswordHasher(),
            clock,
            AuthPolicy(),
            unsent_verification_mailing(),
            email="Ada.Lovelace@Example.com",
            password=password,
            first_name="Ada",
            last_name="Lovelace",
        )
    assert violated_fields(error) == {"password"}
    assert store.users == {} and store.commits == 0 and store.events == {}


async def test_disable_user_ends_every_session_and_blocks_sign_in_and_refresh() -> None:
    kit = AuthKit()
    user = await kit.add_user()
    signed_in = await kit.sign_in()
    kit.later(minutes=1)

    disabled = await accounts.disable_user(
        kit.uow(), kit.clock, kit.policy.sessions, user_id=user.id.value
    )

    assert disabled.status is UserStatus.DISABLED and disabled.updated_at == kit.clock.now
    now, uid = kit.clock.now, user.id.value
    assert kit.events(user)[-2:] == [
        UserDisabled(uid, now),
        SessionsRevoked(uid, now, SessionEndReason.USER_DISABLED, 1),
    ]
    stored = kit.stored(user)
    assert stored.status is UserStatus.DISABLED and kit.sessions(user) == ()
    with pytest.raises(InvalidRefreshToken):
        await kit.refresh(signed_in.refresh_token)
    with pytest.raises(AccountDisabled):
        await kit.sign_in()


async def test_refresh_of_a_disabled_user_is_refused_even_if_a_session_survived() -> None:
    kit = AuthKit()
    user = await kit.add_user()
    signed_in = await kit.sign_in()
    kit.store.users[user.id.value].status = UserStatus.DISABLED  # as written by an older version

    with pytest.raises(InvalidRefreshToken):
        await kit.refresh(signed_in.refresh_token)


async def test_enable_user_lets_a_disabled_user_sign_in_again() -> None:
    kit = AuthKit()
    user = await kit.add_user()
    await accounts.disable_user(kit.uow(), kit.clock, kit.policy.sessions, user_id=user.id.value)

    enabled = await accounts.enable_user(kit.uow(), kit.clock, user_id=user.id.value)

    assert kit.events(user)[-2:] == [
        UserDisabled(user.id.value, kit.clock.now),
        UserEnabled(user.id.value, kit.clock.now),
    ]
    assert enabled.status is UserStatus.ACTIVE
    assert kit.stored(user).status is UserStatus.ACTIVE
    assert await kit.sign_in()


async def test_disable_and_enable_write_nothing_when_nothing_changes() -> None:
    kit = AuthKit()
    user = await kit.add_user()
    commits = kit.store.commits

    await accounts.enable_user(kit.uow(), kit.clock, user_id=user.id.value)
    assert kit.store.commits == commits

    await accounts.disable_user(kit.uow(), kit.clock, kit.policy.sessions, user_id=user.id.value)
    await accounts.disable_user(kit.uow(), kit.clock, kit.policy.sessions, user_id=user.id.value)
    assert kit.store.commits == commits + 1
    assert kit.stored(user).version == 2
    assert kit.new_events(user) == [UserDisabled(user.id.value, kit.clock.now)]


async def test_the_unit_of_work_reports_the_events_of_each_commit_that_landed(
    store: InMemoryStore, clock: FixedClock
) -> None:
    heard: list[list[DomainEvent]] = []
    user = await register(store, clock)

    def uow() -> FakeUnitOfWork:
        return FakeUnitOfWork(
            store, clock=clock, on_committed=lambda events: heard.append(list(events))
        )

    await accounts.disable_user(uow(), clock, SessionPolicy(), user_id=user.id.value)
    with pytest.raises(VersionConflict):
        await accounts.delete_user(uow(), clock, user_id=user.id.value, expected_version=1)
    await accounts.enable_user(uow(), clock, user_id=user.id.value)

    assert heard == [[UserDisabled(user.id.value, NOW)], [UserEnabled(user.id.value, NOW)]]


async def test_disable_and_enable_an_unknown_or_malformed_user_id() -> None:
    kit = AuthKit()
    disable = partial(accounts.disable_user, policy=kit.policy.sessions)
    for switch in (disable, accounts.enable_user):
        with pytest.raises(UserNotFound):
            await switch(kit.uow(), kit.clock, user_id="3f2b8a3e-1c4d-4e5f-9a6b-7c8d9e0f1a2b")
        with pytest.raises(InvalidArgument) as error:
            await switch(kit.uow(), kit.clock, user_id="42")
        assert violated_fields(error) == {"id"}


class CollidingUnitOfWork(FakeUnitOfWork):
    """Refuses its first ``collisions`` commits as DynamoDB does a write meeting another in
    flight (a ConcurrentWrite: nothing written), then commits as usual."""

    def __init__(self, store: InMemoryStore, collisions: int) -> None:
        super().__init__(store)
        self.collisions = collisions
        self.attempts = 0

    async def commit(self) -> None:
        self.attempts += 1
        if self.attempts <= self.collisions:
            raise ConcurrentWrite()
        await super().commit()


async def register_through(uow: FakeUnitOfWork, clock: FixedClock) -> User:
    return await accounts.register_user(
        uow,
        FakePasswordHasher(),
        clock,
        AuthPolicy(),
        unsent_verification_mailing(),
        email="ada@example.com",
        password="correct horse battery",
        first_name="Ada",
        last_name="Lovelace",
    )


async def test_register_user_retries_a_concurrent_write_and_lands_once(
    store: InMemoryStore, clock: FixedClock
) -> None:
    uow = CollidingUnitOfWork(store, collisions=2)

    user = await register_through(uow, clock)

    assert uow.attempts == 3
    assert list(store.users) == [user.id.value]
    assert [type(stored.event) for stored in store.events[user.id.value]] == [
        UserRegistered,
        EmailVerificationRequested,
    ]


async def test_register_user_meeting_a_concurrent_write_on_every_attempt_is_aborted_not_taken(
    store: InMemoryStore, clock: FixedClock
) -> None:
    uow = CollidingUnitOfWork(store, collisions=99)

    with pytest.raises(ConcurrentWrite):  # ABORTED: never a wrong ALREADY_EXISTS
        await register_through(uow, clock)

    assert uow.attempts == ATTEMPTS
    assert store.users == {} and store.emails == {} and store.events == {}


async def test_register_user_retried_after_another_registration_won_is_already_registered(
    store: InMemoryStore, clock: FixedClock
) -> None:
    class WinnerLandsFirst(CollidingUnitOfWork):
        async def commit(self) -> None:
            if self.attempts == 0:  # the write this one collided with: another registration
                await register(store, clock, email="ADA@example.com")
            await super().commit()

    uow = WinnerLandsFirst(store, collisions=1)

    with pytest.raises(EmailAlreadyRegistered):
        await register_through(uow, clock)

    assert uow.attempts == 2 and len(store.users) == 1
