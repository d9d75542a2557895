"""The EventLog port over the events table: a user's events by key, the stream by its index."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from domain.event_cursors import stream_end, stream_partition
from domain.events import RecordedEvent
from domain.ports import EventLog
from domain.values import UserId
from persistence.errors import translated
from persistence.event_mapper import item_to_recorded_event
from persistence.schema import EVENT_STREAM_INDEX, TableNames


class DynamoEventStore(EventLog):
    """Reads the ``UserEvents`` table: Query on UserId (consistent), Query on ``EventStream``
    (one shard of a day per Query; server.stream_reader merges them)."""

    def __init__(self, client: Any, tables: TableNames) -> None:
        self._client = client
        self._tables = tables

    async def user_events(
        self, user_id: UserId, *, after_sequence: int, limit: int
    ) -> list[RecordedEvent]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        request = {
            "TableName": self._tables.events,
            "KeyConditionExpression": "#user = :user AND #seq > :after",
            "ExpressionAttributeNames": {"#user": "UserId", "#seq": "Seq"},
            "ExpressionAttributeValues": {
                ":user": {"S": user_id.value},
                ":after": {"N": str(after_sequence)},
            },
            "ConsistentRead": True,
        }
        return [item_to_recorded_event(item) for item in await self._query(request, limit)]

    async def stream_events(
        self, day: date, *, shard: int, after: str | None, until: datetime, limit: int
    ) -> list[RecordedEvent]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        # Every stream key of a day starts with the day, so the day itself sorts before them all.
        # (The partition key of a shard is <day>#<shard>, but its stream keys are as in shard 0.)
        low = after if after is not None else day.isoformat()
        high = stream_end(until)
        if low >= high:
            return []  # DynamoDB refuses a BETWEEN whose bounds are the wrong way round
        request = {
            "TableName": self._tables.events,
            "IndexName": EVENT_STREAM_INDEX,
            "KeyConditionExpression": "#day = :day AND #key BETWEEN :low AND :high",
            "ExpressionAttributeNames": {"#day": "StreamDay", "#key": "StreamKey"},
            "ExpressionAttributeValues": {
                ":day": {"S": stream_partition(day, shard)},
                ":low": {"S": low},
                ":high": {"S": high},
            },
        }
        # BETWEEN takes its bounds in: the event at ``after`` itself comes back, and is dropped.
        items = await self._query(request, limit + 1)
        if items and after is not None and items[0]["StreamKey"]["S"] == after:
            items = items[1:]
        return [item_to_recorded_event(item) for item in items[:limit]]

    async def _query(self, request: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` items of the query, in key order, over as many pages as it takes."""
        items: list[dict[str, Any]] = []
        while True:
            with translated("Query"):
                response = await self._client.query(**request, Limit=limit - len(items))
            items.extend(response.get("Items", []))
            if len(items) >= limit or "LastEvaluatedKey" not in response:
                return items
            # A page ends early at 1 MB: keep reading from where it stopped.
            request = {**request, "ExclusiveStartKey": response["LastEvaluatedKey"]}
