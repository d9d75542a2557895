"""Outbox atomicity through the fault proxy: a transaction that fails leaves neither the change
nor any of its events, one that lands leaves both, and concurrent writers number events without
a gap; a transaction is never sent after its events' commit window."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from domain.errors import InvalidRefreshToken, StorageUnavailable, VersionConflict
from domain.events import (
    SessionEndReason,
    SessionRevoked,
    SessionsRevoked,
    SessionStarted,
    UserDisabled,
)
from domain.policies import SessionPolicy
from domain.use_cases import accounts
from domain.use_cases.sessions import SessionTokens, logout, logout_all
from domain.user import User
from domain.values import UserId
from persistence.event_mapper import event_to_item
from persistence.schema import TableNames
from tests.fault_proxy import FaultProxy, Outcome
from tests.integration.outbox_world import OutboxWorld
from tests.integration.proxy_client import client_through

POLICY = SessionPolicy()

TRANSACT = "TransactWriteItems"


class Snapshot:
    """The user item and the user's event items at one moment, to show that nothing moved."""

    def __init__(self, user: dict[str, Any] | None, events: list[dict[str, Any]]) -> None:
        self.user, self.events = user, events

    @classmethod
    async def of(cls, world: OutboxWorld, user_id: UserId) -> Snapshot:
        return cls(await world.user_item(user_id), await world.event_items(user_id))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Snapshot) and (self.user, self.events) == (
            other.user,
            other.events,
        )


async def signed_in_user(world: OutboxWorld, sessions: int = 2) -> tuple[User, list[SessionTokens]]:
    user = await world.register()
    return user, [await world.sign_in() for _ in range(sessions)]


# --- a failed transaction leaves nothing ---------------------------------------------------------


@pytest.mark.parametrize("fault", ["throttled", "dropped before forwarding"])
async def test_a_transaction_that_fails_on_the_way_leaves_neither_the_change_nor_its_events(
    proxy: FaultProxy, dynamodb_client: Any, dynamodb_tables: TableNames, fault: str
) -> None:
    world = OutboxWorld(dynamodb_client, dynamodb_tables)
    user, _ = await signed_in_user(world)
    before = await Snapshot.of(world, user.id)
    reports = len(world.committed)
    if fault == "throttled":
        proxy.throttle(1.0, operations=[TRANSACT])  # beyond every attempt botocore makes
    else:
        proxy.drop(operations=[TRANSACT])

    async with client_through(proxy, max_attempts=2) as client:
        with pytest.raises(StorageUnavailable):
            await logout_all(world.uow(client), world.clock, POLICY, user_id=user.id.value)

    assert proxy.requests(TRANSACT), "the transaction was never attempted"
    assert proxy.forwarded(TRANSACT) == []
    assert await Snapshot.of(world, user.id) == before
    assert len(world.committed) == reports  # nothing reported as landed


