"""Use cases reading the domain events: one user's events by page, and where a stream resumes."""

from __future__ import annotations

from dataclasses import dataclass

from domain.event_cursors import StreamCursor
from domain.events import RecordedEvent
from domain.pagination import EventPageTokenCodec
from domain.ports import EventLog
from domain.use_cases.accounts import DEFAULT_PAGE_SIZE, check_page_size
from domain.use_cases.validation import Violations
from domain.values import UserId

# A cursor is about 80 characters; anything far longer is refused before it is parsed.
MAX_CURSOR_LENGTH = 200


@dataclass(frozen=True)
class UserEventsPage:
    """One page of a user's events, and the token of the next page ("" when none follows)."""

    events: list[RecordedEvent]
    next_page_token: str


async def list_user_events(
    log: EventLog,
    page_tokens: EventPageTokenCodec,
    *,
    user_id: str,
    page_size: int,
    page_token: str,
) -> UserEventsPage:
    """The user's events after the page token's, in sequence order; none for an unknown id."""
    with Violations() as check:
        parsed_id = check.parse("user_id", UserId.parse, user_id)
        check_page_size(check, page_size)
        after = 0  # the page token is read only with the user it must be issued for
        if page_token and check.valid(parsed_id):
            after = check.parse(
                "page_token", lambda token: page_tokens.decode(token, parsed_id), page_token
            )
    limit = page_size or DEFAULT_PAGE_SIZE
    # One event more than asked tells whether another page exists: no empty last page.
    events = await log.user_events(parsed_id, after_sequence=after, limit=limit + 1)
    if len(events) <= limit:
        return UserEventsPage(events, "")
    page = events[:limit]
    return UserEventsPage(page, page_tokens.encode(parsed_id, page[-1].sequence))


def watch_position(*, after_cursor: str) -> StreamCursor | None:
    """Where a watch starts: after the event ``after_cursor`` names; None: the oldest retained."""
    if not after_cursor:
        return None
    with Violations() as check:
        if len(after_cursor) > MAX_CURSOR_LENGTH:
            check.add("after_cursor", f"must be at most {MAX_CURSOR_LENGTH} characters")
            check.raise_if_any()  # too long to be worth parsing
        cursor = check.parse("after_cursor", StreamCursor.parse, after_cursor)
    return cursor
