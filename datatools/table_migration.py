"""Upgrades every user item of an older schema in place, safely while the service serves.

A consistent Scan; each item that needs it is written back upgraded by a PutItem conditional on
the item being exactly as read: the same ``Revision`` (or, for an item from before revisions,
no ``Revision`` and the same ``Version``) and the same ``SchemaVersion``. The upgrade keeps the
revision and changes nothing a caller sees, so a service write racing with it either lands
first (the migrate write fails, the stored item comes back with the failure and is found
current, or is upgraded in turn) or lands after, on the upgraded item, whose revision is the
one the service read. No update is lost either way. Items of a newer schema are left alone.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from datatools.conflict_retry import retrying_conflicts
from domain.errors import StorageUnavailable
from persistence.errors import error_code, to_storage_error, translated
from persistence.item_upgrades import item_schema_version, needs_upgrade, upgrade_item
from persistence.schema import SCHEMA_VERSION, TableNames

Item = dict[str, Any]

WRITES_IN_FLIGHT = 16
# Conditional writes of one item lost to concurrent writers before giving up on it.
MIGRATE_ATTEMPTS = 5


class _Result(enum.Enum):
    UPGRADED = enum.auto()
    CURRENT = enum.auto()
    NEWER = enum.auto()
    DELETED = enum.auto()


@dataclass
class MigrationReport:
    """Counts of a migration (or, with dry_run, of what it would do)."""

    dry_run: bool = False
    scanned: int = 0
    upgraded: int = 0  # with dry_run: would be
    already_current: int = 0
    # Writes that lost to a concurrent write: the item was taken again as stored then.
    changed_concurrently: int = 0
    deleted_meanwhile: int = 0
    newer_schema: list[str] = field(default_factory=list)


async def migrate_table(
    client: Any,
    tables: TableNames,
    *,
    dry_run: bool = False,
    page_size: int | None = None,
    on_item: Callable[[], None] | None = None,
) -> MigrationReport:
    """Upgrades every item of the users table that needs it; ``on_item()`` after each item."""
    report = MigrationReport(dry_run=dry_run)
    request: dict[str, Any] = {"TableName": tables.users, "ConsistentRead": True}
    if page_size is not None:
        request["Limit"] = page_size
    writes = asyncio.Semaphore(WRITES_IN_FLIGHT)

    async def one(item: Item) -> None:
        async with writes:
            result = await _migrate_item(client, tables, item, report)
        if result is _Result.UPGRADED:
            report.upgraded += 1
        elif result is _Result.CURRENT:
            report.already_current += 1
        elif result is _Result.NEWER:
            report.newer_schema.append(item["Id"]["S"])
        else:
            report.deleted_meanwhile += 1
        if on_item is not None:
            on_item()

    while True:
        with translated("Scan"):
            page = await client.scan(**request)
        items = page.get("Items", [])
        report.scanned += len(items)
        await asyncio.gather(*(one(item) for item in items))
        if "LastEvaluatedKey" not in page:
            return report
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


async def _migrate_item(
    client: Any, tables: TableNames, item: Item, report: MigrationReport
) -> _Result:
    for _ in range(MIGRATE_ATTEMPTS):
        if item_schema_version(item) > SCHEMA_VERSION:
            return _Result.NEWER
        if not needs_upgrade(item):
            return _Result.CURRENT
        if report.dry_run:
            return _Result.UPGRADED
        try:
            put = partial(
                client.put_item,
                TableName=tables.users,
                Item=upgrade_item(item),
                **_unchanged_since_read(item),
            )
            await retrying_conflicts(put, f"upgrading user {item['Id']['S']}")
            return _Result.UPGRADED
        except (ClientError, BotoCoreError) as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise to_storage_error(error, "PutItem") from error
            assert isinstance(error, ClientError)
            report.changed_concurrently += 1
            # cast: with ReturnValuesOnConditionCheckFailure=ALL_OLD the failure carries the stored
            # item (absent if it was deleted); botocore-stubs' error response does not declare it.
            stored = cast("Item | None", error.response.get("Item"))
            if not stored:
                return _Result.DELETED
            item = stored
    raise StorageUnavailable(f"user {item['Id']['S']} kept changing; run migrate again")


def _unchanged_since_read(item: Item) -> dict[str, Any]:
    names = {"#schema": "SchemaVersion"}
    values: dict[str, Any] = {}
    if "Revision" in item:
        conditions = ["#revision = :revision"]
        names["#revision"] = "Revision"
        values[":revision"] = item["Revision"]
    else:
        conditions = ["attribute_not_exists(#revision)", "#version = :version"]
        names |= {"#revision": "Revision", "#version": "Version"}
        values[":version"] = item["Version"]
    if "SchemaVersion" in item:
        conditions.append("#schema = :schema")
        values[":schema"] = item["SchemaVersion"]
    else:
        conditions.append("attribute_not_exists(#schema)")
    return {
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        # The item as stored comes back with a failure: no second read to see what changed.
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
