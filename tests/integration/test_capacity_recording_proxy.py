"""The bench's recording proxy between a real aiobotocore client and moto over HTTP: replies pass
through untouched, each write is recorded with its items before and after, and the calculator
counts units from those records."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from botocore.exceptions import ClientError

from persistence.dynamodb_client import DynamoDbOptions, open_dynamodb_client
from persistence.schema import TableNames
from tools.bench.capacity.phase import table_models
from tools.bench.capacity.recording_proxy import RecordingProxy
from tools.bench.environment import Tables
from tools.capacity.operations import consumption

USER_ID = "00000000-0000-4000-8000-000000000001"


@pytest_asyncio.fixture
async def recorded(
    moto_endpoint: str, dynamodb_tables: TableNames
) -> AsyncIterator[tuple[RecordingProxy, Any, Tables]]:
    tables = Tables(
        dynamodb_tables.users,
        dynamodb_tables.emails,
        dynamodb_tables.events,
        dynamodb_tables.sessions,
    )
    async with RecordingProxy(moto_endpoint, table_models(tables)) as proxy:
        options = DynamoDbOptions(
            region="us-east-1",
            endpoint_url=proxy.url,
            access_key_id="testing",
            secret_access_key="testing",
            max_attempts=1,
        )
        async with open_dynamodb_client(options) as client:
            yield proxy, client, tables


def user(**extra: str) -> dict[str, Any]:
    item = {"Id": {"S": USER_ID}, "EmailIndex": {"S": "ada@example.com"}, "Revision": {"N": "1"}}
    return item | {name: {"S": value} for name, value in extra.items()}


async def test_a_registration_is_recorded_with_its_items_and_counted(
    recorded: tuple[RecordingProxy, Any, Tables],
) -> None:
    proxy, client, tables = recorded
    guard = {"Email": {"S": "ada@example.com"}, "UserId": {"S": USER_ID}}
    mark = proxy.mark()

    await client.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": tables.users, "Item": user()}},
            {"Put": {"TableName": tables.emails, "Item": guard}},
        ]
    )

    (record,) = proxy.since(mark)
    exchange = record.exchange
    assert exchange.operation == "TransactWriteItems" and exchange.error_code is None
    assert list(exchange.before.values()) == [None, None]
    assert list(exchange.after.values()) == [user(), guard]
    units = consumption(exchange, table_models(tables))
    assert dict(units.writes) == {
        (tables.users, None): 2,
        (tables.emails, None): 2,
        (tables.users, "EmailIndex"): 1,
    }


async def test_a_cancelled_transaction_reaches_the_client_and_changes_no_index(
    recorded: tuple[RecordingProxy, Any, Tables],
) -> None:
    proxy, client, tables = recorded
    await client.put_item(TableName=tables.users, Item=user())
    mark = proxy.mark()

    with pytest.raises(ClientError) as raised:
        await client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": tables.users,
                        "Item": user(RefreshTokenIndex="a" * 64),
                        "ConditionExpression": "attribute_not_exists(Id)",
                    }
                }
            ]
        )

    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    (record,) = proxy.since(mark)
    assert record.exchange.error_code == "TransactionCanceledException"
    units = consumption(record.exchange, table_models(tables))
    assert dict(units.writes) == {(tables.users, None): 2}


async def test_a_read_is_counted_and_moto_s_own_figure_kept_beside_it(
    recorded: tuple[RecordingProxy, Any, Tables],
) -> None:
    proxy, client, tables = recorded
    await client.put_item(TableName=tables.users, Item=user())
    mark = proxy.mark()

    reply = await client.get_item(
        TableName=tables.users, Key={"Id": {"S": USER_ID}}, ConsistentRead=True
    )

    assert reply["Item"] == user()
    (record,) = proxy.since(mark)
    assert dict(consumption(record.exchange, table_models(tables)).reads) == {
        (tables.users, None): 1
    }
    # moto's fixed figure for any GetItem, strongly consistent or not.
    assert record.reported["CapacityUnits"] == 0.5
