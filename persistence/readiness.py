"""Readiness probe: one cheap GetItem per table, proving DynamoDB answers and both tables exist."""

from __future__ import annotations

from typing import Any

from persistence.errors import translated
from persistence.schema import TableNames

# Not a UUID, so no user or guard item ever has this key.
_PROBE_KEY = "readiness-probe"


async def check_ready(client: Any, tables: TableNames) -> None:
    """Return if both tables answer a read; else raise StorageUnavailable or StorageError."""
    with translated("GetItem"):
        await client.get_item(TableName=tables.users, Key={"Id": {"S": _PROBE_KEY}})
        await client.get_item(TableName=tables.emails, Key={"Email": {"S": _PROBE_KEY}})
