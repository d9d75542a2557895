"""The outbox on moto: every write path stores exactly its events, numbered 1, 2, 3, ... per
user in the same transaction as the change, with the user's EventSeq at the last; no event
holds a secret."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

from domain.errors import AuthenticationFailed, InvalidVerificationCode, StorageError
from domain.event_cursors import stream_partition_of
from domain.events import (
    AccountLocked,
    DomainEvent,
    EmailChanged,
    EmailVerificationRequested,
    EmailVerified,
    PasswordChanged,
    PasswordChangeReason,
    PasswordResetRequested,
    ProfileUpdated,
    SessionEndReason,
    SessionRevoked,
    SessionsRevoked,
    SessionStarted,
    UserDeleted,
    UserDisabled,
    UserEnabled,
    UserRegistered,
)
from domain.policies import AuthPolicy, SessionPolicy
from domain.secret_tokens import hash_token
from domain.use_cases import accounts
from domain.use_cases.passwords import change_password, request_password_reset, reset_password
from domain.use_cases.sessions import SessionTokens, logout, logout_all, refresh_session
from domain.values import Email
from persistence.schema import TableNames
from server.crypto.passwords import Argon2PasswordHasher
from tests.fakes import DeferredTasks, RecordingNotifier
from tests.integration.outbox_world import PASSWORD, REGISTRATION_EVENTS, OutboxWorld, later

NEW_PASSWORD = "Otter-Lantern-97"
RESET_PASSWORD = "Heron-Basket-31"
WRONG_PASSWORD = "Zebra-Quill-43"
RETENTION = timedelta(days=30)


@pytest_asyncio.fixture
async def argon2() -> AsyncIterator[Argon2PasswordHasher]:
    hasher = Argon2PasswordHasher(time_cost=2, memory_kib=19456, parallelism=1, workers=2)
    yield hasher
    hasher.shutdown()


class Flow:
    """Runs a step, then checks that exactly ``expected`` landed for the user, numbered on."""

    def __init__(self, world: OutboxWorld, user_id: str) -> None:
        self.world = world
        self.user_id = user_id
        self.expected: list[DomainEvent] = []
        self.secrets: set[str] = set()

    async def landed(self, *events: DomainEvent, user_kept: bool = True) -> None:
        self.expected += events
        recorded = await self.world.recorded(self.user_id)
        assert [r.event for r in recorded] == self.expected
        assert [r.sequence for r in recorded] == list(range(1, len(self.expected) + 1))
        for r in recorded:
            assert r.recorded_at == r.event.occurred_at  # one clock here for both
        if user_kept:
            item = await self.world.user_item(self.user_id)
            assert item is not None
            assert int(item["EventSeq"]["N"]) == len(self.expected)
            self.secrets.add(item["PasswordHash"]["S"])
            for session in await self.world.session_items(self.user_id):
                self.secrets.add(session["TokenHash"]["S"])
            if "PasswordReset" in item:
                self.secrets.add(item["PasswordReset"]["M"]["TokenHash"]["S"])
            if "EmailVerification" in item:
                pending = item["EmailVerification"]["M"]
                self.secrets |= {
                    pending[name]["S"] for name in ("TokenHash", "CodeHash", "CodeSalt")
                }

    def token(self, tokens: SessionTokens) -> SessionTokens:
        self.secrets |= {tokens.refresh_token, hash_token(tokens.refresh_token)}
        return tokens


def revoked(user_id: str, session: SessionTokens, reason: SessionEndReason, at: Any) -> Any:
    return SessionRevoked(user_id, at, session_id=session.session_id, reason=reason)


async def test_every_write_path_stores_exactly_its_events_and_none_holds_a_secret(
    dynamodb_client: Any, dynamodb_tables: TableNames, argon2: Argon2PasswordHasher
) -> None:
    world = OutboxWorld(dynamodb_client, dynamodb_tables, hasher=argon2)
    user = await world.register(mailed=True)
    uid = user.id.value
    flow = Flow(world, uid)
    clock = world.clock
    expires_at = clock.now + world.policy.verification.lifetime
    await flow.landed(
        UserRegistered(uid, clock.now, "ada@example.com", "Ada", "Lovelace"),
        EmailVerificationRequested(uid, clock.now, expires_at=expires_at),
    )
    assert world.committed == [flow.expected]  # what the unit of work reported
    await world.after_reply.run_all()
    (verification,) = world.notifier.verifications
    flow.secrets |= {verification.token, hash_token(verification.token)}
    wrong_code = f"{(int(verification.code) + 1) % 10**6:06d}"
    with pytest.raises(InvalidVerificationCode):
        await world.verify(email="ada@example.com", code=wrong_code)
    await flow.landed()  # a wrong code is counted, and no event
    await world.verify(token=verification.token)
    await flow.landed(EmailVerified(uid, clock.now, "ada@example.com"))

    first = flow.token(await world.sign_in())
    await flow.landed(SessionStarted(uid, clock.now, first.session_id))
    later(clock, seconds=1)
    second = flow.token(await world.sign_in())
    await flow.landed(SessionStarted(uid, clock.now, second.session_id))

    later(clock, minutes=1)
    first = flow.token(
        await refresh_session(
            world.uow(), world.issuer, clock, world.policy, refresh_token=first.refresh_token
        )
    )
    await flow.landed()  # a rotation is no event

    await logout(world.uow(), clock, refresh_token=second.refresh_token)
    await flow.landed(revoked(uid, second, SessionEndReason.LOGOUT, clock.now))

    third = flow.token(await world.sign_in())
    await flow.landed(SessionStarted(uid, clock.now, third.session_id))
    later(clock, minutes=1)
    await change_password(
        world.uow(),
        argon2,
        clock,
        world.policy,
        world.notices,
        user_id=uid,
        current_password=PASSWORD,
        new_password=NEW_PASSWORD,
        keep_session_id=first.session_id,
    )
    await flow.landed(
        PasswordChanged(uid, clock.now, PasswordChangeReason.CHANGED),
        SessionsRevoked(
            uid, clock.now, SessionEndReason.PASSWORD_CHANGED, 1, kept_session_id=first.session_id
        ),
    )
    assert third.session_id  # ended with the epoch: not named, one event for however many

    for _ in range(world.policy.lockout.max_failures):
        with pytest.raises(AuthenticationFailed):
            await world.sign_in(password=WRONG_PASSWORD)
    delay = world.policy.lockout.delay_after(world.policy.lockout.max_failures)
    assert delay is not None
    # The lock-out issues a reset token in its own write, and mails it (the token: a secret).
    await world.after_reply.run_all()
    (notice,) = world.notifier.lock_notices
    flow.secrets |= {notice.token, hash_token(notice.token)}
    await flow.landed(
        AccountLocked(uid, clock.now, locked_until=clock.now + delay),
        PasswordResetRequested(uid, clock.now, expires_at=notice.expires_at),
    )

    later(clock, minutes=2)  # past the security mail cool-down the lock notice began
    notifier, after_reply = RecordingNotifier(), DeferredTasks()
    await request_password_reset(
        world.uow(), notifier, clock, world.policy, after_reply, email="ADA@example.com"
    )
    await after_reply.run_all()
    (mail,) = notifier.sent
    flow.secrets |= {mail.token, hash_token(mail.token)}
    await flow.landed(PasswordResetRequested(uid, clock.now, expires_at=mail.expires_at))

    later(clock, minutes=1)
    await reset_password(
        world.uow(),
        argon2,
        clock,
        world.policy.sessions,
        reset_token=mail.token,
        new_password=RESET_PASSWORD,
    )
    await flow.landed(
        PasswordChanged(uid, clock.now, PasswordChangeReason.RESET),
        SessionsRevoked(uid, clock.now, SessionEndReason.PASSWORD_RESET, 1),
    )

    fourth = flow.token(await world.sign_in(password=RESET_PASSWORD))
    await flow.landed(SessionStarted(uid, clock.now, fourth.session_id))
    await accounts.disable_user(world.uow(), clock, world.policy.sessions, user_id=uid)
    await flow.landed(
        UserDisabled(uid, clock.now),
        SessionsRevoked(uid, clock.now, SessionEndReason.USER_DISABLED, 1),
    )
    await accounts.disable_user(world.uow(), clock, world.policy.sessions, user_id=uid)
    await flow.landed()  # already disabled: a no-op
    await accounts.enable_user(world.uow(), clock, user_id=uid)
    await flow.landed(UserEnabled(uid, clock.now))

    version = (await accounts.get_user(world.uow(), user_id=uid)).version
    await accounts.update_profile(
        world.uow(),
        clock,
        user_id=uid,
        first_name="Augusta",
        last_name=None,
        expected_version=version,
    )
    await flow.landed(ProfileUpdated(uid, clock.now, "Augusta", "Lovelace"))

    # No use case changes an email yet; the aggregate and repository do.
    async with world.uow() as uow:
        stored = await uow.users.require(user.id)
        stored.change_email(Email.parse("Augusta@Example.org"), now=clock.now)
        await uow.users.update(stored)
        await uow.commit()
    await flow.landed(EmailChanged(uid, clock.now, "ada@example.com", "Augusta@Example.org"))

    fifth = flow.token(await world.sign_in("augusta@example.org", RESET_PASSWORD))
    sixth = flow.token(await world.sign_in("augusta@example.org", RESET_PASSWORD))
    await flow.landed(
        SessionStarted(uid, clock.now, fifth.session_id),
        SessionStarted(uid, clock.now, sixth.session_id),
    )
    assert await logout_all(world.uow(), clock, world.policy.sessions, user_id=uid) == 2
    await flow.landed(SessionsRevoked(uid, clock.now, SessionEndReason.LOGOUT_ALL, 2))

    version = (await accounts.get_user(world.uow(), user_id=uid)).version
    await accounts.delete_user(world.uow(), clock, user_id=uid, expected_version=version)
    await flow.landed(UserDeleted(uid, clock.now), user_kept=False)
    assert await world.user_item(uid) is None

    # What each commit reported is what landed, in order.
    assert [event for events in world.committed for event in events] == flow.expected

    # Not a password, a token or the hash of either, in any attribute of any event item.
    flow.secrets |= {PASSWORD, NEW_PASSWORD, RESET_PASSWORD, WRONG_PASSWORD}
    items = await world.all_event_items()
    assert len(items) == len(flow.expected)
    text = repr(items)
    leaked = sorted(secret for secret in flow.secrets if secret in text)
    assert leaked == []


async def test_events_record_when_they_were_written_and_expire_after_the_retention(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    world = OutboxWorld(dynamodb_client, dynamodb_tables)
    user = await world.register()

    item, _ = await world.event_items(user.id)  # UserRegistered, EmailVerificationRequested

    recorded_at = world.clock.now
    assert item["RecordedAt"]["S"] == recorded_at.isoformat(timespec="microseconds")
    assert int(item["ExpiresAt"]["N"]) == int((recorded_at + RETENTION).timestamp())
    # Over the default 8 shards: the day, or the day and the user's shard.
    assert item["StreamDay"]["S"] == stream_partition_of(recorded_at, user.id.value, 8)
    assert item["StreamDay"]["S"].split("#")[0] == recorded_at.date().isoformat()


async def test_the_longest_sign_in_ending_48_expired_sessions_fits_one_transaction(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    world = OutboxWorld(dynamodb_client, dynamodb_tables)
    sessions = SessionPolicy(max_sessions=50)  # the highest USER_SERVICE_MAX_SESSIONS_PER_USER
    world.policy = AuthPolicy(sessions=sessions)
    user = await world.register()
    for _ in range(2):
        async with world.uow() as uow:
            stored = await uow.users.require(user.id)
            for _ in range(25):
                start = stored.start_session(world.clock.now, sessions, [])
                await uow.sessions.add(stored, start.session)
            await uow.users.update(stored)
            await uow.commit()  # 25 sessions, 25 SessionStarted and the user: 51 items
    later(world.clock, days=8)  # every session idle past its lifetime

    # 48 of the 50 expired ended (an event and a delete each), 1 started (an event and a put),
    # the user: 99 items. The 2 left over are over already, and end at the next sign-in.
    signed_in = await world.sign_in()

    events = await world.events(user.id)
    assert len(events) == REGISTRATION_EVENTS + 50 + 48 + 1
    expired = [e for e in events if isinstance(e, SessionRevoked)]
    assert len(expired) == 48
    assert {e.reason for e in expired} == {SessionEndReason.EXPIRED}
    assert events[-1] == SessionStarted(user.id.value, world.clock.now, signed_in.session_id)
    assert await world.event_seq(user.id) == REGISTRATION_EVENTS + 50 + 48 + 1
    await world.sign_in()
    assert len([e for e in await world.events(user.id) if isinstance(e, SessionRevoked)]) == 50


async def test_a_write_too_large_for_one_transaction_fails_clearly_and_writes_nothing(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    world = OutboxWorld(dynamodb_client, dynamodb_tables)
    user = await world.register()
    before = await world.user_item(user.id)

    async with world.uow() as uow:
        stored = await uow.users.require(user.id)
        for _ in range(100):  # more than any setting allows: 100 events and the user
            stored.start_session(world.clock.now, SessionPolicy(max_sessions=200), [])
        await uow.users.update(stored)
        with pytest.raises(StorageError, match="101 items exceeds DynamoDB's 100"):
            await uow.commit()

    assert await world.user_item(user.id) == before
    assert len(await world.event_items(user.id)) == REGISTRATION_EVENTS
    assert len(world.committed) == 1  # the registration only


async def test_a_sign_in_with_an_unknown_email_records_no_event_anywhere(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    world = OutboxWorld(dynamodb_client, dynamodb_tables)
    await world.register()

    with pytest.raises(AuthenticationFailed):
        await world.sign_in("nobody@example.com")

    assert len(await world.all_event_items()) == REGISTRATION_EVENTS  # the registration's
    assert len(world.committed) == 1
