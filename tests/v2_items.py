"""User items as schema version 2 wrote them (sessions held in the item), for tests of the move
of those sessions to items of their own (by the user's next write, or by migrate)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from domain.secret_tokens import IssuedToken, issue_token
from domain.user import User
from domain.values import Session
from persistence.session_mapper import session_to_embedded
from persistence.user_mapper import user_to_item


def v2_session(user: User, at: datetime, name: str) -> tuple[Session, IssuedToken]:
    """A session as version 2 opened it, with its refresh token of the older form."""
    token = issue_token(user.id)  # <user id>.<secret>: no session id
    session = Session(
        session_id=f"00000000-0000-4000-8000-{name:0>12}",
        token_hash=token.token_hash,
        created_at=at,
        expires_at=at + timedelta(days=30),
        last_used_at=at,
    )
    return session, token


def v2_item(user: User, sessions: list[Session], *, revision: int = 1) -> dict[str, Any]:
    """The item version 2 wrote for ``user`` holding ``sessions`` (no SessionEpoch)."""
    item = user_to_item(user, version=user.version or 1, revision=revision, event_seq=0)
    del item["SessionEpoch"]
    item["SchemaVersion"] = {"N": "2"}
    item["Sessions"] = {"L": [session_to_embedded(s) for s in sessions]}
    return item
