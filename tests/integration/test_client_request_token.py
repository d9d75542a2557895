"""Every TransactWriteItems carries a ClientRequestToken; botocore's retries re-send the same one.

moto ignores ClientRequestToken: it does not deduplicate a transaction sent twice. These tests
therefore check what is sent (read from the fault proxy's record of the request bodies), not
DynamoDB's deduplication, which on real DynamoDB makes a re-sent transaction apply at most once
within 10 minutes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.errors import EmailAlreadyRegistered
from domain.user import User
from domain.values import PersonName
from persistence.dynamodb_client import DynamoDbOptions, open_dynamodb_client
from persistence.schema import TableNames
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import new_user
from tests.fault_proxy import FaultProxy, Outcome

TRANSACT = "TransactWriteItems"


@pytest.fixture
async def proxied_client(proxy: FaultProxy) -> AsyncIterator[Any]:
    """A DynamoDB client through the proxy, letting botocore try each call up to 3 times."""
    options = DynamoDbOptions(
        region="us-east-1",
        endpoint_url=proxy.url,
        access_key_id="testing",
        secret_access_key="testing",
        max_attempts=3,
    )
    async with open_dynamodb_client(options) as client:
        yield client


async def register(client: Any, tables: TableNames, user: User) -> None:
    async with DynamoUnitOfWork(client, tables) as uow:
        await uow.users.add(user)
        await uow.commit()


def tokens(proxy: FaultProxy) -> list[str]:
    """The ClientRequestToken of each TransactWriteItems the proxy received ("" if none)."""
    return [str(r.json().get("ClientRequestToken", "")) for r in proxy.requests(TRANSACT)]


async def test_every_transaction_the_repository_sends_carries_its_own_client_request_token(
    proxy: FaultProxy, proxied_client: Any, dynamodb_tables: TableNames
) -> None:
    user = new_user("token.holder@example.com")
    await register(proxied_client, dynamodb_tables, user)
    async with DynamoUnitOfWork(proxied_client, dynamodb_tables) as uow:
        stored = await uow.users.require(user.id)
        stored.update_profile(first_name=PersonName.parse("Augusta"), last_name=None, now=_now())
        await uow.users.update(stored)
        await uow.commit()
    async with DynamoUnitOfWork(proxied_client, dynamodb_tables) as uow:
        await uow.users.shadow_failed_login()  # a single PutItem (no token) that never lands
    async with DynamoUnitOfWork(proxied_client, dynamodb_tables) as uow:
        stored = await uow.users.require(user.id)
        stored.mark_deleted(now=_now())
        await uow.users.delete(stored)
        await uow.commit()

    sent = tokens(proxy)
    assert len(sent) == 3, sent  # register, update, delete
    assert all(1 <= len(token) <= 36 for token in sent), sent  # DynamoDB's length limits
    assert len(set(sent)) == 3, "two transactions shared a token"


async def test_botocore_retries_a_throttled_transaction_with_the_same_token(
    proxy: FaultProxy, proxied_client: Any, dynamodb_tables: TableNames
) -> None:
    proxy.throttle(1.0, operations=[TRANSACT], times=1)
    await register(proxied_client, dynamodb_tables, new_user("retried@example.com"))

    attempts = proxy.requests(TRANSACT)
    assert [a.outcome for a in attempts] == [Outcome.THROTTLED, Outcome.FORWARDED]
    first, second = tokens(proxy)
    assert first and first == second
    assert attempts[0].body == attempts[1].body


async def test_botocore_resends_the_same_token_when_the_answer_of_a_landed_transaction_is_lost(
    proxy: FaultProxy, proxied_client: Any, dynamodb_tables: TableNames
) -> None:
    proxy.drop(operations=[TRANSACT], after_forwarding=True, times=1)
    # On DynamoDB the retry returns the first attempt's success. moto ignores the token, applies
    # the transaction again, and its condition (the email is free) fails against the first one.
    with contextlib.suppress(EmailAlreadyRegistered):
        await register(proxied_client, dynamodb_tables, new_user("lost.answer@example.com"))

    attempts = proxy.requests(TRANSACT)
    assert [a.outcome for a in attempts] == [Outcome.ANSWER_DROPPED, Outcome.FORWARDED]
    first, second = tokens(proxy)
    assert first and first == second
    users = await proxied_client.scan(TableName=dynamodb_tables.users)
    assert users["Count"] == 1


def _now() -> datetime:
    return datetime.now(UTC)
