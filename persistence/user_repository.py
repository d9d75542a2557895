"""The UserRepository port over DynamoDB: consistent reads, staged conditional writes, and the
user's pending domain events staged into the same transaction (the outbox)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from functools import partial
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from domain.event_cursors import STREAM_SHARDS
from domain.ports import StoredUserPage, UserRepository
from domain.user import User
from domain.values import Email, UserId
from persistence.batch_reads import BATCH_GET_MAX_KEYS, batch_get_items
from persistence.errors import Check, WriteCheck, error_code, to_storage_error, translated
from persistence.event_outbox import DEFAULT_RETENTION, PendingEvents
from persistence.legacy_sessions import LegacySessions
from persistence.schema import TableNames
from persistence.session_mapper import item_embedded_sessions
from persistence.single_write import WRITE_ID
from persistence.transaction import StagedWrite
from persistence.user_mapper import item_event_seq, item_revision, item_to_user, user_to_item

# Never a user's id (UserId.new makes version-4 UUIDs): the target of shadow_failed_login.
SHADOW_USER_ID = "00000000-0000-0000-0000-000000000000"
SHADOW_ITEM_BYTES = 2048


class DynamoUserRepository(UserRepository):
    """Users in the users table; email uniqueness held by guard items in the emails table; the
    events each write records, in the events table, numbered on from the user's EventSeq."""

    def __init__(
        self,
        client: Any,
        tables: TableNames,
        staged: list[StagedWrite],
        *,
        events_retention: timedelta = DEFAULT_RETENTION,
        events_stream_shards: int = STREAM_SHARDS,
        legacy_sessions: LegacySessions | None = None,
    ) -> None:
        super().__init__()
        self._legacy = legacy_sessions or LegacySessions()
        self._client = client
        self._tables = tables
        self._staged = staged
        self._events_retention = events_retention
        self._events_stream_shards = events_stream_shards
        # Revision of each user as read: every conditional write checks it (see schema).
        self._revisions: dict[str, int] = {}
        # EventSeq of each user as read: the number of the last event recorded for the user.
        self._event_seqs: dict[str, int] = {}

    async def _get_by_id(self, user_id: UserId) -> User | None:
        key = {"Id": {"S": user_id.value}}
        with translated("GetItem"):
            response = await self._client.get_item(
                TableName=self._tables.users, Key=key, ConsistentRead=True
            )
        item = response.get("Item")
        return self._read(item) if item else None

    async def _get_many(self, user_ids: list[UserId]) -> dict[UserId, User]:
        users: dict[UserId, User] = {}
        for start in range(0, len(user_ids), BATCH_GET_MAX_KEYS):
            chunk = user_ids[start : start + BATCH_GET_MAX_KEYS]
            keys = [{"Id": {"S": user_id.value}} for user_id in chunk]
            for item in await batch_get_items(self._client, self._tables.users, keys):
                user = self._read(item)
                users[user.id] = user
        return users

    async def _get_by_email(self, email: Email) -> User | None:
        # The guard table, read consistently, decides; the EmailIndex GSI may lag behind.
        key = {"Email": {"S": email.normalized}}
        with translated("GetItem"):
            response = await self._client.get_item(
                TableName=self._tables.emails, Key=key, ConsistentRead=True
            )
        guard = response.get("Item")
        if not guard:
            return None
        user = await self._get_by_id(UserId(guard["UserId"]["S"]))
        return user if user is not None and user.email.normalized == email.normalized else None

    async def shadow_failed_login(self) -> None:
        # The reads and the conditional write of counting a failure, aimed at the nil UUID,
        # which UserId never produces: the condition fails and nothing is written.
        key = {"Id": {"S": SHADOW_USER_ID}}
        with translated("GetItem"):
            await self._client.get_item(TableName=self._tables.users, Key=key, ConsistentRead=True)
        # A Put of about a user item's size, whose condition cannot hold: priced and timed like
        # the write of a failure count, while nothing lands.
        # It is one PutItem, as a failure count is (persistence.single_write).
        try:
            await self._client.put_item(
                TableName=self._tables.users,
                Item={
                    **key,
                    "Shadow": {"S": "-" * SHADOW_ITEM_BYTES},
                    WRITE_ID: {"S": str(uuid.uuid4())},  # as a failure count's PutItem carries
                },
                ConditionExpression="attribute_exists(#id)",
                ExpressionAttributeNames={"#id": "Id"},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except (ClientError, BotoCoreError) as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise to_storage_error(error, "PutItem") from error

    async def _list_page(self, limit: int, after: UserId | None) -> StoredUserPage:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {"TableName": self._tables.users, "ConsistentRead": True}
        if after is not None:
            request["ExclusiveStartKey"] = {"Id": {"S": after.value}}
        while True:
            # One item more than asked tells whether another page exists: no empty last page.
            # It is not mapped, only counted.
            with translated("Scan"):
                response = await self._client.scan(**request, Limit=limit + 1 - len(items))
            items.extend(response.get("Items", []))
            if len(items) > limit:
                users = [self._read(item) for item in items[:limit]]
                return StoredUserPage(users, users[-1].id)
            if "LastEvaluatedKey" not in response:
                return StoredUserPage([self._read(item) for item in items], None)
            # A scan page ends early at 1 MB: keep reading from where it stopped.
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    async def _add(self, user: User) -> None:
        events = self._pending_events(user, after_sequence=0)
        put_user = {
            "Put": {
                "TableName": self._tables.users,
                "Item": user_to_item(user, version=1, revision=1, event_seq=_last(events, 0)),
                "ConditionExpression": "attribute_not_exists(#id)",
                "ExpressionAttributeNames": {"#id": "Id"},
            }
        }
        # The guard goes first: if both conditions fail, the taken email is the answer.
        self._staged.append(
            StagedWrite(
                items=[self._put_guard(user), put_user],
                checks=[WriteCheck(Check.EMAIL_FREE), WriteCheck(Check.ID_FREE)],
                on_success=partial(self._landed, user, 1, 1, events),
                events=events,
            )
        )

    async def _update(self, user: User, previous_email: Email, *, visible: bool) -> None:
        revision = self._revisions[user.id.value]
        version = user.version + 1 if visible else user.version
        event_seq = self._event_seqs[user.id.value]
        events = self._pending_events(user, after_sequence=event_seq)
        put_user = {
            "Put": {
                "TableName": self._tables.users,
                "Item": user_to_item(
                    user,
                    version=version,
                    revision=revision + 1,
                    event_seq=_last(events, event_seq),
                ),
                **_revision_condition(revision),
            }
        }
        items = [put_user]
        checks = [WriteCheck(Check.VERSION, expected_version=user.version, user_id=user.id.value)]
        if user.email.normalized != previous_email.normalized:
            items += [self._delete_guard(previous_email, user.id), self._put_guard(user)]
            checks += [WriteCheck(Check.GUARD_OWNED), WriteCheck(Check.EMAIL_FREE)]
        landed = partial(self._landed, user, version, revision + 1, events)
        self._staged.append(StagedWrite(items, checks, landed, events))
        self._legacy.written(user)

    async def _delete(self, user: User, stored_email: Email) -> None:
        delete_user = {
            "Delete": {
                "TableName": self._tables.users,
                "Key": {"Id": {"S": user.id.value}},
                **_revision_condition(self._revisions[user.id.value]),
            }
        }
        check = WriteCheck(Check.VERSION, user.version, user.id.value, missing_is_not_found=True)
        # The events (UserDeleted) outlive the user item; TTL ages them out like any other.
        events = self._pending_events(user, after_sequence=self._event_seqs[user.id.value])
        self._staged.append(
            StagedWrite(
                items=[delete_user, self._delete_guard(stored_email, user.id)],
                checks=[check, WriteCheck(Check.GUARD_OWNED)],
                on_success=partial(self._landed_events, user, events),
                events=events,
            )
        )

    def _read(self, item: dict[str, Any]) -> User:
        user = item_to_user(item)
        self._legacy.read(user.id.value, item_embedded_sessions(item))
        self._revisions[user.id.value] = item_revision(item)
        self._event_seqs[user.id.value] = item_event_seq(item)
        return user

    def _landed(
        self, user: User, version: int, revision: int, events: PendingEvents | None
    ) -> None:
        user.version, user.touched = version, False
        self._revisions[user.id.value] = revision
        self._landed_events(user, events)

    def _landed_events(self, user: User, events: PendingEvents | None) -> None:
        if events is None:
            return
        # Only those staged: any recorded after staging are still pending.
        del user.events[: len(events.events)]
        self._event_seqs[user.id.value] = events.last_sequence

    def _pending_events(self, user: User, *, after_sequence: int) -> PendingEvents | None:
        """The user's events recorded since it was read, numbered from ``after_sequence + 1``."""
        if not user.events:
            return None
        return PendingEvents(
            table=self._tables.events,
            user_id=user.id.value,
            events=tuple(user.events),
            first_sequence=after_sequence + 1,
            retention=self._events_retention,
            expected_version=user.version,
            stream_shards=self._events_stream_shards,
        )

    def _put_guard(self, user: User) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._tables.emails,
                "Item": {"Email": {"S": user.email.normalized}, "UserId": {"S": user.id.value}},
                "ConditionExpression": "attribute_not_exists(#email)",
                "ExpressionAttributeNames": {"#email": "Email"},
            }
        }

    def _delete_guard(self, email: Email, owner: UserId) -> dict[str, Any]:
        # A missing guard is tolerated (as by the fake); another user's guard is never removed.
        return {
            "Delete": {
                "TableName": self._tables.emails,
                "Key": {"Email": {"S": email.normalized}},
                "ConditionExpression": "attribute_not_exists(#email) OR #owner = :owner",
                "ExpressionAttributeNames": {"#email": "Email", "#owner": "UserId"},
                "ExpressionAttributeValues": {":owner": {"S": owner.value}},
            }
        }


def _last(events: PendingEvents | None, event_seq: int) -> int:
    """The user's EventSeq once ``events`` have landed."""
    return event_seq if events is None else events.last_sequence


def _revision_condition(expected: int) -> dict[str, Any]:
    # Items written before Revision existed carry only Version, which then counted every write.
    # ALL_OLD returns the stored item on failure, so a conflict can report the stored version.
    return {
        "ConditionExpression": (
            "#revision = :expected OR (attribute_not_exists(#revision) AND #version = :expected)"
        ),
        "ExpressionAttributeNames": {"#revision": "Revision", "#version": "Version"},
        "ExpressionAttributeValues": {":expected": {"N": str(expected)}},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
