"""The position of an event in the service-wide stream: the cursor WatchEvents resumes from."""

from __future__ import annotations

import re
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
        """The UTC day of the event's recording: the stream partition it lies in."""
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
    """The stream partition an event recorded at ``recorded_at`` falls in: its UTC day."""
    return recorded_at.astimezone(UTC).date().isoformat()
