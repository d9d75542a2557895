"""The fault-injecting proxy itself, between a plain aiobotocore client and moto_server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from tests.fault_proxy import FaultProxy, Outcome
from tests.integration.proxy_client import client_through


@pytest.fixture
async def table(dynamodb_client: Any) -> AsyncIterator[str]:
    """A fresh table keyed by "Id", created straight on moto (not through the proxy)."""
    name = f"Proxy-{uuid4().hex[:8]}"
    await dynamodb_client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield name
    await dynamodb_client.delete_table(TableName=name)


def key(value: str) -> dict[str, Any]:
    return {"Id": {"S": value}}


async def stored(dynamodb_client: Any, table: str, value: str) -> bool:
    """Whether moto holds the item, read straight from it."""
    response = await dynamodb_client.get_item(TableName=table, Key=key(value), ConsistentRead=True)
    return "Item" in response


async def test_passes_requests_through_on_one_kept_alive_client_connection_and_records_them(
    proxy: FaultProxy, table: str
) -> None:
    async with client_through(proxy) as client:
        await client.put_item(TableName=table, Item=key("a"))
        got = await client.get_item(TableName=table, Key=key("a"), ConsistentRead=True)
        await client.get_item(TableName=table, Key=key("b"))

    assert got["Item"] == key("a")
    records = proxy.requests()
    assert [r.operation for r in records] == ["PutItem", "GetItem", "GetItem"]
    assert all(r.outcome is Outcome.FORWARDED and r.reached_backend for r in records)
    assert records[0].json() == {"TableName": table, "Item": key("a")}
    assert proxy.connections_accepted == 1


async def test_throttling_answers_with_dynamodbs_own_error_and_forwards_nothing(
    proxy: FaultProxy, table: str, dynamodb_client: Any
) -> None:
    proxy.throttle(1.0)
    async with client_through(proxy) as client:
        with pytest.raises(ClientError) as raised:
            await client.put_item(TableName=table, Item=key("a"))

    error = raised.value.response
    assert error["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["ResponseMetadata"]["RequestId"]
    [record] = proxy.requests()
    assert record.outcome is Outcome.THROTTLED and not record.reached_backend
    assert not await stored(dynamodb_client, table, "a")


async def test_throttles_about_the_chosen_fraction_of_requests(
    proxy: FaultProxy, table: str
) -> None:
    proxy.throttle(0.3, seed=7)
    throttled = 0
    async with client_through(proxy) as client:
        for _ in range(60):
            try:
                await client.get_item(TableName=table, Key=key("a"))
            except ClientError:
                throttled += 1

    assert 8 <= throttled <= 30, throttled
    outcomes = [r.outcome for r in proxy.requests()]
    assert outcomes.count(Outcome.THROTTLED) == throttled
    assert outcomes.count(Outcome.FORWARDED) == 60 - throttled


async def test_throttles_only_the_operations_named(proxy: FaultProxy, table: str) -> None:
    proxy.throttle(1.0, operations=["DynamoDB_20120810.TransactWriteItems"])
    async with client_through(proxy) as client:
        await client.get_item(TableName=table, Key=key("a"))
        with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
            await client.transact_write_items(
                TransactItems=[{"Put": {"TableName": table, "Item": key("a")}}]
            )

    assert [(r.operation, r.outcome) for r in proxy.requests()] == [
        ("GetItem", Outcome.FORWARDED),
        ("TransactWriteItems", Outcome.THROTTLED),
    ]


async def test_a_fault_limited_in_times_lets_botocores_retries_through(
    proxy: FaultProxy, table: str, dynamodb_client: Any
) -> None:
    proxy.throttle(1.0, times=2)
    async with client_through(proxy, max_attempts=3) as client:
        await client.put_item(TableName=table, Item=key("a"))

    assert [r.outcome for r in proxy.requests()] == [
        Outcome.THROTTLED,
        Outcome.THROTTLED,
        Outcome.FORWARDED,
    ]
    assert await stored(dynamodb_client, table, "a")


@pytest.mark.slow
async def test_latency_before_forwarding_makes_the_request_reach_the_backend_late(
    proxy: FaultProxy, table: str
) -> None:
    proxy.delay(1.0, operations=["GetItem"])
    async with client_through(proxy) as client:
        await client.put_item(TableName=table, Item=key("a"))
        started = time.monotonic()
        await client.get_item(TableName=table, Key=key("a"))
        took = time.monotonic() - started

    put, get = proxy.requests()
    assert put.forwarded_at is not None and put.forwarded_at - put.received_at < 0.9
    assert get.forwarded_at is not None and get.forwarded_at - get.received_at >= 1.0
    assert took >= 1.0


@pytest.mark.slow
async def test_latency_on_the_answer_times_the_client_out_while_the_write_lands(
    proxy: FaultProxy, table: str, dynamodb_client: Any
) -> None:
    proxy.delay(3.0, operations=["PutItem"], after_forwarding=True)
    async with client_through(proxy, read_timeout=0.5) as client:
        with pytest.raises(ReadTimeoutError):
            await client.put_item(TableName=table, Item=key("a"))

    assert await stored(dynamodb_client, table, "a")
    [record] = proxy.requests()
    assert record.reached_backend


async def test_a_dropped_connection_loses_the_request(
    proxy: FaultProxy, table: str, dynamodb_client: Any
) -> None:
    proxy.drop(times=1)
    async with client_through(proxy) as client:
        with pytest.raises(ConnectionClosedError):
            await client.put_item(TableName=table, Item=key("a"))
        await client.put_item(TableName=table, Item=key("b"))  # the next one passes

    assert not await stored(dynamodb_client, table, "a")
    assert await stored(dynamodb_client, table, "b")
    assert [r.outcome for r in proxy.requests()] == [Outcome.DROPPED, Outcome.FORWARDED]


async def test_a_connection_dropped_after_forwarding_loses_only_the_answer(
    proxy: FaultProxy, table: str, dynamodb_client: Any
) -> None:
    proxy.drop(after_forwarding=True)
    async with client_through(proxy) as client:
        with pytest.raises(ConnectionClosedError):
            await client.put_item(TableName=table, Item=key("a"))

    assert await stored(dynamodb_client, table, "a")
    [record] = proxy.requests()
    assert record.outcome is Outcome.ANSWER_DROPPED and record.reached_backend


async def test_refused_connections_fail_at_once_and_the_same_port_serves_again(
    proxy: FaultProxy, table: str
) -> None:
    url = proxy.url
    async with client_through(proxy) as client:
        await client.get_item(TableName=table, Key=key("a"))  # a pooled connection is open
        proxy.refuse()
        await asyncio.sleep(0.1)  # the client's loop sees its pooled connection reset
        started = time.monotonic()
        with pytest.raises(EndpointConnectionError):
            await client.get_item(TableName=table, Key=key("a"))
        assert time.monotonic() - started < 1.0  # refused, not timed out
        proxy.accept()
        await client.get_item(TableName=table, Key=key("a"))

    assert proxy.url == url
    assert [r.outcome for r in proxy.requests()] == [Outcome.FORWARDED, Outcome.FORWARDED]
