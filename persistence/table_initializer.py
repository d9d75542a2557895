"""Creates the users, email-guard, events and sessions tables, their GSIs and TTLs if missing."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from domain.errors import StorageError, StorageUnavailable
from persistence.errors import error_code, to_storage_error
from persistence.schema import (
    EVENTS_TTL_ATTRIBUTE,
    SESSIONS_TTL_ATTRIBUTE,
    TableNames,
    emails_table_definition,
    events_table_definition,
    sessions_table_definition,
    users_table_definition,
)

log = logging.getLogger(__name__)

# Errors a concurrent create or update by another instance can cause; describing again settles them.
_CONCURRENT_CHANGE_CODES = frozenset({"ResourceInUseException", "LimitExceededException"})
_MAX_INDEX_ATTEMPTS = 5
# TTL states in which nothing is left to do (ENABLING: another instance, or an earlier run, asked).
_TTL_ON = frozenset({"ENABLED", "ENABLING"})


async def ensure_tables(
    client: Any, tables: TableNames, *, wait_seconds: float = 120.0
) -> list[str]:
    """Make the tables and their indexes exist, idempotently; return the names of those created.

    Safe to run from several instances at once. Existing tables are kept; only a missing GSI is
    added. TTL is switched on for the events table's ExpiresAt and the sessions table's
    ExpireAt. A table whose key differs from the schema is a StorageError; tables or indexes
    not ACTIVE within ``wait_seconds`` are StorageUnavailable.
    """
    deadline = asyncio.get_running_loop().time() + wait_seconds
    definitions = (
        users_table_definition(tables.users),
        emails_table_definition(tables.emails),
        events_table_definition(tables.events),
        sessions_table_definition(tables.sessions),
    )
    created = [
        definition["TableName"]
        for definition in definitions
        if await _create_if_missing(client, definition)
    ]
    for definition in definitions:
        await _add_missing_indexes(client, definition, deadline)
    await _enable_ttl(client, tables.events, EVENTS_TTL_ATTRIBUTE)
    await _enable_ttl(client, tables.sessions, SESSIONS_TTL_ATTRIBUTE)
    return created


async def _create_if_missing(client: Any, definition: dict[str, Any]) -> bool:
    name = definition["TableName"]
    description = await _describe(client, name)
    if description is not None:
        if description["KeySchema"] != definition["KeySchema"]:
            raise StorageError(f"table {name} exists with another key schema than the service's")
        return False
    try:
        await client.create_table(**definition)
    except (ClientError, BotoCoreError) as error:
        if error_code(error) == "ResourceInUseException":
            log.info("table %s is being created by another instance", name)
            return False
        raise to_storage_error(error, "CreateTable") from error
    log.info("created table %s", name)
    return True


async def _add_missing_indexes(client: Any, definition: dict[str, Any], deadline: float) -> None:
    # UpdateTable adds one GSI at a time, and only while the table and its indexes are ACTIVE.
    name = definition["TableName"]
    attribute_types = {
        attribute["AttributeName"]: attribute for attribute in definition["AttributeDefinitions"]
    }
    for index in definition.get("GlobalSecondaryIndexes", []):
        index_name = index["IndexName"]
        for attempt in range(1, _MAX_INDEX_ATTEMPTS + 1):
            if _has_index(await _wait_until_active(client, name, deadline), index_name):
                break
            try:
                await client.update_table(
                    TableName=name,
                    AttributeDefinitions=[
                        attribute_types[key["AttributeName"]] for key in index["KeySchema"]
                    ],
                    GlobalSecondaryIndexUpdates=[{"Create": index}],
                )
                log.info("adding index %s to table %s", index_name, name)
            except (ClientError, BotoCoreError) as error:
                # Another instance may have added it first (then DynamoDB says in use or exists).
                if _has_index(await _describe(client, name) or {}, index_name):
                    log.info("index %s of table %s was added by another instance", index_name, name)
                    continue
                concurrent = error_code(error) in _CONCURRENT_CHANGE_CODES
                if not concurrent or attempt == _MAX_INDEX_ATTEMPTS:
                    raise to_storage_error(error, "UpdateTable") from error
    await _wait_until_active(client, name, deadline)


async def _enable_ttl(client: Any, name: str, attribute: str) -> None:
    """Switch TTL on for ``attribute`` unless it is on (or being switched on) already.

    DynamoDB refuses UpdateTimeToLive while TTL is on or changing, so it is described first. TTL
    on another attribute is a StorageError (someone configured the table by hand). A table whose
    TTL is being switched off keeps the service working, its events just never expire: a warning.
    Note that moto stores the setting but never deletes expired items.
    """
    status, current = await _ttl_status(client, name)
    if status in _TTL_ON and current == attribute:
        return
    if status in _TTL_ON or status == "DISABLING":
        if current != attribute and status in _TTL_ON:
            raise StorageError(
                f"table {name} has TTL on {current!r}; the service needs it on {attribute!r}"
            )
        log.warning("TTL of table %s is being disabled; enable it on %s later", name, attribute)
        return
    try:
        await client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute},
        )
    except (ClientError, BotoCoreError) as error:
        # Another instance may have switched it on between our describe and update.
        status, current = await _ttl_status(client, name)
        if status in _TTL_ON and current == attribute:
            return
        raise to_storage_error(error, "UpdateTimeToLive") from error
    log.info("enabled TTL on %s of table %s", attribute, name)


async def _ttl_status(client: Any, name: str) -> tuple[str, str | None]:
    try:
        response = await client.describe_time_to_live(TableName=name)
    except (ClientError, BotoCoreError) as error:
        raise to_storage_error(error, "DescribeTimeToLive") from error
    description = response.get("TimeToLiveDescription") or {}
    return str(description.get("TimeToLiveStatus", "DISABLED")), description.get("AttributeName")


async def _wait_until_active(client: Any, name: str, deadline: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    delay = 0.05
    while True:
        description = await _describe(client, name)
        if description is not None and _is_active(description):
            return description
        if loop.time() + delay > deadline:
            raise StorageUnavailable(f"table {name} or an index is not ACTIVE yet; retry later")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


def _has_index(description: dict[str, Any], index_name: str) -> bool:
    indexes = description.get("GlobalSecondaryIndexes") or []
    return any(index["IndexName"] == index_name for index in indexes)


def _is_active(description: dict[str, Any]) -> bool:
    indexes = description.get("GlobalSecondaryIndexes") or []
    return description.get("TableStatus") == "ACTIVE" and all(
        index.get("IndexStatus") == "ACTIVE" for index in indexes
    )


async def _describe(client: Any, name: str) -> dict[str, Any] | None:
    try:
        response = await client.describe_table(TableName=name)
    except (ClientError, BotoCoreError) as error:
        if error_code(error) == "ResourceNotFoundException":
            return None
        raise to_storage_error(error, "DescribeTable") from error
    return dict(response["Table"])
