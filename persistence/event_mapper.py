"""Maps a domain event to its item in the events table and back; see persistence.schema."""

from __future__ import annotations

import dataclasses
import enum
import json
from datetime import UTC, datetime
from typing import Any

from domain import events as domain_events
from domain.errors import StorageError
from domain.event_cursors import STREAM_SHARDS, stream_key, stream_partition_of
from domain.events import EVENT_TYPES, DomainEvent, RecordedEvent
from persistence.schema import EVENT_SCHEMA_VERSION, EVENTS_TTL_ATTRIBUTE

Item = dict[str, Any]

_COMMON_FIELDS = frozenset({"user_id", "occurred_at"})


def event_to_item(
    event: DomainEvent,
    *,
    sequence: int,
    recorded_at: datetime,
    expires_at: datetime,
    stream_shards: int = STREAM_SHARDS,
) -> Item:
    """The item that stores ``event`` as its user's ``sequence``-th, written at ``recorded_at``,
    in one of ``stream_shards`` shards of its day in the stream index."""
    if sequence < 1:
        raise ValueError("event sequence numbers start at 1")
    data = {
        field.name: _plain(getattr(event, field.name))
        for field in dataclasses.fields(event)
        if field.name not in _COMMON_FIELDS
    }
    return {
        "UserId": {"S": event.user_id},
        "Seq": {"N": str(sequence)},
        "Type": {"S": type(event).__name__},
        "OccurredAt": {"S": _iso(event.occurred_at)},
        "Data": {"S": json.dumps(data, separators=(",", ":"), sort_keys=True)},
        "RecordedAt": {"S": _iso(recorded_at)},
        "StreamDay": {"S": stream_partition_of(recorded_at, event.user_id, stream_shards)},
        "StreamKey": {"S": stream_key(recorded_at, event.user_id, sequence)},
        EVENTS_TTL_ATTRIBUTE: {"N": str(int(expires_at.timestamp()))},
        "SchemaVersion": {"N": str(EVENT_SCHEMA_VERSION)},
    }


def item_to_recorded_event(item: Item) -> RecordedEvent:
    """The event an item stores; StorageError if it is not an event item this code understands."""
    try:
        if int(item["SchemaVersion"]["N"]) != EVENT_SCHEMA_VERSION:
            raise ValueError(f"unknown event schema version {item['SchemaVersion']['N']}")
        kind = EVENT_TYPES[item["Type"]["S"]]
        data = json.loads(item["Data"]["S"])
        if not isinstance(data, dict):
            raise TypeError("event data is not a JSON object")
        fields = {
            field.name: _typed(field.type, data[field.name])
            for field in dataclasses.fields(kind)
            if field.name not in _COMMON_FIELDS
        }
        event = kind(
            user_id=item["UserId"]["S"],
            occurred_at=_parse_iso(item["OccurredAt"]["S"]),
            **fields,
        )
        return RecordedEvent(
            event=event,
            sequence=int(item["Seq"]["N"]),
            recorded_at=_parse_iso(item["RecordedAt"]["S"]),
            cursor=item["StreamKey"]["S"],
        )
    except (KeyError, TypeError, ValueError) as error:
        where = f"{item.get('UserId', {}).get('S', '?')}/{item.get('Seq', {}).get('N', '?')}"
        raise StorageError(f"stored event {where} is malformed ({type(error).__name__})") from error


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _typed(annotation: object, value: Any) -> Any:
    # Field annotations are strings (postponed evaluation): the names used in domain.events.
    if annotation == "datetime":
        return _parse_iso(value)
    if annotation == "str":
        if not isinstance(value, str):
            raise TypeError("expected a string")
        return value
    if annotation == "str | None":
        if value is not None and not isinstance(value, str):
            raise TypeError("expected a string or null")
        return value
    if annotation == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError("expected an integer")
        return value
    kind = _ENUMS.get(str(annotation))
    if kind is None:
        raise TypeError(f"no mapping for field type {annotation}")
    return kind(value)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("refusing to store a naive datetime; the clock must give aware UTC times")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("stored time has no offset")
    return moment.astimezone(UTC)


# The enumerations event fields use, by the name their annotations give.
_ENUMS: dict[str, type[enum.Enum]] = {
    name: value
    for name, value in vars(domain_events).items()
    if isinstance(value, type) and issubclass(value, enum.Enum)
}
