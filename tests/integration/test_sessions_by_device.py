"""Sessions by device against DynamoDB (moto): the session item keeps the client details a sign-in
was given, across refreshes; ListSessions reads them back; EndSession deletes the item in the
same write as its SessionRevoked event; bad details store nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from domain.errors import InvalidArgument, InvalidRefreshToken, SessionNotFound
from domain.events import SessionEndReason, SessionRevoked
from domain.policies import AuthPolicy
from domain.use_cases.accounts import register_user
from domain.use_cases.sessions import (
    SessionTokens,
    authenticate,
    end_session,
    list_sessions,
    refresh_session,
)
from domain.values import ClientDetails, Requester
from persistence.event_mapper import item_to_recorded_event
from persistence.schema import TableNames
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import T0, session_tokens
from tests.fakes import (
    FakeAccessTokenIssuer,
    FakePasswordHasher,
    FixedClock,
    recorded_lock_notices,
    unsent_verification_mailing,
)

PASSWORD = "correct horse battery staple"
PHONE = {
    "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X)",
    "ip_address": "2001:DB8:0:0::0042",
    "device_label": "  Ada's phone ",
}


class World:
    """One user in fresh tables, and the use cases called as the servicer calls them."""

    def __init__(self, client: Any, tables: TableNames) -> None:
        self.client, self.tables = client, tables
        self.clock, self.policy = FixedClock(T0), AuthPolicy()

    def uow(self) -> DynamoUnitOfWork:
        return DynamoUnitOfWork(self.client, self.tables)

    async def register(self) -> str:
        user = await register_user(
            self.uow(), FakePasswordHasher(), self.clock, self.policy,
            unsent_verification_mailing(), email="ada@example.com",
            password=PASSWORD, first_name="Ada", last_name="Lovelace",
        )  # fmt: skip
        return user.id.value

    async def sign_in(self, **client: str) -> SessionTokens:
        return session_tokens(await authenticate(
            self.uow(), FakePasswordHasher(), FakeAccessTokenIssuer(), self.clock, self.policy,
            recorded_lock_notices(), email="ada@example.com", password=PASSWORD, legacy=None,
            **client,
        ))  # fmt: skip

    async def refresh(self, token: str) -> SessionTokens:
        return await refresh_session(
            self.uow(), FakeAccessTokenIssuer(), self.clock, self.policy, refresh_token=token
        )

    async def session_items(self, user_id: str) -> dict[str, dict[str, Any]]:
        response = await self.client.query(
            TableName=self.tables.sessions,
            KeyConditionExpression="UserId = :id",
            ExpressionAttributeValues={":id": {"S": user_id}},
            ConsistentRead=True,
        )
        return {item["SessionId"]["S"]: item for item in response["Items"]}

    async def events(self, user_id: str) -> list[Any]:
        response = await self.client.query(
            TableName=self.tables.events,
            KeyConditionExpression="UserId = :id",
            ExpressionAttributeValues={":id": {"S": user_id}},
            ConsistentRead=True,
        )
        return [item_to_recorded_event(item).event for item in response["Items"]]


@pytest.fixture
def world(dynamodb_client: Any, dynamodb_tables: TableNames) -> World:
    return World(dynamodb_client, dynamodb_tables)


async def test_the_session_item_keeps_the_client_details_across_refreshes(world: World) -> None:
    user_id = await world.register()
    phone = await world.sign_in(**PHONE)
    bare = await world.sign_in()
    world.clock.now += timedelta(minutes=3)
    refreshed = await world.refresh(phone.refresh_token)

    items = await world.session_items(user_id)

    item = items[phone.session_id]
    assert item["UserAgent"] == {"S": PHONE["user_agent"]}
    assert item["IpAddress"] == {"S": "2001:db8::42"}  # canonical form
    assert item["DeviceLabel"] == {"S": "Ada's phone"}  # trimmed
    assert item["TokenHash"] != {"S": ""} and "PreviousTokenHash" in item  # it did rotate
    assert not {"UserAgent", "IpAddress", "DeviceLabel"} & set(items[bare.session_id])
    for issued in (phone, bare, refreshed):
        assert issued.refresh_token not in json.dumps(items)


async def test_the_live_sessions_are_read_back_newest_first_with_their_details(
    world: World,
) -> None:
    user_id = await world.register()
    phone = await world.sign_in(**PHONE)
    world.clock.now += timedelta(hours=1)
    laptop = await world.sign_in(user_agent="Firefox/128.0", ip_address="192.0.2.7")

    listed = await list_sessions(world.uow(), world.clock, world.policy.sessions, user_id=user_id)

    assert [s.session_id for s in listed] == [laptop.session_id, phone.session_id]
    assert listed[1].client == ClientDetails(PHONE["user_agent"], "2001:db8::42", "Ada's phone")
    assert listed[0].client == ClientDetails("Firefox/128.0", "192.0.2.7", "")


async def test_ending_a_session_deletes_its_item_with_its_event_in_one_write(world: World) -> None:
    user_id = await world.register()
    phone, laptop = await world.sign_in(**PHONE), await world.sign_in()
    world.clock.now += timedelta(minutes=1)

    await end_session(
        world.uow(), world.clock, world.policy.sessions,
        user_id=user_id, session_id=phone.session_id, by=Requester.ADMIN,
    )  # fmt: skip

    assert set(await world.session_items(user_id)) == {laptop.session_id}
    assert (await world.events(user_id))[-1] == SessionRevoked(
        user_id, world.clock.now, phone.session_id, SessionEndReason.REVOKED_BY_ADMIN
    )
    with pytest.raises(InvalidRefreshToken):
        await world.refresh(phone.refresh_token)
    await world.refresh(laptop.refresh_token)
    events_before = len(await world.events(user_id))
    with pytest.raises(SessionNotFound):  # ended already: nothing more happens
        await end_session(
            world.uow(), world.clock, world.policy.sessions,
            user_id=user_id, session_id=phone.session_id, by=Requester.USER,
        )  # fmt: skip
    assert len(await world.events(user_id)) == events_before


async def test_bad_client_details_store_no_session(world: World) -> None:
    user_id = await world.register()
    with pytest.raises(InvalidArgument):
        await world.sign_in(ip_address="2001:db8::1%eth0", device_label="x" * 65)
    assert await world.session_items(user_id) == {}
