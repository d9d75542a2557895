"""The bench's keep-alive DynamoDB stand-in answers the service's own client as DynamoDB would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from botocore.exceptions import ClientError

from persistence.dynamodb_client import DynamoDbOptions, open_dynamodb_client
from tools.bench.standin import HOST, MAX_ITEMS_PER_PARTITION, StandIn, Store

USER = {"Id": {"S": "u-1"}, "Email": {"S": "a@example.com"}, "Revision": {"N": "1"}}
KEYS = {"Users": ["Id"], "Events": ["UserId", "Seq"], "Sessions": ["UserId", "SessionKey"]}
SESSION = {"UserId": {"S": "u-1"}, "SessionKey": {"S": "0000000000#s-1"}, "TokenHash": {"S": "h1"}}


def session(user: str, key: str) -> dict[str, Any]:
    return {"UserId": {"S": user}, "SessionKey": {"S": key}, "TokenHash": {"S": "h"}}


def current_sessions(user: str, epoch: str = "0000000000#") -> dict[str, Any]:
    """The Query sign-in sends for a user's sessions of the current epoch."""
    return {
        "TableName": "Sessions",
        "KeyConditionExpression": "#user = :user AND begins_with(#key, :epoch)",
        "ExpressionAttributeNames": {"#user": "UserId", "#key": "SessionKey"},
        "ExpressionAttributeValues": {":user": {"S": user}, ":epoch": {"S": epoch}},
        "ConsistentRead": True,
    }


@pytest.fixture
def stand_in() -> StandIn:
    return StandIn(Store(KEYS, {"Users": [dict(USER)], "Sessions": [dict(SESSION)]}))


@pytest_asyncio.fixture
async def client(stand_in: StandIn) -> AsyncIterator[Any]:
    server = await asyncio.start_server(stand_in.serve_connection, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    options = DynamoDbOptions(
        region="us-east-1",
        endpoint_url=f"http://{HOST}:{port}",
        max_attempts=1,
        access_key_id="testing",
        secret_access_key="testing",
    )
    async with server, open_dynamodb_client(options) as dynamodb:
        yield dynamodb


async def test_a_seeded_item_is_read_and_an_unknown_key_is_absent(client: Any) -> None:
    found = await client.get_item(TableName="Users", Key={"Id": {"S": "u-1"}}, ConsistentRead=True)
    missing = await client.get_item(TableName="Users", Key={"Id": {"S": "u-2"}})

    assert found["Item"] == USER
    assert "Item" not in missing


async def test_writes_over_seeded_keys_are_kept_and_others_dropped(client: Any) -> None:
    changed = {**USER, "Revision": {"N": "2"}}
    await client.put_item(TableName="Users", Item=changed)
    stranger = {"Id": {"S": "u-9"}, "Revision": {"N": "1"}}
    event = {"UserId": {"S": "u-1"}, "Seq": {"N": "1"}}
    await client.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": "Users", "Item": stranger}},
            {"Put": {"TableName": "Events", "Item": event}},
        ]
    )

    read = await client.get_item(TableName="Users", Key={"Id": {"S": "u-1"}})
    assert read["Item"]["Revision"] == {"N": "2"}
    assert "Item" not in await client.get_item(TableName="Users", Key={"Id": {"S": "u-9"}})


async def test_a_new_session_of_a_seeded_user_is_kept_and_found_by_query(client: Any) -> None:
    new = session("u-1", "0000000000#s-2")
    await client.put_item(TableName="Sessions", Item=new)
    await client.put_item(TableName="Sessions", Item=session("u-1", "0000000001#s-3"))
    await client.put_item(TableName="Sessions", Item=session("u-9", "0000000000#s-4"))

    current = await client.query(**current_sessions("u-1"))
    key = {"UserId": {"S": "u-1"}, "SessionKey": {"S": "0000000000#s-2"}}
    read = await client.get_item(TableName="Sessions", Key=key, ConsistentRead=True)

    assert current["Items"] == [SESSION, new] and current["Count"] == 2
    assert read["Item"] == new
    assert (await client.query(**current_sessions("u-9")))["Items"] == []


async def test_deletes_alone_and_in_a_transaction_remove_sessions(client: Any) -> None:
    await client.put_item(TableName="Sessions", Item=session("u-1", "0000000000#s-2"))
    await client.delete_item(TableName="Sessions", Key={k: SESSION[k] for k in KEYS["Sessions"]})
    second = {"UserId": {"S": "u-1"}, "SessionKey": {"S": "0000000000#s-2"}}
    await client.transact_write_items(
        TransactItems=[{"Delete": {"TableName": "Sessions", "Key": second}}]
    )

    assert (await client.query(**current_sessions("u-1")))["Items"] == []


def test_a_partition_keeps_a_bounded_number_of_items_the_oldest_going_first() -> None:
    store = Store(KEYS, {"Sessions": [dict(SESSION)]})
    for number in range(MAX_ITEMS_PER_PARTITION):
        store.put("Sessions", session("u-1", f"0000000000#t-{number:03d}"))

    found = store.query(current_sessions("u-1"))

    assert len(found) == MAX_ITEMS_PER_PARTITION and SESSION not in found


async def test_a_key_condition_it_cannot_read_is_a_validation_error(client: Any) -> None:
    request = {**current_sessions("u-1"), "KeyConditionExpression": "#user > :user"}
    with pytest.raises(ClientError) as refused:
        await client.query(**request)

    assert refused.value.response["Error"]["Code"] == "ValidationException"


async def test_calls_one_after_another_share_one_keep_alive_connection(
    client: Any, stand_in: StandIn
) -> None:
    for _ in range(10):
        await client.get_item(TableName="Users", Key={"Id": {"S": "u-1"}})

    assert stand_in.connections_accepted == 1


async def test_an_operation_it_does_not_answer_is_refused(client: Any) -> None:
    with pytest.raises(ClientError) as refused:
        await client.scan(TableName="Users")

    assert refused.value.response["Error"]["Code"] == "UnknownOperationException"
