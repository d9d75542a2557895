"""Lock-out: 5 wrong passwords within 15 minutes lock the account for 15 minutes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from domain.errors import AuthenticationFailed, LockedOut
from domain.events import AccountLocked
from domain.policies import LockoutPolicy
from domain.user import User
from tests.builders import T0, new_user
from tests.unit.domain.use_cases.auth_kit import PASSWORD, WRONG_PASSWORD, AuthKit

POLICY = LockoutPolicy()
MINUTE = timedelta(minutes=1)


def fail(user: User, times: int, *, start: timedelta = timedelta(0)) -> None:
    for i in range(times):
        user.record_failed_login(T0 + start + i * MINUTE, POLICY)


def unsaved_user() -> User:
    """A new user whose UserRegistered is set aside: its events are those of the test."""
    user = new_user()
    user.events.clear()
    return user


# --- the aggregate ---------------------------------------------------------------------------


def test_four_failures_count_but_do_not_lock_and_record_no_event() -> None:
    user = unsaved_user()
    fail(user, 4)
    assert user.failed_logins == 4 and user.failures_started_at == T0
    assert user.lock_remaining(T0 + 4 * MINUTE) is None
    assert user.events == []


def test_the_fifth_failure_within_the_window_locks_for_the_lock_duration() -> None:
    user = unsaved_user()
    fail(user, 5)  # the fifth at T0 + 4 min
    fifth = T0 + 4 * MINUTE

    assert user.locked_until == fifth + POLICY.duration
    assert user.lock_remaining(fifth) == timedelta(minutes=15)
    assert user.lock_remaining(fifth + 10 * MINUTE) == timedelta(minutes=5)
    assert user.events == [
        AccountLocked(user.id.value, fifth, locked_until=fifth + POLICY.duration)
    ]


def test_a_failure_outside_the_window_starts_a_new_count() -> None:
    user = new_user()
    fail(user, 4)
    user.record_failed_login(T0 + POLICY.window, POLICY)

    assert user.failed_logins == 1
    assert user.failures_started_at == T0 + POLICY.window
    assert user.lock_remaining(T0 + POLICY.window) is None


def test_the_lock_ends_once_the_clock_reaches_locked_until() -> None:
    user = new_user()
    fail(user, 5)
    assert user.locked_until is not None

    assert user.lock_remaining(user.locked_until - timedelta(microseconds=1)) is not None
    assert user.lock_remaining(user.locked_until) is None


def test_failures_while_locked_neither_extend_the_lock_nor_count() -> None:
    user = unsaved_user()
    fail(user, 5)
    locked_until = user.locked_until
    user.events.clear()

    fail(user, 10, start=5 * MINUTE)

    assert user.locked_until == locked_until
    assert user.failed_logins == 0
    assert user.events == []


def test_after_a_lock_ends_it_takes_five_new_failures_to_lock_again() -> None:
    user = new_user()
    fail(user, 5)
    assert user.locked_until is not None
    after = user.locked_until - T0

    fail(user, 4, start=after)
    assert user.lock_remaining(T0 + after + 4 * MINUTE) is None
    fail(user, 1, start=after + 4 * MINUTE)
    assert user.lock_remaining(T0 + after + 4 * MINUTE) == POLICY.duration


def test_a_successful_sign_in_clears_the_count_and_the_lock() -> None:
    user = new_user()
    fail(user, 5)
    user.events.clear()
    user.record_successful_login()
    assert (user.failed_logins, user.failures_started_at, user.locked_until) == (0, None, None)
    assert user.events == []  # the lock lifting is no event; the session it opens is


# --- through the authenticate use case ------------------------------------------------------


async def fail_sign_in(kit: AuthKit, times: int) -> None:
    for _ in range(times):
        with pytest.raises(AuthenticationFailed):
            await kit.sign_in(password=WRONG_PASSWORD)


async def test_five_wrong_passwords_lock_out_even_the_right_one() -> None:
    kit = AuthKit()
    user = await kit.add_user()
    await fail_sign_in(kit, 4)
    assert kit.new_events(user) == []
    await fail_sign_in(kit, 1)
    assert kit.new_events(user) == [
        AccountLocked(user.id.value, T0, locked_until=T0 + POLICY.duration)
    ]
    kit.later(minutes=10)

    with pytest.raises(LockedOut) as locked:
        await kit.sign_in()

    assert locked.value.retry_after == timedelta(minutes=5)
    assert kit.stored(user).sessions == ()
    assert kit.new_events(user) == []


async def test_a_wrong_password_while_locked_fails_as_usual_and_writes_nothing() -> None:
    kit = AuthKit()
    await kit.add_user()
    await fail_sign_in(kit, 5)
    commits = kit.store.commits

    with pytest.raises(AuthenticationFailed) as error:
        await kit.sign_in(password=WRONG_PASSWORD)

    assert str(error.value) == str(AuthenticationFailed())  # the lock is not revealed
    assert kit.store.commits == commits


async def test_the_right_password_signs_in_once_the_lock_has_passed() -> None:
    kit = AuthKit()
    user = await kit.add_user()
    await fail_sign_in(kit, 5)
    kit.later(minutes=15)

    tokens = await kit.sign_in()

    assert tokens.user.id == user.id
    stored = kit.stored(user)
    assert (stored.failed_logins, stored.locked_until) == (0, None)


async def test_a_successful_sign_in_restarts_the_count() -> None:
    kit = AuthKit()
    await kit.add_user()
    await fail_sign_in(kit, 4)
    await kit.sign_in()
    await fail_sign_in(kit, 4)

    assert await kit.sign_in()


async def test_concurrent_wrong_passwords_are_all_counted() -> None:
    kit = AuthKit()
    user = await kit.add_user()

    results = await asyncio.gather(
        *(kit.sign_in(password=WRONG_PASSWORD) for _ in range(4)), return_exceptions=True
    )

    assert all(isinstance(result, AuthenticationFailed) for result in results)
    assert kit.stored(user).failed_logins == 4


async def test_the_lock_out_does_not_affect_other_accounts() -> None:
    kit = AuthKit()
    await kit.add_user()
    await kit.add_user("grace@example.com", PASSWORD)
    await fail_sign_in(kit, 5)

    assert await kit.sign_in("grace@example.com")
