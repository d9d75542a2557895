"""The outbox contract, run against the in-memory fake and DynamoDB alike: pending events land
with their write, numbered on from the EventSeq as read, and leave the aggregate; a write that
loses leaves no event and keeps its own pending."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from domain.errors import VersionConflict
from domain.events import DomainEvent, ProfileUpdated, UserDeleted, UserDisabled, UserRegistered
from domain.policies import SessionPolicy
from domain.ports import UnitOfWork
from domain.user import User
from domain.values import PersonName
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import T0, new_user
from tests.fakes import FakeUnitOfWork, InMemoryStore
from tests.integration.outbox_world import OutboxWorld

NewUow = Callable[[], UnitOfWork]


class Outbox:
    """A unit-of-work factory over one store, and how to read the events that store holds."""

    def __init__(self, new_uow: NewUow, stored: Callable[[User], Any]) -> None:
        self.new_uow = new_uow
        self._stored = stored

    async def stored(self, user: User) -> list[tuple[int, DomainEvent]]:
        return list(await self._stored(user))


@pytest.fixture(params=["fake", "dynamodb"])
def outbox(request: pytest.FixtureRequest) -> Outbox:
    if request.param == "fake":
        store = InMemoryStore()

        async def from_store(user: User) -> Sequence[tuple[int, DomainEvent]]:
            return [(r.sequence, r.event) for r in store.events.get(user.id.value, [])]

        return Outbox(lambda: FakeUnitOfWork(store), from_store)
    world = OutboxWorld(
        request.getfixturevalue("dynamodb_client"), request.getfixturevalue("dynamodb_tables")
    )

    async def from_table(user: User) -> Sequence[tuple[int, DomainEvent]]:
        return [(r.sequence, r.event) for r in await world.recorded(user.id)]

    return Outbox(lambda: DynamoUnitOfWork(world.client, world.tables), from_table)


async def test_events_land_with_their_write_numbered_from_one_and_leave_the_aggregate(
    outbox: Outbox,
) -> None:
    user = new_user()
    async with outbox.new_uow() as uow:
        await uow.users.add(user)
        await uow.commit()
    assert user.events == []

    async with outbox.new_uow() as uow:
        stored = await uow.users.require(user.id)
        stored.update_profile(first_name=PersonName.parse("Augusta"), last_name=None, now=T0)
        stored.disable(T0, SessionPolicy(), [])
        await uow.users.update(stored)
        await uow.commit()
        assert stored.events == []

    uid = user.id.value
    assert await outbox.stored(user) == [
        (1, UserRegistered(uid, T0, "ada.lovelace@example.com", "Ada", "Lovelace")),
        (2, ProfileUpdated(uid, T0, "Augusta", "Lovelace")),
        (3, UserDisabled(uid, T0)),
    ]

    async with outbox.new_uow() as uow:
        stored = await uow.users.require(user.id)
        stored.mark_deleted(now=T0)
        await uow.users.delete(stored)
        await uow.commit()
    assert (await outbox.stored(user))[-1] == (4, UserDeleted(uid, T0))


async def test_a_write_that_loses_stores_none_of_its_events_and_keeps_them_pending(
    outbox: Outbox,
) -> None:
    user = new_user()
    async with outbox.new_uow() as uow:
        await uow.users.add(user)
        await uow.commit()
    first, second = outbox.new_uow(), outbox.new_uow()
    winner = await first.users.require(user.id)
    loser = await second.users.require(user.id)

    winner.disable(T0, SessionPolicy(), [])
    await first.users.update(winner)
    await first.commit()
    loser.update_profile(first_name=PersonName.parse("Loser"), last_name=None, now=T0)
    await second.users.update(loser)
    with pytest.raises(VersionConflict):
        await second.commit()

    assert [sequence for sequence, _ in await outbox.stored(user)] == [1, 2]
    assert (await outbox.stored(user))[-1][1] == UserDisabled(user.id.value, T0)
    assert loser.events == [ProfileUpdated(user.id.value, T0, "Loser", "Lovelace")]
