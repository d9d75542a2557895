"""The embedded DynamoDB's speed-ups change no outcome: the same requests against it and against
moto as released (``--without-speedups``) give the same replies and leave the same items.

Both servers run as the tests' moto does (``python -m server.embedded_dynamodb``), with the
service's tables; states are read back with Scans of every table and every index.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import pytest_asyncio
from botocore.exceptions import ClientError

from persistence.dynamodb_client import DynamoDbOptions, open_dynamodb_client
from persistence.schema import TableNames
from persistence.table_initializer import ensure_tables
from tests.conftest import free_port

State = dict[str, list[dict[str, Any]]]
Outcome = tuple[str, str, Any]  # (error code or "OK", message, cancellation reasons)


@pytest.fixture(scope="module")
def unpatched_endpoint() -> Iterator[str]:
    """moto as released, served one request at a time as the tests' moto is."""
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "server.embedded_dynamodb"),
            "--port",
            str(port),
            "--without-speedups",
        ],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _client(endpoint: str, exits: Any) -> Any:
    options = DynamoDbOptions(
        region="us-east-1", endpoint_url=endpoint, access_key_id="a", secret_access_key="b"
    )
    client = await exits.enter_async_context(open_dynamodb_client(options))
    deadline = time.monotonic() + 30
    while True:
        try:
            await client.list_tables()
            return client
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@pytest_asyncio.fixture
async def both(moto_endpoint: str, unpatched_endpoint: str) -> AsyncIterator[Both]:
    async with contextlib.AsyncExitStack() as exits:
        patched = await _client(moto_endpoint, exits)
        unpatched = await _client(unpatched_endpoint, exits)
        suffix = uuid4().hex[:8]
        names = TableNames(f"Users-{suffix}", f"UserEmails-{suffix}", f"UserEvents-{suffix}")
        for client in (patched, unpatched):
            await ensure_tables(client, names, wait_seconds=10)
        yield Both(patched, unpatched, names)
        for client in (patched, unpatched):
            for name in (names.users, names.emails, names.events):
                await client.delete_table(TableName=name)


class Both:
    """The same requests, sent to the patched and the unpatched server."""

    def __init__(self, patched: Any, unpatched: Any, names: TableNames) -> None:
        self.patched, self.unpatched, self.names = patched, unpatched, names

    async def send(self, operation: str, **request: Any) -> Outcome:
        """Sends to both; asserts the outcomes are the same, and returns it."""
        patched = await _outcome(self.patched, operation, request)
        unpatched = await _outcome(self.unpatched, operation, request)
        assert patched == unpatched
        return patched

    async def state(self) -> State:
        """Every item of every table and index, read from both; asserts they are the same."""
        patched, unpatched = (
            await _state(self.patched, self.names),
            await _state(self.unpatched, self.names),
        )
        assert patched == unpatched
        return patched


async def _outcome(client: Any, operation: str, request: dict[str, Any]) -> Outcome:
    try:
        reply = await getattr(client, operation)(**request)
    except ClientError as error:
        return (
            error.response["Error"]["Code"],
            error.response["Error"]["Message"],
            error.response.get("CancellationReasons"),
        )
    reply.pop("ResponseMetadata", None)
    return "OK", "", reply


