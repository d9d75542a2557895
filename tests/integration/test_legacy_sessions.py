"""Users stored by schema version 2 (sessions held in the user item): their sessions keep working,
and the user's next write moves them to session items in the same transaction."""

from __future__ import annotations

from typing import Any

import pytest

from domain.errors import InvalidRefreshToken
from domain.policies import AuthPolicy
from domain.secret_tokens import parse_token
from domain.use_cases.sessions import logout_all, refresh_session
from domain.user import User
from persistence.schema import TableNames
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import T0, new_user
from tests.fakes import FakeAccessTokenIssuer, FixedClock
from tests.v2_items import v2_item, v2_session

POLICY = AuthPolicy()


async def stored_as_v2(client: Any, tables: TableNames, user: User, count: int) -> list[Any]:
    """Put a version 2 item of ``user`` holding ``count`` sessions, and its guard; the tokens."""
    opened = [v2_session(user, T0, str(i)) for i in range(count)]
    await client.put_item(TableName=tables.users, Item=v2_item(user, [s for s, _ in opened]))
    guard = {"Email": {"S": user.email.normalized}, "UserId": {"S": user.id.value}}
    await client.put_item(TableName=tables.emails, Item=guard)
    return opened


async def user_item(client: Any, tables: TableNames, user: User) -> dict[str, Any]:
    key = {"Id": {"S": user.id.value}}
    return dict((await client.get_item(TableName=tables.users, Key=key))["Item"])


async def session_ids(client: Any, tables: TableNames, user: User) -> set[str]:
    response = await client.query(
        TableName=tables.sessions,
        KeyConditionExpression="UserId = :id",
        ExpressionAttributeValues={":id": {"S": user.id.value}},
        ConsistentRead=True,
    )
    return {item["SessionKey"]["S"] for item in response["Items"]}


async def test_refreshing_a_session_held_in_a_v2_item_moves_every_session_to_items(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    user, clock = new_user(), FixedClock(T0)
    opened = await stored_as_v2(dynamodb_client, dynamodb_tables, user, 3)
    (first, first_token), others = opened[0], opened[1:]

    refreshed = await refresh_session(
        DynamoUnitOfWork(dynamodb_client, dynamodb_tables),
        FakeAccessTokenIssuer(),
        clock,
        POLICY,
        refresh_token=first_token.value,
    )

    assert refreshed.session_id == first.session_id
    assert parse_token(refreshed.refresh_token).session_id == first.session_id
    item = await user_item(dynamodb_client, dynamodb_tables, user)
    assert "Sessions" not in item and item["SchemaVersion"] == {"N": "5"}
    assert item["SessionEpoch"] == {"N": "0"} and item["Revision"] == {"N": "2"}
    assert await session_ids(dynamodb_client, dynamodb_tables, user) == {
        f"0000000000#{s.session_id}" for s, _ in opened
    }
    # The others, moved, refresh with their tokens of the older form; the new one with its own.
    for _, token in others:
        await refresh_session(
            DynamoUnitOfWork(dynamodb_client, dynamodb_tables),
            FakeAccessTokenIssuer(),
            clock,
            POLICY,
            refresh_token=token.value,
        )
    await refresh_session(
        DynamoUnitOfWork(dynamodb_client, dynamodb_tables),
        FakeAccessTokenIssuer(),
        clock,
        POLICY,
        refresh_token=refreshed.refresh_token,
    )


async def test_logout_all_of_a_v2_user_ends_its_held_sessions_without_moving_them(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    user, clock = new_user(), FixedClock(T0)
    opened = await stored_as_v2(dynamodb_client, dynamodb_tables, user, 2)

    ended = await logout_all(
        DynamoUnitOfWork(dynamodb_client, dynamodb_tables),
        clock,
        POLICY.sessions,
        user_id=user.id.value,
    )

    assert ended == 2
    item = await user_item(dynamodb_client, dynamodb_tables, user)
    assert "Sessions" not in item and item["SessionEpoch"] == {"N": "1"}
    assert await session_ids(dynamodb_client, dynamodb_tables, user) == set()
    for _, token in opened:
        with pytest.raises(InvalidRefreshToken):
            await refresh_session(
                DynamoUnitOfWork(dynamodb_client, dynamodb_tables),
                FakeAccessTokenIssuer(),
                clock,
                POLICY,
                refresh_token=token.value,
            )


async def test_any_write_of_a_v2_user_moves_its_sessions_with_it(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    user = new_user()
    opened = await stored_as_v2(dynamodb_client, dynamodb_tables, user, 2)

    async with DynamoUnitOfWork(dynamodb_client, dynamodb_tables) as uow:
        stored = await uow.users.require(user.id)
        assert {s.session_id for s in await uow.sessions.current(stored)} == {
            s.session_id for s, _ in opened
        }
        stored.record_successful_login()  # a write of the user item alone
        await uow.users.update(stored)
        await uow.commit()

    item = await user_item(dynamodb_client, dynamodb_tables, user)
    assert "Sessions" not in item and item["SchemaVersion"] == {"N": "5"}
    assert len(await session_ids(dynamodb_client, dynamodb_tables, user)) == 2
    async with DynamoUnitOfWork(dynamodb_client, dynamodb_tables) as uow:
        stored = await uow.users.require(user.id)
        assert sorted(await uow.sessions.current(stored), key=lambda s: s.session_id) == sorted(
            (s for s, _ in opened), key=lambda s: s.session_id
        )