async def test_a_transaction_that_lands_through_the_proxy_leaves_the_change_and_its_events(
    proxy: FaultProxy, dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    world = OutboxWorld(dynamodb_client, dynamodb_tables)
    user, sessions = await signed_in_user(world)

    async with client_through(proxy) as client:
        assert await logout_all(world.uow(client), world.clock, POLICY, user_id=user.id.value) == 2

    item = await world.user_item(user.id)
    assert item is not None and item["SessionEpoch"] == {"N": "1"}
    ended = [SessionsRevoked(user.id.value, world.clock.now, SessionEndReason.LOGOUT_ALL, 2)]
    assert (await world.events(user.id))[-1:] == ended
    assert await world.event_seq(user.id) == 5  # registration (2), sign-ins (2), the end
    assert world.committed[-1] == ended
    for tokens in sessions:
        with pytest.raises(InvalidRefreshToken):
            await world.refresh(tokens.refresh_token)


async def test_a_transaction_whose_answer_is_lost_records_its_events_once(
    proxy: FaultProxy, dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    # It lands, the answer is lost, botocore sends it again: on real DynamoDB the request token
    # makes that a no-op; moto applies it again, and then its conditions (the revision, the
    # taken sequence numbers) refuse it. The use case re-reads and finds nothing left to do.
    world = OutboxWorld(dynamodb_client, dynamodb_tables)
    user, _ = await signed_in_user(world)
    proxy.drop(operations=[TRANSACT], after_forwarding=True, times=1)

    async with client_through(proxy, max_attempts=2) as client:
        await logout_all(world.uow(client), world.clock, POLICY, user_id=user.id.value)

    assert proxy.requests(TRANSACT)[0].outcome is Outcome.ANSWER_DROPPED
    recorded = await world.recorded(user.id)
    assert [r.sequence for r in recorded] == [1, 2, 3, 4, 5]
    revoked = [r.event for r in recorded if isinstance(r.event, SessionsRevoked)]
    assert len(revoked) == 1
    assert await world.event_seq(user.id) == 5


async def test_a_version_conflict_leaves_only_the_winners_change_and_events(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    world = OutboxWorld(dynamodb_client, dynamodb_tables)
    user, _ = await signed_in_user(world)
    winner_uow, loser_uow = world.uow(), world.uow()
    winner = await winner_uow.users.require(user.id)
    loser = await loser_uow.users.require(user.id)
    now = world.clock.now

    winner.end_sessions(now, POLICY, await winner_uow.sessions.current(winner))
    await winner_uow.users.update(winner)
    await winner_uow.commit()
    loser.disable(now, POLICY, await loser_uow.sessions.current(loser))
    await loser_uow.users.update(loser)
    with pytest.raises(VersionConflict):
        await loser_uow.commit()

    events = await world.events(user.id)
    assert [type(e) for e in events][-1:] == [SessionsRevoked]
    assert not any(isinstance(e, UserDisabled) for e in events)
    assert await world.event_seq(user.id) == len(events) == 5
    item = await world.user_item(user.id)
    assert item is not None and item["Status"]["S"] == "ACTIVE"
    assert loser.events and isinstance(loser.events[0], UserDisabled)  # still pending, unstored
    assert world.committed[-1] == events[-1:]


async def test_a_taken_sequence_number_cancels_the_whole_write_as_a_conflict(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    world = OutboxWorld(dynamodb_client, dynamodb_tables)
    user, _ = await signed_in_user(world)
    # An event at the next number, as a writer that read the same EventSeq would have stored.
    squatter = event_to_item(
        UserDisabled(user.id.value, world.clock.now),
        sequence=await world.event_seq(user.id) + 1,
        recorded_at=world.clock.now,
        expires_at=world.clock.now + timedelta(days=1),
    )
    await dynamodb_client.put_item(TableName=dynamodb_tables.events, Item=squatter)
    before = await Snapshot.of(world, user.id)
    reports = len(world.committed)

    with pytest.raises(VersionConflict):  # re-read and re-applied, and refused every time
        await accounts.disable_user(world.uow(), world.clock, POLICY, user_id=user.id.value)

    assert await Snapshot.of(world, user.id) == before
    assert before.events[-1] == squatter
    assert len(world.committed) == reports


# --- concurrent writers ----------------------------------------------------------------------


async def test_concurrent_sign_ins_and_logouts_number_their_events_without_gap_or_duplicate(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    world = OutboxWorld(dynamodb_client, dynamodb_tables)
    user, leaving = await signed_in_user(world, sessions=4)

    async def sign_in() -> SessionTokens:
        return await world.sign_in()

    async def log_out(tokens: SessionTokens) -> SessionTokens:
        await logout(world.uow(), world.clock, refresh_token=tokens.refresh_token)
        return tokens

    outcomes = await asyncio.gather(
        *(sign_in() for _ in range(6)),
        *(log_out(tokens) for tokens in leaving),
        return_exceptions=True,
    )

    assert all(isinstance(o, (SessionTokens, VersionConflict)) for o in outcomes), outcomes
    signed_in = [o for o in outcomes[:6] if isinstance(o, SessionTokens)]
    logged_out = [o for o in outcomes[6:] if isinstance(o, SessionTokens)]
    # Writers that lost five times in a row end ABORTED (moto serves one request at a time, and
    # sign-ins, with more reads, lose most); the rest landed, and that is what is checked.
    assert signed_in or logged_out, outcomes
    recorded = await world.recorded(user.id)
    assert [r.sequence for r in recorded] == list(range(1, len(recorded) + 1))
    assert await world.event_seq(user.id) == len(recorded)
    events = [r.event for r in recorded]
    started = [e.session_id for e in events if isinstance(e, SessionStarted)]
    ended = [e.session_id for e in events if isinstance(e, SessionRevoked)]
    assert len(started) == len(set(started)) == len(leaving) + len(signed_in)
    assert {t.session_id for t in signed_in} <= set(started)
    assert sorted(ended) == sorted(t.session_id for t in logged_out)
    assert all(e.reason is SessionEndReason.LOGOUT for e in events if isinstance(e, SessionRevoked))
    item = await world.user_item(user.id)
    assert item is not None
    async with world.uow() as uow:
        live = {s.session_id for s in await uow.sessions.current(await uow.users.require(user.id))}
    assert live == set(started) - set(ended)  # every landed change has its events, and back
    reported = [e for events in world.committed for e in events]
    assert sorted(map(repr, reported)) == sorted(map(repr, events))


# --- the commit window -----------------------------------------------------------------------


def move_clock_on_attempt(client: Any, world: OutboxWorld, attempt: int, seconds: float) -> None:
    """Move the world's clock on ``seconds`` as botocore prepares the ``attempt``-th send of a
    TransactWriteItems (before the client's before-send hook looks at the time)."""
    made = 0

    def on_request_created(**_: Any) -> None:
        nonlocal made
        made += 1
        if made == attempt:
            world.clock.now += timedelta(seconds=seconds)

    client.meta.events.register(f"request-created.dynamodb.{TRANSACT}", on_request_created)


async def test_a_transaction_not_sent_within_the_commit_window_is_refused_unsent(
    proxy: FaultProxy, dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    world = OutboxWorld(dynamodb_client, dynamodb_tables)
    user, _ = await signed_in_user(world)
    before = await Snapshot.of(world, user.id)

    async with client_through(proxy, max_attempts=1) as client:
        move_clock_on_attempt(client, world, attempt=1, seconds=2.5)
        with pytest.raises(StorageUnavailable, match="within 2 s"):
            await logout_all(world.uow(client), world.clock, POLICY, user_id=user.id.value)

    assert proxy.requests(TRANSACT) == []
    assert await Snapshot.of(world, user.id) == before


async def test_a_botocore_retry_after_the_commit_window_is_refused_unsent(
    proxy: FaultProxy, dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    world = OutboxWorld(dynamodb_client, dynamodb_tables)
    user, _ = await signed_in_user(world)
    before = await Snapshot.of(world, user.id)
    proxy.throttle(1.0, operations=[TRANSACT], times=1)

    async with client_through(proxy, max_attempts=3) as client:
        move_clock_on_attempt(client, world, attempt=2, seconds=2.5)
        with pytest.raises(StorageUnavailable, match="within 2 s"):
            await logout_all(world.uow(client), world.clock, POLICY, user_id=user.id.value)

    assert [r.outcome for r in proxy.requests(TRANSACT)] == [Outcome.THROTTLED]
    assert await Snapshot.of(world, user.id) == before


async def test_a_botocore_retry_within_the_commit_window_lands_with_the_first_recorded_at(
    proxy: FaultProxy, dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    world = OutboxWorld(dynamodb_client, dynamodb_tables)
    user, _ = await signed_in_user(world)
    recorded_at = world.clock.now
    proxy.throttle(1.0, operations=[TRANSACT], times=1)

    async with client_through(proxy, max_attempts=3) as client:
        move_clock_on_attempt(client, world, attempt=2, seconds=1.5)
        assert await logout_all(world.uow(client), world.clock, POLICY, user_id=user.id.value) == 2

    assert [r.outcome for r in proxy.requests(TRANSACT)] == [Outcome.THROTTLED, Outcome.FORWARDED]
    (recorded,) = (await world.recorded(user.id))[-1:]
    assert recorded.recorded_at == recorded_at
