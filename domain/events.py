"""Domain events the User aggregate records as it changes; they never carry secrets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class DomainEvent:
    """Something that happened to one user, at one instant."""

    user_id: str
    occurred_at: datetime


@dataclass(frozen=True)
class UserRegistered(DomainEvent):
    """A new account was created."""

    email: str


@dataclass(frozen=True)
class ProfileUpdated(DomainEvent):
    """The user's names changed."""

    first_name: str
    last_name: str


@dataclass(frozen=True)
class EmailChanged(DomainEvent):
    """The user's email changed; the old address is free again."""

    old_email: str
    new_email: str


@dataclass(frozen=True)
class UserDeleted(DomainEvent):
    """The account was deleted; its email is free again."""
