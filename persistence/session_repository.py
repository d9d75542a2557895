"""The SessionRepository port over DynamoDB: one item per session, keyed by user and
``<epoch>#<session id>``; writes staged into the unit of work's transaction."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from domain.ports import SessionRepository
from domain.user import User
from domain.values import Session
from persistence.errors import Check, WriteCheck, translated
from persistence.legacy_sessions import LegacySessions
from persistence.schema import TableNames, session_key, session_prefix
from persistence.session_mapper import item_to_session, session_to_item
from persistence.transaction import StagedWrite


class DynamoSessionRepository(SessionRepository):
    """Sessions in the sessions table, read strongly consistent; those a version 2 user item
    still holds (``legacy``) are read from it and moved by the user's next write."""

    def __init__(
        self,
        client: Any,
        tables: TableNames,
        staged: list[StagedWrite],
        legacy: LegacySessions,
        *,
        idle_lifetime: timedelta,
    ) -> None:
        self._client = client
        self._table = tables.sessions
        self._staged = staged
        self._legacy = legacy
        self._idle_lifetime = idle_lifetime

    async def current(self, user: User) -> list[Session]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#user = :user AND begins_with(#key, :epoch)",
            "ExpressionAttributeNames": {"#user": "UserId", "#key": "SessionKey"},
            "ExpressionAttributeValues": {
                ":user": {"S": user.id.value},
                ":epoch": {"S": session_prefix(user.session_epoch)},
            },
            "ConsistentRead": True,
        }
        items: list[dict[str, Any]] = []
        while True:
            with translated("Query"):
                response = await self._client.query(**request)
            items += response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return [item_to_session(item) for item in items] + self._legacy.of(user)

    async def get(self, user: User, session_id: str) -> Session | None:
        held = self._legacy.find(user, session_id)
        if held is not None:
            return held
        with translated("GetItem"):
            response = await self._client.get_item(
                TableName=self._table,
                Key=self._key(user, user.session_epoch, session_id),
                ConsistentRead=True,
            )
        item = response.get("Item")
        return item_to_session(item) if item else None

    async def add(self, user: User, session: Session) -> None:
        self._stage(self._put(user, session, _NEW), Check.SESSION_FREE)

    async def remove(self, user: User, session: Session) -> None:
        if self._legacy.take(user, session.session_id):
            return  # nothing is stored but in the user item, which its write rewrites
        self._stage(self._delete(user, session), Check.SESSION_WRITE)

    async def rotate(self, user: User, before: Session, after: Session) -> None:
        if self._legacy.take(user, before.session_id):
            self._stage(self._put(user, after, None), Check.SESSION_WRITE)
            return
        self._stage(self._put(user, after, _holding(before)), Check.SESSION_TOKEN)

    async def move(self, user: User, before: Session, after: Session) -> None:
        if not self._legacy.take(user, before.session_id):
            # Only while it still holds the token read: a refresh landing in between would
            # otherwise be undone by the Put of the token as read (the use case reads again).
            delete = self._delete(user, before)
            delete["Delete"].update(_holding(before))
            self._stage(delete, Check.SESSION_TOKEN)
        self._stage(self._put(user, after, _NEW), Check.SESSION_FREE)

    def stage_moved(self, user: User, sessions: list[Session]) -> None:
        """Put the sessions a version 2 user item held as items (the user's write drops them)."""
        for session in sessions:
            self._stage(self._put(user, session, _NEW), Check.SESSION_FREE)

    def _stage(self, item: dict[str, Any], check: Check) -> None:
        self._staged.append(StagedWrite(items=[item], checks=[WriteCheck(check)]))

    def _put(
        self, user: User, session: Session, condition: dict[str, Any] | None
    ) -> dict[str, Any]:
        item = session_to_item(user.id.value, session, idle_lifetime=self._idle_lifetime)
        return {"Put": {"TableName": self._table, "Item": item, **(condition or {})}}

    def _delete(self, user: User, session: Session) -> dict[str, Any]:
        key = self._key(user, session.epoch, session.session_id)
        return {"Delete": {"TableName": self._table, "Key": key}}

    @staticmethod
    def _key(user: User, epoch: int, session_id: str) -> dict[str, Any]:
        return {"UserId": {"S": user.id.value}, "SessionKey": {"S": session_key(epoch, session_id)}}


def _holding(session: Session) -> dict[str, Any]:
    """The condition that the stored session still holds the token it held when read."""
    return {
        "ConditionExpression": "#token = :held",
        "ExpressionAttributeNames": {"#token": "TokenHash"},
        "ExpressionAttributeValues": {":held": {"S": session.token_hash}},
    }


# A new session's item must not exist yet (a session id is a fresh UUID: never in practice).
_NEW = {
    "ConditionExpression": "attribute_not_exists(#key)",
    "ExpressionAttributeNames": {"#key": "SessionKey"},
}
