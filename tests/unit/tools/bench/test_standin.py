"""The bench's keep-alive DynamoDB stand-in answers the service's own client as DynamoDB would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from botocore.exceptions import ClientError

from persistence.dynamodb_client import DynamoDbOptions, open_dynamodb_client
from tools.bench.standin import HOST, StandIn, Store

USER = {"Id": {"S": "u-1"}, "Email": {"S": "a@example.com"}, "Revision": {"N": "1"}}
KEYS = {"Users": ["Id"], "Events": ["UserId", "Seq"]}


@pytest.fixture
def stand_in() -> StandIn:
    return StandIn(Store(KEYS, {"Users": [dict(USER)]}))


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
