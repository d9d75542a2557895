"""Upgrades every user item of an older schema in place, safely while the service serves.

A consistent Scan; each item that needs it is written back upgraded by a PutItem conditional on
the item being exactly as read: the same ``Revision`` (or, for an item from before revisions,
no ``Revision`` and the same ``Version``) and the same ``SchemaVersion``. The upgrade keeps the
revision and changes nothing a caller sees, so a service write racing with it either lands
first (the migrate write fails, the stored item comes back with the failure and is found
current, or is upgraded in turn) or lands after, on the upgraded item, whose revision is the
one the service read. No update is lost either way. Items of a newer schema are left alone.

A user item that holds sessions (``Sessions``, schema version 2) is upgraded without them, and
its sessions are put as items of the sessions table (at the item's epoch, 0) in the same
TransactWriteItems, under the same condition on the user item: the move happens whole or not at
all, and a service write racing with it cancels it (the item is then read again, as above).

With ``vouch`` (``migrate --mark-verified-before``), every account created before its cutoff
whose address is not verified is marked verified: for the accounts registered before addresses
were verified at all, which would otherwise all be refused sign-in once verified addresses are
required. That is a change callers see, so unlike a plain upgrade it is a write of its own: the
item's ``Version`` and ``Revision`` move on (a service write that read the item before fails its
condition and reads it again, so the mark is never overwritten), ``UpdatedAt`` is the time of the
mark, a pending verification is void, and the EmailVerified event is stored as the user's next
event in the same TransactWriteItems.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from datatools.conflict_retry import retrying_conflicts
from domain.errors import StorageUnavailable
from domain.events import EmailVerified
from domain.policies import SessionPolicy
from domain.values import Session
from persistence.errors import cancellation_reasons, error_code, to_storage_error, translated
from persistence.event_mapper import event_to_item
from persistence.item_upgrades import item_schema_version, needs_upgrade, upgrade_item
from persistence.schema import SCHEMA_VERSION, TableNames
from persistence.session_mapper import item_embedded_sessions, session_to_item
from persistence.transaction import new_request_token
from persistence.user_mapper import parse_time_value, time_value

Item = dict[str, Any]

WRITES_IN_FLIGHT = 16
# Conditional writes of one item lost to concurrent writers before giving up on it.
MIGRATE_ATTEMPTS = 5


@dataclass(frozen=True)
class Vouching:
    """Mark verified the address of every account created before ``created_before`` that is not
    verified yet, at ``now``; the EmailVerified events are kept ``event_retention`` and spread over
    ``stream_shards`` shards of their day (as the service stores its own)."""

    created_before: datetime
    now: datetime
    event_retention: timedelta
    stream_shards: int


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
    # Of the items written (or, with dry_run, to write): those whose address was marked verified.
    marked_verified: int = 0
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
    session_idle_lifetime: timedelta = SessionPolicy.idle_lifetime,
    vouch: Vouching | None = None,
) -> MigrationReport:
    """Upgrades every item of the users table that needs it; ``on_item()`` after each item.
    ``session_idle_lifetime`` sets the ExpireAt (TTL) of the session items it moves; ``vouch``:
    which addresses to mark verified as well (see the module's docstring)."""
    report = MigrationReport(dry_run=dry_run)
    request: dict[str, Any] = {"TableName": tables.users, "ConsistentRead": True}
    if page_size is not None:
        request["Limit"] = page_size
    writes = asyncio.Semaphore(WRITES_IN_FLIGHT)

    async def one(item: Item) -> None:
        async with writes:
            result = await _migrate_item(client, tables, item, report, session_idle_lifetime, vouch)
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
    client: Any,
    tables: TableNames,
    item: Item,
    report: MigrationReport,
    idle: timedelta,
    vouch: Vouching | None,
) -> _Result:
    for _ in range(MIGRATE_ATTEMPTS):
        if item_schema_version(item) > SCHEMA_VERSION:
            return _Result.NEWER
        marking = vouch is not None and _to_vouch_for(upgrade_item(item), vouch)
        if not needs_upgrade(item) and "Sessions" not in item and not marking:
            return _Result.CURRENT
        if report.dry_run:
            report.marked_verified += int(marking)
            return _Result.UPGRADED
        held = item_embedded_sessions(item)
        upgraded = {k: v for k, v in upgrade_item(item).items() if k != "Sessions"}
        extra: list[Item] = []
        if marking and vouch is not None:
            upgraded, event = _vouched(upgraded, tables, vouch)
            extra.append(event)
        put: dict[str, Any] = {
            "TableName": tables.users,
            "Item": upgraded,
            **_unchanged_since_read(item),
        }
        what = f"upgrading user {item['Id']['S']}"
        try:
            if held or extra:
                moves = [_session_put(tables, item["Id"]["S"], s, idle) for s in held]
                items = [{"Put": put}, *moves, *extra]
                await retrying_conflicts(partial(_transact, client, items), what)
            else:
                await retrying_conflicts(partial(client.put_item, **put), what)
            report.marked_verified += int(marking)
            return _Result.UPGRADED
        except (ClientError, BotoCoreError) as error:
            stored = _stored_if_changed(error)
            if stored is _NOT_CHANGED:
                raise to_storage_error(
                    error, "TransactWriteItems" if held or extra else "PutItem"
                ) from error
            report.changed_concurrently += 1
            if not stored:
                return _Result.DELETED
            item = cast(Item, stored)
    raise StorageUnavailable(f"user {item['Id']['S']} kept changing; run migrate again")


