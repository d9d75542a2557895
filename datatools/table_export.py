"""Reads every user, upgraded to the current schema, with the email guard it should have and its
sessions of the current epoch (held in the exported item's ``Sessions``, as schema version 2 held
them, so that an export file keeps one line per user whatever the schema).

A consistent Scan of the users table, page after page in key order, and for each user a
consistent GetItem of its guard. It is not a point-in-time snapshot (DynamoDB has none for a
Scan): each user is as it was when its page was read. A user whose guard is missing or names
another user is read again before that is reported, so an email change landing between the
two reads is not taken for an inconsistency.

A pending email verification is left out of the file: its 6-digit code is kept as a salted hash,
and a million guesses recover it from a copy in a second, so the copy would hold a live secret.
Imported, such a user has none pending; its owner asks for a new mail (ResendVerification).

Second factors: the confirmed TOTP factor is exported as stored, its secret sealed (AES-256-GCM,
naming its key): the file holds no key, so the secret stays shut, and the target, configured with
the same USER_SERVICE_TOTP_ENCRYPTION_KEYS, asks imported users for their codes as before (left
out, a move would silently turn every user's second factor off). The recovery codes' hashes and
a pending enrollment are left out: the file holds no hash of a live code, and an imported user
has no recovery codes left (GetUser says 0) until they regenerate them with a TOTP code.

Resuming after the last user written: ``ExclusiveStartKey`` = that user's key. For a table
keyed on ``Id`` alone, scanned without a filter, that is exactly the ``LastEvaluatedKey`` the
Scan gave after it, and DynamoDB (and moto) accept the key of an item deleted since.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from datatools.file_format import UserRecord, guard_of
from persistence.errors import translated
from persistence.item_upgrades import item_schema_version, upgrade_item
from persistence.schema import SCHEMA_VERSION, TableNames, session_prefix
from persistence.session_mapper import item_to_session, session_to_embedded

Item = dict[str, Any]

# The attributes an export never holds (see above).
UNEXPORTED = frozenset({"EmailVerification", "PendingTotp", "RecoveryCodes"})

GUARD_READS_IN_FLIGHT = 16
# Reads of a user whose guard does not match, before the mismatch is taken as real.
GUARD_CHECK_ATTEMPTS = 3


@dataclass
class ExportReport:
    """What an export read, and what it found wrong in the source."""

    users: int = 0
    # (user id, "missing" | "owned_by_other_user"), exported with the guard they should have.
    guard_problems: list[tuple[str, str]] = field(default_factory=list)
    # Ids of items of a newer schema than this code's, exported as stored.
    newer_schema: list[str] = field(default_factory=list)
    # Users deleted between their page and the check of their guard: not exported.
    deleted_meanwhile: int = 0


async def estimated_user_count(client: Any, tables: TableNames) -> int | None:
    """DescribeTable's ItemCount of the users table (updated about every six hours), or None."""
    with translated("DescribeTable"):
        table = (await client.describe_table(TableName=tables.users))["Table"]
    count = table.get("ItemCount")
    return int(count) if count is not None else None


async def export_users(
    client: Any,
    tables: TableNames,
    write: Callable[[UserRecord], None],
    *,
    after_id: str | None = None,
    page_size: int | None = None,
) -> ExportReport:
    """Calls ``write`` for every user after ``after_id`` (None: all), in scan order."""
    report = ExportReport()
    request: dict[str, Any] = {"TableName": tables.users, "ConsistentRead": True}
    if page_size is not None:
        request["Limit"] = page_size
    if after_id is not None:
        request["ExclusiveStartKey"] = {"Id": {"S": after_id}}
    reads = asyncio.Semaphore(GUARD_READS_IN_FLIGHT)
    while True:
        with translated("Scan"):
            page = await client.scan(**request)
        records = await asyncio.gather(
            *(_record(client, tables, item, reads, report) for item in page.get("Items", []))
        )
        # Written in scan order, so the last line written is where a resumed export starts.
        for record in records:
            if record is not None:
                write(record)
                report.users += 1
        if "LastEvaluatedKey" not in page:
            return report
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


async def _record(
    client: Any, tables: TableNames, item: Item, reads: asyncio.Semaphore, report: ExportReport
) -> UserRecord | None:
    async with reads:
        for attempt in range(GUARD_CHECK_ATTEMPTS):
            if attempt:
                again = await _read_user(client, tables, item["Id"])
                if not again:
                    report.deleted_meanwhile += 1
                    return None
                if again == item:
                    break  # the user has not changed: its guard really is wrong
                item = again
            guard = guard_of(item)
            stored = await _read_guard(client, tables, guard["Email"])
            problem = _guard_problem(stored, guard)
            if problem is None:
                break
        if problem is not None:
            report.guard_problems.append((item["Id"]["S"], problem))
    if item_schema_version(item) > SCHEMA_VERSION:
        report.newer_schema.append(item["Id"]["S"])
        return UserRecord(user=item, guard=guard, guard_problem=problem)
    user = {k: v for k, v in upgrade_item(item).items() if k not in UNEXPORTED}
    if "Sessions" not in user:
        async with reads:
            user = {**user, "Sessions": await _sessions_of(client, tables, user)}
    return UserRecord(user=user, guard=guard, guard_problem=problem)


async def _sessions_of(client: Any, tables: TableNames, user: Item) -> Item:
    """The user's sessions of its current epoch, as the file holds them in the user item."""
    epoch = int(user["SessionEpoch"]["N"])
    request: dict[str, Any] = {
        "TableName": tables.sessions,
        "KeyConditionExpression": "#user = :user AND begins_with(#key, :epoch)",
        "ExpressionAttributeNames": {"#user": "UserId", "#key": "SessionKey"},
        "ExpressionAttributeValues": {
            ":user": user["Id"],
            ":epoch": {"S": session_prefix(epoch)},
        },
        "ConsistentRead": True,
    }
    sessions = []
    while True:
        with translated("Query"):
            response = await client.query(**request)
        sessions += [item_to_session(item) for item in response.get("Items", [])]
        if "LastEvaluatedKey" not in response:
            return {"L": [session_to_embedded(session) for session in sessions]}
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _guard_problem(stored: Item | None, expected: Item) -> str | None:
    if stored is None:
        return "missing"
    if stored.get("UserId") != expected["UserId"]:
        return "owned_by_other_user"
    return None


async def _read_guard(client: Any, tables: TableNames, email: Item) -> Item | None:
    with translated("GetItem"):
        response = await client.get_item(
            TableName=tables.emails, Key={"Email": email}, ConsistentRead=True
        )
    item: Item | None = response.get("Item")
    return item


async def _read_user(client: Any, tables: TableNames, user_id: Item) -> Item | None:
    with translated("GetItem"):
        response = await client.get_item(
            TableName=tables.users, Key={"Id": user_id}, ConsistentRead=True
        )
    item: Item | None = response.get("Item")
    return item
