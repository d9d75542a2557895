"""The readiness probe covers the events table (without it no write could land) and the sessions
table (without it nobody could sign in)."""

from __future__ import annotations

from typing import Any

import pytest

from domain.errors import StorageError
from persistence.readiness import check_ready
from persistence.schema import TableNames
from persistence.table_initializer import ensure_tables


async def test_readiness_fails_when_only_the_events_table_is_missing(
    dynamodb_client: Any, table_names: TableNames
) -> None:
    await ensure_tables(dynamodb_client, table_names, wait_seconds=10)
    await check_ready(dynamodb_client, table_names)

    await dynamodb_client.delete_table(TableName=table_names.events)

    with pytest.raises(StorageError, match="ResourceNotFoundException"):
        await check_ready(dynamodb_client, table_names)


async def test_readiness_fails_when_only_the_sessions_table_is_missing(
    dynamodb_client: Any, table_names: TableNames
) -> None:
    await ensure_tables(dynamodb_client, table_names, wait_seconds=10)
    await check_ready(dynamodb_client, table_names)

    await dynamodb_client.delete_table(TableName=table_names.sessions)

    with pytest.raises(StorageError, match="ResourceNotFoundException"):
        await check_ready(dynamodb_client, table_names)