def _to_vouch_for(item: Item, vouch: Vouching) -> bool:
    """Whether ``item`` (of the current schema) is an account created before the cutoff whose
    address is not verified."""
    verified = item.get("EmailVerified", {}).get("BOOL", False)
    return not verified and parse_time_value(item["CreatedAt"]) < vouch.created_before


def _vouched(item: Item, tables: TableNames, vouch: Vouching) -> tuple[Item, Item]:
    """``item`` with its address verified (a change callers see: Version and Revision move on)
    and the Put of its EmailVerified event, the user's next."""
    sequence = int(item["EventSeq"]["N"]) + 1
    marked = {k: v for k, v in item.items() if k != "EmailVerification"}
    marked |= {
        "EmailVerified": {"BOOL": True},
        "EmailVerifiedAt": time_value(vouch.now),
        "UpdatedAt": time_value(vouch.now),
        "Version": {"N": str(int(item["Version"]["N"]) + 1)},
        "Revision": {"N": str(int(item["Revision"]["N"]) + 1)},
        "EventSeq": {"N": str(sequence)},
    }
    event = EmailVerified(item["Id"]["S"], vouch.now, email=item["Email"]["S"])
    stored = event_to_item(
        event,
        sequence=sequence,
        recorded_at=vouch.now,
        expires_at=vouch.now + vouch.event_retention,
        stream_shards=vouch.stream_shards,
    )
    put = {
        "TableName": tables.events,
        "Item": stored,
        "ConditionExpression": "attribute_not_exists(#seq)",
        "ExpressionAttributeNames": {"#seq": "Seq"},
    }
    return marked, {"Put": put}


# What _stored_if_changed says of an error that is no failed condition on the user item.
_NOT_CHANGED: Any = object()


def _stored_if_changed(error: BaseException) -> Any:
    """The stored user item (None: deleted) when the write failed because the user item changed
    since it was read; _NOT_CHANGED for any other error."""
    if not isinstance(error, ClientError):
        return _NOT_CHANGED
    # With ReturnValuesOnConditionCheckFailure=ALL_OLD the failure carries the stored item
    # (absent if it was deleted); botocore-stubs' error response does not declare it.
    if error_code(error) == "ConditionalCheckFailedException":
        return cast("Item | None", error.response.get("Item"))
    reasons = cancellation_reasons(error)
    if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
        return cast("Item | None", reasons[0].get("Item"))
    return _NOT_CHANGED


async def _transact(client: Any, items: list[Item]) -> None:
    # A new token each time: a cancelled transaction is definite, and this is a new attempt.
    await client.transact_write_items(TransactItems=items, ClientRequestToken=new_request_token())


def _session_put(tables: TableNames, user_id: str, session: Session, idle: timedelta) -> Item:
    item = session_to_item(user_id, session, idle_lifetime=idle)
    return {"Put": {"TableName": tables.sessions, "Item": item}}


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