async def _scan_all(client: Any, page: int = 3, **request: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        reply = await client.scan(**request, Limit=page)
        items += reply["Items"]
        if "LastEvaluatedKey" not in reply:
            return items
        request["ExclusiveStartKey"] = reply["LastEvaluatedKey"]


async def _state(client: Any, names: TableNames) -> State:
    return {
        "Users": await _scan_all(client, TableName=names.users),
        "UserEmails": await _scan_all(client, TableName=names.emails),
        "UserEvents": await _scan_all(client, TableName=names.events),
        "EmailIndex": await _scan_all(client, TableName=names.users, IndexName="EmailIndex"),
        "RefreshTokenIndex": await _scan_all(
            client, TableName=names.users, IndexName="RefreshTokenIndex"
        ),
        "EventStream": await _scan_all(client, TableName=names.events, IndexName="EventStream"),
    }


U1, U2, U3, U4 = (f"0000000{n}-0000-4000-8000-000000000000" for n in range(1, 5))


def _user(user_id: str, email: str, token: str) -> dict[str, Any]:
    return {
        "Id": {"S": user_id},
        "EmailIndex": {"S": email},
        "RefreshTokenIndex": {"S": token},
        "Revision": {"N": "1"},
        "FirstName": {"S": "Ada"},
    }


def _event(user_id: str, seq: int) -> dict[str, Any]:
    return {
        "UserId": {"S": user_id},
        "Seq": {"N": str(seq)},
        "StreamDay": {"S": "2026-12-06"},
        "StreamKey": {"S": f"2026-12-06T17:00:00.{seq:06d}Z#{user_id}#{seq}"},
        "Type": {"S": "UserRegistered"},
    }


async def _seed(both: Both) -> None:
    names = both.names
    puts = [
        {"Put": {"TableName": names.users, "Item": _user(U1, "a@x.org", "t1")}},
        {"Put": {"TableName": names.users, "Item": _user(U2, "b@x.org", "t2")}},
        {"Put": {"TableName": names.users, "Item": _user(U4, "d@x.org", "t4")}},
        {
            "Put": {
                "TableName": names.emails,
                "Item": {"Email": {"S": "a@x.org"}, "UserId": {"S": U1}},
            }
        },
        {"Put": {"TableName": names.events, "Item": _event(U1, 1)}},
        {"Put": {"TableName": names.events, "Item": _event(U2, 1)}},
    ]
    assert (await both.send("transact_write_items", TransactItems=puts))[0] == "OK"


def _mix(names: TableNames, failing: frozenset[int]) -> list[dict[str, Any]]:
    """Put, Update, Delete, Put, ConditionCheck, Delete over three tables; each item's condition
    holds unless its position is in ``failing``."""

    def holds(position: int) -> bool:
        return position not in failing

    one, two = {"N": "1"}, {"N": "2"}
    return [
        {
            "Put": {
                "TableName": names.users,
                "Item": _user(U3, "c@x.org", "t3"),
                "ConditionExpression": "attribute_not_exists(Id)"
                if holds(0)
                else "attribute_exists(Id)",
            }
        },
        {
            "Update": {
                "TableName": names.users,
                "Key": {"Id": {"S": U1}},
                "UpdateExpression": "SET EmailIndex = :e, Revision = Revision + :one "
                "REMOVE RefreshTokenIndex",
                "ConditionExpression": "Revision = :r",
                "ExpressionAttributeValues": {
                    ":e": {"S": "a2@x.org"},
                    ":one": one,
                    ":r": one if holds(1) else two,
                },
            }
        },
        {
            "Delete": {
                "TableName": names.emails,
                "Key": {"Email": {"S": "a@x.org"}},
                "ConditionExpression": "UserId = :u",
                "ExpressionAttributeValues": {":u": {"S": U1 if holds(2) else U2}},
            }
        },
        {
            "Put": {
                "TableName": names.events,
                "Item": _event(U1, 2),
                "ConditionExpression": "attribute_not_exists(Seq)"
                if holds(3)
                else "attribute_exists(Seq)",
            }
        },
        {
            "ConditionCheck": {
                "TableName": names.users,
                "Key": {"Id": {"S": U2}},
                "ConditionExpression": "Revision = :r",
                "ExpressionAttributeValues": {":r": one if holds(4) else two},
            }
        },
        {
            "Delete": {
                "TableName": names.users,
                "Key": {"Id": {"S": U4}},
                "ConditionExpression": "attribute_exists(Id)"
                if holds(5)
                else "attribute_not_exists(Id)",
            }
        },
    ]


@pytest.mark.parametrize(
    "failing",
    [frozenset({1}), frozenset({2}), frozenset({4}), frozenset({5}), frozenset({2, 3})],
    ids=lambda failing: "failing at " + ",".join(str(p + 1) for p in sorted(failing)),
)
async def test_a_cancelled_transaction_leaves_every_item_and_index_as_it_was(
    both: Both, failing: frozenset[int]
) -> None:
    await _seed(both)
    before = await both.state()

    code, _, reasons = await both.send(
        "transact_write_items", TransactItems=_mix(both.names, failing)
    )

    assert code == "TransactionCanceledException"
    assert [reason["Code"] for reason in reasons] == [
        "ConditionalCheckFailed" if position in failing else "None" for position in range(6)
    ]
    assert await both.state() == before


async def test_a_transaction_whose_conditions_hold_applies_every_item(both: Both) -> None:
    await _seed(both)

    code, _, _ = await both.send(
        "transact_write_items", TransactItems=_mix(both.names, frozenset())
    )

    assert code == "OK"
    state = await both.state()
    assert [item["Id"]["S"] for item in state["Users"]] == [U1, U2, U3]
    assert [item["EmailIndex"]["S"] for item in state["EmailIndex"]] == [
        "a2@x.org",
        "b@x.org",
        "c@x.org",
    ]
    assert [item["RefreshTokenIndex"]["S"] for item in state["RefreshTokenIndex"]] == ["t2", "t3"]
    assert state["UserEmails"] == []
    assert [(e["UserId"]["S"], e["Seq"]["N"]) for e in state["UserEvents"]] == [
        (U1, "1"),
        (U1, "2"),
        (U2, "1"),
    ]


async def test_a_failed_condition_returns_the_old_item_as_moto_does(both: Both) -> None:
    await _seed(both)
    before = await both.state()
    items = _mix(both.names, frozenset({1}))
    items[1]["Update"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"

    _, _, reasons = await both.send("transact_write_items", TransactItems=items)

    assert reasons[1]["Item"]["Id"] == {"S": U1}
    assert await both.state() == before


async def test_a_transaction_refused_halfway_is_undone_whole(both: Both) -> None:
    await _seed(both)
    before = await both.state()
    items = _mix(both.names, frozenset())
    # The third item changes a key attribute: moto refuses the request after applying two items.
    items[2] = {
        "Update": {
            "TableName": both.names.users,
            "Key": {"Id": {"S": U2}},
            "UpdateExpression": "SET Id = :id",
            "ExpressionAttributeValues": {":id": {"S": U3}},
        }
    }

    code, _, _ = await both.send("transact_write_items", TransactItems=items)

    assert code == "ValidationException"
    assert await both.state() == before


async def test_scan_pages_are_moto_s_own_as_the_table_changes(both: Both) -> None:
    users = both.names.users
    ids = sorted(str(uuid4()) for _ in range(40))
    for chunk in range(0, len(ids), 20):
        puts = [
            {"PutRequest": {"Item": _user(user_id, f"{user_id}@x.org", user_id)}}
            for user_id in ids[chunk : chunk + 20]
        ]
        await both.send("batch_write_item", RequestItems={users: puts})

    async def pages_agree() -> None:
        for limit in (1, 7, 100):
            request: dict[str, Any] = {"TableName": users, "Limit": limit}
            while True:
                _, _, page = await both.send("scan", **request)
                if "LastEvaluatedKey" not in page:
                    break
                request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        # Start keys that are not in the table, before, between and after its keys.
        for start in ("", ids[10][:-1], ids[10] + "0", "~"):
            await both.send(
                "scan", TableName=users, Limit=5, ExclusiveStartKey={"Id": {"S": start}}
            )
        await both.send(
            "scan",
            TableName=users,
            Limit=9,
            FilterExpression="begins_with(EmailIndex, :c)",
            ProjectionExpression="Id, EmailIndex",
            ExpressionAttributeValues={":c": {"S": ids[5][0]}},
        )

    await pages_agree()
    await both.send("delete_item", TableName=users, Key={"Id": {"S": ids[3]}})
    await both.send("put_item", TableName=users, Item=_user("0-first", "f@x.org", "tf"))
    await both.send(
        "transact_write_items",
        TransactItems=[
            {"Delete": {"TableName": users, "Key": {"Id": {"S": ids[20]}}}},
            {"Put": {"TableName": users, "Item": _user("zz-last", "z@x.org", "tz")}},
            {
                "ConditionCheck": {
                    "TableName": users,
                    "Key": {"Id": {"S": ids[0]}},
                    "ConditionExpression": "attribute_not_exists(Id)",
                }
            },
        ],
    )
    await pages_agree()
    assert len((await both.state())["Users"]) == 40
