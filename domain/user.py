"""The User aggregate root: the one place that decides how an account may change."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from domain.events import DomainEvent, EmailChanged, ProfileUpdated, UserDeleted, UserRegistered
from domain.values import Email, PasswordReset, PersonName, RefreshToken, UserId


class UserStatus(enum.Enum):
    """Lifecycle state of an account."""

    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"


@dataclass(eq=False)
class User:
    """A user account.

    ``version`` is the stored version this object reflects: 0 until first saved.
    The persistence layer checks it on every write and increments it once the
    write has landed; domain methods never touch it.
    """

    id: UserId
    email: Email
    first_name: PersonName
    last_name: PersonName
    password_hash: str = field(repr=False)
    status: UserStatus
    created_at: datetime
    updated_at: datetime
    version: int = 0
    refresh_tokens: tuple[RefreshToken, ...] = ()
    password_reset: PasswordReset | None = None
    events: list[DomainEvent] = field(default_factory=list, repr=False)

    @classmethod
    def register(
        cls,
        *,
        user_id: UserId,
        email: Email,
        first_name: PersonName,
        last_name: PersonName,
        password_hash: str,
        now: datetime,
    ) -> User:
        user = cls(
            id=user_id,
            email=email,
            first_name=first_name,
            last_name=last_name,
            password_hash=password_hash,
            status=UserStatus.ACTIVE,
            created_at=now,
            updated_at=now,
        )
        user.events.append(UserRegistered(user_id=user_id.value, occurred_at=now, email=email.value))
        return user

    def update_profile(self, *, first_name: PersonName | None, last_name: PersonName | None, now: datetime) -> None:
        new_first = first_name or self.first_name
        new_last = last_name or self.last_name
        if (new_first, new_last) == (self.first_name, self.last_name):
            return
        self.first_name, self.last_name = new_first, new_last
        self.updated_at = now
        self.events.append(
            ProfileUpdated(user_id=self.id.value, occurred_at=now, first_name=new_first.value, last_name=new_last.value)
        )

    def change_email(self, email: Email, *, now: datetime) -> None:
        if email.value == self.email.value:
            return
        old = self.email
        self.email = email
        self.updated_at = now
        self.events.append(EmailChanged(user_id=self.id.value, occurred_at=now, old_email=old.value, new_email=email.value))

    def mark_deleted(self, *, now: datetime) -> None:
        self.events.append(UserDeleted(user_id=self.id.value, occurred_at=now))

    def current_refresh_token(self) -> RefreshToken | None:
        """The newest refresh token not revoked, if any: the one RefreshTokenIndex points at."""
        live = [token for token in self.refresh_tokens if token.revoked_at is None]
        return max(live, key=lambda token: token.created_at, default=None)
