"""The proxy refuses writes as real DynamoDB does a write meeting another on one item."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import pytest
from botocore.exceptions import ClientError

from persistence.errors import cancellation_reasons, error_code
from tests.fault_proxy import CONFLICT_MESSAGE, FaultProxy, Outcome
from tests.integration.proxy_client import client_through


@pytest.fixture
async def table(dynamodb_client: Any) -> AsyncIterator[str]:
    """A fresh table keyed by "Pk" (not a name the proxy could guess), created on moto."""
    name = f"Conflicts-{uuid4().hex[:8]}"
    await dynamodb_client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "Pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield name
    await dynamodb_client.delete_table(TableName=name)


def item(value: str, **more: str) -> dict[str, Any]:
    return {"Pk": {"S": value}, **{name: {"S": text} for name, text in more.items()}}


def put(table: str, value: str) -> dict[str, Any]:
    return {"Put": {"TableName": table, "Item": item(value, Data="x")}}


async def stored(dynamodb_client: Any, table: str) -> dict[str, dict[str, Any]]:
    """Every item of the table, read straight from moto, by key."""
    response = await dynamodb_client.scan(TableName=table, ConsistentRead=True)
    return {entry["Pk"]["S"]: entry for entry in response["Items"]}


async def test_a_cancelled_transaction_names_the_conflict_on_one_item_and_none_on_the_others(
    proxy: FaultProxy, table: str, dynamodb_client: Any
) -> None:
    proxy.conflict(times=1, seed=3)
    async with client_through(proxy) as client:
        with pytest.raises(ClientError) as raised:
            await client.transact_write_items(
                TransactItems=[put(table, "a"), put(table, "b"), put(table, "c")]
            )
        await client.transact_write_items(TransactItems=[put(table, "d")])  # times=1: passes

    error = raised.value
    assert error_code(error) == "TransactionCanceledException"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    reasons = cancellation_reasons(error)
    assert sorted(reason["Code"] for reason in reasons) == ["None", "None", "TransactionConflict"]
    [conflict] = [reason for reason in reasons if reason["Code"] == "TransactionConflict"]
    assert conflict["Message"] == CONFLICT_MESSAGE
    codes = ", ".join(reason["Code"] for reason in reasons)
    assert error.response["Error"]["Message"].endswith(f"specific reasons [{codes}]")
    assert list(await stored(dynamodb_client, table)) == ["d"]  # nothing of the cancelled one
    assert [r.outcome for r in proxy.requests()] == [Outcome.CONFLICTED, Outcome.FORWARDED]


async def test_single_writes_fail_with_transaction_conflict_exception_and_change_nothing(
    proxy: FaultProxy, table: str, dynamodb_client: Any
) -> None:
    await dynamodb_client.put_item(TableName=table, Item=item("a", Data="old"))
    proxy.conflict()
    async with client_through(proxy) as client:
        attempts = [
            client.put_item(TableName=table, Item=item("a", Data="new")),
            client.update_item(
                TableName=table,
                Key=item("a"),
                UpdateExpression="SET #d = :d",
                ExpressionAttributeNames={"#d": "Data"},
                ExpressionAttributeValues={":d": {"S": "new"}},
            ),
            client.delete_item(TableName=table, Key=item("a")),
        ]
        for attempt in attempts:
            with pytest.raises(ClientError) as raised:
                await attempt
            assert error_code(raised.value) == "TransactionConflictException"
            assert raised.value.response["Error"]["Message"] == CONFLICT_MESSAGE
        got = await client.get_item(TableName=table, Key=item("a"), ConsistentRead=True)

    assert got["Item"]["Data"] == {"S": "old"}  # reads pass; no write landed
    assert [r.outcome for r in proxy.requests()] == [Outcome.CONFLICTED] * 3 + [Outcome.FORWARDED]


async def test_conflicts_follow_the_fraction_and_stop_after_times(
    proxy: FaultProxy, table: str
) -> None:
    proxy.conflict(0.5, operations=["PutItem"], times=6, seed=11)
    refused = 0
    async with client_through(proxy) as client:
        for i in range(40):
            try:
                await client.put_item(TableName=table, Item=item(f"k{i}"))
            except ClientError:
                refused += 1

    outcomes = [r.outcome for r in proxy.requests()]
    assert refused == outcomes.count(Outcome.CONFLICTED) == 6
    assert Outcome.FORWARDED in outcomes[: outcomes.index(Outcome.CONFLICTED, 1)]  # not all first


async def test_only_writes_meeting_a_transaction_in_flight_conflict_when_contended_only(
    proxy: FaultProxy, table: str, dynamodb_client: Any
) -> None:
    proxy.conflict(contended_only=True, hold_writes=1.0)
    async with client_through(proxy) as first, client_through(proxy) as second:
        in_flight = asyncio.create_task(
            first.transact_write_items(TransactItems=[put(table, "a"), put(table, "b")])
        )
        for _ in range(200):  # until the proxy has it (and holds it, in flight, for 1 s)
            if proxy.requests("TransactWriteItems"):
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # its items are known (DescribeTable) and marked in flight
        with pytest.raises(ClientError) as transaction:
            await second.transact_write_items(TransactItems=[put(table, "z"), put(table, "b")])
        with pytest.raises(ClientError) as single:
            await second.delete_item(TableName=table, Key=item("a"))
        await second.put_item(TableName=table, Item=item("elsewhere"))  # no item in common
        await in_flight  # the write in flight always goes on
        await second.transact_write_items(TransactItems=[put(table, "b")])  # it has ended

    reasons = [reason["Code"] for reason in cancellation_reasons(transaction.value)]
    assert reasons == ["None", "TransactionConflict"]
    assert error_code(single.value) == "TransactionConflictException"
    assert sorted(await stored(dynamodb_client, table)) == ["a", "b", "elsewhere"]


async def test_single_writes_in_flight_do_not_refuse_other_single_writes(
    proxy: FaultProxy, table: str
) -> None:
    proxy.conflict(contended_only=True, hold_writes=0.5)
    async with client_through(proxy) as first, client_through(proxy) as second:
        await asyncio.gather(
            first.put_item(TableName=table, Item=item("a", Data="1")),
            second.put_item(TableName=table, Item=item("a", Data="2")),
        )

    assert [r.outcome for r in proxy.requests()] == [Outcome.FORWARDED] * 2


def test_only_writes_can_be_made_to_conflict(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="GetItem"):
        proxy.conflict(operations=["GetItem"])
