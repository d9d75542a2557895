"""Writes one exported user and its email guard into the tables, never over a newer version.

One TransactWriteItems a user, so a user never lands without its guard nor a guard without its
user. The first attempt assumes the user is new: Put the user with ``attribute_not_exists(Id)``
and the guard with ``attribute_not_exists(Email) OR UserId = :id``. When the user exists, the
cancellation reasons carry the stored item (``ReturnValuesOnConditionCheckFailure``), which
decides: the same revision is already there, a higher one (or a newer schema) is kept; an older
one is replaced by a second transaction conditional on exactly that stored revision, which also
deletes the stored user's old guard when the email differs (else that guard would lock the old
address forever). A guard that names another user cancels the whole user: a conflict to settle
by hand. Re-running an import therefore changes nothing. The sessions a file's user item holds
go to the sessions table in the same transaction, after those items (reasons[3:]).

Event numbers: the item's ``EventSeq`` says where the user's next domain event is numbered from.
The target's events table may already hold events of this id with higher numbers (the user lived
there before: deleted, then imported again from an older file); such numbers are taken, and
every later write of the user would be refused. So the imported ``EventSeq`` is raised to the
highest number stored there (one Query of the id's last event).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from datatools.conflict_retry import retrying_conflicts
from datatools.file_format import guard_of
from domain.errors import StorageUnavailable
from domain.policies import SessionPolicy
from persistence.errors import cancellation_reasons, to_storage_error
from persistence.item_upgrades import item_schema_version, upgrade_item
from persistence.schema import SCHEMA_VERSION, TableNames
from persistence.session_mapper import item_embedded_sessions, session_to_item
from persistence.transaction import new_request_token
from persistence.user_mapper import time_value

Item = dict[str, Any]

# Transactions that found the target's user changed since the last look, before giving up on it
# (each may itself be sent several times while concurrent writes cancel it: conflict_retry).
IMPORT_ATTEMPTS = 5


class Outcome(enum.Enum):
    """What importing one user did."""

    CREATED = "created"
    REPLACED_OLDER = "replaced an older revision"
    ALREADY_PRESENT = "already present at the same revision"
    TARGET_NEWER = "the target holds a newer revision; kept"
    TARGET_NEWER_SCHEMA = "the target holds an item of a newer schema; kept"
    EMAIL_TAKEN = "the email belongs to another user in the target; not imported"

    @property
    def wrote(self) -> bool:
        return self in {Outcome.CREATED, Outcome.REPLACED_OLDER}

    @property
    def is_conflict(self) -> bool:
        return self is Outcome.EMAIL_TAKEN


@dataclass(frozen=True)
class ImportResult:
    """The outcome for one user, and the id of the user who holds its email, if another."""

    outcome: Outcome
    email_owner: str | None = None


@dataclass(frozen=True)
class _Stored:
    """The target's user item that the next attempt replaces."""

    revision: int
    email: str
    drop_old_guard: bool = True


async def import_user(
    client: Any,
    tables: TableNames,
    item: Item,
    *,
    session_idle_lifetime: timedelta = SessionPolicy.idle_lifetime,
) -> ImportResult:
    """Writes ``item`` (upgraded to the current schema) and its guard, or says why not.

    The sessions the item holds (``Sessions``) are written as items of the sessions table in the
    same transaction (their ExpireAt set by ``session_idle_lifetime``), and the user item is
    written without them. ValueError for an item of a newer schema than this code's (nothing is
    written).
    """
    item = upgrade_item(item)
    sessions = [
        {"Put": {"TableName": tables.sessions, "Item": session_item}}
        for session_item in (
            session_to_item(item["Id"]["S"], session, idle_lifetime=session_idle_lifetime)
            for session in item_embedded_sessions(item)
        )
    ]
    item = {k: v for k, v in item.items() if k != "Sessions"}
    user_id = item["Id"]["S"]
    revision = int(item["Revision"]["N"])
    taken = await _last_event_number(client, tables, user_id)
    if taken > int(item["EventSeq"]["N"]):
        item = {**item, "EventSeq": {"N": str(taken)}}
    stored: _Stored | None = None
    for _ in range(IMPORT_ATTEMPTS):
        items = _transaction(tables, item, stored) + sessions
        try:
            await retrying_conflicts(partial(_transact, client, items), f"importing user {user_id}")
            return ImportResult(Outcome.CREATED if stored is None else Outcome.REPLACED_OLDER)
        except (ClientError, BotoCoreError) as error:
            reasons = cancellation_reasons(error)
            if not reasons:
                raise to_storage_error(error, "TransactWriteItems") from error
            user_reason, guard_reason = reasons[0], reasons[1]
            if _failed(user_reason):
                old = user_reason.get("Item")
                if old is None:
                    stored = None  # deleted since we saw it: it is new again
                    continue
                if item_schema_version(old) > SCHEMA_VERSION:
                    return ImportResult(Outcome.TARGET_NEWER_SCHEMA)
                old_revision = int(upgrade_item(old)["Revision"]["N"])
                if old_revision == revision:
                    return ImportResult(Outcome.ALREADY_PRESENT)
                if old_revision > revision:
                    return ImportResult(Outcome.TARGET_NEWER)
                stored = _Stored(old_revision, old["EmailIndex"]["S"])
                continue
            if _failed(guard_reason):
                owner = (guard_reason.get("Item") or {}).get("UserId", {}).get("S")
                return ImportResult(Outcome.EMAIL_TAKEN, email_owner=owner)
            if len(reasons) > 2 and _failed(reasons[2]) and stored is not None:
                # The stored user's old guard names someone else: not ours to delete.
                stored = _Stored(stored.revision, stored.email, drop_old_guard=False)
                continue
            raise to_storage_error(error, "TransactWriteItems") from error
    raise StorageUnavailable(f"user {user_id} kept changing in the target; import it again")


