"""One world for outbox tests over moto: real use cases on DynamoUnitOfWork, and raw reads of
what landed (the user item, its events) straight from the tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from domain.events import DomainEvent, RecordedEvent
from domain.policies import AuthPolicy
from domain.ports import LockNotices, VerificationMailing
from domain.use_cases import accounts, verification
from domain.use_cases.sessions import SessionTokens, authenticate, refresh_session
from domain.user import User
from domain.values import UserId
from persistence.event_mapper import item_to_recorded_event
from persistence.schema import TableNames
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import T0, session_tokens
from tests.fakes import (
    DeferredTasks,
    FakeAccessTokenIssuer,
    FakePasswordHasher,
    FixedClock,
    RecordingNotifier,
    unsent_verification_mailing,
)

PASSWORD = "Zebra-Quill-42"
# A registration records UserRegistered and EmailVerificationRequested.
REGISTRATION_EVENTS = 2


@dataclass
class OutboxWorld:
    """A DynamoDB client and tables, the domain's clock, and the events each commit reported."""

    client: Any
    tables: TableNames
    clock: FixedClock = field(default_factory=lambda: FixedClock(T0))
    policy: AuthPolicy = field(default_factory=AuthPolicy)
    hasher: Any = field(default_factory=FakePasswordHasher)
    issuer: FakeAccessTokenIssuer = field(default_factory=FakeAccessTokenIssuer)
    committed: list[list[DomainEvent]] = field(default_factory=list)
    notifier: RecordingNotifier = field(default_factory=RecordingNotifier)
    after_reply: DeferredTasks = field(default_factory=DeferredTasks)

    @property
    def notices(self) -> LockNotices:
        return LockNotices(self.notifier, self.after_reply)

    def uow(self, client: Any = None) -> DynamoUnitOfWork:
        return DynamoUnitOfWork(
            client or self.client, self.tables, on_committed=self._heard, clock=self.clock
        )

    def _heard(self, events: Sequence[DomainEvent]) -> None:
        self.committed.append(list(events))

    async def register(
        self, email: str = "ada@example.com", client: Any = None, *, mailed: bool = False
    ) -> User:
        """A new account; its verification mail is held in ``after_reply`` until run when
        ``mailed``, else dropped unsent."""
        mailing = (
            VerificationMailing(self.notifier, self.after_reply)
            if mailed
            else unsent_verification_mailing()
        )
        return await accounts.register_user(
            self.uow(client),
            self.hasher,
            self.clock,
            self.policy,
            mailing,
            email=email,
            password=PASSWORD,
            first_name="Ada",
            last_name="Lovelace",
        )

    async def sign_in(
        self, email: str = "ada@example.com", password: str = PASSWORD, client: Any = None
    ) -> SessionTokens:
        return session_tokens(
            await authenticate(
                self.uow(client),
                self.hasher,
                self.issuer,
                self.clock,
                self.policy,
                self.notices,
                email=email,
                password=password,
            )
        )

    async def verify(self, *, token: str = "", email: str = "", code: str = "") -> User:
        return await verification.verify_email(
            self.uow(), self.clock, self.policy.verification, token=token, email=email, code=code
        )

    async def refresh(self, refresh_token: str, client: Any = None) -> SessionTokens:
        return await refresh_session(
            self.uow(client), self.issuer, self.clock, self.policy, refresh_token=refresh_token
        )

    async def user_item(self, user_id: UserId | str) -> dict[str, Any] | None:
        response = await self.client.get_item(
            TableName=self.tables.users, Key={"Id": {"S": str(user_id)}}, ConsistentRead=True
        )
        item = response.get("Item")
        return dict(item) if item else None

    async def session_items(self, user_id: UserId | str) -> list[dict[str, Any]]:
        """Every session item of the user, of any epoch."""
        response = await self.client.query(
            TableName=self.tables.sessions,
            KeyConditionExpression="UserId = :id",
            ExpressionAttributeValues={":id": {"S": str(user_id)}},
            ConsistentRead=True,
        )
        return list(response["Items"])

    async def event_seq(self, user_id: UserId | str) -> int:
        item = await self.user_item(user_id)
        assert item is not None, "no user item"
        return int(item["EventSeq"]["N"])

    async def event_items(self, user_id: UserId | str) -> list[dict[str, Any]]:
        """The user's event items, in Seq order, read consistently from the table."""
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            "TableName": self.tables.events,
            "KeyConditionExpression": "UserId = :id",
            "ExpressionAttributeValues": {":id": {"S": str(user_id)}},
            "ConsistentRead": True,
        }
        while True:
            page = await self.client.query(**request)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def recorded(self, user_id: UserId | str) -> list[RecordedEvent]:
        return [item_to_recorded_event(item) for item in await self.event_items(user_id)]

    async def events(self, user_id: UserId | str) -> list[DomainEvent]:
        return [recorded.event for recorded in await self.recorded(user_id)]

    async def all_event_items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {"TableName": self.tables.events, "ConsistentRead": True}
        while True:
            page = await self.client.scan(**request)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def later(clock: FixedClock, **delta: float) -> datetime:
    """Move the clock on; the new time."""
    clock.now += timedelta(**delta)
    return clock.now
