"""ensure_tables makes the users, guard and events tables and the events TTL, idempotently."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from domain.errors import StorageError
from persistence.schema import TableNames, events_table_definition
from persistence.table_initializer import ensure_tables


async def describe(client: Any, name: str) -> dict[str, Any]:
    return dict((await client.describe_table(TableName=name))["Table"])


def hash_key(schema: list[dict[str, str]]) -> str:
    assert len(schema) == 1 and schema[0]["KeyType"] == "HASH"
    return schema[0]["AttributeName"]


async def test_creates_the_seed_users_table_and_the_email_guard_table(
    dynamodb_client: Any, table_names: TableNames
) -> None:
    created = await ensure_tables(dynamodb_client, table_names, wait_seconds=10)

    assert created == [
        table_names.users,
        table_names.emails,
        table_names.events,
        table_names.sessions,
    ]
    users = await describe(dynamodb_client, table_names.users)
    assert users["TableStatus"] == "ACTIVE"
    assert hash_key(users["KeySchema"]) == "Id"
    assert users["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    indexes = {index["IndexName"]: index for index in users["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"EmailIndex", "RefreshTokenIndex"}
    for name, index in indexes.items():
        assert hash_key(index["KeySchema"]) == name
        assert index["Projection"]["ProjectionType"] == "KEYS_ONLY"
        assert index["IndexStatus"] == "ACTIVE"
    types = {item["AttributeName"]: item["AttributeType"] for item in users["AttributeDefinitions"]}
    assert types == {"Id": "S", "EmailIndex": "S", "RefreshTokenIndex": "S"}
    emails = await describe(dynamodb_client, table_names.emails)
    assert hash_key(emails["KeySchema"]) == "Email"
    assert emails["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert not emails.get("GlobalSecondaryIndexes")


async def test_a_second_run_creates_nothing_and_keeps_the_data(
    dynamodb_client: Any, table_names: TableNames
) -> None:
    await ensure_tables(dynamodb_client, table_names, wait_seconds=10)
    guard = {"Email": {"S": "kept@example.com"}, "UserId": {"S": "u"}}
    await dynamodb_client.put_item(TableName=table_names.emails, Item=guard)

    assert await ensure_tables(dynamodb_client, table_names, wait_seconds=10) == []

    key = {"Email": guard["Email"]}
    stored = await dynamodb_client.get_item(TableName=table_names.emails, Key=key)
    assert stored["Item"] == guard


async def test_two_concurrent_runs_both_succeed_and_create_each_table_once(
    dynamodb_client: Any, table_names: TableNames
) -> None:
    first, second = await asyncio.gather(
        ensure_tables(dynamodb_client, table_names, wait_seconds=10),
        ensure_tables(dynamodb_client, table_names, wait_seconds=10),
    )

    assert sorted(first + second) == sorted(
        [table_names.users, table_names.emails, table_names.events, table_names.sessions]
    )
    indexes = (await describe(dynamodb_client, table_names.users))["GlobalSecondaryIndexes"]
    assert {index["IndexName"] for index in indexes} == {"EmailIndex", "RefreshTokenIndex"}


async def create_users_table_without_the_token_index(client: Any, name: str) -> None:
    await client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "Id", "AttributeType": "S"},
            {"AttributeName": "EmailIndex", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "EmailIndex",
                "KeySchema": [{"AttributeName": "EmailIndex", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )


async def test_a_missing_index_is_added_to_an_existing_users_table(
    dynamodb_client: Any, table_names: TableNames
) -> None:
    await create_users_table_without_the_token_index(dynamodb_client, table_names.users)

    created = await ensure_tables(dynamodb_client, table_names, wait_seconds=10)

    assert created == [table_names.emails, table_names.events, table_names.sessions]
    description = await describe(dynamodb_client, table_names.users)
    indexes = {index["IndexName"]: index for index in description["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"EmailIndex", "RefreshTokenIndex"}
    assert hash_key(indexes["RefreshTokenIndex"]["KeySchema"]) == "RefreshTokenIndex"
    assert indexes["RefreshTokenIndex"]["Projection"]["ProjectionType"] == "KEYS_ONLY"


async def test_two_concurrent_runs_both_add_a_missing_index_once(
    dynamodb_client: Any, table_names: TableNames
) -> None:
    await create_users_table_without_the_token_index(dynamodb_client, table_names.users)

    await asyncio.gather(
        ensure_tables(dynamodb_client, table_names, wait_seconds=10),
        ensure_tables(dynamodb_client, table_names, wait_seconds=10),
    )

    indexes = (await describe(dynamodb_client, table_names.users))["GlobalSecondaryIndexes"]
    assert sorted(index["IndexName"] for index in indexes) == ["EmailIndex", "RefreshTokenIndex"]


async def test_an_existing_table_with_another_key_is_refused(
    dynamodb_client: Any, table_names: TableNames
) -> None:
    await dynamodb_client.create_table(
        TableName=table_names.users,
        KeySchema=[{"AttributeName": "UserId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "UserId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    with pytest.raises(StorageError, match="key schema"):
        await ensure_tables(dynamodb_client, table_names, wait_seconds=10)


async def ttl_of(client: Any, name: str) -> dict[str, Any]:
    return dict((await client.describe_time_to_live(TableName=name))["TimeToLiveDescription"])


async def test_creates_the_events_table_with_its_stream_index_and_ttl_on_expires_at(
    dynamodb_client: Any, table_names: TableNames
) -> None:
    await ensure_tables(dynamodb_client, table_names, wait_seconds=10)

    events = await describe(dynamodb_client, table_names.events)
    assert events["TableStatus"] == "ACTIVE"
    assert events["KeySchema"] == [
        {"AttributeName": "UserId", "KeyType": "HASH"},
        {"AttributeName": "Seq", "KeyType": "RANGE"},
    ]
    assert events["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    (index,) = events["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "EventStream"
    assert index["KeySchema"] == [
        {"AttributeName": "StreamDay", "KeyType": "HASH"},
        {"AttributeName": "StreamKey", "KeyType": "RANGE"},
    ]
    assert index["Projection"]["ProjectionType"] == "ALL"
    assert await ttl_of(dynamodb_client, table_names.events) == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "ExpiresAt",
    }


async def test_a_second_run_leaves_the_events_ttl_as_it_is(
    dynamodb_client: Any, table_names: TableNames
) -> None:
    await ensure_tables(dynamodb_client, table_names, wait_seconds=10)
    # Real DynamoDB refuses UpdateTimeToLive when TTL is already on: the second run must not ask.
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    dynamodb_client.meta.events.register("before-call.dynamodb", record)
    try:
        assert await ensure_tables(dynamodb_client, table_names, wait_seconds=10) == []
    finally:
        dynamodb_client.meta.events.unregister("before-call.dynamodb", record)

    assert "DescribeTimeToLive" in calls
    assert "UpdateTimeToLive" not in calls
    assert (await ttl_of(dynamodb_client, table_names.events))["TimeToLiveStatus"] == "ENABLED"


async def test_ttl_turned_on_for_another_attribute_is_refused(
    dynamodb_client: Any, table_names: TableNames
) -> None:
    await dynamodb_client.create_table(**events_table_definition(table_names.events))
    await dynamodb_client.update_time_to_live(
        TableName=table_names.events,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "PurgeAt"},
    )

    with pytest.raises(StorageError, match="TTL on 'PurgeAt'"):
        await ensure_tables(dynamodb_client, table_names, wait_seconds=10)


async def test_a_missing_stream_index_is_added_to_an_existing_events_table(
    dynamodb_client: Any, table_names: TableNames
) -> None:
    definition = events_table_definition(table_names.events)
    del definition["GlobalSecondaryIndexes"]
    definition["AttributeDefinitions"] = definition["AttributeDefinitions"][:2]
    await dynamodb_client.create_table(**definition)

    created = await ensure_tables(dynamodb_client, table_names, wait_seconds=10)

    assert created == [table_names.users, table_names.emails, table_names.sessions]
    (index,) = (await describe(dynamodb_client, table_names.events))["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "EventStream"
    assert [key["AttributeName"] for key in index["KeySchema"]] == ["StreamDay", "StreamKey"]


async def test_creates_the_sessions_table_keyed_by_user_and_session_key_with_ttl_on_expire_at(
    dynamodb_client: Any, table_names: TableNames
) -> None:
    await ensure_tables(dynamodb_client, table_names, wait_seconds=10)

    sessions = await describe(dynamodb_client, table_names.sessions)
    assert sessions["KeySchema"] == [
        {"AttributeName": "UserId", "KeyType": "HASH"},
        {"AttributeName": "SessionKey", "KeyType": "RANGE"},
    ]
    assert not sessions.get("GlobalSecondaryIndexes")
    assert sessions["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert await ttl_of(dynamodb_client, table_names.sessions) == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "ExpireAt",
    }
