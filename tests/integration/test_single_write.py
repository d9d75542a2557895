"""A commit that writes the user item alone and records no event goes out as one conditional
PutItem (half a transaction's write units), with a transaction's guarantees: optimistic
locking, and a retry after a lost answer that does not turn into a conflict."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from domain.errors import VersionConflict
from domain.policies import AuthPolicy
from domain.user import User
from persistence.schema import TableNames
from persistence.table_initializer import ensure_tables
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import T0, new_user
from tests.fault_proxy import FaultProxy, Outcome
from tests.integration.proxy_client import client_through

POLICY = AuthPolicy()


@pytest_asyncio.fixture
async def stored(dynamodb_client: Any, table_names: TableNames) -> AsyncIterator[User]:
    await ensure_tables(dynamodb_client, table_names)
    user = new_user()
    user.start_session(T0, POLICY.sessions, [])
    async with DynamoUnitOfWork(dynamodb_client, table_names) as uow:
        await uow.users.add(user)
        await uow.commit()
    yield user


async def raw(client: Any, tables: TableNames, user: User) -> dict[str, Any]:
    response = await client.get_item(
        TableName=tables.users, Key={"Id": {"S": user.id.value}}, ConsistentRead=True
    )
    return dict(response["Item"])


async def fail_a_sign_in(client: Any, tables: TableNames, user: User) -> None:
    """A wrong password short of the lock: the user item changes, no event is recorded."""
    async with DynamoUnitOfWork(client, tables) as uow:
        found = await uow.users.get_by_id(user.id)
        assert found is not None
        found.record_failed_login(T0, POLICY.lockout)
        assert not found.events
        await uow.users.update(found)
        await uow.commit()


async def test_an_eventless_write_is_one_put_item_and_an_evented_one_a_transaction(
    proxy: FaultProxy, table_names: TableNames, stored: User
) -> None:
    async with client_through(proxy) as client:
        await fail_a_sign_in(client, table_names, stored)
        assert [r.operation for r in proxy.requests()] == ["GetItem", "PutItem"]
        put = proxy.requests("PutItem")[0].json()
        assert put["ConditionExpression"].startswith("#revision = :expected")
        assert put["ExpressionAttributeValues"] == {":expected": {"N": "1"}}

        proxy.clear_record()
        async with DynamoUnitOfWork(client, table_names) as uow:
            found = await uow.users.get_by_id(stored.id)
            assert found is not None
            found.start_session(T0, POLICY.sessions, [])  # records SessionStarted
            await uow.users.update(found)
            await uow.commit()
        assert [r.operation for r in proxy.requests()] == ["GetItem", "TransactWriteItems"]
        item = await raw(client, table_names, stored)
    assert item["Revision"] == {"N": "3"}
    assert item["EventSeq"] == {"N": "3"}  # registered, first session, second session


async def test_a_put_whose_answer_was_lost_lands_once_and_the_retry_is_no_conflict(
    proxy: FaultProxy, table_names: TableNames, stored: User
) -> None:
    # The PutItem lands, its answer is lost; botocore sends it again, and the condition (the
    # Revision read) no longer holds: the stored item is this very write, so it succeeded.
    proxy.drop(after_forwarding=True, operations=["PutItem"], times=1)
    async with client_through(proxy, max_attempts=3) as client:
        await fail_a_sign_in(client, table_names, stored)
        item = await raw(client, table_names, stored)

    puts = proxy.requests("PutItem")
    assert [p.outcome for p in puts] == [Outcome.ANSWER_DROPPED, Outcome.FORWARDED]
    assert item["Revision"] == {"N": "2"} and item["FailedLogins"] == {"N": "1"}


async def test_a_put_after_another_writer_is_a_version_conflict_and_changes_nothing(
    dynamodb_client: Any, table_names: TableNames, stored: User
) -> None:
    async with DynamoUnitOfWork(dynamodb_client, table_names) as late:
        found = await late.users.get_by_id(stored.id)
        assert found is not None
        await fail_a_sign_in(dynamodb_client, table_names, stored)  # another writer, first
        found.record_failed_login(T0, POLICY.lockout)
        await late.users.update(found)
        with pytest.raises(VersionConflict):
            await late.commit()

    item = await raw(dynamodb_client, table_names, stored)
    assert item["Revision"] == {"N": "2"} and item["FailedLogins"] == {"N": "1"}
