"""The position of an event in the service-wide stream: the cursor WatchEvents resumes from."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime

from domain.errors import InvalidValue
from domain.values import UserId

# <recorded at, ISO-8601 UTC with microseconds>#<user id>#<sequence, 12 digits>: the strings
# sort in stream order because every part has a fixed width (stream_key spells them).
_CURSOR = re.compile(
    r"(?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00)#(?P<user>[0-9a-f-]{36})#(?P<seq>\d{12})"
)
SEQ_DIGITS = 12
_AFTER_EVERY_USER = "~"  # sorts after every user id (hex digits and dashes)
_INVALID = "is not a cursor of this service: pass UserEvent.cursor as it was received"


@dataclass(frozen=True, order=True)
class StreamCursor:
    """A place in the stream: just after the event whose cursor is ``key``."""

    key: str
    recorded_at: datetime

    @classmethod
    def parse(cls, raw: str) -> StreamCursor:
        """The cursor ``raw`` spells; InvalidValue unless it is exactly one the service issued."""
        match = _CURSOR.fullmatch(raw)
        if match is None or int(match["seq"]) < 1:
            raise InvalidValue(_INVALID)
        try:
            recorded_at = datetime.fromisoformat(match["at"]).astimezone(UTC)
            user_id = UserId.parse(match["user"])
        except (ValueError, InvalidValue):
            raise InvalidValue(_INVALID) from None
        if user_id.value != match["user"]:
            raise InvalidValue(_INVALID)
        return cls(key=raw, recorded_at=recorded_at)

    @property
    def day(self) -> date:
        """The UTC day of the event's recording: its event lies in one of that day's shards."""
        return self.recorded_at.date()


def stream_key(recorded_at: datetime, user_id: str, sequence: int) -> str:
    """The event's place in the service-wide stream; strings sort in stream order."""
    if recorded_at.tzinfo is None:
        raise ValueError("refusing to store a naive datetime; the clock must give aware UTC times")
    at = recorded_at.astimezone(UTC).isoformat(timespec="microseconds")
    return f"{at}#{user_id}#{sequence:0{SEQ_DIGITS}d}"


def stream_end(at: datetime) -> str:
    """A key after that of every event recorded at or before ``at``, and before every later one."""
    return stream_key(at, _AFTER_EVERY_USER, 0)


def stream_day(recorded_at: datetime) -> str:
    """The UTC day an event recorded at ``recorded_at`` falls in."""
    return recorded_at.astimezone(UTC).date().isoformat()


# The stream index's partitions per day that readers read: writers may use any number from 1 to
# this (USER_SERVICE_EVENTS_STREAM_SHARDS), and change it at any time, because readers read all.
STREAM_SHARDS = 8


def stream_shard(user_id: str, shards: int) -> int:
    """The shard, 0 to ``shards - 1``, that a user's events go to when written over ``shards``:
    always the same one for a user, so that a user's events keep their order within a shard."""
    if not 1 <= shards <= STREAM_SHARDS:
        raise ValueError(f"the stream has 1 to {STREAM_SHARDS} shards, not {shards}")
    return zlib.crc32(user_id.encode("utf-8")) % shards


def stream_partition(day: date, shard: int) -> str:
    """The stream index's partition key of ``shard`` of ``day``: the day itself for shard 0 (as
    every event written before the stream had shards), ``<day>#<shard>`` for the others."""
    if not 0 <= shard < STREAM_SHARDS:
        raise ValueError(f"a stream shard is 0 to {STREAM_SHARDS - 1}, not {shard}")
    return day.isoformat() if shard == 0 else f"{day.isoformat()}#{shard}"


def stream_partition_of(recorded_at: datetime, user_id: str, shards: int) -> str:
    """The partition key of a user's event recorded at ``recorded_at``, written over ``shards``."""
    day = recorded_at.astimezone(UTC).date()
    return stream_partition(day, stream_shard(user_id, shards))
