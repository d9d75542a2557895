"""Fixtures for tests against moto_server: a DynamoDB client, and tables unique to each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import uuid4

import pytest
import pytest_asyncio
from botocore.exceptions import ClientError

from persistence.schema import TableNames
from persistence.table_initializer import ensure_tables
from tests.fault_proxy import FaultProxy


@pytest_asyncio.fixture
async def table_names(dynamodb_client: Any) -> AsyncIterator[TableNames]:
    """Table names no other test uses; tables the test creates under them are deleted afterwards."""
    suffix = uuid4().hex[:8]
    names = TableNames(
        users=f"Users-{suffix}",
        emails=f"UserEmails-{suffix}",
        events=f"UserEvents-{suffix}",
        sessions=f"UserSessions-{suffix}",
    )
    yield names
    for name in (names.users, names.emails, names.events, names.sessions):
        try:
            await dynamodb_client.delete_table(TableName=name)
        except ClientError:
            pass  # never created


@pytest_asyncio.fixture
async def dynamodb_tables(dynamodb_client: Any, table_names: TableNames) -> TableNames:
    """The users, email-guard, events and sessions tables, made by ensure_tables for this test."""
    await ensure_tables(dynamodb_client, table_names, wait_seconds=10)
    return table_names


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the session's moto_server, passing everything through."""
    with FaultProxy(moto_endpoint) as running:
        yield running
