"""Builders of User aggregates for persistence tests, with aware UTC times and optional sessions."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.use_cases.sessions import SessionTokens, SignInChallenged
from domain.user import User
from domain.values import Email, PasswordReset, PersonName, Session, UserId

T0 = datetime(2026, 11, 26, 9, 30, 15, 123456, tzinfo=UTC)


def new_user(
    email: str = "ada.lovelace@example.com", *, first_name: str = "Ada", last_name: str = "Lovelace"
) -> User:
    """A freshly registered user (version 0, not stored)."""
    return User.register(
        user_id=UserId.new(),
        email=Email.parse(email),
        first_name=PersonName.parse(first_name),
        last_name=PersonName.parse(last_name),
        password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        now=T0,
    )


def session(token_hash: str, *, minutes: int = 0, previous: str | None = None) -> Session:
    """A session signed in ``minutes`` after T0, valid for 30 days; optionally rotated once."""
    created = T0 + timedelta(minutes=minutes)
    return Session(
        session_id=f"session-{token_hash}",
        token_hash=token_hash,
        created_at=created,
        expires_at=created + timedelta(days=30),
        last_used_at=created + timedelta(seconds=1 if previous else 0),
        previous_token_hash=previous,
        rotated_at=created + timedelta(seconds=1) if previous else None,
        retired_token_hashes=("r1" + token_hash, "r2" + token_hash) if previous else (),
    )


def password_reset(token_hash: str) -> PasswordReset:
    return PasswordReset(token_hash=token_hash, requested_at=T0, expires_at=T0 + timedelta(hours=1))


def state_of(user: User) -> dict[str, Any]:
    """Every stored field of a user (not its pending events), for comparing two reads."""
    fields = dataclasses.fields(user)
    return {field.name: getattr(user, field.name) for field in fields if field.name != "events"}


def session_tokens(result: SessionTokens | SignInChallenged) -> SessionTokens:
    """The tokens of a sign-in that needed no second factor (the test fails on a challenge)."""
    assert isinstance(result, SessionTokens), "the sign-in asked for a second factor"
    return result
