"""Lock-out by growing delays: after the 5th failure in a row the next attempt waits 1 s, then
2 s, 4 s, ... up to 15 minutes; while a delay runs every password, the right one included, is
refused like a wrong one and counted; the owner is mailed once, with a reset link."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from domain.errors import AccountDisabled, AuthenticationFailed, ConcurrentWrite
from domain.events import AccountLocked, PasswordResetRequested
from domain.policies import LockoutPolicy, SecurityMailPolicy, SessionPolicy
from domain.secret_tokens import IssuedToken, hash_token
from domain.use_cases.accounts import disable_user
from domain.user import User
from domain.values import Password
from tests.builders import T0, new_user
from tests.fakes import FakeUnitOfWork
from tests.unit.domain.use_cases.auth_kit import PASSWORD, WRONG_PASSWORD, AuthKit

POLICY = LockoutPolicy()
MAIL = SecurityMailPolicy()
RESET_LIFETIME = timedelta(hours=1)
SECOND = timedelta(seconds=1)


def unsaved_user() -> User:
    """A new user whose UserRegistered is set aside: its events are those of the test."""
    user = new_user()
    user.events.clear()
    return user


def fail(user: User, times: int, *, at: timedelta = timedelta(0)) -> None:
    for _ in range(times):
        user.record_failed_login(T0 + at, POLICY)


def notify(user: User, at: timedelta = timedelta(0)) -> IssuedToken | None:
    return user.notify_lock(T0 + at, POLICY, reset_lifetime=RESET_LIFETIME, mail=MAIL)


# --- the aggregate ---------------------------------------------------------------------------


def test_four_failures_count_but_delay_nothing_and_record_no_event() -> None:
    user = unsaved_user()
    fail(user, 4)
    assert (user.failed_logins, user.failed_guesses) == (4, 4)
    assert user.lock_remaining(T0) is None
    assert user.events == []


def test_the_fifth_failure_delays_the_next_attempt_one_second_and_begins_a_lock() -> None:
    user = unsaved_user()
    fail(user, 4)

    began = user.record_failed_login(T0, POLICY)

    assert began is True
    assert user.locked_until == T0 + SECOND
    assert user.events == []  # the count is an eventless write; the notice follows the reply


def test_the_lock_notice_records_the_lock_and_issues_a_reset() -> None:
    user = unsaved_user()
    fail(user, 5)

    token = notify(user, at=SECOND / 10)

    assert token is not None and user.password_reset is not None
    assert user.password_reset.token_hash == token.token_hash  # in the same change
    assert user.events == [
        AccountLocked(user.id.value, T0 + SECOND / 10, locked_until=T0 + SECOND),
        PasswordResetRequested(
            user.id.value, T0 + SECOND / 10, expires_at=T0 + SECOND / 10 + RESET_LIFETIME
        ),
    ]


def test_each_failure_after_a_delay_doubles_the_next_one_up_to_the_cap() -> None:
    user = unsaved_user()
    fail(user, 5)
    delays = []
    for _ in range(12):
        assert user.locked_until is not None
        at = user.locked_until - T0  # the delay has just passed: this failure is a real one
        assert user.record_failed_login(T0 + at, POLICY) is False  # no second notice
        delays.append((user.locked_until - (T0 + at)).total_seconds())

    assert delays == [2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]


def test_attempts_during_a_delay_count_but_neither_move_its_end_nor_lengthen_the_next() -> None:
    user = unsaved_user()
    fail(user, 5)

    results = [user.record_failed_login(T0 + SECOND / 2, POLICY) for _ in range(30)]

    assert results == [False] * 30
    assert (user.failed_logins, user.failed_guesses) == (35, 5)
    assert user.locked_until == T0 + SECOND
    fail(user, 1, at=SECOND)  # the 6th wrong password tried, after the delay: 2 seconds
    assert user.locked_until == T0 + 3 * SECOND


def test_the_delay_ends_once_the_clock_reaches_its_end() -> None:
    user = new_user()
    fail(user, 5)
    assert user.lock_remaining(T0 + SECOND - timedelta(microseconds=1)) is not None
    assert user.lock_remaining(T0 + SECOND) is None


def test_a_success_clears_the_counts_and_the_delay_and_a_new_run_tells_again() -> None:
    later = MAIL.cooldown + SECOND  # past the first notice's mail cool-down
    user = unsaved_user()
    fail(user, 7)
    assert notify(user) is not None
    user.record_successful_login()
    assert (user.failed_logins, user.failed_guesses, user.locked_until) == (0, 0, None)
    assert notify(user) is None  # the run has ended: nothing to tell

    fail(user, 4, at=later)
    assert user.lock_remaining(T0 + later) is None
    assert user.record_failed_login(T0 + later, POLICY) is True
    assert notify(user, at=later) is not None


def test_a_disabled_account_locks_but_gets_no_reset_link() -> None:
    user = unsaved_user()
    user.disable(T0, SessionPolicy(), ())
    user.events.clear()
    fail(user, 5)

    token = notify(user)

    assert token is None and user.password_reset is None
    assert user.events == [AccountLocked(user.id.value, T0, locked_until=T0 + SECOND)]


def test_a_lock_within_the_mail_cool_down_mails_nothing_and_keeps_the_link_sent() -> None:
    user = unsaved_user()
    earlier = user.request_password_reset(T0, RESET_LIFETIME)
    user.record_security_mail(T0, MAIL)
    fail(user, 5, at=SECOND)

    token = notify(user, at=SECOND)

    assert token is None
    assert user.password_reset is not None
    assert user.password_reset.token_hash == earlier.token_hash  # the mailed link still works
    assert user.security_mail_sent_at == (T0,)


def test_the_lock_notice_counts_towards_the_security_mail_limit() -> None:
    user = unsaved_user()
    fail(user, 5)
    notify(user)

    assert user.security_mail_sent_at == (T0,)
    assert not user.may_send_security_mail(T0 + SECOND, MAIL)  # a reset now would wait


# --- through the authenticate use case ------------------------------------------------------


async def fail_sign_in(kit: AuthKit, times: int, password: str = WRONG_PASSWORD) -> None:
    """Refused sign-ins, each followed by the work after its reply (a lock notice, say)."""
    for _ in range(times):
        with pytest.raises(AuthenticationFailed):
            await kit.sign_in(password=password)
        await kit.after_reply.run_all()


async def refusal(kit: AuthKit, password: str) -> tuple[str, str, int, int, int]:
    """What a refused sign-in shows and costs: error type and text, hash checks, commits, and
    the count it leaves."""
    verified, commits = len(kit.hasher.verified), kit.store.commits
    with pytest.raises(AuthenticationFailed) as error:
        await kit.sign_in(password=password)
    user = next(iter(kit.store.users.values()))
    return (
        type(error.value).__name__,
        str(error.value),
        len(kit.hasher.verified) - verified,
        kit.store.commits - commits,
        user.failed_logins,
    )


async def test_during_a_delay_the_right_password_is_refused_exactly_like_a_wrong_one() -> None:
    wrong, right = AuthKit(), AuthKit()
    for kit in (wrong, right):
        await kit.add_user()
        await fail_sign_in(kit, 5)
        kit.later(seconds=0.5)  # within the first delay (1 s)

    assert await refusal(wrong, WRONG_PASSWORD) == await refusal(right, PASSWORD)
    assert await refusal(wrong, WRONG_PASSWORD) == (
        "AuthenticationFailed",
        str(AuthenticationFailed()),
        1,  # the password is still hashed, its answer unused
        1,  # and the attempt counted, in one write
        7,
    )


async def test_after_the_delay_the_right_password_signs_in_and_clears_the_count() -> None:
    kit = AuthKit()
    user = await kit.add_user()
    await fail_sign_in(kit, 5)
    await fail_sign_in(kit, 1, password=PASSWORD)  # refused: within the 1 s
    kit.later(seconds=1)

    tokens = await kit.sign_in()

    assert tokens.user.id == user.id
    stored = kit.stored(user)
    assert (stored.failed_logins, stored.locked_until) == (0, None)


async def test_a_wrong_password_after_the_delay_starts_a_longer_one() -> None:
    kit = AuthKit()
    user = await kit.add_user()
    await fail_sign_in(kit, 5)
    kit.later(seconds=1)
    await fail_sign_in(kit, 1)  # the 6th: 2 s

    kit.later(seconds=1.5)
    await fail_sign_in(kit, 1, password=PASSWORD)  # the 7th, during the 2 s: refused, counted
    kit.later(seconds=0.5)

    assert kit.stored(user).failed_logins == 7
    assert await kit.sign_in()


async def test_the_owner_is_mailed_once_per_lock_out_after_the_write() -> None:
    kit = AuthKit()
    user = await kit.add_user()
    await fail_sign_in(kit, 4)
    assert kit.after_reply.pending == []

    with pytest.raises(AuthenticationFailed):
        await kit.sign_in(password=WRONG_PASSWORD)
    assert kit.notifier.lock_notices == []  # not before the reply: sent by the work after it
    await kit.after_reply.run_all()

    (notice,) = kit.notifier.lock_notices
    stored = kit.stored(user)
    assert notice.to == user.email.value and notice.locked_at == T0
    assert notice.name == user.first_name.value
    assert stored.password_reset is not None
    assert hash_token(notice.token) == stored.password_reset.token_hash
    assert notice.expires_at == T0 + kit.policy.password_reset_lifetime
    kit.later(seconds=1)
    await fail_sign_in(kit, 3)
    assert len(kit.notifier.lock_notices) == 1


async def test_a_disabled_account_is_told_as_disabled_only_after_the_delay() -> None:
    kit = AuthKit()
    user = await kit.add_user()
    await fail_sign_in(kit, 5)
    await disable_user(kit.uow(), kit.clock, kit.policy.sessions, user_id=user.id.value)

    await fail_sign_in(kit, 1, password=PASSWORD)  # during the delay: as any password
    kit.later(seconds=1)
    with pytest.raises(AccountDisabled):
        await kit.sign_in()


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


async def test_a_count_that_keeps_losing_to_other_writes_is_refused_like_any_other(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A burst of attempts on one account: every count meets another write. The reply must not
    # change (an ABORTED here told the account exists, unknown addresses never conflict).
    kit = AuthKit()
    await kit.add_user()

    class Contended(FakeUnitOfWork):
        async def commit(self) -> None:
            raise ConcurrentWrite()

    monkeypatch.setattr(kit, "uow", lambda: Contended(kit.store, clock=kit.clock))
    with pytest.raises(AuthenticationFailed) as error:
        await kit.sign_in(password=WRONG_PASSWORD)

    assert str(error.value) == str(AuthenticationFailed())
    assert any("uncounted" in record.getMessage() for record in caplog.records)


async def test_the_right_password_meeting_a_wait_begun_meanwhile_is_refused_and_counted() -> None:
    kit = AuthKit()
    user = await kit.add_user()
    check = kit.hasher.verify

    async def verify_while_others_fail(password_hash: str, password: Password) -> bool:
        monkeypatch_back()
        await fail_sign_in(kit, 5)  # while this password is being checked: a wait begins
        return await check(password_hash, password)

    def monkeypatch_back() -> None:
        kit.hasher.verify = check  # type: ignore[method-assign]

    kit.hasher.verify = verify_while_others_fail  # type: ignore[method-assign]
    with pytest.raises(AuthenticationFailed):
        await kit.sign_in()

    stored = kit.stored(user)
    assert stored.failed_logins == 6 and kit.sessions(user) == ()
