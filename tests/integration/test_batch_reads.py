"""Batch reads against moto_server: unprocessed keys asked again, throttling refused whole."""

from __future__ import annotations

from typing import Any

import pytest

from domain.errors import StorageUnavailable
from domain.use_cases import accounts
from domain.user import User
from persistence.schema import TableNames
from persistence.table_initializer import ensure_tables
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import new_user, state_of
from tests.fault_proxy import FaultProxy
from tests.integration.proxy_client import client_through


class StingyBatches:
    """Wraps a real client; its first ``stingy_calls`` BatchGetItem requests reach DynamoDB with
    only their first key, and the other keys come back as UnprocessedKeys, as DynamoDB does when
    it throttles part of a batch (which moto never does)."""

    def __init__(self, client: Any, *, stingy_calls: int) -> None:
        self._client = client
        self.stingy_calls = stingy_calls
        self.asked: list[int] = []  # how many keys each request asked for

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def batch_get_item(self, *, RequestItems: dict[str, Any]) -> dict[str, Any]:
        [(table, asked)] = RequestItems.items()
        self.asked.append(len(asked["Keys"]))
        if len(self.asked) > self.stingy_calls:
            return dict(await self._client.batch_get_item(RequestItems=RequestItems))
        first, rest = asked["Keys"][:1], asked["Keys"][1:]
        response = dict(
            await self._client.batch_get_item(RequestItems={table: {**asked, "Keys": first}})
        )
        if rest:
            response["UnprocessedKeys"] = {table: {**asked, "Keys": rest}}
        return response


async def store(client: Any, tables: TableNames, count: int) -> list[User]:
    users = [new_user(f"batch{i}@example.com") for i in range(count)]
    for user in users:
        async with DynamoUnitOfWork(client, tables) as uow:
            await uow.users.add(user)
            await uow.commit()
    return users


async def test_unprocessed_keys_are_read_again_until_every_user_is_answered(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    users = await store(dynamodb_client, dynamodb_tables, 4)
    stingy = StingyBatches(dynamodb_client, stingy_calls=3)
    ids = [user.id.value for user in reversed(users)] + [users[0].id.value]

    lookups = await accounts.batch_get_users(DynamoUnitOfWork(stingy, dynamodb_tables), ids=ids)

    assert [lookup.user_id.value for lookup in lookups] == ids
    expected = [*reversed(users), users[0]]
    assert [state_of(lookup.user) if lookup.user else None for lookup in lookups] == [
        state_of(user) for user in expected
    ]
    # Four distinct keys, one served per stingy request; the fourth request gets the last one.
    assert stingy.asked == [4, 3, 2, 1]


async def test_keys_left_unprocessed_on_every_attempt_fail_the_whole_read(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    users = await store(dynamodb_client, dynamodb_tables, 8)
    stingy = StingyBatches(dynamodb_client, stingy_calls=100)

    with pytest.raises(StorageUnavailable, match="unprocessed"):
        await accounts.batch_get_users(
            DynamoUnitOfWork(stingy, dynamodb_tables), ids=[user.id.value for user in users]
        )

    assert stingy.asked == [8, 7, 6, 5, 4, 3]


async def test_a_batch_read_throttled_beyond_the_client_retries_is_storage_unavailable(
    proxy: FaultProxy, dynamodb_client: Any, table_names: TableNames
) -> None:
    await ensure_tables(dynamodb_client, table_names)
    users = await store(dynamodb_client, table_names, 2)
    proxy.throttle(1.0, operations=["BatchGetItem"])

    async with client_through(proxy, max_attempts=2) as client:
        with pytest.raises(StorageUnavailable, match="ProvisionedThroughputExceeded"):
            await accounts.batch_get_users(
                DynamoUnitOfWork(client, table_names), ids=[user.id.value for user in users]
            )

    assert len(proxy.requests("BatchGetItem")) == 2
    assert not proxy.forwarded("BatchGetItem")
