"""The outbox side of a user write: its pending domain events as Put items of the events table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from domain.event_cursors import STREAM_SHARDS
from domain.events import DomainEvent
from persistence.errors import Check, WriteCheck
from persistence.event_mapper import event_to_item

DEFAULT_RETENTION = timedelta(days=30)


@dataclass(frozen=True)
class PendingEvents:
    """Events of one user, to be stored as its sequence numbers ``first_sequence``, ... in
    ``table``, in the same transaction as the user write; kept ``retention`` after recording, and
    spread over ``stream_shards`` shards of a day in the stream index."""

    table: str
    user_id: str
    events: tuple[DomainEvent, ...]
    first_sequence: int
    retention: timedelta
    # The version the user write expects: a taken sequence number is reported against it.
    expected_version: int
    stream_shards: int = STREAM_SHARDS

    @property
    def last_sequence(self) -> int:
        return self.first_sequence + len(self.events) - 1

    def items(self, recorded_at: datetime) -> list[dict[str, Any]]:
        """One conditional Put per event; none can overwrite an event already stored."""
        expires_at = recorded_at + self.retention
        return [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": event_to_item(
                        event,
                        sequence=sequence,
                        recorded_at=recorded_at,
                        expires_at=expires_at,
                        stream_shards=self.stream_shards,
                    ),
                    "ConditionExpression": "attribute_not_exists(#seq)",
                    "ExpressionAttributeNames": {"#seq": "Seq"},
                }
            }
            for sequence, event in enumerate(self.events, start=self.first_sequence)
        ]

    def checks(self) -> list[WriteCheck]:
        """The condition of each item, in the order of ``items``."""
        check = WriteCheck(Check.EVENT_SEQ_FREE, self.expected_version, self.user_id)
        return [check] * len(self.events)
