"""Refreshing one session from many requests at once against moto_server: exactly one rotates,
with one conditional write on the session item alone."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from domain.errors import ConcurrentRefresh
from domain.policies import AuthPolicy
from domain.secret_tokens import issue_token, parse_token
from domain.use_cases.sessions import SessionTokens, authenticate, refresh_session
from domain.user import User
from persistence.schema import TableNames
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import T0, new_user, session_tokens
from tests.fakes import FakeAccessTokenIssuer, FakePasswordHasher, FixedClock, recorded_lock_notices

PASSWORD = "Zebra-Quill-42"
CONTENDERS = 8
POLICY = AuthPolicy()


def uow(client: Any, tables: TableNames) -> DynamoUnitOfWork:
    return DynamoUnitOfWork(client, tables)


async def add_user_with_password(client: Any, tables: TableNames) -> User:
    user = new_user("racer@example.com")
    user.password_hash = "fake$" + PASSWORD[::-1]
    async with uow(client, tables) as work:
        await work.users.add(user)
        await work.commit()
    return user


async def refresh(client: Any, tables: TableNames, clock: FixedClock, token: str) -> SessionTokens:
    return await refresh_session(
        uow(client, tables), FakeAccessTokenIssuer(), clock, POLICY, refresh_token=token
    )


async def test_of_eight_concurrent_refreshes_with_one_token_exactly_one_rotates_the_session(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    clock = FixedClock(T0)
    user = await add_user_with_password(dynamodb_client, dynamodb_tables)
    async with uow(dynamodb_client, dynamodb_tables) as work:
        stored = await work.users.require(user.id)
        start = stored.start_session(clock(), POLICY.sessions, [])
        session, token = start.session, start.token
        await work.users.update(stored)
        await work.sessions.add(stored, session)
        await work.commit()

    outcomes = await asyncio.gather(
        *(refresh(dynamodb_client, dynamodb_tables, clock, token.value) for _ in range(CONTENDERS)),
        return_exceptions=True,
    )

    winners = [outcome for outcome in outcomes if isinstance(outcome, SessionTokens)]
    losers = [outcome for outcome in outcomes if not isinstance(outcome, SessionTokens)]
    assert len(winners) == 1, outcomes
    # Every loser either met the winner's write (VersionConflict, retried) or read after it:
    # both end in ConcurrentRefresh, and none is mistaken for a stolen token.
    assert all(isinstance(error, ConcurrentRefresh) for error in losers), losers
    async with uow(dynamodb_client, dynamodb_tables) as work:
        after = await work.sessions.current(await work.users.require(user.id))
    assert [s.session_id for s in after] == [session.session_id]
    assert after[0].token_hash == parse_token(winners[0].refresh_token).token_hash
    assert after[0].previous_token_hash == token.token_hash

    clock.now = T0 + POLICY.sessions.reuse_grace * 2
    again = await refresh(dynamodb_client, dynamodb_tables, clock, winners[0].refresh_token)
    assert again.session_id == session.session_id


async def test_a_refresh_right_after_sign_in_reads_the_user_and_session_by_key_and_puts_once(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    clock = FixedClock(T0)
    user = await add_user_with_password(dynamodb_client, dynamodb_tables)
    signed_in = session_tokens(
        await authenticate(
            uow(dynamodb_client, dynamodb_tables),
            FakePasswordHasher(),
            FakeAccessTokenIssuer(),
            clock,
            POLICY,
            recorded_lock_notices(),
            email="racer@example.com",
            password=PASSWORD,
        )
    )
    calls: list[tuple[str, Any, Any]] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        calls.append((model.name, params.get("ConsistentRead"), params.get("IndexName")))

    events = dynamodb_client.meta.events
    events.register("before-parameter-build.dynamodb", record)
    try:
        refreshed = await refresh(dynamodb_client, dynamodb_tables, clock, signed_in.refresh_token)
    finally:
        events.unregister("before-parameter-build.dynamodb", record)

    assert refreshed.session_id == signed_in.session_id
    assert refreshed.user.id == user.id
    # The user (status, epoch), the session, and one conditional PutItem of the session item.
    assert calls == [("GetItem", True, None), ("GetItem", True, None), ("PutItem", None, None)]


async def test_a_refresh_token_of_the_older_form_still_refreshes_its_session(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    clock = FixedClock(T0)
    user = await add_user_with_password(dynamodb_client, dynamodb_tables)
    async with uow(dynamodb_client, dynamodb_tables) as work:
        stored = await work.users.require(user.id)
        start = stored.start_session(clock(), POLICY.sessions, [])
        # As issued before sessions had items: <user id>.<secret>, no session id.
        legacy = issue_token(user.id)
        session = replace(start.session, token_hash=legacy.token_hash)
        await work.users.update(stored)
        await work.sessions.add(stored, session)
        await work.commit()

    refreshed = await refresh(dynamodb_client, dynamodb_tables, clock, legacy.value)

    assert refreshed.session_id == session.session_id
    assert parse_token(refreshed.refresh_token).session_id == session.session_id
