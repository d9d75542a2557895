"""Sign-in, refresh and log-out on in-memory fakes: what the caller gets and what is stored,
events included."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from domain.errors import (
    AccountDisabled,
    AuthenticationFailed,
    ConcurrentRefresh,
    InvalidArgument,
    InvalidRefreshToken,
    UserNotFound,
)
from domain.events import (
    SessionEndReason,
    SessionRevoked,
    SessionsRevoked,
    SessionStarted,
    UserDisabled,
)
from domain.policies import AuthPolicy, SessionPolicy
from domain.secret_tokens import issue_token, parse_token
from domain.use_cases import accounts
from domain.use_cases.sessions import SessionTokens, logout, logout_all, session_in_force
from domain.user import User
from domain.values import Password, UserId
from tests.fakes import FakePasswordHasher
from tests.unit.domain.use_cases.auth_kit import EMAIL, PASSWORD, WRONG_PASSWORD, AuthKit, fake_hash

GRACE = timedelta(seconds=10)


@pytest.fixture
def kit() -> AuthKit:
    return AuthKit()


def fields_of(error: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {violation.field for violation in error.value.violations}


def started(user: User, tokens: SessionTokens, at: datetime) -> SessionStarted:
    return SessionStarted(user.id.value, at, session_id=tokens.session_id)


def revoked(
    user: User, tokens: SessionTokens, reason: SessionEndReason, at: datetime
) -> SessionRevoked:
    return SessionRevoked(user.id.value, at, session_id=tokens.session_id, reason=reason)


# --- authenticate ------------------------------------------------------------------------------


async def test_sign_in_returns_tokens_for_one_new_session_and_writes_it_once(kit: AuthKit) -> None:
    user = await kit.add_user()
    commits = kit.store.commits

    tokens = await kit.sign_in(" Ada.Lovelace@EXAMPLE.com ", PASSWORD)

    stored = kit.sessions(user)
    assert kit.store.commits == commits + 1
    assert [s.session_id for s in stored] == [tokens.session_id]
    lookup = parse_token(tokens.refresh_token)
    assert lookup.user_id == user.id
    assert lookup.session_id == tokens.session_id
    assert stored[0].token_hash == lookup.token_hash
    assert tokens.access_token.value == f"access:{user.id}:{tokens.session_id}:1"
    assert tokens.user.id == user.id
    assert tokens.refresh_token not in repr(tokens)
    assert kit.new_events(user) == [started(user, tokens, kit.clock.now)]


async def test_unknown_email_and_wrong_password_fail_alike(kit: AuthKit) -> None:
    await kit.add_user()

    with pytest.raises(AuthenticationFailed) as unknown:
        await kit.sign_in("nobody@example.com", PASSWORD)
    with pytest.raises(AuthenticationFailed) as wrong:
        await kit.sign_in(EMAIL, WRONG_PASSWORD)

    assert str(unknown.value) == str(wrong.value) == "the email or password is incorrect"


async def test_an_unknown_email_is_still_checked_against_the_dummy_hash(kit: AuthKit) -> None:
    with pytest.raises(AuthenticationFailed):
        await kit.sign_in("nobody@example.com", PASSWORD)
    assert kit.hasher.verified == [FakePasswordHasher.dummy_hash]
    assert kit.store.commits == 0
    assert kit.store.events == {}


async def test_a_wrong_password_counts_a_failure(kit: AuthKit) -> None:
    user = await kit.add_user()
    with pytest.raises(AuthenticationFailed):
        await kit.sign_in(password=WRONG_PASSWORD)
    assert kit.stored(user).failed_logins == 1
    assert kit.sessions(user) == ()
    assert kit.new_events(user) == []  # a failure that does not lock is no event


async def test_sign_in_reports_every_malformed_field(kit: AuthKit) -> None:
    with pytest.raises(InvalidArgument) as error:
        await kit.sign_in("not-an-email", "")
    assert fields_of(error) == {"email", "password"}
    assert kit.hasher.verified == []


async def test_a_disabled_account_is_named_only_to_the_right_password(kit: AuthKit) -> None:
    user = await kit.add_user()
    await accounts.disable_user(kit.uow(), kit.clock, kit.policy.sessions, user_id=user.id.value)

    with pytest.raises(AccountDisabled):
        await kit.sign_in()
    with pytest.raises(AuthenticationFailed):
        await kit.sign_in(password=WRONG_PASSWORD)
    assert kit.sessions(user) == ()


class CountingHasher(FakePasswordHasher):
    """Counts the hashes it makes, so a needless re-hash shows."""

    def __init__(self) -> None:
        super().__init__()
        self.hashed = 0

    async def hash(self, password: Password) -> str:
        self.hashed += 1
        return await super().hash(password)


async def test_a_weak_hash_is_replaced_at_sign_in_keeping_a_pending_reset(kit: AuthKit) -> None:
    user = await kit.add_user(scheme="old")
    kit.hasher = hasher = CountingHasher()
    pending = kit.stored(user).request_password_reset(kit.clock.now, timedelta(hours=1))

    tokens = await kit.sign_in()

    assert kit.new_events(user) == [started(user, tokens, kit.clock.now)]  # no event for the hash
    stored = kit.stored(user)
    assert hasher.hashed == 1
    assert stored.password_hash == fake_hash(PASSWORD)
    assert stored.password_reset is not None
    assert stored.password_reset.token_hash == pending.token_hash
    assert await kit.sign_in()
    assert hasher.hashed == 1


async def test_a_current_hash_is_left_alone_at_sign_in(kit: AuthKit) -> None:
    user = await kit.add_user()
    kit.hasher = hasher = CountingHasher()

    await kit.sign_in()

    assert hasher.hashed == 0
    assert kit.stored(user).password_hash == fake_hash(PASSWORD)


async def test_the_eleventh_sign_in_ends_the_oldest_session(kit: AuthKit) -> None:
    user = await kit.add_user()
    signed_in = []
    for _ in range(11):
        signed_in.append(await kit.sign_in())
        kit.later(seconds=1)

    sessions = kit.sessions(user)
    assert [s.session_id for s in sessions] == [t.session_id for t in signed_in[1:]]
    events = kit.new_events(user)
    eleventh_at = kit.clock.now - timedelta(seconds=1)
    assert events[-2:] == [
        revoked(user, signed_in[0], SessionEndReason.EVICTED, eleventh_at),
        started(user, signed_in[10], eleventh_at),
    ]
    assert all(isinstance(event, SessionStarted) for event in events[:-2])
    with pytest.raises(InvalidRefreshToken):
        await kit.refresh(signed_in[0].refresh_token)
    assert await kit.refresh(signed_in[1].refresh_token)


async def test_a_sign_in_that_loses_a_race_to_disable_user_is_refused(kit: AuthKit) -> None:
    user = await kit.add_user()

    class DisablingHasher(FakePasswordHasher):
        """Disables the account just after the password checked out, as an admin might."""

        async def verify(self, password_hash: str, password: Password) -> bool:
            verified = await super().verify(password_hash, password)
            await accounts.disable_user(
                kit.uow(), kit.clock, kit.policy.sessions, user_id=user.id.value
            )
            return verified

    kit.hasher = DisablingHasher()

    with pytest.raises(AccountDisabled):
        await kit.sign_in()
    assert kit.sessions(user) == ()
    assert kit.new_events(user) == [UserDisabled(user.id.value, kit.clock.now)]


async def test_a_sign_in_that_loses_a_race_to_delete_user_fails_like_a_wrong_password(
    kit: AuthKit,
) -> None:
    user = await kit.add_user()

    class DeletingHasher(FakePasswordHasher):
        """Deletes the account just after the password checked out, as an admin might."""

        async def verify(self, password_hash: str, password: Password) -> bool:
            verified = await super().verify(password_hash, password)
            await accounts.delete_user(
                kit.uow(), kit.clock, user_id=user.id.value, expected_version=1
            )
            return verified

    kit.hasher = DeletingHasher()

    with pytest.raises(AuthenticationFailed):
        await kit.sign_in()
    assert user.id.value not in kit.store.users


# --- refresh_session ---------------------------------------------------------------------------


async def test_refresh_rotates_the_token_within_the_same_session(kit: AuthKit) -> None:
    user = await kit.add_user()
    signed_in = await kit.sign_in()
    kit.later(minutes=5)
    kit.new_events(user)

    refreshed = await kit.refresh(signed_in.refresh_token)

    assert kit.new_events(user) == []  # a rotation is no event
    assert refreshed.session_id == signed_in.session_id
    assert refreshed.refresh_token != signed_in.refresh_token
    assert refreshed.access_token.value.startswith(f"access:{user.id}:{signed_in.session_id}:")
    (session,) = kit.sessions(user)
    assert session.token_hash == parse_token(refreshed.refresh_token).token_hash
    assert session.previous_token_hash == parse_token(signed_in.refresh_token).token_hash
    assert await kit.refresh(refreshed.refresh_token)


async def test_a_refreshed_access_token_keeps_the_sign_in_time_as_its_auth_time(
    kit: AuthKit,
) -> None:
    await kit.add_user()
    signed_in_at = kit.clock()
    signed_in = await kit.sign_in()
    kit.later(hours=1)

    refreshed = await kit.refresh(signed_in.refresh_token)
    kit.later(hours=1)
    await kit.refresh(refreshed.refresh_token)
    signed_in_again_at = kit.clock()
    await kit.sign_in()

    assert kit.issuer.auth_time_claims == [
        signed_in_at,
        signed_in_at,
        signed_in_at,
        signed_in_again_at,
    ]


async def test_the_previous_token_within_the_grace_is_refused_without_ending_the_session(
    kit: AuthKit,
) -> None:
    user = await kit.add_user()
    signed_in = await kit.sign_in()
    refreshed = await kit.refresh(signed_in.refresh_token)
    kit.later(seconds=10)
    commits = kit.store.commits

    with pytest.raises(ConcurrentRefresh):
        await kit.refresh(signed_in.refresh_token)
    with pytest.raises(ConcurrentRefresh):
        await kit.refresh(signed_in.refresh_token)  # however often it comes back

    assert kit.store.commits == commits
    assert [s.session_id for s in kit.sessions(user)] == [signed_in.session_id]
    assert kit.new_events(user) == [started(user, signed_in, kit.clock.now - GRACE)]
    assert await kit.refresh(refreshed.refresh_token)


async def test_the_previous_token_after_the_grace_revokes_the_whole_session(kit: AuthKit) -> None:
    user = await kit.add_user()
    signed_in = await kit.sign_in()
    other = await kit.sign_in()
    refreshed = await kit.refresh(signed_in.refresh_token)
    kit.later(seconds=11)
    kit.new_events(user)

    with pytest.raises(InvalidRefreshToken):
        await kit.refresh(signed_in.refresh_token)

    assert [s.session_id for s in kit.sessions(user)] == [other.session_id]
    assert kit.new_events(user) == [
        revoked(user, signed_in, SessionEndReason.TOKEN_REUSED, kit.clock.now)
    ]
    with pytest.raises(InvalidRefreshToken):
        await kit.refresh(refreshed.refresh_token)  # the thief's copy is dead too
    assert await kit.refresh(other.refresh_token)


async def test_a_retired_token_revokes_the_session(kit: AuthKit) -> None:
    user = await kit.add_user()
    signed_in = await kit.sign_in()
    kit.later(minutes=1)
    second = await kit.refresh(signed_in.refresh_token)
    kit.later(minutes=1)
    third = await kit.refresh(second.refresh_token)
    kit.new_events(user)

    with pytest.raises(InvalidRefreshToken):
        await kit.refresh(signed_in.refresh_token)

    assert kit.sessions(user) == ()
    assert kit.new_events(user) == [
        revoked(user, signed_in, SessionEndReason.TOKEN_REUSED, kit.clock.now)
    ]
    with pytest.raises(InvalidRefreshToken):
        await kit.refresh(third.refresh_token)


@pytest.mark.parametrize(
    ("rotate_every", "rotations", "then"),
    [
        (timedelta(days=6), 4, timedelta(days=6)),  # used all along: the 30-day limit ends it
        (timedelta(0), 0, timedelta(days=7)),  # never used: the 7-day idle limit ends it
    ],
    ids=["absolute-lifetime", "idle-lifetime"],
)
async def test_an_expired_session_is_refused_and_removed(
    kit: AuthKit, rotate_every: timedelta, rotations: int, then: timedelta
) -> None:
    user = await kit.add_user()
    signed_in = await kit.sign_in()
    token = signed_in.refresh_token
    for _ in range(rotations):
        kit.clock.now += rotate_every
        token = (await kit.refresh(token)).refresh_token
    kit.clock.now += then
    commits = kit.store.commits
    kit.new_events(user)

    with pytest.raises(InvalidRefreshToken):
        await kit.refresh(token)

    assert kit.sessions(user) == ()
    assert kit.store.commits == commits + 1
    assert kit.new_events(user) == [
        revoked(user, signed_in, SessionEndReason.EXPIRED, kit.clock.now)
    ]


async def test_a_sign_in_ends_the_sessions_it_finds_expired(kit: AuthKit) -> None:
    user = await kit.add_user()
    old = await kit.sign_in()
    kit.later(days=8)  # past the idle lifetime

    new = await kit.sign_in()

    assert [s.session_id for s in kit.sessions(user)] == [new.session_id]
    assert kit.new_events(user)[-2:] == [
        revoked(user, old, SessionEndReason.EXPIRED, kit.clock.now),
        started(user, new, kit.clock.now),
    ]


async def test_a_session_in_use_outlives_the_idle_lifetime(kit: AuthKit) -> None:
    await kit.add_user()
    token = (await kit.sign_in()).refresh_token
    for _ in range(3):
        kit.later(days=6)
        token = (await kit.refresh(token)).refresh_token


async def test_concurrent_refreshes_with_one_token_let_exactly_one_rotate(kit: AuthKit) -> None:
    user = await kit.add_user()
    signed_in = await kit.sign_in()

    outcomes = await asyncio.gather(
        *(kit.refresh(signed_in.refresh_token) for _ in range(5)), return_exceptions=True
    )

    winners = [outcome for outcome in outcomes if isinstance(outcome, SessionTokens)]
    losers = [outcome for outcome in outcomes if not isinstance(outcome, SessionTokens)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(error, (ConcurrentRefresh, InvalidRefreshToken)) for error in losers)
    (session,) = kit.sessions(user)
    assert session.session_id == signed_in.session_id
    assert session.token_hash == parse_token(winners[0].refresh_token).token_hash
    kit.later(minutes=1)
    assert await kit.refresh(winners[0].refresh_token)


async def test_refresh_is_refused_for_a_token_that_is_not_ours(kit: AuthKit) -> None:
    user = await kit.add_user()
    await kit.sign_in()

    for token in ("garbage", issue_token(user.id).value, issue_token(UserId.new()).value):
        with pytest.raises(InvalidRefreshToken):
            await kit.refresh(token)


async def test_refresh_with_an_empty_token_is_an_invalid_argument(kit: AuthKit) -> None:
    with pytest.raises(InvalidArgument) as error:
        await kit.refresh("  ")
    assert fields_of(error) == {"refresh_token"}


async def test_refresh_of_a_deleted_user_is_refused(kit: AuthKit) -> None:
    user = await kit.add_user()
    signed_in = await kit.sign_in()
    # Signing in changed nothing a caller sees: the version read at registration still holds.
    await accounts.delete_user(kit.uow(), kit.clock, user_id=user.id.value, expected_version=1)

    with pytest.raises(InvalidRefreshToken):
        await kit.refresh(signed_in.refresh_token)


# --- logout and logout_all ---------------------------------------------------------------------


async def test_logout_ends_only_the_tokens_session(kit: AuthKit) -> None:
    user = await kit.add_user()
    leaving, staying = await kit.sign_in(), await kit.sign_in()
    kit.new_events(user)
    kit.later(minutes=1)

    await logout(kit.uow(), kit.clock, refresh_token=leaving.refresh_token)

    assert [s.session_id for s in kit.sessions(user)] == [staying.session_id]
    assert kit.new_events(user) == [revoked(user, leaving, SessionEndReason.LOGOUT, kit.clock.now)]
    with pytest.raises(InvalidRefreshToken):
        await kit.refresh(leaving.refresh_token)
    assert await kit.refresh(staying.refresh_token)


async def test_logout_with_the_previous_token_ends_the_session_too(kit: AuthKit) -> None:
    user = await kit.add_user()
    signed_in = await kit.sign_in()
    await kit.refresh(signed_in.refresh_token)

    await logout(kit.uow(), kit.clock, refresh_token=signed_in.refresh_token)

    assert kit.sessions(user) == ()


async def test_logout_is_idempotent_and_quiet_about_tokens_it_does_not_know(kit: AuthKit) -> None:
    user = await kit.add_user()
    signed_in = await kit.sign_in()
    await logout(kit.uow(), kit.clock, refresh_token=signed_in.refresh_token)
    commits = kit.store.commits
    kit.new_events(user)

    await logout(kit.uow(), kit.clock, refresh_token=signed_in.refresh_token)
    await logout(kit.uow(), kit.clock, refresh_token="not-a-token")
    await logout(kit.uow(), kit.clock, refresh_token=issue_token(user.id).value)
    await logout(kit.uow(), kit.clock, refresh_token=issue_token(UserId.new()).value)

    assert kit.store.commits == commits
    assert kit.new_events(user) == []


async def test_logout_with_an_empty_token_is_an_invalid_argument(kit: AuthKit) -> None:
    with pytest.raises(InvalidArgument) as error:
        await logout(kit.uow(), kit.clock, refresh_token="")
    assert fields_of(error) == {"refresh_token"}


async def test_logout_all_ends_every_session_and_says_how_many(kit: AuthKit) -> None:
    user = await kit.add_user()
    sessions = [await kit.sign_in() for _ in range(3)]
    kit.new_events(user)

    assert await logout_all(kit.uow(), kit.clock, kit.policy.sessions, user_id=user.id.value) == 3

    assert kit.sessions(user) == ()
    assert kit.new_events(user) == [  # one event, however many sessions
        SessionsRevoked(user.id.value, kit.clock.now, SessionEndReason.LOGOUT_ALL, 3)
    ]
    assert kit.stored(user).session_epoch == 1
    for tokens in sessions:
        with pytest.raises(InvalidRefreshToken):
            await kit.refresh(tokens.refresh_token)


async def test_logout_all_without_sessions_writes_nothing(kit: AuthKit) -> None:
    user = await kit.add_user()
    commits = kit.store.commits

    assert await logout_all(kit.uow(), kit.clock, kit.policy.sessions, user_id=user.id.value) == 0
    assert kit.store.commits == commits
    assert kit.new_events(user) == []


async def test_logout_all_of_an_unknown_or_malformed_user_id(kit: AuthKit) -> None:
    with pytest.raises(UserNotFound):
        await logout_all(kit.uow(), kit.clock, kit.policy.sessions, user_id=str(UserId.new()))
    with pytest.raises(InvalidArgument) as error:
        await logout_all(kit.uow(), kit.clock, kit.policy.sessions, user_id="42")
    assert fields_of(error) == {"user_id"}


async def test_signing_in_and_refreshing_leave_the_version_a_caller_read_valid(
    kit: AuthKit,
) -> None:
    user = await kit.add_user()
    signed_in = await kit.sign_in()
    await kit.refresh(signed_in.refresh_token)

    renamed = await accounts.update_profile(
        kit.uow(),
        kit.clock,
        user_id=user.id.value,
        first_name="Augusta",
        last_name=None,
        expected_version=1,
    )

    assert renamed.version == kit.stored(user).version == 2
    assert len(kit.sessions(user)) == 1  # the profile change kept the session


async def test_an_unknown_email_costs_what_a_wrong_password_costs(kit: AuthKit) -> None:
    await kit.add_user()

    with pytest.raises(AuthenticationFailed):
        await kit.sign_in("nobody@example.com", PASSWORD)

    assert kit.hasher.verified == [kit.hasher.dummy_hash]
    assert kit.store.shadow_logins == 1
    assert sum(len(events) for events in kit.store.events.values()) == 1  # the registration


# --- what reads sessions -----------------------------------------------------------------------


async def test_a_failed_sign_in_reads_no_session(kit: AuthKit) -> None:
    await kit.add_user()
    await kit.sign_in()
    reads = kit.store.session_reads

    for email, password in ((EMAIL, WRONG_PASSWORD), ("nobody@example.com", PASSWORD)):
        with pytest.raises(AuthenticationFailed):
            await kit.sign_in(email, password)

    assert kit.store.session_reads == reads  # it fails before any session work


async def test_reading_users_reads_no_session(kit: AuthKit) -> None:
    user = await kit.add_user()
    await kit.sign_in()
    reads = kit.store.session_reads

    await accounts.get_user(kit.uow(), user_id=user.id.value)
    await accounts.get_user_by_email(kit.uow(), email=EMAIL)
    await accounts.batch_get_users(kit.uow(), ids=[user.id.value])

    assert kit.store.session_reads == reads


async def test_a_refresh_reads_one_session_by_key_however_many_the_user_holds(
    kit: AuthKit,
) -> None:
    await kit.add_user()
    signed_in = [await kit.sign_in() for _ in range(5)]
    reads = kit.store.session_reads

    await kit.refresh(signed_in[2].refresh_token)

    assert kit.store.session_reads == reads + 1


async def test_a_refresh_token_of_the_older_form_refreshes_its_session(kit: AuthKit) -> None:
    user = await kit.add_user()
    signed_in = await kit.sign_in()
    legacy = issue_token(user.id)  # <user id>.<secret>, as issued before sessions had items
    held = kit.store.sessions[user.id.value]
    (key,) = held
    held[key] = replace(held[key], token_hash=legacy.token_hash)

    refreshed = await kit.refresh(legacy.value)

    assert refreshed.session_id == signed_in.session_id
    assert parse_token(refreshed.refresh_token).session_id == signed_in.session_id
    assert kit.sessions(user)[0].previous_token_hash == legacy.token_hash


async def test_concurrent_sign_ins_never_hold_more_sessions_than_the_limit() -> None:
    kit = AuthKit(policy=AuthPolicy(sessions=SessionPolicy(max_sessions=3)))
    user = await kit.add_user()

    outcomes = await asyncio.gather(*(kit.sign_in() for _ in range(8)), return_exceptions=True)

    signed_in = [o for o in outcomes if isinstance(o, SessionTokens)]
    assert signed_in, outcomes
    live = kit.sessions(user)
    assert len(live) <= 3
    assert {s.session_id for s in live} <= {t.session_id for t in signed_in}


# --- session_in_force: what a user token's sid is checked against ------------------------------


async def in_force(kit: AuthKit, tokens: SessionTokens, user_id: str | None = None) -> bool:
    return await session_in_force(
        kit.uow(),
        kit.clock,
        kit.policy,
        user_id=user_id or tokens.user.id.value,
        session_id=tokens.session_id,
    )


async def test_a_session_is_in_force_until_it_is_logged_out(kit: AuthKit) -> None:
    await kit.add_user()
    tokens, other = await kit.sign_in(), await kit.sign_in()
    assert await in_force(kit, tokens)

    await logout(kit.uow(), kit.clock, refresh_token=tokens.refresh_token)

    assert not await in_force(kit, tokens)
    assert await in_force(kit, other)


async def test_no_session_is_in_force_after_logout_all_or_disable(kit: AuthKit) -> None:
    user = await kit.add_user()
    first = await kit.sign_in()
    await logout_all(kit.uow(), kit.clock, kit.policy.sessions, user_id=user.id.value)
    assert not await in_force(kit, first)

    second = await kit.sign_in()
    assert await in_force(kit, second)
    await accounts.disable_user(kit.uow(), kit.clock, kit.policy.sessions, user_id=user.id.value)
    assert not await in_force(kit, second)


async def test_an_idle_session_is_not_in_force_and_a_malformed_or_unknown_user_is_none(
    kit: AuthKit,
) -> None:
    await kit.add_user()
    tokens = await kit.sign_in()
    assert not await in_force(kit, tokens, user_id="not-a-uuid")
    assert not await in_force(kit, tokens, user_id=str(UserId.new()))

    kit.later(seconds=kit.policy.sessions.idle_lifetime.total_seconds())

    assert not await in_force(kit, tokens)