def marked_verified(item: Item, verified_at: datetime) -> Item:
    """``item`` (upgraded to the current schema) with a verified address: verified at
    ``verified_at`` unless it was already, and without a pending verification (void once
    verified). Its revision stays the file's, so importing it again still finds it present; no
    EmailVerified event is recorded (an import records no events)."""
    item = {k: v for k, v in upgrade_item(item).items() if k != "EmailVerification"}
    if not item.get("EmailVerified", {}).get("BOOL", False):
        item["EmailVerified"] = {"BOOL": True}
        item["EmailVerifiedAt"] = time_value(verified_at)
    return item


async def _last_event_number(client: Any, tables: TableNames, user_id: str) -> int:
    """The highest event number the target's events table holds for ``user_id`` (0: none)."""
    try:
        response = await client.query(
            TableName=tables.events,
            KeyConditionExpression="#user = :id",
            ExpressionAttributeNames={"#user": "UserId", "#seq": "Seq"},
            ExpressionAttributeValues={":id": {"S": user_id}},
            ProjectionExpression="#seq",
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
    except (ClientError, BotoCoreError) as error:
        raise to_storage_error(error, "Query") from error
    items = response.get("Items", [])
    return int(items[0]["Seq"]["N"]) if items else 0


async def _transact(client: Any, items: list[Item]) -> None:
    # A new token each time: a cancelled transaction is definite, and this is a new attempt.
    await client.transact_write_items(TransactItems=items, ClientRequestToken=new_request_token())


def _failed(reason: dict[str, Any]) -> bool:
    return reason.get("Code") == "ConditionalCheckFailed"


def _transaction(tables: TableNames, item: Item, stored: _Stored | None) -> list[Item]:
    # Order matters: reasons[0] is the user's, reasons[1] the guard's, reasons[2] the old guard's.
    user_id = item["Id"]
    guard = guard_of(item)
    if stored is None:
        condition: dict[str, Any] = {
            "ConditionExpression": "attribute_not_exists(#id)",
            "ExpressionAttributeNames": {"#id": "Id"},
        }
    else:
        condition = {
            "ConditionExpression": (
                "#revision = :stored OR (attribute_not_exists(#revision) AND #version = :stored)"
            ),
            "ExpressionAttributeNames": {"#revision": "Revision", "#version": "Version"},
            "ExpressionAttributeValues": {":stored": {"N": str(stored.revision)}},
        }
    items: list[Item] = [
        {
            "Put": {
                "TableName": tables.users,
                "Item": item,
                **condition,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
        {
            "Put": {
                "TableName": tables.emails,
                "Item": guard,
                "ConditionExpression": "attribute_not_exists(#email) OR #owner = :id",
                "ExpressionAttributeNames": {"#email": "Email", "#owner": "UserId"},
                "ExpressionAttributeValues": {":id": user_id},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
    ]
    if stored is not None and stored.drop_old_guard and stored.email != guard["Email"]["S"]:
        items.append(
            {
                "Delete": {
                    "TableName": tables.emails,
                    "Key": {"Email": {"S": stored.email}},
                    "ConditionExpression": "attribute_not_exists(#email) OR #owner = :id",
                    "ExpressionAttributeNames": {"#email": "Email", "#owner": "UserId"},
                    "ExpressionAttributeValues": {":id": user_id},
                }
            }
        )
    return items
